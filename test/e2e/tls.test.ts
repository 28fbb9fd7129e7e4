// TLS transport end to end: real virsh reaches the real backend through the proxy over
// qemu+tls://127.0.0.1/system with certificates made at test time, and the proxy refuses a
// client without a certificate, one from another CA, one whose DN is not allowed, a revoked one.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { directUri, startProxy, virsh, virshOk, type Proxy } from './harness.js';
import { freePort, waitForPort } from './net-util.js';
import { TestPki, type Issued } from './pki.js';

let proxy: Proxy;
let port: number;
let pki: TestPki;
let ca: Issued;
let otherCa: Issued;
let good: Issued;
let foreign: Issued;
const dirs: Record<string, string> = {};

function tlsUri(pkipath: string): string {
  return `qemu+tls://127.0.0.1:${port}/system?pkipath=${pkipath}`;
}

before(async () => {
  pki = new TestPki(await mkdtemp(join(tmpdir(), 'vptls-')));
  ca = pki.ca('ca');
  otherCa = pki.ca('other');
  const server = pki.server(ca);
  good = pki.client(ca, 'good', 'client-good');
  const stranger = pki.client(ca, 'stranger', 'client-good', 'Elsewhere Ltd');
  foreign = pki.client(otherCa, 'foreign', 'client-good');
  const revoked = pki.client(ca, 'revoked', 'client-revoked');
  const crl = pki.crl(ca, 'ca', [revoked]);
  dirs['good'] = pki.clientDir('c-good', [ca], good);
  dirs['none'] = pki.clientDir('c-none', [ca], null);
  dirs['stranger'] = pki.clientDir('c-stranger', [ca], stranger);
  // The client's CA bundle trusts both CAs, so its own sanity check passes; the proxy trusts one.
  dirs['foreign'] = pki.clientDir('c-foreign', [ca, otherCa], foreign);
  dirs['revoked'] = pki.clientDir('c-revoked', [ca], revoked);
  port = await freePort();
  proxy = await startProxy({
    conf: {
      listen_tls: 1,
      listen_addr: '127.0.0.1',
      tls_port: String(port),
      ca_file: ca.cert,
      cert_file: server.cert,
      key_file: server.key,
      crl_file: crl,
      tls_allowed_dn_list: ['C=GB,O=Test Org,CN=*'],
    },
  });
  await waitForPort(port);
});

test('virsh over qemu+tls reaches the QEMU driver through the proxy', async () => {
  const out = await virshOk(tlsUri(dirs['good'] as string), 'version');
  assert.match(out, /^Running hypervisor: QEMU \d+\.\d+\.\d+$/m);
  const viaTls = (await virshOk(tlsUri(dirs['good'] as string), 'hostname')).trim();
  const direct = (await virshOk(directUri('qemu:///system'), 'hostname')).trim();
  assert.equal(viaTls, direct);
  const uri = (await virshOk(tlsUri(dirs['good'] as string), 'uri')).trim();
  assert.equal(uri, tlsUri(dirs['good'] as string));
});

async function assertRefused(which: string, logPattern: RegExp): Promise<void> {
  const r = await virsh(tlsUri(dirs[which] as string), 'hostname');
  assert.notEqual(r.code, 0, `${which}: virsh should fail, got: ${r.stdout}`);
  assert.match(r.stderr, /TLS confirmation|authentication|verify|certificate|Input\/output error/i);
  // The proxy logs why, naming the check that failed.
  const deadline = Date.now() + 2000;
  while (!logPattern.test(proxy.stderr()) && Date.now() < deadline)
    await new Promise((res) => setTimeout(res, 50));
  assert.match(proxy.stderr(), logPattern);
}

test('a client without a certificate is refused', async () => {
  await assertRefused('none', /refused: Failed to verify peer's certificate: No certificate was found/);
});

test('a client certificate from another CA is refused', async () => {
  // GnuTLS clients only present a certificate whose issuer the server named in its certificate
  // request, so virsh sends none here; the next test presents one anyway.
  await assertRefused('foreign', /refused: .*(No certificate was found|known issuer)/);
});

/** Bytes a raw Node TLS client receives from the proxy until the connection closes. */
function rawTlsSession(client: Issued): Promise<Buffer> {
  return new Promise((resolve) => {
    const sock = tls.connect({
      port,
      host: '127.0.0.1',
      servername: 'localhost',
      ca: readFileSync(ca.cert),
      cert: readFileSync(client.cert),
      key: readFileSync(client.key),
    });
    let got = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 1) sock.end();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve(got));
  });
}

test('a certificate from another CA presented anyway fails the chain check: no confirmation byte', async () => {
  const got = await rawTlsSession(foreign);
  assert.equal(got.length, 0);
  assert.match(proxy.stderr(), /refused: .*known issuer/);
});

test('an accepted client receives exactly the confirmation byte 0x01 before anything else', async () => {
  const got = await rawTlsSession(good);
  assert.deepEqual([...got], [1]);
});

test('a client whose DN is not in tls_allowed_dn_list is refused', async () => {
  await assertRefused('stranger', /refused: .*not on the list of allowed clients.*O=Elsewhere Ltd/);
});

test('a revoked client certificate is refused', async () => {
  await assertRefused('revoked', /refused: .*revoked/);
});

test('the allowed client still works after the refusals', async () => {
  await virshOk(tlsUri(dirs['good'] as string), 'hostname');
});

test('tls_priority is honoured and tls_no_verify_certificate admits a client without a certificate', async () => {
  const p2port = await freePort();
  const server = pki.server(ca, 'server2');
  const p2 = await startProxy({
    conf: {
      listen_tls: 1,
      listen_addr: '127.0.0.1',
      tls_port: String(p2port),
      ca_file: ca.cert,
      cert_file: server.cert,
      key_file: server.key,
      tls_priority: 'NORMAL:-VERS-TLS1.3',
      tls_no_verify_certificate: 1,
    },
  });
  await waitForPort(p2port);
  const protocol = await new Promise<string | null>((resolve, reject) => {
    const s = tls.connect(
      { port: p2port, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(ca.cert) },
      () => {
        resolve(s.getProtocol());
        s.destroy();
      },
    );
    s.on('error', reject);
  });
  assert.equal(protocol, 'TLSv1.2');
  await virshOk(`qemu+tls://127.0.0.1:${p2port}/system?pkipath=${dirs['none'] as string}`, 'hostname');
  await p2.stop();
});

test('startup refuses a priority string it cannot honour, and a certificate its CA did not issue', async () => {
  const server = pki.server(otherCa, 'server-other');
  const base = {
    listen_tls: 1,
    listen_addr: '127.0.0.1',
    tls_port: String(await freePort()),
    ca_file: ca.cert,
  };
  await assert.rejects(
    startProxy({ conf: { ...base, cert_file: server.cert, key_file: server.key } }),
    /exited \(6\)[\s\S]*Our own certificate .*server-other-cert.pem failed validation against .*: The certificate hasn't got a known issuer/,
  );
  const good = pki.server(ca, 'server3');
  await assert.rejects(
    startProxy({
      conf: { ...base, cert_file: good.cert, key_file: good.key, tls_priority: 'NORMAL:+VERS-TLS1.1' },
    }),
    /exited \(6\)[\s\S]*tls_priority 'NORMAL:\+VERS-TLS1.1': cannot honour '\+VERS-TLS1.1'/,
  );
});
