// End-to-end harness: runs the real proxy (bin/virtproxyd) in front of the real libvirtd that
// scripts/backend.sh keeps, and drives real clients (virsh, python3-libvirt) through it.
// Test support only; nothing in src/ imports it. Every child it spawns is killed when the test file
// ends (node:test `after` on the root), and again synchronously on process exit as a safety net.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

/** Where libvirtd lives unless VIRTPROXYD_TEST_BACKEND_DIR says otherwise (scripts/backend.sh's default). */
const DEFAULT_BACKEND_DIR = '/run/libvirt/backend';
const VIRSH = '/usr/bin/virsh';
// Debian's interpreter, which has the libvirt bindings; the `python3` first on PATH may not.
const PYTHON = '/usr/bin/python3';
const CLIENT_TIMEOUT_MS = 60_000;
const PROXY_START_TIMEOUT_MS = 15_000;
const PROXY_STOP_TIMEOUT_MS = 10_000;

export type ConfValue = string | number | string[];

export interface ProxyOptions {
  /** Merged over the harness defaults; `null` leaves a default key out of the file. */
  conf?: Record<string, ConfValue | null>;
  /** Extra command-line arguments after `-f <conf> -p <pidfile>`. */
  args?: string[];
}

export interface Proxy {
  /** Private temp dir holding the config, pid file, logs and the `run/` socket dir. */
  dir: string;
  rwSock: string;
  roSock: string;
  adminSock: string;
  pid: number;
  pidFile: string;
  /** What the proxy has written to stderr so far. */
  stderr(): string;
  /** Signals the proxy (SIGTERM by default), SIGKILLs it after 10 s; resolves to its exit code (null if killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** A client URI for `driverUri` that reaches this proxy's rw (or ro) socket. */
  uri(driverUri: string, ro?: boolean): string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('harness: cannot find the repository root above ' + import.meta.url);
    dir = up;
  }
  return dir;
}

export const repoRoot = findRepoRoot();

const children = new Set<ChildProcess>();
const proxies = new Set<Proxy>();
const tempDirs = new Set<string>();
let backend: string | undefined;

function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

after(async () => {
  await Promise.all([...proxies].map((p) => p.stop()));
  for (const child of children) child.kill('SIGKILL');
  await Promise.all([...tempDirs].map((d) => rm(d, { recursive: true, force: true })));
  tempDirs.clear();
});

process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * The directory holding libvirtd's sockets and the virt<driver>d-sock links. Taken from
 * VIRTPROXYD_TEST_BACKEND_DIR (scripts/test.sh sets it); otherwise this process runs
 * `scripts/backend.sh start` once and, if that call started libvirtd, stops it again on exit
 * (synchronously, so it works from an 'exit' handler; a reused libvirtd is left running).
 */
export function backendDir(): string {
  if (backend !== undefined) return backend;
  const fromEnv = process.env['VIRTPROXYD_TEST_BACKEND_DIR'];
  if (fromEnv) {
    backend = fromEnv;
    return backend;
  }
  const script = join(repoRoot, 'scripts', 'backend.sh');
  const started = spawnSync('bash', [script, 'start', DEFAULT_BACKEND_DIR], { encoding: 'utf8' });
  if (started.status !== 0) {
    throw new Error(
      `harness: backend.sh start failed (${started.status}): ${started.stderr}${started.stdout}`,
    );
  }
  if (started.stdout.trim().split('\n').pop() === 'started') {
    process.once('exit', () => {
      spawnSync('bash', [script, 'stop', DEFAULT_BACKEND_DIR], { stdio: 'ignore' });
    });
  }
  backend = DEFAULT_BACKEND_DIR;
  return backend;
}

/** Formats one value in libvirt's config syntax; strings take whichever quote they do not contain. */
function confValue(key: string, value: ConfValue): string {
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return `[ ${value.map((v) => confValue(key, v)).join(', ')} ]`;
  if (!value.includes('"')) return `"${value}"`;
  if (!value.includes("'")) return `'${value}'`;
  throw new Error(`harness: conf value for ${key} holds both quote characters`);
}

/**
 * Points a driver URI at a unix socket. A scheme without a transport gets '+unix': otherwise virsh
 * would serve test:///default (and other drivers built into libvirt.so) in-process, never
 * touching the socket.
 */
