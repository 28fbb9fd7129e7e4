// Component tests: max_client_requests and keepalive on the real proxy process (NOTES §2, §10.3).
// libvirt stops reading a client that has max_client_requests calls in flight, so the client's
// keepalive PINGs go unanswered and its PONGs unread, and busy clients get killed. The proxy instead
// keeps reading: calls past the limit wait in the proxy (in order, bounded), PINGs are answered at
// once, and the proxy's own keepalive never kills a client that is silent only because the proxy
// stopped reading it.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_CONTINUE,
  VIR_NET_STREAM,
} from '../../src/protocol/constants.js';
import { encodeMessage, readHeader } from '../../src/protocol/header.js';
import { openClient, startStack, type FakeConn, type Stack } from './fake-backend.js';
import { encodeConnectOpenArgs } from '../../src/protocol/payloads.js';
import { KEEPALIVE_PING, KEEPALIVE_PONG, WireClient, okReplyFrame, words, xdrString } from './wire-client.js';

const PROC_CONNECT_OPEN = 1;
const PROC_CONNECT_GET_VERSION = 4;
const PROC_DOMAIN_DEFINE_XML = 11;
const PROC_CONNECT_GET_HOSTNAME = 59;
const PROC_SUPPORTS_FEATURE = 60;
const PROC_STORAGE_VOL_UPLOAD = 208;
const MAX_REQUESTS = 2;
/** Keepalive of the proxy: a silent client is dead after about 1 s × (1 + 1). */
const KA_INTERVAL = 1;
const KA_COUNT = 1;
const KA_DEATH_MS = KA_INTERVAL * (KA_COUNT + 1) * 1000;

let stack: Stack;
const clients: WireClient[] = [];

before(async () => {
  stack = await startStack({
    max_client_requests: MAX_REQUESTS,
    keepalive_interval: KA_INTERVAL,
    keepalive_count: KA_COUNT,
  });
});

