// Admin layer, pure: the ADMIN program (0x06900690 v1) that virt-admin speaks: procedure numbers,
// limits, and the XDR of every argument and result (libvirt's admin_protocol.x, NOTES §9.8).
// Typed parameters share the remote program's layout, so their codec is reused.

import { XdrReader } from '../protocol/xdr-reader.js';
import { XdrWriter } from '../protocol/xdr-writer.js';
import { readTypedParam, writeTypedParam, type TypedParam } from '../protocol/payloads.js';

export const ADMIN_PROC_CONNECT_OPEN = 1;
export const ADMIN_PROC_CONNECT_CLOSE = 2;
export const ADMIN_PROC_CONNECT_GET_LIB_VERSION = 3;
export const ADMIN_PROC_CONNECT_LIST_SERVERS = 4;
export const ADMIN_PROC_CONNECT_LOOKUP_SERVER = 5;
export const ADMIN_PROC_SERVER_GET_THREADPOOL_PARAMETERS = 6;
export const ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS = 7;
export const ADMIN_PROC_SERVER_LIST_CLIENTS = 8;
export const ADMIN_PROC_SERVER_LOOKUP_CLIENT = 9;
export const ADMIN_PROC_CLIENT_GET_INFO = 10;
export const ADMIN_PROC_CLIENT_CLOSE = 11;
export const ADMIN_PROC_SERVER_GET_CLIENT_LIMITS = 12;
export const ADMIN_PROC_SERVER_SET_CLIENT_LIMITS = 13;
export const ADMIN_PROC_CONNECT_GET_LOGGING_OUTPUTS = 14;
export const ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS = 15;
export const ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS = 16;
export const ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS = 17;
export const ADMIN_PROC_SERVER_UPDATE_TLS_FILES = 18;
export const ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT = 19;
export const ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN = 20;

export const ADMIN_STRING_MAX = 4194304;
export const ADMIN_SERVER_LIST_MAX = 16384;
export const ADMIN_SERVER_THREADPOOL_PARAMETERS_MAX = 32;
export const ADMIN_CLIENT_LIST_MAX = 16384;
export const ADMIN_CLIENT_INFO_PARAMETERS_MAX = 64;
export const ADMIN_SERVER_CLIENT_LIMITS_MAX = 32;

/** virClientTransport (libvirt-admin.h). */
export const VIR_CLIENT_TRANS_UNIX = 0;
export const VIR_CLIENT_TRANS_TCP = 1;
export const VIR_CLIENT_TRANS_TLS = 2;
/** virAdmConnectDaemonShutdown flag: also stop driver state (nothing to preserve in a proxy). */
export const VIR_DAEMON_SHUTDOWN_PRESERVE = 1;

/** admin_nonnull_client. */
export interface AdminClientRef {
  server: string;
  id: bigint;
  /** Connect time, seconds since the epoch. */
  timestamp: bigint;
  transport: number;
}

const str = (r: XdrReader): string => r.string(ADMIN_STRING_MAX);

function readClientRef(r: XdrReader): AdminClientRef {
  const server = str(r);
  const id = r.uhyper();
  const timestamp = r.hyper();
  const transport = r.uint();
  return { server, id, timestamp, transport };
}

function writeClientRef(w: XdrWriter, c: AdminClientRef): void {
  w.string(c.server).uhyper(c.id).hyper(c.timestamp).uint(c.transport);
}

/** Every admin call's arguments, decoded; fields absent from a procedure stay undefined. */
export interface AdminArgs {
  flags: number;
  server?: string;
  name?: string;
  needResults?: number;
  client?: AdminClientRef;
  id?: bigint;
  params?: TypedParam[];
  /** SET_LOGGING_OUTPUTS / SET_LOGGING_FILTERS: the optional string. */
  text?: string | null;
  timeout?: number;
}

/**
 * Decodes the arguments of admin procedure `proc`; throws (XDR errors) on malformed or short
 * data, which the dispatcher turns into "Unable to decode message payload". Returns null for a
 * procedure number the program does not have.
 */
export function decodeAdminArgs(proc: number, payload: Buffer): AdminArgs | null {
  const r = new XdrReader(payload);
  let a: AdminArgs;
  switch (proc) {
    case ADMIN_PROC_CONNECT_OPEN:
    case ADMIN_PROC_CONNECT_GET_LOGGING_OUTPUTS:
    case ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS:
    case ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN:
      a = { flags: r.uint() };
      break;
    case ADMIN_PROC_CONNECT_CLOSE:
    case ADMIN_PROC_CONNECT_GET_LIB_VERSION:
      a = { flags: 0 };
      break;
    case ADMIN_PROC_CONNECT_LIST_SERVERS: {
      const needResults = r.uint();
      a = { needResults, flags: r.uint() };
      break;
    }
    case ADMIN_PROC_CONNECT_LOOKUP_SERVER: {
      const name = str(r);
      a = { name, flags: r.uint() };
      break;
    }
    case ADMIN_PROC_SERVER_GET_THREADPOOL_PARAMETERS:
    case ADMIN_PROC_SERVER_GET_CLIENT_LIMITS:
    case ADMIN_PROC_SERVER_UPDATE_TLS_FILES: {
      const server = str(r);
      a = { server, flags: r.uint() };
      break;
    }
    case ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS:
    case ADMIN_PROC_SERVER_SET_CLIENT_LIMITS: {
      const server = str(r);
      const max =
        proc === ADMIN_PROC_SERVER_SET_CLIENT_LIMITS
          ? ADMIN_SERVER_CLIENT_LIMITS_MAX
          : ADMIN_SERVER_THREADPOOL_PARAMETERS_MAX;
      const params = r.array(max, readTypedParam);
      a = { server, params, flags: r.uint() };
      break;
    }
    case ADMIN_PROC_SERVER_LIST_CLIENTS: {
      const server = str(r);
      const needResults = r.uint();
      a = { server, needResults, flags: r.uint() };
      break;
    }
    case ADMIN_PROC_SERVER_LOOKUP_CLIENT: {
      const server = str(r);
      const id = r.uhyper();
      a = { server, id, flags: r.uint() };
      break;
    }
    case ADMIN_PROC_CLIENT_GET_INFO:
    case ADMIN_PROC_CLIENT_CLOSE: {
      const client = readClientRef(r);
      a = { client, server: client.server, flags: r.uint() };
      break;
    }
    case ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS:
    case ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS: {
      const text = r.optional(str);
      a = { text, flags: r.uint() };
      break;
    }
    case ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT: {
      const timeout = r.uint();
      a = { timeout, flags: r.uint() };
      break;
    }
    default:
      return null;
  }
  // Like libvirt's decoder, bytes after the arguments are ignored.
  return a;
}

