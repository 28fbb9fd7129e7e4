// Transport layer: the SASL security layer on a connection. Once a mechanism with a security
// layer (SSF > 0) has authenticated a client, every later byte in both directions passes through
// the mechanism's encode/decode: outgoing data in pieces no larger than the negotiated maximum,
// incoming bytes in whatever chunks arrive (the codec keeps partial packets itself).

import type net from 'node:net';
import { closeFds } from './fd-queue.js';

/** The mechanism's codec (Cyrus sasl_encode / sasl_decode for one session). */
export interface SecurityLayer {
  /** Largest plaintext one encode() call may take (SASL_MAXOUTBUF). */
  readonly maxOutput: number;
  encode(plain: Buffer): Buffer;
  /** Plaintext completed by `wire` (possibly empty); throws on a corrupt or forged packet. */
  decode(wire: Buffer): Buffer;
  dispose(): void;
}

/** Encodes frames before they reach the socket; same contract as socket.write. */
export class SecurityLayerWriter {
  constructor(
    private readonly socket: net.Socket,
    private readonly layer: SecurityLayer,
  ) {}

  write(frame: Buffer): boolean {
    const max = this.layer.maxOutput > 0 ? this.layer.maxOutput : frame.length;
    let ok = true;
    try {
      for (let off = 0; off < frame.length; off += max) {
        ok = this.socket.write(this.layer.encode(frame.subarray(off, Math.min(frame.length, off + max))));
      }
    } catch (e) {
      this.socket.destroy(e as Error);
      return false;
    }
    return ok;
  }

  writeWithFds(_frame: Buffer, fds: number[]): void {
    // Only unix sockets pass fds, and SASL layers only exist on TCP.
    closeFds(fds);
    this.socket.destroy(new Error('file descriptors cannot travel through a SASL security layer'));
  }
}
