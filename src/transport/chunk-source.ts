// Transport layer: where a connection's incoming bytes come from. Unix sockets are read by the
// addon's FdReader (recvmsg keeps passed fds); other sockets, or a machine without the addon, use
// the net.Socket's own reading. Either way the owner sees chunks, fds and one end-of-stream call.

import type net from 'node:net';
import { native, socketFd, type FdReaderHandle } from '../native/native.js';

export interface ChunkSink {
  /** A chunk of bytes; `fds` arrived with its last byte (the kernel stops a read after them). */
  onChunk(chunk: Buffer, fds: number[] | null): void;
}

export interface ChunkSource {
  /** True when passed fds are delivered (an fd-capable unix reader). */
  readonly passesFds: boolean;
  pause(): void;
  resume(): void;
  close(): void;
}

class NetSource implements ChunkSource {
  readonly passesFds = false;

  constructor(
    private readonly socket: net.Socket,
    sink: ChunkSink,
  ) {
    socket.on('data', (chunk: Buffer) => sink.onChunk(chunk, null));
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    // the socket's own close does it all
  }
}

class FdSource implements ChunkSource {
  readonly passesFds = true;
  private closed = false;

  constructor(
    socket: net.Socket,
    private readonly reader: FdReaderHandle,
  ) {
    // Node must never read this socket itself: a plain read() would drop passed fds.
    socket.pause();
    socket.once('close', () => this.close());
    reader.start();
  }

  pause(): void {
    if (!this.closed) this.reader.stop();
  }

  resume(): void {
    if (!this.closed) this.reader.start();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.close();
  }
}

/** Bytes the fd-keeping reader took from each socket (net.Socket.bytesRead never sees them). */
const fdReaderBytes = new WeakMap<net.Socket, { n: number }>();

/** Bytes read from `socket` so far, whichever reader did it (for metrics). */
export function bytesReadOf(socket: net.Socket): number {
  return socket.bytesRead + (fdReaderBytes.get(socket)?.n ?? 0);
}

/**
 * Starts reading `socket` into `sink`. Unix sockets get the fd-keeping reader when the addon is
 * available; the socket must not have started flowing yet (accept with pauseOnConnect).
 */
export function startReading(socket: net.Socket, sink: ChunkSink, unix: boolean): ChunkSource {
  const fd = unix ? socketFd(socket) : null;
  if (fd !== null) {
    let api;
    try {
      api = native();
    } catch {
      api = null;
    }
    if (api !== null) {
      const count = { n: 0 };
      fdReaderBytes.set(socket, count);
      const reader = new api.FdReader(fd, (chunk, fds, errno) => {
        if (chunk !== null) {
          count.n += chunk.length;
          sink.onChunk(chunk, fds);
          return;
        }
        if (errno === 0) socket.destroy();
        else socket.destroy(Object.assign(new Error(`read failed: errno ${errno}`), { errno }));
      });
      return new FdSource(socket, reader);
    }
  }
  const src = new NetSource(socket, sink);
  socket.resume();
  return src;
}
