// Unit tests for Keepalive (NOTES §2) on a fake clock: pings start after an interval of silence,
// `count` unanswered pings then onDead, any received message restores the count, interval <= 0
// never pings. Bounds allow the timer to run on a fixed period (first ping within 1–2 intervals
// of the last message) as the implementation documents.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { Keepalive, type KeepaliveTimers } from '../../../src/server/keepalive.js';

/** A manual clock implementing the injected timer interface. */
class FakeTimers implements KeepaliveTimers {
  now = 0;
  private next = 1;
  private readonly timers = new Map<number, { fn: () => void; ms: number; due: number }>();

  setInterval(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { fn, ms, due: this.now + ms });
    return id;
  }

  clearInterval(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get active(): number {
    return this.timers.size;
  }

  /** Moves the clock forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let nextId = -1;
      let nextDue = Infinity;
      for (const [id, t] of this.timers) {
        if (t.due < nextDue) {
          nextDue = t.due;
          nextId = id;
        }
      }
      if (nextId < 0 || nextDue > end) break;
      const t = this.timers.get(nextId);
      if (t === undefined) break;
      this.now = nextDue;
      t.due += t.ms;
      t.fn();
    }
    this.now = end;
  }
}

interface Leg {
  ka: Keepalive;
  clock: FakeTimers;
  pings: number[];
  dead: number[];
}

function leg(interval: number, count: number): Leg {
  const clock = new FakeTimers();
  const pings: number[] = [];
  const dead: number[] = [];
  const ka = new Keepalive({
    interval,
    count,
    sendPing: () => pings.push(clock.now),
    onDead: () => dead.push(clock.now),
    timers: clock,
  });
  return { ka, clock, pings, dead };
}

/** Advances one millisecond at a time so event times are exact. */
function runUntil(l: Leg, t: number): void {
  while (l.clock.now < t) l.clock.advance(1);
}

describe('Keepalive', () => {
  it('does nothing before start()', () => {
    const l = leg(5, 5);
    l.clock.advance(60_000);
    assert.equal(l.ka.running, false);
    assert.deepEqual(l.pings, []);
    assert.deepEqual(l.dead, []);
  });

  it('pings after an interval of silence, not before, and no later than two intervals', () => {
    const l = leg(5, 5);
    l.ka.start();
    assert.equal(l.ka.running, true);
    runUntil(l, 4_999);
    assert.deepEqual(l.pings, [], 'no ping before one interval of silence');
    runUntil(l, 10_000);
    assert.equal(l.pings.length, 1, 'a ping within two intervals');
    assert.ok(l.pings[0]! >= 5_000 && l.pings[0]! <= 10_000);
  });

  it('sends `count` pings one interval apart, then calls onDead once and stops', () => {
    const l = leg(5, 3);
    l.ka.start();
    runUntil(l, 60_000);
    assert.equal(l.pings.length, 3);
    for (let i = 1; i < l.pings.length; i++) assert.equal(l.pings[i]! - l.pings[i - 1]!, 5_000);
    assert.equal(l.dead.length, 1);
    assert.equal(l.dead[0]! - l.pings[2]!, 5_000, 'dead one interval after the last ping');
    // About interval × (count + 1) of silence, give or take the one-interval timer granularity.
    assert.ok(l.dead[0]! >= 5_000 * 4 && l.dead[0]! <= 5_000 * 5, `dead at ${l.dead[0]}`);
    assert.equal(l.ka.running, false);
    assert.equal(l.clock.active, 0, 'timer cleared');
  });

  it('with count 0 closes after the silence without pinging', () => {
    const l = leg(2, 0);
    l.ka.start();
    runUntil(l, 10_000);
    assert.deepEqual(l.pings, []);
    assert.equal(l.dead.length, 1);
    assert.ok(l.dead[0]! >= 2_000 && l.dead[0]! <= 4_000, `dead at ${l.dead[0]}`);
  });

  it('never pings while messages keep arriving within the interval', () => {
    const l = leg(5, 2);
    l.ka.start();
    for (let t = 0; t < 120_000; t += 4_000) {
      runUntil(l, t);
      l.ka.received();
    }
    assert.deepEqual(l.pings, []);
    assert.deepEqual(l.dead, []);
    assert.equal(l.ka.running, true);
  });

  it('any received() after pings restores the full count', () => {
    const l = leg(5, 2);
    l.ka.start();
    runUntil(l, 60_000);
    assert.equal(l.dead.length, 1, 'sanity: dies without answers');

    const m = leg(5, 2);
    m.ka.start();
    while (m.pings.length < 2) m.clock.advance(1);
    const answeredAt = m.clock.now + 1;
    runUntil(m, answeredAt);
    m.ka.received(); // e.g. a PONG, or any other message
    runUntil(m, answeredAt + 4_999);
    assert.equal(m.pings.length, 2, 'no ping within one interval of the answer');
    assert.deepEqual(m.dead, []);
    runUntil(m, answeredAt + 60_000);
    assert.equal(m.pings.length, 4, 'two fresh pings after the answer');
    assert.equal(m.dead.length, 1);
    assert.ok(m.pings[2]! - answeredAt >= 5_000 && m.pings[2]! - answeredAt <= 10_000);
  });

  it('interval <= 0 never pings and never declares the peer dead', () => {
    for (const interval of [0, -1]) {
      const l = leg(interval, 5);
      l.ka.start();
      l.clock.advance(3_600_000);
      assert.equal(l.ka.running, false);
      assert.equal(l.clock.active, 0);
      assert.deepEqual(l.pings, []);
      assert.deepEqual(l.dead, []);
    }
  });

  it('stop() cancels the timer; start() again begins from a full count', () => {
    const l = leg(1, 1);
    l.ka.start();
    runUntil(l, 2_500);
    assert.equal(l.pings.length, 1);
    l.ka.stop();
    assert.equal(l.ka.running, false);
    assert.equal(l.clock.active, 0);
    runUntil(l, 20_000);
    assert.equal(l.pings.length, 1);
    assert.deepEqual(l.dead, []);
    l.ka.start();
    runUntil(l, 20_999);
    assert.equal(l.pings.length, 1, 'restart counts as fresh activity');
    runUntil(l, 40_000);
    assert.equal(l.pings.length, 2, 'one ping (count 1) after the restart');
    assert.equal(l.dead.length, 1);
  });

  it('start() twice keeps a single timer', () => {
    const l = leg(5, 5);
    l.ka.start();
    l.ka.start();
    assert.equal(l.clock.active, 1);
    runUntil(l, 10_000);
    assert.equal(l.pings.length, 1);
  });

  it('uses the interval in seconds', () => {
    const clock = new FakeTimers();
    let ms = 0;
    const spy: KeepaliveTimers = {
      setInterval: (fn, m) => {
        ms = m;
        return clock.setInterval(fn, m);
      },
      clearInterval: (h) => clock.clearInterval(h),
    };
    new Keepalive({ interval: 7, count: 1, sendPing: () => {}, onDead: () => {}, timers: spy }).start();
    assert.equal(ms, 7_000);
  });
});
