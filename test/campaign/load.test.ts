// Load campaign: many clients through the real proxy to the real libvirtd, with a checker that
// proves nothing was lost or mixed up. Every call carries something only its own reply can echo
// (a unique domain name or secret UUID that libvirt's "not found" error repeats, the host name, the
// opened URI), so "answered exactly once, with the reply that belongs to it" is checked per call;
// secret lifecycle events must reach every subscriber exactly once and nobody else; two volume
// streams (one upload, one download, real virsh) run meanwhile and must arrive intact. Then 10 000
// clients stay connected at once and the proxy's memory per idle client is measured.
// CI-sized by default; CAMPAIGN_SCALE=long runs 1 000 clients x 1 000 calls.

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
} from '../../src/protocol/constants.js';
import { FrameDecoder } from '../../src/protocol/frame-decoder.js';
import { encodeMessage, readHeader } from '../../src/protocol/header.js';
import { encodeConnectOpenArgs } from '../../src/protocol/payloads.js';
import { KEEPALIVE_PING, describeFrame, words, xdrString } from '../component/wire-client.js';
import { cleanupDirect, sha256File, startClient, uniqueName } from '../e2e/clients.js';
import { directUri, virshOk } from '../e2e/harness.js';
import {
  REMOTE_PROC_CONNECT_SECRET_EVENT_REGISTER_ANY,
  REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME,
  REMOTE_PROC_SECRET_DEFINE_XML,
  REMOTE_PROC_SECRET_LOOKUP_BY_UUID,
  REMOTE_PROC_SECRET_UNDEFINE,
  errorMessage,
  lookupDomainArgs,
  lookupSecretArgs,
  secretEvent,
  secretXml,
  uuidBytes,
} from './rpc.js';
import {
  afterClients,
  figure,
  heldBeyond,
  mib,
  scale,
  sleep,
  startProbedProxy,
  waitFor,
  type ProbedProxy,
} from './support.js';

const CAMPAIGN = 'load';
const CLIENTS = scale(100, 1000);
const CALLS = scale(100, 1000);
/** Calls each client keeps in flight (libvirt's default max_client_requests is 5). */
const WINDOW = 4;
const SECRETS = scale(20, 100);
const STREAM_MIB = scale(16, 256);
const IDLE_CLIENTS = 10_000;
const IDLE_MAX_BYTES_PER_CLIENT = 10 * 1024;

const PROC_CONNECT_GET_HOSTNAME = 59;
const PROC_CONNECT_GET_URI = 110;
const PROC_CONNECT_GET_LIB_VERSION = 157;
const PROC_CONNECT_NUM_OF_SECRETS = 139;

let proxy: ProbedProxy;

before(async () => {
  proxy = await startProbedProxy({ conf: { max_clients: 20000, max_anonymous_clients: 20000 } });
});

/** What a call's reply must show to be its own. */
interface Expect {
  proc: number;
  check: (reply: Buffer) => string | null;
}

function xdrStringAt(frame: Buffer, at: number): string {
  const len = frame.readUInt32BE(at);
  return frame.subarray(at + 4, at + 4 + len).toString('utf8');
}

/**
 * A lean client for volume: it keeps only what the checker needs (the wire client keeps a copy of
 * every frame, too much for a million replies). Replies are matched to calls by serial and checked
 * against the call's expectation; anything unmatched is a violation.
 */
class LoadClient {
  private serial = 0;
  private readonly pending = new Map<number, { expect: Expect; resolve: (f: Buffer) => void }>();
  answered = 0;
  readonly violations: string[] = [];
  readonly events = new Map<string, number>();
  otherMessages = 0;
  closed = false;

