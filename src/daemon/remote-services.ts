// Daemon layer: the off-node services. listen_tcp and listen_tls open TCP listeners (or take the
// sockets systemd passed); TLS connections are handshaken and their client certificate judged
// before they become clients; remote clients' identity is their x509 DN and SASL user name.

import { homedir } from 'node:os';
import net from 'node:net';
import { socketMode } from '../config/daemon-config.js';
import { SaslAuthenticator } from '../auth/sasl-auth.js';
import { loadServerTls, type ServerTls, type TlsSettings } from '../auth/tls-material.js';
import { native } from '../native/native.js';
import type { TypedParam } from '../protocol/payloads.js';
import type { ClientConnection, ServiceInfo } from '../server/client-connection.js';
import { listenOnFds, listenUnixReplacing } from '../transport/socket-activation.js';
import { listenTcp } from '../transport/tcp-listener.js';
import { TlsAcceptor } from '../transport/tls-server.js';
import type { Daemon } from './daemon.js';
import { lookupGroup } from './services.js';

const VIR_TYPED_PARAM_STRING = 7;

/** Identity of a client that has no kernel credentials: what TLS and SASL proved (NOTES §5.1). */
export function remoteIdentityParams(c: ClientConnection): TypedParam[] {
  const params: TypedParam[] = [];
  if (c.saslUserName !== null) {
    params.push({ field: 'sasl-user-name', type: VIR_TYPED_PARAM_STRING, value: c.saslUserName });
  }
  if (c.x509DName !== null) {
    params.push({ field: 'x509-distinguished-name', type: VIR_TYPED_PARAM_STRING, value: c.x509DName });
  }
  return params;
}

/** The TLS service's live state, kept so SIGHUP can swap certificates and allow-lists. */
export interface RemoteServices {
  tls: TlsAcceptor | null;
  /** The loaded material behind `tls`, for reload comparisons and logs. */
  tlsMaterial: ServerTls | null;
}

/** Loads the TLS material for `settings`; throws CodedError with a message naming the problem. */
export function loadTls(d: Daemon, settings: TlsSettings): ServerTls {
  const material = loadServerTls(settings, d.privileged, homedir(), (m) => d.logger.log('warn', m));
  for (const w of material.warnings) d.logger.log('warn', w);
  return material;
}

export function tcpService(d: Daemon): ServiceInfo {
  return { name: 'tcp', readonly: false, auth: d.config.auth_tcp, transport: 'tcp' };
}

export function tlsService(d: Daemon): ServiceInfo {
  return { name: 'tls', readonly: false, auth: d.config.auth_tls, transport: 'tls' };
}

/** Registers `servers` as the TLS service: each connection is handshaken, then admitted. */
export function addTlsListeners(d: Daemon, rs: RemoteServices, servers: net.Server[]): void {
  const acceptor = rs.tls;
  if (acceptor === null) throw new Error('TLS service without TLS material');
  const service = tlsService(d);
  for (const server of servers) {
    d.addListener({ server, unlinkPath: null, service, onConnection: (raw) => acceptor.accept(raw) });
  }
}

export function addTcpListeners(d: Daemon, servers: net.Server[]): void {
  const service = tcpService(d);
  for (const server of servers) d.addListener({ server, unlinkPath: null, service });
}

/** Builds the TLS acceptor (material loaded and checked) into `rs`. */
export function prepareTls(d: Daemon, rs: RemoteServices): TlsAcceptor {
  const material = loadTls(d, d.config);
  const service = tlsService(d);
  rs.tlsMaterial = material;
  rs.tls = new TlsAcceptor(
    { secure: material.secure, checkPeer: material.checkPeer },
    {
      ready: (sock) => d.server.accept(sock, service),
      refused: (remote, reason) => d.logger.log('warn', `TLS client ${remote} refused: ${reason}`),
      handshakeFailed: (remote, reason) =>
        d.logger.log('info', `TLS handshake with ${remote} failed: ${reason}`),
    },
  );
  return rs.tls;
}

/**
 * Creates the Cyrus SASL state when a service that exists authenticates with SASL (libvirt makes
 * its SASL context only then, so /etc/sasl2/libvirt.conf is read only then).
 */
export function setupSasl(d: Daemon, tcp: boolean, tls: boolean): void {
  const c = d.config;
  const uses =
    (tcp && c.auth_tcp === 'sasl') ||
    (tls && c.auth_tls === 'sasl') ||
    c.auth_unix_rw === 'sasl' ||
    c.auth_unix_ro === 'sasl';
  if (!uses || d.sasl !== null) return;
  d.sasl = new SaslAuthenticator(
    { tcpMinSsf: c.tcp_min_ssf, allowedUsers: c.sasl_allowed_username_list },
    native(),
    (level, msg) => d.logger.log(level, msg),
  );
}

