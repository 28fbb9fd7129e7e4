// Unit tests for OrderedWriter's fd passing when the socket fails: every fd not yet sent is
// closed exactly once, none twice, and no retry outlives the socket (NOTES §1.8).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { native, nativeTestHelpers } from '../../../src/native/native.js';
import { OrderedWriter } from '../../../src/transport/ordered-writer.js';

const api = native();
const helpers = nativeTestHelpers();
const dir = mkdtempSync(join(tmpdir(), 'ordered-writer-'));
let server: net.Server;
let peers: net.Socket[] = [];

before(async () => {
  server = net.createServer((s) => {
    peers.push(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(join(dir, 'sock'), resolve));
});

after(() => {
  for (const p of peers) p.destroy();
  peers = [];
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function connected(): Promise<net.Socket> {
  const s = net.connect({ path: join(dir, 'sock') });
  s.on('error', () => undefined);
  await new Promise((resolve) => s.once('connect', resolve));
  return s;
}

const isOpen = (fd: number): boolean => existsSync(`/proc/self/fd/${fd}`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `body` with api.sendFd replaced, counting calls. */
async function withSendFd(
  fake: (sock: number, fd: number, call: number) => boolean,
  body: (calls: () => number) => Promise<void>,
): Promise<void> {
  const real = api.sendFd;
  let n = 0;
  api.sendFd = (sock, fd) => fake(sock, fd, n++);
  try {
    await body(() => n);
  } finally {
    api.sendFd = real;
  }
}

test('a socket that goes away while the kernel buffer is full: fds closed, retries stop', async () => {
  const sock = await connected();
  const w = new OrderedWriter(sock);
  const [a, b] = helpers.testPipe();
  const [c, d] = helpers.testPipe();
  await withSendFd(
    () => false,
    async (calls) => {
      w.writeWithFds(Buffer.from([0, 0, 0, 4]), [a, b]);
      // A second frame with fds waits behind the first.
      w.writeWithFds(Buffer.from([0, 0, 0, 4]), [c]);
      await sleep(20);
      assert.ok(calls() >= 1, 'sendFd was tried');
      sock.destroy();
      await sleep(30);
      const seen = calls();
      await sleep(30);
      assert.equal(calls(), seen, 'no retries once the socket is gone');
    },
  );
  for (const fd of [a, b, c]) assert.equal(isOpen(fd), false, `fd ${fd} closed`);
  api.closeFd(d);
});

test('a send error after some fds went out closes only the rest', async () => {
  const sock = await connected();
  const w = new OrderedWriter(sock);
  const [a, b] = helpers.testPipe();
  let reused: [number, number] | null = null;
  await withSendFd(
    (_s, _fd, call) => {
      if (call === 0) return true;
      // The writer has closed a after sending it; a busy daemon reuses the number at once.
      reused = helpers.testPipe();
      throw Object.assign(new Error('sendmsg: EPIPE'), { code: 'EPIPE' });
    },
    async () => {
      w.writeWithFds(Buffer.from([0, 0, 0, 4]), [a, b]);
      await sleep(20);
    },
  );
  assert.ok(reused !== null, 'the second fd was tried');
  const [r, x] = reused as [number, number];
  try {
    assert.ok(r === a || x === a, 'the test reused the number of the sent fd');
    assert.ok(isOpen(r) && isOpen(x), 'fds opened after the send stay open');
    assert.equal(isOpen(b), false, 'the unsent fd is closed');
  } finally {
    api.closeFd(r);
    api.closeFd(x);
  }
  assert.equal(sock.destroyed, true);
});
