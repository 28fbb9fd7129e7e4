// Campaign support: the real proxy (started through the e2e harness, in front of the real libvirtd)
// with a memory probe loaded into it, a witness client that keeps calling through the proxy while a
// campaign runs, scale selection (CI-sized or long) and the figure lines the long runs print.
// Campaigns only use unix sockets in private temp dirs and loopback; every one stops by itself.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { REMOTE_PROGRAM, VIR_NET_OK } from '../../src/protocol/constants.js';
import { readHeader } from '../../src/protocol/header.js';
import { encodeConnectOpenArgs } from '../../src/protocol/payloads.js';
import { WireClient, describeFrame } from '../component/wire-client.js';
import { repoRoot, startProxy, type Proxy, type ProxyOptions } from '../e2e/harness.js';

/**
 * Floods and the 10 000-client run need more descriptors than a default soft limit (often 1024):
 * raise this process's soft limit to its hard limit, as the proxy's launcher below does.
 */
function raiseFdLimit(): void {
  const hard = /^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  if (hard !== undefined) spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`]);
}
raiseFdLimit();

/** CAMPAIGN_SCALE=long selects the full-size campaigns (npm run campaign:long). */
export const LONG = process.env['CAMPAIGN_SCALE'] === 'long';

export function scale<T>(ci: T, long: T): T {
  return LONG ? long : ci;
}

/** One grep-able line per figure; docs/reliability.md quotes them. */
export function figure(campaign: string, name: string, value: string | number): void {
  process.stdout.write(`FIGURE ${campaign}: ${name} = ${value}\n`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(
  what: string,
  ms: number,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

export interface MemSample {
  seq: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  fds: number;
}

export interface ProbedProxy extends Proxy {
  /** Memory after a full GC inside the proxy, and its open fd count. */
  probe(): Promise<MemSample>;
  rssKiB(): number;
}

const probeDir = mkdtempSync(join(tmpdir(), 'vpcampaign-probe-'));
process.once('exit', () => rmSync(probeDir, { recursive: true, force: true }));
let wrapper: string | null = null;

/** A launcher the harness runs instead of bin/virtproxyd: same arguments, probe preloaded, fd limit raised. */
function probeWrapper(): string {
  if (wrapper !== null) return wrapper;
  const probe = join(repoRoot, 'dist', 'test', 'campaign', 'mem-probe.js');
  const bin = join(repoRoot, 'bin', 'virtproxyd');
  wrapper = join(probeDir, 'virtproxyd-probed');
  writeFileSync(
    wrapper,
    [
      '#!/bin/sh',
      '# Written by test/campaign/support.ts: the proxy with its memory probe, fd limit at the hard limit.',
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null',
      `VIRTPROXYD_PROBE_DIR='${probeDir}' exec '${process.execPath}' --expose-gc --import '${probe}' '${bin}' "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(wrapper, 0o755);
  return wrapper;
}

