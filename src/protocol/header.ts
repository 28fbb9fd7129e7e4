// Protocol layer: the 24-byte message header and whole-message framing (NOTES §1.1–§1.4).
// Readers take a frame buffer that starts with the 4-byte length word.

import { VIR_NET_MESSAGE_HEADER_XDR_LEN, VIR_NET_OK } from './constants.js';

export interface MessageHeader {
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
}

/** Offsets of the header fields inside a frame (after the 4-byte length word). */
export const OFF_PROG = 4;
export const OFF_VERS = 8;
export const OFF_PROC = 12;
export const OFF_TYPE = 16;
export const OFF_SERIAL = 20;
export const OFF_STATUS = 24;

export function readHeader(frame: Buffer): MessageHeader {
  return {
    prog: frame.readUInt32BE(OFF_PROG),
    vers: frame.readUInt32BE(OFF_VERS),
    proc: frame.readInt32BE(OFF_PROC),
    type: frame.readInt32BE(OFF_TYPE),
    serial: frame.readUInt32BE(OFF_SERIAL),
    status: frame.readInt32BE(OFF_STATUS),
  };
}

/** Payload view of a frame (no copy). */
export function framePayload(frame: Buffer): Buffer {
  return frame.subarray(VIR_NET_MESSAGE_HEADER_XDR_LEN);
}

/** Builds a complete frame: length word, header, payload. */
export function encodeMessage(h: MessageHeader, payload?: Uint8Array | null): Buffer {
  const plen = payload ? payload.length : 0;
  const out = Buffer.allocUnsafe(VIR_NET_MESSAGE_HEADER_XDR_LEN + plen);
  out.writeUInt32BE(out.length, 0);
  out.writeUInt32BE(h.prog >>> 0, OFF_PROG);
  out.writeUInt32BE(h.vers >>> 0, OFF_VERS);
  out.writeInt32BE(h.proc, OFF_PROC);
  out.writeInt32BE(h.type, OFF_TYPE);
  out.writeUInt32BE(h.serial >>> 0, OFF_SERIAL);
  out.writeInt32BE(h.status, OFF_STATUS);
  if (payload && plen > 0) out.set(payload, VIR_NET_MESSAGE_HEADER_XDR_LEN);
  return out;
}

/** A reply header echoing a call's prog, vers, proc and serial. */
export function replyHeaderFor(call: MessageHeader, type: number, status = VIR_NET_OK): MessageHeader {
  return { prog: call.prog, vers: call.vers, proc: call.proc, type, serial: call.serial, status };
}
