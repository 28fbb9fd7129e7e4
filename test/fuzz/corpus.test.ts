// Fuzz target: real captured traffic (test/corpus, recorded by tools/capture-frames.ts in front of
// libvirtd while the e2e tests and campaigns ran), mutated byte-wise. Client-to-daemon sessions and
// frames go through the real ClientConnection (session-driver.ts invariants) while the fake backend
// answers and also relays mutated captured daemon frames; single frames go through the framing and
// payload decoders the proxy uses on each side.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';

import { CodedError } from '../../src/protocol/coded-error.js';
import { REMOTE_PROGRAM } from '../../src/protocol/constants.js';
import { FrameDecoder, MAX_FRAME_LEN } from '../../src/protocol/frame-decoder.js';
import { framePayload, readHeader } from '../../src/protocol/header.js';
import {
  decodeAuthList,
  decodeConnectOpenArgs,
  decodeInt,
  decodeSetIdentityArgs,
} from '../../src/protocol/payloads.js';
import { decodeRemoteError } from '../../src/protocol/remote-error.js';
import type { ServiceInfo } from '../../src/server/client-connection.js';
import { runSession, type BackendAction } from './session-driver.js';
import { Meter, chunk, fuzzParams, mutate, mutationsArb } from './support.js';

function corpusDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return join(dir, 'test', 'corpus');
}

function framesOf(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  new FrameDecoder(
    (f) => out.push(Buffer.from(f)),
    (e) => assert.fail(`corpus file does not frame: ${e.message}`),
  ).push(b);
  return out;
}

const dir = corpusDir();
const clientFrames = framesOf(readFileSync(join(dir, 'client-frames.bin')));
const backendFrames = framesOf(readFileSync(join(dir, 'backend-frames.bin')));
const sessions = readdirSync(join(dir, 'sessions'))
  .sort()
  .map((f) => readFileSync(join(dir, 'sessions', f)));

const meter = new Meter('corpus', {
  maxSingle: () => MAX_FRAME_LEN,
  maxTotal: (n) => 512 * n + MAX_FRAME_LEN + (1 << 20),
});
after(() => meter.print());

/** Keeps the length word honest after mutation, so the frame reaches the code past the decoder. */
function reframe(f: Buffer): Buffer {
  const c = f.length < 28 ? Buffer.concat([f, Buffer.alloc(28 - f.length)]) : Buffer.from(f);
  c.writeUInt32BE(c.length, 0);
  return c;
}

const serviceArb: fc.Arbitrary<ServiceInfo> = fc.record({
  name: fc.constantFrom('rw', 'ro'),
  readonly: fc.boolean(),
  auth: fc.constantFrom('none', 'none', 'none', 'polkit'),
  transport: fc.constant('unix'),
}) as fc.Arbitrary<ServiceInfo>;

/** A client stream: a captured session, or captured frames strung together; then mutated. */
const clientStreamArb = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(...sessions),
      fc
        .array(fc.constantFrom(...clientFrames), { minLength: 1, maxLength: 12 })
        .map((fs) => Buffer.concat(fs)),
    ),
    mutationsArb(6),
  )
  .map(([b, ops]) => mutate(b, ops));

const backendArb = fc.array(
  fc.constantFrom<BackendAction>(
    'reply',
    'reply',
    'inject',
    'inject',
    'event',
    'stream',
    'reply-error',
    'none',
    'full',
    'drain',
    'eof',
  ),
  { minLength: 1, maxLength: 8 },
);

const injectArb = fc.array(
  fc.tuple(fc.constantFrom(...backendFrames), mutationsArb(3)).map(([f, ops]) => reframe(mutate(f, ops))),
  { maxLength: 8 },
);

describe('fuzz: captured traffic, mutated', () => {
  it('captured corpus is present and frames cleanly', () => {
    assert.ok(clientFrames.length > 50 && backendFrames.length > 50 && sessions.length > 10);
  });

  it(
    'sessions through the real client state machine, with mutated daemon frames relayed',
    { timeout: 900_000 },
    async () => {
      await fc.assert(
        fc.asyncProperty(
          serviceArb,
          clientStreamArb,
          fc.array(fc.nat(), { maxLength: 10 }),
          backendArb,
          injectArb,
          async (service, stream, cuts, backend, inject) =>
            meter.runAsync(stream.length, async () => {
              await runSession({
                service,
                peerUid: 0,
                polkit: 'allow',
                opens: ['ok'],
                backend,
                clientWriteFullEvery: 0,
                chunks: chunk(stream, cuts),
                backendFrames: inject,
              });
            }),
        ),
        fuzzParams(2_000),
      );
    },
  );

  it(
    'single captured frames, mutated, through the payload decoders of either side',
    { timeout: 600_000 },
    () => {
      const tolerate = (fn: () => unknown): void => {
        try {
          fn();
        } catch (e) {
          if (!(e instanceof CodedError)) throw e;
        }
      };
      fc.assert(
        fc.property(fc.constantFrom(...clientFrames, ...backendFrames), mutationsArb(6), (seed, ops) => {
          const f = reframe(mutate(seed, ops));
          meter.run(f.length, () => {
            const h = readHeader(f);
            const p = framePayload(f);
            if (h.prog === REMOTE_PROGRAM) {
              // What the proxy decodes from clients...
              tolerate(() => decodeConnectOpenArgs(p));
              tolerate(() => decodeSetIdentityArgs(p));
              tolerate(() => decodeInt(p));
              // ...and from daemons during its handshake.
              tolerate(() => decodeAuthList(p));
            }
            tolerate(() => decodeRemoteError(p));
          });
        }),
        fuzzParams(20_000),
      );
    },
  );
});
