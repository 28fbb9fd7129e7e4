// Unit tests for the wire error value (NOTES §1.5): the worked "authentication required" reply,
// the message/str1/str2 filling rules, and encode/decode round trips.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { CodedError } from '../../../src/protocol/coded-error.js';
import {
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROGRAM,
  VIR_ERR_ARGUMENT_UNSUPPORTED,
  VIR_ERR_INTERNAL_ERROR,
  VIR_ERR_NO_CONNECT,
  VIR_ERR_NO_SUPPORT,
  VIR_ERR_OPERATION_DENIED,
  VIR_ERR_RPC,
  VIR_ERR_SYSTEM_ERROR,
  VIR_FROM_DOMAIN,
  VIR_FROM_NONE,
  VIR_FROM_RPC,
  VIR_NET_ERROR,
  VIR_NET_REPLY,
} from '../../../src/protocol/constants.js';
import { encodeMessage, framePayload } from '../../../src/protocol/header.js';
import {
  decodeRemoteError,
  encodeRemoteError,
  remoteError,
  rpcError,
  type RemoteError,
} from '../../../src/protocol/remote-error.js';

/** One XDR word per argument, 8 hex digits each; a typo in a fixture fails loudly. */
function words(...w: string[]): Buffer {
  for (const x of w) assert.match(x, /^[0-9a-f]{8}$/, `bad fixture word ${x}`);
  return Buffer.from(w.join(''), 'hex');
}

// NOTES §1.5 worked example: the reply to CONNECT_OPEN (serial 5) sent before authentication.
const AUTH_REQUIRED_REPLY = words(
  '00000088', // length 136
  '20008086', // prog REMOTE_PROGRAM
  '00000001', // vers 1
  '00000001', // proc REMOTE_PROC_CONNECT_OPEN
  '00000001', // type VIR_NET_REPLY
  '00000005', // serial 5
  '00000001', // status VIR_NET_ERROR
  '00000027', // code 39 VIR_ERR_RPC
  '00000007', // domain 7 VIR_FROM_RPC
  '00000001', // message present
  '00000017', // message length 23
  '61757468', // "auth"
  '656e7469', // "enti"
  '63617469', // "cati"
  '6f6e2072', // "on r"
  '65717569', // "equi"
  '72656400', // "red" + 1 pad byte
  '00000002', // level VIR_ERR_ERROR
  '00000000', // dom absent
  '00000001', // str1 present
  '00000002', // str1 length 2
  '25730000', // "%s" + 2 pad bytes
  '00000001', // str2 present
  '00000017', // str2 length 23
  '61757468', // "auth"
  '656e7469', // "enti"
  '63617469', // "cati"
  '6f6e2072', // "on r"
  '65717569', // "equi"
  '72656400', // "red" + 1 pad byte
  '00000000', // str3 absent
  'ffffffff', // int1 -1
  'ffffffff', // int2 -1
  '00000000', // net absent
);

describe('encodeRemoteError', () => {
  it('builds the 136-byte "authentication required" reply of NOTES §1.5', () => {
    const frame = encodeMessage(
      {
        prog: REMOTE_PROGRAM,
        vers: 1,
        proc: REMOTE_PROC_CONNECT_OPEN,
        type: VIR_NET_REPLY,
        serial: 5,
        status: VIR_NET_ERROR,
      },
      encodeRemoteError(rpcError('authentication required')),
    );
    assert.equal(frame.length, 136);
    assert.deepEqual(frame, AUTH_REQUIRED_REPLY);
  });

  it('writes absent strings as a single zero word', () => {
    const e: RemoteError = {
      code: 1,
      domain: 0,
      message: null,
      level: 0,
      str1: null,
      str2: null,
      str3: null,
      int1: 0,
      int2: 0,
    };
    assert.deepEqual(
      encodeRemoteError(e),
      words(
        '00000001', // code 1
        '00000000', // domain 0
        '00000000', // message absent
        '00000000', // level 0
        '00000000', // dom absent
        '00000000', // str1 absent
        '00000000', // str2 absent
        '00000000', // str3 absent
        '00000000', // int1 0
        '00000000', // int2 0
        '00000000', // net absent
      ),
    );
  });
});