  private constructor(readonly socket: net.Socket) {
    const dec = new FrameDecoder(
      (f) => this.onFrame(f),
      (e) => this.violations.push(`undecodable stream from the proxy: ${e.message}`),
    );
    socket.on('data', (c: Buffer) => dec.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      if (this.pending.size > 0)
        this.violations.push(`connection closed with ${this.pending.size} calls unanswered`);
    });
  }

  static connect(path: string): Promise<LoadClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path });
      s.once('connect', () => resolve(new LoadClient(s)));
      s.once('error', reject);
    });
  }

  call(proc: number, payload: Buffer | null, expect: Expect): Promise<Buffer> {
    const serial = this.serial++;
    return new Promise((resolve) => {
      this.pending.set(serial, { expect, resolve });
      this.socket.write(
        encodeMessage(
          { prog: REMOTE_PROGRAM, vers: 1, proc, type: VIR_NET_CALL, serial, status: VIR_NET_OK },
          payload,
        ),
      );
    });
  }

  get unanswered(): number {
    return this.pending.size;
  }

  private onFrame(f: Buffer): void {
    const h = readHeader(f);
    if (h.type === VIR_NET_MESSAGE) {
      const ev = secretEvent(f);
      if (ev === null) {
        this.otherMessages++;
        return;
      }
      const k = `${ev.uuid}/${ev.event}`;
      this.events.set(k, (this.events.get(k) ?? 0) + 1);
      return;
    }
    if (h.type !== VIR_NET_REPLY) {
      this.violations.push(`unexpected frame ${describeFrame(f)}`);
      return;
    }
    const p = this.pending.get(h.serial);
    if (p === undefined || h.prog !== REMOTE_PROGRAM) {
      this.violations.push(`reply nobody waits for (duplicate or stray): ${describeFrame(f)}`);
      return;
    }
    this.pending.delete(h.serial);
    this.answered++;
    if (h.proc !== p.expect.proc) {
      this.violations.push(`serial ${h.serial}: reply for proc ${h.proc}, call was proc ${p.expect.proc}`);
    } else {
      const bad = p.expect.check(f);
      if (bad !== null) this.violations.push(`serial ${h.serial} proc ${h.proc}: ${bad}`);
    }
    p.resolve(Buffer.from(f));
  }

  close(): void {
    this.socket.destroy();
  }
}

const okStatus = (f: Buffer): string | null =>
  readHeader(f).status === VIR_NET_OK ? null : `failed: ${describeFrame(f)}`;

/** The i-th call of client c: procedure, payload and what only its own reply can show. */
function nthCall(
  c: number,
  i: number,
  host: string,
): { proc: number; payload: Buffer | null; expect: Expect } {
  switch (i % 6) {
    case 0: {
      const name = `vpload-${c}-${i}-${randomBytes(3).toString('hex')}`;
      return {
        proc: REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME,
        payload: lookupDomainArgs(name),
        expect: {
          proc: REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME,
          check: (f) =>
            errorMessage(f)?.includes(`'${name}'`) ? null : `not the error for ${name}: ${describeFrame(f)}`,
        },
      };
    }
    case 1: {
      const uuid = randomUUID();
      return {
        proc: REMOTE_PROC_SECRET_LOOKUP_BY_UUID,
        payload: lookupSecretArgs(uuid),
        expect: {
          proc: REMOTE_PROC_SECRET_LOOKUP_BY_UUID,
          check: (f) =>
            errorMessage(f)?.includes(uuid) ? null : `not the error for ${uuid}: ${describeFrame(f)}`,
        },
      };
    }
    case 2:
      return {
        proc: PROC_CONNECT_GET_HOSTNAME,
        payload: null,
        expect: {
          proc: PROC_CONNECT_GET_HOSTNAME,
          check: (f) =>
            okStatus(f) ?? (xdrStringAt(f, 28) === host ? null : `hostname ${xdrStringAt(f, 28)}`),
        },
      };
    case 3:
      return {
        proc: PROC_CONNECT_GET_URI,
        payload: null,
        expect: {
          proc: PROC_CONNECT_GET_URI,
          check: (f) =>
            okStatus(f) ?? (xdrStringAt(f, 28) === 'qemu:///system' ? null : `uri ${xdrStringAt(f, 28)}`),
        },
      };
    case 4:
      return {
        proc: PROC_CONNECT_GET_LIB_VERSION,
        payload: null,
        expect: {
          proc: PROC_CONNECT_GET_LIB_VERSION,
          check: (f) => okStatus(f) ?? (f.length === 36 ? null : 'bad length'),
        },
      };
    default:
      return {
        proc: PROC_CONNECT_NUM_OF_SECRETS,
        payload: null,
        expect: { proc: PROC_CONNECT_NUM_OF_SECRETS, check: okStatus },
      };
  }
}

async function openLoadClient(sock: string): Promise<LoadClient> {
  const c = await LoadClient.connect(sock);
  await c.call(1, encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }), { proc: 1, check: okStatus });
  return c;
}

