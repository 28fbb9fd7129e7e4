// libvirt's SASL state rules over the real Cyrus library (PLAIN and DIGEST-MD5 from a test
// sasldb), plus a scripted session for the SSF and layer rules.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SaslAuthenticator } from '../../../src/auth/sasl-auth.js';
import {
  decodeSaslInitReply,
  decodeSaslStepReply,
  encodeSaslStartArgs,
} from '../../../src/auth/sasl-payloads.js';
import { native, type NativeApi, type SaslServerHandle } from '../../../src/native/native.js';
import {
  REMOTE_PROC_AUTH_SASL_INIT,
  REMOTE_PROC_AUTH_SASL_START,
  REMOTE_PROC_AUTH_SASL_STEP,
  VIR_ERR_AUTH_FAILED,
} from '../../../src/protocol/constants.js';
import type { ClientConnection } from '../../../src/server/client-connection.js';

const dir = mkdtempSync(join(tmpdir(), 'vpsaslu-'));
const db = join(dir, 'passwd.db');
for (const [u, p] of [
  ['alice', 'pw-alice'],
  ['mallory', 'pw-mallory'],
]) {
  const r = spawnSync('saslpasswd2', ['-f', db, '-a', 'libvirt', '-p', '-c', u as string], { input: p });
  assert.equal(r.status, 0, String(r.stderr));
}
writeFileSync(join(dir, 'libvirt.conf'), `mech_list: plain digest-md5\nsasldb_path: ${db}\n`);
// Read by sasl_server_init, which happens once per process (the first SaslAuthenticator).
process.env['SASL_CONF_PATH'] = dir;

let nextId = 1;
function fakeClient(transport: 'unix' | 'tcp' | 'tls', auth: 'sasl' | 'none' = 'sasl'): ClientConnection {
  return {
    id: nextId++,
    service: { name: transport, readonly: false, auth, transport },
    socket: {
      localAddress: '127.0.0.1',
      localPort: 16509,
      remoteAddress: '127.0.0.1',
      remotePort: 40000,
      getCipher: () => ({ name: 'TLS_AES_256_GCM_SHA384' }),
    },
  } as unknown as ClientConnection;
}

const plain = (user: string, pw: string) => Buffer.from(`\0${user}\0${pw}`);

test('PLAIN on a local socket: login, user name, no security layer', () => {
  const auth = new SaslAuthenticator({ tcpMinSsf: 56, allowedUsers: null }, native());
  const c = fakeClient('unix');
  const init = auth.handle(c, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0));
  assert.equal(init.error, null);
  assert.deepEqual(
    decodeSaslInitReply(init.payload as Buffer)
      .split(',')
      .sort(),
    ['DIGEST-MD5', 'PLAIN'],
  );
  const r = auth.handle(
    c,
    REMOTE_PROC_AUTH_SASL_START,
    encodeSaslStartArgs({ mech: 'PLAIN', data: plain('alice', 'pw-alice') }),
  );
  assert.equal(r.error, null);
  assert.equal(decodeSaslStepReply(r.payload as Buffer).complete, true);
  assert.deepEqual(r.done, { userName: 'alice', layer: null });
  // Done: a second INIT is refused (libvirt keeps the session, so INIT sees one).
  assert.equal(auth.handle(c, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0)).error?.code, VIR_ERR_AUTH_FAILED);
  auth.forget(c);
});

