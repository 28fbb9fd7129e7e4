// Admin layer: what virt-admin can see and change of one RPC server ("virtproxyd" or "admin"):
// its clients, client limits and worker settings, plus the libvirt rules for validating typed
// parameters and building client-info. Servers implement ManagedServer; the dispatcher only
// talks to this interface.

import {
  VIR_ERR_INVALID_ARG,
  VIR_FROM_NONE,
  VIR_TYPED_PARAM_BOOLEAN,
  VIR_TYPED_PARAM_INT,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_UINT,
} from '../protocol/constants.js';
import type { TypedParam } from '../protocol/payloads.js';
import { remoteError, type RemoteError } from '../protocol/remote-error.js';
import { validateTypedParams as validateParams } from '../protocol/typed-params.js';

export interface ManagedClient {
  readonly id: number;
  /** Milliseconds since the epoch. */
  readonly connectedAt: number;
  /** VIR_CLIENT_TRANS_UNIX / _TCP / _TLS. */
  readonly transport: number;
  /** client-info parameters, or the error libvirt would give. */
  info(): TypedParam[] | RemoteError;
  /** Closes the connection at once (admin client-disconnect). */
  close(): void;
}

export interface ClientLimitsInfo {
  max: number;
  current: number;
  unauthMax: number;
  unauthCurrent: number;
}

export interface ManagedServer {
  readonly name: string;
  readonly threadPool: ThreadPoolSettings;
  /** Work the server has accepted and not finished (reported as jobQueueDepth). */
  pendingJobs(): number;
  clients(): ManagedClient[];
  clientLimits(): ClientLimitsInfo;
  /** null keeps a value. Applies live; a queued connection that now fits is admitted. */
  setClientLimits(max: number | null, unauthMax: number | null): RemoteError | null;
  /** Re-reads the TLS files of the server's TLS service. */
  updateTlsFiles(): RemoteError | null;
}

/**
 * The worker settings virt-admin shows and sets. The proxy runs one event loop and never blocks it
 * on a call (backend I/O is asynchronous), so these numbers are kept, validated and reported as
 * libvirt does but do not size any pool: see docs/admin.md.
 */
export class ThreadPoolSettings {
  constructor(
    public minWorkers: number,
    public maxWorkers: number,
    public prioWorkers: number,
  ) {}

  /** virThreadPoolSetParameters' checks; null arguments keep the current value. */
  set(min: number | null, max: number | null, prio: number | null): RemoteError | null {
    const newMax = max ?? this.maxWorkers;
    const newMin = min ?? this.minWorkers;
    if (newMin > newMax) {
      return remoteError(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, 'minWorkers cannot be larger than maxWorkers');
    }
    if (max !== null && (max === 0) !== (this.maxWorkers === 0)) {
      return remoteError(
        VIR_ERR_INVALID_ARG,
        VIR_FROM_NONE,
        'maxWorkers must not be switched from zero to non-zero and vice versa',
      );
    }
    if (min !== null) this.minWorkers = min;
    if (max !== null) this.maxWorkers = max;
    if (prio !== null) this.prioWorkers = prio;
    return null;
  }
}

/**
 * virTypedParamsValidate: every parameter must be one of `allowed` (name → type), at most once,
 * with that type.
 */
export function validateTypedParams(
  params: readonly TypedParam[],
  allowed: Readonly<Record<string, number>>,
): RemoteError | null {
  return validateParams(params, (f) => (Object.hasOwn(allowed, f) ? allowed[f] : undefined));
}

/** A UINT parameter's value, or null when absent. */
export function uintParam(params: readonly TypedParam[], field: string): number | null {
  const p = params.find((x) => x.field === field);
  return p === undefined ? null : Number(p.value);
}

/** Who a client is, in the terms client-info reports. */
export interface ClientFacts {
  readonly: boolean;
  saslUserName: string | null;
  /** Unix-socket clients report unix_* fields, others sock_addr (and x509 DN). */
  local: boolean;
  sockAddr: string | null;
  x509DName: string | null;
  uid: number | null;
  userName: string | null;
  gid: number | null;
  groupName: string | null;
  pid: number | null;
  selinuxContext: string | null;
}

/** adminClientGetInfo's parameter list, in libvirt's order. */
export function clientInfoParams(f: ClientFacts): TypedParam[] {
  const out: TypedParam[] = [{ field: 'readonly', type: VIR_TYPED_PARAM_BOOLEAN, value: f.readonly }];
  const s = (field: string, v: string | null): void => {
    if (v !== null) out.push({ field, type: VIR_TYPED_PARAM_STRING, value: v });
  };
  const i = (field: string, v: number | null): void => {
    if (v !== null) out.push({ field, type: VIR_TYPED_PARAM_INT, value: v });
  };
  s('sasl_user_name', f.saslUserName);
  if (!f.local) {
    s('sock_addr', f.sockAddr);
    s('tls_x509_dname', f.x509DName);
  } else {
    i('unix_user_id', f.uid);
    s('unix_user_name', f.userName);
    i('unix_group_id', f.gid);
    s('unix_group_name', f.groupName);
    i('unix_process_id', f.pid);
  }
  s('selinux_context', f.selinuxContext);
  return out;
}

/** "ip:port" or "[v6]:port", libvirt's URI form of a peer address. */
export function formatSockAddr(address: string | undefined, port: number | undefined): string | null {
  if (address === undefined || port === undefined) return null;
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4 !== null) return `${v4[1]}:${port}`;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export const THREADPOOL_PARAMS: Readonly<Record<string, number>> = {
  minWorkers: VIR_TYPED_PARAM_UINT,
  maxWorkers: VIR_TYPED_PARAM_UINT,
  prioWorkers: VIR_TYPED_PARAM_UINT,
};

export const CLIENT_LIMIT_PARAMS: Readonly<Record<string, number>> = {
  nclients_max: VIR_TYPED_PARAM_UINT,
  nclients_unauth_max: VIR_TYPED_PARAM_UINT,
};
