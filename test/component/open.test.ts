// Component tests: CONNECT_OPEN through the real proxy process to a fake per-driver daemon (NOTES
// §3.2, §4.1, §4.7, §5.2, §6): the backend handshake and the identity it carries, read-only routing,
// the procedures the proxy keeps answering itself once open, and CONNECT_SET_IDENTITY's handling.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  VIR_NET_CALL_WITH_FDS,
  VIR_NET_OK,
  VIR_TYPED_PARAM_INT,
  VIR_TYPED_PARAM_LLONG,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_ULLONG,
} from '../../src/protocol/constants.js';
import { readHeader } from '../../src/protocol/header.js';
import {
  encodeConnectOpenArgs,
  encodeSetIdentityArgs,
  type TypedParam,
} from '../../src/protocol/payloads.js';
import { openClient, startStack, type Stack } from './fake-backend.js';
import {
  WireClient,
  errorReplyFrame,
  internalErr,
  okReplyFrame,
  rpcErr,
  within,
  words,
  xdrString,
  type ExpectedError,
} from './wire-client.js';

const PROC_CONNECT_OPEN = 1;
const PROC_SUPPORTS_FEATURE = 60;
const PROC_AUTH_LIST = 66;
const PROC_CONNECT_GET_URI = 110;
const PROC_SET_IDENTITY = 419;

let stack: Stack;
const clients: WireClient[] = [];

before(async () => {
  stack = await startStack();
});

after(async () => {
  for (const c of clients) c.close();
  await stack.stop();
});

async function opened(
  opts: Parameters<typeof openClient>[1] = {},
): Promise<Awaited<ReturnType<typeof openClient>>> {
  const o = await openClient(stack, opts);
  clients.push(o.client);
  return o;
}

function param(params: TypedParam[], field: string): TypedParam['value'] | undefined {
  return params.find((p) => p.field === field)?.value;
}

function statStartTime(pid: number): bigint {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return BigInt(fields[22 - 3] ?? 'x');
}

