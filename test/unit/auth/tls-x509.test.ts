// The DER reader behind libvirt's certificate checks, on certificates made by GnuTLS's certtool.
// Expected DNs were checked against gnutls_x509_crt_get_dn on the same kind of certificates.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CodedError } from '../../../src/protocol/coded-error.js';
import {
  KEY_USAGE_DIGITAL_SIGNATURE,
  KEY_USAGE_KEY_CERT_SIGN,
  KEY_USAGE_KEY_ENCIPHERMENT,
  KP_TLS_WWW_CLIENT,
  KP_TLS_WWW_SERVER,
  PK_RSA,
  decodeOid,
  escapeDnValue,
  parseX509,
  pemCertificates,
} from '../../../src/auth/tls-x509.js';
import { TestPki } from '../../e2e/pki.js';

const pki = new TestPki(mkdtempSync(join(tmpdir(), 'vpx509-')));
const ca = pki.ca('ca', 'Unit CA');
const server = pki.server(ca);
const client = pki.issue(ca, 'client', [
  'country = "GB"',
  'state = "London"',
  'organization = "Test, Org"',
  'cn = "#client+1 "',
  'tls_www_client',
  'signing_key',
  'encryption_key',
]);

function facts(file: string) {
  const der = pemCertificates(readFileSync(file, 'latin1'))[0];
  assert.ok(der !== undefined);
  return parseX509(der);
}

test('subject DN in certificate order with RFC 4514 escaping, as GnuTLS prints it', () => {
  assert.equal(facts(client.cert).subject, 'C=GB,ST=London,O=Test\\, Org,CN=\\#client\\+1\\ ');
  assert.equal(facts(server.cert).subject, 'O=Test Org,CN=localhost');
  assert.equal(facts(client.cert).issuer, 'CN=Unit CA');
});

test('CA facts: basic constraints, certificate signing', () => {
  const f = facts(ca.cert);
  assert.deepEqual(f.basicConstraints?.ca, true);
  assert.ok(((f.keyUsage?.bits ?? 0) & KEY_USAGE_KEY_CERT_SIGN) !== 0);
  assert.equal(f.publicKeyAlgorithm, PK_RSA);
});

test('leaf facts: not a CA, usages and purposes', () => {
  const s = facts(server.cert);
  assert.equal(s.basicConstraints?.ca, false);
  assert.ok(((s.keyUsage?.bits ?? 0) & KEY_USAGE_DIGITAL_SIGNATURE) !== 0);
  assert.ok(((s.keyUsage?.bits ?? 0) & KEY_USAGE_KEY_ENCIPHERMENT) !== 0);
  assert.deepEqual(s.keyPurposes?.oids, [KP_TLS_WWW_SERVER]);
  assert.deepEqual(facts(client.cert).keyPurposes?.oids, [KP_TLS_WWW_CLIENT]);
  assert.ok(s.notBefore.getTime() < Date.now() && s.notAfter.getTime() > Date.now());
});

test('escaping and OIDs', () => {
  assert.equal(escapeDnValue(' a;b<c>"d"\\e '), '\\ a\\;b\\<c\\>\\"d\\"\\\\e\\ ');
  assert.equal(escapeDnValue('plain text'), 'plain text');
  assert.equal(
    decodeOid(Buffer.from([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01])),
    '1.2.840.113549.1.9.1',
  );
  assert.equal(decodeOid(Buffer.from([0x55, 0x04, 0x03])), '2.5.4.3');
});

test('malformed DER is a coded error, never a crash', () => {
  const der = pemCertificates(readFileSync(server.cert, 'latin1'))[0] as Buffer;
  for (const cut of [0, 1, 10, 100, der.length - 1]) {
    assert.throws(
      () => parseX509(der.subarray(0, cut)),
      (e: unknown) => e instanceof CodedError && e.code === 'EX509',
    );
  }
  assert.throws(() => parseX509(Buffer.from([0x04, 0x00])), CodedError);
});
