// Auth layer: XDR bodies of the SASL procedures (remote_auth_sasl_* in remote_protocol.x). The
// `data` fields are `char data<65536>`, so every byte travels as a 4-byte int (NOTES §1.7), and
// `nil` = 1 means "no data", which Cyrus treats differently from zero-length data.

import { REMOTE_AUTH_SASL_DATA_MAX, REMOTE_STRING_MAX } from '../protocol/constants.js';
import { XdrReader } from '../protocol/xdr-reader.js';
import { XdrWriter } from '../protocol/xdr-writer.js';

export interface SaslStartArgs {
  mech: string;
  /** null when the client sent nil = 1. */
  data: Buffer | null;
}

export interface SaslStepReply {
  complete: boolean;
  data: Buffer | null;
}

function readData(r: XdrReader): Buffer | null {
  const nil = r.int();
  const data = r.charArray(REMOTE_AUTH_SASL_DATA_MAX);
  return nil !== 0 ? null : data;
}

export function decodeSaslStartArgs(payload: Buffer): SaslStartArgs {
  const r = new XdrReader(payload);
  const mech = r.string(REMOTE_STRING_MAX);
  const data = readData(r);
  return { mech, data };
}

export function decodeSaslStepArgs(payload: Buffer): Buffer | null {
  const r = new XdrReader(payload);
  const data = readData(r);
  return data;
}

export function encodeSaslInitReply(mechlist: string): Buffer {
  return new XdrWriter().string(mechlist).toBuffer();
}

export function encodeSaslStepReply(reply: SaslStepReply): Buffer {
  const w = new XdrWriter(16 + (reply.data?.length ?? 0) * 4);
  w.int(reply.complete ? 1 : 0);
  w.int(reply.data === null ? 1 : 0);
  w.charArray(reply.data ?? Buffer.alloc(0));
  return w.toBuffer();
}

// The client side's encoders, for tests and tools that play a libvirt client.
export function encodeSaslStartArgs(a: SaslStartArgs): Buffer {
  return new XdrWriter()
    .string(a.mech)
    .int(a.data === null ? 1 : 0)
    .charArray(a.data ?? Buffer.alloc(0))
    .toBuffer();
}

export function encodeSaslStepArgs(data: Buffer | null): Buffer {
  return new XdrWriter()
    .int(data === null ? 1 : 0)
    .charArray(data ?? Buffer.alloc(0))
    .toBuffer();
}

export function decodeSaslInitReply(payload: Buffer): string {
  return new XdrReader(payload).string(REMOTE_STRING_MAX);
}

export function decodeSaslStepReply(payload: Buffer): SaslStepReply {
  const r = new XdrReader(payload);
  const complete = r.int() !== 0;
  const data = readData(r);
  return { complete, data };
}
