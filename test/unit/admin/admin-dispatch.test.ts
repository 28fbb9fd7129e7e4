// The ADMIN program dispatcher against fake servers: results, and libvirt's errors (code, domain,
// text) for unknown servers and clients, bad flags, bad typed parameters and bad log settings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handleAdminCall, type AdminDaemon } from '../../../src/admin/admin-dispatch.js';
import {
  ADMIN_PROC_CLIENT_CLOSE,
  ADMIN_PROC_CLIENT_GET_INFO,
  ADMIN_PROC_CONNECT_CLOSE,
  ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN,
  ADMIN_PROC_CONNECT_GET_LIB_VERSION,
  ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS,
  ADMIN_PROC_CONNECT_GET_LOGGING_OUTPUTS,
  ADMIN_PROC_CONNECT_LIST_SERVERS,
  ADMIN_PROC_CONNECT_LOOKUP_SERVER,
  ADMIN_PROC_CONNECT_OPEN,
  ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT,
  ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS,
  ADMIN_PROC_SERVER_GET_CLIENT_LIMITS,
  ADMIN_PROC_SERVER_GET_THREADPOOL_PARAMETERS,
  ADMIN_PROC_SERVER_LIST_CLIENTS,
  ADMIN_PROC_SERVER_LOOKUP_CLIENT,
  ADMIN_PROC_SERVER_SET_CLIENT_LIMITS,
  ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS,
  ADMIN_PROC_SERVER_UPDATE_TLS_FILES,
  decodeClient,
  decodeClientList,
  decodeServerList,
  decodeTypedParamList,
  encodeAdminArgs,
  type AdminArgs,
} from '../../../src/admin/admin-protocol.js';
import {
  ThreadPoolSettings,
  type ManagedClient,
  type ManagedServer,
} from '../../../src/admin/managed-server.js';
import { noTlsServiceError } from '../../../src/admin/admin-dispatch.js';
import { Logger } from '../../../src/daemon/logger.js';
import { ADMIN_PROGRAM, VIR_NET_CALL } from '../../../src/protocol/constants.js';
import { encodeMessage, framePayload, readHeader } from '../../../src/protocol/header.js';
import { decodeRemoteError, type RemoteError } from '../../../src/protocol/remote-error.js';
import type { TypedParam } from '../../../src/protocol/payloads.js';

interface Fixture {
  d: AdminDaemon;
  closed: number[];
  timeouts: number[];
  shutdowns: boolean[];
  main: ManagedServer & { limits: { max: number; unauthMax: number } };
}

function fixture(): Fixture {
  const closed: number[] = [];
  const timeouts: number[] = [];
  const shutdowns: boolean[] = [];
  const client = (id: number, transport: number): ManagedClient => ({
    id,
    connectedAt: 1_700_000_000_500,
    transport,
    info: (): TypedParam[] => [{ field: 'readonly', type: 6, value: false }],
    close: () => closed.push(id),
  });
  const limits = { max: 5000, unauthMax: 20 };
  const main = {
    name: 'virtproxyd',
    threadPool: new ThreadPoolSettings(5, 20, 5),
    limits,
    pendingJobs: () => 3,
    clients: () => [client(1, 0), client(4, 2)],
    clientLimits: () => ({ max: limits.max, current: 2, unauthMax: limits.unauthMax, unauthCurrent: 0 }),
    setClientLimits: (max: number | null, unauth: number | null): RemoteError | null => {
      limits.max = max ?? limits.max;
      limits.unauthMax = unauth ?? limits.unauthMax;
      return null;
    },
    updateTlsFiles: () => noTlsServiceError(),
  };
  const admin: ManagedServer = {
    ...main,
    name: 'admin',
    threadPool: new ThreadPoolSettings(5, 20, 0),
    clients: () => [],
  };
  const logger = new Logger({ io: { stderr: () => undefined }, defaultOutput: '3:stderr' });
  logger.setOutputs(null);
  const d: AdminDaemon = {
    servers: () => [admin, main],
    logging: logger,
    setTimeout: (s) => timeouts.push(s),
    shutdown: (p) => shutdowns.push(p),
  };
  return { d, closed, timeouts, shutdowns, main };
}

let serial = 1;
function call(d: AdminDaemon, proc: number, args: AdminArgs = { flags: 0 }) {
  const frame = encodeMessage(
    { prog: ADMIN_PROGRAM, vers: 1, proc, type: VIR_NET_CALL, serial: serial++, status: 0 },
    encodeAdminArgs(proc, args),
  );
  const r = handleAdminCall(d, frame);
  const h = readHeader(r.reply);
  assert.equal(h.proc, proc);
  assert.equal(h.prog, ADMIN_PROGRAM);
  return { ...r, status: h.status, payload: framePayload(r.reply) };
}

function error(d: AdminDaemon, proc: number, args: AdminArgs = { flags: 0 }): RemoteError {
  const r = call(d, proc, args);
  assert.equal(r.status, 1, 'expected an error reply');
  return decodeRemoteError(r.payload);
}