// ---- results -------------------------------------------------------------------------------

export function encodeLibVersion(v: bigint): Buffer {
  return new XdrWriter(8).uhyper(v).toBuffer();
}

/** admin_connect_list_servers_ret: the names (only when asked for) and the count. */
export function encodeServerList(names: readonly string[], needResults: boolean): Buffer {
  const w = new XdrWriter();
  const listed = needResults ? names : [];
  w.uint(listed.length);
  for (const n of listed) w.string(n);
  return w.uint(names.length).toBuffer();
}

export function encodeServer(name: string): Buffer {
  return new XdrWriter().string(name).toBuffer();
}

export function encodeTypedParams(params: readonly TypedParam[]): Buffer {
  const w = new XdrWriter();
  w.uint(params.length);
  for (const p of params) writeTypedParam(w, p);
  return w.toBuffer();
}

export function encodeClientList(clients: readonly AdminClientRef[], needResults: boolean): Buffer {
  const w = new XdrWriter();
  const listed = needResults ? clients : [];
  w.uint(listed.length);
  for (const c of listed) writeClientRef(w, c);
  return w.uint(clients.length).toBuffer();
}

export function encodeClient(c: AdminClientRef): Buffer {
  const w = new XdrWriter();
  writeClientRef(w, c);
  return w.toBuffer();
}

export function encodeLoggingOutputs(outputs: string, n: number): Buffer {
  return new XdrWriter().string(outputs).uint(n).toBuffer();
}

export function encodeLoggingFilters(filters: string | null, n: number): Buffer {
  return new XdrWriter().optionalString(filters).uint(n).toBuffer();
}

// ---- the client side, for tests and tools that talk to an admin socket ----------------------

/** Encodes call arguments in the same layouts (the inverse of decodeAdminArgs). */
export function encodeAdminArgs(proc: number, a: AdminArgs): Buffer {
  const w = new XdrWriter();
  switch (proc) {
    case ADMIN_PROC_CONNECT_CLOSE:
    case ADMIN_PROC_CONNECT_GET_LIB_VERSION:
      break;
    case ADMIN_PROC_CONNECT_LIST_SERVERS:
      w.uint(a.needResults ?? 1);
      break;
    case ADMIN_PROC_CONNECT_LOOKUP_SERVER:
      w.string(a.name ?? '');
      break;
    case ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS:
    case ADMIN_PROC_SERVER_SET_CLIENT_LIMITS:
      w.string(a.server ?? '');
      w.uint(a.params?.length ?? 0);
      for (const p of a.params ?? []) writeTypedParam(w, p);
      break;
    case ADMIN_PROC_SERVER_LIST_CLIENTS:
      w.string(a.server ?? '').uint(a.needResults ?? 1);
      break;
    case ADMIN_PROC_SERVER_LOOKUP_CLIENT:
      w.string(a.server ?? '').uhyper(a.id ?? 0n);
      break;
    case ADMIN_PROC_CLIENT_GET_INFO:
    case ADMIN_PROC_CLIENT_CLOSE:
      writeClientRef(w, a.client ?? { server: a.server ?? '', id: a.id ?? 0n, timestamp: 0n, transport: 0 });
      break;
    case ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS:
    case ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS:
      w.optionalString(a.text ?? null);
      break;
    case ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT:
      w.uint(a.timeout ?? 0);
      break;
    case ADMIN_PROC_SERVER_GET_THREADPOOL_PARAMETERS:
    case ADMIN_PROC_SERVER_GET_CLIENT_LIMITS:
    case ADMIN_PROC_SERVER_UPDATE_TLS_FILES:
      w.string(a.server ?? '');
      break;
    default:
      break;
  }
  if (proc !== ADMIN_PROC_CONNECT_CLOSE && proc !== ADMIN_PROC_CONNECT_GET_LIB_VERSION) w.uint(a.flags);
  return w.toBuffer();
}

export function decodeTypedParamList(payload: Buffer, max: number): TypedParam[] {
  return new XdrReader(payload).array(max, readTypedParam);
}

export function decodeClientList(payload: Buffer): { clients: AdminClientRef[]; count: number } {
  const r = new XdrReader(payload);
  const clients = r.array(ADMIN_CLIENT_LIST_MAX, readClientRef);
  return { clients, count: r.uint() };
}

export function decodeServerList(payload: Buffer): { names: string[]; count: number } {
  const r = new XdrReader(payload);
  const names = r.array(ADMIN_SERVER_LIST_MAX, str);
  return { names, count: r.uint() };
}

export function decodeClient(payload: Buffer): AdminClientRef {
  return readClientRef(new XdrReader(payload));
}
