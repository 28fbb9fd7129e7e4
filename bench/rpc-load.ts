// Benchmark load generator, run as a forked child of bench.ts. It opens N raw connections to each
// target (libvirtd directly, the proxy), then loads one target at a time in short alternating
// slices, keeping a fixed number of CONNECT_GET_HOSTNAME calls in flight per connection and timing
// each. Alternating slices expose both targets to the same background load on a shared machine;
// one long run per target would not. Results go back to the parent over the IPC channel.

import { performance } from 'node:perf_hooks';

import { REMOTE_PROC_CONNECT_GET_HOSTNAME, WireClient, replyPayload } from './wire-client.js';

export interface LoadTarget {
  name: string;
  sock: string;
}

export interface LoadConfig {
  targets: LoadTarget[];
  uri: string;
  /** Connections per target. */
  conns: number;
  /** Calls kept in flight per connection (1 = strictly sequential). */
  depth: number;
  /** Unmeasured load per target before the first measured slice. */
  warmupMs: number;
  /** Measured time per target, spread over the slices. */
  durationMs: number;
  /** Length of one slice, and the part of its start that is not measured (the pipeline filling). */
  sliceMs: number;
  skipMs: number;
}

export interface TargetResult {
  name: string;
  /** Replies received inside the measured windows, and the windows' total length. */
  windowCalls: number;
  windowMs: number;
  /** Replies inside each measured slice's window, in slice order (pairs up with the other target's). */
  sliceCalls: number[];
  /** Latency in ms of each call answered inside a window. */
  latMs: Float64Array;
  sent: number;
  replied: number;
  errors: number;
  firstError: string | null;
}

/** Parent → child. */
export type LoadCommand = { cmd: 'go' };

/** Child → parent. */
export type LoadMessage =
  | { type: 'ready' }
  /** A measured window of `target` opens or closes: the parent samples CPU use there. */
  | { type: 'window'; target: string; phase: 'start' | 'end' }
  | { type: 'result'; targets: TargetResult[] }
  | { type: 'failed'; message: string };

const DRAIN_TIMEOUT_MS = 10_000;
const OPEN_CONCURRENCY = 16;

function post(msg: LoadMessage): void {
  process.send?.(msg);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function openAll(sock: string, uri: string, n: number): Promise<WireClient[]> {
  const clients: WireClient[] = [];
  for (let i = 0; i < n; i += OPEN_CONCURRENCY) {
    const batch = Array.from({ length: Math.min(OPEN_CONCURRENCY, n - i) }, async () => {
      const c = await WireClient.connect(sock);
      await c.open(uri);
      return c;
    });
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}

/** One target's connections and tallies. */
class Load {
  private lat = new Float64Array(1 << 16);
  private windowCalls = 0;
  private windowMs = 0;
  private readonly sliceCalls: number[] = [];
  private sent = 0;
  private replied = 0;
  private errors = 0;
  private firstError: string | null = null;
  /** Replies arriving in [winStart, winEnd) are measured; no call is issued after `stopAt`. */
  private winStart = Infinity;
  private winEnd = -Infinity;
  private stopAt = -Infinity;
  private onIdle: (() => void) | null = null;
  private finished = false;

  constructor(
    readonly name: string,
    private readonly clients: WireClient[],
    private readonly depth: number,
  ) {
    for (const c of clients) {
      c.onClose = (err) => {
        if (!this.finished) this.fail(`connection lost during the run: ${err.message}`);
      };
    }
  }

  /** Loads the target for `ms`, measuring after `skipMs` when `measure`; resolves once all replies are in. */
  async slice(ms: number, skipMs: number, measure: boolean): Promise<void> {
    const start = performance.now();
    const callsBefore = this.windowCalls;
    this.stopAt = start + ms;
    if (measure) {
      this.winStart = start + skipMs;
      this.winEnd = this.stopAt;
      this.windowMs += ms - skipMs;
    }
    for (const c of this.clients) {
      c.socket.cork();
      for (let i = 0; i < this.depth; i++) this.issue(c);
      c.socket.uncork();
    }
    if (measure) {
      await sleep(this.winStart - performance.now());
      post({ type: 'window', target: this.name, phase: 'start' });
    }
    await sleep(this.stopAt - performance.now());
    if (measure) post({ type: 'window', target: this.name, phase: 'end' });
    await this.drained();
    if (measure) this.sliceCalls.push(this.windowCalls - callsBefore);
    this.winStart = Infinity;
    this.winEnd = -Infinity;
  }

  private drained(): Promise<void> {
    if (this.replied === this.sent) return Promise.resolve();
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        this.fail(
          `${this.sent - this.replied} calls unanswered ${DRAIN_TIMEOUT_MS / 1000} s after the slice`,
        );
        resolve();
      }, DRAIN_TIMEOUT_MS);
      this.onIdle = () => {
        clearTimeout(deadline);
        this.onIdle = null;
        resolve();
      };
    });
  }

  private issue(c: WireClient): void {
    const start = performance.now();
    this.sent++;
    c.send(REMOTE_PROC_CONNECT_GET_HOSTNAME, null, (frame) => {
      const now = performance.now();
      this.replied++;
      try {
        replyPayload(frame, REMOTE_PROC_CONNECT_GET_HOSTNAME);
      } catch (e) {
        this.fail((e as Error).message);
      }
      if (now >= this.winStart && now < this.winEnd) this.record(now - start);
      if (now < this.stopAt) this.issue(c);
      else if (this.replied === this.sent) this.onIdle?.();
    });
  }

  private record(ms: number): void {
    if (this.windowCalls === this.lat.length) {
      const bigger = new Float64Array(this.lat.length * 2);
      bigger.set(this.lat);
      this.lat = bigger;
    }
    this.lat[this.windowCalls++] = ms;
  }

  private fail(message: string): void {
    this.errors++;
    this.firstError ??= message;
  }

  finish(): TargetResult {
    this.finished = true;
    for (const c of this.clients) c.destroy();
    return {
      name: this.name,
      windowCalls: this.windowCalls,
      windowMs: this.windowMs,
      sliceCalls: this.sliceCalls,
      latMs: this.lat.slice(0, this.windowCalls),
      sent: this.sent,
      replied: this.replied,
      errors: this.errors,
      firstError: this.firstError,
    };
  }
}

async function run(cfg: LoadConfig): Promise<void> {
  const loads: Load[] = [];
  for (const t of cfg.targets)
    loads.push(new Load(t.name, await openAll(t.sock, cfg.uri, cfg.conns), cfg.depth));
  await new Promise<void>((resolve) => {
    process.once('message', (m: LoadCommand) => {
      if (m.cmd === 'go') resolve();
    });
    post({ type: 'ready' });
  });

  for (const l of loads) await l.slice(cfg.warmupMs, 0, false);
  const measuredPerSlice = cfg.sliceMs - cfg.skipMs;
  const slices = Math.max(1, Math.ceil(cfg.durationMs / measuredPerSlice));
  for (let i = 0; i < slices; i++) {
    // A B B A A B ...: a steady drift in the background load favours neither target.
    const order = i % 2 === 0 ? loads : [...loads].reverse();
    for (const l of order) await l.slice(cfg.sliceMs, cfg.skipMs, true);
  }
  post({ type: 'result', targets: loads.map((l) => l.finish()) });
}

// The open IPC channel keeps this process alive after its report; the parent ends it once the
// report has arrived (exiting here could let 'exit' overtake the message on the parent's side).
const arg = process.argv[2];
if (process.send !== undefined && arg !== undefined) {
  run(JSON.parse(arg) as LoadConfig).catch((e: unknown) => {
    post({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  });
}
