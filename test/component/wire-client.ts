// Component-test support: a raw libvirt RPC client over a unix socket. It builds frames with the
// protocol layer's encoders and splits what comes back with FrameDecoder, keeping every frame as a
// copy, so tests can assert exact bytes. Expected libvirt error replies are built here by hand,
// independently of src/, so a wrong encoder in the proxy cannot also produce the expectation.

import net from 'node:net';
import {
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROGRAM,
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_REPLY_WITH_FDS,
} from '../../src/protocol/constants.js';
import { FrameDecoder } from '../../src/protocol/frame-decoder.js';
import { encodeMessage, readHeader, type MessageHeader } from '../../src/protocol/header.js';

export type FramePredicate = (frame: Buffer, header: MessageHeader) => boolean;

/** How long a test waits for an expected frame before failing. */
export const DEFAULT_WAIT_MS = 3000;

interface Waiter {
  pred: FramePredicate;
  resolve: (f: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class WireClient {
  /** Every frame received, in arrival order (copies, so they outlive the socket chunk). */
  readonly frames: Buffer[] = [];
  /** Frames no `next()`/`call()` has claimed yet. */
  private unclaimed: Buffer[] = [];
  private waiters: Waiter[] = [];
  private serial = 0;
  private closedFlag = false;
  private readonly closedP: Promise<void>;
  /** Set when the decoder rejected the proxy's byte stream (a proxy bug). */
  decodeError: Error | null = null;
  /** When set, a frame for which it returns true is neither kept nor matched (bulk data). */
  sink: ((frame: Buffer, h: MessageHeader) => boolean) | null = null;

  private constructor(
    readonly socket: net.Socket,
    /** Answer PINGs from the proxy like libvirt's client library does. */
    private readonly autoPong: boolean,
  ) {
    const decoder = new FrameDecoder(
      (f) => this.socketOnFrame(f),
      (e) => {
        this.decodeError = e;
        socket.destroy();
      },
    );
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', () => undefined);
    this.closedP = new Promise((resolve) => {
      socket.once('close', () => {
        this.closedFlag = true;
        for (const w of this.waiters) {
          clearTimeout(w.timer);
          w.reject(new Error('connection closed while waiting for a frame'));
        }
        this.waiters = [];
        resolve();
      });
    });
  }

  static connect(path: string, opts: { autoPong?: boolean } = {}): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path });
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new WireClient(s, opts.autoPong ?? true));
      });
      s.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Next serial this client would pick; every built call takes one. */
  takeSerial(): number {
    return this.serial++;
  }

  /** Writes raw bytes; returns what socket.write returned (false = the kernel buffer is full). */
  write(bytes: Buffer): boolean {
    return this.socket.write(bytes);
  }

  /** Builds and writes one frame; defaults: remote program v1, CALL, next serial, status OK. */
  send(h: Partial<MessageHeader> & { proc: number }, payload?: Buffer | null): Buffer {
    const frame = encodeMessage(
      {
        prog: h.prog ?? REMOTE_PROGRAM,
        vers: h.vers ?? 1,
        proc: h.proc,
        type: h.type ?? VIR_NET_CALL,
        serial: h.serial ?? this.takeSerial(),
        status: h.status ?? VIR_NET_OK,
      },
      payload ?? null,
    );
    this.write(frame);
    return frame;
  }

  /** Sends a CALL and resolves with the REPLY carrying the same program and serial. */
  async call(
    prog: number,
    proc: number,
    payload?: Buffer | null,
    opts: { serial?: number; vers?: number; status?: number; timeoutMs?: number } = {},
  ): Promise<Buffer> {
    const serial = opts.serial ?? this.takeSerial();
    const sent = this.send(
      { prog, proc, serial, vers: opts.vers ?? 1, status: opts.status ?? VIR_NET_OK },
      payload,
    );
    return this.reply(sent, opts.timeoutMs);
  }

  /** The REPLY to a frame sent earlier (matched on program and serial, as libvirt clients do). */
  reply(sent: Buffer, timeoutMs = DEFAULT_WAIT_MS): Promise<Buffer> {
    const s = readHeader(sent);
    return this.next(
      (_f, h) =>
        (h.type === VIR_NET_REPLY || h.type === VIR_NET_REPLY_WITH_FDS) &&
        h.prog === s.prog &&
        h.serial === s.serial,
      timeoutMs,
      `reply to prog ${s.prog} proc ${s.proc} serial ${s.serial}`,
    );
  }

  /** The first unclaimed frame (already received or still to come) that matches `pred`. */
  next(pred: FramePredicate = () => true, timeoutMs = DEFAULT_WAIT_MS, what = 'a frame'): Promise<Buffer> {
    const i = this.unclaimed.findIndex((f) => pred(f, readHeader(f)));
    if (i >= 0) {
      const [f] = this.unclaimed.splice(i, 1);
      return Promise.resolve(f as Buffer);
    }
    if (this.closedFlag) return Promise.reject(new Error(`connection closed; never got ${what}`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Resolves if no unclaimed frame matching `pred` shows up within `ms`; rejects otherwise. */
  async expectNone(pred: FramePredicate, ms: number, what = 'frame'): Promise<void> {
    const got = await this.next(pred, ms).then(
      (f) => f,
      () => null,
    );
    if (got !== null) {
      throw new Error(`unexpected ${what}: ${JSON.stringify(readHeader(got))} (${got.length} bytes)`);
    }
  }

  /** Resolves once the proxy has closed the connection; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return within(this.closedP, timeoutMs, 'the proxy to close the connection');
  }

  /** Resolves true if the connection closes within `ms`, false if it is still open then. */
  closesWithin(ms: number): Promise<boolean> {
    return this.waitClosed(ms).then(
      () => true,
      () => false,
    );
  }

  close(): void {
    this.socket.destroy();
  }

  private socketOnFrame(view: Buffer): void {
    const h = readHeader(view);
    if (this.sink !== null && this.sink(view, h)) return;
    const frame = Buffer.from(view);
    this.frames.push(frame);
    if (
      this.autoPong &&
      h.prog === KEEPALIVE_PROGRAM &&
      h.type === VIR_NET_MESSAGE &&
      h.proc === KEEPALIVE_PROC_PING
    ) {
      this.write(KEEPALIVE_PONG);
    }
    const i = this.waiters.findIndex((w) => w.pred(frame, h));
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
}

/** `p`, or a rejection naming `what` if it takes longer than `ms` (the timer never outlives it). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// ---- Bytes libvirt defines, written out independently of src/ ----

/** The 28-byte keepalive messages of NOTES §2 (serial 0, empty payload). */
export const KEEPALIVE_PING = Buffer.from(
  '0000001c6b65657000000001000000010000000200000000' + '00000000',
  'hex',
);
export const KEEPALIVE_PONG = Buffer.from(
  '0000001c6b65657000000001000000020000000200000000' + '00000000',
  'hex',
);

/** XDR words (big-endian 32-bit), each given as a signed or unsigned number. */
export function words(...ws: number[]): Buffer {
  const b = Buffer.alloc(ws.length * 4);
  ws.forEach((w, i) => (w < 0 ? b.writeInt32BE(w, i * 4) : b.writeUInt32BE(w, i * 4)));
  return b;
}

/** XDR string: length word, bytes, zero padding. */
export function xdrString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const pad = (4 - (bytes.length % 4)) % 4;
  return Buffer.concat([words(bytes.length), bytes, Buffer.alloc(pad)]);
}

/** XDR optional string (`remote_string`): presence word, then the string. */
export function xdrOptString(s: string | null): Buffer {
  return s === null ? words(0) : Buffer.concat([words(1), xdrString(s)]);
}

export interface ExpectedError {
  code: number;
  domain: number;
  /** The whole human text. */
  message: string;
  /** virErrorMsgStrings template with the detail as %1$s (or "%s" for bare-detail codes). */
  str1: string;
  /** The detail text. */
  str2: string;
  int1?: number;
}

/** libvirt's `remote_error` payload, field by field (NOTES §1.5). */
export function remoteErrorPayload(e: ExpectedError): Buffer {
  return Buffer.concat([
    words(e.code, e.domain),
    xdrOptString(e.message),
    words(2 /* level ERROR */, 0 /* dom absent */),
    xdrOptString(e.str1),
    xdrOptString(e.str2),
    words(0 /* str3 absent */, e.int1 ?? -1, -1 /* int2 */, 0 /* net absent */),
  ]);
}

/** VIR_ERR_RPC (39) in VIR_FROM_RPC (7): template "%s". */
export function rpcErr(detail: string): ExpectedError {
  return { code: 39, domain: 7, message: detail, str1: '%s', str2: detail };
}

/** VIR_ERR_INTERNAL_ERROR (1) in VIR_FROM_RPC (7). */
export function internalErr(detail: string): ExpectedError {
  return {
    code: 1,
    domain: 7,
    message: `internal error: ${detail}`,
    str1: 'internal error: %1$s',
    str2: detail,
  };
}

/** The complete REPLY/ERROR frame libvirt sends for a call with header `call`. */
export function errorReplyFrame(call: Buffer | MessageHeader, e: ExpectedError): Buffer {
  const h = Buffer.isBuffer(call) ? readHeader(call) : call;
  const payload = remoteErrorPayload(e);
  return Buffer.concat([words(28 + payload.length, h.prog, h.vers, h.proc, 1, h.serial, 1), payload]);
}

/** The complete REPLY/OK frame for a call, with an optional payload. */
export function okReplyFrame(call: Buffer | MessageHeader, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.isBuffer(call) ? readHeader(call) : call;
  return Buffer.concat([words(28 + payload.length, h.prog, h.vers, h.proc, 1, h.serial, 0), payload]);
}

/** Decodes a REPLY/ERROR payload far enough for readable assertion messages. */
export function describeFrame(frame: Buffer): string {
  const h = readHeader(frame);
  let text = '';
  if (h.status === 1 && frame.length >= 40 && frame.readUInt32BE(36) === 1) {
    const len = frame.readUInt32BE(40);
    text = ` "${frame.subarray(44, 44 + len).toString('utf8')}"`;
  }
  return `prog=${h.prog} vers=${h.vers} proc=${h.proc} type=${h.type} serial=${h.serial} status=${h.status} len=${frame.length}${text}`;
}
