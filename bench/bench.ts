// `npm run bench`: compares the proxy with a direct connection to the backend libvirtd on the same
// machine — RPC call rate and latency, stream download throughput, and the proxy's memory per idle
// client — and prints a table plus one JSON line. Not a test: the only failures are sanity checks
// (every call answered, every byte delivered); targets are printed beside the figures.

import { spawnSync, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { topFrames } from './cpu-profile.js';
import { startBenchProxy, type BenchProxy } from './proxy-process.js';
import { formatTlsBench, runTlsBench, tlsBenchOptionsFromEnv } from './tls-bench.js';
import type { LoadConfig, LoadMessage } from './rpc-load.js';
import { REMOTE_PROC_CONNECT_GET_HOSTNAME, WireClient, decodeHostname } from './wire-client.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = join(HERE, '..', '..');
const BACKEND_DIR = '/run/libvirt/backend';
const URI = 'qemu:///system';
const VIRSH = '/usr/bin/virsh';

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`bench: ${name} must be a non-negative integer, got ${v}`);
  }
  return n;
}

function envList(name: string, dflt: number[]): number[] {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  return v.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`bench: ${name} must list positive integers, got ${v}`);
    }
    return n;
  });
}

const SETTINGS = {
  warmupMs: envInt('BENCH_WARMUP_MS', 1000),
  durationMs: envInt('BENCH_DURATION_MS', 3000),
  conns: envList('BENCH_CONNS', [1, 16, 64]),
  depths: envList('BENCH_DEPTHS', [1, 4]),
  /** Direct and proxy take turns in slices this long; the first part of each is not measured. */
  sliceMs: envInt('BENCH_SLICE_MS', 750),
  skipMs: envInt('BENCH_SLICE_SKIP_MS', 150),
  streamMiB: envInt('BENCH_STREAM_MIB', 256),
  streamRounds: Math.max(1, envInt('BENCH_STREAM_ROUNDS', 4)),
  idleClients: envInt('BENCH_IDLE_CLIENTS', 1000),
  cpuProfile: process.env['BENCH_CPU_PROF'] === '1',
};

if (SETTINGS.skipMs >= SETTINGS.sliceMs) {
  throw new Error('bench: BENCH_SLICE_SKIP_MS must be below BENCH_SLICE_MS');
}

const TARGET_RPC_RATIO = 0.85;
const TARGET_STREAM_RATIO = 0.95;
const TARGET_IDLE_KB = 10;

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rejects when `p` takes longer than `ms`: a restarted or stuck daemon must not hang the bench. */
function timed<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bench: ${what} took longer than ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const STEP_TIMEOUT_MS = 60_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}

function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m?.[1]) throw new Error(`bench: no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

async function medianRssKb(pid: number, readings = 5, gapMs = 200): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < readings; i++) {
    if (i > 0) await sleep(gapMs);
    xs.push(rssKb(pid));
  }
  return median(xs);
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** User + system CPU time of a process in ms (0 once it is gone). */
function cpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5) are utime and stime; f[0] is field 3.
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** Busy CPU time of the whole host in ms, summed over cores (/proc/stat: all but idle and iowait). */
function hostBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return ((total - (ticks[3] ?? 0) - (ticks[4] ?? 0)) * 1000) / CLK_TCK;
}

function virsh(uri: string, ...args: string[]): string {
  const r = spawnSync(VIRSH, ['-q', '-c', uri, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C' },
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`bench: virsh ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function virshUri(sock: string): string {
  return `qemu+unix:///system?socket=${sock}`;
}

async function openClients(sock: string, n: number, concurrency: number): Promise<WireClient[]> {
  const out: WireClient[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, n - i) }, async () => {
      const c = await WireClient.connect(sock);
      await c.open(URI);
      return c;
    });
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Backend

/** Starts libvirtd through scripts/backend.sh; true when this run started it (and must stop it). */
function ensureBackend(): boolean {
  const r = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'backend.sh'), 'start', BACKEND_DIR], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`bench: backend.sh start failed: ${r.stderr}${r.stdout}`);
  return r.stdout.trim().split('\n').pop() === 'started';
}

function stopBackend(): void {
  spawnSync('bash', [join(REPO_ROOT, 'scripts', 'backend.sh'), 'stop', BACKEND_DIR], { stdio: 'ignore' });
}

