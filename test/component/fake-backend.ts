// Component-test support: a scripted stand-in for a per-driver daemon (virtqemud) listening as
// `virtqemud-sock` / `virtqemud-sock-ro` in a temp dir, and a launcher for the real proxy process
// (`node bin/virtproxyd -f <conf> -p <pid>`) routed to it. The fake answers the handshake the proxy
// performs (AUTH_LIST, SUPPORTS_FEATURE(10), CONNECT_OPEN, SET_IDENTITY) and keepalive by itself and
// records what it saw; every other frame is queued for the test to script: reply late, out of order,
// send events, stream packets or pings, stop reading, or hang up.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  REMOTE_PROC_AUTH_LIST,
  REMOTE_PROC_CONNECT_CLOSE,
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROC_CONNECT_SET_IDENTITY,
  REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
  REMOTE_PROGRAM,
  VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
  VIR_NET_CALL,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_STREAM,
} from '../../src/protocol/constants.js';
import { FrameDecoder } from '../../src/protocol/frame-decoder.js';
import { encodeMessage, framePayload, readHeader, type MessageHeader } from '../../src/protocol/header.js';
import {
  decodeConnectOpenArgs,
  decodeInt,
  decodeSetIdentityArgs,
  encodeAuthList,
  encodeConnectOpenArgs,
  encodeInt,
  type TypedParam,
} from '../../src/protocol/payloads.js';
import {
  DEFAULT_WAIT_MS,
  KEEPALIVE_PING,
  KEEPALIVE_PONG,
  WireClient,
  describeFrame,
  errorReplyFrame,
  okReplyFrame,
  type ExpectedError,
  type FramePredicate,
} from './wire-client.js';

/** One record of a handshake call the fake answered by itself. */
export interface HandshakeStep {
  proc: number;
  serial: number;
  /** SUPPORTS_FEATURE's feature number; -1 for other procedures. */
  feature: number;
}

interface Waiter<T> {
  pred: (v: T) => boolean;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** One connection the proxy made to the fake daemon. */
export class FakeConn {
  /** Every frame received except those a sink consumed (copies). */
  readonly frames: Buffer[] = [];
  readonly handshake: HandshakeStep[] = [];
  openName: string | null = null;
  openFlags: number | null = null;
  /** Parameters of each SET_IDENTITY received, in order. */
  readonly identities: TypedParam[][] = [];
  /** PINGs the proxy sent us, and PONGs it answered to ours. */
  pingsReceived = 0;
  pongsReceived = 0;
  /** Total bytes read from the proxy. */
  bytesIn = 0;
  /** When set, a frame for which it returns true is neither logged nor queued (bulk data). */
  sink: ((frame: Buffer, h: MessageHeader) => boolean) | null = null;
  /** Reply to CONNECT_CLOSE and hang up, as a daemon does; false leaves it to the script. */
  autoConnectClose = true;
  private unclaimed: Buffer[] = [];
  private waiters: Array<Waiter<Buffer>> = [];
  private endedFlag = false;
  readonly ended: Promise<void>;

