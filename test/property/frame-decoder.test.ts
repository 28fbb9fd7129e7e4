// Property tests for FrameDecoder: any sequence of valid frames, cut into any chunks (down to single
// bytes), yields the same frames in order; arbitrary byte streams never throw out of push(), report
// errors only through onError, and never buffer more than the frame being assembled declared.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { CodedError } from '../../src/protocol/coded-error.js';
import { FrameDecoder, MAX_FRAME_LEN } from '../../src/protocol/frame-decoder.js';
import { encodeMessage } from '../../src/protocol/header.js';

const RUNS = 1000;

const headerArb = fc.record({
  prog: fc.nat({ max: 0xffffffff }),
  vers: fc.nat({ max: 0xffffffff }),
  proc: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  type: fc.integer({ min: 0, max: 6 }),
  serial: fc.nat({ max: 0xffffffff }),
  status: fc.integer({ min: 0, max: 2 }),
});

const frameArb = fc
  .tuple(headerArb, fc.uint8Array({ maxLength: 200 }))
  .map(([h, payload]) => encodeMessage(h, payload));

/** Cuts a buffer at sorted, possibly repeated, positions; repeats give empty chunks. */
function cut(stream: Buffer, points: number[]): Buffer[] {
  const sorted = points.map((p) => p % (stream.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of sorted) {
    out.push(stream.subarray(prev, p));
    prev = p;
  }
  out.push(stream.subarray(prev));
  return out;
}

/** Chunking strategies: arbitrary cut points, all single bytes, or fixed-size pieces. */
const chunkingArb = fc.oneof(
  fc.array(fc.nat(), { maxLength: 20 }).map((pts) => (s: Buffer) => cut(s, pts)),
  fc.constant((s: Buffer) => Array.from(s, (_b, i) => s.subarray(i, i + 1))),
  fc.integer({ min: 1, max: 64 }).map((n) => (s: Buffer) => {
    const out: Buffer[] = [];
    for (let i = 0; i < s.length; i += n) out.push(s.subarray(i, i + n));
    return out;
  }),
);

/**
 * Reference model of the framing rules: walks the stream and returns the frames before the first
 * bad length word, that word's error code, and where each frame starts.
 */
function model(stream: Buffer): {
  frames: Buffer[];
  error: string | null;
  starts: number[];
  errorAt: number;
} {
  const frames: Buffer[] = [];
  const starts: number[] = [];
  let pos = 0;
  while (stream.length - pos >= 4) {
    const len = stream.readUInt32BE(pos);
    if (len < 28 || len > MAX_FRAME_LEN) starts.push(pos);
    if (len < 28) return { frames, error: 'EFRAME_SHORT', starts, errorAt: pos + 4 };
    if (len > MAX_FRAME_LEN) return { frames, error: 'EFRAME_LONG', starts, errorAt: pos + 4 };
    if (stream.length - pos < len) break;
    starts.push(pos);
    frames.push(stream.subarray(pos, pos + len));
    pos += len;
  }
  starts.push(pos);
  return { frames, error: null, starts, errorAt: Infinity };
}

/** Stream pieces that exercise every branch: frames, short and long length words, noise. */
const segmentArb = fc.oneof(
  { weight: 6, arbitrary: frameArb },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 27 }).map((n) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    }),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: MAX_FRAME_LEN + 1, max: 0xffffffff }).map((n) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    }),
  },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 8 }).map((a) => Buffer.from(a)) },
);

