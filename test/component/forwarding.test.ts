// Component tests: frame forwarding once a client is open (NOTES §1.9, §1.10, §2, §10.9). Calls,
// replies, events and stream packets must cross the real proxy as the exact bytes they came in,
// replies may come back in any order, and keepalive stays on its own leg in both directions.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  KEEPALIVE_PROGRAM,
  LXC_PROGRAM,
  QEMU_PROGRAM,
  REMOTE_PROGRAM,
  VIR_NET_CONTINUE,
  VIR_NET_ERROR,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_STREAM,
  VIR_NET_STREAM_HOLE,
} from '../../src/protocol/constants.js';
import { readHeader } from '../../src/protocol/header.js';
import { openClient, startStack, type OpenedClient, type Stack } from './fake-backend.js';
import {
  KEEPALIVE_PING,
  KEEPALIVE_PONG,
  errorReplyFrame,
  rpcErr,
  words,
  xdrString,
  type WireClient,
} from './wire-client.js';

const PROC_CONNECT_GET_TYPE = 3;
const PROC_CONNECT_GET_VERSION = 4;
const PROC_DOMAIN_DEFINE_XML = 11;
const PROC_CONNECT_GET_HOSTNAME = 59;
const PROC_DOMAIN_OPEN_CONSOLE = 201;
const PROC_STORAGE_VOL_UPLOAD = 208;
const PROC_STORAGE_VOL_DOWNLOAD = 209;
const PROC_EVENT_CALLBACK_LIFECYCLE = 318;
const QEMU_PROC_MONITOR_COMMAND = 1;
const QEMU_PROC_MONITOR_EVENT = 6;

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

const isKeepalive = (_f: Buffer, h: { prog: number }): boolean => h.prog === KEEPALIVE_PROGRAM;

