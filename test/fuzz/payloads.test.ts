// Fuzz target: the XDR payloads the proxy decodes itself (CONNECT_OPEN args, auth list, feature
// number, CONNECT_SET_IDENTITY typed parameters and their validation, remote_error from backends).
// Inputs are valid encodings with byte mutations, encodings with hostile counts and lengths
// (negative, huge, just over the bound — CVE-2024-2494's shape), and plain random bytes. A decoder
// may only return a value or throw CodedError, must not allocate beyond its input, and valid
// encodings must decode back to what was encoded.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';

import { CodedError } from '../../src/protocol/coded-error.js';
import {
  REMOTE_CONNECT_IDENTITY_PARAMS_MAX,
  VIR_TYPED_PARAM_BOOLEAN,
  VIR_TYPED_PARAM_DOUBLE,
  VIR_TYPED_PARAM_INT,
  VIR_TYPED_PARAM_LLONG,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_UINT,
  VIR_TYPED_PARAM_ULLONG,
} from '../../src/protocol/constants.js';
import {
  decodeAuthList,
  decodeConnectOpenArgs,
  decodeInt,
  decodeSetIdentityArgs,
  encodeAuthList,
  encodeConnectOpenArgs,
  encodeSetIdentityArgs,
  type TypedParam,
} from '../../src/protocol/payloads.js';
import { decodeRemoteError, encodeRemoteError, type RemoteError } from '../../src/protocol/remote-error.js';
import { XdrReader } from '../../src/protocol/xdr-reader.js';
import { validateIdentityParams } from '../../src/server/identity-params.js';
import { Meter, fuzzParams, mutate, mutationsArb } from './support.js';

// Decoders work on a buffer already received; copying it a few times is the most they may do.
const meter = new Meter('payloads', { maxSingle: (n) => n + 64, maxTotal: (n) => 4 * n + 4096 });
after(() => meter.print());

/** Decodes and expects either a value or a CodedError; anything else is a crash. */
function tolerate<T>(decode: () => T, onRefused?: () => void): T | null {
  try {
    return decode();
  } catch (e) {
    if (!(e instanceof CodedError)) throw e;
    onRefused?.();
    return null;
  }
}

const smallString = fc.string({ maxLength: 24 });
const optString = fc.option(smallString, { nil: null });
const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const uint32 = fc.nat({ max: 0xffffffff });

const typedParamArb: fc.Arbitrary<TypedParam> = fc.oneof(
  fc.record({ field: smallString, type: fc.constant(VIR_TYPED_PARAM_INT), value: int32 }),
  fc.record({ field: smallString, type: fc.constant(VIR_TYPED_PARAM_UINT), value: uint32 }),
  fc.record({
    field: smallString,
    type: fc.constant(VIR_TYPED_PARAM_LLONG),
    value: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  }),
  fc.record({
    field: smallString,
    type: fc.constant(VIR_TYPED_PARAM_ULLONG),
    value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  }),
  fc.record({
    field: smallString,
    type: fc.constant(VIR_TYPED_PARAM_DOUBLE),
    value: fc.double({ noNaN: true }),
  }),
  fc.record({ field: smallString, type: fc.constant(VIR_TYPED_PARAM_BOOLEAN), value: fc.boolean() }),
  fc.record({ field: smallString, type: fc.constant(VIR_TYPED_PARAM_STRING), value: smallString }),
  // The identity keys libvirt knows, with right or wrong types.
  fc
    .record({
      field: fc.constantFrom(
        'user-name',
        'unix-user-id',
        'group-name',
        'unix-group-id',
        'process-id',
        'process-time',
        'selinux-context',
        'system.token',
      ),
      type: fc.constantFrom(VIR_TYPED_PARAM_STRING, VIR_TYPED_PARAM_ULLONG, VIR_TYPED_PARAM_LLONG),
      value: fc.constant(7n),
    })
    .map((p) => (p.type === VIR_TYPED_PARAM_STRING ? { ...p, value: 'x' } : p)),
);

const remoteErrorArb: fc.Arbitrary<RemoteError> = fc.record({
  code: int32,
  domain: int32,
  message: optString,
  level: int32,
  str1: optString,
  str2: optString,
  str3: optString,
  int1: int32,
  int2: int32,
});

/** Hostile count/length words a decoder must refuse before it allocates or loops. */
const hostileWord = fc.constantFrom(
  0xffffffff,
  0x80000000,
  0x7fffffff,
  0x40000000,
  0x3fffffff,
  0x00400001,
  0x00010001,
  REMOTE_CONNECT_IDENTITY_PARAMS_MAX + 1,
  21,
  20,
  65537,
);

/** An encoding, then mutations, sometimes with a hostile word planted at an aligned offset. */
function hostile(encoded: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc
    .tuple(encoded, mutationsArb(6), fc.option(fc.tuple(fc.nat(), hostileWord), { nil: null }))
    .map(([b, ops, plant]) => {
      let out = mutate(b, ops);
      if (plant !== null && out.length >= 4) {
        out = Buffer.from(out);
        out.writeUInt32BE(plant[1], (plant[0] % Math.floor(out.length / 4)) * 4);
      }
      return out;
    });
}

