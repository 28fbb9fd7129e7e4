// Fuzz support: run counts from the environment, and a meter that wraps each fuzz execution to
// time it (a slow execution counts as a hang) and to watch the Buffer allocations the code under
// test makes (one allocation beyond the target's bound counts as an unbounded allocation).
// FUZZ_RUNS sets the executions per property (CI-sized defaults otherwise), FUZZ_SEED replays a run.

import fc from 'fast-check';

/** Executions per property: FUZZ_RUNS when set, else the target's CI-sized default. */
export function fuzzRuns(ciDefault: number): number {
  const raw = process.env['FUZZ_RUNS'];
  if (raw === undefined || raw === '') return ciDefault;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`FUZZ_RUNS must be a positive integer, got '${raw}'`);
  return n;
}

/** fast-check parameters shared by every target; FUZZ_SEED makes a failure reproducible. */
export function fuzzParams(ciDefault: number): fc.Parameters<unknown> {
  const seedRaw = process.env['FUZZ_SEED'];
  const params: fc.Parameters<unknown> = { numRuns: fuzzRuns(ciDefault), endOnFailure: false };
  if (seedRaw !== undefined && seedRaw !== '') params.seed = Number(seedRaw);
  return params;
}

/** An execution slower than this is reported as a hang (generous: GC pauses on a busy CI box). */
export const HANG_MS = Number(process.env['FUZZ_HANG_MS'] ?? 2000);

export interface MeterLimits {
  /** Largest single Buffer allocation allowed, given the execution's input size in bytes. */
  maxSingle: (inputBytes: number) => number;
  /** Largest sum of allocations in one execution, given its input size. */
  maxTotal: (inputBytes: number) => number;
}

export interface Figures {
  target: string;
  execs: number;
  crashes: number;
  hangs: number;
  unboundedAllocs: number;
  slowestMs: number;
  largestAlloc: number;
}

type AllocFn = (size: number, ...rest: never[]) => Buffer;

// The allocation meter patches Buffer's public allocators once; it only counts while `metering` is
// set, so fast-check's and the test's own buffers are not charged to the code under test.
let metering = false;
let allocSingle = 0;
let allocTotal = 0;
let bigAllocStack = '';
let patched = false;

function patchAllocators(): void {
  if (patched) return;
  patched = true;
  for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const) {
    const original = Buffer[name] as unknown as AllocFn;
    (Buffer as unknown as Record<string, AllocFn>)[name] = function meteredAlloc(
      size: number,
      ...rest: never[]
    ): Buffer {
      if (metering) {
        if (size > allocSingle) allocSingle = size;
        allocTotal += size;
        // Where big allocations come from, for the failure message.
        if (size >= 1 << 20) bigAllocStack = new Error('allocated here').stack ?? '';
      }
      return original.call(Buffer, size, ...rest);
    };
  }
}

/** Runs test-side work (oracles, reference decoders) without charging it to the code under test. */
export function unmetered<T>(fn: () => T): T {
  const was = metering;
  metering = false;
  try {
    return fn();
  } finally {
    metering = was;
  }
}

/** Collects the figures of one target; `run` wraps each execution. */
export class Meter {
  readonly figures: Figures;

  constructor(
    target: string,
    private readonly limits: MeterLimits,
  ) {
    patchAllocators();
    this.figures = {
      target,
      execs: 0,
      crashes: 0,
      hangs: 0,
      unboundedAllocs: 0,
      slowestMs: 0,
      largestAlloc: 0,
    };
  }

  private begin(): number {
    allocSingle = 0;
    allocTotal = 0;
    bigAllocStack = '';
    metering = true;
    return performance.now();
  }

  private end(t0: number, inputBytes: number): void {
    metering = false;
    const ms = performance.now() - t0;
    const f = this.figures;
    f.execs++;
    if (ms > f.slowestMs) f.slowestMs = ms;
    if (allocSingle > f.largestAlloc) f.largestAlloc = allocSingle;
    if (ms > HANG_MS) {
      f.hangs++;
      throw new Error(`hang: one execution took ${ms.toFixed(0)} ms (limit ${HANG_MS} ms)`);
    }
    const single = this.limits.maxSingle(inputBytes);
    const total = this.limits.maxTotal(inputBytes);
    if (allocSingle > single || allocTotal > total) {
      f.unboundedAllocs++;
      throw new Error(
        `unbounded allocation: largest ${allocSingle} B (limit ${single}), total ${allocTotal} B ` +
          `(limit ${total}) for ${inputBytes} input bytes; last big one: ${bigAllocStack}`,
      );
    }
  }

