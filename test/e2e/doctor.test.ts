// End-to-end: `virtproxyd --doctor` on a healthy setup (exit 0) and on broken ones (exit 1), each
// time naming the problem, what a client would see, and the fix.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { backendDir, repoRoot, startProxy, type Proxy, type RunResult } from './harness.js';
import { TestPki } from './pki.js';

const scratch = mkdtempSync(join(tmpdir(), 'vpdoc-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function doctor(confFile: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'virtproxyd'), '-f', confFile, '--doctor'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

const confOf = (p: Proxy): string => join(p.dir, 'virtproxyd.conf');

test('a healthy proxy: exit 0, every part checked', async () => {
  const p = await startProxy();
  try {
    const r = await doctor(confOf(p));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^\[ ok \] config: .* parses$/m);
    assert.match(
      r.stdout,
      new RegExp(`^\\[ ok \\] socket rw: ${p.rwSock} accepts connections \\(mode 0777`, 'm'),
    );
    assert.match(r.stdout, /^\[ ok \] end-to-end: a client opening the default URI gets qemu:\/\/\/system$/m);
    assert.match(r.stdout, /^\[ ok \] driver qemu: .*virtqemud-sock and .*virtqemud-sock-ro answer$/m);
    assert.match(r.stdout, /^\[ ok \] admin: .* answers; \d+ of 5000 clients connected$/m);
    assert.match(r.stdout, /^healthy/m);
    assert.doesNotMatch(r.stdout, /FAIL/);
  } finally {
    await p.stop();
  }
});

test('the proxy not running: its sockets are missing, and a client would be told so', async () => {
  const p = await startProxy();
  await p.stop();
  const r = await doctor(confOf(p));
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^\\[FAIL\\] socket rw: ${p.rwSock} does not exist`, 'm'));
  assert.match(
    r.stdout,
    new RegExp(`a client sees: Failed to connect socket to '${p.rwSock}': No such file or directory`),
  );
  assert.match(r.stdout, /fix: start it: systemctl start virtproxyd\.socket/);
  assert.match(r.stdout, /^unhealthy: \d+ problems?/m);
});

test('a killed proxy leaves stale sockets that refuse connections', async () => {
  const p = await startProxy();
  await p.stop('SIGKILL');
  const r = await doctor(confOf(p));
  assert.equal(r.code, 1);
  assert.match(
    r.stdout,
    /^\[FAIL\] socket rw: .* is a socket nobody serves \(Connection refused\): a stale leftover$/m,
  );
  assert.match(r.stdout, /a client sees: Failed to connect socket to '.*libvirt-sock': Connection refused/);
});

test('no driver daemons behind the proxy: the open a client would try fails, with its error', async () => {
  const empty = join(scratch, 'no-daemons');
  rmSync(empty, { recursive: true, force: true });
  mkdirSync(empty);
  const p = await startProxy({ conf: { backend_sock_dir: empty, backend_sockets: null } });
  try {
    const r = await doctor(confOf(p));
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^\[FAIL\] drivers: no hypervisor daemon answers/m);
    assert.match(r.stdout, /^\[FAIL\] end-to-end: opening the default URI through the proxy fails$/m);
    assert.match(r.stdout, /a client sees: no connection driver available for <null>/);
    assert.match(r.stdout, /^\[info\] drivers: not installed or not started \(no socket\): qemu, lxc/m);
  } finally {
    await p.stop();
  }
});

test('a configuration error is named with its line', async () => {
  const conf = join(scratch, 'bad.conf');
  writeFileSync(conf, 'max_clients = 10\nlog_outputs = "9:stderr"\nauth_unix_rw = \n');
  const r = await doctor(conf);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^\[FAIL\] config: cannot load .*bad\.conf: .*bad\.conf:3: expecting a value/m);
  writeFileSync(conf, `log_outputs = "9:stderr"\nbackend_sock_dir = "${backendDir()}"\n`);
  const r2 = await doctor(conf);
  assert.equal(r2.code, 1);
  assert.match(r2.stdout, /^\[FAIL\] logging: Invalid log priority '9' for log output '9:stderr'$/m);
});

test('TLS: near expiry is a warning, a key that does not match the certificate a failure', async () => {
  const pki = new TestPki(join(scratch, 'pki'));
  const ca = pki.ca('ca');
  const server = pki.server(ca);
  const other = pki.server(ca, 'other');
  const conf = (key: string): string => {
    const f = join(scratch, 'tls.conf');
    writeFileSync(
      f,
      [
        'listen_tls = 1',
        `ca_file = "${ca.cert}"`,
        `cert_file = "${server.cert}"`,
        `key_file = "${key}"`,
        `backend_sock_dir = "${backendDir()}"`,
        `unix_sock_dir = "${join(scratch, 'nowhere')}"`,
      ].join('\n') + '\n',
    );
    return f;
  };
  let r = await doctor(conf(server.key));
  // The daemon is not running here, so the socket lines fail; the TLS lines are what we look at.
  assert.match(
    r.stdout,
    /^\[WARN\] tls: server certificate .*server-cert\.pem is valid until .* \([01] days\)$/m,
  );
  assert.match(r.stdout, /fix: renew it soon, then virt-admin server-update-tls virtproxyd/);
  assert.doesNotMatch(r.stdout, /^\[FAIL\] tls/m);
  r = await doctor(conf(other.key));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^\[FAIL\] tls: .*other-key\.pem is not the key of .*server-cert\.pem$/m);
});
