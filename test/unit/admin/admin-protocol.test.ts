// ADMIN program XDR: argument layouts (decoded from hand-written words) and results (encoded and
// checked word by word), following admin_protocol.x.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ADMIN_PROC_CLIENT_GET_INFO,
  ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS,
  ADMIN_PROC_CONNECT_LIST_SERVERS,
  ADMIN_PROC_CONNECT_OPEN,
  ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT,
  ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS,
  ADMIN_PROC_SERVER_LIST_CLIENTS,
  ADMIN_PROC_SERVER_LOOKUP_CLIENT,
  ADMIN_PROC_SERVER_SET_CLIENT_LIMITS,
  decodeAdminArgs,
  decodeClientList,
  decodeServerList,
  encodeAdminArgs,
  encodeClientList,
  encodeLoggingFilters,
  encodeServerList,
  encodeTypedParams,
} from '../../../src/admin/admin-protocol.js';
import { words, xdrString } from '../../component/wire-client.js';

test('CONNECT_OPEN args: one unsigned flags word', () => {
  assert.deepEqual(decodeAdminArgs(ADMIN_PROC_CONNECT_OPEN, words(0)), { flags: 0 });
  assert.throws(() => decodeAdminArgs(ADMIN_PROC_CONNECT_OPEN, Buffer.alloc(0)));
});

test('an unknown procedure decodes to null', () => {
  assert.equal(decodeAdminArgs(21, words(0)), null);
  assert.equal(decodeAdminArgs(0, words(0)), null);
});

test('LOOKUP_CLIENT args: server name, unsigned hyper id, flags', () => {
  const payload = Buffer.concat([
    xdrString('virtproxyd'), // admin_nonnull_server.name
    words(0, 7), // id (hyper, high word first)
    words(0), // flags
  ]);
  assert.deepEqual(decodeAdminArgs(ADMIN_PROC_SERVER_LOOKUP_CLIENT, payload), {
    server: 'virtproxyd',
    id: 7n,
    flags: 0,
  });
});

test('CLIENT_GET_INFO args carry a whole admin_nonnull_client', () => {
  const payload = Buffer.concat([
    xdrString('admin'), // srv.name
    words(0, 3), // id
    words(0, 1700000000), // timestamp (hyper)
    words(0), // transport unix
    words(0), // flags
  ]);
  const a = decodeAdminArgs(ADMIN_PROC_CLIENT_GET_INFO, payload);
  assert.deepEqual(a?.client, { server: 'admin', id: 3n, timestamp: 1700000000n, transport: 0 });
  assert.equal(a?.server, 'admin');
});

test('SET_CLIENT_LIMITS args: typed parameters (field, type, value)', () => {
  const payload = Buffer.concat([
    xdrString('virtproxyd'),
    words(1), // one parameter
    xdrString('nclients_max'),
    words(2, 10), // VIR_TYPED_PARAM_UINT, 10
    words(0), // flags
  ]);
  const a = decodeAdminArgs(ADMIN_PROC_SERVER_SET_CLIENT_LIMITS, payload);
  assert.deepEqual(a?.params, [{ field: 'nclients_max', type: 2, value: 10 }]);
  // More than ADMIN_SERVER_CLIENT_LIMITS_MAX (32) parameters is a decode error.
  assert.throws(() =>
    decodeAdminArgs(ADMIN_PROC_SERVER_SET_CLIENT_LIMITS, Buffer.concat([xdrString('x'), words(33)])),
  );
});

test('SET_LOGGING_FILTERS args: an optional string', () => {
  assert.deepEqual(decodeAdminArgs(ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS, words(0, 0)), {
    text: null,
    flags: 0,
  });
  assert.deepEqual(
    decodeAdminArgs(
      ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS,
      Buffer.concat([words(1), xdrString('1:x'), words(0)]),
    ),
    { text: '1:x', flags: 0 },
  );
  assert.deepEqual(decodeAdminArgs(ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT, words(30, 0)), {
    timeout: 30,
    flags: 0,
  });
});

test('LIST_SERVERS result lists names only when asked, but always counts them', () => {
  assert.deepEqual(
    encodeServerList(['admin', 'virtproxyd'], true),
    Buffer.concat([words(2), xdrString('admin'), xdrString('virtproxyd'), words(2)]),
  );
  assert.deepEqual(encodeServerList(['admin', 'virtproxyd'], false), words(0, 2));
  assert.deepEqual(decodeServerList(encodeServerList(['a'], true)), { names: ['a'], count: 1 });
});

test('LIST_CLIENTS result: srv, id, timestamp, transport per client, then the count', () => {
  const ref = { server: 'virtproxyd', id: 2n, timestamp: 5n, transport: 2 };
  assert.deepEqual(
    encodeClientList([ref], true),
    Buffer.concat([words(1), xdrString('virtproxyd'), words(0, 2), words(0, 5), words(2), words(1)]),
  );
  assert.deepEqual(decodeClientList(encodeClientList([ref], true)), { clients: [ref], count: 1 });
});

test('typed parameter results and the optional filters string', () => {
  assert.deepEqual(
    encodeTypedParams([
      { field: 'readonly', type: 6, value: true },
      { field: 'unix_user_id', type: 1, value: -1 },
    ]),
    Buffer.concat([
      words(2),
      xdrString('readonly'),
      words(6, 1),
      xdrString('unix_user_id'),
      words(1, 0xffffffff),
    ]),
  );
  assert.deepEqual(encodeLoggingFilters(null, 0), words(0, 0));
  assert.deepEqual(
    encodeLoggingFilters('1:*a* ', 1),
    Buffer.concat([words(1), xdrString('1:*a* '), words(1)]),
  );
});

test('encodeAdminArgs is the inverse of decodeAdminArgs', () => {
  const cases: Array<[number, Parameters<typeof encodeAdminArgs>[1]]> = [
    [ADMIN_PROC_CONNECT_LIST_SERVERS, { needResults: 1, flags: 0 }],
    [ADMIN_PROC_SERVER_LIST_CLIENTS, { server: 'admin', needResults: 0, flags: 4 }],
    [ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS, { flags: 0 }],
    [
      ADMIN_PROC_SERVER_SET_CLIENT_LIMITS,
      { server: 's', params: [{ field: 'a', type: 2, value: 1 }], flags: 0 },
    ],
  ];
  for (const [proc, a] of cases) {
    assert.deepEqual(decodeAdminArgs(proc, encodeAdminArgs(proc, a)), a, `proc ${proc}`);
  }
});
