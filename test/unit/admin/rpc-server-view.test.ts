// The main RpcServer as virt-admin sees it, with real client connections on a unix socket: client
// limits applied live (queued connections admitted when a limit rises or a client authenticates),
// client-info from peer credentials or a set identity, and admin disconnects.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { RpcServerView, clientFacts, type LocalPeer } from '../../../src/admin/rpc-server-view.js';
import { clientInfoParams, formatSockAddr } from '../../../src/admin/managed-server.js';
import { REMOTE_PROGRAM } from '../../../src/protocol/constants.js';
import type { ClientConnection, ServiceInfo } from '../../../src/server/client-connection.js';
import { RpcServer } from '../../../src/server/server.js';
import { WireClient } from '../../component/wire-client.js';

const dir = mkdtempSync(join(tmpdir(), 'vpview-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const PEER: LocalPeer = {
  uid: 1000,
  gid: 100,
  pid: 999,
  userName: 'alice',
  groupName: 'users',
  selinuxContext: null,
};
const PROC_AUTH_LIST = 66;

async function start(opts: { maxClients: number; maxUnauth?: number; auth?: ServiceInfo['auth'] }) {
  const closed: Array<[number, string]> = [];
  const server = new RpcServer({
    name: 'virtproxyd',
    maxClients: opts.maxClients,
    maxUnauthClients: opts.maxUnauth ?? 0,
    limits: { keepaliveInterval: 5, keepaliveCount: 5, maxClientRequests: 5 },
    hooks: {
      openBackend: () => Promise.reject(new Error('no backend in this test')),
      authorizePolkit: () => Promise.resolve(null),
      closed: (c, reason) => closed.push([c.id, reason]),
      log: () => undefined,
    },
    // Root skips polkit on AUTH_LIST, which lets a test complete authentication.
    onClientCreated: (c) => (c.peerUid = 0),
  });
  const service: ServiceInfo = { name: 'rw', readonly: false, auth: opts.auth ?? 'none', transport: 'unix' };
  const path = join(dir, `s${n++}`);
  const srv = net.createServer({ pauseOnConnect: true }, (s) => server.accept(s, service));
  await new Promise<void>((r) => srv.listen(path, r));
  const view = new RpcServerView(server, {
    minWorkers: 5,
    maxWorkers: 20,
    prioWorkers: 5,
    localPeer: () => PEER,
    tlsReload: () => null,
  });
  const conns: WireClient[] = [];
  const connect = async (): Promise<WireClient> => {
    const c = await WireClient.connect(path);
    conns.push(c);
    return c;
  };
  after(() => {
    for (const c of conns) c.close();
    server.closeAll();
    srv.close();
  });
  return { server, view, connect, closed };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('raising max clients live admits a connection queued at the limit', async () => {
  const { server, view, connect } = await start({ maxClients: 1 });
  await connect();
  await until(() => server.clients.size === 1, 'first client');
  await connect();
  await until(() => server.queued === 1, 'second connection queued');
  assert.equal(server.clients.size, 1);
  assert.equal(view.setClientLimits(2, null), null);
  assert.equal(server.clients.size, 2);
  assert.equal(server.queued, 0);
  assert.deepEqual(view.clientLimits(), { max: 2, current: 2, unauthMax: 0, unauthCurrent: 0 });
  // Lowering applies to the next connection only; nobody is thrown out.
  assert.equal(view.setClientLimits(1, null), null);
  await connect();
  await until(() => server.queued === 1, 'third connection queued');
  assert.equal(server.clients.size, 2);
});

test('max clients below the unauthenticated maximum is refused and nothing changes', () => {
  return start({ maxClients: 10, maxUnauth: 5 }).then(({ view }) => {
    const e = view.setClientLimits(4, null);
    assert.equal(
      e?.message,
      'invalid argument: The overall maximum number of clients must not be less than the number of clients waiting for authentication',
    );
    assert.deepEqual(view.clientLimits(), { max: 10, current: 0, unauthMax: 5, unauthCurrent: 0 });
  });
});

test('the unauthenticated limit queues connections until a client authenticates', async () => {
  const { server, view, connect } = await start({ maxClients: 10, maxUnauth: 1, auth: 'polkit' });
  const a = await connect();
  await until(() => server.clients.size === 1, 'first client');
  assert.equal(view.clientLimits().unauthCurrent, 1);
  await connect();
  await until(() => server.queued === 1, 'second connection queued');
  // AUTH_LIST from root completes authentication (no polkit check), freeing the slot.
  await a.call(REMOTE_PROGRAM, PROC_AUTH_LIST);
  await until(() => server.clients.size === 2, 'second client admitted');
  assert.deepEqual(view.clientLimits(), { max: 10, current: 2, unauthMax: 1, unauthCurrent: 1 });
});

test('client-info and client-disconnect on a live client', async () => {
  const { server, view, connect, closed } = await start({ maxClients: 10 });
  const c = await connect();
  await until(() => server.clients.size === 1, 'client');
  const [managed] = view.clients();
  assert.ok(managed);
  assert.equal(managed.id, 1);
  assert.equal(managed.transport, 0);
  assert.deepEqual(
    (managed.info() as Array<{ field: string; value: unknown }>).map((p) => [p.field, p.value]),
    [
      ['readonly', false],
      ['unix_user_id', 1000],
      ['unix_user_name', 'alice'],
      ['unix_group_id', 100],
      ['unix_group_name', 'users'],
      ['unix_process_id', 999],
    ],
  );
  managed.close();
  await c.waitClosed();
  await until(() => closed.length === 1, 'closed hook');
  assert.deepEqual(closed, [[1, 'disconnected by admin']]);
  assert.equal(view.clients().length, 0);
});

test('client facts: a set identity replaces the socket one; remote clients report their address', () => {
  const fake = {
    service: { name: 'tls', readonly: false, auth: 'none', transport: 'tls' },
    socket: { remoteAddress: '::ffff:192.0.2.7', remotePort: 50123 },
    saslUserName: 'bob',
    x509DName: 'CN=client',
    identityOverride: null,
  } as unknown as ClientConnection;
  assert.deepEqual(
    clientInfoParams(clientFacts(fake, () => null) ?? assert.fail()).map((p) => [p.field, p.value]),
    [
      ['readonly', false],
      ['sasl_user_name', 'bob'],
      ['sock_addr', '192.0.2.7:50123'],
      ['tls_x509_dname', 'CN=client'],
    ],
  );
  const local = {
    service: { name: 'ro', readonly: true, auth: 'none', transport: 'unix' },
    socket: {},
    saslUserName: null,
    x509DName: null,
    identityOverride: [
      { field: 'user-name', type: 7, value: 'carol' },
      { field: 'unix-user-id', type: 4, value: 1001n },
      { field: 'process-id', type: 3, value: 42n },
    ],
  } as unknown as ClientConnection;
  assert.deepEqual(
    clientInfoParams(clientFacts(local, () => PEER) ?? assert.fail()).map((p) => [p.field, p.type, p.value]),
    [
      ['readonly', 6, true],
      ['unix_user_id', 1, 1001],
      ['unix_user_name', 7, 'carol'],
      ['unix_process_id', 1, 42],
    ],
  );
  assert.equal(formatSockAddr('::1', 5), '[::1]:5');
  assert.equal(formatSockAddr('10.0.0.1', 16514), '10.0.0.1:16514');
  assert.equal(formatSockAddr(undefined, 1), null);
});
