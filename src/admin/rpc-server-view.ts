// Admin layer: the "virtproxyd" RpcServer as virt-admin sees it: its clients (with client-info
// built from the socket's peer credentials or the identity a client set), live client limits,
// worker settings and the TLS reload hook.

import { VIR_ERR_INTERNAL_ERROR, VIR_ERR_INVALID_ARG, VIR_FROM_RPC } from '../protocol/constants.js';
import type { TypedParam } from '../protocol/payloads.js';
import { remoteError, type RemoteError } from '../protocol/remote-error.js';
import type { ClientConnection } from '../server/client-connection.js';
import type { RpcServer } from '../server/server.js';
import { noTlsServiceError } from './admin-dispatch.js';
import { VIR_CLIENT_TRANS_TCP, VIR_CLIENT_TRANS_TLS, VIR_CLIENT_TRANS_UNIX } from './admin-protocol.js';
import {
  ThreadPoolSettings,
  clientInfoParams,
  formatSockAddr,
  type ClientFacts,
  type ClientLimitsInfo,
  type ManagedClient,
  type ManagedServer,
} from './managed-server.js';

/** Socket-level identity of a local client (peer credentials and names). */
export interface LocalPeer {
  uid: number;
  gid: number;
  pid: number;
  userName: string | null;
  groupName: string | null;
  selinuxContext: string | null;
}

export interface RpcServerViewOptions {
  minWorkers: number;
  maxWorkers: number;
  prioWorkers: number;
  /** Peer credentials of a unix client's socket; null when they cannot be read. */
  localPeer(c: ClientConnection): LocalPeer | null;
  /** Re-reads TLS files; null when the server has no TLS service. Throws on failure. */
  tlsReload(): (() => void) | null;
}

const TRANSPORT = {
  unix: VIR_CLIENT_TRANS_UNIX,
  tcp: VIR_CLIENT_TRANS_TCP,
  tls: VIR_CLIENT_TRANS_TLS,
} as const;

function paramString(params: readonly TypedParam[], field: string): string | null {
  const p = params.find((x) => x.field === field);
  return p === undefined ? null : String(p.value);
}

function paramNumber(params: readonly TypedParam[], field: string): number | null {
  const p = params.find((x) => x.field === field);
  return p === undefined ? null : Number(p.value);
}

/** What client-info reports for one client of the main server. */
export function clientFacts(
  c: ClientConnection,
  peer: (c: ClientConnection) => LocalPeer | null,
): ClientFacts | null {
  const local = c.service.transport === 'unix';
  const base: ClientFacts = {
    // libvirt reports the socket's read-only flag, not a VIR_CONNECT_RO the client asked for.
    readonly: c.service.readonly,
    saslUserName: c.saslUserName ?? null,
    local,
    sockAddr: local ? null : formatSockAddr(c.socket.remoteAddress, c.socket.remotePort),
    x509DName: c.x509DName ?? null,
    uid: null,
    userName: null,
    gid: null,
    groupName: null,
    pid: null,
    selinuxContext: null,
  };
  const o = c.identityOverride;
  if (o !== null) {
    // CONNECT_SET_IDENTITY replaced the client's identity; libvirt reports the new one.
    return {
      ...base,
      saslUserName: paramString(o, 'sasl-user-name'),
      x509DName: paramString(o, 'x509-distinguished-name'),
      uid: paramNumber(o, 'unix-user-id'),
      userName: paramString(o, 'user-name'),
      gid: paramNumber(o, 'unix-group-id'),
      groupName: paramString(o, 'group-name'),
      pid: paramNumber(o, 'process-id'),
      selinuxContext: paramString(o, 'selinux-context'),
    };
  }
  if (!local) return base;
  const p = peer(c);
  if (p === null) return null;
  return {
    ...base,
    uid: p.uid,
    userName: p.userName,
    gid: p.gid,
    groupName: p.groupName,
    pid: p.pid,
    selinuxContext: p.selinuxContext,
  };
}

export class RpcServerView implements ManagedServer {
  readonly threadPool: ThreadPoolSettings;

  constructor(
    readonly server: RpcServer,
    private readonly opts: RpcServerViewOptions,
  ) {
    this.threadPool = new ThreadPoolSettings(opts.minWorkers, opts.maxWorkers, opts.prioWorkers);
  }

  get name(): string {
    return this.server.name;
  }

  pendingJobs(): number {
    // Calls handed to backends and not answered yet: the work a worker pool would be holding.
    let n = 0;
    for (const c of this.server.clients.values()) n += c.inflightCount;
    return n;
  }

  clients(): ManagedClient[] {
    return [...this.server.clients.values()].map((c) => this.managed(c));
  }

  private managed(c: ClientConnection): ManagedClient {
    return {
      id: c.id,
      connectedAt: c.connectedAt,
      transport: TRANSPORT[c.service.transport],
      info: (): TypedParam[] | RemoteError => {
        const f = clientFacts(c, this.opts.localPeer);
        if (f === null) {
          return remoteError(
            VIR_ERR_INTERNAL_ERROR,
            VIR_FROM_RPC,
            'No identity information available for client',
          );
        }
        return clientInfoParams(f);
      },
      close: () => {
        c.closeReason = 'disconnected by admin';
        c.destroy();
      },
    };
  }

  clientLimits(): ClientLimitsInfo {
    return {
      max: this.server.maxClients,
      current: this.server.clients.size,
      unauthMax: this.server.maxUnauthClients,
      unauthCurrent: this.server.unauthClients,
    };
  }

  setClientLimits(max: number | null, unauthMax: number | null): RemoteError | null {
    if ((max ?? this.server.maxClients) < (unauthMax ?? this.server.maxUnauthClients)) {
      return remoteError(
        VIR_ERR_INVALID_ARG,
        VIR_FROM_RPC,
        'The overall maximum number of clients must not be less than the number of clients waiting for authentication',
      );
    }
    this.server.setClientLimits(max, unauthMax);
    return null;
  }

  updateTlsFiles(): RemoteError | null {
    const reload = this.opts.tlsReload();
    if (reload === null) return noTlsServiceError();
    try {
      reload();
      return null;
    } catch (e) {
      const remote = (e as { remote?: RemoteError }).remote;
      return remote ?? remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, (e as Error).message);
    }
  }
}
