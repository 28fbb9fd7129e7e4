// Component tests: failures and endings through the real proxy process (NOTES §1.1, §3.2, §10.1,
// §10.5): framing violations close only the offending client, a backend that dies answers every
// pending call and fires the close callback event, disconnects reach the backend, and CONNECT_CLOSE
// is answered only after every earlier reply.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { REMOTE_PROGRAM, VIR_NET_MESSAGE, VIR_NET_REPLY } from '../../src/protocol/constants.js';
import { readHeader } from '../../src/protocol/header.js';
import { openClient, startStack, type OpenedClient, type Stack } from './fake-backend.js';
import {
  WireClient,
  describeFrame,
  errorReplyFrame,
  internalErr,
  okReplyFrame,
  within,
  words,
  xdrString,
} from './wire-client.js';

const PROC_CONNECT_CLOSE = 2;
const PROC_CONNECT_GET_TYPE = 3;
const PROC_DOMAIN_DEFINE_XML = 11;
const PROC_CONNECT_GET_VERSION = 4;
const PROC_CONNECT_GET_HOSTNAME = 59;
const PROC_SUPPORTS_FEATURE = 60;
const PROC_REGISTER_CLOSE_CALLBACK = 360;
const PROC_EVENT_CONNECTION_CLOSED = 362;

let stack: Stack;
const clients: WireClient[] = [];

before(async () => {
  stack = await startStack();
});

after(async () => {
  for (const c of clients) c.close();
  await stack.stop();
});

async function opened(): Promise<OpenedClient> {
  const o = await openClient(stack);
  clients.push(o.client);
  return o;
}

/** A forwarded round trip, proving the client and its backend leg still work. */
async function roundTrip(o: OpenedClient): Promise<void> {
  const sent = o.client.send({ proc: PROC_CONNECT_GET_HOSTNAME });
  const replied = o.conn.reply(await o.conn.nextCall(PROC_CONNECT_GET_HOSTNAME), xdrString('fakehost'));
  assert.deepEqual(await o.client.reply(sent), replied);
}

describe('framing violations', () => {
  for (const [label, bytes] of [
    ['length word 0', words(0)],
    ['length word 4 (no header)', words(4)],
    ['length word 27 (short header)', Buffer.concat([words(27), Buffer.alloc(23)])],
    ['length word 32 MiB + 5', Buffer.concat([words(33554437), Buffer.alloc(64)])],
    ['length word 0xffffffff', words(0xffffffff)],
  ] as const) {
    it(`${label}: closes that client without a reply; another client keeps working`, async () => {
      const victim = await opened();
      const bystander = await opened();
      victim.client.write(bytes);
      assert.equal(await victim.client.closesWithin(2000), true, 'offending client closed');
      assert.equal(victim.client.frames.length, 1, 'nothing but the open reply was ever sent to it');
      await within(victim.conn.ended, 3000, "the proxy to hang up on the victim's backend");
      await roundTrip(bystander);
      assert.equal(bystander.client.closed, false);
    });
  }

  it('closes a client that has not opened yet on a bad length as well', async () => {
    const c = await WireClient.connect(stack.proxy.rwSock);
    clients.push(c);
    const other = await WireClient.connect(stack.proxy.rwSock);
    clients.push(other);
    c.write(Buffer.concat([words(12), Buffer.alloc(8)]));
    assert.equal(await c.closesWithin(2000), true);
    assert.equal(c.frames.length, 0);
    const probe = other.send({ proc: PROC_SUPPORTS_FEATURE }, words(10));
    assert.deepEqual(await other.reply(probe), okReplyFrame(probe, words(1)));
  });
});

