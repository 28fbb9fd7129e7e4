// Fuzz target: framing and header decoding, the first code every untrusted byte meets. Random and
// mutated byte streams, cut into random chunks, go through FrameDecoder; every frame it hands out
// then goes through readHeader. Checked: nothing throws, frames respect the length rules, at most
// one error, and memory is bounded by the protocol maximum plus the bytes actually received.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';

import { CodedError } from '../../src/protocol/coded-error.js';
import { VIR_NET_MESSAGE_HEADER_XDR_LEN } from '../../src/protocol/constants.js';
import { FrameDecoder, MAX_FRAME_LEN } from '../../src/protocol/frame-decoder.js';
import { encodeMessage, readHeader } from '../../src/protocol/header.js';
import { Meter, chunk, fuzzParams, mutate, mutationsArb } from './support.js';

const meter = new Meter('framing', {
  // One frame may be assembled at a time, declared up to the protocol maximum.
  maxSingle: () => MAX_FRAME_LEN,
  maxTotal: (n) => n + MAX_FRAME_LEN + 64,
});
after(() => meter.print());

const word = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};

const headerArb = fc.record({
  prog: fc.oneof(fc.constantFrom(0x20008086, 0x20008087, 0x68000, 0x6b656570, 0x6900690), fc.nat()),
  vers: fc.oneof(fc.constant(1), fc.nat()),
  proc: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  type: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer()),
  serial: fc.nat(),
  status: fc.oneof(fc.integer({ min: 0, max: 2 }), fc.integer()),
});

/** Pieces of a hostile stream: valid frames, bad length words, stray bytes, big declared lengths. */
const pieceArb = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(headerArb, fc.uint8Array({ maxLength: 96 })).map(([h, p]) => encodeMessage(h, p)),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 27 }).map(word) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_FRAME_LEN + 1, max: 0xffffffff }).map(word) },
  // A legal but large declared length whose body never fully arrives.
  { weight: 1, arbitrary: fc.integer({ min: 29, max: MAX_FRAME_LEN }).map(word) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 16 }).map((a) => Buffer.from(a)) },
);

const streamArb = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
  fc
    .tuple(fc.array(pieceArb, { maxLength: 16 }), mutationsArb(6))
    .map(([ps, ops]) => mutate(Buffer.concat(ps), ops)),
);

const cutsArb = fc.oneof(fc.array(fc.nat(), { maxLength: 24 }), fc.constant([] as number[]));

function runDecoder(stream: Buffer, cuts: number[]): void {
  let frames = 0;
  let errors = 0;
  let afterError = 0;
  let received = 0;
  const dec = new FrameDecoder(
    (f) => {
      if (errors > 0) afterError++;
      frames++;
      // The decoder's contract with everything downstream of it.
      assert.ok(f.length >= VIR_NET_MESSAGE_HEADER_XDR_LEN && f.length <= MAX_FRAME_LEN);
      assert.equal(f.readUInt32BE(0), f.length);
      const h = readHeader(f);
      assert.ok(Number.isInteger(h.prog) && Number.isInteger(h.serial));
    },
    (e) => {
      errors++;
      assert.ok(e instanceof CodedError);
      assert.match(e.code, /^EFRAME_(SHORT|LONG)$/);
    },
  );
  for (const c of chunk(stream, cuts)) {
    dec.push(c);
    received += c.length;
    // Held bytes never exceed what arrived.
    assert.ok(dec.bufferedBytes <= received);
  }
  assert.ok(errors <= 1, 'at most one framing error per connection');
  assert.equal(afterError, 0, 'no frames after a framing error');
  assert.ok(frames * VIR_NET_MESSAGE_HEADER_XDR_LEN <= stream.length);
}

describe('fuzz: framing', () => {
  it('random and mutated streams in random chunks', { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(streamArb, cutsArb, (stream, cuts) =>
        meter.run(stream.length, () => runDecoder(stream, cuts)),
      ),
      fuzzParams(20_000),
    );
  });

  it(
    'single-byte delivery of mutated frame sequences (slowloris at the parser level)',
    { timeout: 600_000 },
    () => {
      fc.assert(
        fc.property(fc.array(pieceArb, { maxLength: 6 }), mutationsArb(4), (ps, ops) => {
          const stream = mutate(Buffer.concat(ps), ops).subarray(0, 2048);
          const cuts = Array.from({ length: stream.length }, (_v, i) => i);
          meter.run(stream.length, () => runDecoder(stream, cuts));
        }),
        fuzzParams(2_000),
      );
    },
  );
});
