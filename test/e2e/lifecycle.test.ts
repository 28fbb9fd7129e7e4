// End-to-end tests of virtproxyd's life as a process: unix socket files (perms, group, stale vs
// live), the locked PID file, signals, the -t idle timeout and -d daemonizing (virtproxyd(8),
// NOTES §9.1-9.3, §9.5-9.7). Every daemon runs from bin/virtproxyd in a private temp dir in front
// of the shared libvirtd, and is killed when its test ends, pass or fail.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { backendDir, repoRoot, virshOk } from './harness.js';

const BIN = join(repoRoot, 'bin', 'virtproxyd');
const PYTHON = '/usr/bin/python3';
const START_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 10_000;

// Everything started here, so that a failing assertion never leaves a daemon behind.
const children = new Set<ChildProcess>();
const detachedPids = new Set<number>();
const tempDirs = new Set<string>();

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const pid of detachedPids) killQuietly(pid, 'SIGKILL');
  await Promise.all([...tempDirs].map((d) => rm(d, { recursive: true, force: true })));
});

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True while `pid` runs and is not a zombie (an orphan may wait a while for PID 1 to reap it). */
function alive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

async function waitFor(what: string, ms: number, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
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

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'vplife-'));
  tempDirs.add(d);
  return d;
}

type Conf = Record<string, string | number | string[]>;

function confText(conf: Conf): string {
  const value = (v: string | number | string[]): string =>
    typeof v === 'number' ? String(v) : Array.isArray(v) ? `[ ${v.map(value).join(', ')} ]` : `"${v}"`;
  return Object.entries(conf)
    .map(([k, v]) => `${k} = ${value(v)}\n`)
    .join('');
}

/** A config routing to the shared libvirtd with its sockets in `sockDir`. */
function writeConf(dir: string, sockDir: string, extra: Conf = {}, name = 'virtproxyd.conf'): string {
  const bdir = backendDir();
  const file = join(dir, name);
  writeFileSync(
    file,
    confText({
      unix_sock_dir: sockDir,
      backend_sock_dir: bdir,
      backend_sockets: [`test=${bdir}/libvirt-sock`],
      auth_unix_rw: 'none',
      auth_unix_ro: 'none',
      ...extra,
    }),
  );
  return file;
}

interface Daemon {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<number | null>;
  stderr(): string;
  uri(driverUri: string, ro?: boolean): string;
}

/** Starts `node bin/virtproxyd ...args` in the foreground, stderr collected in memory. */
function launch(args: string[], sockDir: string): Daemon {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    stderr: () => stderr,
    uri: (driverUri, ro = false) =>
      `${driverUri.replace(/^qemu:/, 'qemu+unix:')}?socket=${join(sockDir, ro ? 'libvirt-sock-ro' : 'libvirt-sock')}`,
  };
}

/** Resolves once the daemon's rw socket accepts; fails if the daemon exits first. */
async function listening(d: Daemon, sockDir: string): Promise<void> {
  let gone = false;
  void d.exited.then(() => (gone = true));
  await waitFor(`virtproxyd to listen in ${sockDir}`, START_TIMEOUT_MS, async () => {
    if (gone) assert.fail(`virtproxyd exited before listening:\n${d.stderr()}`);
    return canConnect(join(sockDir, 'libvirt-sock'));
  });
}

/** Exit code of `d`, SIGKILLing it (and failing) if it has not exited within `ms`. */
async function exitWithin(d: Daemon, ms: number): Promise<number | null> {
  const timer = setTimeout(() => d.child.kill('SIGKILL'), ms);
  const code = await d.exited;
  clearTimeout(timer);
  assert.ok(d.child.signalCode !== 'SIGKILL', `virtproxyd did not exit within ${ms} ms:\n${d.stderr()}`);
  return code;
}

/** A running foreground daemon with its own temp dir, config, socket dir and PID file. */
async function startDaemon(
  extraConf: Conf = {},
  extraArgs: string[] = [],
): Promise<Daemon & { dir: string; sockDir: string; pidFile: string; conf: string }> {
  const dir = await tempDir();
  const sockDir = join(dir, 'run');
  const pidFile = join(dir, 'virtproxyd.pid');
  const conf = writeConf(dir, sockDir, extraConf);
  const d = launch(['-f', conf, '-p', pidFile, ...extraArgs], sockDir);
  await listening(d, sockDir);
  return { ...d, dir, sockDir, pidFile, conf };
}

async function assertServes(d: Daemon): Promise<void> {
  const out = await virshOk(d.uri('qemu:///system'), 'hostname');
  assert.ok(out.trim().length > 0);
}

