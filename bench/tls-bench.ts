// TLS benchmark: forwarded-call rate through the proxy over TLS against the same load over its unix
// socket, and TLS handshakes per second (connect, handshake with a client certificate, the
// proxy's checks, until the 0x01 confirmation byte). Runs the real proxy in front of the backend
// libvirtd with certificates made by certtool. `node dist/bench/tls-bench.js` prints a table and
// one JSON line; bench.ts can call runTlsBench() for `npm run bench`.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

import {
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_OK,
} from '../src/protocol/constants.js';
import { encodeMessage } from '../src/protocol/header.js';
import { encodeConnectOpenArgs } from '../src/protocol/payloads.js';
import { TestPki, type Issued } from '../test/e2e/pki.js';

const REMOTE_PROC_CONNECT_GET_HOSTNAME = 59;
/** Measured slice per transport, and its unmeasured start (loops ramping up). */
const SLICE_MS = 600;
const SLICE_SKIP_MS = 150;
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BACKEND_DIR = process.env['VIRTPROXYD_TEST_BACKEND_DIR'] ?? '/run/libvirt/backend';

export interface TlsBenchOptions {
  conns: number;
  depth: number;
  warmupMs: number;
  durationMs: number;
  /** Concurrent handshake loops. */
  handshakeConcurrency: number;
}

export interface TlsBenchResult {
  unixCallsPerSec: number;
  tlsCallsPerSec: number;
  /** tls / unix */
  ratio: number;
  handshakesPerSec: number;
  settings: TlsBenchOptions;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A minimal pipelining client: calls go out, replies are matched by serial. */
class BenchConn {
  private buf: Buffer = Buffer.alloc(0);
  private serial = 1;
  private readonly waiting = new Map<number, (status: number) => void>();

  constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < len) break;
      const serial = this.buf.readUInt32BE(20);
      const status = this.buf.readInt32BE(24);
      this.buf = this.buf.subarray(len);
      const w = this.waiting.get(serial);
      this.waiting.delete(serial);
      w?.(status);
    }
  }

  call(proc: number, payload: Buffer | null = null): Promise<number> {
    const serial = this.serial++;
    return new Promise((resolve) => {
      this.waiting.set(serial, resolve);
      this.sock.write(
        encodeMessage(
          { prog: REMOTE_PROGRAM, vers: 1, proc, type: VIR_NET_CALL, serial, status: VIR_NET_OK },
          payload,
        ),
      );
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

function connectUnix(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

interface TlsClientMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** A TLS connection that has received the proxy's confirmation byte. */
function connectTls(port: number, m: TlsClientMaterial): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ...m });
    // libvirt's client sets TCP_NODELAY too; without it Nagle holds back the client's Finished.
    s.setNoDelay(true);
    s.once('error', reject);
    s.once('data', (d: Buffer) => {
      if (d[0] !== 1) return reject(new Error('no TLS confirmation byte'));
      if (d.length > 1) s.unshift(d.subarray(1));
      resolve(s);
    });
  });
}

async function openConn(sock: net.Socket): Promise<BenchConn> {
  const c = new BenchConn(sock);
  const status = await c.call(
    REMOTE_PROC_CONNECT_OPEN,
    encodeConnectOpenArgs({ name: 'qemu:///system', flags: 0 }),
  );
  if (status !== 0) throw new Error(`CONNECT_OPEN failed (status ${status})`);
  return c;
}

/** Keeps `depth` GET_HOSTNAME calls in flight on every connection; returns calls/s in the window. */
async function callRate(
  conns: BenchConn[],
  depth: number,
  warmupMs: number,
  durationMs: number,
): Promise<number> {
  let counting = false;
  let running = true;
  let count = 0;
  const loop = async (c: BenchConn): Promise<void> => {
    while (running) {
      const status = await c.call(REMOTE_PROC_CONNECT_GET_HOSTNAME);
      if (status !== 0) throw new Error('GET_HOSTNAME failed');
      if (counting) count++;
    }
  };
  const loops = conns.flatMap((c) => Array.from({ length: depth }, () => loop(c)));
  await sleep(warmupMs);
  counting = true;
  const t0 = performance.now();
  await sleep(durationMs);
  counting = false;
  const elapsed = performance.now() - t0;
  running = false;
  await Promise.all(loops);
  return (count * 1000) / elapsed;
}

async function handshakeRate(
  port: number,
  m: TlsClientMaterial,
  concurrency: number,
  warmupMs: number,
  durationMs: number,
): Promise<number> {
  let counting = false;
  let running = true;
  let count = 0;
  const loop = async (): Promise<void> => {
    while (running) {
      const s = await connectTls(port, m);
      s.destroy();
      if (counting) count++;
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  await sleep(warmupMs);
  counting = true;
  const t0 = performance.now();
  await sleep(durationMs);
  counting = false;
  const elapsed = performance.now() - t0;
  running = false;
  await Promise.all(loops);
  return (count * 1000) / elapsed;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.once('error', reject);
  });
}

async function waitUntil(pred: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`tls-bench: ${what} not ready after ${ms} ms`);
    await sleep(50);
  }
}

