// SASL end to end: real virsh logs in through the proxy with users made by saslpasswd2 in a test
// sasldb (Cyrus service "libvirt", mech list from a test libvirt.conf found via SASL_CONF_PATH).
// Over plain TCP the mechanism is DIGEST-MD5 with its confidentiality layer (SSF 128), so every
// later byte is sasl_encode'd; over TLS, SCRAM without a layer. Wrong passwords and users outside
// sasl_allowed_username_list are refused with libvirt's error.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { python, startProxy, virsh, virshOk, type Proxy } from './harness.js';
import { freePort, waitForPort } from './net-util.js';
import { TestPki } from './pki.js';

let proxy: Proxy;
let tcpPort: number;
let tlsPort: number;
let dir: string;
let pkipath: string;

function addUser(db: string, user: string, password: string): void {
  const r = spawnSync('saslpasswd2', ['-f', db, '-a', 'libvirt', '-p', '-c', user], { input: password });
  assert.equal(r.status, 0, `saslpasswd2 ${user}: ${String(r.stderr)}`);
}

/** A libvirt client auth file answering for 127.0.0.1 with these credentials. */
function authFile(name: string, user: string, password: string): string {
  const path = join(dir, `${name}.auth`);
  writeFileSync(
    path,
    `[credentials-t]\nauthname=${user}\npassword=${password}\n\n[auth-libvirt-127.0.0.1]\ncredentials=t\n`,
    { mode: 0o600 },
  );
  return path;
}

function tcpUri(auth: string, driver = 'qemu', path = 'system'): string {
  return `${driver}+tcp://127.0.0.1:${tcpPort}/${path}?authfile=${auth}`;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vpsasl-'));
  const db = join(dir, 'passwd.db');
  addUser(db, 'alice', 'alice-secret');
  addUser(db, 'mallory', 'mallory-secret');
  writeFileSync(join(dir, 'libvirt.conf'), `mech_list: digest-md5 scram-sha-256\nsasldb_path: ${db}\n`);
  // Cyrus reads <SASL_CONF_PATH>/libvirt.conf; the proxy inherits this environment.
  process.env['SASL_CONF_PATH'] = dir;
  const pki = new TestPki(join(dir, 'pki'));
  const ca = pki.ca('ca');
  const server = pki.server(ca);
  pkipath = pki.clientDir('client', [ca], pki.client(ca, 'client', 'sasl-client'));
  tcpPort = await freePort();
  tlsPort = await freePort();
  proxy = await startProxy({
    conf: {
      listen_tcp: 1,
      listen_tls: 1,
      listen_addr: '127.0.0.1',
      tcp_port: String(tcpPort),
      tls_port: String(tlsPort),
      auth_tcp: 'sasl',
      auth_tls: 'sasl',
      ca_file: ca.cert,
      cert_file: server.cert,
      key_file: server.key,
      sasl_allowed_username_list: ['alice', 'bob*'],
      log_level: 2,
    },
  });
  await waitForPort(tcpPort);
  await waitForPort(tlsPort);
});

test('a sasldb user logs in over qemu+tcp with DIGEST-MD5 and a security layer', async () => {
  const out = await virshOk(tcpUri(authFile('alice', 'alice', 'alice-secret')), 'version');
  assert.match(out, /^Running hypervisor: QEMU \d+\.\d+\.\d+$/m);
  assert.match(proxy.stderr(), /SASL authentication as 'alice' succeeded \(ssf (\d+)\)/);
  const ssf = Number(/SASL authentication as 'alice' succeeded \(ssf (\d+)\)/.exec(proxy.stderr())?.[1]);
  assert.ok(ssf >= 56, `negotiated SSF ${ssf} should allow plain TCP`);
});

test('frames larger than the layer buffer cross the SASL layer intact, both ways', async () => {
  // A 200 KiB domain description goes out in one call and comes back in one reply: each is split
  // into several sasl_encode blocks of at most the negotiated 64 KiB.
  const uri = `test+tcp://127.0.0.1:${tcpPort}/default`;
  const script = `
import libvirt, sys
def creds(cred, _):
    for c in cred:
        c[4] = 'alice' if c[0] == libvirt.VIR_CRED_AUTHNAME else 'alice-secret'
    return 0
c = libvirt.openAuth(sys.argv[1], [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], creds, None], 0)
d = c.lookupByName('test')
desc = ''.join(chr(97 + i % 26) for i in range(200 * 1024))
d.setMetadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, desc, None, None, libvirt.VIR_DOMAIN_AFFECT_LIVE)
got = d.metadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, None, libvirt.VIR_DOMAIN_AFFECT_LIVE)
print('same' if got == desc else 'different', len(got))
`;
  const r = await python(script, [uri]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `same ${200 * 1024}`);
});

test("a wrong password is refused with libvirt's authentication error", async () => {
  const r = await virsh(tcpUri(authFile('wrong', 'alice', 'not-the-password')), 'hostname');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /authentication failed: authentication failed/);
});

test('a valid user outside sasl_allowed_username_list is refused', async () => {
  const r = await virsh(tcpUri(authFile('mallory', 'mallory', 'mallory-secret')), 'hostname');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /authentication failed: authentication failed/);
  assert.match(proxy.stderr(), /'mallory' is not on the list of allowed clients/);
});

test('SASL over TLS: no security layer (TLS protects the data), user identified', async () => {
  const auth = authFile('alice-tls', 'alice', 'alice-secret');
  const out = await virshOk(
    `qemu+tls://127.0.0.1:${tlsPort}/system?pkipath=${pkipath}&authfile=${auth}`,
    'hostname',
  );
  assert.ok(out.trim().length > 0);
  assert.match(proxy.stderr(), /SASL authentication as 'alice' succeeded \(ssf 0\)/);
});

test('calls before authentication are refused, and the client may start over after a failure', async () => {
  // Same connection: a failed login, then a good one (python keeps one virConnect per attempt,
  // so this checks the daemon stays usable rather than one socket's state).
  await virsh(tcpUri(authFile('wrong2', 'alice', 'nope')), 'hostname');
  await virshOk(tcpUri(authFile('alice3', 'alice', 'alice-secret')), 'hostname');
});

test('max_anonymous_clients: a client still authenticating holds the next one back until it leaves', async () => {
  const port = await freePort();
  const p = await startProxy({
    conf: {
      listen_tcp: 1,
      listen_addr: '127.0.0.1',
      tcp_port: String(port),
      auth_tcp: 'sasl',
      max_anonymous_clients: 1,
    },
  });
  await waitForPort(port);
  // An unauthenticated client: connected, never logs in.
  const idle = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
  await new Promise((r) => setTimeout(r, 200));
  let finished = false;
  const run = virsh(
    `qemu+tcp://127.0.0.1:${port}/system?authfile=${authFile('anon', 'alice', 'alice-secret')}`,
    'hostname',
  ).then((r) => {
    finished = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(finished, false, 'the second client must wait while the first is unauthenticated');
  idle.destroy();
  const r = await run;
  assert.equal(r.code, 0, r.stderr);
  await p.stop();
});