  constructor(
    readonly socket: net.Socket,
    /** `virtqemud-sock` or `virtqemud-sock-ro`. */
    readonly socketName: string,
    private readonly owner: FakeBackend,
  ) {
    const decoder = new FrameDecoder(
      (f) => this.proxyOnFrame(f),
      () => socket.destroy(),
    );
    socket.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      decoder.push(chunk);
    });
    socket.on('error', () => undefined);
    this.ended = new Promise((resolve) => {
      socket.once('close', () => {
        this.endedFlag = true;
        for (const w of this.waiters) {
          clearTimeout(w.timer);
          w.reject(new Error('proxy connection closed while waiting for a frame'));
        }
        this.waiters = [];
        resolve();
      });
    });
  }

  get isEnded(): boolean {
    return this.endedFlag;
  }

  /** Frames of `proc` (remote program CALLs) received so far, including auto-answered ones. */
  callsOf(proc: number): Buffer[] {
    return this.frames.filter((f) => {
      const h = readHeader(f);
      return h.prog === REMOTE_PROGRAM && h.type === VIR_NET_CALL && h.proc === proc;
    });
  }

  /** The first frame not auto-answered (already received or to come) that matches `pred`. */
  next(pred: FramePredicate = () => true, timeoutMs = DEFAULT_WAIT_MS, what = 'a frame'): Promise<Buffer> {
    const i = this.unclaimed.findIndex((f) => pred(f, readHeader(f)));
    if (i >= 0) return Promise.resolve(this.unclaimed.splice(i, 1)[0] as Buffer);
    if (this.endedFlag) return Promise.reject(new Error(`proxy connection closed; never got ${what}`));
    return new Promise((resolve, reject) => {
      const w: Waiter<Buffer> = {
        pred: (f) => pred(f, readHeader(f)),
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`fake backend: timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** The next CALL (any program) with procedure `proc`, or any CALL when omitted. */
  nextCall(proc?: number, timeoutMs = DEFAULT_WAIT_MS): Promise<Buffer> {
    return this.next(
      (_f, h) => h.type === VIR_NET_CALL && (proc === undefined || h.proc === proc),
      timeoutMs,
      `a CALL${proc === undefined ? '' : ` of proc ${proc}`}`,
    );
  }

  /** Resolves if nothing matching shows up within `ms`. */
  async expectNone(pred: FramePredicate, ms: number, what = 'frame'): Promise<void> {
    const got = await this.next(pred, ms).then(
      (f) => f,
      () => null,
    );
    if (got !== null)
      throw new Error(`fake backend got an unexpected ${what}: ${JSON.stringify(readHeader(got))}`);
  }

  send(frame: Buffer): boolean {
    return this.socket.write(frame);
  }

  reply(call: Buffer, payload?: Buffer): Buffer {
    const f = okReplyFrame(call, payload);
    this.send(f);
    return f;
  }

  replyError(call: Buffer, e: ExpectedError): Buffer {
    const f = errorReplyFrame(call, e);
    this.send(f);
    return f;
  }

  /** An event as libvirt daemons send it: MESSAGE, status OK, serial 1. */
  event(prog: number, proc: number, payload: Buffer): Buffer {
    const f = encodeMessage(
      { prog, vers: 1, proc, type: VIR_NET_MESSAGE, serial: 1, status: VIR_NET_OK },
      payload,
    );
    this.send(f);
    return f;
  }

  /** A stream packet for the stream created by `call` (same prog, vers, proc, serial). */
  stream(call: Buffer, status: number, payload?: Buffer, type = VIR_NET_STREAM): Buffer {
    const h = readHeader(call);
    const f = encodeMessage({ ...h, type, status }, payload ?? null);
    this.send(f);
    return f;
  }

  ping(): void {
    this.send(KEEPALIVE_PING);
  }

  /** Stops reading the proxy's data: its writes then back up in the kernel and in the proxy. */
  stopReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Hangs up without a word (daemon crash). */
  destroy(): void {
    this.socket.destroy();
  }

  private proxyOnFrame(view: Buffer): void {
    const h = readHeader(view);
    if (this.sink !== null && this.sink(view, h)) return;
    // The decoder may hand out a view into a socket chunk; keep a copy.
    const frame = Buffer.from(view);
    this.frames.push(frame);
    if (h.prog === KEEPALIVE_PROGRAM && h.type === VIR_NET_MESSAGE) {
      if (h.proc === KEEPALIVE_PROC_PING) {
        this.pingsReceived++;
        this.send(KEEPALIVE_PONG);
      } else if (h.proc === KEEPALIVE_PROC_PONG) {
        this.pongsReceived++;
      }
      return;
    }
    if (h.prog === REMOTE_PROGRAM && h.type === VIR_NET_CALL && this.autoAnswer(frame, h)) return;
    const i = this.waiters.findIndex((w) => w.pred(frame));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      if (w !== undefined) {
        clearTimeout(w.timer);
        w.resolve(frame);
        return;
      }
    }
    this.unclaimed.push(frame);
  }

  /** The handshake procedures a daemon answers the same way every time. */
  private autoAnswer(frame: Buffer, h: MessageHeader): boolean {
    const step = (feature = -1): void => {
      this.handshake.push({ proc: h.proc, serial: h.serial, feature });
    };
    switch (h.proc) {
      case REMOTE_PROC_AUTH_LIST:
        step();
        this.reply(frame, encodeAuthList(this.owner.authTypes));
        return true;
      case REMOTE_PROC_CONNECT_SUPPORTS_FEATURE: {
        const feature = decodeInt(framePayload(frame));
        if (feature !== VIR_DRV_FEATURE_PROGRAM_KEEPALIVE) return false;
        step(feature);
        this.reply(frame, encodeInt(1));
        return true;
      }
      case REMOTE_PROC_CONNECT_OPEN: {
        step();
        const args = decodeConnectOpenArgs(framePayload(frame));
        this.openName = args.name;
        this.openFlags = args.flags;
        if (this.owner.openError !== null) this.replyError(frame, this.owner.openError);
        else this.reply(frame);
        return true;
      }
      case REMOTE_PROC_CONNECT_SET_IDENTITY:
        step();
        this.identities.push(decodeSetIdentityArgs(framePayload(frame)).params);
        this.reply(frame);
        return true;
      case REMOTE_PROC_CONNECT_CLOSE:
        if (!this.autoConnectClose) return false;
        step();
        this.reply(frame);
        this.socket.end();
        return true;
      default:
        return false;
    }
  }
}

/** The fake daemon: its two listening sockets and every connection made to them. */
export class FakeBackend {
  readonly conns: FakeConn[] = [];
  /** What AUTH_LIST answers. */
  authTypes: number[] = [0];
  /** When set, CONNECT_OPEN fails with this error. */
  openError: ExpectedError | null = null;
  private unclaimed: FakeConn[] = [];
  private waiters: Array<Waiter<FakeConn>> = [];

  private constructor(
    readonly dir: string,
    private readonly servers: net.Server[],
  ) {}

  /** Listens on `<dir>/virt<driver>d-sock` and `<dir>/virt<driver>d-sock-ro`. */
  static async start(dir: string, driver = 'qemu'): Promise<FakeBackend> {
    const servers: net.Server[] = [];
    const backend = new FakeBackend(dir, servers);
    for (const name of [`virt${driver}d-sock`, `virt${driver}d-sock-ro`]) {
      const srv = net.createServer((s) => backend.accepted(s, name));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(join(dir, name), () => resolve());
      });
      servers.push(srv);
    }
    return backend;
  }

  /** The next connection not yet handed to the test (in accept order). */
  nextConnection(timeoutMs = DEFAULT_WAIT_MS): Promise<FakeConn> {
    const c = this.unclaimed.shift();
    if (c !== undefined) return Promise.resolve(c);
    return new Promise((resolve, reject) => {
      const w: Waiter<FakeConn> = {
        pred: () => true,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`fake backend: no connection from the proxy within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  private accepted(socket: net.Socket, name: string): void {
    const conn = new FakeConn(socket, name, this);
    this.conns.push(conn);
    const w = this.waiters.shift();
    if (w !== undefined) {
      clearTimeout(w.timer);
      w.resolve(conn);
    } else {
      this.unclaimed.push(conn);
    }
  }
}

// ---- the real proxy process ----

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root above ' + import.meta.url);
    dir = up;
  }
  return dir;
}

export const repoRoot = findRepoRoot();

export interface ProxyProcess {
  rwSock: string;
  roSock: string;
  pid: number;
  /** What the proxy has written to stderr so far. */
  stderr(): string;
  /** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM, ...). */
  statusKiB(field: string): number;
  /** Open file descriptors of the proxy process (sockets included). */
  fdCount(): number;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** Writes a virtproxyd.conf into `dir` and starts the proxy; resolves once its rw socket accepts. */
export async function startProxy(
  dir: string,
  backendDir: string,
  conf: Record<string, string | number> = {},
): Promise<ProxyProcess> {
  const run = join(dir, 'run');
  await mkdir(run, { recursive: true });
  const all: Record<string, string | number> = {
    unix_sock_dir: run,
    backend_sock_dir: backendDir,
    auth_unix_rw: 'none',
    auth_unix_ro: 'none',
    ...conf,
  };
  const text = Object.entries(all)
    .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : JSON.stringify(v)}`)
    .join('\n');
  const confFile = join(dir, 'virtproxyd.conf');
  await writeFile(confFile, text + '\n');
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'bin', 'virtproxyd'), '-f', confFile, '-p', join(dir, 'pid')],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  running.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );
  const rwSock = join(run, 'libvirt-sock');
  const proxy: ProxyProcess = {
    rwSock,
    roSock: join(run, 'libvirt-sock-ro'),
    pid: child.pid ?? -1,
    stderr: () => stderr,
    statusKiB(field: string): number {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
        readFileSync(`/proc/${child.pid}/status`, 'utf8'),
      );
      if (m === null) throw new Error(`no ${field} in /proc/${child.pid}/status`);
      return Number(m[1]);
    },
    fdCount: () => readdirSync(`/proc/${child.pid}/fd`).length,
    async stop(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `virtproxyd exited (${child.exitCode ?? child.signalCode}) before listening:\n${stderr}`,
      );
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ path: rwSock });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return proxy;
    if (Date.now() > deadline) {
      await proxy.stop();
      throw new Error(`virtproxyd did not listen on ${rwSock} within 15 s:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 30));
  }
}

