// Daemon layer: `virtproxyd --doctor`. Looks at the configuration, the proxy's own sockets, the
// per-driver daemons behind it, the TLS certificates and the admin and metrics endpoints, and says
// for each problem what a client would see and how to fix it. It only reads and connects; it never
// changes anything. Exit status 0 means healthy (warnings allowed), 1 means a client would fail.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../config/conf-parser.js';
import { loadDaemonConfig, socketMode, xdgRuntimeDir, type DaemonConfig } from '../config/daemon-config.js';
import { resolveTlsFiles } from '../auth/tls-files.js';
import { sanityCheckCertificates } from '../auth/tls-cert-check.js';
import {
  ADMIN_PROC_CONNECT_OPEN,
  ADMIN_PROC_SERVER_GET_CLIENT_LIMITS,
  decodeTypedParamList,
  encodeAdminArgs,
} from '../admin/admin-protocol.js';
import {
  ADMIN_PROGRAM,
  REMOTE_AUTH_NONE,
  REMOTE_AUTH_POLKIT,
  REMOTE_AUTH_SASL,
  REMOTE_PROC_AUTH_LIST,
  REMOTE_PROC_CONNECT_CLOSE,
  REMOTE_PROC_CONNECT_GET_URI,
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_OK,
  VIR_NET_REPLY,
} from '../protocol/constants.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import { encodeMessage, framePayload, readHeader } from '../protocol/header.js';
import { decodeAuthList, encodeConnectOpenArgs } from '../protocol/payloads.js';
import { decodeRemoteError } from '../protocol/remote-error.js';
import { XdrReader } from '../protocol/xdr-reader.js';
import { daemonSocketName } from '../proxy/uri-router.js';
import { LIBVIRT_VERSION } from '../protocol/constants.js';
import { parseLogFilters, parseLogOutputs } from './log-settings.js';
import { daemonPaths, type DaemonPaths } from './paths.js';

export type CheckStatus = 'ok' | 'info' | 'warn' | 'fail';

export interface DoctorCheck {
  status: CheckStatus;
  /** What was looked at: "config", "socket rw", "driver qemu", "tls", ... */
  area: string;
  message: string;
  /** The error a client would get, in libvirt's words, when this is a problem. */
  clientSees?: string;
  fix?: string;
}

export interface DoctorOptions {
  /** -f: must exist; null = the default file, which may be missing. */
  configFile: string | null;
  privileged: boolean;
  env: NodeJS.ProcessEnv;
  /** Per connection attempt. */
  timeoutMs?: number;
  now?: Date;
}

/** Hypervisor drivers a client names in a URI, and the secondary drivers virtproxyd routes to. */
const HYPERVISORS = ['qemu', 'lxc', 'xen', 'vbox', 'bhyve', 'vz', 'ch'];
const SECONDARY = ['network', 'storage', 'nodedev', 'secret', 'nwfilter', 'interface'];
const UNIT_OF: Record<string, string> = { xen: 'virtxend', ch: 'virtchd' };
/** Certificates this close to expiry are reported. */
const EXPIRY_WARN_DAYS = 30;

function unitName(driver: string): string {
  return UNIT_OF[driver] ?? `virt${driver}d`;
}

function errnoText(code: string | undefined): string {
  switch (code) {
    case 'ENOENT':
      return 'No such file or directory';
    case 'ECONNREFUSED':
      return 'Connection refused';
    case 'EACCES':
      return 'Permission denied';
    case 'ETIMEDOUT':
      return 'Connection timed out';
    default:
      return code ?? 'unknown error';
  }
}