function socketUri(driverUri: string, socket: string): string {
  const withTransport = driverUri.replace(/^([a-z][a-z0-9.-]*)(?=:)/i, '$1+unix');
  const sep = withTransport.includes('?') ? '&' : '?';
  return `${withTransport}${sep}socket=${socket}`;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
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
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts `node bin/virtproxyd -f <conf> -p <pidfile> ...args` (or $VIRTPROXYD_TEST_BIN with the
 * same arguments) with its sockets in a private temp dir, routing to the real backend, and resolves
 * once its rw socket accepts a connection.
 */
export async function startProxy(opts: ProxyOptions = {}): Promise<Proxy> {
  const bdir = backendDir();
  const dir = await mkdtemp(join(tmpdir(), 'vpe2e-'));
  tempDirs.add(dir);
  const run = join(dir, 'run');
  mkdirSync(run);
  const conf: Record<string, ConfValue | null> = {
    unix_sock_dir: run,
    backend_sock_dir: bdir,
    backend_sockets: [`test=${bdir}/libvirt-sock`],
    auth_unix_rw: 'none',
    auth_unix_ro: 'none',
    ...opts.conf,
  };
  const confFile = join(dir, 'virtproxyd.conf');
  const lines = Object.entries(conf).flatMap(([k, v]) => (v === null ? [] : [`${k} = ${confValue(k, v)}`]));
  await writeFile(confFile, lines.join('\n') + '\n');

  const pidFile = join(dir, 'virtproxyd.pid');
  const stdoutFile = join(dir, 'stdout.log');
  const stderrFile = join(dir, 'stderr.log');
  const outFd = openSync(stdoutFile, 'w');
  const errFd = openSync(stderrFile, 'w');
  const argv = ['-f', confFile, '-p', pidFile, ...(opts.args ?? [])];
  // VIRTPROXYD_TEST_BIN runs another executable in its place (say, a reference build to compare).
  const other = process.env['VIRTPROXYD_TEST_BIN'];
  const [file, args] = other
    ? [other, argv]
    : // The V8 flag of bin/virtproxyd's shebang: tests run the daemon as shipped.
      [process.execPath, ['--max-semi-space-size=1', join(repoRoot, 'bin', 'virtproxyd'), ...argv]];
  const child = spawn(file, args, {
    cwd: repoRoot,
    stdio: ['ignore', outFd, errFd],
  });
  closeSync(outFd);
  closeSync(errFd);
  track(child);
  const stderr = (): string => readFileSync(stderrFile, 'utf8');

  const rwSock = join(run, 'libvirt-sock');
  const roSock = join(run, 'libvirt-sock-ro');
  let stopping: Promise<number | null> | undefined;
  const proxy: Proxy = {
    dir,
    rwSock,
    roSock,
    adminSock: join(run, 'libvirt-admin-sock'),
    pid: child.pid ?? -1,
    pidFile,
    stderr,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill(signal);
          if (!(await waitForExit(child, PROXY_STOP_TIMEOUT_MS))) {
            child.kill('SIGKILL');
            await waitForExit(child, PROXY_STOP_TIMEOUT_MS);
          }
        }
        proxies.delete(proxy);
        return child.exitCode;
      })();
      return stopping;
    },
    uri(driverUri: string, ro = false): string {
      return socketUri(driverUri, ro ? roSock : rwSock);
    },
  };
  proxies.add(proxy);

  const deadline = Date.now() + PROXY_START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const how = child.exitCode ?? child.signalCode;
      throw new Error(`harness: virtproxyd exited (${how}) before listening; stderr:\n${stderr()}`);
    }
    if (await canConnect(rwSock)) return proxy;
    if (Date.now() > deadline) {
      await proxy.stop('SIGKILL');
      throw new Error(`harness: virtproxyd did not listen on ${rwSock} within 15 s; stderr:\n${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs a client program to completion; never throws on a non-zero exit; SIGKILLs it after 60 s. */
function runClient(file: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // C locale: assertions match libvirt's untranslated messages.
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      stderr += `\nharness: killed after ${CLIENT_TIMEOUT_MS / 1000} s`;
      child.kill('SIGKILL');
    }, CLIENT_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** `virsh -q -c <uri> ...args`. */
export function virsh(uri: string, ...args: string[]): Promise<RunResult> {
  return runClient(VIRSH, ['-q', '-c', uri, ...args]);
}

/** Like virsh(), but asserts success and returns stdout. */
export async function virshOk(uri: string, ...args: string[]): Promise<string> {
  const r = await virsh(uri, ...args);
  assert.equal(r.code, 0, `virsh -c ${uri} ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** `/usr/bin/python3 -c <script> ...args` (the interpreter with the libvirt bindings). */
export function python(script: string, args: string[] = []): Promise<RunResult> {
  return runClient(PYTHON, ['-c', script, ...args]);
}

/** A URI that reaches libvirtd directly, bypassing the proxy: the baseline to compare against. */
export function directUri(driverUri: string, ro = false): string {
  return socketUri(driverUri, join(backendDir(), ro ? 'libvirt-sock-ro' : 'libvirt-sock'));
}
