// Admin layer: answers one ADMIN program call. Each procedure checks what libvirt's handler
// checks, in the same order (server, client, flags, parameters), so virt-admin sees the same
// errors; the daemon side effects go through the small AdminDaemon interface.

import {
  LIBVIRT_VERSION_NUMBER,
  VIR_ERR_INTERNAL_ERROR,
  VIR_ERR_INVALID_ARG,
  VIR_ERR_NO_CLIENT,
  VIR_ERR_NO_SERVER,
  VIR_ERR_SYSTEM_ERROR,
  VIR_FROM_ADMIN,
  VIR_FROM_NONE,
  VIR_FROM_RPC,
  VIR_TYPED_PARAM_UINT,
} from '../protocol/constants.js';
import { framePayload, readHeader, type MessageHeader } from '../protocol/header.js';
import type { TypedParam } from '../protocol/payloads.js';
import { remoteError, rpcError, type RemoteError } from '../protocol/remote-error.js';
import { errorReply, okReply } from '../server/messages.js';
import {
  ADMIN_PROC_CLIENT_CLOSE,
  ADMIN_PROC_CLIENT_GET_INFO,
  ADMIN_PROC_CONNECT_CLOSE,
  ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN,
  ADMIN_PROC_CONNECT_GET_LIB_VERSION,
  ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS,
  ADMIN_PROC_CONNECT_GET_LOGGING_OUTPUTS,
  ADMIN_PROC_CONNECT_LIST_SERVERS,
  ADMIN_PROC_CONNECT_LOOKUP_SERVER,
  ADMIN_PROC_CONNECT_OPEN,
  ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT,
  ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS,
  ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS,
  ADMIN_PROC_SERVER_GET_CLIENT_LIMITS,
  ADMIN_PROC_SERVER_GET_THREADPOOL_PARAMETERS,
  ADMIN_PROC_SERVER_LIST_CLIENTS,
  ADMIN_PROC_SERVER_LOOKUP_CLIENT,
  ADMIN_PROC_SERVER_SET_CLIENT_LIMITS,
  ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS,
  ADMIN_PROC_SERVER_UPDATE_TLS_FILES,
  VIR_DAEMON_SHUTDOWN_PRESERVE,
  decodeAdminArgs,
  encodeClient,
  encodeClientList,
  encodeLibVersion,
  encodeLoggingFilters,
  encodeLoggingOutputs,
  encodeServer,
  encodeServerList,
  encodeTypedParams,
  type AdminArgs,
  type AdminClientRef,
} from './admin-protocol.js';
import {
  CLIENT_LIMIT_PARAMS,
  THREADPOOL_PARAMS,
  uintParam,
  validateTypedParams,
  type ManagedClient,
  type ManagedServer,
} from './managed-server.js';

/** The daemon as the admin program needs it. */
export interface AdminDaemon {
  /** Servers in the order srv-list shows them. */
  servers(): readonly ManagedServer[];
  logging: {
    filters(): { text: string | null; count: number };
    outputs(): { text: string; count: number };
    /** Throw with libvirt's message on a bad setting (LogOutputOpenError: a file would not open). */
    setFilters(src: string | null): void;
    setOutputs(src: string | null): void;
  };
  setTimeout(seconds: number): void;
  /** Stops the daemon; called once the reply has been written. */
  shutdown(preserve: boolean): void;
}

export interface AdminCallResult {
  reply: Buffer;
  /** Close this admin connection after the reply (CONNECT_CLOSE). */
  close?: boolean;
  /** Runs after the reply has been written (client-disconnect of itself, daemon shutdown). */
  after?: () => void;
}

class Fail {
  constructor(readonly err: RemoteError) {}
}

function checkFlags(flags: number, supported: number, fn: string): void {
  const bad = (flags & ~supported) >>> 0;
  if (bad !== 0) {
    throw new Fail(
      remoteError(
        VIR_ERR_INVALID_ARG,
        VIR_FROM_ADMIN,
        `unsupported flags (0x${bad.toString(16)}) in function ${fn}`,
      ),
    );
  }
}

/** virNetDaemonGetServer's lookup, or the dispatcher's own wording for some procedures. */
function findServer(d: AdminDaemon, name: string, adminWording = false): ManagedServer {
  const s = d.servers().find((x) => x.name === name);
  if (s !== undefined) return s;
  throw new Fail(
    adminWording
      ? remoteError(VIR_ERR_NO_SERVER, VIR_FROM_ADMIN, `no server with matching name '${name}' found`)
      : remoteError(VIR_ERR_NO_SERVER, VIR_FROM_RPC, `No server named '${name}'`),
  );
}

