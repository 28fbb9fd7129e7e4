// Admin layer: the "admin" RPC server behind libvirt-admin-sock. Only peers running as the daemon's
// own user get in (others are closed at once, as libvirt does); each connection speaks the ADMIN
// program only and is never forwarded to a backend. The server also describes itself to
// virt-admin, so it implements ManagedServer.

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  ADMIN_PROGRAM,
  ADMIN_PROTOCOL_VERSION,
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  VIR_ERR_INTERNAL_ERROR,
  VIR_ERR_INVALID_ARG,
  VIR_FROM_RPC,
  VIR_NET_CALL,
  VIR_NET_CALL_WITH_FDS,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
} from '../protocol/constants.js';
import type { CodedError } from '../protocol/coded-error.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import { OFF_PROC, OFF_PROG, OFF_STATUS, OFF_TYPE, OFF_VERS, readHeader } from '../protocol/header.js';
import { remoteError, rpcError, type RemoteError } from '../protocol/remote-error.js';
import { adminCallChannel, type AdminCallMessage } from '../server/diagnostics.js';
import { PONG_FRAME, errorReply } from '../server/messages.js';
import { handleAdminCall, noTlsServiceError, type AdminDaemon } from './admin-dispatch.js';
import { VIR_CLIENT_TRANS_UNIX } from './admin-protocol.js';
import {
  ThreadPoolSettings,
  clientInfoParams,
  type ClientLimitsInfo,
  type ManagedClient,
  type ManagedServer,
} from './managed-server.js';
import type { TypedParam } from '../protocol/payloads.js';
import type { LocalPeer } from './rpc-server-view.js';

/** Who is connecting, as far as the admin server needs to know: the same as any local peer. */
export type AdminPeer = LocalPeer;

export interface AdminServerOptions {
  /** admin_max_clients; 0 = no limit. */
  maxClients: number;
  /** admin_min_workers, admin_max_workers (priority workers: 0, as in libvirt). */
  minWorkers: number;
  maxWorkers: number;
  /** Peer credentials of an accepted socket; null when they cannot be read (peer is refused). */
  peerOf(socket: net.Socket): AdminPeer | null;
  /** The uid allowed in (libvirt: the daemon's effective uid). */
  allowedUid: number;
  log(level: 'debug' | 'info' | 'warn' | 'error', msg: string): void;
  onClientCountChange?: () => void;
}

class AdminConnection implements ManagedClient {
  readonly connectedAt = Date.now();
  readonly transport = VIR_CLIENT_TRANS_UNIX;
  private readonly decoder: FrameDecoder;
  private closing = false;
  closeReason = 'closed by peer';

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    private readonly peer: AdminPeer,
    private readonly server: AdminServer,
  ) {
    this.decoder = new FrameDecoder(
      (f) => this.socketOnFrame(f),
      (e) => this.protocolError(e),
    );
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', (e) => {
      this.closeReason = `socket error: ${e.message}`;
    });
    socket.on('close', () => server.connectionClosed(this));
    // Listeners accept with pauseOnConnect, so that nothing is read before the peer is vetted.
    socket.resume();
  }

  info(): TypedParam[] | RemoteError {
    const p = this.peer;
    return clientInfoParams({
      readonly: false,
      saslUserName: null,
      local: true,
      sockAddr: null,
      x509DName: null,
      uid: p.uid,
      userName: p.userName,
      gid: p.gid,
      groupName: p.groupName,
      pid: p.pid,
      selinuxContext: p.selinuxContext,
    });
  }

  close(reason = 'disconnected by admin'): void {
    this.closeReason = reason;
    this.closing = true;
    // end() rather than destroy(): a reply already queued (an admin client disconnecting itself,
    // daemon-shutdown) still reaches the peer. A peer that never closes its side is cut off.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private send(frame: Buffer): void {
    if (this.socket.writable && !this.closing) this.socket.write(frame);
  }

  private socketOnFrame(frame: Buffer): void {
    if (this.closing) return;
    const prog = frame.readUInt32BE(OFF_PROG);
    const type = frame.readInt32BE(OFF_TYPE);
    if (prog === KEEPALIVE_PROGRAM && type === VIR_NET_MESSAGE) {
      // Admin keepalive is never started, but a peer's PING is still answered.
      if (
        frame.readUInt32BE(OFF_VERS) === KEEPALIVE_PROTOCOL_VERSION &&
        frame.readInt32BE(OFF_PROC) === KEEPALIVE_PROC_PING
      ) {
        this.send(PONG_FRAME);
      }
      return;
    }
    if (type === VIR_NET_CALL_WITH_FDS) {
      // No admin procedure takes descriptors; the dummy bytes would desynchronise the stream.
      return this.protocolErrorText('file descriptors are not accepted on the admin socket');
    }
    if (type !== VIR_NET_CALL) {
      this.server.log('debug', `admin client ${this.id}: dropped message type ${type}`);
      return;
    }
    const h = readHeader(frame);
    if (prog !== ADMIN_PROGRAM || frame.readUInt32BE(OFF_VERS) !== ADMIN_PROTOCOL_VERSION) {
      this.send(
        errorReply(h, rpcError(`Cannot find program ${prog} version ${frame.readUInt32BE(OFF_VERS)}`)),
      );
      return;
    }
    if (frame.readInt32BE(OFF_STATUS) !== VIR_NET_OK) {
      this.send(errorReply(h, rpcError(`Unexpected message status ${h.status}`)));
      return;
    }
    const t0 = adminCallChannel.hasSubscribers ? performance.now() : 0;
    const r = this.server.handle(frame);
    this.send(r.reply);
    if (adminCallChannel.hasSubscribers) {
      const msg: AdminCallMessage = {
        proc: h.proc,
        ok: r.reply.readInt32BE(OFF_STATUS) === VIR_NET_OK,
        seconds: (performance.now() - t0) / 1000,
      };
      adminCallChannel.publish(msg);
    }
    if (r.close === true) {
      this.closeReason = 'closed by client (CONNECT_CLOSE)';
      this.closing = true;
      this.socket.end();
    }
    r.after?.();
  }

  private protocolError(e: CodedError): void {
    this.protocolErrorText(e.message);
  }

  private protocolErrorText(msg: string): void {
    this.closeReason = `protocol error: ${msg}`;
    this.decoder.stop();
    this.socket.destroy();
  }
}