describe('load without loss', { timeout: 1_800_000 }, () => {
  let work: string;
  const pool = uniqueName('campaign-pool');

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'vpcampaign-load-'));
    const direct = directUri('storage:///system');
    await virshOk(direct, 'pool-create-as', pool, 'dir', '--target', join(work, 'pool'), '--build');
    for (const v of ['up.raw', 'down.raw']) {
      await virshOk(direct, 'vol-create-as', pool, v, `${STREAM_MIB}M`, '--format', 'raw');
    }
    await writeFile(join(work, 'up.bin'), randomBytes(STREAM_MIB * 1024 * 1024));
    await writeFile(join(work, 'down.bin'), randomBytes(STREAM_MIB * 1024 * 1024));
    await virshOk(direct, 'vol-upload', '--pool', pool, 'down.raw', join(work, 'down.bin'));
  });

  after(async () => {
    await cleanupDirect('storage:///system', ['pool-destroy', pool]);
    await rm(work, { recursive: true, force: true });
  });

  it(`${CLIENTS} clients x ${CALLS} mixed calls, ${SECRETS * 2} events to every subscriber, two streams`, async () => {
    const base = await proxy.probe();
    const clients: LoadClient[] = [];
    for (let i = 0; i < CLIENTS; i += 50) {
      const batch = Array.from({ length: Math.min(50, CLIENTS - i) }, (_v, k) =>
        openLoadClient((i + k) % 4 === 3 ? proxy.roSock : proxy.rwSock),
      );
      clients.push(...(await Promise.all(batch)));
    }
    // Every other client subscribes to secret lifecycle events.
    const subscribers = clients.filter((_c, i) => i % 2 === 0);
    await Promise.all(
      subscribers.map((c) =>
        c.call(REMOTE_PROC_CONNECT_SECRET_EVENT_REGISTER_ANY, words(0, 0), {
          proc: REMOTE_PROC_CONNECT_SECRET_EVENT_REGISTER_ANY,
          check: okStatus,
        }),
      ),
    );
    const gen = await openLoadClient(proxy.rwSock);
    // libvirt may answer the canonical host name; every reply must carry the same one.
    const host = xdrStringAt(
      await gen.call(PROC_CONNECT_GET_HOSTNAME, null, { proc: PROC_CONNECT_GET_HOSTNAME, check: okStatus }),
      28,
    );
    const uri = proxy.uri('storage:///system');
    const t0 = performance.now();

    // Two streams through the proxy while the load runs.
    // Through clients.ts rather than the harness's virsh(): no 60 s cap, a long run streams 256 MiB
    // each way while a million calls compete for the same proxy and daemon.
    const upload = startClient('/usr/bin/virsh', [
      '-q',
      '-c',
      uri,
      'vol-upload',
      '--pool',
      pool,
      'up.raw',
      join(work, 'up.bin'),
    ]).done;
    const download = startClient('/usr/bin/virsh', [
      '-q',
      '-c',
      uri,
      'vol-download',
      '--pool',
      pool,
      'down.raw',
      join(work, 'down.out'),
    ]).done;

    // The event source: define and undefine ephemeral secrets, one after the other.
    const ours: string[] = [];
    const generator = (async () => {
      for (let i = 0; i < SECRETS; i++) {
        const uuid = randomUUID();
        ours.push(uuid);
        const xml = Buffer.concat([xdrString(secretXml(uuid)), words(0)]);
        await gen.call(REMOTE_PROC_SECRET_DEFINE_XML, xml, {
          proc: REMOTE_PROC_SECRET_DEFINE_XML,
          check: okStatus,
        });
        const secret = Buffer.concat([uuidBytes(uuid), words(0), xdrString('')]);
        await gen.call(REMOTE_PROC_SECRET_UNDEFINE, secret, {
          proc: REMOTE_PROC_SECRET_UNDEFINE,
          check: okStatus,
        });
        await sleep(scale(50, 20));
      }
    })();

    let progress = 0;
    let stalled = false;
    const watchdog = setInterval(() => {
      const now = clients.reduce((n, c) => n + c.answered, 0);
      if (now === progress) stalled = true;
      progress = now;
    }, 30_000);
    let peakHeld = 0;
    const sampler = setInterval(() => {
      void proxy.probe().then((m) => (peakHeld = Math.max(peakHeld, heldBeyond(base, m))));
    }, 2000);
    try {
      await Promise.all(
        clients.map(async (c, ci) => {
          let next = 0;
          const lane = async (): Promise<void> => {
            while (next < CALLS && !stalled && !c.closed) {
              const n = nthCall(ci, next++, host);
              await c.call(n.proc, n.payload, n.expect);
            }
          };
          await Promise.all(Array.from({ length: WINDOW }, lane));
        }),
      );
      await generator;
    } finally {
      clearInterval(watchdog);
      clearInterval(sampler);
    }
    const loadMs = performance.now() - t0;
    peakHeld = Math.max(peakHeld, heldBeyond(base, await proxy.probe()));
    assert.equal(stalled, false, 'no reply arrived for 30 s');

    const [up, down] = await Promise.all([upload, download]);
    assert.equal(up.code, 0, `vol-upload through the proxy: ${up.stderr}`);
    assert.equal(down.code, 0, `vol-download through the proxy: ${down.stderr}`);

    // Every subscriber gets both events of every secret we made, exactly once; nobody else any.
    const want = ours.flatMap((u) => [`${u}/0`, `${u}/1`]);
    await waitFor('events at every subscriber', 60_000, () =>
      subscribers.every((c) => want.every((k) => c.events.has(k))),
    ).catch(() => undefined);
    let delivered = 0;
    for (const [i, c] of clients.entries()) {
      const mine = want.reduce((n, k) => n + (c.events.get(k) ?? 0), 0);
      delivered += mine;
      if (i % 2 === 0) {
        const missing = want.filter((k) => c.events.get(k) !== 1);
        assert.deepEqual(missing, [], `subscriber ${i}: events missing or duplicated`);
      } else {
        assert.equal(mine, 0, `client ${i} never subscribed but got ${mine} events`);
      }
    }

    let answered = 0;
    for (const [i, c] of clients.entries()) {
      assert.deepEqual(c.violations, [], `client ${i}`);
      assert.equal(c.unanswered, 0, `client ${i}: calls left unanswered`);
      answered += c.answered;
    }
    const expected = CLIENTS * (CALLS + 1) + subscribers.length;
    assert.equal(answered, expected, 'every call answered exactly once');
    figure(CAMPAIGN, 'clients x calls', `${CLIENTS} x ${CALLS}`);
    figure(CAMPAIGN, 'calls answered exactly once, each with its own reply', answered);
    figure(CAMPAIGN, 'wrong, duplicate or missing replies', 0);
    figure(CAMPAIGN, 'throughput (calls/s)', Math.round((CLIENTS * CALLS) / (loadMs / 1000)));
    figure(
      CAMPAIGN,
      'events delivered (subscribers x events)',
      `${delivered} (${subscribers.length} x ${want.length})`,
    );
    figure(CAMPAIGN, 'events at non-subscribers', 0);
    figure(
      CAMPAIGN,
      'proxy peak live memory beyond baseline during load (MiB, sampled every 2 s)',
      mib(peakHeld),
    );

    const direct = directUri('storage:///system');
    await virshOk(direct, 'vol-download', '--pool', pool, 'up.raw', join(work, 'up.check'));
    assert.equal(
      await sha256File(join(work, 'up.check')),
      await sha256File(join(work, 'up.bin')),
      'upload intact',
    );
    assert.equal(
      await sha256File(join(work, 'down.out')),
      await sha256File(join(work, 'down.bin')),
      'download intact',
    );
    figure(
      CAMPAIGN,
      `streams during the load (MiB each, sha256 equal)`,
      `upload ${STREAM_MIB}, download ${STREAM_MIB}`,
    );

    for (const c of [...clients, gen]) c.close();
    const settledMem = await afterClients(proxy, base, 'load clients gone', { legs: true, ms: 60_000 });
    figure(CAMPAIGN, 'live memory after the load, beyond baseline (MiB)', mib(heldBeyond(base, settledMem)));
    assert.ok(heldBeyond(base, settledMem) < 8 * 1024 * 1024);
  });
});

