// Transport layer: systemd's side of the daemon's life. Socket activation (sd_listen_fds with
// names): LISTEN_PID must be us, LISTEN_FDS sockets start at fd 3, LISTEN_FDNAMES names them
// (libvirt insists on names and ignores activation without them); services claim fds by unit
// name and whatever nobody claims is an error. And sd_notify: datagrams to $NOTIFY_SOCKET.

import fs from 'node:fs';
import net from 'node:net';
import { native } from '../native/native.js';
import { listenUnix, type UnixListenOptions } from './unix-listener.js';

/** First passed fd (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

export type ActivationParse =
  { kind: 'none' } | { kind: 'ignored'; reason: string } | { kind: 'active'; fds: Map<string, number[]> };

/** Reads the activation variables; `pid` is our own process id. Pure: nothing is changed. */
export function parseActivation(env: NodeJS.ProcessEnv, pid: number): ActivationParse {
  const listenPid = env['LISTEN_PID'];
  const listenFds = env['LISTEN_FDS'];
  if (listenPid === undefined || listenFds === undefined) return { kind: 'none' };
  if (!/^\d+$/.test(listenPid) || Number(listenPid) !== pid) return { kind: 'none' };
  if (!/^\d+$/.test(listenFds)) return { kind: 'ignored', reason: `malformed LISTEN_FDS '${listenFds}'` };
  const n = Number(listenFds);
  if (n === 0) return { kind: 'none' };
  const names = env['LISTEN_FDNAMES'];
  if (names === undefined) {
    return { kind: 'ignored', reason: 'Missing LISTEN_FDNAMES env from systemd socket activation' };
  }
  const list = names.split(':');
  if (list.length !== n) {
    return {
      kind: 'ignored',
      reason: `Mismatch between LISTEN_FDNAMES (${list.length} names) and LISTEN_FDS (${n} fds)`,
    };
  }
  const fds = new Map<string, number[]>();
  list.forEach((name, i) => {
    const group = fds.get(name) ?? [];
    group.push(LISTEN_FDS_START + i);
    fds.set(name, group);
  });
  return { kind: 'active', fds };
}

/** Set by a restarting virtproxyd for its successor: the passed sockets are ours, not systemd's. */
export const HANDOVER_ENV = 'VIRTPROXYD_HANDOVER';

/** The passed sockets, claimed service by service. */
export class SocketActivation {
  private readonly fds: Map<string, number[]>;

  /** `owned`: the sockets come from our own predecessor (restart), so unix paths are ours to remove. */
  constructor(
    fds: Map<string, number[]>,
    readonly owned = false,
  ) {
    this.fds = new Map(fds);
  }

  has(name: string): boolean {
    return this.fds.has(name);
  }

  /** The fds named `name` (several form one service); [] when none. Each name can be taken once. */
  take(name: string): number[] {
    const fds = this.fds.get(name) ?? [];
    this.fds.delete(name);
    return fds;
  }

  /** Names nobody claimed (libvirt: fatal, "Some activation file descriptors are unclaimed"). */
  unclaimed(): string[] {
    return [...this.fds.keys()];
  }
}

/**
 * Takes the activation passed to this process, clearing the variables so children do not see
 * them; `warn` hears why activation present but unusable was ignored. null = manual mode.
 */
export function takeSocketActivation(
  env: NodeJS.ProcessEnv,
  pid: number,
  warn: (msg: string) => void,
): SocketActivation | null {
  const parsed = parseActivation(env, pid);
  const owned = env[HANDOVER_ENV] === '1';
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDS'];
  delete env['LISTEN_FDNAMES'];
  delete env[HANDOVER_ENV];
  if (parsed.kind === 'ignored') warn(`${parsed.reason}; creating sockets from the configuration`);
  // A restart with only path-bound unix sockets passes no fd (LISTEN_FDS=0), yet the successor must
  // still take the paths over from its live predecessor instead of binding them anew (and failing).
  if (owned && parsed.kind === 'none') return new SocketActivation(new Map(), true);
  return parsed.kind === 'active' ? new SocketActivation(parsed.fds, owned) : null;
}

/**
 * net.Servers listening on passed fds (unix or TCP; Node tells them apart itself). `pause` is
 * pauseOnConnect, which the unix services need (their reader takes over the socket).
 */
export async function listenOnFds(
  fds: number[],
  opts: { pause: boolean; backlog: number },
): Promise<net.Server[]> {
  const servers: net.Server[] = [];
  for (const fd of fds) {
    const srv = net.createServer({ pauseOnConnect: opts.pause, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ fd, backlog: opts.backlog }, () => {
        srv.removeListener('error', reject);
        resolve();
      });
    });
    servers.push(srv);
  }
  return servers;
}

/**
 * A unix listener that takes over `opts.path` even while another process serves it: bound at a
 * private name, then renamed over the path in one step, so a connect() always finds a listening
 * socket (the old one until the rename, ours after). Used on restart, where the predecessor is
 * still serving. Node remembers the private name, so closing this server later never unlinks the
 * public path (which a successor may own by then); the owner removes it explicitly.
 */
export async function listenUnixReplacing(server: net.Server, opts: UnixListenOptions): Promise<void> {
  const tmp = `${opts.path}.handover-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  await listenUnix(server, { ...opts, path: tmp });
  fs.renameSync(tmp, opts.path);
}

/** sd_notify(3): a no-op unless $NOTIFY_SOCKET is set; failures are the caller's to log. */
export function systemdNotify(message: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const sock = env['NOTIFY_SOCKET'];
  if (sock === undefined || sock === '') return false;
  native().sdNotify(sock, message);
  return true;
}
