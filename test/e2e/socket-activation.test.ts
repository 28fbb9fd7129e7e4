// Socket activation end to end with Debian's systemd-socket-activate: it binds the sockets,
// names them (--fdname, i.e. LISTEN_FDNAMES) and execs the proxy on the first connection. The
// proxy must serve every passed socket by its unit name, ignore the config's listen_* keys, tell
// $NOTIFY_SOCKET READY=1 and STOPPING=1, refuse to run with an fd nobody claims, and fall back to
// its own sockets when the names are missing.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { native, nativeTestHelpers } from '../../src/native/native.js';
import { backendDir, repoRoot, virsh, virshOk } from './harness.js';
import { canConnectTcp, freePort } from './net-util.js';
import { TestPki } from './pki.js';

const children: ChildProcess[] = [];
/** Successors started by a restart: not our children, so killed by pid. */
const successors: number[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of successors) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

interface Activated {
  child: ChildProcess;
  dir: string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** Writes a config into a fresh dir and runs the proxy under systemd-socket-activate. */
async function activate(
  listen: string[],
  fdnames: string | null,
  conf: string,
  env: Record<string, string> = {},
): Promise<Activated> {
  const dir = await mkdtemp(join(tmpdir(), 'vpact-'));
  mkdirSync(join(dir, 'run'));
  const bdir = backendDir();
  writeFileSync(
    join(dir, 'virtproxyd.conf'),
    `unix_sock_dir = "${dir}/run"\nbackend_sock_dir = "${bdir}"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\nlog_level = 2\n${conf}`,
  );
  const args = [...listen.flatMap((l) => ['-l', l.replace('DIR', dir)])];
  if (fdnames !== null) args.push(`--fdname=${fdnames}`);
  for (const [k, v] of Object.entries(env)) args.push('-E', `${k}=${v.replace('DIR', dir)}`);
  args.push(
    process.execPath,
    join(repoRoot, 'bin', 'virtproxyd'),
    '-f',
    join(dir, 'virtproxyd.conf'),
    '-p',
    join(dir, 'pid'),
  );
  const child = spawn('systemd-socket-activate', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // systemd-socket-activate binds before it prints its "Listening on" lines.
  const deadline = Date.now() + 5000;
  while ((err.match(/Listening on/g) ?? []).length < listen.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, dir, stderr: () => err, exited };
}

function stop(a: Activated, sig: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  a.child.kill(sig);
  return a.exited;
}

async function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('unix, tcp and tls services come from named fds; listen_* in the config is ignored; sd_notify', async () => {
  const pki = new TestPki(await mkdtemp(join(tmpdir(), 'vpact-pki-')));
  const ca = pki.ca('ca');
  const server = pki.server(ca);
  const pkipath = pki.clientDir('client', [ca], pki.client(ca, 'client', 'activated'));
  const [tcpPort, tlsPort, ignoredPort] = [await freePort(), await freePort(), await freePort()];
  const notifyDir = await mkdtemp(join(tmpdir(), 'vpnotify-'));
  const notifyPath = join(notifyDir, 'notify');
  const h = nativeTestHelpers();
  const notifyFd = h.testBindDgram(notifyPath);
  const a = await activate(
    ['DIR/run/libvirt-sock', `127.0.0.1:${tcpPort}`, `127.0.0.1:${tlsPort}`],
    'virtproxyd.socket:virtproxyd-tcp.socket:virtproxyd-tls.socket',
    [
      'auth_tcp = "none"',
      'listen_tcp = 1',
      'listen_addr = "127.0.0.1"',
      `tcp_port = "${ignoredPort}"`,
      `ca_file = "${ca.cert}"`,
      `cert_file = "${server.cert}"`,
      `key_file = "${server.key}"`,
      '',
    ].join('\n'),
    { NOTIFY_SOCKET: notifyPath },
  );
  // The first connection makes systemd-socket-activate exec the proxy, which then accepts it.
  const sock = join(a.dir, 'run', 'libvirt-sock');
  assert.match(await virshOk(`qemu+unix:///system?socket=${sock}`, 'version'), /Running hypervisor: QEMU/);
  assert.ok((await virshOk(`qemu+tcp://127.0.0.1:${tcpPort}/system`, 'hostname')).trim().length > 0);
  assert.ok(
    (await virshOk(`qemu+tls://127.0.0.1:${tlsPort}/system?pkipath=${pkipath}`, 'hostname')).trim().length >
      0,
  );
  assert.equal(await canConnectTcp(ignoredPort), false, 'listen_tcp must be ignored under socket activation');
  const messages: string[] = [];
  const drain = (): void => {
    for (let m = h.testRecvDgram(notifyFd); m !== null; m = h.testRecvDgram(notifyFd)) messages.push(m);
  };
  await waitFor(() => (drain(), messages.includes('READY=1')));
  assert.match(a.stderr(), /socket activation: 3 listening sockets/);
  assert.equal(await stop(a), 0);
  drain();
  assert.ok(messages.includes('STOPPING=1'), `notifications: ${JSON.stringify(messages)}`);
  // systemd's sockets are not ours to remove.
  assert.ok(existsSync(sock), 'the activated unix socket must stay on disk');
  native().closeFd(notifyFd);
});

test('an fd whose name no service claims is fatal (exit 6), as in libvirt', async () => {
  const a = await activate(
    ['DIR/run/libvirt-sock', 'DIR/other'],
    'virtproxyd.socket:virtproxyd-bogus.socket',
    '',
  );
  // Trigger the exec.
  await virsh(`qemu+unix:///system?socket=${join(a.dir, 'run', 'libvirt-sock')}`, 'hostname');
  assert.equal(await a.exited, 6);
  assert.match(a.stderr(), /Some activation file descriptors are unclaimed: virtproxyd-bogus.socket/);
});

test('without LISTEN_FDNAMES activation is ignored and the configured sockets are created', async () => {
  const a = await activate(['DIR/trigger'], null, '');
  // Connecting to the trigger socket starts the proxy; nobody will accept that one.
  const trigger = connect(join(a.dir, 'trigger'));
  trigger.on('error', () => undefined);
  const sock = join(a.dir, 'run', 'libvirt-sock');
  await waitFor(() => existsSync(sock), 10_000);
  await virshOk(`qemu+unix:///system?socket=${sock}`, 'hostname');
  assert.match(a.stderr(), /Missing LISTEN_FDNAMES/);
  trigger.destroy();
  assert.equal(await stop(a), 0);
  assert.equal(existsSync(sock), false, 'sockets the daemon made itself are removed on exit');
});

test("SIGUSR2 under activation hands systemd's sockets over by fd; the socket file stays systemd's", async () => {
  const tcpPort = await freePort();
  const a = await activate(
    ['DIR/run/libvirt-sock', `127.0.0.1:${tcpPort}`],
    'virtproxyd.socket:virtproxyd-tcp.socket',
    'auth_tcp = "none"\n',
  );
  const sock = join(a.dir, 'run', 'libvirt-sock');
  await virshOk(`qemu+unix:///system?socket=${sock}`, 'hostname');
  const oldPid = a.child.pid as number;
  const pidFile = join(a.dir, 'pid');
  process.kill(oldPid, 'SIGUSR2');
  let newPid = oldPid;
  await waitFor(() => {
    const t = existsSync(pidFile) ? readFileSync(pidFile, 'utf8') : '';
    newPid = /^\d+$/.test(t) ? Number(t) : oldPid;
    return newPid !== oldPid;
  }, 10_000);
  successors.push(newPid);
  assert.equal(await a.exited, 0, 'the old process leaves once it has no clients');
  await virshOk(`qemu+unix:///system?socket=${sock}`, 'hostname');
  await virshOk(`qemu+tcp://127.0.0.1:${tcpPort}/system`, 'hostname');
  assert.ok(existsSync(sock));
  process.kill(newPid, 'SIGTERM');
  await waitFor(
    () =>
      !existsSync(`/proc/${newPid}`) ||
      /Z/.test(readFileSync(`/proc/${newPid}/stat`, 'utf8').split(') ')[1]?.[0] ?? ''),
    10_000,
  );
  assert.ok(existsSync(sock), 'activated sockets are left for systemd');
});
