// Transport layer: writes frames to a socket in order, where some frames carry fds. libvirt sends
// each fd after its frame as one 0x00 byte with SCM_RIGHTS (NOTES §1.8), so an fd can only go once
// the frame has left Node's write queue, and every later frame must wait for it.

import type net from 'node:net';
import { native, socketFd } from '../native/native.js';

interface Held {
  frame: Buffer;
  fds: number[] | null;
}

export class OrderedWriter {
  private held: Held[] | null = null;

  constructor(private readonly socket: net.Socket) {}

  /** Like socket.write: false means the caller should wait for 'drain'. */
  write(frame: Buffer): boolean {
    if (this.held !== null) {
      this.held.push({ frame, fds: null });
      return false;
    }
    return this.socket.write(frame);
  }

  /** Writes `frame`, then passes `fds` (closing our copies); later writes wait until done. */
  writeWithFds(frame: Buffer, fds: number[]): void {
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

  private sendFds(fds: number[], i: number): void {
    const sock = socketFd(this.socket);
    const api = native();
    while (i < fds.length) {
      const fd = fds[i] as number;
      let sent: boolean;
      try {
        sent = sock !== null && api.sendFd(sock, fd);
      } catch {
        return this.abandon(fds);
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

  private abandon(fds: number[]): void {
    const api = native();
    for (const fd of fds) {
      try {
        api.closeFd(fd);
      } catch {
        // already closed
      }
    }
    this.held = null;
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
      this.socket.write(h.frame);
    }
    this.socket.emit('drain');
  }
}
