// Daemon layer: the running daemon as one object: config, logger, the "virtproxyd" RPC server,
// its listeners, the idle timer and shutdown. Features (admin server, TCP/TLS, metrics) attach to it
// through the small methods below instead of editing the start-up sequence.

import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { xdgRuntimeDir, type DaemonConfig } from '../config/daemon-config.js';
import { VIR_ERR_AUTH_CANCELLED, VIR_ERR_AUTH_FAILED } from '../protocol/constants.js';
import { native, socketFd } from '../native/native.js';
import { identityTypedParams, readPeerIdentity } from '../native/peer-identity.js';
import { authorizePolkit } from '../auth/polkit.js';
import { ProxyOpener } from '../proxy/proxy-opener.js';
import type { ClientConnection, ServiceInfo } from '../server/client-connection.js';
import { RpcServer } from '../server/server.js';
import {
  authFailedChannel,
  backendConnectFailedChannel,
  backendOpenedChannel,
  clientClosedChannel,
  clientCreatedChannel,
  openDoneChannel,
  trace,
} from '../server/diagnostics.js';
import { tlsPeerDName } from '../transport/tls-server.js';
import { saslOutcome, type SaslAuthenticator } from '../auth/sasl-auth.js';
import type { SocketActivation } from '../transport/socket-activation.js';
import { remoteIdentityParams } from './remote-services.js';
import type { Logger } from './logger.js';
import type { DaemonPaths } from './paths.js';

export interface Listener {
  server: net.Server;
  /** Unix socket path to unlink on shutdown, when the daemon created it. */
  unlinkPath: string | null;
  service: ServiceInfo;
  /** Replaces the plain hand-off to the server (the TLS service handshakes first). */
  onConnection?: (sock: net.Socket) => void;
}

export class Daemon {
  readonly server: RpcServer;
  readonly opener: ProxyOpener;
  readonly listeners: Listener[] = [];
  /** Cyrus SASL state; exists only when some service authenticates with SASL (as in libvirt). */
  sasl: SaslAuthenticator | null = null;
  /** Sockets passed by systemd; services claim theirs by unit name. null = manual mode. */
  activation: SocketActivation | null = null;
  /** Seconds without clients before exiting; 0 = never (-t, admin daemon-timeout). */
  private idleTimeout: number;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly stopHooks: Array<() => void | Promise<void>> = [];
  private readonly clientCounters: Array<() => number> = [];
  private stopping: Promise<void> | null = null;
  /** Why a client's last authentication attempt failed, for its disconnect log line. */
  private readonly authFailure = new WeakMap<ClientConnection, string>();

  constructor(
    readonly config: Readonly<DaemonConfig>,
    readonly paths: DaemonPaths,
    readonly privileged: boolean,
    readonly logger: Logger,
    idleTimeout: number,
    private readonly onExit: (code: number) => void,
  ) {
    this.idleTimeout = idleTimeout;
    const driverSockets = new Map<string, string>();
    for (const o of config.backend_sockets) driverSockets.set(o.driver, o.rwSocket);
    this.opener = new ProxyOpener({
      router: {
        privileged,
        backendSockDir: config.backend_sock_dir,
        sessionSockDir: path.join(xdgRuntimeDir(process.env), 'libvirt'),
        driverSockets,
      },
      keepaliveInterval: config.keepalive_interval,
      keepaliveCount: config.keepalive_count,
      identityOf: (c) => this.peerIdentityParams(c),
      onBackendFailure: (driver) => trace(backendConnectFailedChannel, () => ({ driver })),
    });
    this.server = new RpcServer({
      name: 'virtproxyd',
      maxClients: config.max_clients,
      maxUnauthClients: config.max_anonymous_clients,
      limits: {
        keepaliveInterval: config.keepalive_interval,
        keepaliveCount: config.keepalive_count,
        maxClientRequests: Math.max(1, config.max_client_requests),
      },
      hooks: {
        sasl: (c, proc, payload) => this.saslStep(c, proc, payload),
        openBackend: (c, name, ro) => this.openBackend(c, name, ro),
        authorizePolkit: (c) => this.authorizePolkit(c),
        closed: (c, reason) => this.clientClosed(c, reason),
        log: (level, msg) => logger.log(level, msg, 'rpc.client'),
      },
      onClientCreated: (c) => this.clientCreated(c),
      onClientCountChange: () => this.clientCountChanged(),
    });
    this.clientCounters.push(() => this.server.clients.size);
  }

  private clientCreated(c: ClientConnection): void {
    if (c.service.transport === 'unix') {
      const fd = socketFd(c.socket);
      try {
        if (fd !== null) c.peerUid = native().getPeerCred(fd).uid;
      } catch {
        c.peerUid = null;
      }
    }
    if (c.service.transport === 'tls') c.x509DName = tlsPeerDName(c.socket);
    if (c.service.auth === 'sasl') c.socket.once('close', () => this.sasl?.forget(c));
    this.logger.log('debug', `client ${c.id} connected on ${c.service.name}`, 'rpc.server');
    trace(clientCreatedChannel, () => ({ client: c }));
  }

