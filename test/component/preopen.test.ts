// Component tests: what the real proxy process answers before CONNECT_OPEN, byte for byte (NOTES
// §1.11, §2, §3.2, §10.1): unknown programs and procedures, bad statuses, calls that need an open
// connection, the keepalive feature and PING/PONG, and messages a client should not send.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  KEEPALIVE_PROGRAM,
  QEMU_PROGRAM,
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_CALL_WITH_FDS,
  VIR_NET_CONTINUE,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_STREAM,
  VIR_NET_STREAM_HOLE,
} from '../../src/protocol/constants.js';
import { startStack, type Stack } from './fake-backend.js';
import {
  KEEPALIVE_PING,
  KEEPALIVE_PONG,
  WireClient,
  errorReplyFrame,
  internalErr,
  okReplyFrame,
  rpcErr,
  words,
} from './wire-client.js';

const PROC_CONNECT_CLOSE = 2;
const PROC_DOMAIN_LOOKUP_BY_NAME = 23;
const PROC_CONNECT_LIST_NETWORKS = 38;
const PROC_CONNECT_GET_HOSTNAME = 59;
const PROC_SUPPORTS_FEATURE = 60;
const PROC_AUTH_LIST = 66;
const PROC_CONNECT_LIST_STORAGE_POOLS = 72;
const PROC_NODE_LIST_DEVICES = 112;
const PROC_CONNECT_LIST_SECRETS = 140;
const PROC_CONNECT_GET_LIB_VERSION = 157;
const PROC_SET_IDENTITY = 419;

let stack: Stack;
const clients: WireClient[] = [];

async function client(): Promise<WireClient> {
  const c = await WireClient.connect(stack.proxy.rwSock);
  clients.push(c);
  return c;
}

/** Sends one frame and asserts the reply is exactly `expected`. */
async function expectReply(c: WireClient, sent: Buffer, expected: Buffer): Promise<void> {
  const got = await c.reply(sent);
  assert.deepEqual(got, expected);
}

before(async () => {
  stack = await startStack();
});

after(async () => {
  for (const c of clients) c.close();
  await stack.stop();
});

