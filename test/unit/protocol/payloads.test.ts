// Unit tests for the payloads the proxy decodes or builds itself (NOTES §3.2, §1.7): CONNECT_OPEN,
// AUTH_LIST, CONNECT_SET_IDENTITY typed parameters, and the one-int / one-string bodies.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { CodedError } from '../../../src/protocol/coded-error.js';
import {
  REMOTE_AUTH_NONE,
  REMOTE_AUTH_POLKIT,
  REMOTE_AUTH_SASL,
  VIR_TYPED_PARAM_BOOLEAN,
  VIR_TYPED_PARAM_DOUBLE,
  VIR_TYPED_PARAM_INT,
  VIR_TYPED_PARAM_LLONG,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_UINT,
  VIR_TYPED_PARAM_ULLONG,
} from '../../../src/protocol/constants.js';
import {
  decodeAuthList,
  decodeConnectOpenArgs,
  decodeInt,
  decodeSetIdentityArgs,
  encodeAuthList,
  encodeConnectOpenArgs,
  encodeInt,
  encodeSetIdentityArgs,
  encodeString,
  encodeTypedParams,
  readTypedParam,
  writeTypedParam,
  type TypedParam,
} from '../../../src/protocol/payloads.js';
import { XdrReader } from '../../../src/protocol/xdr-reader.js';
import { XdrWriter } from '../../../src/protocol/xdr-writer.js';

/** One XDR word per argument, 8 hex digits each; a typo in a fixture fails loudly. */
function words(...w: string[]): Buffer {
  for (const x of w) assert.match(x, /^[0-9a-f]{8}$/, `bad fixture word ${x}`);
  return Buffer.from(w.join(''), 'hex');
}

function codedError(code: string): (e: unknown) => boolean {
  return (e) => e instanceof CodedError && e.code === code;
}

describe('CONNECT_OPEN args', () => {
  const QEMU_SYSTEM_RO = words(
    '00000001', // name present
    '0000000e', // name length 14
    '71656d75', // "qemu"
    '3a2f2f2f', // ":///"
    '73797374', // "syst"
    '656d0000', // "em" + 2 pad bytes
    '00000001', // flags VIR_CONNECT_RO
  );

  it('encodes a name and flags', () => {
    assert.deepEqual(encodeConnectOpenArgs({ name: 'qemu:///system', flags: 1 }), QEMU_SYSTEM_RO);
  });

  it('decodes a name and flags', () => {
    assert.deepEqual(decodeConnectOpenArgs(QEMU_SYSTEM_RO), { name: 'qemu:///system', flags: 1 });
  });

  it('tells an absent name from an empty one', () => {
    const absent = words(
      '00000000', // name absent
      '00000000', // flags 0
    );
    const empty = words(
      '00000001', // name present
      '00000000', // name length 0
      '00000000', // flags 0
    );
    assert.deepEqual(encodeConnectOpenArgs({ name: null, flags: 0 }), absent);
    assert.deepEqual(encodeConnectOpenArgs({ name: '', flags: 0 }), empty);
    assert.deepEqual(decodeConnectOpenArgs(absent), { name: null, flags: 0 });
    assert.deepEqual(decodeConnectOpenArgs(empty), { name: '', flags: 0 });
  });

  it('reads flags as unsigned', () => {
    const p = words(
      '00000000', // name absent
      'ffffffff', // flags with every bit set
    );
    assert.deepEqual(decodeConnectOpenArgs(p), { name: null, flags: 0xffffffff });
  });

  it('rejects a presence flag other than 0/1, a short body and bad padding', () => {
    assert.throws(() => decodeConnectOpenArgs(words('00000002', '00000000')), codedError('EXDR_BOOL'));
    assert.throws(() => decodeConnectOpenArgs(QEMU_SYSTEM_RO.subarray(0, 24)), codedError('EXDR_SHORT'));
    const badPad = Buffer.from(QEMU_SYSTEM_RO);
    badPad[23] = 1; // last pad byte of "em\0\0"
    assert.throws(() => decodeConnectOpenArgs(badPad), codedError('EXDR_PADDING'));
  });

  it('ignores trailing bytes after the args, as rpcgen decoders do', () => {
    const p = Buffer.concat([QEMU_SYSTEM_RO, words('deadbeef')]);
    assert.deepEqual(decodeConnectOpenArgs(p), { name: 'qemu:///system', flags: 1 });
  });
});

