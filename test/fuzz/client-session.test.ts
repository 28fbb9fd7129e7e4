// Fuzz target: whole client sessions against the real ClientConnection state machine (see
// session-driver.ts for the fake socket, fake backend and the invariants). Clients send frames from
// a grammar biased towards what hurt libvirt: procedure numbers out of place (CVE-2012-4423),
// hostile array lengths (CVE-2024-2494), keepalive feature then early close (CVE-2014-1447), calls
// before open and before auth, replies and stream packets sent by clients, bad programs, versions,
// types and statuses, all cut into random chunks and sometimes mutated byte-wise.

import { after, describe, it } from 'node:test';
import fc from 'fast-check';

import {
  KEEPALIVE_PROGRAM,
  LXC_PROGRAM,
  QEMU_PROGRAM,
  REMOTE_PROGRAM,
  ADMIN_PROGRAM,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_ULLONG,
} from '../../src/protocol/constants.js';
import { MAX_FRAME_LEN } from '../../src/protocol/frame-decoder.js';
import { encodeMessage } from '../../src/protocol/header.js';
import { encodeConnectOpenArgs, encodeInt, encodeSetIdentityArgs } from '../../src/protocol/payloads.js';
import type { ServiceInfo } from '../../src/server/client-connection.js';
import { runSession, type BackendAction, type Scenario } from './session-driver.js';
import { Meter, chunk, fuzzParams, mutate, mutationsArb } from './support.js';

const meter = new Meter('client-session', {
  maxSingle: () => MAX_FRAME_LEN,
  // Replies the proxy builds itself are small; a few hundred bytes per input byte is generous and
  // still catches amplification loops.
  maxTotal: (n) => 512 * n + MAX_FRAME_LEN + (1 << 20),
});
after(() => meter.print());

const serviceArb: fc.Arbitrary<ServiceInfo> = fc.record({
  name: fc.constantFrom('rw', 'ro'),
  readonly: fc.boolean(),
  auth: fc.constantFrom('none', 'none', 'polkit', 'sasl'),
  transport: fc.constant('unix'),
}) as fc.Arbitrary<ServiceInfo>;

/** Procedure numbers that mean something somewhere, plus the edges of the tables. */
const procArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      1,
      1,
      2,
      3,
      4,
      59,
      60,
      60,
      66,
      67,
      68,
      69,
      70,
      110,
      149,
      360,
      361,
      419,
      209,
      208,
      201,
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      0,
      -1,
      107,
      315,
      453,
      454,
      455,
      1000,
      0x7fffffff,
      -0x80000000,
      6,
      7,
      8,
      20,
      21,
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: -0x80000000, max: 0x7fffffff }) },
);

const progArb = fc.oneof(
  { weight: 10, arbitrary: fc.constant(REMOTE_PROGRAM) },
  { weight: 2, arbitrary: fc.constantFrom(QEMU_PROGRAM, LXC_PROGRAM, KEEPALIVE_PROGRAM, ADMIN_PROGRAM) },
  { weight: 1, arbitrary: fc.nat() },
);

const openPayload = fc
  .record({
    name: fc.option(fc.constantFrom('qemu:///system', '', 'test:///default', 'network:///system', 'bogus'), {
      nil: null,
    }),
    flags: fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.nat()),
  })
  .map(encodeConnectOpenArgs);

const featurePayload = fc.oneof(fc.constantFrom(10, 8, 14, 15, 9, 2, -1), fc.integer()).map(encodeInt);

const identityPayload = fc.oneof(
  fc
    .array(
      fc.oneof(
        fc.record({
          field: fc.constant('user-name'),
          type: fc.constant(VIR_TYPED_PARAM_STRING),
          value: fc.constant('root'),
        }),
        fc.record({
          field: fc.constant('unix-user-id'),
          type: fc.constant(VIR_TYPED_PARAM_ULLONG),
          value: fc.constant(0n),
        }),
        fc.record({
          field: fc.string({ maxLength: 8 }),
          type: fc.constant(VIR_TYPED_PARAM_STRING),
          value: fc.constant('x'),
        }),
      ),
      { maxLength: 22 },
    )
    .map((params) => encodeSetIdentityArgs({ params, flags: 0 })),
  // Negative and huge parameter counts with nothing behind them.
  fc.constantFrom(0xffffffff, 0x80000000, 21, 0x10000000).map((n) => {
    const b = Buffer.alloc(8);
    b.writeUInt32BE(n);
    return b;
  }),
);

const rawPayload = fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a));