test('failures answer AUTH_FAILED and discard the session: the client must INIT again', () => {
  const auth = new SaslAuthenticator({ tcpMinSsf: 56, allowedUsers: ['alice'] }, native());
  const c = fakeClient('unix');
  assert.equal(
    auth.handle(
      c,
      REMOTE_PROC_AUTH_SASL_START,
      encodeSaslStartArgs({ mech: 'PLAIN', data: plain('alice', 'pw-alice') }),
    ).error?.code,
    VIR_ERR_AUTH_FAILED,
    'START before INIT',
  );
  auth.handle(c, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0));
  const bad = auth.handle(
    c,
    REMOTE_PROC_AUTH_SASL_START,
    encodeSaslStartArgs({ mech: 'PLAIN', data: plain('alice', 'wrong') }),
  );
  assert.equal(bad.error?.code, VIR_ERR_AUTH_FAILED);
  assert.equal(bad.error?.message, 'authentication failed: authentication failed');
  const again = auth.handle(
    c,
    REMOTE_PROC_AUTH_SASL_START,
    encodeSaslStartArgs({ mech: 'PLAIN', data: plain('alice', 'pw-alice') }),
  );
  assert.equal(again.error?.code, VIR_ERR_AUTH_FAILED, 'the session is gone after a failure');
  auth.handle(c, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0));
  const denied = auth.handle(
    c,
    REMOTE_PROC_AUTH_SASL_START,
    encodeSaslStartArgs({ mech: 'PLAIN', data: plain('mallory', 'pw-mallory') }),
  );
  assert.equal(denied.error?.code, VIR_ERR_AUTH_FAILED, 'valid password, user not on the allow-list');
  auth.handle(c, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0));
  const ok = auth.handle(
    c,
    REMOTE_PROC_AUTH_SASL_START,
    encodeSaslStartArgs({ mech: 'PLAIN', data: plain('alice', 'pw-alice') }),
  );
  assert.equal(ok.done?.userName, 'alice');
  assert.equal(
    auth.handle(fakeClient('unix', 'none'), REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0)).error?.code,
    VIR_ERR_AUTH_FAILED,
    'not a SASL service',
  );
  const junk = auth.handle(fakeClient('unix'), REMOTE_PROC_AUTH_SASL_STEP, Buffer.from([0, 0]));
  assert.equal(junk.error?.message, 'Unable to decode message payload');
});

test('plain TCP offers only mechanisms with a security layer', () => {
  const auth = new SaslAuthenticator({ tcpMinSsf: 56, allowedUsers: null }, native());
  const c = fakeClient('tcp');
  const init = auth.handle(c, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0));
  assert.equal(decodeSaslInitReply(init.payload as Buffer), 'DIGEST-MD5');
  const start = auth.handle(
    c,
    REMOTE_PROC_AUTH_SASL_START,
    encodeSaslStartArgs({ mech: 'DIGEST-MD5', data: null }),
  );
  const challenge = decodeSaslStepReply(start.payload as Buffer);
  assert.equal(challenge.complete, false);
  assert.match(String(challenge.data), /qop="auth-conf"/);
  assert.equal(
    auth.handle(
      c,
      REMOTE_PROC_AUTH_SASL_START,
      encodeSaslStartArgs({ mech: 'PLAIN', data: plain('alice', 'pw-alice') }),
    ).error?.code,
    VIR_ERR_AUTH_FAILED,
  );
});

/** A scripted Cyrus session: completes at once with the given SSF. */
function scripted(ssf: number): NativeApi {
  const session: SaslServerHandle = {
    setExternalSsf: () => undefined,
    setSecurityProps: () => undefined,
    listMechanisms: () => 'FAKE',
    start: () => ({ done: true, data: null }),
    step: () => ({ done: true, data: null }),
    userName: () => 'alice',
    ssf: () => ssf,
    maxOutput: () => 4096,
    encode: (b) => b,
    decode: (b) => b,
    dispose: () => undefined,
  };
  return {
    saslServerInit: () => undefined,
    SaslServer: function () {
      return session;
    },
  } as unknown as NativeApi;
}

test('on plain TCP an SSF below 56 is refused; at 56 or more the layer is installed', () => {
  const weak = new SaslAuthenticator({ tcpMinSsf: 56, allowedUsers: null }, scripted(40));
  const c = fakeClient('tcp');
  weak.handle(c, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0));
  assert.equal(
    weak.handle(c, REMOTE_PROC_AUTH_SASL_START, encodeSaslStartArgs({ mech: 'FAKE', data: null })).error
      ?.code,
    VIR_ERR_AUTH_FAILED,
  );
  const strong = new SaslAuthenticator({ tcpMinSsf: 56, allowedUsers: null }, scripted(128));
  const d = fakeClient('tcp');
  strong.handle(d, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0));
  const r = strong.handle(d, REMOTE_PROC_AUTH_SASL_START, encodeSaslStartArgs({ mech: 'FAKE', data: null }));
  assert.equal(r.error, null);
  assert.equal(r.done?.userName, 'alice');
  assert.equal(r.done?.layer?.maxOutput, 4096);
  // The same SSF over TLS needs no layer of ours: TLS already protects the bytes.
  const t = fakeClient('tls');
  strong.handle(t, REMOTE_PROC_AUTH_SASL_INIT, Buffer.alloc(0));
  assert.equal(
    strong.handle(t, REMOTE_PROC_AUTH_SASL_START, encodeSaslStartArgs({ mech: 'FAKE', data: null })).done
      ?.layer,
    null,
  );
});
