// Proxy layer: turns the name a client passes to CONNECT_OPEN into the per-driver daemon socket
// to forward to, the name and flags to open there, and the URI to report back (NOTES §4.2–§4.4).
// Pure apart from the injected existence probe, so every rule is unit-testable.

import path from 'node:path';
import {
  REMOTE_DRIVER_OPEN_RO,
  REMOTE_DRIVER_OPEN_USER,
  VIR_ERR_INTERNAL_ERROR,
  VIR_ERR_INVALID_ARG,
  VIR_ERR_NO_CONNECT,
  VIR_ERR_NO_SUPPORT,
  VIR_FROM_DOMAIN,
  VIR_FROM_NONE,
  VIR_FROM_REMOTE,
} from '../protocol/constants.js';
import { remoteError, type RemoteError } from '../protocol/remote-error.js';

export interface RouterConfig {
  /** Whether the proxy runs as root (system sockets) or not (session sockets). */
  privileged: boolean;
  /** Directory of `virt<driver>d-sock` for system URIs. */
  backendSockDir: string;
  /** Session socket directory ($XDG_RUNTIME_DIR/libvirt). */
  sessionSockDir: string;
  /** Driver name → read-write socket path; the read-only one is the same path plus "-ro". */
  driverSockets: ReadonlyMap<string, string>;
  /** Existence test for probing; injected for tests. */
  exists: (p: string) => boolean;
}

export interface Route {
  /** Socket to connect to. */
  socketPath: string;
  /** Name sent in the backend's CONNECT_OPEN. */
  backendName: string;
  /** Flags sent in the backend's CONNECT_OPEN (remote driver's internal bits). */
  backendFlags: number;
  /** What CONNECT_GET_URI reports to the client. */
  uri: string;
  driver: string;
  readonly: boolean;
}

export type RouteResult = { ok: true; route: Route } | { ok: false; error: RemoteError };

interface ParsedUri {
  scheme: string;
  server: string | null;
  path: string;
  query: Array<[string, string]>;
  fragment: string | null;
}

const URI_RE = /^([A-Za-z][A-Za-z0-9+.-]*):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/;

/** Drivers that live inside libvirt.so: the C virtproxyd opens them in-process (and then fails). */
const IN_PROCESS_DRIVERS = new Set([
  'test',
  'openvz',
  'vmwareplayer',
  'vmwarews',
  'vmwarefusion',
  'esx',
  'vpx',
  'gsx',
  'hyperv',
]);

const TRANSPORTS = new Set(['tls', 'unix', 'ssh', 'libssh2', 'ext', 'tcp', 'libssh']);

/** URI parameters the remote driver consumes itself and never forwards. */
const CONSUMED_PARAMS = new Set([
  'name',
  'command',
  'socket',
  'auth',
  'sshauth',
  'netcat',
  'keyfile',
  'pkipath',
  'known_hosts',
  'known_hosts_verify',
  'tls_priority',
  'mode',
  'proxy',
  'no_sanity',
  'no_verify',
  'no_tty',
  'authfile',
]);

/** Probing order for an empty name (NOTES §4.4). */
const SYSTEM_PROBE = ['xen', 'qemu', 'lxc', 'vbox', 'bhyve', 'vz'];
const SESSION_PROBE = ['qemu', 'vbox'];