const frameArb: fc.Arbitrary<Buffer> = fc
  .record({
    prog: progArb,
    vers: fc.oneof({ weight: 12, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat() }),
    proc: procArb,
    type: fc.oneof(
      { weight: 12, arbitrary: fc.constant(0) },
      { weight: 4, arbitrary: fc.integer({ min: 1, max: 6 }) },
      { weight: 1, arbitrary: fc.integer() },
    ),
    serial: fc.oneof(fc.nat({ max: 40 }), fc.nat()),
    status: fc.oneof(
      { weight: 12, arbitrary: fc.constant(0) },
      { weight: 2, arbitrary: fc.integer({ min: 1, max: 2 }) },
      { weight: 1, arbitrary: fc.integer() },
    ),
    raw: rawPayload,
    open: openPayload,
    feature: featurePayload,
    identity: identityPayload,
  })
  .map((r) => {
    let payload: Buffer = r.raw;
    if (r.prog === REMOTE_PROGRAM && r.proc === 1) payload = r.open;
    if (r.prog === REMOTE_PROGRAM && r.proc === 60) payload = r.feature;
    if (r.prog === REMOTE_PROGRAM && r.proc === 419) payload = r.identity;
    if (r.type === 4) {
      // CALL_WITH_FDS: a descriptor count word comes first.
      const n = Buffer.alloc(4);
      n.writeUInt32BE(r.raw.length % 40);
      payload = Buffer.concat([n, payload]);
    }
    return encodeMessage(
      { prog: r.prog, vers: r.vers, proc: r.proc, type: r.type, serial: r.serial, status: r.status },
      payload,
    );
  });

const PING: Buffer = Buffer.from('0000001c6b65657000000001000000010000000200000000' + '00000000', 'hex');

/** Sessions usually start the way real clients do, then go anywhere. */
const streamArb = fc
  .tuple(
    fc.constantFrom('open-first', 'auth-first', 'anything'),
    fc.array(fc.oneof({ weight: 8, arbitrary: frameArb }, { weight: 1, arbitrary: fc.constant(PING) }), {
      maxLength: 24,
    }),
    fc.option(mutationsArb(4), { nil: null, freq: 4 }),
  )
  .map(([start, frames, ops]) => {
    const pre: Buffer[] = [];
    const all: Buffer[] = frames;
    if (start !== 'anything') {
      pre.push(encodeMessage({ prog: REMOTE_PROGRAM, vers: 1, proc: 66, type: 0, serial: 1000, status: 0 }));
      if (start === 'auth-first')
        pre.push(
          encodeMessage({ prog: REMOTE_PROGRAM, vers: 1, proc: 70, type: 0, serial: 1001, status: 0 }),
        );
      pre.push(
        encodeMessage(
          { prog: REMOTE_PROGRAM, vers: 1, proc: 60, type: 0, serial: 1002, status: 0 },
          encodeInt(10),
        ),
      );
      pre.push(
        encodeMessage(
          { prog: REMOTE_PROGRAM, vers: 1, proc: 1, type: 0, serial: 1003, status: 0 },
          encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
        ),
      );
    }
    const s = Buffer.concat([...pre, ...all]);
    return ops === null ? s : mutate(s, ops);
  });

const backendArb: fc.Arbitrary<BackendAction[]> = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom<BackendAction>('reply', 'none') },
    {
      weight: 3,
      arbitrary: fc.constantFrom<BackendAction>('reply-error', 'event', 'stream', 'full', 'drain'),
    },
    { weight: 1, arbitrary: fc.constantFrom<BackendAction>('eof', 'error') },
  ),
  { minLength: 1, maxLength: 8 },
);

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    service: serviceArb,
    peerUid: fc.constantFrom(0, 1000, null),
    polkit: fc.constantFrom('allow', 'deny', 'throw'),
    opens: fc.array(fc.constantFrom('ok', 'ok', 'fail', 'throw'), { minLength: 1, maxLength: 3 }),
    backend: backendArb,
    clientWriteFullEvery: fc.constantFrom(0, 0, 1, 3),
    stream: streamArb,
    cuts: fc.array(fc.nat(), { maxLength: 12 }),
  })
  .map((r) => ({ ...r, chunks: chunk(r.stream, r.cuts) }) as Scenario & { stream: Buffer });

describe('fuzz: client sessions', () => {
  it('grammar-built and mutated sessions keep every invariant', { timeout: 900_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, (sc) =>
        meter.runAsync(
          sc.chunks.reduce((n, c) => n + c.length, 0),
          async () => {
            await runSession(sc);
          },
        ),
      ),
      fuzzParams(3_000),
    );
  });
});