describe('FrameDecoder properties', () => {
  it('any chunking of valid frames yields exactly those frames, in order', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), chunkingArb, (frames, chunking) => {
        const stream = Buffer.concat(frames);
        const got: Buffer[] = [];
        const errors: CodedError[] = [];
        const dec = new FrameDecoder(
          (f) => got.push(Buffer.from(f)),
          (e) => errors.push(e),
        );
        for (const c of chunking(stream)) dec.push(c);
        assert.deepEqual(errors, []);
        assert.equal(got.length, frames.length);
        for (let i = 0; i < frames.length; i++) assert.ok(got[i]?.equals(frames[i]!), `frame ${i}`);
        assert.equal(dec.pending, false);
        assert.equal(dec.bufferedBytes, 0);
      }),
      { numRuns: RUNS },
    );
  });

  it('frames inside one chunk are views of it; frames spanning chunks are copies', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 6 }), chunkingArb, (frames, chunking) => {
        const stream = Buffer.concat(frames);
        const chunks = chunking(stream).map((c) => Buffer.from(c)); // each chunk its own memory
        const got: Buffer[] = [];
        const dec = new FrameDecoder(
          (f) => got.push(f),
          () => assert.fail('no error expected'),
        );
        for (const c of chunks) dec.push(c);
        assert.equal(got.length, frames.length);
        const snapshot = got.map((f) => Buffer.from(f));
        let frameStart = 0;
        got.forEach((f, i) => {
          const frameEnd = frameStart + f.length;
          let chunkStart = 0;
          let home: Buffer | null = null;
          for (const c of chunks) {
            if (chunkStart <= frameStart && frameEnd <= chunkStart + c.length) {
              home = c.subarray(frameStart - chunkStart, frameEnd - chunkStart);
            }
            chunkStart += c.length;
          }
          const isView = (c: Buffer): boolean =>
            c.buffer === f.buffer && f.byteOffset >= c.byteOffset && f.byteOffset < c.byteOffset + c.length;
          if (home !== null) {
            assert.equal(f.buffer, home.buffer, `frame ${i} lies in one chunk: a view`);
            assert.equal(f.byteOffset, home.byteOffset, `frame ${i} lies in one chunk: a view`);
          } else {
            assert.ok(!chunks.some(isView), `frame ${i} spans chunks: a copy`);
          }
          frameStart = frameEnd;
        });
        // Reusing the chunks' memory must not change the copies.
        for (const c of chunks) c.fill(0xee);
        got.forEach((f, i) => {
          if (
            !chunks.some(
              (c) =>
                c.buffer === f.buffer &&
                f.byteOffset >= c.byteOffset &&
                f.byteOffset < c.byteOffset + c.length,
            )
          ) {
            assert.ok(f.equals(snapshot[i]!), `copied frame ${i} must survive chunk reuse`);
          }
          assert.ok(snapshot[i]?.equals(frames[i]!), `frame ${i}`);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('arbitrary streams: push() never throws, errors only via onError, matches the model', () => {
    fc.assert(
      fc.property(fc.array(segmentArb, { maxLength: 12 }), chunkingArb, (segments, chunking) =>
        checkAgainstModel(Buffer.concat(segments), chunking),
      ),
      { numRuns: RUNS },
    );
  });

  it('raw random bytes behave the same way', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), chunkingArb, (bytes, chunking) =>
        checkAgainstModel(Buffer.from(bytes), chunking),
      ),
      { numRuns: RUNS },
    );
  });
});

/** Feeds a stream in the given chunks and compares every observable with the model. */
function checkAgainstModel(stream: Buffer, chunking: (s: Buffer) => Buffer[]): void {
  const want = model(stream);
  const got: Buffer[] = [];
  const errors: unknown[] = [];
  const dec = new FrameDecoder(
    (f) => got.push(Buffer.from(f)),
    (e) => errors.push(e),
  );
  let consumed = 0;
  for (const c of chunking(stream)) {
    assert.doesNotThrow(() => dec.push(c));
    consumed += c.length;
    if (consumed < want.errorAt) {
      // Exactly the bytes since the start of the frame in progress are held...
      const start = Math.max(...want.starts.filter((s) => s <= consumed));
      assert.equal(dec.bufferedBytes, consumed - start, `at ${consumed}`);
      // ...which never exceeds what that frame declared.
      if (consumed - start >= 4) assert.ok(dec.bufferedBytes <= stream.readUInt32BE(start));
    } else {
      assert.ok(dec.bufferedBytes <= 4, 'nothing beyond a length word is kept after an error');
    }
  }
  assert.equal(got.length, want.frames.length);
  for (let i = 0; i < got.length; i++) assert.ok(got[i]?.equals(want.frames[i]!), `frame ${i}`);
  if (want.error === null) {
    assert.equal(errors.length, 0);
  } else {
    assert.equal(errors.length, 1, 'exactly one error, then silence');
    assert.ok(errors[0] instanceof CodedError);
    assert.equal(errors[0].code, want.error);
  }
}