describe('AUTH_LIST ret', () => {
  it('encodes the one-element list a daemon returns', () => {
    assert.deepEqual(
      encodeAuthList([REMOTE_AUTH_POLKIT]),
      words(
        '00000001', // count 1
        '00000002', // REMOTE_AUTH_POLKIT
      ),
    );
  });

  it('round-trips zero to twenty entries', () => {
    assert.deepEqual(encodeAuthList([]), words('00000000'));
    for (const list of [
      [],
      [REMOTE_AUTH_NONE],
      [REMOTE_AUTH_SASL, REMOTE_AUTH_NONE],
      new Array<number>(20).fill(1),
    ]) {
      assert.deepEqual(decodeAuthList(encodeAuthList(list)), list);
    }
  });

  it('refuses more than REMOTE_AUTH_TYPE_LIST_MAX (20) entries', () => {
    assert.throws(
      () => decodeAuthList(encodeAuthList(new Array<number>(21).fill(0))),
      codedError('EXDR_TOO_LONG'),
    );
  });
});

describe('typed parameters (CONNECT_SET_IDENTITY args)', () => {
  const ALL_TYPES: TypedParam[] = [
    { field: 'int', type: VIR_TYPED_PARAM_INT, value: -5 },
    { field: 'uint', type: VIR_TYPED_PARAM_UINT, value: 0xfffffffe },
    { field: 'll', type: VIR_TYPED_PARAM_LLONG, value: -2n },
    { field: 'ull', type: VIR_TYPED_PARAM_ULLONG, value: 0xffffffffffffffffn },
    { field: 'dbl', type: VIR_TYPED_PARAM_DOUBLE, value: 1.5 },
    { field: 'b', type: VIR_TYPED_PARAM_BOOLEAN, value: true },
    { field: 's', type: VIR_TYPED_PARAM_STRING, value: 'xyz' },
  ];

  const ALL_TYPES_ARGS = words(
    '00000007', // params count 7
    '00000003', // [0] field length 3
    '696e7400', // [0] "int" + pad
    '00000001', // [0] type VIR_TYPED_PARAM_INT
    'fffffffb', // [0] value -5
    '00000004', // [1] field length 4
    '75696e74', // [1] "uint"
    '00000002', // [1] type VIR_TYPED_PARAM_UINT
    'fffffffe', // [1] value 4294967294
    '00000002', // [2] field length 2
    '6c6c0000', // [2] "ll" + pad
    '00000003', // [2] type VIR_TYPED_PARAM_LLONG
    'ffffffff', // [2] value -2, high word
    'fffffffe', // [2] value -2, low word
    '00000003', // [3] field length 3
    '756c6c00', // [3] "ull" + pad
    '00000004', // [3] type VIR_TYPED_PARAM_ULLONG
    'ffffffff', // [3] value 2^64-1, high word
    'ffffffff', // [3] value 2^64-1, low word
    '00000003', // [4] field length 3
    '64626c00', // [4] "dbl" + pad
    '00000005', // [4] type VIR_TYPED_PARAM_DOUBLE
    '3ff80000', // [4] 1.5, IEEE 754 high word
    '00000000', // [4] 1.5, low word
    '00000001', // [5] field length 1
    '62000000', // [5] "b" + pad
    '00000006', // [5] type VIR_TYPED_PARAM_BOOLEAN
    '00000001', // [5] value true
    '00000001', // [6] field length 1
    '73000000', // [6] "s" + pad
    '00000007', // [6] type VIR_TYPED_PARAM_STRING
    '00000003', // [6] value length 3
    '78797a00', // [6] "xyz" + pad
    '00000000', // flags 0
  );

  it('encodes one parameter of every type', () => {
    assert.deepEqual(encodeSetIdentityArgs({ params: ALL_TYPES, flags: 0 }), ALL_TYPES_ARGS);
  });

  it('decodes one parameter of every type', () => {
    assert.deepEqual(decodeSetIdentityArgs(ALL_TYPES_ARGS), { params: ALL_TYPES, flags: 0 });
  });

  it('encodes a realistic identity', () => {
    const params: TypedParam[] = [
      { field: 'user-name', type: VIR_TYPED_PARAM_STRING, value: 'root' },
      { field: 'unix-user-id', type: VIR_TYPED_PARAM_ULLONG, value: 0n },
      { field: 'process-id', type: VIR_TYPED_PARAM_LLONG, value: -1n },
    ];
    assert.deepEqual(
      encodeSetIdentityArgs({ params, flags: 0 }),
      words(
        '00000003', // params count 3
        '00000009', // [0] field length 9
        '75736572', // [0] "user"
        '2d6e616d', // [0] "-nam"
        '65000000', // [0] "e" + pad
        '00000007', // [0] type VIR_TYPED_PARAM_STRING
        '00000004', // [0] value length 4
        '726f6f74', // [0] "root"
        '0000000c', // [1] field length 12
        '756e6978', // [1] "unix"
        '2d757365', // [1] "-use"
        '722d6964', // [1] "r-id"
        '00000004', // [1] type VIR_TYPED_PARAM_ULLONG
        '00000000', // [1] value 0, high word
        '00000000', // [1] value 0, low word
        '0000000a', // [2] field length 10
        '70726f63', // [2] "proc"
        '6573732d', // [2] "ess-"
        '69640000', // [2] "id" + pad
        '00000003', // [2] type VIR_TYPED_PARAM_LLONG
        'ffffffff', // [2] value -1, high word
        'ffffffff', // [2] value -1, low word
        '00000000', // flags 0
      ),
    );
  });

  it('decodes any nonzero boolean as true and writes booleans as 0/1', () => {
    const r = new XdrReader(
      words(
        '00000001', // field length 1
        '62000000', // "b" + pad
        '00000006', // type VIR_TYPED_PARAM_BOOLEAN
        '00000002', // value 2
      ),
    );
    assert.deepEqual(readTypedParam(r), { field: 'b', type: VIR_TYPED_PARAM_BOOLEAN, value: true });
    const w = new XdrWriter();
    writeTypedParam(w, { field: 'b', type: VIR_TYPED_PARAM_BOOLEAN, value: false });
    writeTypedParam(w, { field: 'b', type: VIR_TYPED_PARAM_BOOLEAN, value: 1 });
    assert.deepEqual(w.toBuffer().subarray(12, 16), words('00000000'));
    assert.deepEqual(w.toBuffer().subarray(28, 32), words('00000001'));
  });

  it('rejects unknown types both ways', () => {
    const unknown = words(
      '00000001', // field length 1
      '78000000', // "x" + pad
      '00000008', // type 8: not a virTypedParameterType
      '00000000', // would-be value
    );
    assert.throws(() => readTypedParam(new XdrReader(unknown)), codedError('EXDR_PARAM_TYPE'));
    assert.throws(
      () => writeTypedParam(new XdrWriter(), { field: 'x', type: 0, value: 0 }),
      codedError('EXDR_PARAM_TYPE'),
    );
  });

  it('refuses more than REMOTE_CONNECT_IDENTITY_PARAMS_MAX (20) parameters', () => {
    const p = (i: number): TypedParam => ({ field: `f${i}`, type: VIR_TYPED_PARAM_INT, value: i });
    const twenty = Array.from({ length: 20 }, (_, i) => p(i));
    assert.equal(
      decodeSetIdentityArgs(encodeSetIdentityArgs({ params: twenty, flags: 3 })).params.length,
      20,
    );
    const args = encodeSetIdentityArgs({ params: [...twenty, p(20)], flags: 0 });
    assert.throws(() => decodeSetIdentityArgs(args), codedError('EXDR_TOO_LONG'));
  });

  it('returns the writer so callers can append more fields', () => {
    const w = encodeTypedParams([]).uint(9);
    assert.deepEqual(
      w.toBuffer(),
      words(
        '00000000', // params count 0
        '00000009', // appended word
      ),
    );
  });
});

describe('single-value bodies', () => {
  it('encodes and decodes one int', () => {
    assert.deepEqual(encodeInt(-1), words('ffffffff'));
    assert.deepEqual(encodeInt(10), words('0000000a'));
    assert.equal(decodeInt(words('80000000')), -2147483648);
    assert.throws(() => decodeInt(Buffer.alloc(3)), codedError('EXDR_SHORT'));
  });

  it('encodes one string with padding', () => {
    assert.deepEqual(
      encodeString('qemu:///system'),
      words(
        '0000000e', // length 14
        '71656d75', // "qemu"
        '3a2f2f2f', // ":///"
        '73797374', // "syst"
        '656d0000', // "em" + 2 pad bytes
      ),
    );
  });
});