function findClient(s: ManagedServer, id: bigint, adminWording = false): ManagedClient {
  const c = s.clients().find((x) => BigInt(x.id) === id);
  if (c !== undefined) return c;
  throw new Fail(
    adminWording
      ? remoteError(VIR_ERR_NO_CLIENT, VIR_FROM_ADMIN, `no client with matching id '${id}' found`)
      : remoteError(VIR_ERR_NO_CLIENT, VIR_FROM_RPC, `No client with matching ID '${id}'`),
  );
}

function clientRef(server: ManagedServer, c: ManagedClient): AdminClientRef {
  return {
    server: server.name,
    id: BigInt(c.id),
    timestamp: BigInt(Math.floor(c.connectedAt / 1000)),
    transport: c.transport,
  };
}

function uint(field: string, value: number): TypedParam {
  return { field, type: VIR_TYPED_PARAM_UINT, value };
}

function loggingError(e: unknown): RemoteError {
  const err = e as Error;
  // A file that cannot be opened is a system error in libvirt; anything else is a syntax error.
  const code = err.name === 'LogOutputOpenError' ? VIR_ERR_SYSTEM_ERROR : VIR_ERR_INVALID_ARG;
  return remoteError(code, VIR_FROM_NONE, err.message);
}

/** Handles one CALL frame of the ADMIN program. */
export function handleAdminCall(d: AdminDaemon, frame: Buffer): AdminCallResult {
  const h = readHeader(frame);
  let args: AdminArgs | null;
  try {
    args = decodeAdminArgs(h.proc, framePayload(frame));
  } catch {
    return { reply: errorReply(h, rpcError('Unable to decode message payload')) };
  }
  if (args === null) return { reply: errorReply(h, rpcError(`unknown procedure: ${h.proc}`)) };
  try {
    return run(d, h, args);
  } catch (e) {
    if (e instanceof Fail) return { reply: errorReply(h, e.err) };
    return {
      reply: errorReply(h, remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_ADMIN, (e as Error).message)),
    };
  }
}

