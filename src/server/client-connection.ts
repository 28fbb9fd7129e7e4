// Server layer: one client connection. An explicit state machine handles the handshake (auth,
// keepalive feature, open) locally; once open, frames of the remote, qemu and lxc programs are
// forwarded to the backend leg as the bytes they came in, except the few procedures a proxy must
// answer itself (NOTES §3.2, §10.9). Backpressure is coupled in both directions.

import type net from 'node:net';
import { CodedError } from '../protocol/coded-error.js';
import {
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  LXC_PROGRAM,
  QEMU_PROGRAM,
  REMOTE_AUTH_NONE,
  REMOTE_AUTH_POLKIT,
  REMOTE_AUTH_SASL,
  REMOTE_PROC_AUTH_LIST,
  REMOTE_PROC_AUTH_POLKIT,
  REMOTE_PROC_AUTH_SASL_INIT,
  REMOTE_PROC_AUTH_SASL_START,
  REMOTE_PROC_AUTH_SASL_STEP,
  REMOTE_PROC_CONNECT_CLOSE,
  REMOTE_PROC_CONNECT_EVENT_CONNECTION_CLOSED,
  REMOTE_PROC_CONNECT_GET_URI,
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROC_CONNECT_REGISTER_CLOSE_CALLBACK,
  REMOTE_PROC_CONNECT_SET_IDENTITY,
  REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
  REMOTE_PROC_CONNECT_UNREGISTER_CLOSE_CALLBACK,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  VIR_CONNECT_CLOSE_REASON_EOF,
  VIR_CONNECT_CLOSE_REASON_ERROR,
  VIR_CONNECT_CLOSE_REASON_KEEPALIVE,
  VIR_CONNECT_RO,
  VIR_DRV_FEATURE_FD_PASSING,
  VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
  VIR_DRV_FEATURE_REMOTE_CLOSE_CALLBACK,
  VIR_DRV_FEATURE_REMOTE_EVENT_CALLBACK,
  VIR_ERR_AUTH_FAILED,
  VIR_ERR_INTERNAL_ERROR,
  VIR_FROM_RPC,
  VIR_NET_CALL,
  VIR_NET_CALL_WITH_FDS,
  VIR_NET_CONTINUE,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_REPLY_WITH_FDS,
  VIR_NET_STREAM,
  VIR_NET_STREAM_HOLE,
} from '../protocol/constants.js';
import { FrameDecoder, type PieceSink } from '../protocol/frame-decoder.js';
import {
  OFF_PROC,
  OFF_PROG,
  OFF_SERIAL,
  OFF_STATUS,
  OFF_TYPE,
  OFF_VERS,
  encodeMessage,
  framePayload,
  readHeader,
  type MessageHeader,
} from '../protocol/header.js';
import {
  decodeConnectOpenArgs,
  decodeInt,
  decodeSetIdentityArgs,
  encodeAuthList,
  encodeInt,
  encodeString,
} from '../protocol/payloads.js';
import type { ProgramInfo } from '../protocol/procedure-types.js';
import { LXC_PROGRAM_INFO, QEMU_PROGRAM_INFO, REMOTE_PROGRAM_INFO } from '../protocol/procedures.gen.js';
import { remoteError, rpcError, type RemoteError } from '../protocol/remote-error.js';
import { startReading, type ChunkSink, type ChunkSource } from '../transport/chunk-source.js';
import { FdQueue, closeFds } from '../transport/fd-queue.js';
import { OrderedWriter } from '../transport/ordered-writer.js';
import { SecurityLayerWriter, type SecurityLayer } from '../transport/sasl-layer.js';
import { validateIdentityParams } from './identity-params.js';
import { Keepalive } from './keepalive.js';
import { PING_FRAME, PONG_FRAME, errorReply, okReply } from './messages.js';

export type ClientState = 'need-auth' | 'ready' | 'opening' | 'open' | 'closing' | 'closed';

