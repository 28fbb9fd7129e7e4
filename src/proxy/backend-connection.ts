// Proxy layer: one client's leg to a per-driver daemon. It performs the handshake the C
// virtproxyd's remote driver does (auth list, keepalive feature, open, identity), then switches to
// pass-through: every frame goes to the owner untouched, except keepalive traffic, answered here.

import net from 'node:net';
import { CodedError } from '../protocol/coded-error.js';
import {
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROGRAM,
  REMOTE_AUTH_NONE,
  REMOTE_AUTH_POLKIT,
  REMOTE_PROC_AUTH_LIST,
  REMOTE_PROC_AUTH_POLKIT,
  REMOTE_PROC_CONNECT_CLOSE,
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROC_CONNECT_SET_IDENTITY,
  REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
  VIR_ERR_AUTH_UNAVAILABLE,
  VIR_ERR_NO_SUPPORT,
  VIR_ERR_SYSTEM_ERROR,
  VIR_FROM_RPC,
  VIR_NET_CALL,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_REPLY_WITH_FDS,
  VIR_NET_STREAM,
} from '../protocol/constants.js';
import { FrameDecoder, type PieceSink } from '../protocol/frame-decoder.js';
import {
  OFF_PROC,
  OFF_PROG,
  OFF_SERIAL,
  OFF_STATUS,
  OFF_TYPE,
  encodeMessage,
  framePayload,
} from '../protocol/header.js';
import {
  decodeAuthList,
  encodeConnectOpenArgs,
  encodeInt,
  encodeSetIdentityArgs,
  type TypedParam,
} from '../protocol/payloads.js';
import { decodeRemoteError, remoteError, type RemoteError } from '../protocol/remote-error.js';
import { Keepalive } from '../server/keepalive.js';
import { PING_FRAME, PONG_FRAME } from '../server/messages.js';
import { startReading, type ChunkSink, type ChunkSource } from '../transport/chunk-source.js';
import { FdQueue, closeFds } from '../transport/fd-queue.js';
import { OrderedWriter } from '../transport/ordered-writer.js';

/** A failure the client should see as a libvirt error. */
export class BackendError extends CodedError {
  constructor(
    readonly remote: RemoteError,
    cause?: unknown,
  ) {
    super('EBACKEND', remote.message ?? 'backend error', { cause });
  }
}

export interface BackendOpenOptions {
  socketPath: string;
  name: string;
  flags: number;
  identity: TypedParam[] | null;
  keepaliveInterval: number;
  keepaliveCount: number;
  connectTimeoutMs?: number;
}

const ERRNO: Record<string, number> = { ENOENT: 2, EACCES: 13, ECONNREFUSED: 111, ENOTSOCK: 88, ENOTDIR: 20 };
const STRERROR: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ECONNREFUSED: 'Connection refused',
  ENOTSOCK: 'Socket operation on non-socket',
  ENOTDIR: 'Not a directory',
  ETIMEDOUT: 'Connection timed out',
};

export type BackendCloseReason = 'eof' | 'error' | 'keepalive' | 'client';

export class BackendConnection implements ChunkSink {
  readonly socket: net.Socket;
  private readonly decoder: FrameDecoder;
  private serial = 0;
  private pending: { serial: number; resolve: (f: Buffer) => void; reject: (e: Error) => void } | null = null;
  private passthrough: ((frame: Buffer, fds: number[] | null) => void) | null = null;
  private pieces: PieceSink | null = null;
  private acceptsPieces: (() => boolean) | null = null;
  private readonly source: ChunkSource;
  private readonly out: OrderedWriter;
  private readonly fdQueue = new FdQueue();
  /** A REPLY_WITH_FDS waiting for its fds. */
  private fdFrame: { frame: Buffer; n: number } | null = null;
  private closedCb: ((reason: BackendCloseReason, err?: Error) => void) | null = null;
  private closed = false;
  private closeReason: BackendCloseReason = 'eof';
  readonly keepalive: Keepalive;

  private constructor(socket: net.Socket, opts: BackendOpenOptions) {
    this.socket = socket;
    this.decoder = new FrameDecoder(
      (f) => this.backendOnFrame(f),
      (e) => this.fail(e, 'error'),
    );
    // Long STREAM frames (downloads, screenshots) go to the client as they arrive.
    this.decoder.setCutThrough((head) => {
      const sink = this.pieces;
      if (sink === null || head.readInt32BE(OFF_TYPE) !== VIR_NET_STREAM) return null;
      if (this.acceptsPieces !== null && !this.acceptsPieces()) return null;
      this.keepalive.received();
      return sink;
    });
    this.keepalive = new Keepalive({
      interval: opts.keepaliveInterval,
      count: opts.keepaliveCount,
      sendPing: () => this.out.write(PING_FRAME),
      onDead: () => {
        this.closeReason = 'keepalive';
        this.socket.destroy();
      },
    });
    this.out = new OrderedWriter(socket, true);
    this.source = startReading(socket, this, true);
    socket.on('error', (e) => this.fail(e, 'error'));
    socket.on('close', () => this.backendOnClose());
  }

