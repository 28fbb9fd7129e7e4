// Transport layer: writes frames to a socket in order. Three things make this more than
// socket.write: some frames carry fds, which libvirt sends after the frame as one 0x00 byte with
// SCM_RIGHTS each (NOTES §1.8), so later frames wait until they are out; a large frame may be
// relayed in pieces as it arrives (cut-through), and nothing may land between its pieces; and on
// unix sockets a frame goes straight to the kernel when Node has nothing queued, which skips
// Node's per-write bookkeeping on the hot path.

import type net from 'node:net';
import { native, socketFd, type NativeApi } from '../native/native.js';

interface Held {
  frame: Buffer;
  fds: number[] | null;
}

/** Bytes queued in Node above which a writer reports "full" (our own high-water mark). */
export const WRITE_HIGH_WATER = 1 << 20;

/** Bytes written past Node's own counter (direct writes), for metrics. */
const directBytes = new WeakMap<net.Socket, { n: number }>();

export function bytesWrittenOf(socket: net.Socket): number {
  return socket.bytesWritten + (directBytes.get(socket)?.n ?? 0);
}

export class OrderedWriter {
  /** Frames waiting behind fds that are not sent yet; null when nothing waits. */
  private held: Held[] | null = null;
  /** Set while a frame is being relayed in pieces; other frames wait in `afterPieces`. */
  private inPieces = false;
  private afterPieces: Held[] = [];
  private readonly api: NativeApi | null;
  private readonly fd: number | null;
  private readonly counter: { n: number } | null;

  /** `direct`: the socket is a plain unix socket whose fd may be written to directly. */
  constructor(
    private readonly socket: net.Socket,
    direct = false,
  ) {
    let api: NativeApi | null = null;
    let fd: number | null = null;
    if (direct) {
      fd = socketFd(socket);
      try {
        api = fd === null ? null : native();
      } catch {
        api = null;
      }
    }
    this.api = api;
    this.fd = api === null ? null : fd;
    if (this.fd !== null) {
      this.counter = { n: 0 };
      directBytes.set(socket, this.counter);
    } else {
      this.counter = null;
    }
  }

  /** Like socket.write: false means the caller should wait for 'drain'. */
  write(frame: Buffer): boolean {
    if (this.inPieces) {
      this.afterPieces.push({ frame, fds: null });
      return false;
    }
    if (this.held !== null) {
      this.held.push({ frame, fds: null });
      return false;
    }
    return this.rawWrite(frame);
  }

  /** Writes `frame`, then passes `fds` (closing our copies); later writes wait until done. */
  writeWithFds(frame: Buffer, fds: number[]): void {
    if (this.inPieces) {
      this.afterPieces.push({ frame, fds });
      return;
    }
    if (this.held !== null) {
      this.held.push({ frame, fds });
      return;
    }
    this.held = [];
    this.socket.write(frame, (err) => {
      if (err) return this.abandon(fds);
      this.sendFds(fds, 0);
    });
  }

  /**
   * One piece of a frame relayed as it arrives; `last` closes the frame. Until then every other
   * write waits, so nothing lands inside the frame.
   */
  writePiece(piece: Buffer, last: boolean): boolean {
    this.inPieces = !last;
    const ok =
      this.held !== null ? (this.held.push({ frame: piece, fds: null }), false) : this.rawWrite(piece);
    if (!last || this.afterPieces.length === 0) return ok;
    const later = this.afterPieces;
    this.afterPieces = [];
    for (const h of later) {
      if (h.fds !== null) this.writeWithFds(h.frame, h.fds);
      else this.write(h.frame);
    }
    const ok2 = this.held === null && this.socket.writableLength < WRITE_HIGH_WATER;
    // Writers told "full" while the frame was open wait for 'drain'.
    if (ok2) this.socket.emit('drain');
    return ok2;
  }

  private rawWrite(buf: Buffer): boolean {
    const s = this.socket;
    if (this.fd !== null && s.writableLength === 0 && !s.destroyed) {
      let n = 0;
      try {
        n = (this.api as NativeApi).trySend(this.fd, buf);
      } catch {
        // Let Node's own write report the error and close the socket.
        n = 0;
      }
      (this.counter as { n: number }).n += n;
      if (n === buf.length) return true;
      if (n > 0) buf = buf.subarray(n);
    }
    // A frame is usually a view into a read chunk of up to 256 KiB; once it has to wait in Node's
    // queue, keep only its own bytes, or a client that does not read pins a chunk per small frame.
    if (buf.length * 2 < buf.buffer.byteLength) buf = Buffer.from(buf);
    s.write(buf);
    return s.writableLength < WRITE_HIGH_WATER;
  }

  private sendFds(fds: number[], i: number): void {
    const sock = socketFd(this.socket);
    const api = native();
    while (i < fds.length) {
      // fds before i are sent and closed already: abandon only the rest (closing them again
      // could close an fd number the process has reused meanwhile).
      if (sock === null || this.socket.destroyed) return this.abandon(fds.slice(i));
      const fd = fds[i] as number;
      let sent: boolean;
      try {
        sent = api.sendFd(sock, fd);
      } catch {
        return this.abandon(fds.slice(i));
      }
      if (!sent) {
        // Socket buffer full: try again shortly.
        setTimeout(() => this.sendFds(fds, i), 1);
        return;
      }
      api.closeFd(fd);
      i++;
    }
    this.release();
  }

  /** The socket failed while fds were going out: close them and those of every frame behind them. */
  private abandon(fds: number[]): void {
    const waiting = [...(this.held ?? []), ...this.afterPieces];
    this.held = null;
    this.afterPieces = [];
    const api = native();
    for (const fd of fds.concat(...waiting.map((h) => h.fds ?? []))) {
      try {
        api.closeFd(fd);
      } catch {
        // already closed
      }
    }
    this.socket.destroy();
  }

  private release(): void {
    const queue = this.held ?? [];
    this.held = null;
    while (queue.length > 0) {
      const h = queue.shift() as Held;
      if (h.fds !== null) {
        this.writeWithFds(h.frame, h.fds);
        // Whatever remains waits behind this one.
        (this.held as Held[] | null)?.push(...queue);
        return;
      }
      this.rawWrite(h.frame);
    }
    this.socket.emit('drain');
  }
}