const canConnect = (opts: net.NetConnectOpts): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect(opts, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

export async function runTlsBench(opts: TlsBenchOptions): Promise<TlsBenchResult> {
  if (!existsSync(join(BACKEND_DIR, 'libvirt-sock'))) {
    const r = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'backend.sh'), 'start', BACKEND_DIR], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`tls-bench: backend.sh start failed: ${r.stderr}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'vptlsbench-'));
  let proxy: ChildProcess | null = null;
  try {
    const pki = new TestPki(join(dir, 'pki'));
    const ca = pki.ca('ca');
    const server = pki.server(ca);
    const client: Issued = pki.client(ca, 'client', 'bench');
    const material: TlsClientMaterial = {
      ca: readFileSync(ca.cert),
      cert: readFileSync(client.cert),
      key: readFileSync(client.key),
    };
    const port = await freePort();
    mkdirSync(join(dir, 'run'));
    const conf = join(dir, 'virtproxyd.conf');
    writeFileSync(
      conf,
      [
        `unix_sock_dir = "${dir}/run"`,
        `backend_sock_dir = "${BACKEND_DIR}"`,
        'auth_unix_rw = "none"',
        'auth_unix_ro = "none"',
        'listen_tls = 1',
        'listen_addr = "127.0.0.1"',
        `tls_port = "${port}"`,
        `ca_file = "${ca.cert}"`,
        `cert_file = "${server.cert}"`,
        `key_file = "${server.key}"`,
        `max_client_requests = ${Math.max(5, opts.depth)}`,
        '',
      ].join('\n'),
    );
    proxy = spawn(
      process.execPath,
      [join(REPO_ROOT, 'bin', 'virtproxyd'), '-f', conf, '-p', join(dir, 'pid')],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    const sock = join(dir, 'run', 'libvirt-sock');
    await waitUntil(() => canConnect({ path: sock }), 15_000, 'proxy unix socket');
    await waitUntil(() => canConnect({ port, host: '127.0.0.1' }), 15_000, 'proxy TLS port');

    // Unix and TLS take turns in short slices, so a load change on this (shared) machine hits both.
    const unixConns = await Promise.all(
      Array.from({ length: opts.conns }, async () => openConn(await connectUnix(sock))),
    );
    const tlsConns = await Promise.all(
      Array.from({ length: opts.conns }, async () => openConn(await connectTls(port, material))),
    );
    const slices = Math.max(1, Math.round(opts.durationMs / SLICE_MS));
    let unixSum = 0;
    let tlsSum = 0;
    await callRate(unixConns, opts.depth, 0, opts.warmupMs);
    await callRate(tlsConns, opts.depth, 0, opts.warmupMs);
    for (let i = 0; i < slices; i++) {
      unixSum += await callRate(unixConns, opts.depth, SLICE_SKIP_MS, SLICE_MS);
      tlsSum += await callRate(tlsConns, opts.depth, SLICE_SKIP_MS, SLICE_MS);
    }
    for (const c of [...unixConns, ...tlsConns]) c.close();
    const unixCallsPerSec = unixSum / slices;
    const tlsCallsPerSec = tlsSum / slices;

    const handshakesPerSec = await handshakeRate(
      port,
      material,
      opts.handshakeConcurrency,
      opts.warmupMs,
      opts.durationMs,
    );
    return {
      unixCallsPerSec,
      tlsCallsPerSec,
      ratio: tlsCallsPerSec / unixCallsPerSec,
      handshakesPerSec,
      settings: opts,
    };
  } finally {
    proxy?.kill('SIGTERM');
    await sleep(200);
    await rm(dir, { recursive: true, force: true });
  }
}

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  const n = v === undefined || v === '' ? dflt : Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`tls-bench: ${name} must be a positive integer`);
  return n;
}

/** Settings from the environment (BENCH_TLS_CONNS, BENCH_TLS_DEPTH, ...; see docs/remote.md). */
export function tlsBenchOptionsFromEnv(): TlsBenchOptions {
  return {
    conns: envInt('BENCH_TLS_CONNS', 8),
    depth: envInt('BENCH_TLS_DEPTH', 4),
    warmupMs: envInt('BENCH_WARMUP_MS', 1000),
    durationMs: envInt('BENCH_DURATION_MS', 5000),
    handshakeConcurrency: envInt('BENCH_TLS_HANDSHAKE_CONCURRENCY', 4),
  };
}

/** The human-readable table and the JSON line. */
export function formatTlsBench(r: TlsBenchResult): string {
  const opts = r.settings;
  const f = (n: number): string => n.toFixed(0).padStart(9);
  return [
    `TLS bench (${opts.conns} connections x ${opts.depth} calls in flight, CONNECT_GET_HOSTNAME forwarded to the backend)`,
    `  calls/s over the unix socket ${f(r.unixCallsPerSec)}`,
    `  calls/s over TLS             ${f(r.tlsCallsPerSec)}   (${(r.ratio * 100).toFixed(0)}% of unix)`,
    `  TLS handshakes/s             ${f(r.handshakesPerSec)}   (${opts.handshakeConcurrency} concurrent, RSA-2048, client certificate checked)`,
    `BENCH_TLS_JSON ${JSON.stringify(r)}`,
    '',
  ].join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(formatTlsBench(await runTlsBench(tlsBenchOptionsFromEnv())));
}