after(async () => {
  for (const c of clients) c.close();
  await stack.stop();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An opened client that asked for keepalive, so the proxy pings it and judges its silence. */
async function openedWithKeepalive(): Promise<{ client: WireClient; conn: FakeConn }> {
  const { client, conn } = await openClient(stack);
  clients.push(client);
  const f = client.send({ proc: PROC_SUPPORTS_FEATURE }, words(10));
  assert.deepEqual(await client.reply(f), okReplyFrame(f, words(1)));
  return { client, conn };
}

const isCall = (_f: Buffer, h: { type: number; prog: number }): boolean =>
  h.type === VIR_NET_CALL && h.prog === REMOTE_PROGRAM;
const isPong = (f: Buffer): boolean => f.equals(KEEPALIVE_PONG);

describe('max_client_requests without starving keepalive', () => {
  it('holds calls past the limit in the proxy and forwards them in order as replies come back', async () => {
    const { client, conn } = await openedWithKeepalive();
    const sent = [0, 1, 2, 3, 4].map((i) =>
      client.send({ proc: PROC_CONNECT_GET_HOSTNAME, serial: 100 + i }),
    );
    const seen = [await conn.nextCall(), await conn.nextCall()];
    await conn.expectNone(isCall, 300, 'call beyond max_client_requests');
    for (let i = 0; i < sent.length; i++) {
      conn.reply(seen[i] as Buffer, xdrString(`host${i}`));
      const got = await client.reply(sent[i] as Buffer);
      assert.deepEqual(got, okReplyFrame(sent[i] as Buffer, xdrString(`host${i}`)));
      if (i + 2 < sent.length) {
        seen.push(await conn.nextCall());
        await conn.expectNone(isCall, 100, 'more than one call released by one reply');
      }
    }
    sent.forEach((s, i) =>
      assert.ok(s.equals(seen[i] as Buffer), `call ${i} crossed unchanged and in order`),
    );
  });

  it('answers PINGs at once while the limit is reached, and the client outlives several keepalive periods', async () => {
    const { client, conn } = await openedWithKeepalive();
    const slow = [0, 1].map(() => client.send({ proc: PROC_CONNECT_GET_VERSION }));
    const held = [await conn.nextCall(), await conn.nextCall()];
    // A third call waits in the proxy; it must not stop the proxy from reading PINGs.
    const third = client.send({ proc: PROC_CONNECT_GET_HOSTNAME });
    const start = Date.now();
    while (Date.now() - start < KA_DEATH_MS * 2) {
      const before = client.frames.filter(isPong).length;
      const t0 = Date.now();
      client.write(KEEPALIVE_PING);
      await client.next((f) => isPong(f), 500, 'a PONG while throttled');
      assert.ok(Date.now() - t0 < 500);
      assert.equal(client.frames.filter(isPong).length, before + 1);
      await sleep(400);
    }
    assert.equal(client.closed, false, 'the busy client is still connected');
    for (const [i, call] of held.entries()) {
      conn.reply(call, words(0, 9000000 + i));
      assert.deepEqual(
        await client.reply(slow[i] as Buffer),
        okReplyFrame(slow[i] as Buffer, words(0, 9000000 + i)),
      );
    }
    const c3 = await conn.nextCall(PROC_CONNECT_GET_HOSTNAME);
    assert.ok(c3.equals(third));
    conn.reply(c3, xdrString('late'));
    assert.deepEqual(await client.reply(third), okReplyFrame(third, xdrString('late')));
  });

  it('keeps a client whose queue is full (no longer read) alive past its keepalive deadline', async () => {
    const { client, conn } = await openedWithKeepalive();
    const xml = Buffer.concat([xdrString('<domain>' + 'x'.repeat(60 * 1024) + '</domain>'), words(0)]);
    const held = [await sendAndSee(client, conn, xml), await sendAndSee(client, conn, xml)];
    // ~1.2 MiB more than the limit allows: the proxy queues 1 MiB, then stops reading.
    const waiting: Buffer[] = [];
    for (let i = 0; i < 20; i++) waiting.push(client.send({ proc: PROC_DOMAIN_DEFINE_XML }, xml));
    await sleep(KA_DEATH_MS * 2);
    assert.equal(client.closed, false, 'not declared dead while the proxy itself was not reading it');
    for (const c of held) conn.reply(c, Buffer.alloc(0));
    for (const w of waiting) {
      const c = await conn.nextCall(PROC_DOMAIN_DEFINE_XML);
      assert.ok(c.equals(w), 'queued call forwarded unchanged and in order');
      conn.reply(c, Buffer.alloc(0));
    }
    for (const w of waiting) assert.equal(readHeader(await client.reply(w)).status, 0);
    assert.equal(client.closed, false);
  });

  it('still kills a client that stays silent while it is being read', async () => {
    // A client that never answers PINGs; the proxy reads it (nothing is throttled) and hears nothing.
    const client = await WireClient.connect(stack.proxy.rwSock, { autoPong: false });
    clients.push(client);
    const open = client.send(
      { proc: PROC_CONNECT_OPEN },
      encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
    );
    assert.equal(readHeader(await client.reply(open)).status, 0);
    await stack.backend.nextConnection();
    const f = client.send({ proc: PROC_SUPPORTS_FEATURE }, words(10));
    assert.deepEqual(await client.reply(f), okReplyFrame(f, words(1)));
    const gone = await client.closesWithin(KA_DEATH_MS + 2500);
    assert.equal(gone, true, 'an idle, unresponsive client is closed by keepalive');
  });

  it('keeps stream packets behind calls that wait, so a new stream never gets data before its call', async () => {
    const { client, conn } = await openedWithKeepalive();
    const slow = [0, 1].map(() => client.send({ proc: PROC_CONNECT_GET_VERSION }));
    const held = [await conn.nextCall(), await conn.nextCall()];
    const upload = client.send(
      { proc: PROC_STORAGE_VOL_UPLOAD },
      Buffer.concat([xdrString('vol'), words(0, 0, 0, 0, 0)]),
    );
    const h = readHeader(upload);
    const data = encodeMessage(
      { ...h, type: VIR_NET_STREAM, status: VIR_NET_CONTINUE },
      Buffer.alloc(100, 7),
    );
    client.write(data);
    await conn.expectNone(
      (_f, x) => x.serial === h.serial,
      300,
      'upload call or its data before a slot is free',
    );
    conn.reply(held[0] as Buffer, words(0, 1));
    await client.reply(slow[0] as Buffer);
    const c = await conn.next((_f, x) => x.serial === h.serial);
    assert.ok(c.equals(upload), 'the call first');
    const d = await conn.next((_f, x) => x.serial === h.serial);
    assert.ok(d.equals(data), 'then its data');
    conn.reply(held[1] as Buffer, words(0, 2));
    await client.reply(slow[1] as Buffer);
  });

  it('bounds the proxy memory of a client that floods calls past the limit', async () => {
    const { client, conn } = await openedWithKeepalive();
    const xml = Buffer.concat([xdrString('<domain>' + 'y'.repeat(256 * 1024) + '</domain>'), words(0)]);
    const held = [await sendAndSee(client, conn, xml), await sendAndSee(client, conn, xml)];
    const rssBefore = stack.proxy.statusKiB('VmRSS');
    // 64 MiB of calls: far more than the proxy may hold for one client.
    const sent: Buffer[] = [];
    for (let i = 0; i < 256; i++) {
      sent.push(client.send({ proc: PROC_DOMAIN_DEFINE_XML }, xml));
    }
    const drained = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 1500);
      client.socket.once('drain', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    assert.ok(!drained, "the client's writes stall: the proxy stopped reading it");
    const growth = stack.proxy.statusKiB('VmRSS') - rssBefore;
    assert.ok(growth < 24 * 1024, `proxy RSS grew by ${growth} KiB while the client was throttled`);
    // PINGs are read again as soon as the queue is below its cap; release everything.
    conn.sink = (_f, h) => {
      if (h.type === VIR_NET_CALL && h.proc === PROC_DOMAIN_DEFINE_XML) {
        conn.send(okReplyFrame(_f));
        return true;
      }
      return false;
    };
    for (const c of held) conn.reply(c, Buffer.alloc(0));
    for (const s of sent) assert.equal(readHeader(await client.reply(s, 20000)).status, 0);
    conn.sink = null;
    client.write(KEEPALIVE_PING);
    await client.next((f) => isPong(f), 1000, 'a PONG after the flood');
  });
});

/** Sends a call and waits until the backend has it (so it is counted in flight). */
async function sendAndSee(client: WireClient, conn: FakeConn, payload: Buffer): Promise<Buffer> {
  const s = client.send({ proc: PROC_DOMAIN_DEFINE_XML }, payload);
  const c = await conn.nextCall(PROC_DOMAIN_DEFINE_XML);
  assert.ok(c.equals(s));
  return c;
}