const TRANSITIONS: Record<ClientState, readonly ClientState[]> = {
  'need-auth': ['ready', 'closing', 'closed'],
  ready: ['opening', 'closing', 'closed'],
  opening: ['open', 'ready', 'closing', 'closed'],
  open: ['closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

/** Procedures a client may call before it has authenticated (NOTES §3.1). */
const PRE_AUTH_PROCS = new Set([
  REMOTE_PROC_AUTH_LIST,
  REMOTE_PROC_AUTH_SASL_INIT,
  REMOTE_PROC_AUTH_SASL_START,
  REMOTE_PROC_AUTH_SASL_STEP,
  REMOTE_PROC_AUTH_POLKIT,
]);

/** Remote procedures that, once open, are not simply forwarded. */
const LOCAL_WHEN_OPEN = new Uint8Array(REMOTE_PROGRAM_INFO.procs.length);
for (const p of [
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROC_CONNECT_CLOSE,
  REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
  REMOTE_PROC_AUTH_LIST,
  REMOTE_PROC_AUTH_SASL_INIT,
  REMOTE_PROC_AUTH_SASL_START,
  REMOTE_PROC_AUTH_SASL_STEP,
  REMOTE_PROC_AUTH_POLKIT,
  REMOTE_PROC_CONNECT_GET_URI,
  REMOTE_PROC_CONNECT_SET_IDENTITY,
  REMOTE_PROC_CONNECT_REGISTER_CLOSE_CALLBACK,
  REMOTE_PROC_CONNECT_UNREGISTER_CLOSE_CALLBACK,
]) {
  LOCAL_WHEN_OPEN[p] = 1;
}

/** Remote procedures about secondary objects fail with "connection not open" before open. */
const SECONDARY_RE =
  /NETWORK|STORAGE|NODE_DEVICE|NODE_LIST_DEVICES|NODE_NUM_OF_DEVICES|SECRET|NWFILTER|INTERFACE/;

function programFor(prog: number, vers: number): ProgramInfo | null {
  if (vers !== 1) return null;
  if (prog === REMOTE_PROGRAM) return REMOTE_PROGRAM_INFO;
  if (prog === QEMU_PROGRAM) return QEMU_PROGRAM_INFO;
  if (prog === LXC_PROGRAM) return LXC_PROGRAM_INFO;
  return null;
}

/** The per-driver daemon leg, as the client connection sees it. */
export interface BackendLeg {
  write(frame: Buffer): boolean;
  /** Writes a CALL_WITH_FDS frame followed by its fds (the leg closes our copies). */
  writeWithFds(frame: Buffer, fds: number[]): void;
  attach(
    onFrame: (frame: Buffer, fds: number[] | null) => void,
    onClose: (reason: 'eof' | 'error' | 'keepalive' | 'client') => void,
    onPiece?: PieceSink,
    acceptsPieces?: () => boolean,
  ): void;
  /** A piece of a frame relayed as it arrives (see OrderedWriter.writePiece). */
  writePiece(piece: Buffer, last: boolean): boolean;
  close(): void;
  pause(): void;
  resume(): void;
  onDrain(cb: () => void): void;
}

export interface ServiceInfo {
  /** 'rw' / 'ro' unix sockets, or 'tcp' / 'tls'. */
  name: string;
  readonly: boolean;
  auth: 'none' | 'polkit' | 'sasl';
  transport: 'unix' | 'tcp' | 'tls';
}

export interface ClientLimits {
  keepaliveInterval: number;
  keepaliveCount: number;
  maxClientRequests: number;
}

export interface ClientHooks {
  /** Opens the backend leg for a CONNECT_OPEN; rejects with an error carrying `.remote`. */
  openBackend(
    client: ClientConnection,
    name: string | null,
    readonly: boolean,
  ): Promise<{ leg: BackendLeg; uri: string }>;
  /** Checks polkit for the client; null when authorised. */
  authorizePolkit(client: ClientConnection): Promise<RemoteError | null>;
  closed(client: ClientConnection, reason: string): void;
  log(level: 'debug' | 'info' | 'warn' | 'error', msg: string): void;
  /** Runs AUTH_SASL_INIT/START/STEP for the client (absent: SASL calls fail as unsupported). */
  sasl?(client: ClientConnection, proc: number, payload: Buffer): SaslOutcome;
  /** The client left 'need-auth'; its server may now admit connections queued at a limit. */
  authenticated?(client: ClientConnection): void;
}

/** What one SASL call produced: a reply body or an error, and on success the authenticated user. */
export interface SaslOutcome {
  payload: Buffer | null;
  error: RemoteError | null;
  /** Set when this reply completes authentication; `layer` wraps every later byte (SSF > 0). */
  done: { userName: string; layer: SecurityLayer | null } | null;
}

/** Reading stopped because too much is queued for the backend (see `queue`). */
const PAUSE_THROTTLE = 1;
const PAUSE_OPENING = 4;
/** After CONNECT_CLOSE nothing more is read. */
const PAUSE_CLOSING = 8;
/** The client is not reading what the proxy answers itself: read no more until its socket drains. */
const PAUSE_OUTPUT_FULL = 16;
/** Bytes of queued output past which the proxy stops reading a client that does not read its local replies. */
const LOCAL_REPLY_HIGH_WATER = 65536;

/**
 * Bounds on what a client may have queued beyond max_client_requests (or while its backend leg is
 * full) before the proxy stops reading it. Past them the kernel buffers push back, as in libvirt;
 * below them the proxy keeps reading, so keepalive PINGs are still seen and answered.
 */
export const QUEUE_MAX_BYTES = 1024 * 1024;
export const QUEUE_MAX_FRAMES = 1024;

export class ClientConnection implements ChunkSink {
  state: ClientState;
  readonly connectedAt = Date.now();
  readonly: boolean;
  uri: string | null = null;
  /** Identity as set by CONNECT_SET_IDENTITY (replaces the socket-derived one). */
  identityOverride: ReturnType<typeof decodeSetIdentityArgs>['params'] | null = null;
  /** Peer uid on unix sockets, when known. */
  peerUid: number | null = null;
  /** Verified client-certificate DN on the TLS service (identity x509-distinguished-name). */
  x509DName: string | null = null;
  /** SASL user name once SASL authentication completed (identity sasl-user-name). */
  saslUserName: string | null = null;
  private backend: BackendLeg | null = null;
  private readonly decoder: FrameDecoder;
  /** Forwarded calls awaiting their reply: serial → (program index << 24 | proc). */
  private readonly inflight = new Map<number, number>();
  private held: Buffer[] = [];
  private readonly source: ChunkSource;
  private out: Pick<OrderedWriter, 'write' | 'writeWithFds'>;
  /** The SASL security layer, once one is negotiated; null keeps the plain paths untouched. */
  private layer: SecurityLayer | null = null;
  private readonly fdQueue = new FdQueue();
  /** A CALL_WITH_FDS frame waiting for its fds to arrive. */
  private fdFrame: { frame: Buffer; n: number; discard: boolean } | null = null;
  private pauseMask = 0;
  /**
   * Frames read while the request limit is reached or the backend leg is full, kept (as copies) in
   * arrival order until they may be forwarded; with their fds for CALL_WITH_FDS.
   */
  private queue: Array<{ frame: Buffer; fds: number[] | null }> = [];
  private queuedBytes = 0;
  private backendFull = false;
  private limitWarned = false;
  private closeCallback = false;
  /** A CONNECT_CLOSE waiting for the replies to earlier calls before it is answered. */
  private closingCall: MessageHeader | null = null;
  readonly keepalive: Keepalive;
  closeReason = 'closed by peer';

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    readonly service: ServiceInfo,
    private readonly limits: ClientLimits,
    private readonly hooks: ClientHooks,
  ) {
    this.readonly = service.readonly;
    this.state = service.auth === 'none' ? 'ready' : 'need-auth';
    this.decoder = new FrameDecoder(
      (f) => this.clientOnFrame(f),
      (e) => this.protocolError(e),
    );
    this.decoder.setCutThrough((head) => this.clientCutThrough(head));
    this.keepalive = new Keepalive({
      interval: limits.keepaliveInterval,
      count: limits.keepaliveCount,
      sendPing: () => this.send(PING_FRAME),
      onDead: () => {
        if (this.pauseMask !== 0 && this.state !== 'closed') {
          // We stopped reading this client (queue full, open or auth pending): its silence is ours.
          this.keepalive.start();
          return;
        }
        this.closeReason = 'keepalive timeout';
        this.destroy();
      },
    });
    this.out = new OrderedWriter(socket, service.transport === 'unix');
    this.source = startReading(socket, this, service.transport === 'unix');
    socket.on('error', (e) => {
      this.closeReason = `socket error: ${e.message}`;
    });
    socket.on('close', () => this.socketOnClose());
    socket.on('drain', () => {
      this.unpause(PAUSE_OUTPUT_FULL);
      this.backendResume();
    });
  }

  get authenticated(): boolean {
    return this.state !== 'need-auth';
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Frames read but held back by the request limit or a full backend leg. */
  get queuedCount(): number {
    return this.queue.length;
  }

  transition(next: ClientState): void {
    if (this.state === next) return;
    if (!TRANSITIONS[this.state].includes(next)) {
      throw new CodedError('ESTATE', `client ${this.id}: invalid transition ${this.state} -> ${next}`);
    }
    const was = this.state;
    this.state = next;
    if (was === 'need-auth' && next === 'ready') this.hooks.authenticated?.(this);
  }

  /** ChunkSink: bytes (and passed fds) read from the client socket. */
  onChunk(chunk: Buffer, fds: number[] | null): void {
    if (this.layer !== null) {
      try {
        chunk = this.layer.decode(chunk);
      } catch (e) {
        return this.protocolError(new CodedError('ESASL', `SASL security layer: ${(e as Error).message}`));
      }
    }
    if (fds !== null) {
      this.fdQueue.add(fds);
      if (this.fdFrame !== null) this.fdsArrived();
    }
    this.decoder.push(chunk);
    if (this.fdFrame !== null && this.decoder.skipping === 0 && this.fdQueue.length < this.fdFrame.n) {
      // The dummy bytes came without their fds.
      this.protocolError(new CodedError('EFDS', 'file descriptors announced by a message did not arrive'));
    }
  }

  /** A CALL_WITH_FDS: its fds follow as one dummy byte each (NOTES §1.8). */
  private callWithFds(frame: Buffer, discard = false): void {
    const n = frame.length >= 32 ? frame.readUInt32BE(28) : 0;
    if (n > 32 || frame.length < 32) {
      return this.protocolError(new CodedError('EFDS', `bad file descriptor count in message: ${n}`));
    }
    if (!this.source.passesFds) {
      return this.protocolError(
        new CodedError('EFDS', 'file descriptors cannot be passed over this transport'),
      );
    }
    this.decoder.skip(n);
    const fds = this.fdQueue.take(n);
    if (fds !== null) return discard ? closeFds(fds) : this.dispatchWithFds(frame, fds);
    this.fdFrame = { frame: Buffer.from(frame), n, discard };
  }

  private fdsArrived(): void {
    const f = this.fdFrame;
    if (f === null) return;
    const fds = this.fdQueue.take(f.n);
    if (fds === null) return;
    this.fdFrame = null;
    if (f.discard) closeFds(fds);
    else this.dispatchWithFds(f.frame, fds);
    this.replayHeld();
  }

  private dispatchWithFds(frame: Buffer, fds: number[]): void {
    const b = this.backend;
    if (this.state !== 'open' || b === null) {
      closeFds(fds);
      return this.replyError(
        frame,
        remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, 'hypervisor connection not open'),
      );
    }
    if (this.mustQueue(true)) return this.enqueue(frame, fds);
    this.track(frame);
    b.writeWithFds(frame, fds);
  }

  private clientOnFrame(frame: Buffer): void {
    // After CONNECT_CLOSE the client gets its outstanding replies but nothing else is read.
    if (this.closingCall !== null) return;
    // Held back while an fd-carrying call waits for its fds, or while the client is not reading
    // what we already owe it (the rest of the chunk at hand; reading itself is paused).
    if (this.fdFrame !== null || (this.pauseMask & PAUSE_OUTPUT_FULL) !== 0) {
      this.held.push(Buffer.from(frame));
      return;
    }
    this.keepalive.received();
    const prog = frame.readUInt32BE(OFF_PROG);
    const type = frame.readInt32BE(OFF_TYPE);
    if (
      prog === KEEPALIVE_PROGRAM &&
      type === VIR_NET_MESSAGE &&
      frame.readUInt32BE(OFF_VERS) === KEEPALIVE_PROTOCOL_VERSION
    ) {
      if (frame.readInt32BE(OFF_PROC) === KEEPALIVE_PROC_PING) this.send(PONG_FRAME);
      return;
    }
    if (this.state === 'open') {
      this.dispatchOpen(frame, prog, type);
      return;
    }
    if (this.state === 'opening') {
      this.held.push(frame);
      return;
    }
    if (this.state === 'need-auth' || this.state === 'ready') this.dispatchPreOpen(frame, prog, type);
  }

  /** Hot path: header checks, then bytes to the backend. */
  private dispatchOpen(frame: Buffer, prog: number, type: number): void {
    if (type === VIR_NET_CALL) {
      const info = programFor(prog, frame.readUInt32BE(OFF_VERS));
      if (info === null) return this.replyError(frame, this.unknownProgram(frame));
      const proc = frame.readInt32BE(OFF_PROC);
      const pinfo = proc >= 0 ? info.procs[proc] : undefined;
      if (frame.readInt32BE(OFF_STATUS) !== VIR_NET_OK) {
        return this.replyError(frame, rpcError(`Unexpected message status ${frame.readInt32BE(OFF_STATUS)}`));
      }
      if (pinfo === undefined || pinfo.event)
        return this.replyError(frame, rpcError(`unknown procedure: ${proc}`));
      if (prog === REMOTE_PROGRAM && LOCAL_WHEN_OPEN[proc] === 1) return this.dispatchLocalOpen(frame, proc);
      this.forwardCall(frame);
      return;
    }
    if (type === VIR_NET_STREAM || type === VIR_NET_STREAM_HOLE) {
      if (programFor(prog, frame.readUInt32BE(OFF_VERS)) !== null) this.forwardStream(frame);
      return;
    }
    if (type === VIR_NET_CALL_WITH_FDS) return this.openCallWithFds(frame, prog);
    // REPLY, MESSAGE, REPLY_WITH_FDS from a client: libvirt drops them.
    this.hooks.log('debug', `client ${this.id}: dropped unexpected message type ${type}`);
  }

  private openCallWithFds(frame: Buffer, prog: number): void {
    const info = programFor(prog, frame.readUInt32BE(OFF_VERS));
    const proc = frame.readInt32BE(OFF_PROC);
    const pinfo = info !== null && proc >= 0 ? info.procs[proc] : undefined;
    const status = frame.readInt32BE(OFF_STATUS);
    if (info === null || pinfo === undefined || pinfo.event || status !== VIR_NET_OK) {
      // Consume the fds anyway so the byte stream stays in step, then refuse.
      const err =
        info === null
          ? this.unknownProgram(frame)
          : status !== VIR_NET_OK
            ? rpcError(`Unexpected message status ${status}`)
            : rpcError(`unknown procedure: ${proc}`);
      this.replyError(frame, err);
      this.callWithFds(frame, true);
      return;
    }
    if (prog === REMOTE_PROGRAM && LOCAL_WHEN_OPEN[proc] === 1) {
      // libvirt dispatches a CALL_WITH_FDS like a CALL, so these stay local too (a forwarded
      // SET_IDENTITY would replace the identity the backend authorises): run it as a plain call
      // and drop the fds.
      this.dispatchLocalOpen(asPlainCall(frame), proc);
      this.callWithFds(frame, true);
      return;
    }
    this.callWithFds(frame);
  }

  private track(frame: Buffer): void {
    const prog = frame.readUInt32BE(OFF_PROG);
    this.inflight.set(
      frame.readUInt32BE(OFF_SERIAL),
      (prog === REMOTE_PROGRAM ? 0 : prog === QEMU_PROGRAM ? 1 : 2) * 0x1000000 + frame.readInt32BE(OFF_PROC),
    );
  }

  /**
   * True when a frame must wait: something is already waiting (order is kept), the backend leg is
   * full, or (for a call) max_client_requests calls are in flight.
   */
  private mustQueue(call: boolean): boolean {
    return (
      this.queue.length !== 0 ||
      this.backendFull ||
      (call && this.inflight.size >= this.limits.maxClientRequests)
    );
  }

  private forwardCall(frame: Buffer): void {
    if (this.mustQueue(true)) return this.enqueue(frame, null);
    this.track(frame);
    this.forward(frame);
  }

  private forwardStream(frame: Buffer): void {
    if (this.mustQueue(false)) return this.enqueue(frame, null);
    this.forward(frame);
  }

  private forward(frame: Buffer): void {
    const b = this.backend;
    if (b !== null && !b.write(frame)) this.backendFull = true;
  }

  /**
   * Cut-through for a long client STREAM frame (volume upload): relayed to the backend piece by
   * piece as it arrives, when nothing waits ahead of it. Anything else is assembled as usual.
   */
  private clientCutThrough(head: Buffer): PieceSink | null {
    const b = this.backend;
    if (
      b === null ||
      this.state !== 'open' ||
      this.fdFrame !== null ||
      this.closingCall !== null ||
      this.mustQueue(false) ||
      head.readInt32BE(OFF_TYPE) !== VIR_NET_STREAM ||
      head.readInt32BE(OFF_STATUS) !== VIR_NET_CONTINUE ||
      programFor(head.readUInt32BE(OFF_PROG), head.readUInt32BE(OFF_VERS)) === null
    ) {
      return null;
    }
    this.keepalive.received();
    return (piece, last) => {
      if (this.backend === b && !b.writePiece(piece, last)) this.backendFull = true;
    };
  }

  /** Cut-through the other way: a long backend STREAM frame (download) straight to the client. */
  private backendPiece(piece: Buffer, last: boolean): void {
    if (this.state !== 'open') return;
    const out = this.out;
    if (!(out instanceof OrderedWriter)) return;
    if (!out.writePiece(piece, last)) this.backend?.pause();
  }

  /** Whether backend frames may come in pieces: not when a security layer wraps the output. */
  get acceptsPieces(): boolean {
    return this.out instanceof OrderedWriter;
  }

  /**
   * Where libvirt stops reading a client at max_client_requests, the proxy keeps reading and holds
   * further frames here, so keepalive PINGs are still answered; it stops reading only once the
   * queue passes QUEUE_MAX_BYTES / QUEUE_MAX_FRAMES.
   */
  private enqueue(frame: Buffer, fds: number[] | null): void {
    if (!this.limitWarned && this.inflight.size >= this.limits.maxClientRequests) {
      this.limitWarned = true;
      this.hooks.log(
        'warn',
        `client ${this.id} reached max_client_requests (${this.limits.maxClientRequests}); ` +
          'further calls wait in the proxy until replies come back',
      );
    }
    // A copy: the frame may be a view into a large socket chunk that would otherwise stay alive.
    this.queue.push({ frame: Buffer.from(frame), fds });
    this.queuedBytes += frame.length;
    if (this.queuedBytes >= QUEUE_MAX_BYTES || this.queue.length >= QUEUE_MAX_FRAMES) {
      this.pause(PAUSE_THROTTLE);
    }
  }

  /** Forwards queued frames while the request limit and the backend leg allow. */
  private drainQueue(): void {
    const b = this.backend;
    if (b === null) return;
    while (this.queue.length !== 0 && !this.backendFull) {
      const head = this.queue[0] as { frame: Buffer; fds: number[] | null };
      const type = head.frame.readInt32BE(OFF_TYPE);
      const call = type === VIR_NET_CALL || type === VIR_NET_CALL_WITH_FDS;
      if (call && this.inflight.size >= this.limits.maxClientRequests) break;
      this.queue.shift();
      this.queuedBytes -= head.frame.length;
      if (call) this.track(head.frame);
      if (head.fds !== null) b.writeWithFds(head.frame, head.fds);
      else this.forward(head.frame);
    }
    if (this.queuedBytes < QUEUE_MAX_BYTES / 2 && this.queue.length < QUEUE_MAX_FRAMES / 2) {
      this.unpause(PAUSE_THROTTLE);
    }
  }

  private dropQueue(): void {
    for (const q of this.queue) if (q.fds !== null) closeFds(q.fds);
    this.queue = [];
    this.queuedBytes = 0;
  }

  private backendOnFrame(frame: Buffer, fds: number[] | null): void {
    if (this.state !== 'open') {
      if (fds !== null) closeFds(fds);
      return;
    }
    if (fds !== null) return this.replyWithFds(frame, fds);
    const type = frame.readInt32BE(OFF_TYPE);
    if (type === VIR_NET_REPLY || type === VIR_NET_REPLY_WITH_FDS) {
      const serial = frame.readUInt32BE(OFF_SERIAL);
      if (this.inflight.delete(serial) && this.queue.length !== 0) this.drainQueue();
    }
    if (!this.out.write(frame)) this.backend?.pause();
    this.answerCloseWhenIdle();
  }

  private replyWithFds(frame: Buffer, fds: number[]): void {
    const serial = frame.readUInt32BE(OFF_SERIAL);
    if (this.inflight.delete(serial) && this.queue.length !== 0) this.drainQueue();
    if (!this.source.passesFds) {
      closeFds(fds);
      this.send(
        errorReply(readHeader(frame), rpcError('file descriptors cannot be passed over this transport')),
      );
      return;
    }
    this.out.writeWithFds(frame, fds);
    this.answerCloseWhenIdle();
  }

  /** Answers a pending CONNECT_CLOSE once no earlier call awaits its reply, then closes. */
  private answerCloseWhenIdle(): void {
    const h = this.closingCall;
    if (h === null || this.inflight.size > 0 || this.queue.length > 0) return;
    this.closingCall = null;
    this.send(okReply(h));
    this.finishClose();
    // Read again only to notice the client's EOF; a closing client's frames are dropped.
    this.unpause(PAUSE_CLOSING);
  }

  private backendResume(): void {
    this.backend?.resume();
  }

  private backendOnClose(reason: 'eof' | 'error' | 'keepalive' | 'client'): void {
    this.backend = null;
    if (this.state === 'closed' || this.state === 'closing') return;
    this.closeReason = `backend connection lost (${reason})`;
    this.hooks.log(
      'warn',
      `client ${this.id}: backend for ${this.uri ?? '?'} closed (${reason}); closing client`,
    );
    const err = remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, 'client socket is closed');
    for (const [serial, packed] of this.inflight) {
      const pidx = Math.floor(packed / 0x1000000);
      const prog = pidx === 0 ? REMOTE_PROGRAM : pidx === 1 ? QEMU_PROGRAM : LXC_PROGRAM;
      this.send(
        errorReply(
          { prog, vers: 1, proc: packed % 0x1000000, type: VIR_NET_CALL, serial, status: VIR_NET_OK },
          err,
        ),
      );
    }
    this.inflight.clear();
    for (const q of this.queue) {
      const h = readHeader(q.frame);
      if (h.type === VIR_NET_CALL || h.type === VIR_NET_CALL_WITH_FDS) this.send(errorReply(h, err));
    }
    this.dropQueue();
    if (this.closingCall !== null) {
      this.send(okReply(this.closingCall));
      this.closingCall = null;
    }
    if (this.closeCallback) {
      const why =
        reason === 'keepalive'
          ? VIR_CONNECT_CLOSE_REASON_KEEPALIVE
          : reason === 'error'
            ? VIR_CONNECT_CLOSE_REASON_ERROR
            : VIR_CONNECT_CLOSE_REASON_EOF;
      this.send(
        encodeMessage(
          {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_PROTOCOL_VERSION,
            proc: REMOTE_PROC_CONNECT_EVENT_CONNECTION_CLOSED,
            type: VIR_NET_MESSAGE,
            serial: 1,
            status: VIR_NET_OK,
          },
          encodeInt(why),
        ),
      );
    }
    this.transition('closing');
    this.socket.end();
    // Whatever paused reading (a full queue, a pending close) no longer matters, and only reading
    // lets us see the client's EOF and release the connection.
    this.unpause(this.pauseMask);
  }

  private dispatchLocalOpen(frame: Buffer, proc: number): void {
    const h = readHeader(frame);
    switch (proc) {
      case REMOTE_PROC_CONNECT_OPEN:
        return this.replyError(
          frame,
          remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, 'connection already open'),
        );
      case REMOTE_PROC_CONNECT_CLOSE:
        // Answered here, but only after the replies to every earlier call: a daemon runs calls
        // concurrently and would answer a forwarded CONNECT_CLOSE first. Read nothing more meanwhile.
        this.closingCall = h;
        this.pause(PAUSE_CLOSING);
        this.answerCloseWhenIdle();
        return;
      case REMOTE_PROC_CONNECT_SUPPORTS_FEATURE:
        return this.supportsFeature(frame, h, true);
      case REMOTE_PROC_CONNECT_GET_URI:
        this.send(okReply(h, encodeString(this.uri ?? '')));
        return;
      case REMOTE_PROC_CONNECT_SET_IDENTITY:
        return this.setIdentity(frame, h);
      case REMOTE_PROC_CONNECT_REGISTER_CLOSE_CALLBACK:
        this.closeCallback = true;
        return this.forwardCall(frame);
      case REMOTE_PROC_CONNECT_UNREGISTER_CLOSE_CALLBACK:
        this.closeCallback = false;
        return this.forwardCall(frame);
      default:
        return this.authProc(frame, h, proc);
    }
  }

  private dispatchPreOpen(frame: Buffer, prog: number, type: number): void {
    if (type !== VIR_NET_CALL && type !== VIR_NET_CALL_WITH_FDS) {
      this.hooks.log('debug', `client ${this.id}: dropped message type ${type} before open`);
      return;
    }
    if (type === VIR_NET_CALL_WITH_FDS) {
      // Nothing before open takes fds: consume and drop them (keeping the byte stream in step),
      // then handle the call as the CALL libvirt would treat it as.
      this.callWithFds(frame, true);
      if (this.state === 'closed' || this.state === 'closing' || this.socket.destroyed) return;
      frame = asPlainCall(frame);
    }
    const h = readHeader(frame);
    const info = programFor(prog, h.vers);
    if (info === null) return this.replyError(frame, this.unknownProgram(frame));
    if (h.status !== VIR_NET_OK)
      return this.replyError(frame, rpcError(`Unexpected message status ${h.status}`));
    const pinfo = h.proc >= 0 ? info.procs[h.proc] : undefined;
    if (pinfo === undefined || pinfo.event)
      return this.replyError(frame, rpcError(`unknown procedure: ${h.proc}`));
    const remote = prog === REMOTE_PROGRAM;
    if (this.state === 'need-auth' && !(remote && PRE_AUTH_PROCS.has(h.proc))) {
      return this.replyError(frame, rpcError('authentication required'));
    }
    if (remote) {
      switch (h.proc) {
        case REMOTE_PROC_CONNECT_OPEN:
          return this.connectOpen(frame, h);
        case REMOTE_PROC_CONNECT_CLOSE:
          this.send(okReply(h));
          return this.finishClose();
        case REMOTE_PROC_CONNECT_SUPPORTS_FEATURE:
          return this.supportsFeature(frame, h, false);
        default:
          if (PRE_AUTH_PROCS.has(h.proc)) return this.authProc(frame, h, h.proc);
      }
    }
    const what =
      remote && SECONDARY_RE.test(pinfo.name) && !pinfo.name.startsWith('REMOTE_PROC_DOMAIN')
        ? 'connection not open'
        : 'hypervisor connection not open';
    this.replyError(frame, remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, what));
  }

  private authProc(frame: Buffer, h: MessageHeader, proc: number): void {
    const authFailed = remoteError(VIR_ERR_AUTH_FAILED, VIR_FROM_RPC, 'authentication failed');
    if (proc === REMOTE_PROC_AUTH_LIST) {
      if (this.state !== 'need-auth') {
        this.send(okReply(h, encodeAuthList([REMOTE_AUTH_NONE])));
        return;
      }
      if (this.service.auth === 'polkit' && this.peerUid === 0) {
        // Root needs no polkit check, as in libvirt.
        this.transition('ready');
        this.send(okReply(h, encodeAuthList([REMOTE_AUTH_NONE])));
        return;
      }
      const t =
        this.service.auth === 'polkit'
          ? REMOTE_AUTH_POLKIT
          : this.service.auth === 'sasl'
            ? REMOTE_AUTH_SASL
            : REMOTE_AUTH_NONE;
      this.send(okReply(h, encodeAuthList([t])));
      return;
    }
    if (proc === REMOTE_PROC_AUTH_POLKIT && this.state === 'need-auth' && this.service.auth === 'polkit') {
      this.pause(PAUSE_OPENING);
      this.hooks.authorizePolkit(this).then(
        (err) => {
          if (this.state === 'closed' || this.state === 'closing') return;
          this.unpause(PAUSE_OPENING);
          if (err !== null) {
            this.send(errorReply(h, err));
            return;
          }
          this.transition('ready');
          this.send(okReply(h, encodeInt(1)));
        },
        () => {
          this.unpause(PAUSE_OPENING);
          this.send(errorReply(h, authFailed));
        },
      );
      return;
    }
    const sasl = this.hooks.sasl;
    if (
      sasl !== undefined &&
      (proc === REMOTE_PROC_AUTH_SASL_INIT ||
        proc === REMOTE_PROC_AUTH_SASL_START ||
        proc === REMOTE_PROC_AUTH_SASL_STEP)
    ) {
      const r = sasl(this, proc, framePayload(frame));
      if (r.error !== null) return this.send(errorReply(h, r.error));
      // The completing reply still goes out in clear; the layer starts with the next byte.
      this.send(okReply(h, r.payload));
      if (r.done !== null) {
        this.saslUserName = r.done.userName;
        if (this.state === 'need-auth') this.transition('ready');
        if (r.done.layer !== null) {
          this.layer = r.done.layer;
          this.out = new SecurityLayerWriter(this.socket, r.done.layer);
        }
      }
      return;
    }
    if (proc === REMOTE_PROC_AUTH_POLKIT) {
      // libvirt fails AUTH_POLKIT on a service without polkit auth without reporting an error,
      // so its client sees the generic one. (A repeat after authentication, which libvirt would
      // check with polkit again, gets the same here.)
      this.send(errorReply(h, UNREPORTED_ERROR));
      return;
    }
    this.send(errorReply(h, authFailed));
  }

  private supportsFeature(frame: Buffer, h: MessageHeader, open: boolean): void {
    let feature: number;
    try {
      feature = decodeInt(framePayload(frame));
    } catch {
      return this.replyError(frame, rpcError('Unable to decode message payload'));
    }
    if (feature === VIR_DRV_FEATURE_PROGRAM_KEEPALIVE) {
      this.keepalive.start();
      this.send(okReply(h, encodeInt(1)));
      return;
    }
    if (!open) {
      return this.replyError(
        frame,
        remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, 'hypervisor connection not open'),
      );
    }
    if (
      feature === VIR_DRV_FEATURE_REMOTE_EVENT_CALLBACK ||
      feature === VIR_DRV_FEATURE_REMOTE_CLOSE_CALLBACK
    ) {
      this.send(okReply(h, encodeInt(1)));
      return;
    }
    if (feature === VIR_DRV_FEATURE_FD_PASSING) {
      this.send(okReply(h, encodeInt(this.source.passesFds ? 1 : 0)));
      return;
    }
    this.forwardCall(frame);
  }

  private setIdentity(frame: Buffer, h: MessageHeader): void {
    let args;
    try {
      args = decodeSetIdentityArgs(framePayload(frame));
    } catch {
      return this.replyError(frame, rpcError('Unable to decode message payload'));
    }
    const err = validateIdentityParams(args.params);
    if (err !== null) return this.replyError(frame, err);
    this.identityOverride = args.params;
    this.send(okReply(h));
  }

  private connectOpen(frame: Buffer, h: MessageHeader): void {
    let args;
    try {
      args = decodeConnectOpenArgs(framePayload(frame));
    } catch {
      return this.replyError(frame, rpcError('Unable to decode message payload'));
    }
    const readonly = this.service.readonly || (args.flags & VIR_CONNECT_RO) !== 0;
    this.transition('opening');
    this.pause(PAUSE_OPENING);
    this.hooks.openBackend(this, args.name, readonly).then(
      ({ leg, uri }) => {
        if (this.state !== 'opening') {
          leg.close();
          return;
        }
        this.backend = leg;
        this.uri = uri;
        this.readonly = readonly;
        this.transition('open');
        this.send(okReply(h));
        leg.onDrain(() => {
          this.backendFull = false;
          this.drainQueue();
        });
        // Last: a leg that closed since its handshake reports it from attach, which closes the
        // client as any backend loss does (and must find it 'open', or the transition throws).
        leg.attach(
          (f, fds) => this.backendOnFrame(f, fds),
          (reason) => this.backendOnClose(reason),
          (piece, last) => this.backendPiece(piece, last),
          () => this.acceptsPieces,
        );
        this.releaseHeld();
      },
      (e: unknown) => {
        if (this.state !== 'opening') return;
        const remote = (e as { remote?: RemoteError }).remote;
        this.hooks.log(
          'info',
          `client ${this.id}: open of ${args.name ?? '<null>'} failed: ${remote?.message ?? String(e)}`,
        );
        this.transition('ready');
        this.send(errorReply(h, remote ?? remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, String(e))));
        this.releaseHeld();
      },
    );
  }

  private releaseHeld(): void {
    this.unpause(PAUSE_OPENING);
    this.replayHeld();
  }

  /** Dispatches held frames in order until something makes the client wait again. */
  private replayHeld(): void {
    if (this.held.length === 0) return;
    const held = this.held;
    this.held = [];
    for (let i = 0; i < held.length; i++) {
      if (this.state === 'closed' || this.state === 'closing') return;
      if (this.fdFrame !== null || this.state === 'opening' || (this.pauseMask & PAUSE_OUTPUT_FULL) !== 0) {
        // Still waiting: keep the rest, ahead of anything held meanwhile.
        this.held = held.slice(i).concat(this.held);
        return;
      }
      this.clientOnFrame(held[i] as Buffer);
    }
  }

  private unknownProgram(frame: Buffer): RemoteError {
    return rpcError(
      `Cannot find program ${frame.readUInt32BE(OFF_PROG)} version ${frame.readUInt32BE(OFF_VERS)}`,
    );
  }

  private replyError(frame: Buffer, err: RemoteError): void {
    this.send(errorReply(readHeader(frame), err));
  }

  send(frame: Buffer): void {
    if (!this.socket.writable) return;
    // Replies the proxy makes itself (PONGs, errors) cost the client one small frame each; one that
    // never reads them would otherwise grow the write queue without bound. Each queued write also
    // costs Node about a kilobyte of bookkeeping, so these stop reading well before the byte mark.
    if (!this.out.write(frame) || this.socket.writableLength > LOCAL_REPLY_HIGH_WATER) {
      this.pause(PAUSE_OUTPUT_FULL);
    }
  }

  private pause(bit: number): void {
    if (this.pauseMask === 0) this.source.pause();
    this.pauseMask |= bit;
  }

  private unpause(bit: number): void {
    if ((this.pauseMask & bit) === 0) return;
    this.pauseMask &= ~bit;
    if (bit === PAUSE_OUTPUT_FULL) this.replayHeld();
    if (this.pauseMask === 0 && this.state !== 'closed') this.source.resume();
  }

  private protocolError(e: CodedError): void {
    this.closeReason = `protocol error: ${e.message}`;
    this.hooks.log('warn', `client ${this.id}: ${e.message}; closing connection`);
    this.decoder.stop();
    this.destroy();
  }

  private finishClose(): void {
    if (this.state === 'closed') return;
    this.closeReason = 'closed by client (CONNECT_CLOSE)';
    if (this.state !== 'closing') this.transition('closing');
    this.socket.end();
    // Read on, whatever paused us: only reading sees the peer's EOF that completes the close
    // (frames are ignored once closing).
    this.pauseMask = PAUSE_CLOSING;
    this.unpause(PAUSE_CLOSING);
  }

  /** Immediate close (admin disconnect, keepalive death, protocol error). */
  destroy(): void {
    this.socket.destroy();
  }

  private socketOnClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.keepalive.stop();
    this.decoder.stop();
    this.source.close();
    this.fdQueue.closeAll();
    this.dropQueue();
    const b = this.backend;
    this.backend = null;
    b?.close();
    this.hooks.closed(this, this.closeReason);
  }
}

/** What libvirt's daemon sends for a handler that failed without setting an error (NOTES §1.5). */
const UNREPORTED_ERROR: RemoteError = {
  code: VIR_ERR_INTERNAL_ERROR,
  domain: VIR_FROM_RPC,
  message: 'Library function returned error but did not set virError',
  level: 2,
  str1: null,
  str2: null,
  str3: null,
  int1: 0,
  int2: 0,
};

/** A CALL_WITH_FDS frame as the CALL it would be without its fd count word. */
function asPlainCall(frame: Buffer): Buffer {
  return encodeMessage({ ...readHeader(frame), type: VIR_NET_CALL }, frame.subarray(32));
}
