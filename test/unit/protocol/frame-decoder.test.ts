// Unit tests for FrameDecoder (NOTES §1.1, §1.6, §1.8): length checks before buffering, stop after
// the first error, views for frames inside one chunk and copies for frames spanning chunks, splits
// at every byte boundary, and skip() for the dummy bytes that carry passed fds.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { CodedError } from '../../../src/protocol/coded-error.js';
import { encodeMessage } from '../../../src/protocol/header.js';
import { FrameDecoder, MAX_FRAME_LEN } from '../../../src/protocol/frame-decoder.js';

/** One XDR word per argument, 8 hex digits each; a typo in a fixture fails loudly. */
function words(...w: string[]): Buffer {
  for (const x of w) assert.match(x, /^[0-9a-f]{8}$/, `bad fixture word ${x}`);
  return Buffer.from(w.join(''), 'hex');
}

interface Harness {
  dec: FrameDecoder;
  frames: Buffer[];
  errors: CodedError[];
}

function harness(onFrame?: (f: Buffer, dec: FrameDecoder) => void, maxLen?: number): Harness {
  const frames: Buffer[] = [];
  const errors: CodedError[] = [];
  const dec: FrameDecoder = new FrameDecoder(
    (f) => {
      frames.push(f);
      onFrame?.(f, dec);
    },
    (e) => errors.push(e),
    maxLen,
  );
  return { dec, frames, errors };
}

function frame(serial: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return encodeMessage({ prog: 0x20008086, vers: 1, proc: 3, type: 0, serial, status: 0 }, payload);
}

