// Campaign support: the few libvirt RPC payloads the campaigns build and check by hand (secrets
// and their lifecycle events, lookups whose error text names what was looked up), written from
// remote_protocol.x's layouts with the wire client's XDR helpers, independently of src/.

import { randomUUID } from 'node:crypto';

import { REMOTE_PROGRAM, VIR_NET_MESSAGE, VIR_NET_OK } from '../../src/protocol/constants.js';
import { readHeader } from '../../src/protocol/header.js';
import { WireClient, describeFrame, words, xdrString } from '../component/wire-client.js';

export const REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME = 23;
export const REMOTE_PROC_SECRET_LOOKUP_BY_UUID = 141;
export const REMOTE_PROC_SECRET_DEFINE_XML = 142;
export const REMOTE_PROC_SECRET_UNDEFINE = 146;
export const REMOTE_PROC_CONNECT_SECRET_EVENT_REGISTER_ANY = 380;
export const REMOTE_PROC_SECRET_EVENT_LIFECYCLE = 382;
export const VIR_SECRET_EVENT_ID_LIFECYCLE = 0;
export const VIR_SECRET_EVENT_DEFINED = 0;
export const VIR_SECRET_EVENT_UNDEFINED = 1;

export function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

export function uuidString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** The `remote_error` message text of an error reply, or null. */
export function errorMessage(frame: Buffer): string | null {
  if (readHeader(frame).status !== 1 || frame.length < 44 || frame.readUInt32BE(36) !== 1) return null;
  const len = frame.readUInt32BE(40);
  return frame.subarray(44, 44 + len).toString('utf8');
}

/** The error code (first word of `remote_error`) of an error reply, or null. */
export function errorCode(frame: Buffer): number | null {
  return readHeader(frame).status === 1 && frame.length >= 32 ? frame.readInt32BE(28) : null;
}

/** `remote_nonnull_secret` for a secret without usage: uuid[16], usageType 0, usageID "". */
function nonnullSecret(uuid: string): Buffer {
  return Buffer.concat([uuidBytes(uuid), words(0), xdrString('')]);
}

export function secretXml(uuid: string): string {
  return `<secret ephemeral='yes' private='yes'><uuid>${uuid}</uuid><description>virtproxyd campaign</description></secret>`;
}

export async function defineSecret(c: WireClient, uuid = randomUUID()): Promise<string> {
  const r = await c.call(
    REMOTE_PROGRAM,
    REMOTE_PROC_SECRET_DEFINE_XML,
    Buffer.concat([xdrString(secretXml(uuid)), words(0)]),
    {
      timeoutMs: 30_000,
    },
  );
  if (readHeader(r).status !== VIR_NET_OK) throw new Error(`SECRET_DEFINE_XML failed: ${describeFrame(r)}`);
  return uuid;
}

export async function undefineSecret(c: WireClient, uuid: string): Promise<void> {
  const r = await c.call(REMOTE_PROGRAM, REMOTE_PROC_SECRET_UNDEFINE, nonnullSecret(uuid), {
    timeoutMs: 30_000,
  });
  if (readHeader(r).status !== VIR_NET_OK) throw new Error(`SECRET_UNDEFINE failed: ${describeFrame(r)}`);
}

/** Registers for secret lifecycle events on all secrets; returns the callback id. */
export async function registerSecretEvents(c: WireClient): Promise<number> {
  const r = await c.call(
    REMOTE_PROGRAM,
    REMOTE_PROC_CONNECT_SECRET_EVENT_REGISTER_ANY,
    words(VIR_SECRET_EVENT_ID_LIFECYCLE, 0),
    {
      timeoutMs: 30_000,
    },
  );
  if (readHeader(r).status !== VIR_NET_OK)
    throw new Error(`SECRET_EVENT_REGISTER_ANY failed: ${describeFrame(r)}`);
  return r.readInt32BE(28);
}

export interface SecretEvent {
  callbackID: number;
  uuid: string;
  event: number;
}

/** Decodes `remote_secret_event_lifecycle_msg`; null for any other frame. */
export function secretEvent(frame: Buffer): SecretEvent | null {
  const h = readHeader(frame);
  if (
    h.prog !== REMOTE_PROGRAM ||
    h.type !== VIR_NET_MESSAGE ||
    h.proc !== REMOTE_PROC_SECRET_EVENT_LIFECYCLE
  )
    return null;
  const callbackID = frame.readInt32BE(28);
  const uuid = uuidString(frame.subarray(32, 48));
  // usageType, then usageID (string, padded), then event and detail.
  const idLen = frame.readUInt32BE(52);
  const at = 56 + idLen + ((4 - (idLen % 4)) % 4);
  return { callbackID, uuid, event: frame.readInt32BE(at) };
}

/** DOMAIN_LOOKUP_BY_NAME args. */
export function lookupDomainArgs(name: string): Buffer {
  return xdrString(name);
}

/** SECRET_LOOKUP_BY_UUID args. */
export function lookupSecretArgs(uuid: string): Buffer {
  return uuidBytes(uuid);
}
