// Fuzz target: the keepalive unit under any interleaving of received messages, timer ticks,
// start and stop (the early-close race of CVE-2014-1447 is "stop while a tick is due"). Checked:
// the peer is declared dead at most once, never after stop, never while messages keep arriving,
// and no more than `count` pings go out between two received messages.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';

import { Keepalive, type KeepaliveTimers } from '../../src/server/keepalive.js';
import { Meter, fuzzParams } from './support.js';

const meter = new Meter('keepalive', { maxSingle: () => 4096, maxTotal: () => 65536 });
after(() => meter.print());

class ManualTimers implements KeepaliveTimers {
  fn: (() => void) | null = null;
  live = 0;
  setInterval(fn: () => void): unknown {
    this.fn = fn;
    this.live++;
    return this.live;
  }
  clearInterval(): void {
    this.fn = null;
  }
  fire(): void {
    this.fn?.();
  }
}

type Op = 'recv' | 'tick' | 'start' | 'stop';

describe('fuzz: keepalive', () => {
  it('any interleaving of receive, tick, start and stop', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1, max: 5 }),
        fc.integer({ min: 0, max: 6 }),
        fc.array(fc.constantFrom<Op>('recv', 'tick', 'tick', 'start', 'stop'), { maxLength: 80 }),
        (interval, count, ops) =>
          meter.run(ops.length, () => {
            const timers = new ManualTimers();
            let dead = 0;
            let pingsSinceRecv = 0;
            let stopped = false;
            const ka = new Keepalive({
              interval,
              count,
              sendPing: () => pingsSinceRecv++,
              onDead: () => {
                assert.equal(stopped, false, 'declared dead after stop');
                dead++;
              },
              timers,
            });
            for (const op of ops) {
              if (op === 'recv') {
                ka.received();
                pingsSinceRecv = 0;
              } else if (op === 'tick') {
                timers.fire();
              } else if (op === 'start') {
                stopped = false;
                if (!ka.running) pingsSinceRecv = 0;
                ka.start();
              } else {
                stopped = true;
                ka.stop();
              }
              assert.ok(pingsSinceRecv <= count, `${pingsSinceRecv} pings for count ${count}`);
            }
            assert.ok(dead <= 1 || ops.includes('start'), 'dead only once per start');
            if (interval <= 0) assert.equal(dead, 0, 'disabled keepalive never kills');
          }),
      ),
      fuzzParams(20_000),
    );
  });
});