/** A connection that proves it is served (AUTH_LIST, later a PING) and otherwise idles. */
class IdleClient {
  private got: Buffer[] = [];
  private wake: (() => void) | null = null;

  private constructor(readonly socket: net.Socket) {
    const dec = new FrameDecoder(
      (f) => {
        this.got.push(Buffer.from(f));
        this.wake?.();
      },
      () => socket.destroy(),
    );
    socket.on('data', (c: Buffer) => dec.push(c));
    socket.on('error', () => undefined);
  }

  /** Connects, retrying while the listen backlog is full (EAGAIN): a flood outpaces accept(). */
  static async connect(
    target: { path: string } | { port: number; host: string },
  ): Promise<{ c: IdleClient; retries: number }> {
    for (let retries = 0; ; retries++) {
      try {
        const s = await new Promise<net.Socket>((resolve, reject) => {
          const sock = net.connect(target);
          sock.once('connect', () => resolve(sock));
          sock.once('error', reject);
        });
        return { c: new IdleClient(s), retries };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'EAGAIN' && code !== 'ECONNREFUSED') || retries > 200) throw e;
        await sleep(20);
      }
    }
  }

  /** Sends `frame` and waits for a frame of `type` and `proc`. */
  async roundTrip(frame: Buffer, type: number, proc: number, ms = 30_000): Promise<Buffer> {
    const seen = this.got.length;
    this.socket.write(frame);
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.got.slice(seen).find((x) => readHeader(x).type === type && readHeader(x).proc === proc);
      if (f !== undefined) return f;
      if (Date.now() > deadline || this.socket.destroyed) throw new Error(`no answer to proc ${proc}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 200);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as net.AddressInfo;
      s.close(() => resolve(a.port));
    });
  });
}

function fdLimit(pid: number | 'self'): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

describe(`${IDLE_CLIENTS} concurrently connected clients`, { timeout: 900_000 }, () => {
  let idleProxy: ProbedProxy;
  let tcpPort = 0;

  before(async () => {
    // support.ts has raised this process's soft fd limit to the hard limit.
    tcpPort = await freePort();
    idleProxy = await startProbedProxy({
      conf: {
        max_clients: 20000,
        max_anonymous_clients: 20000,
        listen_tcp: 1,
        listen_addr: '127.0.0.1',
        tcp_port: String(tcpPort),
        auth_tcp: 'none',
      },
    });
  });

  for (const transport of ['tcp', 'unix'] as const) {
    it(`${transport}: stay served, at most ${IDLE_MAX_BYTES_PER_CLIENT / 1024} KB of proxy memory each`, async (t) => {
      const target = transport === 'unix' ? { path: idleProxy.rwSock } : { port: tcpPort, host: '127.0.0.1' };
      const base = await idleProxy.probe();
      // How many fit: the proxy's fd budget over its fds per client (measured on the first 100).
      const cs: IdleClient[] = [];
      let retries = 0;
      const add = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i += 200) {
          const batch = await Promise.all(
            Array.from({ length: Math.min(200, n - i) }, () => IdleClient.connect(target)),
          );
          for (const b of batch) {
            cs.push(b.c);
            retries += b.retries;
          }
        }
      };
      // Each client proves it reached the state machine (AUTH_LIST answered), then idles.
      const authList = encodeMessage({
        prog: REMOTE_PROGRAM,
        vers: 1,
        proc: 66,
        type: VIR_NET_CALL,
        serial: 1,
        status: 0,
      });
      const answerAll = async (from: number): Promise<void> => {
        for (let i = from; i < cs.length; i += 1000) {
          await Promise.all(cs.slice(i, i + 1000).map((c) => c.roundTrip(authList, VIR_NET_REPLY, 66)));
        }
      };
      const t0 = performance.now();
      await add(100);
      await answerAll(0);
      const perClientFds = Math.max(1, Math.round(((await idleProxy.probe()).fds - base.fds) / 100));
      const budget = Math.min(fdLimit(idleProxy.pid), fdLimit('self')) - base.fds - 200;
      const n = Math.min(IDLE_CLIENTS, Math.floor(budget / perClientFds));
      figure(CAMPAIGN, `${transport}: proxy fds per connected client`, perClientFds);
      if (n < IDLE_CLIENTS) {
        figure(CAMPAIGN, `${transport}: clients that fit the fd limit ${fdLimit(idleProxy.pid)}`, n);
      }
      if (n < 1000) {
        for (const c of cs) c.close();
        t.skip(`the fd limits allow only ${n} ${transport} clients`);
        return;
      }
      await add(n - 100);
      await answerAll(100);
      const connectS = (performance.now() - t0) / 1000;
      await sleep(500);
      const idle = await idleProxy.probe();
      const perClient = heldBeyond(base, idle) / n;
      figure(CAMPAIGN, `${transport}: clients connected at once, all answered`, n);
      figure(CAMPAIGN, `${transport}: time to connect and answer them all (s)`, connectS.toFixed(1));
      figure(CAMPAIGN, `${transport}: connect retries (listen backlog full)`, retries);
      figure(CAMPAIGN, `${transport}: proxy live memory per idle client (bytes)`, Math.round(perClient));
      figure(
        CAMPAIGN,
        `${transport}: proxy RSS per idle client (bytes)`,
        Math.round((idle.rss - base.rss) / n),
      );
      assert.ok(perClient <= IDLE_MAX_BYTES_PER_CLIENT, `${perClient.toFixed(0)} bytes per idle client`);
      // All still served: a PING each, a PONG each.
      for (let i = 0; i < cs.length; i += 1000) {
        await Promise.all(cs.slice(i, i + 1000).map((c) => c.roundTrip(KEEPALIVE_PING, VIR_NET_MESSAGE, 2)));
      }
      for (const c of cs) c.close();
      const after = await afterClients(idleProxy, base, 'idle clients gone', { ms: 60_000 });
      figure(
        CAMPAIGN,
        `${transport}: live memory after they left, beyond baseline (MiB)`,
        mib(heldBeyond(base, after)),
      );
      assert.ok(heldBeyond(base, after) < 16 * 1024 * 1024);
    });
  }
});
