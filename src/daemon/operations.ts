// Daemon layer: wires the operator-facing parts into a Daemon: the admin server on
// libvirt-admin-sock (what virt-admin talks to) and, when metrics_listen is set, the Prometheus
// endpoint. Both are optional extras around the proxy; neither touches the forwarding path.

import fs from 'node:fs';
import type net from 'node:net';
import { AdminServer, type AdminPeer } from '../admin/admin-server.js';
import type { AdminDaemon } from '../admin/admin-dispatch.js';
import { RpcServerView, type LocalPeer } from '../admin/rpc-server-view.js';
import { readPeerIdentity } from '../native/peer-identity.js';
import { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { parseMetricsListen, startMetricsEndpoint, type MetricsEndpoint } from '../metrics/metrics-server.js';
import type { Daemon } from './daemon.js';
import { listenOnFds } from '../transport/socket-activation.js';
import { ACTIVATION_NAMES, loadTls, type RemoteServices } from './remote-services.js';
import { openUnixListener } from './services.js';

export interface AdminSetupOptions {
  /** The TLS service, for virt-admin server-update-tls; null when there is none. */
  remote: RemoteServices | null;
  /** Stops the daemon and exits (virt-admin daemon-shutdown). */
  shutdown(): void;
}

function peerOf(sock: net.Socket): LocalPeer | null {
  const id = readPeerIdentity(sock);
  if (id === null) return null;
  return {
    uid: id.uid,
    gid: id.gid,
    pid: id.pid,
    userName: id.userName,
    groupName: id.groupName,
    selinuxContext: id.selinuxContext,
  };
}

/** Reloads the TLS service's files in place, as libvirt's virNetTLSContextReloadForServer. */
function tlsReloader(d: Daemon, rs: RemoteServices | null): (() => void) | null {
  if (rs === null || rs.tls === null) return null;
  const acceptor = rs.tls;
  return () => {
    const m = loadTls(d, d.config);
    rs.tlsMaterial = m;
    acceptor.update({ secure: m.secure, checkPeer: m.checkPeer });
    d.logger.log('info', 'TLS files reloaded', 'daemon.admin');
  };
}

/**
 * Builds the admin server and opens its socket (mode unix_sock_admin_perms). Returns null when
 * there is no admin socket: a non-root daemon given unix_sock_dir has none, as in libvirt.
 */
export async function setupAdminService(d: Daemon, opts: AdminSetupOptions): Promise<AdminServer | null> {
  const c = d.config;
  const log = d.logger.child('daemon.admin');
  const admin = new AdminServer({
    maxClients: c.admin_max_clients,
    minWorkers: c.admin_min_workers,
    maxWorkers: c.admin_max_workers,
    peerOf: (s): AdminPeer | null => peerOf(s),
    allowedUid: process.geteuid?.() ?? 0,
    log,
    onClientCountChange: () => d.clientCountChanged(),
  });
  const main = new RpcServerView(d.server, {
    minWorkers: c.min_workers,
    maxWorkers: c.max_workers,
    prioWorkers: c.prio_workers,
    localPeer: (client) => {
      try {
        return peerOf(client.socket);
      } catch {
        return null;
      }
    },
    tlsReload: () => tlsReloader(d, opts.remote),
  });
  const daemonView: AdminDaemon = {
    // libvirt lists the servers in hash-table order; for these two names that is admin first.
    servers: () => [admin, main],
    logging: {
      filters: () => d.logger.filters(),
      outputs: () => d.logger.outputs(),
      setFilters: (src) => {
        d.logger.setFilters(src);
        log('info', `log filters set to '${d.logger.filters().text ?? ''}'`);
      },
      setOutputs: (src) => {
        d.logger.setOutputs(src);
        log('info', `log outputs set to '${d.logger.outputs().text}'`);
      },
    },
    setTimeout: (seconds) => {
      log('info', `auto shutdown timeout set to ${seconds} s`);
      d.setTimeout(seconds);
    },
    shutdown: (preserve) => {
      log('info', `shutdown requested through the admin interface${preserve ? ' (preserve)' : ''}`);
      opts.shutdown();
    },
  };
  admin.daemon = daemonView;
  d.addClientCounter(() => admin.size);
  const backlog = c.admin_max_queued_clients || 30;
  const act = d.activation;
  const passed = act?.take(ACTIVATION_NAMES.admin) ?? [];
  if (act !== null && !act.owned) {
    // systemd made the sockets: the admin service exists only if virtproxyd-admin.socket passed
    // one, and that socket is systemd's to remove.
    const servers = await listenOnFds(passed, { pause: true, backlog });
    for (const srv of servers) srv.on('connection', (s: net.Socket) => admin.accept(s));
    d.onStop(() => {
      for (const srv of servers) srv.close();
      admin.closeAll();
    });
    log('debug', `admin server on ${servers.length} activated socket(s)`);
    return admin;
  }
  const sockPath = d.paths.adminSocket;
  if (sockPath === null) {
    log('debug', 'no admin socket: a session daemon with unix_sock_dir has none');
    return admin;
  }
  // Manual mode, or a restart: the predecessor freed the path for us.
  const srv = await openUnixListener(sockPath, c.unix_sock_admin_perms, c.unix_sock_group, backlog);
  srv.on('connection', (s: net.Socket) => admin.accept(s));
  d.onStop(() => {
    srv.close();
    fs.rmSync(sockPath, { force: true });
    admin.closeAll();
  });
  log('debug', `admin server listening on ${sockPath}`);
  return admin;
}

/** Starts the metrics endpoint when metrics_listen is set; null otherwise. */
export async function setupMetrics(d: Daemon, admin: AdminServer | null): Promise<MetricsEndpoint | null> {
  const listen = d.config.metrics_listen;
  if (listen === null) return null;
  const metrics = new ProxyMetrics({
    clients: () => d.server.clients.values(),
    queued: () => d.server.queued,
    adminClients: () => admin?.size ?? 0,
  });
  metrics.subscribe();
  const log = d.logger.child('metrics');
  const endpoint = await startMetricsEndpoint(
    parseMetricsListen(listen),
    () => metrics.render(),
    (e) => log('warn', `metrics endpoint: ${e.message}`),
  );
  d.onStop(async () => {
    metrics.unsubscribe();
    await endpoint.close();
  });
  log('info', `metrics on http://${endpoint.address}/metrics`);
  return endpoint;
}