test('open, version, close', () => {
  const { d } = fixture();
  assert.equal(call(d, ADMIN_PROC_CONNECT_OPEN).status, 0);
  const v = call(d, ADMIN_PROC_CONNECT_GET_LIB_VERSION);
  assert.equal(v.payload.readBigUInt64BE(0), 11003000n);
  assert.equal(call(d, ADMIN_PROC_CONNECT_CLOSE).close, true);
  const e = error(d, ADMIN_PROC_CONNECT_OPEN, { flags: 2 });
  assert.deepEqual(
    [e.code, e.domain, e.message],
    [8, 62, 'invalid argument: unsupported flags (0x2) in function adminDispatchConnectOpen'],
  );
});

test('servers: list and lookup; an unknown name in both wordings', () => {
  const { d } = fixture();
  const list = decodeServerList(
    call(d, ADMIN_PROC_CONNECT_LIST_SERVERS, { needResults: 1, flags: 0 }).payload,
  );
  assert.deepEqual(list, { names: ['admin', 'virtproxyd'], count: 2 });
  assert.equal(call(d, ADMIN_PROC_CONNECT_LOOKUP_SERVER, { name: 'admin', flags: 0 }).status, 0);
  let e = error(d, ADMIN_PROC_CONNECT_LOOKUP_SERVER, { name: 'nope', flags: 0 });
  assert.deepEqual([e.code, e.domain, e.message], [95, 7, "Server not found: No server named 'nope'"]);
  e = error(d, ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS, { server: 'nope', params: [], flags: 0 });
  assert.deepEqual(
    [e.code, e.domain, e.message],
    [95, 62, "Server not found: no server with matching name 'nope' found"],
  );
});

test('threadpool: reported for one event loop; set validated like virThreadPoolSetParameters', () => {
  const { d, main } = fixture();
  const params = (): Record<string, unknown> =>
    Object.fromEntries(
      decodeTypedParamList(
        call(d, ADMIN_PROC_SERVER_GET_THREADPOOL_PARAMETERS, { server: 'virtproxyd', flags: 0 }).payload,
        32,
      ).map((p) => [p.field, p.value]),
    );
  assert.deepEqual(params(), {
    minWorkers: 5,
    maxWorkers: 20,
    nWorkers: 1,
    freeWorkers: 1,
    prioWorkers: 5,
    jobQueueDepth: 3,
  });
  const set = (ps: TypedParam[]) =>
    call(d, ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS, { server: 'virtproxyd', params: ps, flags: 0 });
  assert.equal(
    set([
      { field: 'maxWorkers', type: 2, value: 40 },
      { field: 'minWorkers', type: 2, value: 10 },
    ]).status,
    0,
  );
  assert.equal(main.threadPool.maxWorkers, 40);
  assert.equal(params()['minWorkers'], 10);

  const msg = (ps: TypedParam[]): [number, number, string | null] => {
    const r = set(ps);
    const e = decodeRemoteError(r.payload);
    return [e.code, e.domain, e.message];
  };
  assert.deepEqual(msg([{ field: 'minWorkers', type: 2, value: 50 }]), [
    8,
    0,
    'invalid argument: minWorkers cannot be larger than maxWorkers',
  ]);
  assert.deepEqual(
    msg([
      { field: 'maxWorkers', type: 2, value: 0 },
      { field: 'minWorkers', type: 2, value: 0 },
    ]),
    [8, 0, 'invalid argument: maxWorkers must not be switched from zero to non-zero and vice versa'],
  );
  assert.deepEqual(msg([{ field: 'nWorkers', type: 2, value: 1 }]), [
    74,
    0,
    "argument unsupported: parameter 'nWorkers' not supported",
  ]);
  assert.deepEqual(msg([{ field: 'maxWorkers', type: 4, value: 1n }]), [
    8,
    0,
    "invalid argument: invalid type 'ullong' for parameter 'maxWorkers', expected 'uint'",
  ]);
  assert.deepEqual(
    msg([
      { field: 'maxWorkers', type: 2, value: 1 },
      { field: 'maxWorkers', type: 2, value: 2 },
    ]),
    [8, 0, "invalid argument: parameter 'maxWorkers' occurs multiple times"],
  );
  // Nothing of a rejected set was applied.
  assert.equal(main.threadPool.maxWorkers, 40);
});

