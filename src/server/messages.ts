// Server layer: prebuilt frames and small builders for the replies the proxy sends itself.

import {
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  VIR_NET_ERROR,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
} from '../protocol/constants.js';
import { encodeMessage, type MessageHeader } from '../protocol/header.js';
import { encodeRemoteError, type RemoteError } from '../protocol/remote-error.js';

/** The keepalive frames (NOTES §2): type MESSAGE, serial 0, no payload; the same on every leg. */
export const PING_FRAME = encodeMessage({
  prog: KEEPALIVE_PROGRAM,
  vers: KEEPALIVE_PROTOCOL_VERSION,
  proc: KEEPALIVE_PROC_PING,
  type: VIR_NET_MESSAGE,
  serial: 0,
  status: VIR_NET_OK,
});

export const PONG_FRAME = encodeMessage({
  prog: KEEPALIVE_PROGRAM,
  vers: KEEPALIVE_PROTOCOL_VERSION,
  proc: KEEPALIVE_PROC_PONG,
  type: VIR_NET_MESSAGE,
  serial: 0,
  status: VIR_NET_OK,
});

export function okReply(call: MessageHeader, payload?: Buffer | null): Buffer {
  return encodeMessage(
    {
      prog: call.prog,
      vers: call.vers,
      proc: call.proc,
      type: VIR_NET_REPLY,
      serial: call.serial,
      status: VIR_NET_OK,
    },
    payload ?? null,
  );
}

export function errorReply(call: MessageHeader, err: RemoteError): Buffer {
  return encodeMessage(
    {
      prog: call.prog,
      vers: call.vers,
      proc: call.proc,
      type: VIR_NET_REPLY,
      serial: call.serial,
      status: VIR_NET_ERROR,
    },
    encodeRemoteError(err),
  );
}
