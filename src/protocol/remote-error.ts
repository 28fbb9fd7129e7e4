// Protocol layer: libvirt's wire error (remote_error / virNetMessageError, NOTES §1.5) as a value,
// with the message templates the proxy needs to build the same texts as libvirt.

import {
  VIR_ERR_AUTH_CANCELLED,
  VIR_ERR_AUTH_FAILED,
  VIR_ERR_AUTH_UNAVAILABLE,
  VIR_ERR_CONFIG_UNSUPPORTED,
  VIR_ERR_ERROR,
  VIR_ERR_INTERNAL_ERROR,
  VIR_ERR_INVALID_ARG,
  VIR_ERR_NO_CLIENT,
  VIR_ERR_NO_CONNECT,
  VIR_ERR_NO_SERVER,
  VIR_ERR_NO_SUPPORT,
  VIR_ERR_OPERATION_DENIED,
  VIR_ERR_OPERATION_INVALID,
  VIR_ERR_ARGUMENT_UNSUPPORTED,
  VIR_ERR_RPC,
  VIR_ERR_SYSTEM_ERROR,
  VIR_FROM_RPC,
  VIR_NET_MESSAGE_STRING_MAX,
} from './constants.js';
import { XdrReader } from './xdr-reader.js';
import { XdrWriter } from './xdr-writer.js';

export interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
  str1: string | null;
  str2: string | null;
  str3: string | null;
  int1: number;
  int2: number;
}

/** Prefix templates of virErrorMsgStrings for the codes the proxy raises itself. */
const TEMPLATES: ReadonlyMap<number, string> = new Map([
  [VIR_ERR_INTERNAL_ERROR, 'internal error: %s'],
  [VIR_ERR_NO_SUPPORT, 'this function is not supported by the connection driver: %s'],
  [VIR_ERR_NO_CONNECT, 'no connection driver available for %s'],
  [VIR_ERR_INVALID_ARG, 'invalid argument: %s'],
  [VIR_ERR_OPERATION_DENIED, 'operation forbidden: %s'],
  [VIR_ERR_SYSTEM_ERROR, '%s'],
  [VIR_ERR_RPC, '%s'],
  [VIR_ERR_AUTH_FAILED, 'authentication failed: %s'],
  [VIR_ERR_AUTH_CANCELLED, 'authentication cancelled: %s'],
  [VIR_ERR_AUTH_UNAVAILABLE, 'authentication unavailable: %s'],
  [VIR_ERR_OPERATION_INVALID, 'Requested operation is not valid: %s'],
  [VIR_ERR_CONFIG_UNSUPPORTED, 'unsupported configuration: %s'],
  [VIR_ERR_NO_SERVER, 'Server not found: %s'],
  [VIR_ERR_NO_CLIENT, 'Client not found: %s'],
  [VIR_ERR_ARGUMENT_UNSUPPORTED, 'argument unsupported: %s'],
]);

/** Builds an error the way virReportErrorHelper fills it: message = template applied to detail. */
export function remoteError(code: number, domain: number, detail: string, int1 = -1): RemoteError {
  const template = TEMPLATES.get(code) ?? '%s';
  return {
    code,
    domain,
    // A replacer function, so '$&', '$$' etc. in client-supplied detail text stay literal.
    message: template.replace('%s', () => detail),
    level: VIR_ERR_ERROR,
    str1: template.replace('%s', '%1$s').replace(/^%1\$s$/, '%s'),
    str2: detail,
    str3: null,
    int1,
    int2: -1,
  };
}

/** VIR_ERR_RPC in the RPC domain: the daemon's protocol-level complaints. */
export function rpcError(detail: string): RemoteError {
  return remoteError(VIR_ERR_RPC, VIR_FROM_RPC, detail);
}

export function encodeRemoteError(e: RemoteError): Buffer {
  const w = new XdrWriter(64 + (e.message?.length ?? 0) * 2);
  w.int(e.code).int(e.domain).optionalString(e.message).int(e.level);
  w.int(0); // dom: always absent
  w.optionalString(e.str1).optionalString(e.str2).optionalString(e.str3);
  w.int(e.int1).int(e.int2);
  w.int(0); // net: always absent
  return w.toBuffer();
}

export function decodeRemoteError(payload: Buffer): RemoteError {
  const r = new XdrReader(payload);
  const str = (x: XdrReader): string => x.string(VIR_NET_MESSAGE_STRING_MAX);
  const code = r.int();
  const domain = r.int();
  const message = r.optional(str);
  const level = r.int();
  r.optional((x) => {
    x.string(VIR_NET_MESSAGE_STRING_MAX);
    x.fixedOpaque(16);
    x.int();
  });
  const str1 = r.optional(str);
  const str2 = r.optional(str);
  const str3 = r.optional(str);
  const int1 = r.int();
  const int2 = r.int();
  return { code, domain, message, level, str1, str2, str3, int1, int2 };
}