describe('decodeRemoteError', () => {
  it('decodes the worked example', () => {
    assert.deepEqual(decodeRemoteError(framePayload(AUTH_REQUIRED_REPLY)), {
      code: VIR_ERR_RPC,
      domain: VIR_FROM_RPC,
      message: 'authentication required',
      level: 2,
      str1: '%s',
      str2: 'authentication required',
      str3: null,
      int1: -1,
      int2: -1,
    });
  });

  it('round-trips every field, including non-ASCII text and all strings present', () => {
    const cases: RemoteError[] = [
      rpcError('authentication required'),
      remoteError(
        VIR_ERR_SYSTEM_ERROR,
        VIR_FROM_RPC,
        "Failed to connect socket to '/x': No such file or directory",
        2,
      ),
      {
        code: 113,
        domain: 72,
        message: 'ünïcødé ✓ 💡',
        level: 1,
        str1: 'a',
        str2: 'bb',
        str3: 'ccc',
        int1: -2147483648,
        int2: 2147483647,
      },
      { code: 0, domain: 0, message: '', level: 0, str1: '', str2: null, str3: '', int1: 0, int2: 0 },
    ];
    for (const e of cases) assert.deepEqual(decodeRemoteError(encodeRemoteError(e)), e);
  });

  it('skips a present dom (name, uuid, id) and ignores a present net after int2', () => {
    const payload = words(
      '00000001', // code 1
      '00000014', // domain 20 VIR_FROM_DOMAIN
      '00000001', // message present
      '00000001', // length 1
      '6d000000', // "m"
      '00000002', // level 2
      '00000001', // dom present
      '00000002', // dom name length 2
      '76310000', // "v1"
      '00112233', // dom uuid[0..3]
      '44556677', // dom uuid[4..7]
      '8899aabb', // dom uuid[8..11]
      'ccddeeff', // dom uuid[12..15]
      '00000003', // dom id 3
      '00000000', // str1 absent
      '00000000', // str2 absent
      '00000000', // str3 absent
      '00000004', // int1 4
      '00000005', // int2 5
      '00000001', // net present (not decoded; trailing data is ignored like rpcgen does)
    );
    assert.deepEqual(decodeRemoteError(payload), {
      code: 1,
      domain: VIR_FROM_DOMAIN,
      message: 'm',
      level: 2,
      str1: null,
      str2: null,
      str3: null,
      int1: 4,
      int2: 5,
    });
  });

  it('fails with a CodedError on a truncated payload', () => {
    const full = encodeRemoteError(rpcError('x'));
    for (let cut = 0; cut < full.length - 4; cut += 4) {
      assert.throws(
        () => decodeRemoteError(full.subarray(0, cut)),
        (e: unknown) => e instanceof CodedError && e.code === 'EXDR_SHORT',
        `cut at ${cut}`,
      );
    }
  });
});

describe('remoteError', () => {
  it('fills message from the code template and keeps the detail in str2', () => {
    const e = remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, 'connection already open');
    assert.deepEqual(e, {
      code: VIR_ERR_INTERNAL_ERROR,
      domain: VIR_FROM_RPC,
      message: 'internal error: connection already open',
      level: 2,
      str1: 'internal error: %1$s',
      str2: 'connection already open',
      str3: null,
      int1: -1,
      int2: -1,
    });
  });

  it('uses the libvirt texts for the codes the proxy raises', () => {
    assert.equal(
      remoteError(VIR_ERR_NO_SUPPORT, VIR_FROM_DOMAIN, 'virConnectSetIdentity').message,
      'this function is not supported by the connection driver: virConnectSetIdentity',
    );
    assert.equal(
      remoteError(VIR_ERR_NO_CONNECT, VIR_FROM_NONE, '<null>').message,
      'no connection driver available for <null>',
    );
    assert.equal(
      remoteError(VIR_ERR_OPERATION_DENIED, VIR_FROM_DOMAIN, 'read only access prevents virDomainCreate')
        .message,
      'operation forbidden: read only access prevents virDomainCreate',
    );
    assert.equal(
      remoteError(VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_FROM_NONE, "parameter 'x' not supported").message,
      "argument unsupported: parameter 'x' not supported",
    );
  });

  it('keeps a bare "%s" template for RPC and SYSTEM errors and carries int1 (errno)', () => {
    const e = remoteError(VIR_ERR_SYSTEM_ERROR, VIR_FROM_RPC, 'boom: No such file or directory', 2);
    assert.equal(e.message, 'boom: No such file or directory');
    assert.equal(e.str1, '%s');
    assert.equal(e.int1, 2);
    assert.equal(e.int2, -1);
  });

  it('does not expand "%s" inside the detail text', () => {
    const e = rpcError('unknown procedure: %s');
    assert.equal(e.message, 'unknown procedure: %s');
    assert.equal(e.str2, 'unknown procedure: %s');
  });

  it('copies "$" sequences of the detail verbatim (they are not replacement patterns)', () => {
    // Details can carry client text (URIs, host names), so nothing in them may be interpreted.
    const detail = "host 'a$$b$&c$`d$'e$1'";
    const e = remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, detail);
    assert.equal(e.message, `internal error: ${detail}`);
    assert.equal(e.str2, detail);
    assert.equal(rpcError(detail).message, detail);
  });
});
