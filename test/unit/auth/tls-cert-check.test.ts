// libvirt's certificate rules: the startup sanity check of our own certificate and CA list, and the
// post-handshake judgement of a client certificate (DN allow-list, CA flag, usages).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CodedError } from '../../../src/protocol/coded-error.js';
import { sanityCheckCertificates, validateClientCertificate } from '../../../src/auth/tls-cert-check.js';
import { pemCertificates } from '../../../src/auth/tls-x509.js';
import { TestPki } from '../../e2e/pki.js';

const pki = new TestPki(mkdtempSync(join(tmpdir(), 'vpcheck-')));
const ca = pki.ca('ca');
const other = pki.ca('other');
const server = pki.server(ca);
const foreignServer = pki.server(other, 'foreign-server');
const client = pki.client(ca, 'client', 'client1');

function der(file: string): Buffer {
  return pemCertificates(readFileSync(file, 'latin1'))[0] as Buffer;
}

function expectCheckError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof CodedError && e.code === 'ETLSCERT' && re.test(e.message));
}

test('a server certificate issued by the CA passes', () => {
  assert.deepEqual(sanityCheckCertificates({ caFile: ca.cert, certFile: server.cert, role: 'server' }), []);
});

test('a CA bundle with several CAs is accepted when one issued the certificate', () => {
  const bundle = join(pki.dir, 'bundle.pem');
  writeFileSync(bundle, readFileSync(other.cert, 'utf8') + readFileSync(ca.cert, 'utf8'));
  sanityCheckCertificates({ caFile: bundle, certFile: server.cert, role: 'server' });
});

test("a certificate from another CA fails with libvirt's message", () => {
  expectCheckError(
    () => sanityCheckCertificates({ caFile: ca.cert, certFile: foreignServer.cert, role: 'server' }),
    /^Our own certificate .*foreign-server-cert.pem failed validation against .*ca-cert.pem: The certificate hasn't got a known issuer\.$/,
  );
});

test('expired and not-yet-valid certificates', () => {
  const later = new Date(Date.now() + 10 * 86400_000);
  expectCheckError(
    () => sanityCheckCertificates({ caFile: ca.cert, certFile: server.cert, role: 'server', now: later }),
    /The server certificate .* has expired/,
  );
  const earlier = new Date(Date.now() - 10 * 86400_000);
  expectCheckError(
    () => sanityCheckCertificates({ caFile: ca.cert, certFile: server.cert, role: 'server', now: earlier }),
    /is not yet active/,
  );
});

test('a leaf in the CA file is not a CA', () => {
  expectCheckError(
    () => sanityCheckCertificates({ caFile: client.cert, certFile: server.cert, role: 'server' }),
    /basic constraints do not show a CA/,
  );
});

test('a client certificate used as server certificate: non-critical purpose is only a warning', () => {
  const w = sanityCheckCertificates({ caFile: ca.cert, certFile: client.cert, role: 'server' });
  assert.ok(
    w.some((m) => /purpose does not allow use for with a TLS server/.test(m)),
    JSON.stringify(w),
  );
});

test('client certificates: DN allow-list, CA flag', () => {
  const ok = validateClientCertificate(der(client.cert), ['C=GB,O=Test Org,CN=client*']);
  assert.deepEqual(ok, { dname: 'C=GB,O=Test Org,CN=client1', warnings: [] });
  const denied = validateClientCertificate(der(client.cert), ['C=GB,O=Test Org,CN=admin']);
  assert.ok(
    'error' in denied && /not on the list of allowed clients \(tls_allowed_dn_list\)/.test(denied.error),
  );
  assert.ok('dname' in validateClientCertificate(der(client.cert), null), 'no list: everyone');
  assert.ok('error' in validateClientCertificate(der(client.cert), []), 'empty list: nobody');
  const caAsClient = validateClientCertificate(der(ca.cert), null);
  assert.ok(
    'error' in caAsClient &&
      /basic constraints show a CA, but we need one for a client/.test(caAsClient.error),
  );
  const expired = validateClientCertificate(der(client.cert), null, new Date(Date.now() + 10 * 86400_000));
  assert.ok('error' in expired && /client certificate \[session\] has expired/.test(expired.error));
});
