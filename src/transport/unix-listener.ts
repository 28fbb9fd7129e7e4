// Transport layer: a listening unix socket with libvirt's file semantics: exact permission bits,
// optional group, a stale socket left by a dead process replaced, a live one never stolen.

import fs from 'node:fs';
import net from 'node:net';
import { CodedError } from '../protocol/coded-error.js';

export interface UnixListenOptions {
  path: string;
  /** Permission bits, e.g. 0o777. */
  mode: number;
  /** Numeric group to own the socket, or null. */
  gid: number | null;
  backlog: number;
}

/** True when something accepts connections on `path`. */
export function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function listenUnix(server: net.Server, opts: UnixListenOptions): Promise<void> {
  if (fs.existsSync(opts.path)) {
    if (await socketIsLive(opts.path)) {
      throw new CodedError(
        'ESOCKLIVE',
        `Failed to bind socket to '${opts.path}': Address already in use (another process serves it)`,
      );
    }
    fs.unlinkSync(opts.path);
  }
  const old = process.umask(~opts.mode & 0o777);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: opts.path, backlog: opts.backlog }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(old);
  }
  fs.chmodSync(opts.path, opts.mode);
  if (opts.gid !== null) fs.chownSync(opts.path, -1, opts.gid);
}
