// Daemon layer: graceful restart (SIGUSR2), beyond what libvirt's virtproxyd offers. The running
// process hands its listening sockets to a fresh copy of itself the way systemd would
// (LISTEN_FDS / LISTEN_FDNAMES with the unit names, LISTEN_PID set by the exec'd shell to the
// child's own pid), waits until the copy reports it serves, then stops accepting and lets its own
// clients finish. The listening sockets never close, so no connection attempt is refused during
// an upgrade: connections queue in the shared backlog and whichever process accepts first serves.
// If the copy fails to start, this process simply keeps serving.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { HANDOVER_ENV, systemdNotify } from '../transport/socket-activation.js';
import type { Daemon } from './daemon.js';
import { ACTIVATION_NAMES } from './remote-services.js';

/** How long the old process lets its clients finish before closing them (they reconnect). */
export const DRAIN_ENV = 'VIRTPROXYD_RESTART_DRAIN_SECS';
const DEFAULT_DRAIN_SECS = 30;

export interface RestartContext {
  daemon: Daemon;
  /** The command line the daemon was started with (after the script path). */
  argv: readonly string[];
  /** Environment variable main() reads to find the child's status pipe (the -d mechanism). */
  statusFdEnv: string;
  /** Releases the PID file so the new process can take it; `reacquire` undoes that on failure. */
  pidFile: { release(): void; reacquire(): void } | null;
  env?: NodeJS.ProcessEnv;
}

function serverFd(server: net.Server): number | null {
  // Node keeps the listening fd on the internal handle only; this is the one reach into it.
  const fd = (server as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

const SERVICE_UNITS: Record<string, string> = {
  rw: ACTIVATION_NAMES.rw,
  ro: ACTIVATION_NAMES.ro,
  tcp: ACTIVATION_NAMES.tcp,
  tls: ACTIVATION_NAMES.tls,
};

/**
 * Listeners whose sockets are handed over by fd: TCP ones and unix ones systemd made. Unix sockets
 * we bound by path are not: the successor binds fresh ones and renames them over the paths, and
 * ours stay open, unreachable, until we exit (closing them would make Node unlink the path).
 */
function passedListeners(d: Daemon): Daemon['listeners'] {
  return d.listeners.filter((l) => l.service.transport !== 'unix' || l.unlinkPath === null);
}

/**
 * Closes every other listening server of this process (the admin socket, the metrics endpoint):
 * they are not handed over, and the successor binds the same addresses. Node lists its live
 * handles only through the undocumented process._getActiveHandles; without it nothing is closed
 * and the successor fails to bind (then this process keeps serving).
 */
function releaseOtherListeners(d: Daemon): string[] {
  const mine = new Set(d.listeners.map((l) => l.server));
  const getHandles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
  const released: string[] = [];
  for (const h of getHandles?.call(process) ?? []) {
    if (!(h instanceof net.Server) || !h.listening || mine.has(h)) continue;
    const a = h.address();
    released.push(typeof a === 'string' ? a : a === null ? 'a listener' : `${a.address}:${a.port}`);
    h.close();
  }
  return released;
}

export type RestartOutcome = { ok: true; pid: number } | { ok: false; reason: string };

/** Starts the successor with our listening sockets; resolves once it serves or has failed. */
export function spawnSuccessor(ctx: RestartContext): Promise<RestartOutcome> {
  const d = ctx.daemon;
  const fds: number[] = [];
  const names: string[] = [];
  for (const l of passedListeners(d)) {
    const fd = serverFd(l.server);
    const unit = SERVICE_UNITS[l.service.name];
    if (fd === null || unit === undefined) continue;
    fds.push(fd);
    names.push(unit);
  }
  const script = process.argv[1] ?? '';
  const statusFd = 3 + fds.length;
  const env = {
    ...(ctx.env ?? process.env),
    LISTEN_FDS: String(fds.length),
    LISTEN_FDNAMES: names.join(':'),
    [HANDOVER_ENV]: '1',
    [ctx.statusFdEnv]: String(statusFd),
  };
  // systemd sets LISTEN_PID between fork and exec; a shell that execs node keeps its pid, so $$
  // is the successor's pid too.
  const child = spawn(
    '/bin/sh',
    // execArgv carries the V8 flags of bin/virtproxyd's shebang to the successor.
    [
      '-c',
      'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"',
      process.execPath,
      ...process.execArgv,
      script,
      ...ctx.argv,
    ],
    { detached: true, env, stdio: ['ignore', 'inherit', 'inherit', ...fds, 'pipe'] },
  );
  return new Promise((resolve) => {
    const pipe = child.stdio[statusFd] as NodeJS.ReadableStream | null | undefined;
    let text = '';
    let done = false;
    const finish = (r: RestartOutcome): void => {
      if (done) return;
      done = true;
      child.unref();
      resolve(r);
    };
    child.once('error', (e) => finish({ ok: false, reason: e.message }));
    child.once('exit', (code, sig) =>
      finish({ ok: false, reason: `${text.trim() || 'exited early'} (status ${code ?? sig})` }),
    );
    if (pipe === null || pipe === undefined) return finish({ ok: false, reason: 'no status pipe' });
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      text += chunk;
      if (text.startsWith('ok')) finish({ ok: true, pid: child.pid ?? -1 });
    });
    pipe.on('end', () => {
      if (!text.startsWith('ok'))
        finish({ ok: false, reason: text.trim() || 'successor closed its status pipe' });
    });
  });
}