function run(d: AdminDaemon, h: MessageHeader, a: AdminArgs): AdminCallResult {
  const ok = (payload?: Buffer): AdminCallResult => ({ reply: okReply(h, payload) });
  const failIf = (err: RemoteError | null): void => {
    if (err !== null) throw new Fail(err);
  };
  switch (h.proc) {
    case ADMIN_PROC_CONNECT_OPEN:
      checkFlags(a.flags, 0, 'adminDispatchConnectOpen');
      return ok();
    case ADMIN_PROC_CONNECT_CLOSE:
      return { ...ok(), close: true };
    case ADMIN_PROC_CONNECT_GET_LIB_VERSION:
      return ok(encodeLibVersion(LIBVIRT_VERSION_NUMBER));
    case ADMIN_PROC_CONNECT_LIST_SERVERS:
      checkFlags(a.flags, 0, 'adminConnectListServers');
      return ok(
        encodeServerList(
          d.servers().map((s) => s.name),
          a.needResults !== 0,
        ),
      );
    case ADMIN_PROC_CONNECT_LOOKUP_SERVER:
      // libvirt checks these flags against themselves, so any value passes.
      return ok(encodeServer(findServer(d, a.name ?? '').name));
    case ADMIN_PROC_SERVER_GET_THREADPOOL_PARAMETERS: {
      const s = findServer(d, a.server ?? '');
      checkFlags(a.flags, 0, 'adminServerGetThreadPoolParameters');
      const t = s.threadPool;
      return ok(
        encodeTypedParams([
          uint('minWorkers', t.minWorkers),
          uint('maxWorkers', t.maxWorkers),
          // One event loop does every job; it is free whenever it can answer this call.
          uint('nWorkers', 1),
          uint('freeWorkers', 1),
          uint('prioWorkers', t.prioWorkers),
          uint('jobQueueDepth', s.pendingJobs()),
        ]),
      );
    }
    case ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS: {
      const s = findServer(d, a.server ?? '', true);
      const params = a.params ?? [];
      checkFlags(a.flags, 0, 'adminServerSetThreadPoolParameters');
      failIf(validateTypedParams(params, THREADPOOL_PARAMS));
      failIf(
        s.threadPool.set(
          uintParam(params, 'minWorkers'),
          uintParam(params, 'maxWorkers'),
          uintParam(params, 'prioWorkers'),
        ),
      );
      return ok();
    }
    case ADMIN_PROC_SERVER_LIST_CLIENTS: {
      const s = findServer(d, a.server ?? '');
      checkFlags(a.flags, 0, 'adminServerListClients');
      return ok(
        encodeClientList(
          s.clients().map((c) => clientRef(s, c)),
          a.needResults !== 0,
        ),
      );
    }
    case ADMIN_PROC_SERVER_LOOKUP_CLIENT: {
      const s = findServer(d, a.server ?? '');
      checkFlags(a.flags, 0, 'adminServerLookupClient');
      return ok(encodeClient(clientRef(s, findClient(s, a.id ?? 0n))));
    }
    case ADMIN_PROC_CLIENT_GET_INFO: {
      const s = findServer(d, a.server ?? '', true);
      const c = findClient(s, a.client?.id ?? 0n, true);
      checkFlags(a.flags, 0, 'adminClientGetInfo');
      const info = c.info();
      if (!Array.isArray(info)) throw new Fail(info);
      return ok(encodeTypedParams(info));
    }
    case ADMIN_PROC_CLIENT_CLOSE: {
      const s = findServer(d, a.server ?? '');
      const c = findClient(s, a.client?.id ?? 0n);
      checkFlags(a.flags, 0, 'adminClientClose');
      // Closed after the reply is queued, so an admin client disconnecting itself still hears OK.
      return { ...ok(), after: () => c.close() };
    }
    case ADMIN_PROC_SERVER_GET_CLIENT_LIMITS: {
      const s = findServer(d, a.server ?? '');
      checkFlags(a.flags, 0, 'adminServerGetClientLimits');
      const l = s.clientLimits();
      return ok(
        encodeTypedParams([
          uint('nclients_max', l.max),
          uint('nclients', l.current),
          uint('nclients_unauth_max', l.unauthMax),
          uint('nclients_unauth', l.unauthCurrent),
        ]),
      );
    }
    case ADMIN_PROC_SERVER_SET_CLIENT_LIMITS: {
      const s = findServer(d, a.server ?? '', true);
      const params = a.params ?? [];
      checkFlags(a.flags, 0, 'adminServerSetClientLimits');
      failIf(validateTypedParams(params, CLIENT_LIMIT_PARAMS));
      failIf(s.setClientLimits(uintParam(params, 'nclients_max'), uintParam(params, 'nclients_unauth_max')));
      return ok();
    }
    case ADMIN_PROC_CONNECT_GET_LOGGING_OUTPUTS: {
      checkFlags(a.flags, 0, 'adminConnectGetLoggingOutputs');
      const o = d.logging.outputs();
      return ok(encodeLoggingOutputs(o.text, o.count));
    }
    case ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS: {
      checkFlags(a.flags, 0, 'adminConnectGetLoggingFilters');
      const f = d.logging.filters();
      return ok(encodeLoggingFilters(f.count === 0 ? null : f.text, f.count));
    }
    case ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS:
      checkFlags(a.flags, 0, 'adminConnectSetLoggingOutputs');
      try {
        d.logging.setOutputs(a.text ?? null);
      } catch (e) {
        throw new Fail(loggingError(e));
      }
      return ok();
    case ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS:
      checkFlags(a.flags, 0, 'adminConnectSetLoggingFilters');
      try {
        d.logging.setFilters(a.text ?? null);
      } catch (e) {
        throw new Fail(loggingError(e));
      }
      return ok();
    case ADMIN_PROC_SERVER_UPDATE_TLS_FILES: {
      const s = findServer(d, a.server ?? '');
      checkFlags(a.flags, 0, 'adminServerUpdateTlsFiles');
      failIf(s.updateTlsFiles());
      return ok();
    }
    case ADMIN_PROC_CONNECT_SET_DAEMON_TIMEOUT:
      checkFlags(a.flags, 0, 'adminConnectSetDaemonTimeout');
      d.setTimeout(a.timeout ?? 0);
      return ok();
    case ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN: {
      checkFlags(a.flags, VIR_DAEMON_SHUTDOWN_PRESERVE, 'adminConnectDaemonShutdown');
      const preserve = (a.flags & VIR_DAEMON_SHUTDOWN_PRESERVE) !== 0;
      return { ...ok(), after: () => d.shutdown(preserve) };
    }
    default:
      return { reply: errorReply(h, rpcError(`unknown procedure: ${h.proc}`)) };
  }
}

/** The error libvirt gives for UPDATE_TLS_FILES on a server without a TLS service. */
export function noTlsServiceError(): RemoteError {
  return remoteError(
    VIR_ERR_INTERNAL_ERROR,
    VIR_FROM_RPC,
    'no tls service found, unable to update tls files',
  );
}