/** libvirtd's max_client_requests: its config file's value, else libvirt's default of 5. */
function backendMaxClientRequests(): number {
  const conf = join(BACKEND_DIR, 'libvirtd.conf');
  const text = existsSync(conf) ? readFileSync(conf, 'utf8') : '';
  const m = /^\s*max_client_requests\s*=\s*(\d+)/m.exec(text);
  return m?.[1] ? Number(m[1]) : 5;
}

/** libvirtd's pid from its pid file; -1 while there is none. */
function backendPid(): number {
  try {
    return Number(readFileSync(join(BACKEND_DIR, 'libvirtd.pid'), 'utf8').trim());
  } catch {
    return -1;
  }
}

// ---------------------------------------------------------------------------------------------
// 1. RPC call rate and latency

interface Target {
  name: 'direct' | 'proxy';
  sock: string;
}

interface RpcResult {
  target: Target['name'];
  conns: number;
  depth: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Replies in each measured slice, in order; slice i of each target ran back to back. */
  sliceCalls: number[];
  /** CPU per measured call, in µs, of the proxy (0 for direct) and of libvirtd. */
  proxyCpuUsPerCall: number;
  libvirtdCpuUsPerCall: number;
  /** The load generator's CPU use while this target was measured, as % of one core. */
  genCpuPercent: number;
  /** CPU used by everything else on the host meanwhile (% of one core): other work skews a run. */
  otherCpuPercent: number;
}

interface CpuSample {
  proxy: number;
  libvirtd: number;
  gen: number;
  host: number;
}

function nextMessage(child: ChildProcess): Promise<LoadMessage> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: LoadMessage): void => {
      if (m.type === 'window') return;
      cleanup();
      if (m.type === 'failed') reject(new Error(`bench: load generator failed: ${m.message}`));
      else resolve(m);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`bench: load generator exited (${code}) without reporting`));
    };
    const cleanup = (): void => {
      child.off('message', onMsg);
      child.off('exit', onExit);
    };
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