/**
 * A python3-libvirt client holding one connection open: prints "open" once connected, then
 * "closed <reason>" if libvirt reports the connection closed (close callback, event loop thread).
 */
const HOLDING_CLIENT = `
import sys, threading, time, libvirt
libvirt.registerErrorHandler(lambda ctx, err: None, None)
libvirt.virEventRegisterDefaultImpl()
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
conn = libvirt.open(sys.argv[1])
closed = threading.Event()
def on_close(c, reason, opaque):
    print("closed", reason, flush=True)
    closed.set()
conn.registerCloseCallback(on_close, None)
conn.getHostname()
print("open", flush=True)
closed.wait(float(sys.argv[2]))
print("done", flush=True)
`;

interface PyClient {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  waitLine(re: RegExp, ms: number): Promise<string>;
}

function holdConnection(uri: string, holdSeconds: number): PyClient {
  const child = spawn(PYTHON, ['-c', HOLDING_CLIENT, uri, String(holdSeconds)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
  });
  children.add(child);
  const lines: string[] = [];
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    const parts = out.split('\n');
    out = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    lines,
    exited,
    async waitLine(re, ms) {
      let found: string | undefined;
      await waitFor(`python client line ${re}`, ms, () => {
        found = lines.find((l) => re.test(l));
        if (found === undefined && child.exitCode !== null) {
          assert.fail(
            `python client exited (${child.exitCode}) without ${re}: ${JSON.stringify(lines)}\n${err}`,
          );
        }
        return found !== undefined;
      });
      return found ?? '';
    },
  };
}

function modeBits(path: string): number {
  return statSync(path).mode & 0o7777;
}

// ---------------------------------------------------------------------------------------------
// Socket files

test('socket files get exactly unix_sock_rw_perms and unix_sock_ro_perms', async () => {
  const d = await startDaemon({ unix_sock_rw_perms: '0770', unix_sock_ro_perms: '0755' });
  try {
    const rw = join(d.sockDir, 'libvirt-sock');
    const ro = join(d.sockDir, 'libvirt-sock-ro');
    assert.ok(statSync(rw).isSocket());
    assert.ok(statSync(ro).isSocket());
    assert.equal(modeBits(rw).toString(8), '770');
    assert.equal(modeBits(ro).toString(8), '755');
  } finally {
    d.child.kill('SIGTERM');
    await exitWithin(d, EXIT_TIMEOUT_MS);
  }
  // Other modes, to rule out a value that just happens to match a default or the umask.
  const e = await startDaemon({ unix_sock_rw_perms: '0600', unix_sock_ro_perms: '0666' });
  try {
    assert.equal(modeBits(join(e.sockDir, 'libvirt-sock')).toString(8), '600');
    assert.equal(modeBits(join(e.sockDir, 'libvirt-sock-ro')).toString(8), '666');
  } finally {
    e.child.kill('SIGTERM');
    await exitWithin(e, EXIT_TIMEOUT_MS);
  }
});

test('unix_sock_group sets the group of both sockets', async () => {
  const d = await startDaemon({ unix_sock_group: 'daemon' });
  try {
    const daemonGid = Number(readFileSync('/etc/group', 'utf8').match(/^daemon:[^:]*:(\d+):/m)?.[1]);
    assert.ok(
      Number.isInteger(daemonGid) && daemonGid !== process.getgid?.(),
      'test needs a group other than ours',
    );
    assert.equal(statSync(join(d.sockDir, 'libvirt-sock')).gid, daemonGid);
    assert.equal(statSync(join(d.sockDir, 'libvirt-sock-ro')).gid, daemonGid);
    await assertServes(d);
  } finally {
    d.child.kill('SIGTERM');
    await exitWithin(d, EXIT_TIMEOUT_MS);
  }
});

test('an unknown unix_sock_group stops startup with a message naming it, leaving no PID file or socket', async () => {
  const dir = await tempDir();
  const sockDir = join(dir, 'run');
  const pidFile = join(dir, 'virtproxyd.pid');
  const conf = writeConf(dir, sockDir, { unix_sock_group: 'no-such-group-vplife' });
  const d = launch(['-f', conf, '-p', pidFile], sockDir);
  const code = await exitWithin(d, START_TIMEOUT_MS);
  assert.notEqual(code, 0, d.stderr());
  assert.match(d.stderr(), /no-such-group-vplife/);
  assert.equal(existsSync(pidFile), false, 'PID file left behind');
  assert.equal(existsSync(join(sockDir, 'libvirt-sock')), false, 'socket left behind');
});

