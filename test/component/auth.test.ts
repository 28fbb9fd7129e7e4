// Component tests: a polkit-protected socket on the real proxy process (NOTES §3.1, §3.2, §7.2).
// A root peer is authenticated by AUTH_LIST itself (answered [NONE]); any other peer must
// authenticate first, and everything but the auth procedures, keepalive and the program/procedure
// checks is refused with "authentication required". The non-root peer is a child process run as
// `nobody` through setpriv.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeConnectOpenArgs } from '../../src/protocol/payloads.js';
import { repoRoot, startStack, type Stack } from './fake-backend.js';
import { KEEPALIVE_PONG, WireClient, errorReplyFrame, okReplyFrame, rpcErr, words } from './wire-client.js';

const PROC_CONNECT_OPEN = 1;
const PROC_CONNECT_GET_HOSTNAME = 59;
const PROC_SUPPORTS_FEATURE = 60;
const PROC_AUTH_LIST = 66;

const isRoot = process.getuid?.() === 0;
let stack: Stack;
const clients: WireClient[] = [];

before(async () => {
  stack = await startStack({ auth_unix_rw: 'polkit', unix_sock_rw_perms: '0777' });
  // Let an unprivileged peer reach the socket.
  await chmod(stack.dir, 0o755);
  await chmod(join(stack.dir, 'run'), 0o755);
});

after(async () => {
  for (const c of clients) c.close();
  await stack.stop();
});

/** The reply NOTES §1.5 spells out word by word for a call made before authentication. */
function authRequiredFrame(prog: number, proc: number, serial: number): Buffer {
  const text = Buffer.from('authentication required\0'); // 23 bytes + 1 pad
  return Buffer.concat([
    words(0x88, prog, 1, proc, 1, serial, 1),
    words(39, 7, 1, 23),
    text,
    words(2, 0, 1, 2),
    Buffer.from('%s\0\0'),
    words(1, 23),
    text,
    words(0, -1, -1, 0),
  ]);
}

/**
 * What an unprivileged client sees. Runs in a child process as nobody/nogroup; it prints the
 * frames it sent and received as hex, so the assertions stay here.
 */
const UNPRIVILEGED_CLIENT = `
const [wireUrl, sock, openArgsHex] = process.argv.slice(1);
const { WireClient, words, KEEPALIVE_PING } = await import(wireUrl);
const c = await WireClient.connect(sock);
const out = { uid: process.getuid(), pairs: [] };
const ask = async (h, payload) => {
  const sent = c.send(h, payload);
  const got = await c.reply(sent);
  out.pairs.push([sent.toString('hex'), got.toString('hex')]);
};
await ask({ proc: ${PROC_CONNECT_OPEN}, serial: 0 }, Buffer.from(openArgsHex, 'hex'));
await ask({ proc: ${PROC_SUPPORTS_FEATURE}, serial: 1 }, words(10));
await ask({ proc: ${PROC_CONNECT_GET_HOSTNAME}, serial: 2 });
await ask({ proc: 9999, serial: 3 });
await ask({ prog: 0x11223344, proc: 1, serial: 4 });
await ask({ proc: ${PROC_AUTH_LIST}, serial: 5 });
c.write(KEEPALIVE_PING);
out.pong = (await c.next((f, h) => h.prog === 0x6b656570)).toString('hex');
await ask({ proc: ${PROC_CONNECT_OPEN}, serial: 6 }, Buffer.from(openArgsHex, 'hex'));
out.closed = c.closed;
c.close();
process.stdout.write(JSON.stringify(out));
`;

