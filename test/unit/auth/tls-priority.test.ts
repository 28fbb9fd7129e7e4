// GnuTLS priority strings → Node TLS options; what cannot be honoured is refused by name.
import assert from 'node:assert/strict';
import { createSecureContext } from 'node:tls';
import { test } from 'node:test';
import { CodedError } from '../../../src/protocol/coded-error.js';
import { mapGnutlsPriority } from '../../../src/auth/tls-priority.js';

function refused(p: string, token: RegExp): void {
  assert.throws(
    () => mapGnutlsPriority(p),
    (e: unknown) => e instanceof CodedError && e.code === 'ETLSPRIORITY' && token.test(e.message),
    p,
  );
}

test('NORMAL: TLS 1.2-1.3, AEAD first, and OpenSSL accepts the result', () => {
  const s = mapGnutlsPriority('NORMAL');
  assert.equal(s.minVersion, 'TLSv1.2');
  assert.equal(s.maxVersion, 'TLSv1.3');
  assert.equal(s.ecdhCurve, 'auto');
  assert.ok(s.ciphers.startsWith('TLS_AES_256_GCM_SHA384:'));
  assert.ok(s.ciphers.includes('ECDHE-RSA-AES128-GCM-SHA256'));
  assert.ok(s.ciphers.includes('AES128-SHA'));
  createSecureContext({ ciphers: s.ciphers, minVersion: s.minVersion, maxVersion: s.maxVersion });
});

test('versions, ciphers, MACs, key exchange and groups', () => {
  const only13 = mapGnutlsPriority('NORMAL:-VERS-TLS1.2');
  assert.equal(only13.minVersion, 'TLSv1.3');
  assert.ok(only13.ciphers.split(':').every((c) => c.startsWith('TLS_')));
  const only12 = mapGnutlsPriority('NORMAL:-VERS-ALL:+VERS-TLS1.2');
  assert.equal(only12.maxVersion, 'TLSv1.2');
  assert.ok(!only12.ciphers.includes('TLS_'));
  const pfs = mapGnutlsPriority('PFS');
  assert.ok(!pfs.ciphers.split(':').includes('AES128-SHA'));
  const s256 = mapGnutlsPriority('SECURE256');
  assert.ok(!s256.ciphers.includes('128'), s256.ciphers);
  assert.equal(s256.ecdhCurve, 'X448:P-521:P-384:ffdhe8192');
  const gcm = mapGnutlsPriority('NORMAL:-CIPHER-ALL:+AES-256-GCM:-RSA:-DHE-RSA');
  assert.deepEqual(gcm.ciphers.split(':'), [
    'TLS_AES_256_GCM_SHA384',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
  ]);
  const aead = mapGnutlsPriority('NORMAL:-MAC-ALL:+AEAD');
  assert.ok(!aead.ciphers.includes('-SHA:') && !aead.ciphers.endsWith('-SHA'));
  assert.equal(
    mapGnutlsPriority('NORMAL:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1').ecdhCurve,
    'X25519:P-256',
  );
  assert.equal(mapGnutlsPriority('NORMAL:%SERVER_PRECEDENCE').honorCipherOrder, true);
  assert.notEqual(mapGnutlsPriority('NORMAL:%NO_TICKETS').secureOptions, 0);
  const none = mapGnutlsPriority('NONE:+VERS-TLS1.3:+AES-128-GCM:+GROUP-X25519');
  assert.equal(none.ciphers, 'TLS_AES_128_GCM_SHA256');
  for (const p of [
    'PFS',
    'SECURE256',
    'NORMAL:-VERS-TLS1.2',
    'NONE:+VERS-TLS1.3:+AES-128-GCM:+GROUP-X25519',
  ]) {
    const s = mapGnutlsPriority(p);
    createSecureContext({
      ciphers: s.ciphers,
      minVersion: s.minVersion,
      maxVersion: s.maxVersion,
      ecdhCurve: s.ecdhCurve,
    });
  }
});

test('removing what is never offered is harmless', () => {
  mapGnutlsPriority(
    'NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:-3DES-CBC:-ARCFOUR-128:-MD5:-DHE-DSS:%COMPAT:-VERS-DTLS-ALL',
  );
});

test('what OpenSSL cannot do as asked is refused, naming the token', () => {
  refused('FANCY', /'FANCY': unknown base keyword/);
  refused('NORMAL:+VERS-TLS1.1', /'\+VERS-TLS1.1'/);
  refused('NORMAL:+CAMELLIA-128-GCM', /'\+CAMELLIA-128-GCM'/);
  refused('NORMAL:-SIGN-RSA-SHA1', /'-SIGN-RSA-SHA1'/);
  refused('NORMAL:%VERIFY_ALLOW_SIGN_WITH_SHA1', /'%VERIFY_ALLOW_SIGN_WITH_SHA1'/);
  refused('NORMAL:-CIPHER-ALL', /no TLS 1.2 or 1.3 cipher suite/);
  refused('NORMAL:-GROUP-ALL', /no key exchange group/);
  refused('NORMAL:VERS-TLS1.2', /expected \+NAME/);
});