function parseUri(name: string): ParsedUri | null {
  const m = URI_RE.exec(name);
  if (m === null) return null;
  const query: Array<[string, string]> = [];
  if (m[4] !== undefined && m[4] !== '') {
    for (const part of m[4].split(/[&;]/)) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const k = eq < 0 ? part : part.slice(0, eq);
      const v = eq < 0 ? '' : part.slice(eq + 1);
      query.push([safeDecode(k), safeDecode(v)]);
    }
  }
  return {
    scheme: m[1] ?? '',
    server: m[2] === undefined ? null : m[2],
    path: m[3] ?? '',
    query,
    fragment: m[5] ?? null,
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

function encodeParam(s: string): string {
  return encodeURIComponent(s);
}

export function daemonSocketName(driver: string): string {
  return `virt${driver}d-sock`;
}

export class UriRouter {
  constructor(private readonly cfg: RouterConfig) {}

  private socketFor(driver: string, readonly: boolean, user: boolean): string {
    const mapped = this.cfg.driverSockets.get(driver);
    if (mapped !== undefined) return readonly && !user ? `${mapped}-ro` : mapped;
    if (user) return path.join(this.cfg.sessionSockDir, daemonSocketName(driver));
    return path.join(this.cfg.backendSockDir, daemonSocketName(driver) + (readonly ? '-ro' : ''));
  }

  /** Finds the daemon for an empty name, as the C daemon does; null when nothing answers. */
  probe(readonly: boolean): string | null {
    if (this.cfg.privileged) {
      for (const d of SYSTEM_PROBE) {
        if (this.cfg.exists(this.socketFor(d, readonly, false))) return `${d}:///system`;
      }
      return null;
    }
    for (const d of SESSION_PROBE) {
      if (this.cfg.exists(this.socketFor(d, false, true))) return `${d}:///session`;
    }
    return null;
  }

  route(name: string | null, readonly: boolean): RouteResult {
    let uriName = name;
    if (uriName === null || uriName === '') {
      uriName = this.probe(readonly);
      if (uriName === null) {
        return { ok: false, error: remoteError(VIR_ERR_NO_CONNECT, VIR_FROM_NONE, '<null>') };
      }
    }
    const uri = parseUri(uriName);
    if (uri === null) {
      return {
        ok: false,
        error: remoteError(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, `Unable to parse URI ${uriName}`),
      };
    }
    const plus = uri.scheme.indexOf('+');
    const driver = (plus < 0 ? uri.scheme : uri.scheme.slice(0, plus)).toLowerCase();
    const transport = plus < 0 ? null : uri.scheme.slice(plus + 1).toLowerCase();
    const hasServer = uri.server !== null && uri.server !== '';
    if (transport !== null && !TRANSPORTS.has(transport)) {
      return {
        ok: false,
        error: remoteError(
          VIR_ERR_INVALID_ARG,
          VIR_FROM_REMOTE,
          'remote_open: transport in URL not recognised (should be tls|unix|ssh|ext|tcp|libssh2|libssh)',
        ),
      };
    }
    if (transport === 'unix' && hasServer) {
      return {
        ok: false,
        error: remoteError(
          VIR_ERR_INVALID_ARG,
          VIR_FROM_REMOTE,
          `using unix socket and remote server '${uri.server}' is not supported.`,
        ),
      };
    }
    if (hasServer || (transport !== null && transport !== 'unix')) {
      return {
        ok: false,
        error: remoteError(
          VIR_ERR_NO_SUPPORT,
          VIR_FROM_REMOTE,
          'connections to remote hosts are not forwarded by this proxy',
        ),
      };
    }
    let forwardedName: string | null = null;
    const kept: Array<[string, string]> = [];
    for (const [k, v] of uri.query) {
      if (k === 'mode' && v !== 'direct') {
        return {
          ok: false,
          error: remoteError(
            VIR_ERR_INVALID_ARG,
            VIR_FROM_REMOTE,
            'Connections from inside daemon must be direct',
          ),
        };
      }
      if (k === 'socket') {
        // The C daemon would connect, as root, wherever the client says; a proxy on a
        // world-readable socket must not be a confused deputy.
        return {
          ok: false,
          error: remoteError(
            VIR_ERR_INVALID_ARG,
            VIR_FROM_REMOTE,
            "the 'socket' URI parameter is not accepted by the proxy",
          ),
        };
      }
      if (k === 'name') forwardedName = v;
      else if (!CONSUMED_PARAMS.has(k)) kept.push([k, v]);
    }
    if (IN_PROCESS_DRIVERS.has(driver) && !this.cfg.driverSockets.has(driver)) {
      return {
        ok: false,
        error: remoteError(VIR_ERR_NO_SUPPORT, VIR_FROM_DOMAIN, 'virConnectSetIdentity'),
      };
    }
    const user = !this.cfg.privileged && (uri.path === '/session' || uri.scheme.startsWith('test+'));
    if (forwardedName === null) {
      let s = `${driver}://${uri.path}`;
      if (kept.length > 0) s += '?' + kept.map(([k, v]) => `${encodeParam(k)}=${encodeParam(v)}`).join('&');
      if (uri.fragment !== null) s += `#${uri.fragment}`;
      forwardedName = s;
    }
    let flags = 0;
    if (readonly) flags |= REMOTE_DRIVER_OPEN_RO;
    if (user) flags |= REMOTE_DRIVER_OPEN_USER;
    return {
      ok: true,
      route: {
        socketPath: this.socketFor(driver, readonly, user),
        backendName: forwardedName,
        backendFlags: flags,
        uri: uriName,
        driver,
        readonly,
      },
    };
  }
}