const randomBytes = fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a));

const openArgsArb = fc.record({ name: optString, flags: uint32 });
const identityArb = fc.record({
  params: fc.array(typedParamArb, { maxLength: REMOTE_CONNECT_IDENTITY_PARAMS_MAX }),
  flags: uint32,
});
const authListArb = fc.array(int32, { maxLength: 20 });

describe('fuzz: payload decoders', () => {
  it('CONNECT_OPEN args', { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(fc.oneof(hostile(openArgsArb.map(encodeConnectOpenArgs)), randomBytes), (b) =>
        meter.run(b.length, () => {
          const v = tolerate(() => decodeConnectOpenArgs(b));
          if (v !== null) assert.ok(v.name === null || v.name.length <= b.length);
        }),
      ),
      fuzzParams(10_000),
    );
  });

  it('CONNECT_OPEN args round-trip', () => {
    fc.assert(
      fc.property(openArgsArb, (a) => {
        assert.deepEqual(decodeConnectOpenArgs(encodeConnectOpenArgs(a)), { ...a });
      }),
      fuzzParams(2_000),
    );
  });

  it('AUTH_LIST reply and SUPPORTS_FEATURE int', { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(fc.oneof(hostile(authListArb.map((t) => encodeAuthList(t))), randomBytes), (b) =>
        meter.run(b.length, () => {
          const list = tolerate(() => decodeAuthList(b));
          if (list !== null) assert.ok(list.length <= 20 && list.length * 4 + 4 <= b.length);
          tolerate(() => decodeInt(b));
        }),
      ),
      fuzzParams(10_000),
    );
  });

  it('CONNECT_SET_IDENTITY args, then validation', { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(fc.oneof(hostile(identityArb.map(encodeSetIdentityArgs)), randomBytes), (b) =>
        meter.run(b.length, () => {
          const args = tolerate(() => decodeSetIdentityArgs(b));
          if (args === null) return;
          assert.ok(args.params.length <= REMOTE_CONNECT_IDENTITY_PARAMS_MAX);
          const err = validateIdentityParams(args.params);
          if (err !== null) assert.ok(err.message !== null && err.code > 0);
        }),
      ),
      fuzzParams(10_000),
    );
  });

  it('CONNECT_SET_IDENTITY args round-trip', () => {
    fc.assert(
      fc.property(identityArb, (a) => {
        const back = decodeSetIdentityArgs(encodeSetIdentityArgs(a));
        assert.equal(back.flags, a.flags);
        assert.equal(back.params.length, a.params.length);
        back.params.forEach((p, i) => {
          const want = a.params[i]!;
          assert.equal(p.field, want.field);
          assert.equal(p.type, want.type);
          if (typeof want.value === 'number' && Object.is(want.value, -0)) return;
          assert.deepEqual(p.value, want.value);
        });
      }),
      fuzzParams(2_000),
    );
  });

  it('remote_error from a backend', { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(fc.oneof(hostile(remoteErrorArb.map(encodeRemoteError)), randomBytes), (b) =>
        meter.run(b.length, () => {
          tolerate(() => decodeRemoteError(b));
        }),
      ),
      fuzzParams(10_000),
    );
  });

  it('remote_error round-trip', () => {
    fc.assert(
      fc.property(remoteErrorArb, (e) => assert.deepEqual(decodeRemoteError(encodeRemoteError(e)), { ...e })),
      fuzzParams(2_000),
    );
  });

  it('XdrReader primitives on random bytes never over-read', { timeout: 600_000 }, () => {
    const ops = fc.array(
      fc.constantFrom(
        'int',
        'uint',
        'bool',
        'hyper',
        'double',
        'opaque',
        'string',
        'array',
        'chars',
        'optional',
        'fixed',
      ),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(fc.oneof(randomBytes, hostile(randomBytes)), ops, fc.nat({ max: 1 << 22 }), (b, seq, max) =>
        meter.run(b.length, () => {
          const r = new XdrReader(b);
          for (const op of seq) {
            let failed = false;
            tolerate(
              () => {
                switch (op) {
                  case 'int':
                    return r.int();
                  case 'uint':
                    return r.uint();
                  case 'bool':
                    return r.bool();
                  case 'hyper':
                    return r.hyper();
                  case 'double':
                    return r.double();
                  case 'opaque':
                    return r.opaque(max);
                  case 'string':
                    return r.string(max);
                  case 'array':
                    return r.array(max, (x) => x.int());
                  case 'chars':
                    return r.charArray(max);
                  case 'optional':
                    return r.optional((x) => x.uint());
                  case 'fixed':
                    return r.fixedOpaque(16);
                }
              },
              () => (failed = true),
            );
            assert.ok(r.offset <= b.length, 'cursor past the end');
            if (failed) break;
          }
        }),
      ),
      fuzzParams(10_000),
    );
  });
});
