// The admin server on a real unix socket: who gets in, ids per server, the ADMIN program only,
// keepalive answers, CONNECT_CLOSE, and the admin client limit.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { AdminDaemon } from '../../../src/admin/admin-dispatch.js';
import {
  ADMIN_PROC_CLIENT_GET_INFO,
  ADMIN_PROC_CONNECT_CLOSE,
  ADMIN_PROC_CONNECT_OPEN,
  ADMIN_PROC_SERVER_LIST_CLIENTS,
  decodeClientList,
  decodeTypedParamList,
  encodeAdminArgs,
} from '../../../src/admin/admin-protocol.js';
import { AdminServer, type AdminPeer } from '../../../src/admin/admin-server.js';
import { Logger } from '../../../src/daemon/logger.js';
import { ADMIN_PROGRAM, KEEPALIVE_PROGRAM, REMOTE_PROGRAM } from '../../../src/protocol/constants.js';
import { readHeader } from '../../../src/protocol/header.js';
import {
  KEEPALIVE_PING,
  KEEPALIVE_PONG,
  WireClient,
  errorReplyFrame,
  okReplyFrame,
  rpcErr,
  words,
} from '../../component/wire-client.js';

const dir = mkdtempSync(join(tmpdir(), 'vpadm-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const ME: AdminPeer = {
  uid: 0,
  gid: 0,
  pid: 4321,
  userName: 'root',
  groupName: 'root',
  selinuxContext: null,
};

async function start(opts: { maxClients?: number; peer?: AdminPeer | null } = {}) {
  const logs: string[] = [];
  const admin = new AdminServer({
    maxClients: opts.maxClients ?? 0,
    minWorkers: 5,
    maxWorkers: 20,
    peerOf: () => (opts.peer === undefined ? ME : opts.peer),
    allowedUid: 0,
    log: (level, msg) => logs.push(`${level}: ${msg}`),
  });
  const logger = new Logger({ io: { stderr: () => undefined } });
  const d: AdminDaemon = {
    servers: () => [admin],
    logging: logger,
    setTimeout: () => undefined,
    shutdown: () => undefined,
  };
  admin.daemon = d;
  const path = join(dir, `s${n++}`);
  const srv = net.createServer({ pauseOnConnect: true }, (s) => admin.accept(s));
  await new Promise<void>((r) => srv.listen(path, r));
  after(() => {
    admin.closeAll();
    srv.close();
  });
  return { admin, path, logs };
}

const open = (c: WireClient) => c.call(ADMIN_PROGRAM, ADMIN_PROC_CONNECT_OPEN, words(0));

test('a peer running as the daemon user is served; ids count from 1 per server', async () => {
  const { path } = await start();
  const a = await WireClient.connect(path);
  const b = await WireClient.connect(path);
  const reply = await open(a);
  assert.deepEqual(reply, okReplyFrame(reply));
  await open(b);
  const list = await a.call(
    ADMIN_PROGRAM,
    ADMIN_PROC_SERVER_LIST_CLIENTS,
    encodeAdminArgs(ADMIN_PROC_SERVER_LIST_CLIENTS, { server: 'admin', needResults: 1, flags: 0 }),
  );
  const { clients, count } = decodeClientList(list.subarray(28));
  assert.equal(count, 2);
  assert.deepEqual(
    clients.map((c) => [c.id, c.transport]),
    [
      [1n, 0],
      [2n, 0],
    ],
  );
  const info = await a.call(
    ADMIN_PROGRAM,
    ADMIN_PROC_CLIENT_GET_INFO,
    encodeAdminArgs(ADMIN_PROC_CLIENT_GET_INFO, {
      client: { server: 'admin', id: 2n, timestamp: 0n, transport: 0 },
      flags: 0,
    }),
  );
  assert.deepEqual(
    decodeTypedParamList(info.subarray(28), 64).map((p) => [p.field, p.value]),
    [
      ['readonly', false],
      ['unix_user_id', 0],
      ['unix_user_name', 'root'],
      ['unix_group_id', 0],
      ['unix_group_name', 'root'],
      ['unix_process_id', 4321],
    ],
  );
  a.close();
  b.close();
});

test('another uid is closed at once without a reply, and the log says why', async () => {
  const { path, logs, admin } = await start({ peer: { ...ME, uid: 1000, pid: 77 } });
  const c = await WireClient.connect(path);
  c.send({ prog: ADMIN_PROGRAM, proc: ADMIN_PROC_CONNECT_OPEN }, words(0));
  await c.waitClosed();
  assert.equal(c.frames.length, 0);
  assert.equal(admin.size, 0);
  assert.ok(
    logs.some((l) => l.includes('client pid 77 runs as uid 1000')),
    logs.join('\n'),
  );
});

test('unreadable credentials are refused too', async () => {
  const { path } = await start({ peer: null });
  const c = await WireClient.connect(path);
  await c.waitClosed();
});

test('only the ADMIN program is spoken; keepalive PINGs are answered', async () => {
  const { path } = await start();
  const c = await WireClient.connect(path);
  const sent = c.send({ prog: REMOTE_PROGRAM, proc: 1 }, words(0, 0));
  assert.deepEqual(
    await c.reply(sent),
    errorReplyFrame(sent, rpcErr('Cannot find program 536903814 version 1')),
  );
  c.write(KEEPALIVE_PING);
  const pong = await c.next((_f, h) => h.prog === KEEPALIVE_PROGRAM);
  assert.deepEqual(pong, KEEPALIVE_PONG);
  const v2 = c.send({ prog: ADMIN_PROGRAM, vers: 2, proc: 1 }, words(0));
  assert.deepEqual(
    await c.reply(v2),
    errorReplyFrame(v2, rpcErr(`Cannot find program ${ADMIN_PROGRAM} version 2`)),
  );
  c.close();
});

test('CONNECT_CLOSE is answered, then the connection closes', async () => {
  const { path, admin, logs } = await start();
  const c = await WireClient.connect(path);
  await open(c);
  const r = await c.call(ADMIN_PROGRAM, ADMIN_PROC_CONNECT_CLOSE);
  assert.equal(readHeader(r).status, 0);
  await c.waitClosed();
  for (let i = 0; i < 50 && admin.size > 0; i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(admin.size, 0);
  assert.ok(logs.some((l) => l === 'info: admin client 1 disconnected: closed by client (CONNECT_CLOSE)'));
});

test('at admin_max_clients a new connection waits until a slot frees', async () => {
  const { path, admin } = await start({ maxClients: 1 });
  const a = await WireClient.connect(path);
  await open(a);
  const b = await WireClient.connect(path);
  const pending = open(b);
  await b.expectNone(() => true, 200, 'reply while queued');
  assert.equal(admin.size, 1);
  a.close();
  const r = await pending;
  assert.equal(readHeader(r).status, 0);
  assert.equal(admin.clients()[0]?.id, 2);
  // Raising the limit live admits the next queued peer at once.
  const c = await WireClient.connect(path);
  const pc = open(c);
  await c.expectNone(() => true, 100, 'reply while queued');
  assert.equal(admin.setClientLimits(2, null), null);
  assert.equal(readHeader(await pc).status, 0);
  b.close();
  c.close();
});