describe('forwarding after CONNECT_OPEN', () => {
  it('passes calls and replies through byte for byte, small and multi-megabyte, on every program', async () => {
    const { client, conn } = await opened();
    const xml = Buffer.concat([xdrString('<domain>' + 'x'.repeat(1 << 20) + '</domain>'), words(0)]);
    const cases: Array<[number, number, Buffer, Buffer]> = [
      [REMOTE_PROGRAM, PROC_CONNECT_GET_HOSTNAME, Buffer.alloc(0), xdrString('fakehost')],
      [REMOTE_PROGRAM, PROC_DOMAIN_DEFINE_XML, xml, randomBytes(3 << 20)],
      [QEMU_PROGRAM, QEMU_PROC_MONITOR_COMMAND, xdrString('{"execute":"query-status"}'), xdrString('{}')],
      [LXC_PROGRAM, 1, words(0), words(0)],
    ];
    for (const [prog, proc, args, ret] of cases) {
      const sent = client.send({ prog, proc, serial: 1000 + proc }, args);
      const seen = await conn.next((_f, h) => h.prog === prog && h.proc === proc);
      assert.ok(seen.equals(sent), `call prog ${prog} proc ${proc} crossed unchanged`);
      const replied = conn.reply(seen, ret);
      const got = await client.reply(sent, 10000);
      assert.ok(got.equals(replied), `reply prog ${prog} proc ${proc} crossed unchanged`);
    }
    // Error replies are relayed verbatim too.
    const sent = client.send({ proc: PROC_CONNECT_GET_VERSION });
    const err = conn.replyError(
      await conn.nextCall(PROC_CONNECT_GET_VERSION),
      rpcErr('unknown procedure: 4'),
    );
    assert.deepEqual(await client.reply(sent), err);
  });

  it('delivers replies in the order the backend sends them, not the order of the calls', async () => {
    const { client, conn } = await opened();
    const a = client.send({ proc: PROC_CONNECT_GET_HOSTNAME, serial: 100 });
    const b = client.send({ proc: PROC_CONNECT_GET_VERSION, serial: 101 });
    const c = client.send({ proc: PROC_CONNECT_GET_TYPE, serial: 102 });
    const ca = await conn.nextCall(PROC_CONNECT_GET_HOSTNAME);
    const cb = await conn.nextCall(PROC_CONNECT_GET_VERSION);
    const cc = await conn.nextCall(PROC_CONNECT_GET_TYPE);
    assert.deepEqual([ca, cb, cc], [a, b, c]);
    const rc = conn.reply(cc, xdrString('QEMU'));
    await new Promise((r) => setTimeout(r, 20));
    const ra = conn.reply(ca, xdrString('fakehost'));
    const rb = conn.reply(cb, Buffer.from('0000000000989680', 'hex'));
    const first = await client.next((_f, h) => h.type === VIR_NET_REPLY);
    const second = await client.next((_f, h) => h.type === VIR_NET_REPLY);
    const third = await client.next((_f, h) => h.type === VIR_NET_REPLY);
    assert.deepEqual([first, second, third], [rc, ra, rb]);
  });

  it('relays backend events (MESSAGE, serial 1) unchanged on the remote and qemu programs', async () => {
    const { client, conn } = await opened();
    const lifecycle = conn.event(
      REMOTE_PROGRAM,
      PROC_EVENT_CALLBACK_LIFECYCLE,
      Buffer.concat([words(7), xdrString('guest1'), randomBytes(16), words(-1, 2, 0)]),
    );
    const monitor = conn.event(
      QEMU_PROGRAM,
      QEMU_PROC_MONITOR_EVENT,
      Buffer.concat([
        words(3),
        xdrString('guest1'),
        randomBytes(16),
        words(-1),
        xdrString('STOP'),
        words(0, 0, 0, 0, 0),
      ]),
    );
    const e1 = await client.next((_f, h) => h.type === VIR_NET_MESSAGE);
    const e2 = await client.next((_f, h) => h.type === VIR_NET_MESSAGE);
    assert.deepEqual(e1, lifecycle);
    assert.deepEqual(e2, monitor);
  });

  it('relays backend stream packets (data, hole, end, error) to the client unchanged and in order', async () => {
    const { client, conn } = await opened();
    const call = client.send({ proc: PROC_STORAGE_VOL_DOWNLOAD, serial: 77 }, randomBytes(40));
    const seen = await conn.nextCall(PROC_STORAGE_VOL_DOWNLOAD);
    assert.deepEqual(seen, call);
    const sent = [
      conn.reply(seen),
      conn.stream(seen, VIR_NET_CONTINUE, randomBytes(262120)),
      conn.stream(seen, VIR_NET_CONTINUE, Buffer.concat([words(0, 1 << 20), words(0)]), VIR_NET_STREAM_HOLE),
      conn.stream(seen, VIR_NET_CONTINUE, randomBytes(1000)),
      conn.stream(seen, VIR_NET_CONTINUE),
    ];
    const got: Buffer[] = [];
    for (let i = 0; i < sent.length; i++) got.push(await client.next((_f, h) => h.serial === 77));
    assert.deepEqual(got, sent);
    // A stream that fails on the daemon side: STREAM/ERROR with a remote_error payload.
    const console = client.send({ proc: PROC_DOMAIN_OPEN_CONSOLE, serial: 78 }, randomBytes(24));
    const cseen = await conn.nextCall(PROC_DOMAIN_OPEN_CONSOLE);
    assert.deepEqual(cseen, console);
    const r = conn.reply(cseen);
    const failure = conn.stream(
      cseen,
      VIR_NET_ERROR,
      errorReplyFrame(cseen, rpcErr('stream had I/O failure')).subarray(28),
    );
    assert.deepEqual(await client.next((_f, h) => h.serial === 78), r);
    assert.deepEqual(await client.next((_f, h) => h.serial === 78), failure);
  });

  it('relays client stream packets to the backend unchanged and in order', async () => {
    const { client, conn } = await opened();
    const call = client.send({ proc: PROC_STORAGE_VOL_UPLOAD, serial: 55 }, randomBytes(40));
    const seen = await conn.nextCall(PROC_STORAGE_VOL_UPLOAD);
    assert.deepEqual(seen, call);
    const reply = conn.reply(seen);
    assert.deepEqual(await client.reply(call), reply);
    const h = readHeader(call);
    const packets = [
      client.send({ ...h, type: VIR_NET_STREAM, status: VIR_NET_CONTINUE }, randomBytes(262120)),
      client.send({ ...h, type: VIR_NET_STREAM, status: VIR_NET_CONTINUE }, randomBytes(3)),
      client.send({ ...h, type: VIR_NET_STREAM_HOLE, status: VIR_NET_CONTINUE }, words(0, 65536, 0)),
      client.send({ ...h, type: VIR_NET_STREAM, status: VIR_NET_OK }),
    ];
    const got: Buffer[] = [];
    for (let i = 0; i < packets.length; i++) got.push(await conn.next((_f, x) => x.serial === 55));
    assert.deepEqual(got, packets);
    // The finish is acknowledged by the backend, and that reaches the client.
    const done = conn.stream(seen, VIR_NET_OK);
    assert.deepEqual(await client.next((_f, x) => x.serial === 55), done);
  });

  it('answers backend PINGs itself: the backend gets PONGs, the client never sees them', async () => {
    const { client, conn } = await opened();
    for (let i = 0; i < 3; i++) conn.ping();
    const deadline = Date.now() + 3000;
    while (conn.pongsReceived < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(conn.pongsReceived, 3);
    // Interleaved with normal traffic: still nothing keepalive-ish reaches the client.
    const sent = client.send({ proc: PROC_CONNECT_GET_HOSTNAME });
    conn.ping();
    const replied = conn.reply(await conn.nextCall(PROC_CONNECT_GET_HOSTNAME), xdrString('h'));
    assert.deepEqual(await client.reply(sent), replied);
    await client.expectNone(isKeepalive, 200, 'keepalive frame from the backend');
    assert.ok(client.frames.every((f) => readHeader(f).prog !== KEEPALIVE_PROGRAM));
  });

  it('answers client PINGs itself: the backend never sees them', async () => {
    const { client, conn } = await opened();
    client.write(KEEPALIVE_PING);
    client.write(KEEPALIVE_PING);
    assert.deepEqual(await client.next(isKeepalive), KEEPALIVE_PONG);
    assert.deepEqual(await client.next(isKeepalive), KEEPALIVE_PONG);
    client.write(KEEPALIVE_PONG);
    await conn.expectNone(isKeepalive, 200, 'keepalive frame from the client');
    assert.equal(conn.pingsReceived, 0);
    assert.equal(conn.pongsReceived, 0);
  });

  it('keeps REPLY/MESSAGE frames and unknown programs from the client away from the backend', async () => {
    const { client, conn } = await opened();
    client.send({ proc: PROC_CONNECT_GET_HOSTNAME, type: VIR_NET_REPLY, serial: 9 });
    client.send({ proc: PROC_CONNECT_GET_HOSTNAME, type: VIR_NET_MESSAGE, serial: 1 });
    const bad = client.send({ prog: 0x0badf00d, proc: 1, serial: 10 });
    assert.deepEqual(
      await client.reply(bad),
      errorReplyFrame(bad, rpcErr('Cannot find program 195948557 version 1')),
    );
    const ev = client.send({ proc: PROC_EVENT_CALLBACK_LIFECYCLE, serial: 11 });
    assert.deepEqual(await client.reply(ev), errorReplyFrame(ev, rpcErr('unknown procedure: 318')));
    const probe = client.send({ proc: PROC_CONNECT_GET_HOSTNAME, serial: 12 });
    const seen = await conn.next();
    assert.deepEqual(seen, probe, 'the first thing the backend sees after the handshake is the probe');
    conn.reply(seen, xdrString('h'));
    await client.reply(probe);
    await conn.expectNone(() => true, 100, 'frame');
  });
});
