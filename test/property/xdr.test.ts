// Property tests for the XDR cursor pair and the payloads built on it: whatever XdrWriter writes,
// XdrReader reads back identically and to the last byte (ints, hypers, doubles, strings, optional
// strings, opaque, char arrays, typed parameters, error structs); truncations fail with CodedError.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { CodedError } from '../../src/protocol/coded-error.js';
import {
  VIR_TYPED_PARAM_BOOLEAN,
  VIR_TYPED_PARAM_DOUBLE,
  VIR_TYPED_PARAM_INT,
  VIR_TYPED_PARAM_LLONG,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_UINT,
  VIR_TYPED_PARAM_ULLONG,
} from '../../src/protocol/constants.js';
import {
  decodeConnectOpenArgs,
  decodeSetIdentityArgs,
  encodeConnectOpenArgs,
  encodeSetIdentityArgs,
  type TypedParam,
} from '../../src/protocol/payloads.js';
import { decodeRemoteError, encodeRemoteError, type RemoteError } from '../../src/protocol/remote-error.js';
import { XdrReader } from '../../src/protocol/xdr-reader.js';
import { XdrWriter } from '../../src/protocol/xdr-writer.js';

const RUNS = 500;

const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const uint32 = fc.nat({ max: 0xffffffff });
const hyper = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const uhyper = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
// Whole code points only: a lone surrogate cannot survive UTF-8, in XDR or anywhere else.
const text = fc.string({ unit: 'binary', maxLength: 40 });

/** One value of each XDR kind, tagged, so a sequence of them can be written then read back. */
type Item =
  | { k: 'int'; v: number }
  | { k: 'uint'; v: number }
  | { k: 'bool'; v: boolean }
  | { k: 'hyper'; v: bigint }
  | { k: 'uhyper'; v: bigint }
  | { k: 'double'; v: number }
  | { k: 'string'; v: string }
  | { k: 'optString'; v: string | null }
  | { k: 'opaque'; v: Uint8Array }
  | { k: 'chars'; v: Uint8Array };

const itemArb: fc.Arbitrary<Item> = fc.oneof(
  int32.map((v) => ({ k: 'int' as const, v })),
  uint32.map((v) => ({ k: 'uint' as const, v })),
  fc.boolean().map((v) => ({ k: 'bool' as const, v })),
  hyper.map((v) => ({ k: 'hyper' as const, v })),
  uhyper.map((v) => ({ k: 'uhyper' as const, v })),
  fc.double().map((v) => ({ k: 'double' as const, v })),
  text.map((v) => ({ k: 'string' as const, v })),
  fc.option(text, { nil: null }).map((v) => ({ k: 'optString' as const, v })),
  fc.uint8Array({ maxLength: 40 }).map((v) => ({ k: 'opaque' as const, v })),
  fc.uint8Array({ maxLength: 40 }).map((v) => ({ k: 'chars' as const, v })),
);

function write(w: XdrWriter, it: Item): void {
  switch (it.k) {
    case 'int':
      w.int(it.v);
      break;
    case 'uint':
      w.uint(it.v);
      break;
    case 'bool':
      w.bool(it.v);
      break;
    case 'hyper':
      w.hyper(it.v);
      break;
    case 'uhyper':
      w.uhyper(it.v);
      break;
    case 'double':
      w.double(it.v);
      break;
    case 'string':
      w.string(it.v);
      break;
    case 'optString':
      w.optionalString(it.v);
      break;
    case 'opaque':
      w.opaque(it.v);
      break;
    case 'chars':
      w.charArray(it.v);
      break;
  }
}

function read(r: XdrReader, k: Item['k']): Item {
  switch (k) {
    case 'int':
      return { k, v: r.int() };
    case 'uint':
      return { k, v: r.uint() };
    case 'bool':
      return { k, v: r.bool() };
    case 'hyper':
      return { k, v: r.hyper() };
    case 'uhyper':
      return { k, v: r.uhyper() };
    case 'double':
      return { k, v: r.double() };
    case 'string':
      return { k, v: r.string(1000) };
    case 'optString':
      return { k, v: r.optional((x) => x.string(1000)) };
    case 'opaque':
      return { k, v: new Uint8Array(r.opaque(1000)) };
    case 'chars':
      return { k, v: new Uint8Array(r.charArray(1000)) };
  }
}

/** Encoded size of one item, worked out from the XDR rules rather than from the writer. */
function size(it: Item): number {
  const pad = (n: number): number => Math.ceil(n / 4) * 4;
  switch (it.k) {
    case 'int':
    case 'uint':
    case 'bool':
      return 4;
    case 'hyper':
    case 'uhyper':
    case 'double':
      return 8;
    case 'string':
      return 4 + pad(Buffer.byteLength(it.v));
    case 'optString':
      return it.v === null ? 4 : 8 + pad(Buffer.byteLength(it.v));
    case 'opaque':
      return 4 + pad(it.v.length);
    case 'chars':
      return 4 + 4 * it.v.length;
  }
}

