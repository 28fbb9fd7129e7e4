// Fuzz target: the admin program (virt-admin's protocol on libvirt-admin-sock): decodeAdminArgs and
// the whole dispatcher, handleAdminCall, against a fake daemon. Arguments are built per procedure
// (server and client names, typed parameters, logging strings, flags), then mutated, or plain
// random. Every call must come back as one reply echoing the call, an error must be one of
// libvirt's (not an exception the dispatcher had to catch), and nothing may act before its reply
// (shutdown and client close run only from `after`).

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';

import { decodeAdminArgs } from '../../src/admin/admin-protocol.js';
import { handleAdminCall, type AdminDaemon } from '../../src/admin/admin-dispatch.js';
import { ThreadPoolSettings, type ManagedServer } from '../../src/admin/managed-server.js';
import { CodedError } from '../../src/protocol/coded-error.js';
import {
  ADMIN_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_REPLY,
  VIR_TYPED_PARAM_UINT,
} from '../../src/protocol/constants.js';
import { encodeMessage, framePayload, readHeader } from '../../src/protocol/header.js';
import { encodeTypedParams, type TypedParam } from '../../src/protocol/payloads.js';
import { decodeRemoteError } from '../../src/protocol/remote-error.js';
import { XdrWriter } from '../../src/protocol/xdr-writer.js';
import { parseLogFilters, parseLogOutputs } from '../../src/daemon/log-settings.js';
import { Meter, fuzzParams, mutate, mutationsArb } from './support.js';

const meter = new Meter('admin', { maxSingle: (n) => 4 * n + 65536, maxTotal: (n) => 64 * n + (1 << 20) });
after(() => meter.print());

function fakeDaemon(): { d: AdminDaemon; acted: string[] } {
  const acted: string[] = [];
  const server = (name: string): ManagedServer => ({
    name,
    threadPool: new ThreadPoolSettings(5, 20, 5),
    pendingJobs: () => 0,
    clients: () =>
      [1, 2, 3].map((id) => ({
        id,
        connectedAt: 1_700_000_000_000,
        transport: id % 3,
        info: (): TypedParam[] => [{ field: 'readonly', type: 6, value: false }],
        close: () => acted.push(`close ${name}/${id}`),
      })),
    clientLimits: () => ({ max: 5000, current: 3, unauthMax: 20, unauthCurrent: 0 }),
    setClientLimits: () => null,
    updateTlsFiles: () => null,
  });
  const servers = [server('virtproxyd'), server('admin')];
  const d: AdminDaemon = {
    servers: () => servers,
    logging: {
      filters: () => ({ text: null, count: 0 }),
      outputs: () => ({ text: '3:stderr', count: 1 }),
      setFilters: (s) => void (s === null ? [] : parseLogFilters(s)),
      setOutputs: (s) => void (s === null ? [] : parseLogOutputs(s, '/')),
    },
    setTimeout: (n) => void acted.push(`timeout ${n}`),
    shutdown: (p) => void acted.push(`shutdown ${p}`),
  };
  return { d, acted };
}

const serverName = fc.oneof(fc.constantFrom('virtproxyd', 'admin', '', 'nope'), fc.string({ maxLength: 12 }));
const flags = fc.oneof(fc.constantFrom(0, 0, 0, 1, 2, 0xffffffff), fc.nat());
const param: fc.Arbitrary<TypedParam> = fc.oneof(
  fc.record({
    field: fc.constantFrom(
      'minWorkers',
      'maxWorkers',
      'prioWorkers',
      'nclients_max',
      'nclients_unauth_max',
      'bogus',
    ),
    type: fc.constant(VIR_TYPED_PARAM_UINT),
    value: fc.oneof(fc.constantFrom(0, 1, 5, 20, 5000), fc.nat()),
  }),
  fc.record({
    field: fc.string({ maxLength: 10 }),
    type: fc.constant(7),
    value: fc.string({ maxLength: 6 }),
  }),
  fc.record({ field: fc.constant('maxWorkers'), type: fc.constant(3), value: fc.constant(7n) }),
);