describe('before CONNECT_OPEN', () => {
  it('answers a CALL of an unknown program with "Cannot find program", echoing prog/vers/proc/serial', async () => {
    const c = await client();
    const sent = c.send({ prog: 0x12345678, vers: 7, proc: 12345, serial: 0xfffffff0 }, words(1, 2, 3));
    await expectReply(c, sent, errorReplyFrame(sent, rpcErr('Cannot find program 305419896 version 7')));
    // A known program with a wrong version is the same as an unknown program.
    const v2 = c.send({ prog: REMOTE_PROGRAM, vers: 2, proc: PROC_AUTH_LIST, serial: 5 });
    await expectReply(c, v2, errorReplyFrame(v2, rpcErr('Cannot find program 536903814 version 2')));
    assert.equal(c.closed, false);
  });

  it('worked example: the whole frame for an unknown program, word by word', async () => {
    const c = await client();
    const sent = c.send({ prog: 1, vers: 1, proc: 1, serial: 9 });
    const msg = 'Cannot find program 1 version 1'; // 31 bytes + 1 pad
    const expected = Buffer.concat([
      words(152), // 28-byte header + 124-byte remote_error
      words(1, 1, 1, 1 /* REPLY */, 9, 1 /* ERROR */),
      words(39, 7), // VIR_ERR_RPC, VIR_FROM_RPC
      words(1, 31),
      Buffer.from(msg + '\0'),
      words(2, 0), // level ERROR, dom absent
      words(1, 2),
      Buffer.from('%s\0\0'),
      words(1, 31),
      Buffer.from(msg + '\0'),
      words(0, -1, -1, 0), // str3 absent, int1, int2, net absent
    ]);
    assert.equal(expected.readUInt32BE(0), expected.length);
    await expectReply(c, sent, expected);
  });

  it('drops non-CALL messages of an unknown program silently', async () => {
    const c = await client();
    c.send({ prog: 0x12345678, proc: 1, type: VIR_NET_MESSAGE });
    c.send({ prog: 0x12345678, proc: 1, type: VIR_NET_STREAM, status: VIR_NET_CONTINUE }, words(1));
    const probe = c.send({ proc: PROC_SUPPORTS_FEATURE }, words(10));
    await expectReply(c, probe, okReplyFrame(probe, words(1)));
    assert.equal(c.frames.length, 1);
  });

  it('answers unknown procedures 0, 9999, -1 and the event-only 107 with "unknown procedure: N"', async () => {
    const c = await client();
    for (const proc of [0, 9999, -1, 107, 318]) {
      const sent = c.send({ proc });
      await expectReply(c, sent, errorReplyFrame(sent, rpcErr(`unknown procedure: ${proc}`)));
    }
    // The qemu program's event-only procedure 6 likewise.
    const q = c.send({ prog: QEMU_PROGRAM, proc: 6 });
    await expectReply(c, q, errorReplyFrame(q, rpcErr('unknown procedure: 6')));
    assert.equal(c.closed, false);
  });

  it('answers a CALL with a status other than OK with "Unexpected message status N"', async () => {
    const c = await client();
    for (const status of [1, 2, 77]) {
      const sent = c.send({ proc: PROC_SUPPORTS_FEATURE, status }, words(10));
      await expectReply(c, sent, errorReplyFrame(sent, rpcErr(`Unexpected message status ${status}`)));
    }
  });

  it('refuses calls that need a hypervisor connection: "internal error: hypervisor connection not open"', async () => {
    const c = await client();
    for (const proc of [
      PROC_CONNECT_GET_HOSTNAME,
      PROC_DOMAIN_LOOKUP_BY_NAME,
      PROC_CONNECT_GET_LIB_VERSION,
      PROC_SET_IDENTITY,
    ]) {
      const sent = c.send({ proc }, words(0, 0));
      await expectReply(c, sent, errorReplyFrame(sent, internalErr('hypervisor connection not open')));
    }
    const q = c.send({ prog: QEMU_PROGRAM, proc: 1 }, words(0));
    await expectReply(c, q, errorReplyFrame(q, internalErr('hypervisor connection not open')));
    // A feature other than keepalive needs the connection too.
    const f = c.send({ proc: PROC_SUPPORTS_FEATURE }, words(9));
    await expectReply(c, f, errorReplyFrame(f, internalErr('hypervisor connection not open')));
  });

  it('refuses secondary-driver calls with "internal error: connection not open"', async () => {
    const c = await client();
    for (const proc of [
      PROC_CONNECT_LIST_NETWORKS,
      PROC_CONNECT_LIST_STORAGE_POOLS,
      PROC_NODE_LIST_DEVICES,
      PROC_CONNECT_LIST_SECRETS,
    ]) {
      const sent = c.send({ proc }, words(16));
      await expectReply(c, sent, errorReplyFrame(sent, internalErr('connection not open')));
    }
  });

  it('answers SUPPORTS_FEATURE(10) with 1 before open, and AUTH_LIST with [NONE] on an auth-none socket', async () => {
    const c = await client();
    const f = c.send({ proc: PROC_SUPPORTS_FEATURE, serial: 42 }, words(10));
    await expectReply(c, f, okReplyFrame(f, words(1)));
    const a = c.send({ proc: PROC_AUTH_LIST });
    await expectReply(c, a, okReplyFrame(a, words(1, 0)));
  });

  it('treats a CALL_WITH_FDS carrying no fds like the CALL it is, before open too', async () => {
    const c = await client();
    // fd count word 0, then SUPPORTS_FEATURE's argument; the reply is a plain REPLY.
    const f = c.send({ proc: PROC_SUPPORTS_FEATURE, serial: 43, type: VIR_NET_CALL_WITH_FDS }, words(0, 10));
    const got = await c.reply(f);
    assert.equal(got.readInt32BE(16), VIR_NET_REPLY);
    assert.equal(got.readInt32BE(24), VIR_NET_OK);
    assert.deepEqual(got.subarray(28), words(1));
    // An unknown procedure sent that way is refused and the stream stays in step.
    const u = c.send({ proc: 9999, serial: 44, type: VIR_NET_CALL_WITH_FDS }, words(0));
    const ur = await c.reply(u);
    assert.equal(ur.readInt32BE(24), 1);
    const a = c.send({ proc: PROC_AUTH_LIST, serial: 45 });
    await expectReply(c, a, okReplyFrame(a, words(1, 0)));
  });

  it('answers a keepalive PING with a PONG at any time, never anything else', async () => {
    const c = await WireClient.connect(stack.proxy.rwSock, { autoPong: false });
    clients.push(c);
    c.write(KEEPALIVE_PING);
    assert.deepEqual(await c.next(), KEEPALIVE_PONG);
    // Also between calls, and a PONG from the client is simply absorbed.
    const f = c.send({ proc: PROC_SUPPORTS_FEATURE }, words(10));
    c.write(KEEPALIVE_PONG);
    c.write(KEEPALIVE_PING);
    await expectReply(c, f, okReplyFrame(f, words(1)));
    assert.deepEqual(await c.next(), KEEPALIVE_PONG);
    await c.expectNone(() => true, 200);
  });

  it('ignores REPLY, MESSAGE and STREAM frames sent by a client: no answer, still connected', async () => {
    const c = await client();
    c.send({ proc: PROC_CONNECT_GET_HOSTNAME, type: VIR_NET_REPLY, serial: 3 });
    c.send({ proc: PROC_CONNECT_GET_HOSTNAME, type: VIR_NET_MESSAGE, serial: 1 });
    c.send({ proc: 201, type: VIR_NET_STREAM, status: VIR_NET_CONTINUE, serial: 4 }, words(1, 2));
    c.send({ proc: 209, type: VIR_NET_STREAM_HOLE, status: VIR_NET_CONTINUE, serial: 4 }, words(0, 4096, 0));
    // A keepalive-program message with an unknown procedure is consumed as well.
    c.send({ prog: KEEPALIVE_PROGRAM, proc: 3, type: VIR_NET_MESSAGE, serial: 0 });
    const f = c.send({ proc: PROC_SUPPORTS_FEATURE }, words(10));
    await expectReply(c, f, okReplyFrame(f, words(1)));
    assert.equal(c.frames.length, 1, 'only the reply to the probe came back');
    assert.equal(c.closed, false);
  });

  it('answers a CALL on the keepalive program with "Cannot find program 1801807216 version 1"', async () => {
    const c = await client();
    const sent = c.send({ prog: KEEPALIVE_PROGRAM, proc: 1, type: VIR_NET_CALL, status: VIR_NET_OK });
    await expectReply(c, sent, errorReplyFrame(sent, rpcErr('Cannot find program 1801807216 version 1')));
  });

  it('answers CONNECT_CLOSE before open with an empty OK reply, then closes', async () => {
    const c = await client();
    const sent = c.send({ proc: PROC_CONNECT_CLOSE });
    await expectReply(c, sent, okReplyFrame(sent));
    await c.waitClosed();
  });

  it('made no connection to the backend for any of this', () => {
    assert.equal(stack.backend.conns.length, 0);
  });
});
