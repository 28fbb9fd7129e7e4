// Unit tests for XdrReader (NOTES §1.6–§1.7): every primitive against byte fixtures, and the
// limits: over-long strings/arrays are refused before anything is allocated, padding must be zero,
// and short buffers fail with EXDR_SHORT rather than a RangeError.

import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';

import { CodedError } from '../../../src/protocol/coded-error.js';
import { XdrReader } from '../../../src/protocol/xdr-reader.js';

/** One XDR word per argument, 8 hex digits each; a typo in a fixture fails loudly. */
function words(...w: string[]): Buffer {
  for (const x of w) assert.match(x, /^[0-9a-f]{8}$/, `bad fixture word ${x}`);
  return Buffer.from(w.join(''), 'hex');
}

function codedError(code: string): (e: unknown) => boolean {
  return (e) => e instanceof CodedError && e.code === code;
}

describe('XdrReader primitives', () => {
  it('reads int, uint, bool, hyper, uhyper and double big-endian', () => {
    const r = new XdrReader(
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
    assert.equal(r.int(), -2);
    assert.equal(r.uint(), 4294967294);
    assert.equal(r.bool(), true);
    assert.equal(r.bool(), false);
    assert.equal(r.hyper(), -1n);
    assert.equal(r.uhyper(), 2n ** 63n);
    assert.equal(r.double(), -3.125);
    assert.equal(r.remaining, 0);
    assert.equal(r.offset, 40);
  });

  it('rejects a bool outside 0/1', () => {
    assert.throws(() => new XdrReader(words('00000002')).bool(), codedError('EXDR_BOOL'));
    assert.throws(() => new XdrReader(words('ffffffff')).bool(), codedError('EXDR_BOOL'));
  });

  it('honours start and end: nothing outside the window is read', () => {
    const buf = words(
      '00000001', // outside (before start)
      '00000002', // inside
      '00000003', // outside (after end)
    );
    const r = new XdrReader(buf, 4, 8);
    assert.equal(r.offset, 4);
    assert.equal(r.remaining, 4);
    assert.equal(r.int(), 2);
    assert.throws(() => r.int(), codedError('EXDR_SHORT'));
  });
});

describe('XdrReader short buffers', () => {
  it('fails every primitive with EXDR_SHORT, not RangeError', () => {
    const three = Buffer.alloc(3);
    const seven = Buffer.alloc(7);
    assert.throws(() => new XdrReader(three).int(), codedError('EXDR_SHORT'));
    assert.throws(() => new XdrReader(three).uint(), codedError('EXDR_SHORT'));
    assert.throws(() => new XdrReader(three).bool(), codedError('EXDR_SHORT'));
    assert.throws(() => new XdrReader(seven).hyper(), codedError('EXDR_SHORT'));
    assert.throws(() => new XdrReader(seven).uhyper(), codedError('EXDR_SHORT'));
    assert.throws(() => new XdrReader(seven).double(), codedError('EXDR_SHORT'));
    assert.throws(() => new XdrReader(Buffer.alloc(15)).fixedOpaque(16), codedError('EXDR_SHORT'));
  });

  it('fails a string whose padding is missing', () => {
    const r = new XdrReader(
      Buffer.concat([
        words('00000003'), // length 3
        Buffer.from('abc'), // data without its pad byte
      ]),
    );
    assert.throws(() => r.string(100), codedError('EXDR_SHORT'));
  });

  it('fails an optional whose value is missing', () => {
    assert.throws(() => new XdrReader(words('00000001')).optional((x) => x.int()), codedError('EXDR_SHORT'));
  });
});

describe('XdrReader strings and opaque', () => {
  it('reads a string with its padding and a zero-length string', () => {
    const r = new XdrReader(
      words(
        '00000005', // length 5
        '68656c6c', // "hell"
        '6f000000', // "o" + 3 pad bytes
        '00000000', // length 0
        '00000004', // length 4
        '61626364', // "abcd", no padding
      ),
    );
    assert.equal(r.string(5), 'hello');
    assert.equal(r.string(0), '');
    assert.equal(r.string(4), 'abcd');
    assert.equal(r.remaining, 0);
  });

  it('returns opaque data as a view of the input', () => {
    const buf = words(
      '00000002', // length 2
      'abcd0000', // data + 2 pad bytes
    );
    const v = new XdrReader(buf).opaque(2);
    assert.deepEqual(v, Buffer.from([0xab, 0xcd]));
    buf[4] = 0x11;
    assert.equal(v[0], 0x11);
  });

  it('reads an optional string', () => {
    const r = new XdrReader(
      words(
        '00000000', // absent
        '00000001', // present
        '00000001', // length 1
        '7a000000', // "z" + pad
      ),
    );
    assert.equal(
      r.optional((x) => x.string(10)),
      null,
    );
    assert.equal(
      r.optional((x) => x.string(10)),
      'z',
    );
  });

  it('refuses a string one byte over its maximum', () => {
    const r = new XdrReader(
      words(
        '00000005', // length 5
        '68656c6c', // "hell"
        '6f000000', // "o" + pad
      ),
    );
    assert.throws(() => r.string(4), codedError('EXDR_TOO_LONG'));
  });

  it('refuses a hostile 4 GiB length before allocating or reading', () => {
    const allocs = mock.method(Buffer, 'allocUnsafe');
    const allocsSlow = mock.method(Buffer, 'alloc');
    try {
      const hostile = words(
        'ffffffff', // length 2^32-1
        '41414141', // 8 bytes of data
        '41414141',
      );
      assert.throws(() => new XdrReader(hostile).string(4194304), codedError('EXDR_TOO_LONG'));
      assert.throws(() => new XdrReader(hostile).opaque(4194304), codedError('EXDR_TOO_LONG'));
      // Even with no maximum in the way, the data is too short.
      assert.throws(() => new XdrReader(hostile).opaque(0xffffffff), codedError('EXDR_SHORT'));
      assert.equal(allocs.mock.callCount(), 0);
      assert.equal(allocsSlow.mock.callCount(), 0);
    } finally {
      allocs.mock.restore();
      allocsSlow.mock.restore();
    }
  });

  it('fails a length whose padded size would wrap 32 bits with EXDR_SHORT', () => {
    for (const len of ['7ffffffd', '7fffffff', '80000000', 'fffffffc', 'fffffffd', 'fffffffe']) {
      const buf = words(
        len, // length near 2^31 or 2^32
        '41414141', // 4 bytes of data
      );
      assert.throws(() => new XdrReader(buf).opaque(0xffffffff), codedError('EXDR_SHORT'), `length 0x${len}`);
    }
  });

  it('refuses nonzero padding in every pad position', () => {
    for (let i = 1; i <= 3; i++) {
      const buf = words(
        '00000001', // length 1
        '61000000', // "a" + 3 pad bytes
      );
      buf[4 + i] = 0x01;
      assert.throws(() => new XdrReader(buf).string(10), codedError('EXDR_PADDING'), `pad byte ${i}`);
    }
  });

  it('reads fixed opaque (UUID) without a length word', () => {
    const r = new XdrReader(
      words(
        '00112233', // uuid[0..3]
        '44556677', // uuid[4..7]
        '8899aabb', // uuid[8..11]
        'ccddeeff', // uuid[12..15]
        '00000007', // following int
      ),
    );
    assert.equal(r.fixedOpaque(16).toString('hex'), '00112233445566778899aabbccddeeff');
    assert.equal(r.int(), 7);
  });
});

describe('XdrReader arrays', () => {
  it('reads a counted array', () => {
    const r = new XdrReader(
      words(
        '00000002', // count 2
        '0000000a', // 10
        'fffffff6', // -10
      ),
    );
    assert.deepEqual(
      r.array(2, (x) => x.int()),
      [10, -10],
    );
  });

  it('refuses count 0xffffffff with 8 bytes of data before reading any element', () => {
    const hostile = words(
      'ffffffff', // count 2^32-1
      '00000001', // 8 bytes of data
      '00000002',
    );
    let calls = 0;
    const el = (x: XdrReader): number => {
      calls++;
      return x.int();
    };
    assert.throws(() => new XdrReader(hostile).array(20, el), codedError('EXDR_TOO_LONG'));
    // With a limit that does not stop it, the remaining-data check must.
    assert.throws(() => new XdrReader(hostile).array(0xffffffff, el), codedError('EXDR_SHORT'));
    assert.equal(calls, 0);
  });

  it('refuses a count one over the maximum', () => {
    const r = new XdrReader(
      words(
        '00000003', // count 3
        '00000001', // 1
        '00000002', // 2
        '00000003', // 3
      ),
    );
    assert.throws(() => r.array(2, (x) => x.int()), codedError('EXDR_TOO_LONG'));
  });
});

describe('XdrReader char arrays (NOTES §1.7: one byte per 4-byte int)', () => {
  it('keeps the low 8 bits of each word, so negative ints become bytes >= 0x80', () => {
    const r = new XdrReader(
      words(
        '00000004', // count 4
        '00000041', // 'A'
        'ffffff80', // -128 -> 0x80
        'ffffffff', // -1 -> 0xff
        '000000ff', // 255 written unsigned -> 0xff
      ),
    );
    assert.deepEqual(r.charArray(4), Buffer.from([0x41, 0x80, 0xff, 0xff]));
  });

  it('refuses a hostile count before allocating', () => {
    const allocs = mock.method(Buffer, 'allocUnsafe');
    try {
      const hostile = words(
        'ffffffff', // count 2^32-1
        '00000001', // 8 bytes of data
        '00000002',
      );
      assert.throws(() => new XdrReader(hostile).charArray(65536), codedError('EXDR_TOO_LONG'));
      assert.throws(() => new XdrReader(hostile).charArray(0xffffffff), codedError('EXDR_SHORT'));
      assert.equal(allocs.mock.callCount(), 0);
    } finally {
      allocs.mock.restore();
    }
  });

  it('refuses a count larger than the data', () => {
    const r = new XdrReader(
      words(
        '00000003', // count 3
        '00000061', // 'a'
        '00000062', // 'b'
      ),
    );
    assert.throws(() => r.charArray(100), codedError('EXDR_SHORT'));
  });
});
