// Fuzz support: drives one real ClientConnection (the server layer's per-client state machine) with
// a fake socket and a scripted fake backend leg, entirely in memory, and checks what a client may
// rely on whatever bytes it sends: nothing throws, the proxy's output is well-formed frames, every
// reply answers a call the client made (never more replies than calls), nothing reaches a backend
// before authentication, read-only services only open read-only legs, nothing is written after the
// connection ended, and closing always releases the backend leg.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type net from 'node:net';

import {
  REMOTE_PROC_AUTH_LIST,
  REMOTE_PROGRAM,
  VIR_ERR_INTERNAL_ERROR,
  VIR_FROM_RPC,
  VIR_NET_CALL,
  VIR_NET_CALL_WITH_FDS,
  VIR_NET_CONTINUE,
  VIR_NET_ERROR,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_REPLY_WITH_FDS,
  VIR_NET_STREAM,
  VIR_NET_STREAM_HOLE,
} from '../../src/protocol/constants.js';
import { FrameDecoder } from '../../src/protocol/frame-decoder.js';
import { encodeMessage, readHeader } from '../../src/protocol/header.js';
import { encodeRemoteError, remoteError } from '../../src/protocol/remote-error.js';
import {
  ClientConnection,
  type BackendLeg,
  type ClientHooks,
  type ServiceInfo,
} from '../../src/server/client-connection.js';
import { unmetered } from './support.js';

/** What the fake backend does between two client chunks. */
export type BackendAction =
  | 'none'
  | 'reply'
  | 'reply-error'
  | 'event'
  | 'stream'
  | 'keepalive'
  | 'eof'
  | 'error'
  | 'full'
  | 'drain'
  | 'inject';

export interface Scenario {
  service: ServiceInfo;
  peerUid: number | null;
  polkit: 'allow' | 'deny' | 'throw';
  /** Outcome of successive CONNECT_OPEN attempts (cycled). */
  opens: Array<'ok' | 'fail' | 'throw'>;
  /** Backend behaviour between chunks (cycled). */
  backend: BackendAction[];
  /** socket.write returns false on every n-th call (0 = never). */
  clientWriteFullEvery: number;
  chunks: Buffer[];
  /** Frames the backend sends on 'inject' (in turn), e.g. captured and mutated daemon traffic. */
  backendFrames?: Buffer[];
}

class FakeSocket extends EventEmitter {
  writable = true;
  ended = false;
  destroyed = false;
  paused = false;
  writes = 0;
  readonly out: Buffer[] = [];
  readonly violations: string[] = [];

  constructor(private readonly fullEvery: number) {
    super();
  }

  write(b: Buffer): boolean {
    // Like net.Socket: a write after destroy() is dropped silently, but a write after end() is an
    // error that tears the socket down (ERR_STREAM_WRITE_AFTER_END), losing what was queued.
    if (this.destroyed) return false;
    if (this.ended) {
      this.violations.push(`write of ${b.length} bytes after end()`);
      return false;
    }
    this.out.push(Buffer.from(b));
    this.writes++;
    return this.fullEvery === 0 || this.writes % this.fullEvery !== 0;
  }

  end(b?: Buffer): void {
    if (b !== undefined) this.write(b);
    this.ended = true;
    this.writable = false;
    setImmediate(() => this.destroy());
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.writable = false;
    setImmediate(() => this.emit('close', false));
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    return this;
  }
}

class FakeLeg implements BackendLeg {
  readonly got: Buffer[] = [];
  private injected = 0;
  /** Injected frames actually delivered: the proxy relays them, so the client may see them. */
  readonly sent: Buffer[] = [];

  constructor(private readonly inject: readonly Buffer[]) {}

  private answered = 0;
  onFrame: ((f: Buffer, fds: number[] | null) => void) | null = null;
  onClose: ((r: 'eof' | 'error' | 'keepalive' | 'client') => void) | null = null;
  closedByProxy = false;
  died = false;
  full = false;
  private drainCbs: Array<() => void> = [];

  write(frame: Buffer): boolean {
    this.got.push(Buffer.from(frame));
    return !this.full;
  }

  /** The fake never carries fds (no descriptor is ever passed in memory); such a call is recorded. */
  writeWithFds(frame: Buffer, fds: number[]): void {
    this.got.push(Buffer.from(frame));
    this.fdWrites += fds.length + 1;
  }

  fdWrites = 0;
  private pieceBuf: Buffer[] = [];