/** A temp dir with a fake backend in `<dir>/backend` and the proxy's files in `<dir>`. */
export interface Stack {
  dir: string;
  backend: FakeBackend;
  proxy: ProxyProcess;
  stop(): Promise<void>;
}

export async function startStack(conf: Record<string, string | number> = {}): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), 'vpcomp-'));
  const bdir = join(dir, 'backend');
  await mkdir(bdir);
  const backend = await FakeBackend.start(bdir);
  let proxy: ProxyProcess;
  try {
    proxy = await startProxy(dir, bdir, conf);
  } catch (e) {
    await backend.stop();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    backend,
    proxy,
    async stop(): Promise<void> {
      await proxy.stop();
      await backend.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A client on the proxy that has done CONNECT_OPEN, and the fake daemon connection behind it. */
export interface OpenedClient {
  client: WireClient;
  conn: FakeConn;
  openCall: Buffer;
  openReply: Buffer;
}

export async function openClient(
  stack: Stack,
  opts: { ro?: boolean; name?: string | null; flags?: number } = {},
): Promise<OpenedClient> {
  const client = await WireClient.connect(opts.ro === true ? stack.proxy.roSock : stack.proxy.rwSock);
  const openCall = client.send(
    { proc: REMOTE_PROC_CONNECT_OPEN },
    encodeConnectOpenArgs({
      name: opts.name === undefined ? 'qemu:///system' : opts.name,
      flags: opts.flags ?? 0,
    }),
  );
  const openReply = await client.reply(openCall);
  if (readHeader(openReply).status !== VIR_NET_OK) {
    client.close();
    throw new Error(`CONNECT_OPEN failed: ${describeFrame(openReply)}`);
  }
  const conn = await stack.backend.nextConnection();
  return { client, conn, openCall, openReply };
}