const typedParamArb: fc.Arbitrary<TypedParam> = fc.oneof(
  fc.record({ field: text, type: fc.constant(VIR_TYPED_PARAM_INT), value: int32 }),
  fc.record({ field: text, type: fc.constant(VIR_TYPED_PARAM_UINT), value: uint32 }),
  fc.record({ field: text, type: fc.constant(VIR_TYPED_PARAM_LLONG), value: hyper }),
  fc.record({ field: text, type: fc.constant(VIR_TYPED_PARAM_ULLONG), value: uhyper }),
  fc.record({ field: text, type: fc.constant(VIR_TYPED_PARAM_DOUBLE), value: fc.double() }),
  fc.record({ field: text, type: fc.constant(VIR_TYPED_PARAM_BOOLEAN), value: fc.boolean() }),
  fc.record({ field: text, type: fc.constant(VIR_TYPED_PARAM_STRING), value: text }),
);

const remoteErrorArb: fc.Arbitrary<RemoteError> = fc.record({
  code: int32,
  domain: int32,
  message: fc.option(text, { nil: null }),
  level: int32,
  str1: fc.option(text, { nil: null }),
  str2: fc.option(text, { nil: null }),
  str3: fc.option(text, { nil: null }),
  int1: int32,
  int2: int32,
});

describe('XDR round trips', () => {
  it('any sequence of values reads back identically, consuming exactly what was written', () => {
    fc.assert(
      fc.property(fc.array(itemArb, { maxLength: 30 }), fc.integer({ min: 1, max: 64 }), (items, initial) => {
        const w = new XdrWriter(initial);
        for (const it of items) write(w, it);
        const buf = w.toBuffer();
        assert.equal(
          buf.length,
          items.reduce((n, it) => n + size(it), 0),
        );
        assert.equal(buf.length % 4, 0);
        const r = new XdrReader(buf);
        for (const it of items) {
          const back = read(r, it.k);
          if (it.k === 'double') assert.ok(Object.is(back.v, it.v), `double ${it.v}`);
          else assert.deepEqual(back, it);
        }
        assert.equal(r.remaining, 0);
      }),
      { numRuns: RUNS },
    );
  });

  it('a truncated encoding fails with CodedError, never RangeError', () => {
    fc.assert(
      fc.property(fc.array(itemArb, { minLength: 1, maxLength: 10 }), fc.nat(), (items, cutSeed) => {
        const w = new XdrWriter();
        for (const it of items) write(w, it);
        const buf = w.toBuffer();
        const cut = cutSeed % buf.length;
        const r = new XdrReader(buf.subarray(0, cut));
        assert.throws(
          () => {
            for (const it of items) read(r, it.k);
          },
          (e: unknown) => e instanceof CodedError && e.code === 'EXDR_SHORT',
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('char arrays carry every byte as a signed int and come back unchanged', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const buf = new XdrWriter().charArray(bytes).toBuffer();
        for (let i = 0; i < bytes.length; i++) {
          const word = buf.readInt32BE(4 + 4 * i);
          assert.equal(word, bytes[i]! >= 0x80 ? bytes[i]! - 256 : bytes[i]!);
        }
        assert.deepEqual(new Uint8Array(new XdrReader(buf).charArray(64)), bytes);
      }),
      { numRuns: RUNS },
    );
  });

  it('typed parameters (CONNECT_SET_IDENTITY args) round-trip', () => {
    fc.assert(
      fc.property(fc.array(typedParamArb, { maxLength: 20 }), uint32, (params, flags) => {
        const back = decodeSetIdentityArgs(encodeSetIdentityArgs({ params, flags }));
        assert.equal(back.flags, flags);
        assert.equal(back.params.length, params.length);
        back.params.forEach((p, i) => {
          const want = params[i]!;
          assert.equal(p.field, want.field);
          assert.equal(p.type, want.type);
          assert.ok(
            Object.is(p.value, want.value),
            `param ${i}: ${String(p.value)} vs ${String(want.value)}`,
          );
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('CONNECT_OPEN args round-trip', () => {
    fc.assert(
      fc.property(fc.option(text, { nil: null }), uint32, (name, flags) => {
        assert.deepEqual(decodeConnectOpenArgs(encodeConnectOpenArgs({ name, flags })), { name, flags });
      }),
      { numRuns: RUNS },
    );
  });

  it('error structs round-trip', () => {
    fc.assert(
      fc.property(remoteErrorArb, (e) => {
        // fast-check records have a null prototype; compare plain copies.
        assert.deepEqual(decodeRemoteError(encodeRemoteError(e)), { ...e });
      }),
      { numRuns: RUNS },
    );
  });

  it('a string over its maximum is refused whatever its content', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        const buf = new XdrWriter().opaque(bytes).toBuffer();
        assert.throws(
          () => new XdrReader(buf).opaque(bytes.length - 1),
          (e: unknown) => e instanceof CodedError && e.code === 'EXDR_TOO_LONG',
        );
        assert.equal(new XdrReader(buf).opaque(bytes.length).length, bytes.length);
      }),
      { numRuns: RUNS },
    );
  });
});