describe('backend connection lost', () => {
  it('answers each pending call with an error, sends CONNECTION_CLOSED to a registered callback, then closes', async () => {
    const o = await opened();
    const { client, conn } = o;
    const reg = client.send({ proc: PROC_REGISTER_CLOSE_CALLBACK });
    const regReply = conn.reply(await conn.nextCall(PROC_REGISTER_CLOSE_CALLBACK));
    assert.deepEqual(await client.reply(reg), regReply);
    const a = client.send({ proc: PROC_CONNECT_GET_HOSTNAME, serial: 20 });
    const b = client.send({ proc: PROC_CONNECT_GET_VERSION, serial: 21 });
    await conn.nextCall(PROC_CONNECT_GET_HOSTNAME);
    await conn.nextCall(PROC_CONNECT_GET_VERSION);
    conn.destroy();
    await client.waitClosed();
    const after = client.frames.slice(client.frames.findIndex((f) => f.equals(regReply)) + 1);
    const replies = after.filter((f) => readHeader(f).type === VIR_NET_REPLY);
    assert.equal(replies.length, 2, 'one error reply per pending call');
    const bySerial = new Map(replies.map((f) => [readHeader(f).serial, f]));
    assert.deepEqual(bySerial.get(20), errorReplyFrame(a, internalErr('client socket is closed')));
    assert.deepEqual(bySerial.get(21), errorReplyFrame(b, internalErr('client socket is closed')));
    // CONNECT_EVENT_CONNECTION_CLOSED { int reason }: MESSAGE, serial 1, reason 1 (EOF), after the replies.
    const event = words(32, REMOTE_PROGRAM, 1, PROC_EVENT_CONNECTION_CLOSED, VIR_NET_MESSAGE, 1, 0, 1);
    assert.deepEqual(after[after.length - 1], event);
    assert.equal(after.length, 3);
  });

  it('without a close callback: error replies only, then the connection closes', async () => {
    const { client, conn } = await opened();
    const a = client.send({ proc: PROC_CONNECT_GET_TYPE, serial: 40 });
    await conn.nextCall(PROC_CONNECT_GET_TYPE);
    conn.destroy();
    await client.waitClosed();
    assert.equal(client.frames.length, 2);
    assert.deepEqual(client.frames[1], errorReplyFrame(a, internalErr('client socket is closed')));
  });
});