test('a stale socket file left by a dead process is replaced and served', async () => {
  const dir = await tempDir();
  const sockDir = join(dir, 'run');
  mkdirSync(sockDir);
  // bind() creates the node; the process then exits without unlinking it, as a crashed daemon does.
  for (const name of ['libvirt-sock', 'libvirt-sock-ro']) {
    const r = spawnSync(PYTHON, [
      '-c',
      'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); s.close()',
      join(sockDir, name),
    ]);
    assert.equal(r.status, 0, String(r.stderr));
    assert.ok(statSync(join(sockDir, name)).isSocket());
  }
  assert.equal(
    await canConnect(join(sockDir, 'libvirt-sock')),
    false,
    'the stale socket should refuse connections',
  );
  const pidFile = join(dir, 'virtproxyd.pid');
  const d = launch(['-f', writeConf(dir, sockDir), '-p', pidFile], sockDir);
  try {
    await listening(d, sockDir);
    await assertServes(d);
    assert.equal(await canConnect(join(sockDir, 'libvirt-sock-ro')), true);
    const ro = await virshOk(d.uri('qemu:///system', true), 'hostname');
    assert.ok(ro.trim().length > 0);
  } finally {
    d.child.kill('SIGTERM');
    assert.equal(await exitWithin(d, EXIT_TIMEOUT_MS), 0);
  }
});

test('a second instance on the same socket dir does not steal the live sockets', async () => {
  const first = await startDaemon();
  try {
    const rw = join(first.sockDir, 'libvirt-sock');
    const inode = statSync(rw).ino;
    const otherPid = join(first.dir, 'second.pid');
    const second = launch(['-f', first.conf, '-p', otherPid], first.sockDir);
    const code = await exitWithin(second, START_TIMEOUT_MS);
    assert.notEqual(code, 0, `second instance should refuse:\n${second.stderr()}`);
    assert.ok(second.stderr().includes(rw), `error should name the socket:\n${second.stderr()}`);
    assert.match(second.stderr(), /in use|already/i, second.stderr());
    assert.equal(existsSync(otherPid), false, 'the refused instance must remove its own PID file');
    // The first one's socket nodes are untouched and it keeps serving on both.
    assert.equal(statSync(rw).ino, inode, 'the rw socket node was replaced');
    assert.ok(existsSync(join(first.sockDir, 'libvirt-sock-ro')), 'the ro socket was removed');
    assert.equal(readFileSync(first.pidFile, 'utf8'), String(first.pid));
    await assertServes(first);
    await virshOk(first.uri('qemu:///system', true), 'hostname');
  } finally {
    first.child.kill('SIGTERM');
    await exitWithin(first, EXIT_TIMEOUT_MS);
  }
});

// ---------------------------------------------------------------------------------------------
// PID file

test('the PID file holds the pid without a newline while running and is removed at exit', async () => {
  const d = await startDaemon();
  assert.equal(readFileSync(d.pidFile, 'utf8'), String(d.pid));
  d.child.kill('SIGTERM');
  assert.equal(await exitWithin(d, EXIT_TIMEOUT_MS), 0);
  assert.equal(existsSync(d.pidFile), false);
});

test('a PID file left by a dead process is taken over', async () => {
  const dir = await tempDir();
  const sockDir = join(dir, 'run');
  const pidFile = join(dir, 'virtproxyd.pid');
  writeFileSync(pidFile, '999999\n');
  const d = launch(['-f', writeConf(dir, sockDir), '-p', pidFile], sockDir);
  try {
    await listening(d, sockDir);
    assert.equal(readFileSync(pidFile, 'utf8'), String(d.pid));
  } finally {
    d.child.kill('SIGTERM');
    await exitWithin(d, EXIT_TIMEOUT_MS);
  }
});

test('a second instance with the same PID file refuses to start and leaves the first alone', async () => {
  const first = await startDaemon();
  try {
    // Its own socket dir, so only the PID file can stop it.
    const otherSocks = join(first.dir, 'run2');
    const conf2 = writeConf(first.dir, otherSocks, {}, 'second.conf');
    const second = launch(['-f', conf2, '-p', first.pidFile], otherSocks);
    const code = await exitWithin(second, START_TIMEOUT_MS);
    assert.notEqual(code, 0, second.stderr());
    assert.match(second.stderr(), /Failed to acquire pid file '[^']*virtproxyd\.pid'/, second.stderr());
    assert.equal(existsSync(join(otherSocks, 'libvirt-sock')), false, 'the refused instance must not listen');
    // The first keeps its PID file (content and node) and serves.
    assert.equal(readFileSync(first.pidFile, 'utf8'), String(first.pid));
    assert.ok(alive(first.pid));
    await assertServes(first);
    // The lock is still held: a third attempt fails the same way.
    const third = launch(['-f', conf2, '-p', first.pidFile], otherSocks);
    assert.notEqual(await exitWithin(third, START_TIMEOUT_MS), 0);
    assert.match(third.stderr(), /Failed to acquire pid file/);
  } finally {
    first.child.kill('SIGTERM');
    assert.equal(await exitWithin(first, EXIT_TIMEOUT_MS), 0);
  }
  assert.equal(existsSync(first.pidFile), false);
});

