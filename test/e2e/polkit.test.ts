// End-to-end: polkit authentication (auth_unix_rw/auth_unix_ro = "polkit", NOTES §7.2) with real
// parts: a private dbus-daemon configured as a system bus, Debian's polkitd on it, libvirt's own
// action file (org.libvirt.unix.policy from libvirt-daemon-system) and a rules file that grants one
// test user org.libvirt.unix.manage and denies another. Real clients (virsh) run as those users
// against the proxy, which asks polkit through pkcheck on the same private bus.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startProxy, virsh, type Proxy } from './harness.js';
import { createUser, removeUser, runAs, spawnAs, usersUnavailable, type TestUser } from './test-users.js';

const GRANTED = 'vpe2e-pkyes';
const DENIED = 'vpe2e-pkno';
const RULES_FILE = '/etc/polkit-1/rules.d/45-virtproxyd-e2e.rules';
const ACTION_FILE = '/usr/share/polkit-1/actions/org.libvirt.unix.policy';
/** Debian 12 keeps polkitd in /usr/lib/polkit-1; later releases in /usr/libexec. */
const POLKITD = ['/usr/lib/polkit-1/polkitd', '/usr/libexec/polkitd'].find((p) => existsSync(p));
const VIRSH = '/usr/bin/virsh';