describe('polkit-protected socket', () => {
  it('root: needs AUTH_LIST first, which answers [NONE] and authenticates; then opening works', async (t) => {
    if (!isRoot) {
      t.skip('the root bypass needs the test to run as root');
      return;
    }
    const c = await WireClient.connect(stack.proxy.rwSock);
    clients.push(c);
    const early = c.send(
      { proc: PROC_CONNECT_OPEN, serial: 7 },
      encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
    );
    assert.deepEqual(await c.reply(early), authRequiredFrame(0x20008086, PROC_CONNECT_OPEN, 7));
    const list = c.send({ proc: PROC_AUTH_LIST });
    assert.deepEqual(await c.reply(list), okReplyFrame(list, words(1, 0)));
    const feature = c.send({ proc: PROC_SUPPORTS_FEATURE }, words(10));
    assert.deepEqual(await c.reply(feature), okReplyFrame(feature, words(1)));
    const open = c.send(
      { proc: PROC_CONNECT_OPEN },
      encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
    );
    assert.deepEqual(await c.reply(open), okReplyFrame(open));
    const conn = await stack.backend.nextConnection();
    assert.equal(conn.openName, 'qemu:///system');
    const again = c.send({ proc: PROC_AUTH_LIST });
    assert.deepEqual(await c.reply(again), okReplyFrame(again, words(1, 0)));
  });

  it('non-root: "authentication required" (39/7) for everything but AUTH_LIST, which says [POLKIT]', async (t) => {
    const wireUrl = new URL(`file://${join(repoRoot, 'dist', 'test', 'component', 'wire-client.js')}`).href;
    const openArgs = encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }).toString('hex');
    const connsBefore = stack.backend.conns.length;
    const nodeArgs = [
      '--input-type=module',
      '-e',
      UNPRIVILEGED_CLIENT,
      wireUrl,
      stack.proxy.rwSock,
      openArgs,
    ];
    const r = isRoot
      ? spawnSync(
          'setpriv',
          ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, ...nodeArgs],
          { encoding: 'utf8', timeout: 20000 },
        )
      : spawnSync(process.execPath, nodeArgs, { encoding: 'utf8', timeout: 20000 });
    if (r.error !== undefined || (r.status !== 0 && /setpriv/.test(r.stderr))) {
      t.skip(`cannot run a client as an unprivileged user here: ${r.error?.message ?? r.stderr.trim()}`);
      return;
    }
    assert.equal(r.status, 0, `unprivileged client failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout) as {
      uid: number;
      pairs: Array<[string, string]>;
      pong: string;
      closed: boolean;
    };
    assert.notEqual(out.uid, 0);
    const pairs = out.pairs.map(([s, g]) => [Buffer.from(s, 'hex'), Buffer.from(g, 'hex')] as const);
    const reply = (i: number): Buffer => pairs[i]?.[1] ?? Buffer.alloc(0);
    const sent = (i: number): Buffer => pairs[i]?.[0] ?? Buffer.alloc(0);
    assert.deepEqual(reply(0), authRequiredFrame(0x20008086, PROC_CONNECT_OPEN, 0));
    assert.deepEqual(reply(0), errorReplyFrame(sent(0), rpcErr('authentication required')));
    // The keepalive feature needs authentication too (NOTES §2), and so does any real call.
    assert.deepEqual(reply(1), authRequiredFrame(0x20008086, PROC_SUPPORTS_FEATURE, 1));
    assert.deepEqual(reply(2), authRequiredFrame(0x20008086, PROC_CONNECT_GET_HOSTNAME, 2));
    // Procedure and program checks come before the authentication check.
    assert.deepEqual(reply(3), errorReplyFrame(sent(3), rpcErr('unknown procedure: 9999')));
    assert.deepEqual(reply(4), errorReplyFrame(sent(4), rpcErr('Cannot find program 287454020 version 1')));
    assert.deepEqual(reply(5), okReplyFrame(sent(5), words(1, 2)), 'AUTH_LIST offers [POLKIT]');
    assert.deepEqual(Buffer.from(out.pong, 'hex'), KEEPALIVE_PONG, 'PING answered before authentication');
    assert.deepEqual(
      reply(6),
      authRequiredFrame(0x20008086, PROC_CONNECT_OPEN, 6),
      'AUTH_LIST alone does not authenticate',
    );
    assert.equal(out.closed, false);
    assert.equal(stack.backend.conns.length, connsBefore, 'the proxy never contacted the backend for it');
  });
});