function lengthWord(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

// A CALL with an 8-byte payload, as it appears on the wire.
const CALL = words(
  '00000024', // length 36
  '20008086', // prog REMOTE_PROGRAM
  '00000001', // vers 1
  '0000003c', // proc 60 CONNECT_SUPPORTS_FEATURE
  '00000000', // type VIR_NET_CALL
  '00000009', // serial 9
  '00000000', // status VIR_NET_OK
  '0000000a', // feature 10 (PROGRAM_KEEPALIVE)
  'deadbeef', // trailing word (decoders ignore it; the framer must keep it)
);

describe('FrameDecoder: whole frames', () => {
  it('hands out a frame inside one chunk as a view of that chunk', () => {
    const h = harness();
    const chunk = Buffer.concat([CALL, frame(1)]);
    h.dec.push(chunk);
    assert.equal(h.frames.length, 2);
    assert.deepEqual(h.frames[0], CALL);
    assert.deepEqual(h.frames[1], frame(1));
    assert.equal(h.frames[0]?.buffer, chunk.buffer);
    assert.equal(h.frames[0]?.byteOffset, chunk.byteOffset);
    assert.equal(h.frames[1]?.byteOffset, chunk.byteOffset + CALL.length);
    assert.equal(h.errors.length, 0);
    assert.equal(h.dec.pending, false);
    assert.equal(h.dec.bufferedBytes, 0);
  });

  it('accepts a header-only frame of exactly 28 bytes', () => {
    const h = harness();
    h.dec.push(frame(0));
    assert.equal(h.frames.length, 1);
    assert.equal(h.frames[0]?.length, 28);
  });

  it('copies a frame that spans chunks, so later reuse of the chunks cannot change it', () => {
    const h = harness();
    const a = Buffer.from(CALL.subarray(0, 10));
    const b = Buffer.from(CALL.subarray(10));
    h.dec.push(a);
    assert.equal(h.frames.length, 0);
    assert.equal(h.dec.pending, true);
    assert.equal(h.dec.bufferedBytes, 10);
    h.dec.push(b);
    a.fill(0);
    b.fill(0);
    assert.equal(h.frames.length, 1);
    assert.deepEqual(h.frames[0], CALL, 'the delivered frame owns its bytes');
  });

  it('decodes the same frames for a split at every byte boundary', () => {
    const stream = Buffer.concat([CALL, frame(1), frame(2, Buffer.from('abcdefgh'))]);
    for (let k = 0; k <= stream.length; k++) {
      const h = harness();
      h.dec.push(stream.subarray(0, k));
      h.dec.push(stream.subarray(k));
      assert.deepEqual(h.frames, [CALL, frame(1), frame(2, Buffer.from('abcdefgh'))], `split at ${k}`);
      assert.equal(h.dec.pending, false, `split at ${k}`);
    }
  });

  it('decodes one byte at a time', () => {
    const stream = Buffer.concat([CALL, frame(1)]);
    const h = harness();
    const boundaries = [0, CALL.length, stream.length];
    for (let i = 0; i < stream.length; i++) {
      h.dec.push(stream.subarray(i, i + 1));
      const consumed = i + 1;
      const frameStart = Math.max(...boundaries.filter((b) => b <= consumed));
      assert.equal(h.dec.bufferedBytes, consumed - frameStart, `after byte ${i}`);
    }
    assert.deepEqual(h.frames, [CALL, frame(1)]);
  });

  it('ignores empty chunks anywhere', () => {
    const h = harness();
    h.dec.push(Buffer.alloc(0));
    h.dec.push(CALL.subarray(0, 2));
    h.dec.push(Buffer.alloc(0));
    h.dec.push(CALL.subarray(2, 20));
    h.dec.push(Buffer.alloc(0));
    h.dec.push(CALL.subarray(20));
    assert.deepEqual(h.frames, [CALL]);
  });
});

describe('FrameDecoder: length checks (NOTES §1.1)', () => {
  for (const len of [0, 1, 4, 27]) {
    it(`rejects length ${len} with EFRAME_SHORT`, () => {
      const h = harness();
      h.dec.push(Buffer.concat([lengthWord(len), Buffer.alloc(64)]));
      assert.equal(h.frames.length, 0);
      assert.equal(h.errors.length, 1);
      assert.equal(h.errors[0]?.code, 'EFRAME_SHORT');
      assert.ok(h.errors[0] instanceof CodedError);
      assert.match(h.errors[0]?.message ?? '', new RegExp(`\\b${len} bytes\\b`));
      assert.ok(h.dec.bufferedBytes <= 4);
    });
  }

  for (const len of [MAX_FRAME_LEN + 1, 0x7fffffff, 0xffffffff]) {
    it(`rejects length ${len} with EFRAME_LONG before buffering any body`, () => {
      const h = harness();
      h.dec.push(Buffer.concat([lengthWord(len), Buffer.alloc(1 << 16, 0x41)]));
      assert.equal(h.frames.length, 0);
      assert.equal(h.errors.length, 1);
      assert.equal(h.errors[0]?.code, 'EFRAME_LONG');
      assert.ok(h.dec.bufferedBytes <= 4, `buffered ${h.dec.bufferedBytes}`);
    });
  }

  it('rejects a hostile length word that arrives one byte at a time', () => {
    const h = harness();
    const hostile = Buffer.concat([lengthWord(0xffffffff), Buffer.alloc(16, 0x41)]);
    for (const b of hostile) {
      h.dec.push(Buffer.from([b]));
      assert.ok(h.dec.bufferedBytes <= 4, `buffered ${h.dec.bufferedBytes}`);
    }
    assert.equal(h.errors.length, 1);
    assert.equal(h.errors[0]?.code, 'EFRAME_LONG');
    assert.equal(h.dec.bufferedBytes, 0);
  });

  it('rejects a short length word split across chunks', () => {
    const h = harness();
    h.dec.push(Buffer.from([0, 0]));
    h.dec.push(Buffer.from([0, 27, 1, 2, 3]));
    assert.equal(h.errors.length, 1);
    assert.equal(h.errors[0]?.code, 'EFRAME_SHORT');
  });

  it('accepts the largest legal length, 33554436 (VIR_NET_MESSAGE_MAX + 4)', () => {
    assert.equal(MAX_FRAME_LEN, 33554436);
    const h = harness();
    h.dec.push(Buffer.concat([lengthWord(MAX_FRAME_LEN), Buffer.alloc(24)]));
    assert.equal(h.errors.length, 0);
    assert.equal(h.dec.pending, true);
    assert.equal(h.dec.bufferedBytes, 28);
  });

  it('honours a smaller maximum given to the constructor', () => {
    const h = harness(undefined, 64);
    h.dec.push(frame(1, Buffer.alloc(36)));
    assert.equal(h.frames.length, 1);
    h.dec.push(frame(2, Buffer.alloc(37)));
    assert.equal(h.errors.length, 1);
    assert.equal(h.errors[0]?.code, 'EFRAME_LONG');
  });

  it('delivers the valid frames before a bad length in the same chunk, then nothing', () => {
    const h = harness();
    h.dec.push(Buffer.concat([frame(1), frame(2), lengthWord(3), frame(3)]));
    assert.deepEqual(h.frames, [frame(1), frame(2)]);
    assert.equal(h.errors.length, 1);
  });

  it('stops for good after an error: later data is ignored and onError fires once', () => {
    const h = harness();
    h.dec.push(lengthWord(0xffffffff));
    h.dec.push(frame(1));
    h.dec.push(lengthWord(0));
    h.dec.push(Buffer.concat([frame(2), frame(3)]));
    assert.equal(h.frames.length, 0);
    assert.equal(h.errors.length, 1);
  });
});

describe('FrameDecoder: stop() and skip()', () => {
  it('stop() from onFrame drops the rest of the chunk and all later input', () => {
    const h = harness((_f, dec) => dec.stop());
    h.dec.push(Buffer.concat([frame(1), frame(2)]));
    h.dec.push(frame(3));
    assert.deepEqual(h.frames, [frame(1)]);
    assert.equal(h.errors.length, 0);
  });

  it('stop() from onFrame of a spanning frame drops the rest of that chunk', () => {
    const h = harness((_f, dec) => dec.stop());
    const stream = Buffer.concat([frame(1), frame(2)]);
    h.dec.push(stream.subarray(0, 5));
    h.dec.push(stream.subarray(5));
    assert.deepEqual(h.frames, [frame(1)]);
  });

  it('skip(n) drops exactly n bytes after the current frame (one dummy byte per passed fd)', () => {
    const h = harness((f, dec) => {
      if (f.readUInt32BE(20) === 1) dec.skip(2);
    });
    h.dec.push(Buffer.concat([frame(1), Buffer.from([0, 0]), frame(2)]));
    assert.deepEqual(h.frames, [frame(1), frame(2)]);
    assert.equal(h.errors.length, 0);
  });

  it('skip(n) works whatever the chunking of frame, dummy bytes and next frame', () => {
    const stream = Buffer.concat([frame(1), Buffer.from([0, 0, 0]), frame(2), frame(3)]);
    for (let k = 0; k <= stream.length; k++) {
      for (const k2 of [k, Math.min(stream.length, k + 1), Math.min(stream.length, k + 3)]) {
        const h = harness((f, dec) => {
          if (f.readUInt32BE(20) === 1) dec.skip(3);
        });
        h.dec.push(stream.subarray(0, k));
        h.dec.push(stream.subarray(k, k2));
        h.dec.push(stream.subarray(k2));
        assert.deepEqual(h.frames, [frame(1), frame(2), frame(3)], `cuts ${k}/${k2}`);
        assert.equal(h.errors.length, 0, `cuts ${k}/${k2}`);
      }
    }
  });

  it('skip(0) changes nothing; without skip the dummy byte is taken as a length byte', () => {
    const h = harness((_f, dec) => dec.skip(0));
    h.dec.push(Buffer.concat([frame(1), frame(2)]));
    assert.deepEqual(h.frames, [frame(1), frame(2)]);

    const h2 = harness();
    h2.dec.push(Buffer.concat([frame(1), Buffer.from([0]), frame(2)]));
    assert.deepEqual(h2.frames, [frame(1)]);
    assert.equal(h2.errors.length, 1, 'the misaligned length word is rejected');
  });
});
