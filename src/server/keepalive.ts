// Server layer: libvirt's keepalive timing for one connection leg (NOTES §2), as a standalone unit
// with injected send/onDead/timers so it can be tested with fake timers. Receiving marks the leg
// alive; the timer only checks a flag, so the per-message cost on the hot path is one store.

export interface KeepaliveTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/**
 * One Node interval per distinct period, shared by every leg that uses it: thousands of idle
 * clients then cost a set entry each instead of a timer each.
 */
const wheels = new Map<number, { timer: NodeJS.Timeout; fns: Set<() => void> }>();

const realTimers: KeepaliveTimers = {
  setInterval: (fn, ms) => {
    let w = wheels.get(ms);
    if (w === undefined) {
      const fns = new Set<() => void>();
      const timer = setInterval(() => {
        for (const f of fns) f();
      }, ms);
      timer.unref();
      w = { timer, fns };
      wheels.set(ms, w);
    }
    w.fns.add(fn);
    return { ms, fn };
  },
  clearInterval: (h) => {
    const { ms, fn } = h as { ms: number; fn: () => void };
    const w = wheels.get(ms);
    if (w === undefined) return;
    w.fns.delete(fn);
    if (w.fns.size === 0) {
      clearInterval(w.timer);
      wheels.delete(ms);
    }
  },
};

export interface KeepaliveOptions {
  /** Seconds of silence before a ping; ≤ 0 disables pinging (the leg is then never declared dead). */
  interval: number;
  /** Pings sent without answer before the leg is declared dead. */
  count: number;
  sendPing: () => void;
  onDead: () => void;
  timers?: KeepaliveTimers;
}

export class Keepalive {
  private handle: unknown = null;
  private heard = true;
  private left: number;
  private readonly timers: KeepaliveTimers;

  constructor(private readonly opts: KeepaliveOptions) {
    this.left = opts.count;
    this.timers = opts.timers ?? realTimers;
  }

  get running(): boolean {
    return this.handle !== null;
  }

  start(): void {
    if (this.handle !== null || this.opts.interval <= 0) return;
    this.heard = true;
    this.left = this.opts.count;
    this.handle = this.timers.setInterval(() => this.tick(), this.opts.interval * 1000);
  }

  stop(): void {
    if (this.handle === null) return;
    this.timers.clearInterval(this.handle);
    this.handle = null;
  }

  /** Any complete message from the peer proves it alive. */
  received(): void {
    this.heard = true;
  }

  private tick(): void {
    if (this.heard) {
      this.heard = false;
      this.left = this.opts.count;
      return;
    }
    if (this.left > 0) {
      this.left--;
      this.opts.sendPing();
      return;
    }
    this.stop();
    this.opts.onDead();
  }
}