describe('CONNECT_OPEN', () => {
  it('runs AUTH_LIST, SUPPORTS_FEATURE(10), CONNECT_OPEN(name, 0), SET_IDENTITY on the rw backend socket', async () => {
    const { conn, openCall, openReply } = await opened();
    assert.deepEqual(openReply, okReplyFrame(openCall));
    assert.equal(conn.socketName, 'virtqemud-sock');
    assert.deepEqual(
      conn.handshake.map((s) => [s.proc, s.serial, s.feature]),
      [
        [PROC_AUTH_LIST, 0, -1],
        [PROC_SUPPORTS_FEATURE, 1, 10],
        [PROC_CONNECT_OPEN, 2, -1],
        [PROC_SET_IDENTITY, 3, -1],
      ],
    );
    assert.equal(conn.openName, 'qemu:///system');
    assert.equal(conn.openFlags, 0);
    assert.equal(conn.identities.length, 1);
    const id = conn.identities[0] ?? [];
    // The client is this test process: the identity must be ours, not the proxy's.
    assert.equal(param(id, 'unix-user-id'), BigInt(process.getuid?.() ?? -1));
    assert.equal(param(id, 'unix-group-id'), BigInt(process.getgid?.() ?? -1));
    assert.equal(param(id, 'process-id'), BigInt(process.pid));
    assert.equal(param(id, 'process-time'), statStartTime(process.pid));
    if (process.getuid?.() === 0) {
      assert.equal(param(id, 'user-name'), 'root');
      assert.equal(param(id, 'group-name'), 'root');
    }
    const types: Record<string, number> = {
      'user-name': VIR_TYPED_PARAM_STRING,
      'group-name': VIR_TYPED_PARAM_STRING,
      'selinux-context': VIR_TYPED_PARAM_STRING,
      'unix-user-id': VIR_TYPED_PARAM_ULLONG,
      'unix-group-id': VIR_TYPED_PARAM_ULLONG,
      'process-time': VIR_TYPED_PARAM_ULLONG,
      'process-id': VIR_TYPED_PARAM_LLONG,
    };
    for (const p of id) assert.equal(p.type, types[p.field], `type of ${p.field}`);
  });

  it('uses the -ro backend socket and flag 1 for clients of the read-only socket', async () => {
    const { conn } = await opened({ ro: true });
    assert.equal(conn.socketName, 'virtqemud-sock-ro');
    assert.equal(conn.openName, 'qemu:///system');
    assert.equal(conn.openFlags, 1);
  });

  it('honours VIR_CONNECT_RO from a rw-socket client and drops every other client flag', async () => {
    const ro = await opened({ flags: 1 | 2 });
    assert.equal(ro.conn.socketName, 'virtqemud-sock-ro');
    assert.equal(ro.conn.openFlags, 1);
    const rw = await opened({ flags: 2 });
    assert.equal(rw.conn.socketName, 'virtqemud-sock');
    assert.equal(rw.conn.openFlags, 0);
  });

  it('refuses a second CONNECT_OPEN with "internal error: connection already open" and does not reopen', async () => {
    const { client, conn } = await opened();
    const before = stack.backend.conns.length;
    const again = client.send(
      { proc: PROC_CONNECT_OPEN },
      encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
    );
    assert.deepEqual(
      await client.reply(again),
      errorReplyFrame(again, internalErr('connection already open')),
    );
    assert.equal(conn.callsOf(PROC_CONNECT_OPEN).length, 1);
    assert.equal(stack.backend.conns.length, before);
  });

  it('answers CONNECT_GET_URI itself with the opened name', async () => {
    const { client, conn } = await opened();
    const sent = client.send({ proc: PROC_CONNECT_GET_URI });
    assert.deepEqual(await client.reply(sent), okReplyFrame(sent, xdrString('qemu:///system')));
    await conn.expectNone((_f, h) => h.proc === PROC_CONNECT_GET_URI, 100, 'CONNECT_GET_URI');
  });

  it('probes an empty name to the daemon whose socket exists and reports it as the URI', async () => {
    const { client, conn } = await opened({ name: null });
    assert.equal(conn.openName, 'qemu:///system');
    const sent = client.send({ proc: PROC_CONNECT_GET_URI });
    assert.deepEqual(await client.reply(sent), okReplyFrame(sent, xdrString('qemu:///system')));
  });

  it('answers SUPPORTS_FEATURE 14 and 15 itself (1) and forwards others byte for byte', async () => {
    const { client, conn } = await opened();
    for (const feature of [14, 15]) {
      const sent = client.send({ proc: PROC_SUPPORTS_FEATURE }, words(feature));
      assert.deepEqual(await client.reply(sent), okReplyFrame(sent, words(1)));
    }
    for (const [feature, answer] of [
      [9, 1],
      [2, 0],
      [4242, 0],
    ] as const) {
      const sent = client.send({ proc: PROC_SUPPORTS_FEATURE }, words(feature));
      const seen = await conn.nextCall(PROC_SUPPORTS_FEATURE);
      assert.deepEqual(seen, sent);
      const backendReply = conn.reply(seen, words(answer));
      assert.deepEqual(await client.reply(sent), backendReply);
    }
    // 14 and 15 never reached the backend; 10 only once, in the handshake.
    const features = conn.callsOf(PROC_SUPPORTS_FEATURE).map((f) => f.readInt32BE(28));
    assert.deepEqual(features, [10, 9, 2, 4242]);
  });

  it('keeps a client SET_IDENTITY to itself (never forwarded) and accepts a valid one', async () => {
    const { client, conn } = await opened();
    const valid = encodeSetIdentityArgs({
      params: [
        { field: 'user-name', type: VIR_TYPED_PARAM_STRING, value: 'mallory' },
        { field: 'unix-user-id', type: VIR_TYPED_PARAM_ULLONG, value: 0n },
      ],
      flags: 0,
    });
    const sent = client.send({ proc: PROC_SET_IDENTITY }, valid);
    assert.deepEqual(await client.reply(sent), okReplyFrame(sent));
    await conn.expectNone((_f, h) => h.proc === PROC_SET_IDENTITY, 150, 'SET_IDENTITY');
    assert.equal(conn.identities.length, 1, 'only the handshake identity reached the backend');
    assert.equal(conn.callsOf(PROC_SET_IDENTITY).length, 1);
  });

  it('keeps SET_IDENTITY local when it comes as a CALL_WITH_FDS announcing no fds', async () => {
    // libvirt dispatches CALL_WITH_FDS like CALL; forwarded, this would let any client (the
    // read-only socket included) replace the identity the backend authorises it with.
    const { client, conn } = await opened();
    const args = encodeSetIdentityArgs({
      params: [{ field: 'unix-user-id', type: VIR_TYPED_PARAM_ULLONG, value: 0n }],
      flags: 0,
    });
    const sent = client.send(
      { proc: PROC_SET_IDENTITY, type: VIR_NET_CALL_WITH_FDS },
      Buffer.concat([words(0), args]),
    );
    assert.deepEqual(await client.reply(sent), okReplyFrame(sent));
    await conn.expectNone((_f, h) => h.proc === PROC_SET_IDENTITY, 150, 'SET_IDENTITY');
    assert.equal(conn.identities.length, 1, 'only the handshake identity reached the backend');
    // The client can still work through the proxy afterwards.
    const uri = await client.call(0x20008086, PROC_CONNECT_GET_URI);
    assert.equal(readHeader(uri).status, VIR_NET_OK);
  });

  it("rejects bad SET_IDENTITY parameters with libvirt's errors", async () => {
    const { client, conn } = await opened();
    const cases: Array<[TypedParam[], ExpectedError]> = [
      [
        [{ field: 'favourite-colour', type: VIR_TYPED_PARAM_STRING, value: 'blue' }],
        {
          code: 74,
          domain: 0,
          message: "argument unsupported: parameter 'favourite-colour' not supported",
          str1: 'argument unsupported: %1$s',
          str2: "parameter 'favourite-colour' not supported",
        },
      ],
      [
        [{ field: 'unix-user-id', type: VIR_TYPED_PARAM_INT, value: 0 }],
        {
          code: 8,
          domain: 0,
          message: "invalid argument: invalid type 'int' for parameter 'unix-user-id', expected 'ullong'",
          str1: 'invalid argument: %1$s',
          str2: "invalid type 'int' for parameter 'unix-user-id', expected 'ullong'",
        },
      ],
      [
        [
          { field: 'user-name', type: VIR_TYPED_PARAM_STRING, value: 'a' },
          { field: 'user-name', type: VIR_TYPED_PARAM_STRING, value: 'b' },
        ],
        {
          code: 8,
          domain: 0,
          message: "invalid argument: parameter 'user-name' occurs multiple times",
          str1: 'invalid argument: %1$s',
          str2: "parameter 'user-name' occurs multiple times",
        },
      ],
    ];
    for (const [params, err] of cases) {
      const sent = client.send({ proc: PROC_SET_IDENTITY }, encodeSetIdentityArgs({ params, flags: 0 }));
      assert.deepEqual(await client.reply(sent), errorReplyFrame(sent, err));
    }
    // 21 parameters exceed the XDR bound of 20: a decode failure.
    const many = Array.from({ length: 21 }, () => ({
      field: 'user-name',
      type: VIR_TYPED_PARAM_STRING,
      value: 'x',
    }));
    const big = client.send({ proc: PROC_SET_IDENTITY }, encodeSetIdentityArgs({ params: many, flags: 0 }));
    assert.deepEqual(
      await client.reply(big),
      errorReplyFrame(big, rpcErr('Unable to decode message payload')),
    );
    assert.equal(conn.callsOf(PROC_SET_IDENTITY).length, 1);
    assert.equal(client.closed, false);
  });

  it('reports a missing daemon socket as libvirt does, and lets the client open again', async () => {
    const client = await WireClient.connect(stack.proxy.rwSock);
    clients.push(client);
    const sent = client.send(
      { proc: PROC_CONNECT_OPEN },
      encodeConnectOpenArgs({ name: 'lxc:///system', flags: 0 }),
    );
    const detail = `Failed to connect socket to '${join(stack.backend.dir, 'virtlxcd-sock')}': No such file or directory`;
    assert.deepEqual(
      await client.reply(sent),
      errorReplyFrame(sent, { code: 38, domain: 7, message: detail, str1: '%s', str2: detail, int1: 2 }),
    );
    const retry = client.send(
      { proc: PROC_CONNECT_OPEN },
      encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
    );
    assert.deepEqual(await client.reply(retry), okReplyFrame(retry));
    const conn = await stack.backend.nextConnection();
    assert.equal(conn.openName, 'qemu:///system');
  });

  it("relays the backend's CONNECT_OPEN error unchanged and lets the client open again", async () => {
    const client = await WireClient.connect(stack.proxy.rwSock);
    clients.push(client);
    const err: ExpectedError = {
      code: 38,
      domain: 10,
      message: 'cannot access storage: Permission denied',
      str1: '%s',
      str2: 'cannot access storage: Permission denied',
      int1: 13,
    };
    stack.backend.openError = err;
    try {
      const sent = client.send(
        { proc: PROC_CONNECT_OPEN },
        encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
      );
      assert.deepEqual(await client.reply(sent), errorReplyFrame(sent, err));
      const failed = await stack.backend.nextConnection();
      await within(failed.ended, 3000, 'the proxy to drop the failed backend connection');
    } finally {
      stack.backend.openError = null;
    }
    const retry = client.send(
      { proc: PROC_CONNECT_OPEN },
      encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
    );
    const reply = await client.reply(retry);
    assert.equal(readHeader(reply).status, VIR_NET_OK);
    const conn = await stack.backend.nextConnection();
    // And the connection works: a forwarded call comes back.
    const call = client.send({ proc: 59 });
    const answer = conn.reply(await conn.nextCall(59), xdrString('fakehost'));
    assert.deepEqual(await client.reply(call), answer);
  });
});