/** Plausible arguments for procedure `proc`, field by field as admin_protocol.x lays them out. */
function argsArb(proc: number): fc.Arbitrary<Buffer> {
  const w = (): XdrWriter => new XdrWriter();
  switch (proc) {
    case 4:
    case 8:
      return fc
        .tuple(serverName, fc.nat(2), flags)
        .map(([s, n, f]) => (proc === 4 ? w().uint(n).uint(f) : w().string(s).uint(n).uint(f)).toBuffer());
    case 5:
    case 6:
    case 12:
    case 18:
      return fc.tuple(serverName, flags).map(([s, f]) => w().string(s).uint(f).toBuffer());
    case 7:
    case 13:
      return fc
        .tuple(serverName, fc.array(param, { maxLength: 34 }), flags)
        .map(([s, ps, f]) =>
          Buffer.concat([w().string(s).toBuffer(), encodeTypedParams(ps).uint(f).toBuffer()]),
        );
    case 9:
      return fc
        .tuple(serverName, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), flags)
        .map(([s, id, f]) => w().string(s).uhyper(id).uint(f).toBuffer());
    case 10:
    case 11:
      return fc
        .tuple(serverName, fc.bigInt({ min: 0n, max: 5n }), fc.nat(3), flags)
        .map(([s, id, t, f]) => w().string(s).uhyper(id).hyper(0n).uint(t).uint(f).toBuffer());
    case 16:
    case 17:
      return fc
        .tuple(
          fc.option(
            fc.constantFrom('1:stderr', '3:file:/dev/null', '2:*rpc* 1:util', '9:bad', ':', '1:journald x'),
            { nil: null },
          ),
          flags,
        )
        .map(([t, f]) => w().optionalString(t).uint(f).toBuffer());
    case 19:
      return fc.tuple(fc.nat(), flags).map(([t, f]) => w().uint(t).uint(f).toBuffer());
    default:
      return flags.map((f) => w().uint(f).toBuffer());
  }
}

const callArb = fc
  .oneof(
    { weight: 10, arbitrary: fc.integer({ min: 1, max: 20 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 21, -1, 1000) },
  )
  .chain((proc) =>
    fc.tuple(
      fc.constant(proc),
      fc.oneof(
        { weight: 4, arbitrary: argsArb(proc) },
        { weight: 3, arbitrary: fc.tuple(argsArb(proc), mutationsArb(5)).map(([b, ops]) => mutate(b, ops)) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) },
      ),
      fc.nat(),
    ),
  );

describe('fuzz: admin program', () => {
  it('decodeAdminArgs: a value, null for unknown procedures, or a CodedError', { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(callArb, ([proc, payload]) =>
        meter.run(payload.length, () => {
          try {
            const a = decodeAdminArgs(proc, payload);
            if (proc < 1 || proc > 20) assert.equal(a, null);
          } catch (e) {
            if (!(e instanceof CodedError)) throw e;
          }
        }),
      ),
      fuzzParams(10_000),
    );
  });

  it(
    'handleAdminCall: one reply echoing the call, libvirt errors only, no action before the reply',
    { timeout: 600_000 },
    () => {
      let okReplies = 0;
      let calls = 0;
      fc.assert(
        fc.property(callArb, ([proc, payload, serial]) =>
          meter.run(payload.length, () => {
            const { d, acted } = fakeDaemon();
            const frame = encodeMessage(
              { prog: ADMIN_PROGRAM, vers: 1, proc, type: VIR_NET_CALL, serial, status: 0 },
              payload,
            );
            const r = handleAdminCall(d, frame);
            const h = readHeader(r.reply);
            assert.equal(r.reply.readUInt32BE(0), r.reply.length);
            assert.deepEqual(
              [h.prog, h.vers, h.proc, h.type, h.serial],
              [ADMIN_PROGRAM, 1, proc, VIR_NET_REPLY, serial],
            );
            assert.ok(h.status === 0 || h.status === 1);
            calls++;
            if (h.status === 0) okReplies++;
            if (h.status === 1) {
              const e = decodeRemoteError(framePayload(r.reply));
              // The dispatcher's catch-all (internal error, admin domain) means an unexpected exception.
              assert.ok(
                !(e.code === 1 && e.domain === 62),
                `unexpected exception in proc ${proc}: ${e.message}`,
              );
            }
            // Only the time-out setter acts during the call; shutdown and client close wait for `after`.
            assert.ok(
              acted.every((a) => a.startsWith('timeout')),
              `acted before replying: ${acted.join(', ')}`,
            );
            if (r.after !== undefined) assert.ok(h.status === 0 && (proc === 11 || proc === 20));
            if (r.close === true) assert.equal(proc, 2);
          }),
        ),
        fuzzParams(10_000),
      );
      // The generator must get past decoding and validation often, or this target tests little.
      assert.ok(okReplies > calls / 10, `only ${okReplies} of ${calls} calls succeeded`);
    },
  );
});