/**
 * After a successful hand-over: stop accepting (the sockets stay open in the successor), keep
 * serving our clients until they leave or the drain time ends, then exit without removing
 * anything on disk (the sockets and PID file now belong to the successor).
 */
function retire(ctx: RestartContext, successor: number): void {
  const d = ctx.daemon;
  const log = (level: 'info' | 'warn', msg: string): void => d.logger.log(level, msg);
  const passed = new Set(passedListeners(d));
  for (const l of d.listeners) {
    l.unlinkPath = null;
    // The successor holds these sockets too: closing ours leaves them listening. Our own
    // path-bound unix sockets stay open (see passedListeners) and die with the process.
    if (passed.has(l)) l.server.close();
  }
  // No idle exit from here on: the exit below skips the stop hooks, which would remove paths
  // (sockets, admin socket) that now belong to the successor.
  d.setTimeout(0);
  try {
    systemdNotify(`MAINPID=${successor}\nREADY=1`, ctx.env);
  } catch (e) {
    log('warn', `sd_notify MAINPID failed: ${(e as Error).message}`);
  }
  const env = ctx.env ?? process.env;
  const drainSecs = Number(env[DRAIN_ENV] ?? DEFAULT_DRAIN_SECS);
  const exit = (why: string): void => {
    log('info', `restart: old process exiting (${why})`);
    d.server.closeAll();
    // Give closing clients' backend legs a moment to say CONNECT_CLOSE, then go.
    setTimeout(() => process.exit(0), 50);
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) {
    process.removeAllListeners(sig);
    process.on(sig, () => exit(sig));
  }
  const check = (): void => {
    if (d.server.clients.size === 0) exit('no clients left');
  };
  const timer = setInterval(check, 100);
  setTimeout(
    () => {
      clearInterval(timer);
      exit(`drain time of ${drainSecs} s over`);
    },
    Math.max(0, drainSecs) * 1000,
  ).unref();
  log('info', `restart: process ${successor} serves now; ${d.server.clients.size} client(s) left here`);
  check();
}

/** Installs the SIGUSR2 handler that performs the hand-over. */
export function installRestart(ctx: RestartContext): { restart(): Promise<RestartOutcome> } {
  let busy = false;
  const d = ctx.daemon;
  const restart = async (): Promise<RestartOutcome> => {
    if (busy) return { ok: false, reason: 'a restart is already under way' };
    busy = true;
    d.logger.log('info', 'restart: starting a successor with our listening sockets');
    const released = releaseOtherListeners(d);
    if (released.length > 0) {
      d.logger.log('info', `restart: closed ${released.join(', ')} for the successor to bind`);
    }
    // Whatever of the admin socket is left (a stale path) must not stop the successor binding it.
    if (d.paths.adminSocket !== null) fs.rmSync(d.paths.adminSocket, { force: true });
    ctx.pidFile?.release();
    const r = await spawnSuccessor(ctx);
    if (!r.ok) {
      busy = false;
      d.logger.log('error', `restart: successor failed, this process keeps serving: ${r.reason}`);
      if (released.length > 0) d.logger.log('warn', `restart: ${released.join(', ')} stay closed`);
      try {
        ctx.pidFile?.reacquire();
      } catch (e) {
        d.logger.log('error', `restart: cannot take the PID file back: ${(e as Error).message}`);
      }
      return r;
    }
    retire(ctx, r.pid);
    return r;
  };
  process.on('SIGUSR2', () => {
    void restart();
  });
  return { restart };
}