const skip = usersUnavailable();
let dir: string;
let busAddress: string;
let proxy: Proxy;
let granted: TestUser;
let denied: TestUser;
const daemons: ChildProcess[] = [];
let polkitd: ChildProcess | undefined;
const savedBus = process.env['DBUS_SYSTEM_BUS_ADDRESS'];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A bus that behaves like the system bus for polkit, but lets anyone own and call anything. */
function busConfig(socket: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`;
}

const RULES = `// Written by virtproxyd-ts test/e2e/polkit.test.ts; removed when the test ends.
polkit.addRule(function (action, subject) {
  if (action.id == "org.libvirt.unix.manage") {
    if (subject.user == "${GRANTED}") return polkit.Result.YES;
    if (subject.user == "${DENIED}") return polkit.Result.NO;
  }
});
`;

function spawnDaemon(file: string, args: string[]): ChildProcess {
  const child = spawn(file, args, {
    stdio: 'ignore',
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busAddress },
  });
  daemons.push(child);
  return child;
}

/** Waits until polkit answers on the private bus (root's own process may always monitor). */
async function waitForPolkit(): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = spawnSync(
      'pkcheck',
      ['--action-id', 'org.libvirt.unix.monitor', '--process', String(process.pid)],
      { encoding: 'utf8', env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busAddress } },
    );
    if (r.status === 0) return;
    if (Date.now() > deadline) throw new Error(`polkitd did not answer on the private bus: ${r.stderr}`);
    await sleep(100);
  }
}

/**
 * A raw client run as `user`: AUTH_LIST, AUTH_POLKIT, then CONNECT_OPEN and a plain call that must
 * be refused, then AUTH_LIST again. Prints the status and error text of every reply as JSON.
 */
const RAW_CLIENT = `
const net = require('node:net');
const sock = net.connect(process.argv[1]);
let buf = Buffer.alloc(0);
const waiters = [];
sock.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 4 && buf.length >= buf.readUInt32BE(0)) {
    const n = buf.readUInt32BE(0);
    const f = buf.subarray(0, n);
    buf = buf.subarray(n);
    if (f.readUInt32BE(4) === 0x6b656570) continue;
    waiters.shift()(Buffer.from(f));
  }
});
function call(proc, serial, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(28 + payload.length, 0);
  h.writeUInt32BE(0x20008086, 4);
  h.writeUInt32BE(1, 8);
  h.writeUInt32BE(proc, 12);
  h.writeUInt32BE(0, 16);
  h.writeUInt32BE(serial, 20);
  h.writeUInt32BE(0, 24);
  sock.write(Buffer.concat([h, payload]));
  return new Promise((resolve) => waiters.push(resolve));
}
function describe(f) {
  const status = f.readUInt32BE(24);
  if (status === 0) return { status, body: f.subarray(28).toString('hex') };
  const len = f.readUInt32BE(40);
  return { status, code: f.readInt32BE(28), domain: f.readInt32BE(32), message: f.subarray(44, 44 + len).toString() };
}
(async () => {
  const uri = Buffer.from('qemu:///system');
  const open = Buffer.alloc(12 + Math.ceil(uri.length / 4) * 4);
  open.writeUInt32BE(1, 0);
  open.writeUInt32BE(uri.length, 4);
  uri.copy(open, 8);
  const out = [];
  out.push(describe(await call(66, 1)));
  out.push(describe(await call(70, 2)));
  out.push(describe(await call(1, 3, open)));
  out.push(describe(await call(59, 4)));
  out.push(describe(await call(66, 5)));
  process.stdout.write(JSON.stringify(out));
  sock.destroy();
})();
`;

describe('polkit through the proxy, with a real polkitd', { skip: skip ?? false }, () => {
  before(async () => {
    for (const need of ['dbus-daemon', 'pkcheck']) {
      assert.equal(spawnSync('sh', ['-c', `command -v ${need}`]).status, 0, `${need} is not installed`);
    }
    assert.ok(POLKITD !== undefined, 'polkitd is not installed (Debian package polkitd)');
    assert.ok(existsSync(ACTION_FILE), `${ACTION_FILE} missing (libvirt-daemon-system)`);
    dir = mkdtempSync(join(tmpdir(), 'vpe2e-polkit-'));
    chmodSync(dir, 0o755);
    const busSocket = join(dir, 'system_bus_socket');
    busAddress = `unix:path=${busSocket}`;
    writeFileSync(join(dir, 'bus.conf'), busConfig(busSocket));
    writeFileSync(RULES_FILE, RULES, { mode: 0o644 });
    spawnDaemon('dbus-daemon', ['--nofork', '--nopidfile', `--config-file=${join(dir, 'bus.conf')}`]);
    for (let i = 0; i < 100 && !existsSync(busSocket); i++) await sleep(50);
    assert.ok(existsSync(busSocket), 'the private bus did not come up');
    // polkitd starts as root and switches to its own user; --no-debug keeps it quiet.
    polkitd = spawnDaemon(POLKITD as string, ['--no-debug']);
    await waitForPolkit();
    // The proxy (and the pkcheck it runs) must use the private bus too.
    process.env['DBUS_SYSTEM_BUS_ADDRESS'] = busAddress;
    proxy = await startProxy({
      conf: {
        auth_unix_rw: 'polkit',
        auth_unix_ro: 'polkit',
        unix_sock_rw_perms: '0777',
        unix_sock_ro_perms: '0777',
      },
    });
    chmodSync(proxy.dir, 0o755);
    chmodSync(join(proxy.dir, 'run'), 0o755);
    granted = createUser(GRANTED, dir);
    denied = createUser(DENIED, dir);
  });

  after(async () => {
    if (savedBus === undefined) delete process.env['DBUS_SYSTEM_BUS_ADDRESS'];
    else process.env['DBUS_SYSTEM_BUS_ADDRESS'] = savedBus;
    rmSync(RULES_FILE, { force: true });
    for (const d of daemons) d.kill('SIGTERM');
    await proxy?.stop();
    for (const u of [GRANTED, DENIED]) {
      const err = removeUser(u);
      if (err !== null && !/does not exist/.test(err)) console.error(err);
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('lets the user the rules grant org.libvirt.unix.manage use the read-write socket', async () => {
    const r = await runAs(granted, VIRSH, ['-q', '-c', proxy.uri('qemu:///system'), 'hostname']);
    assert.equal(r.code, 0, `virsh as ${GRANTED} failed:\n${r.stderr}`);
    // A call the backend answered, so the connection got past authentication and open.
    assert.equal(r.stdout.trim(), hostname());
  });

  it('refuses the user the rules deny, with libvirt\'s "access denied by policy"', async () => {
    const r = await runAs(denied, VIRSH, ['-q', '-c', proxy.uri('qemu:///system'), 'uri']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /authentication failed: access denied by policy/);
  });

  it('a refused client stays unauthenticated: everything but the auth calls says "authentication required"', async () => {
    const child = spawnAs(denied, process.execPath, ['-e', RAW_CLIENT, proxy.rwSock]);
    child.stdin?.end();
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0, `raw client failed:\n${stderr}`);
    const [list, polkit, open, call, listAgain] = JSON.parse(stdout) as Array<Record<string, unknown>>;
    // AUTH_LIST → [REMOTE_AUTH_POLKIT]: array of 1, value 2.
    assert.deepEqual(list, { status: 0, body: '0000000100000002' });
    assert.deepEqual(polkit, {
      status: 1,
      code: 45,
      domain: 60,
      message: 'authentication failed: access denied by policy',
    });
    const required = { status: 1, code: 39, domain: 7, message: 'authentication required' };
    assert.deepEqual(open, required);
    assert.deepEqual(call, required);
    assert.deepEqual(listAgain, { status: 0, body: '0000000100000002' });
  });

  it('asks for org.libvirt.unix.monitor on the read-only socket, which the shipped policy allows', async () => {
    const r = await runAs(denied, VIRSH, ['-q', '-c', proxy.uri('qemu:///system', true), 'hostname']);
    assert.equal(r.code, 0, `read-only virsh as ${DENIED} failed:\n${r.stderr}`);
    assert.equal(r.stdout.trim(), hostname());
  });

  it('lets root in without asking polkit (AUTH_LIST answers [NONE])', async () => {
    const r = await virsh(proxy.uri('qemu:///system'), 'uri');
    assert.equal(r.code, 0, r.stderr);
  });

  it('reports a polkit that is gone as libvirt does: "error from service: ..."', async () => {
    polkitd?.kill('SIGTERM');
    await new Promise((r) => (polkitd?.exitCode !== null ? r(null) : polkitd.once('exit', r)));
    const r = await runAs(granted, VIRSH, ['-q', '-c', proxy.uri('qemu:///system'), 'uri']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /error from service: GDBus\.Error:org\.freedesktop\.DBus\.Error\.\w+/);
  });
});