  /** Pieces of a cut-through frame are recorded as the whole frame once its last piece arrives. */
  writePiece(piece: Buffer, last: boolean): boolean {
    this.pieceBuf.push(Buffer.from(piece));
    if (last) {
      this.got.push(Buffer.concat(this.pieceBuf));
      this.pieceBuf = [];
    }
    return !this.full;
  }

  attach(
    onFrame: (f: Buffer, fds: number[] | null) => void,
    onClose: (r: 'eof' | 'error' | 'keepalive' | 'client') => void,
  ): void {
    this.onFrame = onFrame;
    this.onClose = onClose;
  }

  close(): void {
    this.closedByProxy = true;
  }

  pause(): void {}
  resume(): void {}

  onDrain(cb: () => void): void {
    this.drainCbs.push(cb);
  }

  /** Performs one scripted action; frames may still arrive after the proxy closed the leg, as on a real socket. */
  act(a: BackendAction): void {
    const deliver = (f: Buffer): void => {
      if (!this.died) this.onFrame?.(f, null);
    };
    switch (a) {
      case 'reply':
      case 'reply-error':
        for (; this.answered < this.got.length; this.answered++) {
          const f = this.got[this.answered]!;
          const h = readHeader(f);
          if (h.type !== VIR_NET_CALL) continue;
          const err = a === 'reply-error';
          const payload = err
            ? encodeRemoteError(remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, 'no'))
            : null;
          deliver(
            encodeMessage({ ...h, type: VIR_NET_REPLY, status: err ? VIR_NET_ERROR : VIR_NET_OK }, payload),
          );
        }
        return;
      case 'event':
        deliver(
          encodeMessage(
            { prog: REMOTE_PROGRAM, vers: 1, proc: 107, type: VIR_NET_MESSAGE, serial: 1, status: 0 },
            Buffer.alloc(40),
          ),
        );
        return;
      case 'stream':
        deliver(
          encodeMessage(
            {
              prog: REMOTE_PROGRAM,
              vers: 1,
              proc: 209,
              type: VIR_NET_STREAM,
              serial: 3,
              status: VIR_NET_CONTINUE,
            },
            Buffer.alloc(100, 7),
          ),
        );
        return;
      case 'keepalive':
        return;
      case 'eof':
      case 'error':
        if (this.died) return;
        this.died = true;
        this.onClose?.(a);
        return;
      case 'full':
        this.full = true;
        return;
      case 'drain':
        this.full = false;
        for (const cb of this.drainCbs) cb();
        return;
      case 'inject': {
        const f = this.inject[this.injected++ % Math.max(1, this.inject.length)];
        if (f !== undefined && !this.died) {
          this.sent.push(f);
          deliver(f);
        }
        return;
      }
      case 'none':
        return;
    }
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Call {
  prog: number;
  proc: number;
}

export interface SessionResult {
  outFrames: number;
  legs: number;
}

/** Runs one scenario and asserts the invariants; throws (a crash or a broken invariant) otherwise. */
export async function runSession(sc: Scenario): Promise<SessionResult> {
  const sock = new FakeSocket(sc.clientWriteFullEvery);
  const legs: FakeLeg[] = [];
  const openedReadonly: boolean[] = [];
  let opens = 0;
  let closedCalls = 0;
  const hooks: ClientHooks = {
    openBackend: async (_c, _name, readonly) => {
      openedReadonly.push(readonly);
      const outcome = sc.opens[opens++ % Math.max(1, sc.opens.length)] ?? 'ok';
      await tick();
      if (outcome === 'fail') {
        throw Object.assign(new Error('open failed'), {
          remote: remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, 'backend refused'),
        });
      }
      if (outcome === 'throw') throw new Error('plain failure without a libvirt error');
      const leg = new FakeLeg(sc.backendFrames ?? []);
      legs.push(leg);
      return { leg: leg as BackendLeg, uri: 'qemu:///system' };
    },
    authorizePolkit: async () => {
      await tick();
      if (sc.polkit === 'throw') throw new Error('pkcheck vanished');
      return sc.polkit === 'allow' ? null : remoteError(45, 60, 'access denied by policy');
    },
    closed: () => {
      closedCalls++;
    },
    log: () => undefined,
  };
  const client = new ClientConnection(
    1,
    sock as unknown as net.Socket,
    sc.service,
    { keepaliveInterval: 3600, keepaliveCount: 5, maxClientRequests: 5 },
    hooks,
  );
  client.peerUid = sc.peerUid;

