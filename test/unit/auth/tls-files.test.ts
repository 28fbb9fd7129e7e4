// Where the server's x509 files come from (libvirt's virnettlsconfig.c rules).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CodedError } from '../../../src/protocol/coded-error.js';
import { SYSTEM_PKI, resolveTlsFiles, type TlsFileSettings } from '../../../src/auth/tls-files.js';

const unset: TlsFileSettings = { key_file: null, cert_file: null, ca_file: null, crl_file: null };
const existing = (paths: string[]) => (p: string) => paths.includes(p);
const system = Object.values(SYSTEM_PKI);

function fails(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof CodedError && e.code === 'ETLSFILES' && re.test(e.message));
}

test('root uses the system pki tree; a missing CRL is skipped', () => {
  assert.deepEqual(resolveTlsFiles(unset, true, '/root', existing(system)), { ...SYSTEM_PKI });
  const noCrl = system.filter((p) => p !== SYSTEM_PKI.crlFile);
  assert.equal(resolveTlsFiles(unset, true, '/root', existing(noCrl)).crlFile, null);
  fails(
    () => resolveTlsFiles(unset, true, '/root', existing([])),
    /^CA certificate '\/etc\/pki\/CA\/cacert.pem' does not exist/,
  );
});

test('non-root: ~/.pki/libvirt first, each missing piece from the system tree', () => {
  const home = '/home/u';
  const user = (f: string) => `${home}/.pki/libvirt/${f}`;
  const all = [user('cacert.pem'), user('cacrl.pem'), user('servercert.pem'), user('serverkey.pem')];
  assert.deepEqual(resolveTlsFiles(unset, false, home, existing(all)), {
    caFile: user('cacert.pem'),
    crlFile: user('cacrl.pem'),
    certFile: user('servercert.pem'),
    keyFile: user('serverkey.pem'),
  });
  const mixed = resolveTlsFiles(
    unset,
    false,
    home,
    existing([user('servercert.pem'), user('serverkey.pem'), ...system]),
  );
  assert.equal(mixed.caFile, SYSTEM_PKI.caFile);
  assert.equal(mixed.crlFile, SYSTEM_PKI.crlFile);
  assert.equal(mixed.certFile, user('servercert.pem'));
  fails(
    () => resolveTlsFiles(unset, false, home, existing([user('servercert.pem'), ...system])),
    /^Key '.*serverkey.pem' does not exist, but certificate/,
  );
});

test('explicit files: all three or none', () => {
  const s = { key_file: '/k', cert_file: '/c', ca_file: '/ca', crl_file: '/crl' };
  assert.deepEqual(resolveTlsFiles(s, true, '/', existing(['/ca', '/crl'])), {
    caFile: '/ca',
    crlFile: '/crl',
    certFile: '/c',
    keyFile: '/k',
  });
  assert.equal(resolveTlsFiles(s, true, '/', existing(['/ca'])).crlFile, null);
  fails(
    () => resolveTlsFiles({ ...s, ca_file: null }, true, '/', existing([])),
    /No CA certificate path set to match server key\/cert/,
  );
  fails(
    () => resolveTlsFiles({ ...s, cert_file: null }, true, '/', existing([])),
    /No server certificate path set to match server key/,
  );
  fails(
    () => resolveTlsFiles({ ...s, key_file: null }, true, '/', existing([])),
    /No server key path set to match server cert/,
  );
  fails(() => resolveTlsFiles(s, true, '/', existing([])), /CA certificate '\/ca' does not exist/);
});