test('clients: list, lookup, info, close; unknown ids in both wordings', () => {
  const { d, closed } = fixture();
  const list = decodeClientList(
    call(d, ADMIN_PROC_SERVER_LIST_CLIENTS, { server: 'virtproxyd', needResults: 1, flags: 0 }).payload,
  );
  assert.equal(list.count, 2);
  assert.deepEqual(list.clients[1], {
    server: 'virtproxyd',
    id: 4n,
    timestamp: 1_700_000_000n,
    transport: 2,
  });
  const one = decodeClient(
    call(d, ADMIN_PROC_SERVER_LOOKUP_CLIENT, { server: 'virtproxyd', id: 1n, flags: 0 }).payload,
  );
  assert.equal(one.id, 1n);
  let e = error(d, ADMIN_PROC_SERVER_LOOKUP_CLIENT, { server: 'virtproxyd', id: 9n, flags: 0 });
  assert.deepEqual(
    [e.code, e.domain, e.message],
    [96, 7, "Client not found: No client with matching ID '9'"],
  );
  const client = { server: 'virtproxyd', id: 9n, timestamp: 0n, transport: 0 };
  e = error(d, ADMIN_PROC_CLIENT_GET_INFO, { client, flags: 0 });
  assert.deepEqual(
    [e.code, e.domain, e.message],
    [96, 62, "Client not found: no client with matching id '9' found"],
  );
  const info = call(d, ADMIN_PROC_CLIENT_GET_INFO, { client: { ...client, id: 4n }, flags: 0 });
  assert.deepEqual(decodeTypedParamList(info.payload, 64), [{ field: 'readonly', type: 6, value: false }]);
  const r = call(d, ADMIN_PROC_CLIENT_CLOSE, { client: { ...client, id: 4n }, flags: 0 });
  assert.equal(r.status, 0);
  assert.deepEqual(closed, [], 'closed only after the reply is out');
  r.after?.();
  assert.deepEqual(closed, [4]);
});

test('client limits: read, set live, and max below unauth max refused by the server', () => {
  const { d, main } = fixture();
  const read = (): Record<string, unknown> =>
    Object.fromEntries(
      decodeTypedParamList(
        call(d, ADMIN_PROC_SERVER_GET_CLIENT_LIMITS, { server: 'virtproxyd', flags: 0 }).payload,
        32,
      ).map((p) => [p.field, p.value]),
    );
  assert.deepEqual(read(), { nclients_max: 5000, nclients: 2, nclients_unauth_max: 20, nclients_unauth: 0 });
  const r = call(d, ADMIN_PROC_SERVER_SET_CLIENT_LIMITS, {
    server: 'virtproxyd',
    params: [{ field: 'nclients_max', type: 2, value: 3 }],
    flags: 0,
  });
  assert.equal(r.status, 0);
  assert.equal(main.limits.max, 3);
  const e = error(d, ADMIN_PROC_SERVER_SET_CLIENT_LIMITS, {
    server: 'virtproxyd',
    params: [{ field: 'nclients', type: 2, value: 3 }],
    flags: 0,
  });
  assert.equal(e.message, "argument unsupported: parameter 'nclients' not supported");
});

test('logging: outputs and filters read back; bad settings give libvirt errors', () => {
  const { d } = fixture();
  const outs = call(d, ADMIN_PROC_CONNECT_GET_LOGGING_OUTPUTS).payload;
  assert.equal(outs.subarray(4, 4 + outs.readUInt32BE(0)).toString(), '3:stderr');
  // No filters: the optional string is absent and the count 0.
  assert.deepEqual(
    call(d, ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS).payload,
    Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]),
  );
  let e = error(d, ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS, { text: '5:stderr', flags: 0 });
  assert.deepEqual(
    [e.code, e.domain, e.message],
    [8, 0, "invalid argument: Invalid log priority '5' for log output '5:stderr'"],
  );
  e = error(d, ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS, { text: '1:file:/proc/no/such/dir/x', flags: 0 });
  assert.deepEqual([e.code, e.domain], [38, 0]);
  assert.match(e.message ?? '', /^failed to open \/proc\/no\/such\/dir\/x: /);
});

test('timeout, TLS update, shutdown and unknown procedures', () => {
  const { d, timeouts, shutdowns } = fixture();
  assert.equal(call(d, ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT, { timeout: 42, flags: 0 }).status, 0);
  assert.deepEqual(timeouts, [42]);
  const e = error(d, ADMIN_PROC_SERVER_UPDATE_TLS_FILES, { server: 'virtproxyd', flags: 0 });
  assert.deepEqual(
    [e.code, e.domain, e.message],
    [1, 7, 'internal error: no tls service found, unable to update tls files'],
  );
  const bad = error(d, ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN, { flags: 2 });
  assert.equal(
    bad.message,
    'invalid argument: unsupported flags (0x2) in function adminConnectDaemonShutdown',
  );
  const r = call(d, ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN, { flags: 1 });
  assert.equal(r.status, 0);
  assert.deepEqual(shutdowns, []);
  r.after?.();
  assert.deepEqual(shutdowns, [true]);

  const unknown = handleAdminCall(
    d,
    encodeMessage({ prog: ADMIN_PROGRAM, vers: 1, proc: 21, type: VIR_NET_CALL, serial: 9, status: 0 }, null),
  );
  const ue = decodeRemoteError(framePayload(unknown.reply));
  assert.deepEqual([ue.code, ue.domain, ue.message], [39, 7, 'unknown procedure: 21']);
  const short = handleAdminCall(
    d,
    encodeMessage(
      {
        prog: ADMIN_PROGRAM,
        vers: 1,
        proc: ADMIN_PROC_SERVER_LIST_CLIENTS,
        type: VIR_NET_CALL,
        serial: 9,
        status: 0,
      },
      null,
    ),
  );
  assert.equal(decodeRemoteError(framePayload(short.reply)).message, 'Unable to decode message payload');
});