/** One RPC connection for a few sequential calls, with a deadline on each step. */
class Probe {
  private decoder: FrameDecoder;
  private waiting: ((f: Buffer | Error) => void) | null = null;
  private serial = 1;
  private closedErr: Error | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    this.decoder = new FrameDecoder(
      (f) => this.deliver(Buffer.from(f)),
      (e) => this.fail(e),
    );
    socket.on('data', (c: Buffer) => this.decoder.push(c));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('the daemon closed the connection')));
  }

  static connect(target: string | { host: string; port: number }, timeoutMs: number): Promise<Probe> {
    return new Promise((resolve, reject) => {
      const s = typeof target === 'string' ? net.connect({ path: target }) : net.connect(target);
      const timer = setTimeout(() => {
        s.destroy();
        reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(new Probe(s, timeoutMs));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  private deliver(f: Buffer): void {
    const h = readHeader(f);
    if (h.type !== VIR_NET_REPLY) return; // keepalive and events are not what we wait for
    const w = this.waiting;
    this.waiting = null;
    w?.(f);
  }

  private fail(e: Error): void {
    this.closedErr ??= e;
    const w = this.waiting;
    this.waiting = null;
    w?.(e);
  }

  /** Resolves with the reply: status and payload. */
  call(prog: number, proc: number, payload: Buffer | null): Promise<{ ok: boolean; payload: Buffer }> {
    if (this.closedErr !== null) return Promise.reject(this.closedErr);
    const frame = encodeMessage(
      { prog, vers: 1, proc, type: VIR_NET_CALL, serial: this.serial++, status: VIR_NET_OK },
      payload,
    );
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(Object.assign(new Error('no reply in time'), { code: 'ETIMEDOUT' }));
      }, this.timeoutMs);
      this.waiting = (f) => {
        clearTimeout(timer);
        if (f instanceof Error) reject(f);
        else resolve({ ok: readHeader(f).status === VIR_NET_OK, payload: framePayload(f) });
      };
      this.socket.write(frame);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

function remoteMessage(payload: Buffer): string {
  try {
    return decodeRemoteError(payload).message ?? 'unknown error';
  } catch {
    return 'undecodable error';
  }
}

interface SocketState {
  exists: boolean;
  isSocket: boolean;
  mode: number | null;
  gid: number | null;
  /** null when it answers; else the errno code of connecting. */
  connectError: string | null;
}

async function socketState(p: string, timeoutMs: number): Promise<SocketState> {
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(p);
  } catch {
    st = null;
  }
  if (st === null) return { exists: false, isSocket: false, mode: null, gid: null, connectError: 'ENOENT' };
  let connectError: string | null = null;
  try {
    (await Probe.connect(p, timeoutMs)).close();
  } catch (e) {
    connectError = (e as NodeJS.ErrnoException).code ?? 'EIO';
  }
  return { exists: true, isSocket: st.isSocket(), mode: st.mode & 0o7777, gid: st.gid, connectError };
}

const AUTH_NAMES: Record<number, string> = {
  [REMOTE_AUTH_NONE]: 'none',
  [REMOTE_AUTH_SASL]: 'sasl',
  [REMOTE_AUTH_POLKIT]: 'polkit',
};

export class Doctor {
  readonly checks: DoctorCheck[] = [];
  private readonly timeoutMs: number;
  private readonly now: Date;

  constructor(private readonly opts: DoctorOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.now = opts.now ?? new Date();
  }

  private add(c: DoctorCheck): void {
    this.checks.push(c);
  }

  get healthy(): boolean {
    return !this.checks.some((c) => c.status === 'fail');
  }

  async run(): Promise<DoctorCheck[]> {
    const config = this.checkConfig();
    if (config === null) return this.checks;
    const paths = daemonPaths({
      privileged: this.opts.privileged,
      env: this.opts.env,
      unixSockDir: config.unix_sock_dir ?? undefined,
    });
    this.checkLogging(config);
    await this.checkOwnSockets(config, paths);
    await this.checkDrivers(config);
    this.checkTls(config);
    await this.checkAdmin(paths);
    await this.checkMetrics(config);
    return this.checks;
  }

  private checkConfig(): Readonly<DaemonConfig> | null {
    const file =
      this.opts.configFile ??
      daemonPaths({ privileged: this.opts.privileged, env: this.opts.env }).configFile;
    try {
      const r = loadDaemonConfig({
        file,
        mustExist: this.opts.configFile !== null,
        privileged: this.opts.privileged,
        env: this.opts.env,
      });
      const exists = fs.existsSync(file);
      this.add({
        status: 'ok',
        area: 'config',
        message: exists ? `${file} parses` : `${file} does not exist; built-in defaults apply`,
      });
      if (r.unknownKeys.length > 0) {
        this.add({
          status: 'warn',
          area: 'config',
          message: `unknown keys are ignored: ${r.unknownKeys.join(', ')}`,
          fix: 'check the spelling against virtproxyd.conf(5) / docs/config.md',
        });
      }
      if (r.notSupportedYet.length > 0) {
        this.add({
          status: 'warn',
          area: 'config',
          message: `keys this implementation does not act on: ${r.notSupportedYet.join(', ')}`,
        });
      }
      return r.config;
    } catch (e) {
      const msg = e instanceof ConfigError ? e.message : (e as Error).message;
      this.add({
        status: 'fail',
        area: 'config',
        message: `cannot load ${file}: ${msg}`,
        clientSees: 'nothing to connect to: the daemon refuses to start with this file (exit status 1)',
        fix: 'correct the line named above, then start the daemon again',
      });
      return null;
    }
  }

  private checkLogging(c: Readonly<DaemonConfig>): void {
    try {
      if (c.log_filters !== null) parseLogFilters(c.log_filters);
      if (c.log_outputs !== null) {
        for (const o of parseLogOutputs(c.log_outputs)) {
          if (o.dest !== 'file' || o.name === null) continue;
          const dir = path.dirname(o.name);
          try {
            fs.accessSync(fs.existsSync(o.name) ? o.name : dir, fs.constants.W_OK);
          } catch {
            throw new Error(`failed to open ${o.name}: not writable`);
          }
        }
      }
      this.add({ status: 'ok', area: 'logging', message: 'log_filters and log_outputs are valid' });
    } catch (e) {
      this.add({
        status: 'fail',
        area: 'logging',
        message: (e as Error).message,
        clientSees: 'nothing: the daemon stops at start-up with "Can\'t initialize logging"',
        fix: 'fix log_filters / log_outputs (syntax: docs/logging.md)',
      });
    }
  }

  private async checkOwnSockets(c: Readonly<DaemonConfig>, paths: DaemonPaths): Promise<void> {
    const socks: Array<{ name: string; path: string; perms: string; auth: string }> = [
      { name: 'rw', path: paths.rwSocket, perms: c.unix_sock_rw_perms, auth: c.auth_unix_rw },
    ];
    if (paths.roSocket !== null) {
      socks.push({ name: 'ro', path: paths.roSocket, perms: c.unix_sock_ro_perms, auth: c.auth_unix_ro });
    }
    for (const s of socks) {
      const st = await socketState(s.path, this.timeoutMs);
      const area = `socket ${s.name}`;
      if (!st.exists) {
        this.add({
          status: 'fail',
          area,
          message: `${s.path} does not exist: virtproxyd is not running (or uses another unix_sock_dir)`,
          clientSees: `Failed to connect socket to '${s.path}': No such file or directory`,
          fix: 'start it: systemctl start virtproxyd.socket (or run virtproxyd)',
        });
        continue;
      }
      if (!st.isSocket) {
        this.add({
          status: 'fail',
          area,
          message: `${s.path} exists but is not a socket`,
          clientSees: `Failed to connect socket to '${s.path}': Connection refused`,
          fix: `remove ${s.path} and start virtproxyd`,
        });
        continue;
      }
      if (st.connectError !== null) {
        this.add({
          status: 'fail',
          area,
          message: `${s.path} is a socket nobody serves (${errnoText(st.connectError)}): a stale leftover`,
          clientSees: `Failed to connect socket to '${s.path}': ${errnoText(st.connectError)}`,
          fix: 'start virtproxyd; it replaces a stale socket itself',
        });
        continue;
      }
      const want = socketMode(s.perms);
      const mode = st.mode ?? 0;
      const who =
        (mode & 0o007) !== 0
          ? 'every local user'
          : (mode & 0o070) !== 0
            ? 'the socket group'
            : 'its owner only';
      this.add({
        status: 'ok',
        area,
        message: `${s.path} accepts connections (mode ${mode.toString(8).padStart(4, '0')}: ${who} may connect; auth ${s.auth})`,
      });
      if (mode !== want) {
        this.add({
          status: 'warn',
          area,
          message: `mode is ${mode.toString(8).padStart(4, '0')} but unix_sock_${s.name}_perms says ${s.perms}`,
          clientSees:
            (mode & 0o007) === 0
              ? `Failed to connect socket to '${s.path}': Permission denied (for other users)`
              : undefined,
          fix: 'systemd socket units set their own SocketMode; otherwise restart the daemon to re-create the socket',
        });
      }
      if (s.name === 'rw') await this.endToEnd(s.path);
    }
  }

  /** What a client does first: AUTH_LIST, then (when no auth is needed) open the default URI. */
  private async endToEnd(sock: string): Promise<void> {
    let p: Probe | null = null;
    try {
      p = await Probe.connect(sock, this.timeoutMs);
      const auth = await p.call(REMOTE_PROGRAM, REMOTE_PROC_AUTH_LIST, null);
      if (!auth.ok) throw new Error(remoteMessage(auth.payload));
      const types = decodeAuthList(auth.payload);
      const names = types.map((t) => AUTH_NAMES[t] ?? String(t)).join(', ');
      if (!types.includes(REMOTE_AUTH_NONE)) {
        this.add({
          status: 'info',
          area: 'end-to-end',
          message: `the rw socket asks this user to authenticate with ${names}; not opening a connection`,
          fix:
            types[0] === REMOTE_AUTH_POLKIT
              ? 'users need the polkit action org.libvirt.unix.manage (or membership of a group a rule allows)'
              : 'clients need SASL credentials (saslpasswd2 -a libvirt <user>)',
        });
        return;
      }
      const open = await p.call(
        REMOTE_PROGRAM,
        REMOTE_PROC_CONNECT_OPEN,
        encodeConnectOpenArgs({ name: null, flags: 0 }),
      );
      if (!open.ok) {
        const msg = remoteMessage(open.payload);
        this.add({
          status: 'fail',
          area: 'end-to-end',
          message: 'opening the default URI through the proxy fails',
          clientSees: msg,
          fix: 'start a hypervisor daemon (e.g. systemctl start virtqemud.socket); see the driver lines',
        });
        return;
      }
      const uri = await p.call(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_URI, null);
      const name = uri.ok ? new XdrReader(uri.payload).string(4096) : '?';
      this.add({
        status: 'ok',
        area: 'end-to-end',
        message: `a client opening the default URI gets ${name}`,
      });
      await p.call(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_CLOSE, null).catch(() => undefined);
    } catch (e) {
      this.add({
        status: 'fail',
        area: 'end-to-end',
        message: `the proxy does not answer a first call: ${(e as Error).message}`,
        clientSees: 'the client hangs or sees "End of file while reading data"',
        fix: 'check the daemon log (docs/logging.md); the daemon may be at max_clients (see the admin line)',
      });
    } finally {
      p?.close();
    }
  }

  private async checkDrivers(c: Readonly<DaemonConfig>): Promise<void> {
    const configured = new Map(c.backend_sockets.map((o) => [o.driver, o]));
    const user = !this.opts.privileged;
    const sessionDir = path.join(xdgRuntimeDir(this.opts.env), 'libvirt');
    let hypervisors = 0;
    const absent: string[] = [];
    const drivers = [...new Set([...HYPERVISORS, ...SECONDARY, ...configured.keys()])];
    for (const d of drivers) {
      const o = configured.get(d);
      const rw =
        o?.rwSocket ??
        (user
          ? path.join(sessionDir, daemonSocketName(d))
          : path.join(c.backend_sock_dir, daemonSocketName(d)));
      const ro = user ? null : (o?.roSocket ?? path.join(c.backend_sock_dir, `${daemonSocketName(d)}-ro`));
      const rws = await socketState(rw, this.timeoutMs);
      const ros = ro === null ? null : await socketState(ro, this.timeoutMs);
      const uri = `${d}:///${user ? 'session' : 'system'}`;
      const area = `driver ${d}`;
      if (rws.connectError === null && (ros === null || ros.connectError === null)) {
        if (HYPERVISORS.includes(d)) hypervisors++;
        this.add({ status: 'ok', area, message: `${rw}${ro !== null ? ` and ${ro}` : ''} answer` });
        continue;
      }
      const broken = rws.exists || (ros?.exists ?? false) || o !== undefined;
      if (!broken) {
        absent.push(d);
        continue;
      }
      const bad = rws.connectError !== null ? { p: rw, s: rws } : { p: ro ?? '', s: ros as SocketState };
      const text = errnoText(bad.s.connectError ?? undefined);
      if (rws.connectError === null && HYPERVISORS.includes(d)) hypervisors++;
      this.add({
        status: 'fail',
        area,
        message: `${bad.p}: ${text}${bad.s.exists ? ' (the socket is there but nothing serves it)' : ''}`,
        clientSees: `virsh -c ${uri}${bad.p === ro ? ' --readonly' : ''}: Failed to connect socket to '${bad.p}': ${text}`,
        fix: `restart the driver daemon: systemctl restart ${unitName(d)}.socket`,
      });
    }
    if (absent.length > 0) {
      const first = absent[0] ?? '';
      const sock = path.join(user ? sessionDir : c.backend_sock_dir, daemonSocketName(first));
      this.add({
        status: 'info',
        area: 'drivers',
        message: `not installed or not started (no socket): ${absent.join(', ')}`,
        clientSees: `virsh -c ${first}:///${user ? 'session' : 'system'}: Failed to connect socket to '${sock}': No such file or directory`,
        fix: `only if you need one: systemctl enable --now ${absent.map((d) => `${unitName(d)}.socket`).join(' | ')}`,
      });
    }
    if (hypervisors === 0) {
      this.add({
        status: 'fail',
        area: 'drivers',
        message: 'no hypervisor daemon answers: every hypervisor URI fails',
        clientSees: `no connection driver available for <null> (or "Failed to connect socket to ...")`,
        fix: 'start at least one, e.g. systemctl enable --now virtqemud.socket; check backend_sock_dir',
      });
    }
  }

  private checkTls(c: Readonly<DaemonConfig>): void {
    const configuredFiles = c.cert_file !== null || c.key_file !== null || c.ca_file !== null;
    if (!c.listen_tls && !configuredFiles) {
      this.add({ status: 'info', area: 'tls', message: 'listen_tls is off; no certificates to check' });
      return;
    }
    const level: CheckStatus = c.listen_tls ? 'fail' : 'warn';
    const clientSees = c.listen_tls
      ? 'the daemon does not start with TLS enabled, so remote clients get "Connection refused"'
      : undefined;
    let files;
    try {
      files = resolveTlsFiles(c, this.opts.privileged, homedir());
    } catch (e) {
      this.add({
        status: level,
        area: 'tls',
        message: (e as Error).message,
        clientSees,
        fix: 'set key_file, cert_file and ca_file, or install /etc/pki/CA/cacert.pem and /etc/pki/libvirt/*',
      });
      return;
    }
    if (!c.tls_no_sanity_certificate) {
      try {
        for (const w of sanityCheckCertificates({
          caFile: files.caFile,
          certFile: files.certFile,
          role: 'server',
          now: this.now,
        })) {
          this.add({ status: 'warn', area: 'tls', message: w });
        }
      } catch (e) {
        this.add({
          status: level,
          area: 'tls',
          message: (e as Error).message,
          clientSees,
          fix: 'issue a new server certificate from the CA in ca_file (certtool / openssl)',
        });
        return;
      }
    }
    for (const [what, file] of [
      ['server certificate', files.certFile],
      ['CA certificate', files.caFile],
    ] as const) {
      try {
        const x = new X509Certificate(fs.readFileSync(file));
        const days = Math.floor((new Date(x.validTo).getTime() - this.now.getTime()) / 86_400_000);
        if (days < 0) {
          this.add({
            status: level,
            area: 'tls',
            message: `${what} ${file} expired on ${x.validTo}`,
            clientSees: 'TLS handshake failures ("The certificate has expired")',
            fix: 'renew it and run virt-admin server-update-tls virtproxyd (no restart needed)',
          });
        } else {
          this.add({
            status: days < EXPIRY_WARN_DAYS ? 'warn' : 'ok',
            area: 'tls',
            message: `${what} ${file} is valid until ${x.validTo} (${days} days)`,
            fix:
              days < EXPIRY_WARN_DAYS
                ? 'renew it soon, then virt-admin server-update-tls virtproxyd'
                : undefined,
          });
        }
        if (what === 'server certificate') {
          const key = createPrivateKey(fs.readFileSync(files.keyFile));
          if (!x.checkPrivateKey(key)) {
            this.add({
              status: level,
              area: 'tls',
              message: `${files.keyFile} is not the key of ${file}`,
              clientSees: 'TLS handshake failures',
              fix: 'install the key that belongs to the certificate',
            });
          }
        }
      } catch (e) {
        this.add({
          status: level,
          area: 'tls',
          message: `cannot read ${what} ${file}: ${(e as Error).message}`,
          clientSees,
        });
      }
    }
  }

  private async checkAdmin(paths: DaemonPaths): Promise<void> {
    const sock = paths.adminSocket;
    if (sock === null) {
      this.add({
        status: 'info',
        area: 'admin',
        message: 'no admin socket (session daemon with unix_sock_dir)',
      });
      return;
    }
    let p: Probe | null = null;
    try {
      p = await Probe.connect(sock, this.timeoutMs);
      const open = await p.call(
        ADMIN_PROGRAM,
        ADMIN_PROC_CONNECT_OPEN,
        encodeAdminArgs(ADMIN_PROC_CONNECT_OPEN, { flags: 0 }),
      );
      if (!open.ok) throw new Error(remoteMessage(open.payload));
      const r = await p.call(
        ADMIN_PROGRAM,
        ADMIN_PROC_SERVER_GET_CLIENT_LIMITS,
        encodeAdminArgs(ADMIN_PROC_SERVER_GET_CLIENT_LIMITS, { server: 'virtproxyd', flags: 0 }),
      );
      if (!r.ok) throw new Error(remoteMessage(r.payload));
      const v = Object.fromEntries(
        decodeTypedParamList(r.payload, 32).map((x) => [x.field, Number(x.value)]),
      );
      const n = v['nclients'] ?? 0;
      const max = v['nclients_max'] ?? 0;
      this.add({ status: 'ok', area: 'admin', message: `${sock} answers; ${n} of ${max} clients connected` });
      if (max > 0 && n >= max) {
        this.add({
          status: 'fail',
          area: 'limits',
          message: `the virtproxyd server is at max_clients (${n}/${max}): new connections wait`,
          clientSees: 'new clients hang after connecting until another client leaves',
          fix: 'virt-admin srv-clients-set virtproxyd --max-clients N (live), and max_clients in the config',
        });
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.add({
        status: 'warn',
        area: 'admin',
        message: `${sock}: ${code !== undefined ? errnoText(code) : (e as Error).message}`,
        fix: 'virt-admin needs the daemon running and must run as the daemon user (root)',
      });
    } finally {
      p?.close();
    }
  }

  private async checkMetrics(c: Readonly<DaemonConfig>): Promise<void> {
    if (c.metrics_listen === null) {
      this.add({ status: 'info', area: 'metrics', message: 'metrics_listen is unset; no endpoint' });
      return;
    }
    const url = `http://${c.metrics_listen}/metrics`;
    try {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), this.timeoutMs);
      const r = await fetch(url, { signal: ac.signal });
      clearTimeout(timer);
      this.add({
        status: r.ok ? 'ok' : 'warn',
        area: 'metrics',
        message: `${url} answers ${r.status}`,
      });
    } catch (e) {
      this.add({
        status: 'warn',
        area: 'metrics',
        message: `${url} does not answer: ${(e as Error).message}`,
        fix: 'the endpoint exists only while the daemon runs; check that the address is local and free',
      });
    }
  }
}

const TAG: Record<CheckStatus, string> = { ok: ' ok ', info: 'info', warn: 'WARN', fail: 'FAIL' };

export function formatDoctorReport(checks: readonly DoctorCheck[], healthy: boolean): string {
  const lines = [`virtproxyd doctor (libvirt ${LIBVIRT_VERSION} compatible)`];
  for (const c of checks) {
    lines.push(`[${TAG[c.status]}] ${c.area}: ${c.message}`);
    if (c.clientSees !== undefined && c.status !== 'ok') lines.push(`       a client sees: ${c.clientSees}`);
    if (c.fix !== undefined && c.status !== 'ok') lines.push(`       fix: ${c.fix}`);
  }
  const fails = checks.filter((c) => c.status === 'fail').length;
  const warns = checks.filter((c) => c.status === 'warn').length;
  lines.push(
    healthy
      ? `healthy${warns > 0 ? ` (${warns} warning${warns === 1 ? '' : 's'})` : ''}`
      : `unhealthy: ${fails} problem${fails === 1 ? '' : 's'}, ${warns} warning${warns === 1 ? '' : 's'}`,
  );
  return lines.join('\n') + '\n';
}

/** Runs every check, prints the report, and returns the exit status (0 healthy, 1 not). */
export async function runDoctor(opts: DoctorOptions, out: (s: string) => void): Promise<number> {
  const d = new Doctor(opts);
  await d.run();
  out(formatDoctorReport(d.checks, d.healthy));
  return d.healthy ? 0 : 1;
}
