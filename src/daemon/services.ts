// Daemon layer: creates the main server's listening sockets from the config (the rw and ro unix
// sockets for now) and hands them to the daemon.

import fs from 'node:fs';
import net from 'node:net';
import { socketMode } from '../config/daemon-config.js';
import { listenUnix, socketIsLive } from '../transport/unix-listener.js';
import { CodedError } from '../protocol/coded-error.js';
import type { ServiceInfo } from '../server/client-connection.js';
import type { Daemon } from './daemon.js';

export function lookupGroup(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined) return Number(f[2]);
  }
  throw new Error(`Failed to parse group '${name}'`);
}

export async function openUnixListener(
  p: string,
  perms: string,
  group: string | null,
  backlog: number,
): Promise<net.Server> {
  // Paused on connect: unix clients are read by the fd-keeping reader, never by Node itself.
  const srv = net.createServer({ pauseOnConnect: true });
  await listenUnix(srv, {
    path: p,
    mode: socketMode(perms),
    gid: group !== null ? lookupGroup(group) : null,
    backlog,
  });
  return srv;
}

/**
 * Refuses to start when another process serves one of our unix socket paths, checked in libvirt's
 * order (rw, ro, admin) before anything is bound, so the error names the socket libvirt would.
 */
export async function refuseLiveUnixSockets(d: Daemon): Promise<void> {
  if (d.activation !== null) return;
  for (const p of [d.paths.rwSocket, d.paths.roSocket, d.paths.adminSocket]) {
    if (p !== null && fs.existsSync(p) && (await socketIsLive(p))) {
      throw new CodedError(
        'ESOCKLIVE',
        `Failed to bind socket to '${p}': Address already in use (another process serves it)`,
      );
    }
  }
}

/** Opens the main server's sockets; on failure closes what was opened and rethrows. */
export async function setupMainServices(d: Daemon): Promise<void> {
  // Under socket activation systemd made the sockets; setupRemoteServices claims them all.
  if (d.activation !== null) return;
  const c = d.config;
  const backlog = c.max_queued_clients || 30;
  const wanted: Array<{ path: string; perms: string; service: ServiceInfo }> = [];
  if (d.paths.roSocket !== null) {
    wanted.push({
      path: d.paths.roSocket,
      perms: c.unix_sock_ro_perms,
      service: { name: 'ro', readonly: true, auth: c.auth_unix_ro, transport: 'unix' },
    });
  }
  // The rw socket comes last: once it accepts, every other socket of the daemon exists.
  wanted.push({
    path: d.paths.rwSocket,
    perms: c.unix_sock_rw_perms,
    service: { name: 'rw', readonly: false, auth: c.auth_unix_rw, transport: 'unix' },
  });
  const opened: Array<{ srv: net.Server; path: string }> = [];
  try {
    for (const w of wanted) {
      const srv = await openUnixListener(w.path, w.perms, c.unix_sock_group, backlog);
      opened.push({ srv, path: w.path });
      d.addListener({ server: srv, unlinkPath: w.path, service: w.service });
      d.logger.log('debug', `listening on ${w.path} (${w.service.name})`);
    }
  } catch (e) {
    for (const o of opened) {
      o.srv.close();
      fs.rmSync(o.path, { force: true });
    }
    throw e;
  }
}
