// Property tests of the decoder's cut-through mode: whatever the chunking, long frames handed to a
// piece sink arrive as exactly their bytes, in order, ending with one `last` piece, and frames
// around them are still delivered whole.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CUT_THROUGH_MIN, FrameDecoder } from '../../src/protocol/frame-decoder.js';
import { encodeMessage } from '../../src/protocol/header.js';

function frame(len: number, seed: number): Buffer {
  const payload = Buffer.alloc(len - 28);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + seed) & 0xff;
  return encodeMessage({ prog: 0x20008086, vers: 1, proc: 209, type: 3, serial: seed, status: 2 }, payload);
}

function cut(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p > prev) out.push(bytes.subarray(prev, p));
    prev = p;
  }
  if (prev < bytes.length) out.push(bytes.subarray(prev));
  return out;
}

test('cut-through delivers every byte of every frame exactly once, in order', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.integer({ min: 28, max: 200 }),
          fc.integer({ min: CUT_THROUGH_MIN, max: CUT_THROUGH_MIN * 3 }),
        ),
        {
          minLength: 1,
          maxLength: 6,
        },
      ),
      fc.array(fc.nat(), { maxLength: 40 }),
      (lengths, cuts) => {
        const frames = lengths.map((l, i) => frame(l, i));
        const stream = Buffer.concat(frames);
        const got: Buffer[] = [];
        let open: Buffer[] | null = null;
        const dec = new FrameDecoder(
          (f) => {
            assert.equal(open, null, 'a whole frame arrived inside a relayed one');
            got.push(Buffer.from(f));
          },
          (e) => assert.fail(e.message),
        );
        dec.setCutThrough((head, len) => {
          assert.ok(head.length >= 28 && len >= CUT_THROUGH_MIN);
          open = [];
          return (piece, last) => {
            assert.notEqual(open, null);
            (open as Buffer[]).push(Buffer.from(piece));
            if (last) {
              got.push(Buffer.concat(open as Buffer[]));
              open = null;
            }
          };
        });
        for (const c of cut(stream, cuts)) dec.push(c);
        assert.equal(open, null, 'a relayed frame never got its last piece');
        assert.deepEqual(got, frames);
      },
    ),
    { numRuns: 300 },
  );
});

test('a hook that declines leaves the frame to normal assembly', () => {
  const f = frame(CUT_THROUGH_MIN * 2, 7);
  const got: Buffer[] = [];
  const dec = new FrameDecoder(
    (x) => got.push(Buffer.from(x)),
    (e) => assert.fail(e.message),
  );
  let asked = 0;
  dec.setCutThrough(() => {
    asked++;
    return null;
  });
  dec.push(f.subarray(0, 100));
  dec.push(f.subarray(100));
  assert.equal(asked, 1);
  assert.deepEqual(got, [f]);
});