test('-p "" writes no PID file', async () => {
  const dir = await tempDir();
  const sockDir = join(dir, 'run');
  const d = launch(['-f', writeConf(dir, sockDir), '-p', ''], sockDir);
  try {
    await listening(d, sockDir);
    // The default PID file (/run/virtproxyd.pid for root) may belong to someone else's daemon, so
    // look at what this process holds open rather than at that path.
    const fds = readdirSync(`/proc/${d.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${d.pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    assert.deepEqual(
      fds.filter((f) => f.endsWith('.pid')),
      [],
      'virtproxyd holds a PID file open',
    );
    assert.deepEqual(readdirSync(dir).sort(), ['run', 'virtproxyd.conf']);
    const defaultPid = '/run/virtproxyd.pid';
    if (existsSync(defaultPid)) assert.notEqual(readFileSync(defaultPid, 'utf8').trim(), String(d.pid));
    await assertServes(d);
  } finally {
    d.child.kill('SIGTERM');
    assert.equal(await exitWithin(d, EXIT_TIMEOUT_MS), 0);
  }
});

// ---------------------------------------------------------------------------------------------
// Signals

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal}: exit 0, clients see the close, sockets and PID file removed`, async () => {
    const d = await startDaemon();
    const client = holdConnection(d.uri('qemu:///system'), 30);
    try {
      await client.waitLine(/^open$/, 30_000);
      d.child.kill(signal);
      assert.equal(await exitWithin(d, EXIT_TIMEOUT_MS), 0, d.stderr());
      const line = await client.waitLine(/^closed /, 10_000);
      // VIR_CONNECT_CLOSE_REASON_ERROR 0, EOF 1, KEEPALIVE 2, CLIENT 3; the client did not close it.
      assert.match(line, /^closed [012]$/);
      assert.equal(existsSync(join(d.sockDir, 'libvirt-sock')), false, 'rw socket left behind');
      assert.equal(existsSync(join(d.sockDir, 'libvirt-sock-ro')), false, 'ro socket left behind');
      assert.equal(existsSync(d.pidFile), false, 'PID file left behind');
    } finally {
      client.child.kill('SIGKILL');
      d.child.kill('SIGKILL');
    }
  });
}

test('SIGHUP does not stop the daemon', async () => {
  const d = await startDaemon();
  try {
    d.child.kill('SIGHUP');
    await sleep(300);
    assert.ok(alive(d.pid), `virtproxyd died on SIGHUP:\n${d.stderr()}`);
    await assertServes(d);
    assert.equal(readFileSync(d.pidFile, 'utf8'), String(d.pid));
  } finally {
    d.child.kill('SIGTERM');
    assert.equal(await exitWithin(d, EXIT_TIMEOUT_MS), 0);
  }
});

// ---------------------------------------------------------------------------------------------
// -t: idle timeout

test('-t 2 exits about 2 s after the last client leaves, never while one is connected', async () => {
  const d = await startDaemon({}, ['-t', '2']);
  let exitedAt = 0;
  void d.exited.then(() => (exitedAt = Date.now()));
  const client = holdConnection(d.uri('qemu:///system'), 4);
  try {
    await client.waitLine(/^open$/, 30_000);
    // The client holds its connection 4 s, twice the timeout.
    await client.waitLine(/^done$/, 10_000);
    assert.ok(alive(d.pid) && exitedAt === 0, `virtproxyd exited with a client connected:\n${d.stderr()}`);
    await client.exited;
    const leftAt = Date.now();
    const code = await exitWithin(d, 10_000);
    assert.equal(code, 0, d.stderr());
    const idle = exitedAt - leftAt;
    assert.ok(idle >= 1500 && idle <= 6000, `exited ${idle} ms after the last client left`);
    assert.equal(existsSync(join(d.sockDir, 'libvirt-sock')), false, 'rw socket left behind');
    assert.equal(existsSync(d.pidFile), false, 'PID file left behind');
  } finally {
    client.child.kill('SIGKILL');
    d.child.kill('SIGKILL');
  }
});

// ---------------------------------------------------------------------------------------------
// -d: daemonizing

/** Runs the launcher to completion (it must exit by itself), collecting its output. */
function runLauncher(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      stderr += '\n[test: launcher still running after 20 s; killed]';
      child.kill('SIGKILL');
    }, 20_000);
    child.once('error', reject);
    // 'exit', not 'close': the launcher's own exit is what is measured, not its pipes.
    child.once('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr, pid: child.pid ?? -1 });
    });
  });
}