/**
 * Manual mode: the listeners listen_tcp / listen_tls ask for. On failure closes what it opened
 * and rethrows (the caller exits with libvirt's network-setup status).
 */
export async function setupRemoteServices(d: Daemon): Promise<RemoteServices> {
  const c = d.config;
  const rs: RemoteServices = { tls: null, tlsMaterial: null };
  if (d.activation !== null) {
    await setupActivatedServices(d, rs);
    return rs;
  }
  const backlog = c.max_queued_clients || 30;
  const opened: net.Server[] = [];
  setupSasl(d, c.listen_tcp, c.listen_tls);
  try {
    if (c.listen_tls) {
      prepareTls(d, rs);
      const servers = await listenTcp({ host: c.listen_addr, port: c.tls_port, backlog });
      opened.push(...servers);
      addTlsListeners(d, rs, servers);
      d.logger.log('debug', `listening for TLS on port ${c.tls_port}`);
    }
    if (c.listen_tcp) {
      const servers = await listenTcp({ host: c.listen_addr, port: c.tcp_port, backlog });
      opened.push(...servers);
      addTcpListeners(d, servers);
      d.logger.log('debug', `listening for TCP on port ${c.tcp_port}`);
    }
  } catch (e) {
    for (const s of opened) s.close();
    throw e;
  }
  return rs;
}

/** Unit names whose sockets systemd may pass (FileDescriptorName defaults to the unit name). */
export const ACTIVATION_NAMES = {
  rw: 'virtproxyd.socket',
  ro: 'virtproxyd-ro.socket',
  admin: 'virtproxyd-admin.socket',
  tcp: 'virtproxyd-tcp.socket',
  tls: 'virtproxyd-tls.socket',
} as const;

/**
 * Socket-activation mode: every main-server service comes from the passed fds, claimed by unit
 * name; nothing is created from the config (listen_tcp, listen_tls and the socket permission
 * keys are then ignored, as in libvirt), and a service without fds simply does not exist.
 */
async function setupActivatedServices(d: Daemon, rs: RemoteServices): Promise<void> {
  const act = d.activation;
  if (act === null) return;
  const c = d.config;
  const backlog = c.max_queued_clients || 30;
  const unix: Array<{ name: string; path: string; service: ServiceInfo }> = [
    {
      name: ACTIVATION_NAMES.rw,
      path: d.paths.rwSocket,
      service: { name: 'rw', readonly: false, auth: c.auth_unix_rw, transport: 'unix' },
    },
  ];
  if (d.paths.roSocket !== null) {
    unix.push({
      name: ACTIVATION_NAMES.ro,
      path: d.paths.roSocket,
      service: { name: 'ro', readonly: true, auth: c.auth_unix_ro, transport: 'unix' },
    });
  }
  for (const u of unix) {
    const fds = act.take(u.name);
    if (fds.length === 0 && act.owned) {
      // Restart: our predecessor bound this path itself; we bind a fresh socket and rename it
      // over the path, so connections move to us without a moment of "no such socket".
      const server = net.createServer({ pauseOnConnect: true });
      const perms = u.service.readonly ? c.unix_sock_ro_perms : c.unix_sock_rw_perms;
      await listenUnixReplacing(server, {
        path: u.path,
        mode: socketMode(perms),
        gid: c.unix_sock_group !== null ? lookupGroup(c.unix_sock_group) : null,
        backlog,
      });
      d.addListener({ server, unlinkPath: u.path, service: u.service });
      continue;
    }
    // Sockets from systemd are systemd's: they stay on disk when we exit.
    const servers = await listenOnFds(fds, { pause: true, backlog });
    for (const server of servers) d.addListener({ server, unlinkPath: null, service: u.service });
  }
  const tlsFds = act.take(ACTIVATION_NAMES.tls);
  const tcpFds = act.take(ACTIVATION_NAMES.tcp);
  setupSasl(d, tcpFds.length > 0, tlsFds.length > 0);
  if (tlsFds.length > 0) {
    prepareTls(d, rs);
    addTlsListeners(d, rs, await listenOnFds(tlsFds, { pause: false, backlog }));
  }
  if (tcpFds.length > 0) addTcpListeners(d, await listenOnFds(tcpFds, { pause: false, backlog }));
  d.logger.log(
    'info',
    `${act.owned ? 'restart hand-over' : 'socket activation'}: ${d.listeners.length} listening sockets`,
  );
}