/** Waits until the proxy holds no more descriptors than `baseline` (every socket of a client released). */
async function fdsBackTo(baseline: number, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (stack.proxy.fdCount() > baseline) {
    if (Date.now() > deadline) {
      assert.fail(
        `${what}: the proxy still holds ${stack.proxy.fdCount()} fds, ${baseline} before the client came`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('releasing clients', () => {
  it('a client the proxy stopped reading (5 calls in flight, 1.5 MiB more waiting) is released when its backend dies', async () => {
    const baseline = stack.proxy.fdCount();
    const { client, conn } = await opened();
    const calls = [0, 1, 2, 3, 4].map((i) =>
      client.send({ proc: PROC_CONNECT_GET_HOSTNAME, serial: 60 + i }),
    );
    for (let i = 0; i < 5; i++) await conn.nextCall(PROC_CONNECT_GET_HOSTNAME);
    // max_client_requests (5) is reached: whatever comes now waits, and past a bound it stays unread.
    const big = Buffer.concat([xdrString('x'.repeat(512 * 1024)), words(0)]);
    for (let i = 0; i < 3; i++)
      calls.push(client.send({ proc: PROC_DOMAIN_DEFINE_XML, serial: 65 + i }, big));
    await new Promise((r) => setTimeout(r, 200));
    conn.destroy();
    await client.waitClosed();
    // Every call the proxy had read gets its error; unread ones simply die with the connection.
    const answered = client.frames.slice(1);
    assert.ok(answered.length >= 5, `${answered.length} error replies`);
    for (const f of answered) {
      const call = calls.find((c) => readHeader(c).serial === readHeader(f).serial);
      assert.ok(call !== undefined, `reply for an unknown serial ${readHeader(f).serial}`);
      assert.deepEqual(f, errorReplyFrame(call, internalErr('client socket is closed')));
    }
    assert.deepEqual(
      answered.map((f) => readHeader(f).serial),
      calls.slice(0, answered.length).map((c) => readHeader(c).serial),
    );
    await fdsBackTo(baseline, 'stalled client after backend loss');
  });

  it('a client that sent CONNECT_CLOSE is released completely, backend leg included', async () => {
    const baseline = stack.proxy.fdCount();
    const { client, conn } = await opened();
    const pending = client.send({ proc: PROC_CONNECT_GET_HOSTNAME });
    const close = client.send({ proc: PROC_CONNECT_CLOSE });
    const seen = await conn.nextCall(PROC_CONNECT_GET_HOSTNAME);
    assert.deepEqual(seen, pending);
    const reply = conn.reply(seen, xdrString('h'));
    await client.waitClosed();
    assert.deepEqual(client.frames.slice(1), [reply, okReplyFrame(close)]);
    await within(conn.ended, 3000, 'the proxy to hang up on the backend');
    await fdsBackTo(baseline, 'client after CONNECT_CLOSE');
  });

  it('a client that just disconnects is released completely', async () => {
    const baseline = stack.proxy.fdCount();
    const { client, conn } = await opened();
    client.close();
    await within(conn.ended, 3000, 'the proxy to hang up on the backend');
    await fdsBackTo(baseline, 'disconnected client');
  });
});

describe('endings', () => {
  it('a client that disconnects makes the proxy send CONNECT_CLOSE to its backend and hang up', async () => {
    const { client, conn } = await opened();
    // Even with a call in flight.
    client.send({ proc: PROC_CONNECT_GET_HOSTNAME });
    await conn.nextCall(PROC_CONNECT_GET_HOSTNAME);
    client.close();
    await within(conn.ended, 3000, 'the proxy to hang up on the backend');
    const closes = conn.callsOf(PROC_CONNECT_CLOSE);
    assert.equal(closes.length, 1, 'the backend saw a CONNECT_CLOSE call');
  });

  it('answers CONNECT_CLOSE after every earlier reply, then closes the connection', async () => {
    const { client, conn } = await opened();
    conn.autoConnectClose = false;
    const a = client.send({ proc: PROC_CONNECT_GET_HOSTNAME, serial: 30 });
    const b = client.send({ proc: PROC_CONNECT_GET_VERSION, serial: 31 });
    const close = client.send({ proc: PROC_CONNECT_CLOSE, serial: 32 });
    const ca = await conn.nextCall(PROC_CONNECT_GET_HOSTNAME);
    const cb = await conn.nextCall(PROC_CONNECT_GET_VERSION);
    assert.deepEqual([ca, cb], [a, b]);
    // The daemon answers the close first (its workers run calls concurrently), then the others.
    const seenClose = await conn.next((_f, h) => h.proc === PROC_CONNECT_CLOSE, 500).catch(() => null);
    if (seenClose !== null) conn.reply(seenClose);
    await new Promise((r) => setTimeout(r, 50));
    const rb = conn.reply(cb, Buffer.from('0000000000989680', 'hex'));
    await new Promise((r) => setTimeout(r, 50));
    const ra = conn.reply(ca, xdrString('fakehost'));
    await client.waitClosed();
    assert.deepEqual(
      client.frames.slice(1).map(describeFrame),
      [rb, ra, okReplyFrame(close)].map(describeFrame),
      'both earlier replies, then the CONNECT_CLOSE reply, then EOF',
    );
    assert.deepEqual(client.frames.slice(1), [rb, ra, okReplyFrame(close)]);
  });

  it('answers CONNECT_CLOSE at once when nothing is pending, and the backend leg goes away', async () => {
    const { client, conn } = await opened();
    const close = client.send({ proc: PROC_CONNECT_CLOSE, serial: 50 });
    assert.deepEqual(await client.reply(close), okReplyFrame(close));
    await client.waitClosed();
    await within(conn.ended, 3000, 'the proxy to hang up on the backend');
  });
});