/** Pids of live processes whose command line contains `needle`. */
function processesWith(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle) && alive(Number(e)))
        out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

test('-d returns only once the daemon serves; the PID file names the detached daemon', async () => {
  const dir = await tempDir();
  const sockDir = join(dir, 'run');
  const pidFile = join(dir, 'virtproxyd.pid');
  const conf = writeConf(dir, sockDir);
  const r = await runLauncher(['-d', '-f', conf, '-p', pidFile]);
  // Connect at once: a launcher that returned before the listener was up fails here.
  const acceptedAtOnce = await canConnect(join(sockDir, 'libvirt-sock'));
  const daemons = processesWith(conf);
  for (const pid of daemons) detachedPids.add(pid);
  assert.equal(r.code, 0, `launcher failed:\n${r.stderr}`);
  assert.ok(acceptedAtOnce, 'the socket did not accept right after the launcher returned');
  assert.ok(existsSync(pidFile), 'no PID file');
  const text = readFileSync(pidFile, 'utf8');
  assert.match(text, /^\d+$/);
  const pid = Number(text);
  detachedPids.add(pid);
  assert.notEqual(pid, r.pid, 'the PID file must name the daemon, not the launcher');
  assert.deepEqual(daemons, [pid], 'exactly one daemon process, the one in the PID file');
  assert.ok(alive(pid));
  // Detached: its own session, not the test's.
  const sid = (p: number): string =>
    readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ')[3] ?? '';
  assert.notEqual(sid(pid), sid(process.pid), 'the daemon did not leave the launcher session');
  assert.equal(r.stdout, '');

  const out = await virshOk(`qemu+unix:///system?socket=${join(sockDir, 'libvirt-sock')}`, 'hostname');
  assert.ok(out.trim().length > 0);

  process.kill(pid, 'SIGTERM');
  await waitFor('the daemon to exit after SIGTERM', EXIT_TIMEOUT_MS, () => !alive(pid));
  detachedPids.delete(pid);
  assert.equal(existsSync(pidFile), false, 'PID file left behind');
  assert.equal(existsSync(join(sockDir, 'libvirt-sock')), false, 'socket left behind');
});

test('-d with an unusable socket dir: the launcher exits 1 with the reason', async () => {
  const dir = await tempDir();
  // A regular file where a directory should be: mkdir below it fails (ENOTDIR), even for root.
  const blocker = join(dir, 'not-a-dir');
  closeSync(openSync(blocker, 'w'));
  const sockDir = join(blocker, 'run');
  const pidFile = join(dir, 'virtproxyd.pid');
  const conf = writeConf(dir, sockDir);
  const r = await runLauncher(['-d', '-f', conf, '-p', pidFile]);
  assert.equal(r.code, 1, `launcher:\n${r.stderr}`);
  assert.match(r.stderr, /^virtproxyd: error: /m, r.stderr);
  // The directory named as the one that could not be created must be the socket dir, not the
  // run dir that was created fine.
  assert.ok(
    r.stderr.includes(`Unable to create socket directory ${sockDir}:`),
    `error should name the socket dir:\n${r.stderr}`,
  );
  assert.match(r.stderr, /not a directory/i, r.stderr);
  assert.equal(existsSync(pidFile), false, 'PID file left behind');
  // The detached child gave up too (allow it a moment to be reaped).
  await waitFor('the failed daemon to go away', 5000, () => processesWith(conf).length === 0);
});

test('-d on the paths of a running daemon: the launcher exits 1 and the first keeps serving', async () => {
  const first = await startDaemon();
  try {
    const r = await runLauncher(['-d', '-f', first.conf, '-p', first.pidFile]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Failed to acquire pid file/, r.stderr);
    assert.equal(readFileSync(first.pidFile, 'utf8'), String(first.pid));
    await waitFor('the refused daemon to go away', 5000, () => processesWith(first.conf).length === 1);
    await assertServes(first);
  } finally {
    first.child.kill('SIGTERM');
    await exitWithin(first, EXIT_TIMEOUT_MS);
  }
});