  /** One info line per disconnect, with the reason (not libvirt's per-client EOF error). */
  private clientClosed(c: ClientConnection, reason: string): void {
    const authWhy = this.authFailure.get(c);
    const why = authWhy !== undefined && !c.authenticated ? `auth failure (${authWhy})` : reason;
    this.logger.log('info', `client ${c.id} disconnected: ${why}`, 'rpc.server');
    trace(clientClosedChannel, () => ({ client: c, reason: why }));
  }

  private saslStep(c: ClientConnection, proc: number, payload: Buffer) {
    const out = saslOutcome(this.sasl, c, proc, payload);
    if (out.error !== null) {
      const reason =
        out.error.code === VIR_ERR_AUTH_FAILED
          ? 'failed'
          : out.error.code === VIR_ERR_AUTH_CANCELLED
            ? 'cancelled'
            : 'error';
      this.authFailed(c, 'sasl', reason, out.error.message ?? reason);
    }
    return out;
  }

  private authorizePolkit(c: ClientConnection) {
    return authorizePolkit(c).then(
      (err) => {
        if (err !== null) this.authFailed(c, 'polkit', 'denied', err.message ?? 'denied');
        return err;
      },
      (e: unknown) => {
        this.authFailed(c, 'polkit', 'error', String(e));
        throw e;
      },
    );
  }

  /** Records a failed authentication for the log and the metrics (any auth method may call it). */
  authFailed(c: ClientConnection, method: string, reason: string, detail: string): void {
    this.authFailure.set(c, `${method}: ${detail}`);
    this.logger.log('info', `client ${c.id}: ${method} authentication failed: ${detail}`, 'rpc.server');
    trace(authFailedChannel, () => ({ client: c, method, reason }));
  }

  private openBackend(c: ClientConnection, name: string | null, readonly: boolean) {
    if (!backendOpenedChannel.hasSubscribers && !openDoneChannel.hasSubscribers) {
      return this.opener.open(c, name, readonly);
    }
    const t0 = performance.now();
    const seconds = (): number => (performance.now() - t0) / 1000;
    return this.opener.open(c, name, readonly).then(
      (r) => {
        trace(backendOpenedChannel, () => ({ client: c, leg: r.leg, uri: r.uri }));
        trace(openDoneChannel, () => ({ client: c, seconds: seconds(), ok: true }));
        return r;
      },
      (e: unknown) => {
        trace(openDoneChannel, () => ({ client: c, seconds: seconds(), ok: false }));
        throw e;
      },
    );
  }

  private peerIdentityParams(c: ClientConnection) {
    if (c.service.transport !== 'unix') return remoteIdentityParams(c);
    try {
      const id = readPeerIdentity(c.socket);
      // A unix client that logged in with SASL also carries its SASL name (NOTES §5.1).
      return id === null ? null : [...identityTypedParams(id), ...remoteIdentityParams(c)];
    } catch (e) {
      this.logger.log('warn', `client ${c.id}: cannot read peer identity: ${(e as Error).message}`);
      return null;
    }
  }

  /** Registers a listener whose connections belong to the main server. */
  addListener(l: Listener): void {
    this.listeners.push(l);
    l.server.on('connection', l.onConnection ?? ((sock: net.Socket) => this.server.accept(sock, l.service)));
  }

  /** Another server (e.g. admin) whose clients keep the daemon from idling out. */
  addClientCounter(count: () => number): void {
    this.clientCounters.push(count);
  }

  onStop(hook: () => void | Promise<void>): void {
    this.stopHooks.push(hook);
  }

  get timeout(): number {
    return this.idleTimeout;
  }

  setTimeout(seconds: number): void {
    this.idleTimeout = seconds;
    this.clientCountChanged();
  }

  /** Re-evaluates the idle timer; call when any server's client count changes. */
  clientCountChanged(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.idleTimeout <= 0) return;
    const n = this.clientCounters.reduce((a, f) => a + f(), 0);
    if (n === 0) {
      this.idleTimer = setTimeout(() => {
        this.logger.log('info', `no clients for ${this.idleTimeout} s, exiting`);
        void this.stop().then(() => this.onExit(0));
      }, this.idleTimeout * 1000);
    }
  }

  /** Stops accepting, closes every client (their backend legs say CONNECT_CLOSE), removes sockets. */
  stop(): Promise<void> {
    if (this.stopping !== null) return this.stopping;
    this.stopping = (async () => {
      if (this.idleTimer !== null) clearTimeout(this.idleTimer);
      for (const l of this.listeners) {
        l.server.close();
        if (l.unlinkPath !== null) fs.rmSync(l.unlinkPath, { force: true });
      }
      this.server.closeAll();
      for (const h of this.stopHooks) await h();
      // Give backend legs a moment to send CONNECT_CLOSE.
      await new Promise((r) => setTimeout(r, 50));
    })();
    return this.stopping;
  }
}
