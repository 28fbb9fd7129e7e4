// Component tests: coupled backpressure through the real proxy process (STYLE "State and flow",
// NOTES §1.10, §10.3). When one side stops reading, the proxy must stop reading the other side
// instead of buffering: the writer's socket stalls and the proxy's memory stays bounded. Once the
// reader resumes, every byte arrives, in order.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { VIR_NET_CONTINUE, VIR_NET_STREAM } from '../../src/protocol/constants.js';
import { encodeMessage, readHeader, type MessageHeader } from '../../src/protocol/header.js';
import { openClient, startStack, type Stack } from './fake-backend.js';
import type { WireClient } from './wire-client.js';

const PROC_STORAGE_VOL_UPLOAD = 208;
const PROC_STORAGE_VOL_DOWNLOAD = 209;
/** The largest data chunk libvirt puts in one stream packet. */
const CHUNK = 262120;
const TOTAL = 200 * 1024 * 1024;
const PACKETS = Math.ceil(TOTAL / CHUNK);
/** No drain for this long means the writer is blocked. */
const STALL_MS = 1000;
const MAX_RSS_GROWTH_KIB = 100 * 1024;

let stack: Stack;
const clients: WireClient[] = [];
const template = randomBytes(CHUNK);

before(async () => {
  stack = await startStack();
});

after(async () => {
  for (const c of clients) c.close();
  await stack.stop();
});

/** Stream packet number `seq`: the sequence number overwrites the first payload word. */
function packet(call: MessageHeader, seq: number): Buffer {
  const f = encodeMessage({ ...call, type: VIR_NET_STREAM, status: VIR_NET_CONTINUE }, template);
  f.writeUInt32BE(seq, 28);
  return f;
}

/** Checks packets as they arrive and counts them; anything out of order or altered is recorded. */
function streamChecker(serial: number): {
  sink: (f: Buffer, h: MessageHeader) => boolean;
  count: () => number;
  errors: string[];
} {
  let next = 0;
  const errors: string[] = [];
  const rest = template.subarray(4);
  return {
    sink: (f, h) => {
      if (h.type !== VIR_NET_STREAM || h.serial !== serial) return false;
      const seq = f.readUInt32BE(28);
      if (seq !== next && errors.length < 5) errors.push(`packet ${seq} arrived where ${next} was due`);
      if (!f.subarray(32).equals(rest) && errors.length < 5) errors.push(`packet ${seq} was altered`);
      next = seq + 1;
      return true;
    },
    count: () => next,
    errors,
  };
}

/**
 * Writes packets `from`..`to-1`, obeying write() === false; returns the index of the first packet
 * not written if the socket did not drain for STALL_MS (the peer stopped reading), else `to`.
 */
async function pump(
  sock: net.Socket,
  make: (seq: number) => Buffer,
  from: number,
  to: number,
): Promise<number> {
  for (let seq = from; seq < to; seq++) {
    if (sock.write(make(seq))) continue;
    const drained = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => {
        sock.removeListener('drain', onDrain);
        resolve(false);
      }, STALL_MS);
      const onDrain = (): void => {
        clearTimeout(t);
        resolve(true);
      };
      sock.once('drain', onDrain);
    });
    if (!drained) return seq + 1;
  }
  return to;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('backpressure', () => {
  it('a backend that stops reading stops the proxy reading the client; memory stays bounded', async () => {
    const { client, conn } = await openClient(stack);
    clients.push(client);
    const call = client.send({ proc: PROC_STORAGE_VOL_UPLOAD, serial: 900 }, randomBytes(40));
    conn.reply(await conn.nextCall(PROC_STORAGE_VOL_UPLOAD));
    await client.reply(call);
    const check = streamChecker(900);
    conn.sink = check.sink;
    conn.stopReading();
    const rss0 = stack.proxy.statusKiB('VmRSS');
    const h = readHeader(call);

    const stalledAt = await pump(client.socket, (seq) => packet(h, seq), 0, PACKETS);
    assert.ok(stalledAt < PACKETS, 'the client could not push 200 MiB into a backend that does not read');
    const inFlight = stalledAt * (CHUNK + 28);
    const rssStalled = stack.proxy.statusKiB('VmRSS');
    assert.ok(
      rssStalled - rss0 < MAX_RSS_GROWTH_KIB,
      `proxy RSS grew by ${rssStalled - rss0} KiB while the backend was not reading (${inFlight} bytes written)`,
    );
    // Nothing reached the backend's decoder while it was paused.
    assert.equal(check.count(), 0);

    conn.resumeReading();
    const done = await pump(client.socket, (seq) => packet(h, seq), stalledAt, PACKETS);
    assert.equal(done, PACKETS, 'writes resumed once the backend read again');
    await until(
      () => check.count() === PACKETS || check.errors.length > 0,
      60000,
      'all packets at the backend',
    );
    assert.deepEqual(check.errors, []);
    assert.equal(check.count(), PACKETS);
    const hwm = stack.proxy.statusKiB('VmHWM');
    assert.ok(hwm - rss0 < MAX_RSS_GROWTH_KIB, `proxy peak RSS grew by ${hwm - rss0} KiB over 200 MiB`);
  });

  it('a client that stops reading stops the proxy reading the backend; memory stays bounded', async () => {
    const { client, conn } = await openClient(stack);
    clients.push(client);
    const call = client.send({ proc: PROC_STORAGE_VOL_DOWNLOAD, serial: 901 }, randomBytes(40));
    const seen = await conn.nextCall(PROC_STORAGE_VOL_DOWNLOAD);
    conn.reply(seen);
    await client.reply(call);
    const check = streamChecker(901);
    client.sink = check.sink;
    client.socket.pause();
    const rss0 = stack.proxy.statusKiB('VmRSS');
    const h = readHeader(seen);

    const stalledAt = await pump(conn.socket, (seq) => packet(h, seq), 0, PACKETS);
    assert.ok(stalledAt < PACKETS, 'the backend could not push 200 MiB to a client that does not read');
    const rssStalled = stack.proxy.statusKiB('VmRSS');
    assert.ok(
      rssStalled - rss0 < MAX_RSS_GROWTH_KIB,
      `proxy RSS grew by ${rssStalled - rss0} KiB while the client was not reading`,
    );
    assert.equal(check.count(), 0);

    client.socket.resume();
    const done = await pump(conn.socket, (seq) => packet(h, seq), stalledAt, PACKETS);
    assert.equal(done, PACKETS);
    await until(
      () => check.count() === PACKETS || check.errors.length > 0,
      60000,
      'all packets at the client',
    );
    assert.deepEqual(check.errors, []);
  });
});