  /** Connects and runs the handshake; resolves once the backend connection is open. */
  static async open(opts: BackendOpenOptions): Promise<BackendConnection> {
    const socket = await connectUnix(opts.socketPath, opts.connectTimeoutMs ?? 30000);
    socket.setNoDelay?.(true);
    const conn = new BackendConnection(socket, opts);
    // Keepalive runs from the start, so a daemon that accepts and then goes silent fails the
    // handshake (after interval × count) instead of leaving the client's CONNECT_OPEN hanging.
    conn.keepalive.start();
    try {
      await conn.handshake(opts);
    } catch (e) {
      conn.destroy();
      throw e;
    }
    return conn;
  }

  private async handshake(opts: BackendOpenOptions): Promise<void> {
    const auth = await this.call(REMOTE_PROC_AUTH_LIST, null);
    if (auth.readInt32BE(OFF_STATUS) === VIR_NET_OK) {
      const types = decodeAuthList(framePayload(auth));
      const first = types[0] ?? REMOTE_AUTH_NONE;
      if (first === REMOTE_AUTH_POLKIT) {
        await this.callOk(REMOTE_PROC_AUTH_POLKIT, null);
      } else if (first !== REMOTE_AUTH_NONE) {
        throw new BackendError(
          remoteError(
            VIR_ERR_AUTH_UNAVAILABLE,
            VIR_FROM_RPC,
            `the daemon at '${opts.socketPath}' asks for authentication type ${first}, which the proxy cannot perform`,
          ),
        );
      }
    } else {
      const err = decodeRemoteError(framePayload(auth));
      if (err.code !== VIR_ERR_NO_SUPPORT && !(err.message ?? '').startsWith('unknown procedure')) {
        throw new BackendError(err);
      }
    }
    await this.callOk(REMOTE_PROC_CONNECT_SUPPORTS_FEATURE, encodeInt(VIR_DRV_FEATURE_PROGRAM_KEEPALIVE));
    await this.callOk(
      REMOTE_PROC_CONNECT_OPEN,
      encodeConnectOpenArgs({ name: opts.name, flags: opts.flags }),
    );
    if (opts.identity !== null) {
      await this.callOk(
        REMOTE_PROC_CONNECT_SET_IDENTITY,
        encodeSetIdentityArgs({ params: opts.identity, flags: 0 }),
      );
    }
  }

  private async callOk(proc: number, payload: Buffer | null): Promise<Buffer> {
    const reply = await this.call(proc, payload);
    if (reply.readInt32BE(OFF_STATUS) !== VIR_NET_OK) {
      throw new BackendError(decodeRemoteError(framePayload(reply)));
    }
    return reply;
  }