/** Direct and proxied load for one (conns, depth), measured in alternating slices by one child. */
async function runRpc(
  targets: Target[],
  conns: number,
  depth: number,
  pids: { proxy: number; libvirtd: number },
): Promise<RpcResult[]> {
  const cfg: LoadConfig = {
    targets,
    uri: URI,
    conns,
    depth,
    warmupMs: SETTINGS.warmupMs,
    durationMs: SETTINGS.durationMs,
    sliceMs: SETTINGS.sliceMs,
    skipMs: SETTINGS.skipMs,
  };
  const child = fork(join(HERE, 'rpc-load.js'), [JSON.stringify(cfg)], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ready = await timed(nextMessage(child), STEP_TIMEOUT_MS, 'opening the load connections');
    if (ready.type !== 'ready') throw new Error('bench: load generator sent no ready');

    // CPU used inside each target's measured windows, summed.
    const sample = (): CpuSample => ({
      proxy: cpuMs(pids.proxy),
      libvirtd: cpuMs(pids.libvirtd),
      gen: cpuMs(child.pid ?? -1),
      host: hostBusyMs(),
    });
    const used = new Map<string, CpuSample>(
      targets.map((t) => [t.name, { proxy: 0, libvirtd: 0, gen: 0, host: 0 }]),
    );
    let open: CpuSample | null = null;
    child.on('message', (m: LoadMessage) => {
      if (m.type !== 'window') return;
      if (m.phase === 'start') {
        open = sample();
        return;
      }
      const acc = used.get(m.target);
      if (open === null || acc === undefined) return;
      const now = sample();
      for (const k of ['proxy', 'libvirtd', 'gen', 'host'] as const) acc[k] += now[k] - open[k];
      open = null;
    });

    const result = nextMessage(child);
    child.send({ cmd: 'go' });
    const slices = Math.ceil(SETTINGS.durationMs / (SETTINGS.sliceMs - SETTINGS.skipMs));
    const m = await timed(
      result,
      targets.length * (SETTINGS.warmupMs + slices * SETTINGS.sliceMs) + STEP_TIMEOUT_MS,
      'the load run',
    );
    if (m.type !== 'result') throw new Error('bench: load generator sent no result');

    return m.targets.map((t): RpcResult => {
      if (t.errors > 0) throw new Error(`bench: ${t.errors} failed calls (${t.name}): ${t.firstError}`);
      if (t.replied !== t.sent) {
        throw new Error(`bench: ${t.name}: ${t.sent} calls made but ${t.replied} replies counted`);
      }
      if (t.windowCalls === 0) throw new Error(`bench: ${t.name}: no call completed in the measured windows`);
      const cpu = used.get(t.name) ?? { proxy: 0, libvirtd: 0, gen: 0, host: 0 };
      const lat = t.latMs.sort();
      const perCall = (ms: number): number => (ms * 1000) / t.windowCalls;
      const pct = (ms: number): number => (100 * ms) / t.windowMs;
      return {
        target: t.name as Target['name'],
        conns,
        depth,
        callsPerSec: t.windowCalls / (t.windowMs / 1000),
        p50Ms: percentile(lat, 50),
        p99Ms: percentile(lat, 99),
        sliceCalls: t.sliceCalls,
        proxyCpuUsPerCall: t.name === 'proxy' ? perCall(cpu.proxy) : 0,
        libvirtdCpuUsPerCall: perCall(cpu.libvirtd),
        genCpuPercent: pct(cpu.gen),
        otherCpuPercent: pct(cpu.host - cpu.proxy - cpu.libvirtd - cpu.gen),
      };
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Stream throughput

interface StreamResult {
  sizeMiB: number;
  directMiBps: number;
  proxyMiBps: number;
  virshDirectMiBps: number | null;
  virshProxyMiBps: number | null;
  /** CPU ms per MiB moved: the proxy's (proxied runs) and libvirtd's (direct runs). */
  proxyCpuMsPerMiB: number;
  libvirtdCpuMsPerMiB: number;
}

async function downloadOnce(sock: string, path: string, size: number, head: Buffer): Promise<number> {
  const c = await WireClient.connect(sock);
  try {
    await c.open(URI);
    const vol = await c.lookupVolByPath(path);
    let first = true;
    let sameHead = false;
    const t0 = performance.now();
    const bytes = await c.downloadVol(vol, (data) => {
      if (first) sameHead = data.subarray(0, head.length).equals(head.subarray(0, data.length));
      first = false;
    });
    const secs = (performance.now() - t0) / 1000;
    if (!sameHead) throw new Error('bench: the downloaded data does not start like the volume');
    if (bytes !== size) throw new Error(`bench: downloaded ${bytes} bytes of a ${size}-byte volume`);
    return size / 1048576 / secs;
  } finally {
    c.destroy();
  }
}

function virshDownload(sock: string, pool: string, vol: string, size: number): number {
  const t0 = performance.now();
  virsh(virshUri(sock), 'vol-download', '--pool', pool, vol, '/dev/null');
  return size / 1048576 / ((performance.now() - t0) / 1000);
}

async function streamBench(
  direct: Target,
  proxy: Target,
  pids: { proxy: number; libvirtd: number },
): Promise<StreamResult> {
  const dir = await mkdtemp(join(tmpdir(), 'vpbench-pool-'));
  const pool = `vpbench-${process.pid}`;
  const volName = 'stream.raw';
  const path = join(dir, volName);
  const size = SETTINGS.streamMiB * 1048576;
  let poolUp = false;
  try {
    // Random bytes, repeated: nothing sparse or zero for the daemon to skip.
    const block = randomBytes(1048576);
    const fd = openSync(path, 'w');
    for (let i = 0; i < SETTINGS.streamMiB; i++) writeSync(fd, block);
    closeSync(fd);
    const head = block.subarray(0, 64);
    virsh(virshUri(direct.sock), 'pool-create-as', pool, 'dir', '--target', dir);
    poolUp = true;

    // One unmeasured pass: the daemon's first read of a just-written file is much slower.
    await timed(downloadOnce(direct.sock, path, size, head), STEP_TIMEOUT_MS, 'the warm-up download');
    const d: number[] = [];
    const p: number[] = [];
    let proxyCpu = 0;
    let libvirtdCpu = 0;
    for (let round = 0; round < SETTINGS.streamRounds; round++) {
      // Alternate who goes first so neither side always gets the warmer caches.
      const order = round % 2 === 0 ? [direct, proxy] : [proxy, direct];
      for (const t of order) {
        const cpu0 = t.name === 'direct' ? cpuMs(pids.libvirtd) : cpuMs(pids.proxy);
        const mibps = await timed(
          downloadOnce(t.sock, path, size, head),
          STEP_TIMEOUT_MS,
          `a ${t.name} download`,
        );
        const cpu = (t.name === 'direct' ? cpuMs(pids.libvirtd) : cpuMs(pids.proxy)) - cpu0;
        if (t.name === 'direct') {
          d.push(mibps);
          libvirtdCpu += cpu;
        } else {
          p.push(mibps);
          proxyCpu += cpu;
        }
      }
    }
    let vd: number | null = null;
    let vp: number | null = null;
    if (existsSync(VIRSH)) {
      const vds: number[] = [];
      const vps: number[] = [];
      for (const t of [direct, proxy, proxy, direct]) {
        (t.name === 'direct' ? vds : vps).push(virshDownload(t.sock, pool, volName, size));
      }
      vd = median(vds);
      vp = median(vps);
    }
    return {
      sizeMiB: SETTINGS.streamMiB,
      directMiBps: median(d),
      proxyMiBps: median(p),
      virshDirectMiBps: vd,
      virshProxyMiBps: vp,
      proxyCpuMsPerMiB: proxyCpu / (SETTINGS.streamRounds * SETTINGS.streamMiB),
      libvirtdCpuMsPerMiB: libvirtdCpu / (SETTINGS.streamRounds * SETTINGS.streamMiB),
    };
  } finally {
    if (poolUp) {
      try {
        virsh(virshUri(direct.sock), 'pool-destroy', pool);
      } catch (e) {
        process.stderr.write(`${(e as Error).message}\n`);
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Memory per idle client

interface IdleResult {
  clients: number;
  rssBeforeKb: number;
  rssAfterKb: number;
  kbPerClient: number;
}

/** RSS growth of `pid` while `n` opened, idle clients are connected to `sock`. */
async function idleMemory(sock: string, pid: number, n: number): Promise<IdleResult> {
  // Load the code paths once so the baseline is not mostly lazily compiled code.
  for (const c of await timed(openClients(sock, 16, 16), STEP_TIMEOUT_MS, 'opening clients')) c.destroy();
  await sleep(1000);
  const before = await medianRssKb(pid);
  const clients = await timed(openClients(sock, n, 25), STEP_TIMEOUT_MS, `opening ${n} idle clients`);
  try {
    await sleep(1000);
    const after = await medianRssKb(pid);
    // Sanity: every one of them is still open and answers.
    const answers = await timed(
      Promise.all(clients.map((c) => c.call(REMOTE_PROC_CONNECT_GET_HOSTNAME))),
      STEP_TIMEOUT_MS,
      'calls on the idle clients',
    );
    if (answers.length !== n) throw new Error(`bench: ${answers.length} of ${n} idle clients answered`);
    return { clients: n, rssBeforeKb: before, rssAfterKb: after, kbPerClient: (after - before) / n };
  } finally {
    for (const c of clients) c.destroy();
    await sleep(500);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);
const f3 = (x: number): string => x.toFixed(3);
const mark = (ok: boolean): string => (ok ? 'meets' : 'MISSES');

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '))
    .join('\n');
}

function report(
  rpc: RpcResult[],
  stream: StreamResult | null,
  idle: IdleResult | null,
  meta: Record<string, unknown>,
): void {
  const out: string[] = [];
  out.push('', 'RPC: CONNECT_GET_HOSTNAME, calls/s and latency', '');
  out.push(
    table([
      [
        'target',
        'conns',
        'depth',
        'calls/s',
        'p50 ms',
        'p99 ms',
        'proxy µs/call',
        'libvirtd µs/call',
        'gen cpu%',
        'other cpu%',
      ],
      ...rpc.map((r) => [
        r.target,
        String(r.conns),
        String(r.depth),
        r.callsPerSec.toFixed(0),
        f3(r.p50Ms),
        f3(r.p99Ms),
        r.target === 'proxy' ? f1(r.proxyCpuUsPerCall) : '-',
        f1(r.libvirtdCpuUsPerCall),
        r.genCpuPercent.toFixed(0),
        r.otherCpuPercent.toFixed(0),
      ]),
    ]),
  );
  const ratios = ratioRows(rpc);
  out.push('', 'RPC: proxy / direct', '');
  out.push(
    table([
      [
        'conns',
        'depth',
        'calls/s ratio',
        'slice-pair median',
        'p50 ratio',
        'p99 ratio',
        `target ≥ ${TARGET_RPC_RATIO} (pair median)`,
      ],
      ...ratios.map((r) => [
        String(r.conns),
        String(r.depth),
        f2(r.rateRatio),
        f2(r.pairedRateRatio),
        f2(r.p50Ratio),
        f2(r.p99Ratio),
        r.conns >= 16 ? mark(r.pairedRateRatio >= TARGET_RPC_RATIO) : '(not a target)',
      ]),
    ]),
  );
  if (stream) {
    const ratio = stream.proxyMiBps / stream.directMiBps;
    out.push('', `Stream: STORAGE_VOL_DOWNLOAD of a ${stream.sizeMiB} MiB raw volume`, '');
    const rows = [
      ['client', 'direct MiB/s', 'proxy MiB/s', 'ratio', `target ≥ ${TARGET_STREAM_RATIO}`],
      ['raw', f1(stream.directMiBps), f1(stream.proxyMiBps), f2(ratio), mark(ratio >= TARGET_STREAM_RATIO)],
    ];
    if (stream.virshDirectMiBps !== null && stream.virshProxyMiBps !== null) {
      rows.push([
        'virsh vol-download',
        f1(stream.virshDirectMiBps),
        f1(stream.virshProxyMiBps),
        f2(stream.virshProxyMiBps / stream.virshDirectMiBps),
        '(second figure)',
      ]);
    }
    out.push(table(rows));
    out.push(
      `CPU per MiB: proxy ${f2(stream.proxyCpuMsPerMiB)} ms (proxied runs), ` +
        `libvirtd ${f2(stream.libvirtdCpuMsPerMiB)} ms (direct runs)`,
    );
  }
  if (idle) {
    out.push('', `Memory: ${idle.clients} open, idle clients`, '');
    const rows = [
      ['process', 'RSS before KiB', 'RSS after KiB', 'KiB/client', `target ≤ ${TARGET_IDLE_KB}`],
      [
        'proxy',
        String(idle.rssBeforeKb),
        String(idle.rssAfterKb),
        f1(idle.kbPerClient),
        mark(idle.kbPerClient <= TARGET_IDLE_KB),
      ],
    ];
    out.push(table(rows));
  }
  process.stdout.write(out.join('\n') + '\n\n');
  const json = { ...meta, rpc, rpcRatios: ratios, stream, idle };
  process.stdout.write(
    `BENCH_JSON ${JSON.stringify(json, (_k, v: unknown) => (typeof v === 'number' ? Number(v.toFixed(4)) : v))}\n`,
  );
}

interface RatioRow {
  conns: number;
  depth: number;
  /** Ratio of the calls/s over all measured slices. */
  rateRatio: number;
  /**
   * Median over the slice pairs of proxy/direct calls: a burst of other work on the host lands in
   * one or two slices and moves this little, where it can move the overall ratio a lot.
   */
  pairedRateRatio: number;
  p50Ratio: number;
  p99Ratio: number;
}

function ratioRows(rpc: RpcResult[]): RatioRow[] {
  const out: RatioRow[] = [];
  for (const p of rpc.filter((r) => r.target === 'proxy')) {
    const d = rpc.find((r) => r.target === 'direct' && r.conns === p.conns && r.depth === p.depth);
    if (!d) continue;
    const pairs = p.sliceCalls.flatMap((calls, i) => {
      const base = d.sliceCalls[i];
      return base ? [calls / base] : [];
    });
    out.push({
      conns: p.conns,
      depth: p.depth,
      rateRatio: p.callsPerSec / d.callsPerSec,
      pairedRateRatio: median(pairs),
      p50Ratio: p.p50Ms / d.p50Ms,
      p99Ratio: p.p99Ms / d.p99Ms,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const t0 = performance.now();
  const startedBackend = ensureBackend();
  const libvirtdPid = backendPid();
  let proxy: BenchProxy | null = null;
  try {
    const maxClientRequests = backendMaxClientRequests();
    proxy = await startBenchProxy({
      repoRoot: REPO_ROOT,
      backendDir: BACKEND_DIR,
      maxClientRequests,
      cpuProfile: SETTINGS.cpuProfile,
    });
    const pids = { proxy: proxy.pid, libvirtd: libvirtdPid };
    const direct: Target = { name: 'direct', sock: join(BACKEND_DIR, 'libvirt-sock') };
    const viaProxy: Target = { name: 'proxy', sock: proxy.sock };
    process.stdout.write(
      `bench: libvirtd pid ${pids.libvirtd} (${startedBackend ? 'started' : 'reused'}), proxy pid ${pids.proxy}, ` +
        `max_client_requests ${maxClientRequests} on both; RPC: ${SETTINGS.warmupMs} ms warm-up, then ` +
        `${SETTINGS.durationMs} ms measured per target in alternating ${SETTINGS.sliceMs} ms slices\n`,
    );

    // Both paths must give the same answer before their speed means anything.
    const names: string[] = [];
    for (const t of [direct, viaProxy]) {
      const [c] = await timed(openClients(t.sock, 1, 1), STEP_TIMEOUT_MS, `opening a ${t.name} client`);
      if (!c) throw new Error('bench: no client');
      names.push(
        decodeHostname(await timed(c.call(REMOTE_PROC_CONNECT_GET_HOSTNAME), STEP_TIMEOUT_MS, 'a call')),
      );
      c.destroy();
    }
    if (names[0] !== names[1]) throw new Error(`bench: hostnames differ: ${names.join(' vs ')}`);

    // Memory first, while the proxy's heap holds nothing but its start-up.
    let idle: IdleResult | null = null;
    if (SETTINGS.idleClients > 0) {
      process.stdout.write(`bench: memory with ${SETTINGS.idleClients} idle clients\n`);
      idle = await idleMemory(viaProxy.sock, pids.proxy, SETTINGS.idleClients);
    }

    const rpc: RpcResult[] = [];
    for (const conns of SETTINGS.conns) {
      for (const depth of SETTINGS.depths) {
        for (const r of await runRpc([direct, viaProxy], conns, depth, pids)) {
          process.stdout.write(
            `bench: rpc ${r.target.padEnd(6)} conns ${String(conns).padStart(2)} depth ${depth}: ` +
              `${r.callsPerSec.toFixed(0)} calls/s, p50 ${f3(r.p50Ms)} ms, p99 ${f3(r.p99Ms)} ms\n`,
          );
          rpc.push(r);
        }
      }
    }

    let stream: StreamResult | null = null;
    if (SETTINGS.streamMiB > 0) {
      process.stdout.write(`bench: stream download of ${SETTINGS.streamMiB} MiB\n`);
      stream = await streamBench(direct, viaProxy, pids);
    }
    if (backendPid() !== libvirtdPid) throw new Error('bench: the figures are not comparable');

    await proxy.stop();
    report(rpc, stream, idle, {
      hostCpus: cpus().length,
      node: process.version,
      host: hostname(),
      maxClientRequests,
      warmupMs: SETTINGS.warmupMs,
      durationMs: SETTINGS.durationMs,
      sliceMs: SETTINGS.sliceMs,
      skipMs: SETTINGS.skipMs,
      elapsedS: (performance.now() - t0) / 1000,
    });
    if (process.env['BENCH_TLS'] !== '0') {
      // Its own proxy (with a TLS listener), after this one has stopped.
      process.stdout.write('\nbench: TLS (BENCH_TLS=0 skips it)\n');
      process.stdout.write(formatTlsBench(await runTlsBench(tlsBenchOptionsFromEnv())));
    }
    if (SETTINGS.cpuProfile) {
      for (const file of proxy.cpuProfiles()) {
        process.stdout.write(`\nProxy CPU profile ${file} (self time, top 20):\n`);
        for (const h of topFrames(file, 20)) {
          process.stdout.write(
            `  ${h.percent.toFixed(1).padStart(5)}%  ${h.selfMs.toFixed(0).padStart(7)} ms  ${h.frame}\n`,
          );
        }
      }
    }
  } catch (e) {
    // The backend is shared (the e2e tests restart it); say so rather than blame the proxy.
    const now = backendPid();
    if (now !== libvirtdPid && e instanceof Error) {
      const note = `libvirtd was restarted during the run (pid ${libvirtdPid} → ${now}); run the bench again`;
      throw new Error(`${e.message}\n  note: ${note}`, { cause: e });
    }
    throw e;
  } finally {
    if (proxy) {
      await proxy.stop();
      if (!SETTINGS.cpuProfile) await proxy.cleanup();
    }
    if (startedBackend) stopBackend();
    process.stdout.write(`bench: done in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
}

// A signal would skip the 'exit' hooks that kill the proxy; turn it into an ordinary exit.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