  /** Runs one synchronous execution; exceptions are crashes. */
  run(inputBytes: number, fn: () => void): void {
    const t0 = this.begin();
    try {
      fn();
    } catch (e) {
      metering = false;
      this.figures.execs++;
      this.figures.crashes++;
      throw e;
    }
    this.end(t0, inputBytes);
  }

  /** Runs one asynchronous execution (the meter stays on across its awaits). */
  async runAsync(inputBytes: number, fn: () => Promise<void>): Promise<void> {
    const t0 = this.begin();
    try {
      await fn();
    } catch (e) {
      metering = false;
      this.figures.execs++;
      this.figures.crashes++;
      throw e;
    }
    this.end(t0, inputBytes);
  }

  /** One line per target, grep-able by the long-run scripts and docs/reliability.md. */
  print(): void {
    const f = this.figures;
    process.stdout.write(
      `FUZZ ${f.target}: execs=${f.execs} crashes=${f.crashes} hangs=${f.hangs} ` +
        `unbounded_allocs=${f.unboundedAllocs} slowest_ms=${f.slowestMs.toFixed(1)} ` +
        `largest_alloc=${f.largestAlloc}\n`,
    );
  }
}

/** Byte-level mutations of a seed buffer, as a coverage-less fuzzer would apply them. */
export function mutationsArb(maxOps = 8): fc.Arbitrary<Array<(b: Buffer) => Buffer>> {
  const interesting = [0, 1, 0x1c, 0x7f, 0x80, 0xff, 0x7fffffff, 0x80000000, 0xffffffff, 0x02000004, 20, 21];
  const op: fc.Arbitrary<(b: Buffer) => Buffer> = fc.oneof(
    // Flip one bit.
    fc.tuple(fc.nat(), fc.nat({ max: 7 })).map(([pos, bit]) => (b: Buffer) => {
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      const i = pos % c.length;
      c[i] = (c[i] ?? 0) ^ (1 << bit);
      return c;
    }),
    // Overwrite an aligned word with a value parsers treat specially (lengths, counts, signs).
    fc.tuple(fc.nat(), fc.constantFrom(...interesting)).map(([pos, v]) => (b: Buffer) => {
      if (b.length < 4) return b;
      const c = Buffer.from(b);
      c.writeUInt32BE(v >>> 0, (pos % Math.floor(c.length / 4)) * 4);
      return c;
    }),
    // Insert random bytes.
    fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([pos, ins]) => (b: Buffer) => {
      const i = b.length === 0 ? 0 : pos % (b.length + 1);
      return Buffer.concat([b.subarray(0, i), Buffer.from(ins), b.subarray(i)]);
    }),
    // Delete a run of bytes.
    fc.tuple(fc.nat(), fc.integer({ min: 1, max: 16 })).map(([pos, n]) => (b: Buffer) => {
      if (b.length === 0) return b;
      const i = pos % b.length;
      return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
    }),
    // Duplicate a slice (repeated frames, repeated fields).
    fc.tuple(fc.nat(), fc.integer({ min: 1, max: 64 })).map(([pos, n]) => (b: Buffer) => {
      if (b.length === 0) return b;
      const i = pos % b.length;
      return Buffer.concat([b.subarray(0, i + n), b.subarray(i)]);
    }),
    // Truncate.
    fc.nat().map((pos) => (b: Buffer) => b.subarray(0, b.length === 0 ? 0 : pos % b.length)),
  );
  return fc.array(op, { maxLength: maxOps });
}

/** Applies mutations in order. */
export function mutate(seed: Buffer, ops: ReadonlyArray<(b: Buffer) => Buffer>): Buffer {
  let b = seed;
  for (const op of ops) b = op(b);
  return b;
}

/** Cuts a stream into chunks at the given points (the same bytes, any socket read pattern). */
export function chunk(stream: Buffer, points: readonly number[]): Buffer[] {
  const cuts = points.map((p) => p % (stream.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of cuts) {
    if (p > prev) out.push(stream.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  if (prev < stream.length) out.push(stream.subarray(prev));
  return out;
}