export class AdminServer implements ManagedServer {
  readonly name = 'admin';
  readonly threadPool: ThreadPoolSettings;
  private readonly conns = new Map<number, AdminConnection>();
  private readonly waiting: net.Socket[] = [];
  private nextId = 1;
  maxClients: number;
  /** Kept for read-back only: admin clients need no authentication, so none ever waits. */
  maxUnauthClients = 0;
  daemon: AdminDaemon | null = null;

  constructor(private readonly opts: AdminServerOptions) {
    this.maxClients = opts.maxClients;
    this.threadPool = new ThreadPoolSettings(opts.minWorkers, opts.maxWorkers, 0);
  }

  get size(): number {
    return this.conns.size;
  }

  log(level: 'debug' | 'info' | 'warn' | 'error', msg: string): void {
    this.opts.log(level, msg);
  }

  /** Entry point for every socket accepted on the admin socket. */
  accept(socket: net.Socket): void {
    if (this.maxClients > 0 && this.conns.size >= this.maxClients) {
      // Left unread until a slot frees: to the peer it looks queued, like a full backlog.
      socket.pause();
      this.waiting.push(socket);
      socket.once('close', () => {
        const i = this.waiting.indexOf(socket);
        if (i >= 0) this.waiting.splice(i, 1);
      });
      return;
    }
    this.admit(socket);
  }

  private admit(socket: net.Socket): void {
    let peer: AdminPeer | null = null;
    try {
      peer = this.opts.peerOf(socket);
    } catch {
      peer = null;
    }
    if (peer === null || peer.uid !== this.opts.allowedUid) {
      // libvirt closes without a word; the log says why.
      this.log(
        'warn',
        peer === null
          ? 'admin connection refused: peer credentials unavailable'
          : `admin connection refused: client pid ${peer.pid} runs as uid ${peer.uid}, only uid ${this.opts.allowedUid} may administer the daemon`,
      );
      socket.destroy();
      return;
    }
    const c = new AdminConnection(this.nextId++, socket, peer, this);
    this.conns.set(c.id, c);
    this.log('debug', `admin client ${c.id} connected (pid ${peer.pid})`);
    this.opts.onClientCountChange?.();
  }

  /** Called by a connection when its socket is gone. */
  connectionClosed(c: AdminConnection): void {
    if (!this.conns.delete(c.id)) return;
    this.log('info', `admin client ${c.id} disconnected: ${c.closeReason}`);
    this.opts.onClientCountChange?.();
    this.admitWaiting();
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0 && (this.maxClients === 0 || this.conns.size < this.maxClients)) {
      const s = this.waiting.shift();
      if (s === undefined || s.destroyed) continue;
      this.admit(s);
      s.resume();
    }
  }

  handle(frame: Buffer): ReturnType<typeof handleAdminCall> {
    if (this.daemon === null) {
      return {
        reply: errorReply(
          readHeader(frame),
          remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, 'admin server is not attached to a daemon'),
        ),
      };
    }
    return handleAdminCall(this.daemon, frame);
  }

  pendingJobs(): number {
    // Admin calls are answered synchronously; none is ever outstanding between events.
    return 0;
  }

  clients(): ManagedClient[] {
    return [...this.conns.values()];
  }

  clientLimits(): ClientLimitsInfo {
    return {
      max: this.maxClients,
      current: this.conns.size,
      unauthMax: this.maxUnauthClients,
      unauthCurrent: 0,
    };
  }

  setClientLimits(max: number | null, unauthMax: number | null): RemoteError | null {
    const m = max ?? this.maxClients;
    const u = unauthMax ?? this.maxUnauthClients;
    if (m < u) {
      return remoteError(
        VIR_ERR_INVALID_ARG,
        VIR_FROM_RPC,
        'The overall maximum number of clients must not be less than the number of clients waiting for authentication',
      );
    }
    this.maxClients = m;
    this.maxUnauthClients = u;
    this.admitWaiting();
    return null;
  }

  updateTlsFiles(): RemoteError | null {
    return noTlsServiceError();
  }

  closeAll(): void {
    for (const s of this.waiting) s.destroy();
    this.waiting.length = 0;
    for (const c of this.conns.values()) c.close('daemon shutting down');
  }
}