  // The calls the client made, as an independent decoder sees its byte stream.
  const calls = new Map<string, Call[]>();
  const inDec = new FrameDecoder(
    (f) => {
      const h = readHeader(f);
      if (h.type !== VIR_NET_CALL && h.type !== VIR_NET_CALL_WITH_FDS) return;
      const k = `${h.prog}/${h.serial}`;
      const list = calls.get(k) ?? [];
      list.push({ prog: h.prog, proc: h.proc });
      calls.set(k, list);
    },
    () => undefined,
  );

  let step = 0;
  const backendStep = (): void => {
    const a = sc.backend[step++ % Math.max(1, sc.backend.length)] ?? 'none';
    for (const l of legs) l.act(a);
  };
  for (const c of sc.chunks) {
    // A paused socket delivers nothing; give the proxy a few turns to resume, as a real one would.
    for (let i = 0; i < 4 && sock.paused; i++) {
      backendStep();
      await tick();
    }
    if (sock.paused || sock.destroyed) break;
    unmetered(() => inDec.push(c));
    sock.emit('data', c);
    backendStep();
    await tick();
  }
  for (const l of legs) l.act('reply');
  await tick();
  // The client goes away; the proxy must release everything.
  sock.destroy();
  for (let i = 0; i < 4; i++) await tick();

  assert.deepEqual(sock.violations, [], 'writes after the connection ended');
  assert.equal(closedCalls, 1, 'closed hook fires exactly once');
  assert.equal(client.state, 'closed');
  for (const l of legs) assert.ok(l.closedByProxy || l.died, 'every backend leg is released');

  // What the client received: whole, well-formed frames.
  const out = Buffer.concat(sock.out);
  const outFrames: Buffer[] = [];
  let outErr: Error | null = null;
  unmetered(() =>
    new FrameDecoder(
      (f) => outFrames.push(f),
      (e) => (outErr = e),
    ).push(out),
  );
  assert.equal(outErr, null, 'proxy output must frame correctly');
  const replies = new Map<string, number>();
  // Daemon frames injected by the fake are relayed as they are (the daemon is trusted to speak the
  // protocol); they answer no call of the client and are not the proxy's own words.
  const injected = new Map<string, number>();
  for (const l of legs) {
    for (const f of l.sent) {
      const k = f.toString('hex');
      injected.set(k, (injected.get(k) ?? 0) + 1);
    }
  }
  for (const f of outFrames) {
    const hex = f.toString('hex');
    const inj = injected.get(hex) ?? 0;
    if (inj > 0) {
      injected.set(hex, inj - 1);
      continue;
    }
    const h = readHeader(f);
    assert.ok(
      [VIR_NET_REPLY, VIR_NET_MESSAGE, VIR_NET_STREAM, VIR_NET_REPLY_WITH_FDS, VIR_NET_STREAM_HOLE].includes(
        h.type,
      ),
      `the proxy sent a frame of type ${h.type}`,
    );
    if (h.type !== VIR_NET_REPLY && h.type !== VIR_NET_REPLY_WITH_FDS) continue;
    const k = `${h.prog}/${h.serial}`;
    const made = calls.get(k);
    assert.ok(made !== undefined, `reply for prog ${h.prog} serial ${h.serial}, which no call used`);
    assert.ok(
      made.some((c) => c.proc === h.proc),
      `reply proc ${h.proc} does not echo any call with that serial`,
    );
    const n = (replies.get(k) ?? 0) + 1;
    replies.set(k, n);
    assert.ok(n <= made.length, `${n} replies for ${made.length} call(s) with prog/serial ${k}`);
    if (sc.service.auth !== 'none' && !canAuthenticate(sc) && h.status === VIR_NET_OK) {
      assert.ok(
        h.prog === REMOTE_PROGRAM && h.proc === REMOTE_PROC_AUTH_LIST,
        `OK reply to proc ${h.proc} before auth`,
      );
    }
  }
  if (sc.service.auth !== 'none' && !canAuthenticate(sc)) {
    assert.equal(openedReadonly.length, 0, 'a backend was opened for an unauthenticated client');
  }
  if (sc.service.readonly)
    assert.ok(
      openedReadonly.every((r) => r),
      'read-only service opened a writable leg',
    );
  return { outFrames: outFrames.length, legs: legs.length };
}

function canAuthenticate(sc: Scenario): boolean {
  return sc.service.auth === 'polkit' && (sc.peerUid === 0 || sc.polkit === 'allow');
}
