// Unit tests for the message header and framing helpers (NOTES §1.1–§1.4, §2), against byte
// fixtures written one XDR word per line.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_ERROR,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
} from '../../../src/protocol/constants.js';
import { encodeMessage, framePayload, readHeader, replyHeaderFor } from '../../../src/protocol/header.js';

/** One XDR word per argument, 8 hex digits each; a typo in a fixture fails loudly. */
function words(...w: string[]): Buffer {
  for (const x of w) assert.match(x, /^[0-9a-f]{8}$/, `bad fixture word ${x}`);
  return Buffer.from(w.join(''), 'hex');
}

// The PING of NOTES §2, byte for byte.
const PING = words(
  '0000001c', // length 28: header only
  '6b656570', // prog KEEPALIVE_PROGRAM ("keep")
  '00000001', // vers 1
  '00000001', // proc KEEPALIVE_PROC_PING
  '00000002', // type VIR_NET_MESSAGE
  '00000000', // serial 0
  '00000000', // status VIR_NET_OK
);

describe('encodeMessage', () => {
  it('builds the keepalive PING of NOTES §2', () => {
    const frame = encodeMessage({
      prog: KEEPALIVE_PROGRAM,
      vers: KEEPALIVE_PROTOCOL_VERSION,
      proc: KEEPALIVE_PROC_PING,
      type: VIR_NET_MESSAGE,
      serial: 0,
      status: VIR_NET_OK,
    });
    assert.deepEqual(frame, PING);
    // The same bytes as printed in NOTES §2.
    assert.equal(
      [...frame].map((b) => b.toString(16).padStart(2, '0')).join(' '),
      '00 00 00 1c 6b 65 65 70 00 00 00 01 00 00 00 01 00 00 00 02 00 00 00 00 00 00 00 00',
    );
  });

  it('appends the payload and counts it in the length word', () => {
    const frame = encodeMessage(
      {
        prog: REMOTE_PROGRAM,
        vers: 1,
        proc: REMOTE_PROC_CONNECT_OPEN,
        type: VIR_NET_CALL,
        serial: 7,
        status: 0,
      },
      words('00000000', '00000001'),
    );
    assert.deepEqual(
      frame,
      words(
        '00000024', // length 36 = 28 + 8
        '20008086', // prog REMOTE_PROGRAM
        '00000001', // vers 1
        '00000001', // proc REMOTE_PROC_CONNECT_OPEN
        '00000000', // type VIR_NET_CALL
        '00000007', // serial 7
        '00000000', // status VIR_NET_OK
        '00000000', // payload: name absent
        '00000001', // payload: flags VIR_CONNECT_RO
      ),
    );
  });

  it('writes unsigned fields above 2^31 and negative signed fields', () => {
    const frame = encodeMessage({
      prog: 0xffffffff,
      vers: 0x80000000,
      proc: -1,
      type: -2,
      serial: 0xfffffffe,
      status: -3,
    });
    assert.deepEqual(
      frame,
      words(
        '0000001c', // length 28
        'ffffffff', // prog
        '80000000', // vers
        'ffffffff', // proc -1
        'fffffffe', // type -2
        'fffffffe', // serial 2^32-2
        'fffffffd', // status -3
      ),
    );
    assert.deepEqual(readHeader(frame), {
      prog: 0xffffffff,
      vers: 0x80000000,
      proc: -1,
      type: -2,
      serial: 0xfffffffe,
      status: -3,
    });
  });

  it('treats an empty payload like none', () => {
    const h = { prog: 1, vers: 2, proc: 3, type: 4, serial: 5, status: 6 };
    assert.deepEqual(encodeMessage(h, Buffer.alloc(0)), encodeMessage(h));
    assert.deepEqual(encodeMessage(h, null), encodeMessage(h));
  });
});

describe('readHeader / framePayload', () => {
  it('decodes the PING header', () => {
    assert.deepEqual(readHeader(PING), {
      prog: KEEPALIVE_PROGRAM,
      vers: 1,
      proc: KEEPALIVE_PROC_PING,
      type: VIR_NET_MESSAGE,
      serial: 0,
      status: VIR_NET_OK,
    });
  });

  it('returns the payload as a view of the frame', () => {
    const frame = encodeMessage(
      { prog: 1, vers: 1, proc: 1, type: 0, serial: 0, status: 0 },
      Buffer.from('abcd'),
    );
    const p = framePayload(frame);
    assert.equal(p.toString(), 'abcd');
    frame[28] = 0x7a; // 'z'
    assert.equal(p.toString(), 'zbcd', 'payload shares memory with the frame');
    assert.equal(framePayload(PING).length, 0);
  });
});

describe('replyHeaderFor', () => {
  it('echoes prog, vers, proc and serial of the call', () => {
    const call = {
      prog: REMOTE_PROGRAM,
      vers: 1,
      proc: 66,
      type: VIR_NET_CALL,
      serial: 42,
      status: VIR_NET_OK,
    };
    assert.deepEqual(replyHeaderFor(call, VIR_NET_REPLY), {
      prog: REMOTE_PROGRAM,
      vers: 1,
      proc: 66,
      type: VIR_NET_REPLY,
      serial: 42,
      status: VIR_NET_OK,
    });
    assert.equal(replyHeaderFor(call, VIR_NET_REPLY, VIR_NET_ERROR).status, VIR_NET_ERROR);
  });
});