  private call(proc: number, payload: Buffer | null): Promise<Buffer> {
    const serial = this.serial++;
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new BackendError(remoteError(1, VIR_FROM_RPC, 'client socket is closed')));
        return;
      }
      this.pending = { serial, resolve, reject };
      this.out.write(
        encodeMessage(
          {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_PROTOCOL_VERSION,
            proc,
            type: VIR_NET_CALL,
            serial,
            status: VIR_NET_OK,
          },
          payload,
        ),
      );
    });
  }

  /** After the handshake: every frame but keepalive goes to `onFrame`; `onClose` fires once. */
  attach(
    onFrame: (frame: Buffer, fds: number[] | null) => void,
    onClose: (reason: BackendCloseReason, err?: Error) => void,
    onPiece?: PieceSink,
    acceptsPieces?: () => boolean,
  ): void {
    this.pieces = onPiece ?? null;
    this.acceptsPieces = acceptsPieces ?? null;
    this.passthrough = onFrame;
    this.closedCb = onClose;
    if (this.closed) onClose(this.closeReason);
  }

  /** ChunkSink: bytes (and passed fds) read from the daemon socket. */
  onChunk(chunk: Buffer, fds: number[] | null): void {
    if (fds !== null) {
      this.fdQueue.add(fds);
      const f = this.fdFrame;
      if (f !== null) {
        const got = this.fdQueue.take(f.n);
        if (got !== null) {
          this.fdFrame = null;
          this.deliverWithFds(f.frame, got);
        }
      }
    }
    this.decoder.push(chunk);
    if (this.fdFrame !== null && this.decoder.skipping === 0 && this.fdQueue.length < this.fdFrame.n) {
      this.fail(new CodedError('EFDS', 'file descriptors announced by the daemon did not arrive'), 'error');
    }
  }

  private deliverWithFds(frame: Buffer, fds: number[]): void {
    const out = this.passthrough;
    if (out === null) closeFds(fds);
    else out(frame, fds);
  }

  private backendOnFrame(frame: Buffer): void {
    this.keepalive.received();
    if (frame.readUInt32BE(OFF_PROG) === KEEPALIVE_PROGRAM) {
      if (
        frame.readInt32BE(OFF_TYPE) === VIR_NET_MESSAGE &&
        frame.readInt32BE(OFF_PROC) === KEEPALIVE_PROC_PING
      ) {
        this.out.write(PONG_FRAME);
      }
      return;
    }
    if (frame.readInt32BE(OFF_TYPE) === VIR_NET_REPLY_WITH_FDS && frame.length >= 32) {
      const n = frame.readUInt32BE(28);
      if (n > 32) return this.fail(new CodedError('EFDS', `bad file descriptor count ${n}`), 'error');
      this.decoder.skip(n);
      const fds = this.fdQueue.take(n);
      if (fds !== null) this.deliverWithFds(frame, fds);
      else this.fdFrame = { frame: Buffer.from(frame), n };
      return;
    }
    const out = this.passthrough;
    if (out !== null) {
      out(frame, null);
      return;
    }
    const p = this.pending;
    if (
      p !== null &&
      frame.readInt32BE(OFF_TYPE) === VIR_NET_REPLY &&
      frame.readUInt32BE(OFF_SERIAL) === p.serial
    ) {
      this.pending = null;
      // The frame may be a view into a socket chunk; keep a copy beyond this tick.
      p.resolve(Buffer.from(frame));
    }
  }

  write(frame: Buffer): boolean {
    return this.out.write(frame);
  }

  writeWithFds(frame: Buffer, fds: number[]): void {
    this.out.writeWithFds(frame, fds);
  }

  writePiece(piece: Buffer, last: boolean): boolean {
    return this.out.writePiece(piece, last);
  }

  pause(): void {
    this.source.pause();
  }

  resume(): void {
    this.source.resume();
  }

  onDrain(cb: () => void): void {
    this.socket.on('drain', cb);
  }

  /** Polite close: tell the daemon, then hang up. */
  close(): void {
    if (this.closed) return;
    this.closeReason = 'client';
    this.keepalive.stop();
    if (!this.socket.destroyed && this.socket.writable) {
      this.socket.end(
        encodeMessage({
          prog: REMOTE_PROGRAM,
          vers: REMOTE_PROTOCOL_VERSION,
          proc: REMOTE_PROC_CONNECT_CLOSE,
          type: VIR_NET_CALL,
          serial: 0x7fffffff,
          status: VIR_NET_OK,
        }),
      );
      // The daemon gets 2 s to answer and hang up; the timer goes as soon as the socket does.
      const t = setTimeout(() => this.socket.destroy(), 2000);
      t.unref();
      this.socket.once('close', () => clearTimeout(t));
    } else {
      this.socket.destroy();
    }
  }

  destroy(): void {
    this.keepalive.stop();
    this.socket.destroy();
  }

  private fail(e: Error, reason: BackendCloseReason): void {
    if (this.closeReason === 'eof') this.closeReason = reason;
    const p = this.pending;
    if (p !== null) {
      this.pending = null;
      p.reject(new BackendError(remoteError(1, VIR_FROM_RPC, 'client socket is closed'), e));
    }
    this.socket.destroy();
  }

  private backendOnClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.source.close();
    this.fdQueue.closeAll();
    this.keepalive.stop();
    const p = this.pending;
    if (p !== null) {
      this.pending = null;
      p.reject(new BackendError(remoteError(1, VIR_FROM_RPC, 'client socket is closed')));
    }
    this.closedCb?.(this.closeReason);
  }
}

/** Maps a connect failure to libvirt's "Failed to connect socket" system error. */
export function connectError(socketPath: string, err: NodeJS.ErrnoException): BackendError {
  const code = err.code ?? 'EIO';
  const text = STRERROR[code] ?? err.message;
  return new BackendError(
    remoteError(
      VIR_ERR_SYSTEM_ERROR,
      VIR_FROM_RPC,
      `Failed to connect socket to '${socketPath}': ${text}`,
      ERRNO[code] ?? -1,
    ),
    err,
  );
}

function connectUnix(socketPath: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: socketPath });
    // Paused before connecting so Node never starts reading: the fd-keeping reader takes over.
    s.pause();
    const t = setTimeout(() => {
      s.destroy();
      reject(connectError(socketPath, Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      reject(connectError(socketPath, e));
    });
  });
}
