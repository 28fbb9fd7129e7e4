// SASL procedure bodies: `char data<65536>` puts every byte in its own 4-byte word; `nil` differs
// from empty data.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeSaslInitReply,
  decodeSaslStartArgs,
  decodeSaslStepArgs,
  decodeSaslStepReply,
  encodeSaslInitReply,
  encodeSaslStartArgs,
  encodeSaslStepArgs,
  encodeSaslStepReply,
} from '../../../src/auth/sasl-payloads.js';

test('START args byte layout', () => {
  const b = encodeSaslStartArgs({ mech: 'PLAIN', data: Buffer.from([0x00, 0xff]) });
  // prettier-ignore
  const want = Buffer.from([
    0, 0, 0, 5,            // mech length
    0x50, 0x4c, 0x41, 0x49, // "PLAI"
    0x4e, 0, 0, 0,          // "N" + padding
    0, 0, 0, 0,             // nil = 0
    0, 0, 0, 2,             // 2 chars
    0, 0, 0, 0,             // 0x00
    0xff, 0xff, 0xff, 0xff, // 0xff as a signed char widened to int
  ]);
  assert.deepEqual(b, want);
  assert.deepEqual(decodeSaslStartArgs(b), { mech: 'PLAIN', data: Buffer.from([0x00, 0xff]) });
});

test('nil versus empty data', () => {
  assert.equal(decodeSaslStepArgs(encodeSaslStepArgs(null)), null);
  assert.deepEqual(decodeSaslStepArgs(encodeSaslStepArgs(Buffer.alloc(0))), Buffer.alloc(0));
  assert.deepEqual(decodeSaslStepReply(encodeSaslStepReply({ complete: true, data: null })), {
    complete: true,
    data: null,
  });
  const r = decodeSaslStepReply(encodeSaslStepReply({ complete: false, data: Buffer.from('challenge') }));
  assert.deepEqual(r, { complete: false, data: Buffer.from('challenge') });
  assert.equal(
    decodeSaslInitReply(encodeSaslInitReply('DIGEST-MD5,SCRAM-SHA-256')),
    'DIGEST-MD5,SCRAM-SHA-256',
  );
});

test('oversized or truncated data is refused', () => {
  const big = Buffer.alloc(12);
  big.writeUInt32BE(0, 0);
  big.writeUInt32BE(65537, 4);
  assert.throws(() => decodeSaslStepArgs(big));
  assert.throws(() => decodeSaslStepArgs(encodeSaslStepArgs(Buffer.from('abc')).subarray(0, 10)));
});