/** Starts the real proxy through the e2e harness, with the memory probe loaded into it. */
export async function startProbedProxy(opts: ProxyOptions = {}): Promise<ProbedProxy> {
  const saved = process.env['VIRTPROXYD_TEST_BIN'];
  process.env['VIRTPROXYD_TEST_BIN'] = probeWrapper();
  let proxy: Proxy;
  try {
    proxy = await startProxy(opts);
  } finally {
    if (saved === undefined) delete process.env['VIRTPROXYD_TEST_BIN'];
    else process.env['VIRTPROXYD_TEST_BIN'] = saved;
  }
  const file = join(probeDir, `probe-${proxy.pid}.json`);
  const read = (): MemSample | null =>
    existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as MemSample) : null;
  return Object.assign(proxy, {
    async probe(): Promise<MemSample> {
      const before = read()?.seq ?? 0;
      process.kill(proxy.pid, 'SIGWINCH');
      return waitFor('the proxy memory probe', 10_000, () => {
        const s = read();
        return s !== null && s.seq > before ? s : undefined;
      });
    },
    rssKiB(): number {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${proxy.pid}/status`, 'utf8'));
      return m === null ? 0 : Number(m[1]);
    },
  });
}

/**
 * The proxy's memory once clients have gone: waits until its fd count is back to the baseline and,
 * with `legs` (the clients had backend connections), for the grace period a closing backend leg
 * keeps its object after CONNECT_CLOSE (2 s in BackendConnection.close), so that only what is
 * really left behind is measured.
 */
export async function afterClients(
  p: ProbedProxy,
  base: MemSample,
  what: string,
  opts: { legs?: boolean; ms?: number } = {},
): Promise<MemSample> {
  const m = await waitFor(`${what}: proxy fds back to ${base.fds}`, opts.ms ?? 30_000, async () => {
    const s = await p.probe();
    return s.fds <= base.fds ? s : undefined;
  });
  if (opts.legs !== true) return m;
  await sleep(2500);
  return p.probe();
}

/** Live memory the proxy holds beyond a baseline sample (JS heap plus Buffer memory), in bytes. */
export function heldBeyond(base: MemSample, now: MemSample): number {
  return now.heapUsed + now.arrayBuffers - (base.heapUsed + base.arrayBuffers);
}

export function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

/** Opens a raw client on `sock` with CONNECT_OPEN(uri); throws with the error text on failure. */
export async function openedClient(
  sock: string,
  uri = 'qemu:///system',
  flags = 0,
  authList = false,
): Promise<WireClient> {
  const c = await WireClient.connect(sock);
  if (authList) {
    const r = await c.call(REMOTE_PROGRAM, 66, null, { timeoutMs: 30_000 });
    if (readHeader(r).status !== VIR_NET_OK) throw new Error(`AUTH_LIST failed: ${describeFrame(r)}`);
  }
  const reply = await c.call(REMOTE_PROGRAM, 1, encodeConnectOpenArgs({ name: uri, flags }), {
    timeoutMs: 30_000,
  });
  if (readHeader(reply).status !== VIR_NET_OK) {
    c.close();
    throw new Error(`CONNECT_OPEN ${uri} failed: ${describeFrame(reply)}`);
  }
  return c;
}

export const REMOTE_PROC_CONNECT_GET_LIB_VERSION = 157;
export const REMOTE_PROC_CONNECT_GET_HOSTNAME = 59;

/**
 * A well-behaved client that keeps calling through the proxy while a campaign runs: every call
 * must be answered OK, in time. What it saw is the evidence that "every other client keeps working".
 */
export class Witness {
  calls = 0;
  failures: string[] = [];
  maxLatencyMs = 0;
  private running = true;
  private loop: Promise<void>;

  private constructor(
    private readonly client: WireClient,
    intervalMs: number,
  ) {
    this.loop = this.run(intervalMs);
  }

  /** `authList`: ask AUTH_LIST first, as libvirt clients do (a root peer then passes polkit). */
  static async start(sock: string, intervalMs = 50, opts: { authList?: boolean } = {}): Promise<Witness> {
    return new Witness(await openedClient(sock, 'qemu:///system', 0, opts.authList === true), intervalMs);
  }

  private async run(intervalMs: number): Promise<void> {
    while (this.running) {
      const t0 = performance.now();
      try {
        const r = await this.client.call(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_LIB_VERSION, null, {
          timeoutMs: 10_000,
        });
        if (readHeader(r).status !== VIR_NET_OK) this.failures.push(describeFrame(r));
      } catch (e) {
        this.failures.push((e as Error).message);
        if (this.client.closed) return;
      }
      this.calls++;
      this.maxLatencyMs = Math.max(this.maxLatencyMs, performance.now() - t0);
      await sleep(intervalMs);
    }
  }

  /** Stops calling; asserts every call succeeded and none took longer than `maxMs`. */
  async stop(maxMs = 5000): Promise<{ calls: number; maxLatencyMs: number }> {
    this.running = false;
    await this.loop;
    this.client.close();
    assert.deepEqual(this.failures, [], 'the witness client saw failures');
    assert.ok(this.calls > 0, 'the witness made no call');
    assert.ok(this.maxLatencyMs < maxMs, `witness call took ${this.maxLatencyMs.toFixed(0)} ms`);
    return { calls: this.calls, maxLatencyMs: this.maxLatencyMs };
  }
}

/** File descriptors the given process holds open. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The shared procedure table (procedure number, name, ACL), when the checkout has it. */
export function procedureTable(): Array<{ program: string; num: number; name: string; acl: string }> | null {
  const file = join(repoRoot, '..', 'shared', 'protocol', 'procedures.tsv');
  if (!existsSync(file)) return null;
  return readFileSync(file, 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const f = l.split('\t');
      return { program: f[0] ?? '', num: Number(f[2]), name: f[3] ?? '', acl: f[6] ?? '' };
    });
}
