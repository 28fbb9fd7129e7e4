// Benchmark support: starts bin/virtproxyd in a private temp dir in front of the backend libvirtd,
// the way test/e2e/harness.ts does, but without node:test hooks. The caller stops it; an exit hook
// kills it if the caller never gets there.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

export interface BenchProxyOptions {
  repoRoot: string;
  backendDir: string;
  /** Same value as the backend's, so both daemons throttle a client alike. */
  maxClientRequests: number;
  /** Write a V8 CPU profile (node --cpu-prof) into the proxy's temp dir. */
  cpuProfile?: boolean;
}

export interface BenchProxy {
  pid: number;
  /** The proxy's read-write client socket. */
  sock: string;
  dir: string;
  stderr(): string;
  /** SIGTERM (SIGKILL after 10 s); resolves once it has exited. */
  stop(): Promise<void>;
  /** Paths of the .cpuprofile files written (after stop()). */
  cpuProfiles(): string[];
  /** Removes the temp dir. */
  cleanup(): Promise<void>;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startBenchProxy(opts: BenchProxyOptions): Promise<BenchProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'vpbench-'));
  const run = join(dir, 'run');
  mkdirSync(run);
  const conf = [
    `unix_sock_dir = "${run}"`,
    `backend_sock_dir = "${opts.backendDir}"`,
    'auth_unix_rw = "none"',
    'auth_unix_ro = "none"',
    `max_client_requests = ${opts.maxClientRequests}`,
  ];
  const confFile = join(dir, 'virtproxyd.conf');
  await writeFile(confFile, conf.join('\n') + '\n');
  const stderrFile = join(dir, 'stderr.log');
  const outFd = openSync(join(dir, 'stdout.log'), 'w');
  const errFd = openSync(stderrFile, 'w');
  const profDir = join(dir, 'prof');
  // The V8 flag of bin/virtproxyd's shebang, so the bench measures the daemon as shipped.
  const nodeArgs = [
    '--max-semi-space-size=1',
    ...(opts.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
  ];
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      join(opts.repoRoot, 'bin', 'virtproxyd'),
      '-f',
      confFile,
      '-p',
      join(dir, 'virtproxyd.pid'),
    ],
    { cwd: opts.repoRoot, stdio: ['ignore', outFd, errFd] },
  );
  closeSync(outFd);
  closeSync(errFd);
  const killOnExit = (): void => {
    if (!exited(child)) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const stderr = (): string => readFileSync(stderrFile, 'utf8');
  const sock = join(run, 'libvirt-sock');

  const proxy: BenchProxy = {
    pid: child.pid ?? -1,
    sock,
    dir,
    stderr,
    async stop() {
      if (!exited(child)) {
        child.kill('SIGTERM');
        if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
          child.kill('SIGKILL');
          await waitForExit(child, STOP_TIMEOUT_MS);
        }
      }
      process.off('exit', killOnExit);
    },
    cpuProfiles() {
      try {
        return readdirSync(profDir)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => join(profDir, f));
      } catch {
        return [];
      }
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited(child)) {
      throw new Error(
        `bench: virtproxyd exited (${child.exitCode ?? child.signalCode}) at start:\n${stderr()}`,
      );
    }
    if (await canConnect(sock)) return proxy;
    if (Date.now() > deadline) {
      await proxy.stop();
      throw new Error(`bench: virtproxyd did not listen on ${sock} within 15 s:\n${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
