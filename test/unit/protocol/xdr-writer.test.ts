// Unit tests for XdrWriter (NOTES §1.7): each primitive against byte fixtures, padding, growth
// past the initial buffer, and `char` arrays written as one signed int per byte.

import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';

import { XdrWriter } from '../../../src/protocol/xdr-writer.js';

/** One XDR word per argument, 8 hex digits each; a typo in a fixture fails loudly. */
function words(...w: string[]): Buffer {
  for (const x of w) assert.match(x, /^[0-9a-f]{8}$/, `bad fixture word ${x}`);
  return Buffer.from(w.join(''), 'hex');
}

describe('XdrWriter primitives', () => {
  it('writes int, uint, bool, hyper, uhyper and double big-endian', () => {
    const w = new XdrWriter(4)
      .int(-2)
      .uint(4294967294)
      .bool(true)
      .bool(false)
      .hyper(-1n)
      .uhyper(2n ** 63n)
      .double(-3.125);
    assert.equal(w.length, 40);
    assert.deepEqual(
      w.toBuffer(),
      words(
        'fffffffe', // int -2
        'fffffffe', // uint 4294967294
        '00000001', // bool true
        '00000000', // bool false
        'ffffffff', // hyper -1, high word
        'ffffffff', // hyper -1, low word
        '80000000', // uhyper 2^63, high word
        '00000000', // uhyper 2^63, low word
        'c0090000', // double -3.125, high word
        '00000000', // double -3.125, low word
      ),
    );
  });

  it('writes uint from a negative number as its 32-bit two’s complement', () => {
    assert.deepEqual(new XdrWriter().uint(-1).toBuffer(), words('ffffffff'));
  });

  it('throws on an int out of range instead of writing garbage', () => {
    assert.throws(() => new XdrWriter().int(2 ** 31), RangeError);
    assert.throws(() => new XdrWriter().hyper(2n ** 63n), RangeError);
    assert.throws(() => new XdrWriter().uhyper(-1n), RangeError);
  });
});

describe('XdrWriter strings and opaque', () => {
  it('pads strings with zero bytes to a multiple of four, even over dirty memory', () => {
    // allocUnsafe may hand back used memory: the padding must be written, not assumed.
    const dirty = mock.method(Buffer, 'allocUnsafe', (n: number) => Buffer.alloc(n, 0xff));
    let out: Buffer;
    try {
      out = new XdrWriter(4).string('a').string('ab').string('abc').string('abcd').string('').toBuffer();
      assert.ok(dirty.mock.callCount() > 0, 'the writer allocated through allocUnsafe');
    } finally {
      dirty.mock.restore();
    }
    assert.deepEqual(
      out,
      words(
        '00000001', // length 1
        '61000000', // "a" + 3 pad bytes
        '00000002', // length 2
        '61620000', // "ab" + 2 pad bytes
        '00000003', // length 3
        '61626300', // "abc" + 1 pad byte
        '00000004', // length 4
        '61626364', // "abcd"
        '00000000', // length 0
      ),
    );
  });

  it('encodes strings as UTF-8 and counts bytes, not characters', () => {
    assert.deepEqual(
      new XdrWriter().string('é✓').toBuffer(),
      words(
        '00000005', // length 5 bytes (2 + 3)
        'c3a9e29c', // "é" and first two bytes of "✓"
        '93000000', // last byte of "✓" + 3 pad bytes
      ),
    );
  });

  it('writes optional strings as a presence word then the string', () => {
    assert.deepEqual(
      new XdrWriter().optionalString(null).optionalString('').optionalString('x').toBuffer(),
      words(
        '00000000', // absent
        '00000001', // present
        '00000000', // length 0
        '00000001', // present
        '00000001', // length 1
        '78000000', // "x" + pad
      ),
    );
  });

  it('grows past the initial size, keeping what was written', () => {
    const w = new XdrWriter(1);
    const big = Buffer.alloc(1000, 0x5a);
    w.int(7).opaque(big).int(8);
    const out = w.toBuffer();
    assert.equal(out.length, 4 + 4 + 1000 + 4);
    assert.equal(out.readInt32BE(0), 7);
    assert.equal(out.readUInt32BE(4), 1000);
    assert.deepEqual(out.subarray(8, 1008), big);
    assert.equal(out.readInt32BE(1008), 8);
  });
});

describe('XdrWriter char arrays (NOTES §1.7)', () => {
  it('encodes bytes >= 0x80 as negative ints, like xdr_char with signed char', () => {
    assert.deepEqual(
      new XdrWriter().charArray(Buffer.from([0x00, 0x41, 0x7f, 0x80, 0xfe, 0xff])).toBuffer(),
      words(
        '00000006', // count 6
        '00000000', // 0x00 -> 0
        '00000041', // 0x41 -> 65
        '0000007f', // 0x7f -> 127
        'ffffff80', // 0x80 -> -128
        'fffffffe', // 0xfe -> -2
        'ffffffff', // 0xff -> -1
      ),
    );
  });

  it('writes an empty char array as a zero count', () => {
    assert.deepEqual(new XdrWriter().charArray(new Uint8Array(0)).toBuffer(), words('00000000'));
  });
});

describe('XdrWriter output', () => {
  it('toBuffer copies, view shares memory', () => {
    const w = new XdrWriter().int(1);
    const copy = w.toBuffer();
    const view = w.view();
    view[3] = 2;
    assert.equal(copy.readInt32BE(0), 1);
    assert.equal(w.toBuffer().readInt32BE(0), 2);
  });
});
