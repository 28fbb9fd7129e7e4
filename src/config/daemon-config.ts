// The daemon's configuration: libvirt's virtproxyd.conf keys (remote_daemon_config.c) plus our own,
// as one typed, validated, frozen object. Config layer: defaults → file → checks, nothing else;
// the daemon decides what to do with the result. Errors name the file, the line and the key.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { userInfo } from 'node:os';

import {
  ConfigError,
  MAX_CONFIG_FILE_SIZE,
  parseConf,
  type ConfEntry,
  type ConfValue,
} from './conf-parser.js';

/** Keys whose behaviour this implementation provides; any other key present is reported once. */
export const IMPLEMENTED_KEYS: ReadonlySet<string> = new Set([
  'unix_sock_dir',
  'unix_sock_group',
  'unix_sock_ro_perms',
  'unix_sock_rw_perms',
  'unix_sock_admin_perms',
  'auth_unix_ro',
  'auth_unix_rw',
  'max_clients',
  'max_client_requests',
  'keepalive_interval',
  'keepalive_count',
  'log_level',
  'log_filters',
  'log_outputs',
  'backend_sock_dir',
  'backend_sockets',
  // Operations: admin server, limits, metrics
  'metrics_listen',
  'max_anonymous_clients',
  'min_workers',
  'max_workers',
  'prio_workers',
  'admin_min_workers',
  'admin_max_workers',
  'admin_max_clients',
  'admin_max_queued_clients',
  'admin_max_client_requests',
  'admin_keepalive_interval',
  'admin_keepalive_count',
  // Off-node access (TCP/TLS listeners, x509)
  'listen_tcp',
  'listen_tls',
  'tcp_port',
  'tls_port',
  'listen_addr',
  'max_queued_clients',
  'auth_tls',
  'key_file',
  'cert_file',
  'ca_file',
  'crl_file',
  'tls_no_sanity_certificate',
  'tls_no_verify_certificate',
  'tls_allowed_dn_list',
  'tls_priority',
  // SASL
  'auth_tcp',
  'tcp_min_ssf',
  'sasl_allowed_username_list',
]);

/** Every key virtproxyd's libvirt build reads, in the order libvirt reads them. */
export const LIBVIRT_KEYS: readonly string[] = Object.freeze([
  'listen_tcp',
  'listen_tls',
  'tls_port',
  'tcp_port',
  'listen_addr',
  'auth_unix_rw',
  'auth_unix_ro',
  'auth_tcp',
  'auth_tls',
  'tcp_min_ssf',
  'access_drivers',
  'unix_sock_group',
  'unix_sock_admin_perms',
  'unix_sock_ro_perms',
  'unix_sock_rw_perms',
  'unix_sock_dir',
  'tls_no_sanity_certificate',
  'tls_no_verify_certificate',
  'key_file',
  'cert_file',
  'ca_file',
  'crl_file',
  'tls_allowed_dn_list',
  'tls_priority',
  'sasl_allowed_username_list',
  'min_workers',
  'max_workers',
  'max_clients',
  'max_queued_clients',
  'max_anonymous_clients',
  'prio_workers',
  'max_client_requests',
  'admin_min_workers',
  'admin_max_workers',
  'admin_max_clients',
  'admin_max_queued_clients',
  'admin_max_client_requests',
  'audit_level',
  'audit_logging',
  'host_uuid',
  'host_uuid_source',
  'log_level',
  'log_filters',
  'log_outputs',
  'keepalive_interval',
  'keepalive_count',
  'admin_keepalive_interval',
  'admin_keepalive_count',
  'ovs_timeout',
]);

/** Keys that are ours, not libvirt's (see docs/config.md). */
export const OWN_KEYS: readonly string[] = Object.freeze([
  'backend_sock_dir',
  'backend_sockets',
  'metrics_listen',
]);

// Still accepted by libvirt's augeas lens but ignored by the daemon, so neither unknown nor pending.
const OBSOLETE_KEYS: ReadonlySet<string> = new Set(['keepalive_required', 'admin_keepalive_required']);

const KNOWN_KEYS: ReadonlySet<string> = new Set([...LIBVIRT_KEYS, ...OWN_KEYS, ...OBSOLETE_KEYS]);

export type AuthMethod = 'none' | 'sasl' | 'polkit';
export type HostUuidSource = 'smbios' | 'machine-id';

/** One `backend_sockets` entry: the driver's read-write socket and its read-only twin. */
export interface BackendSocketOverride {
  readonly driver: string;
  readonly rwSocket: string;
  readonly roSocket: string;
}

/**
 * Property names are libvirt's key spellings so a grep works across the C and TS trees.
 * "Unset" string and list keys are null (libvirt's NULL), except where libvirt substitutes a value.
 */
export interface DaemonConfig {
  listen_tls: boolean;
  listen_tcp: boolean;
  tls_port: string;
  tcp_port: string;
  listen_addr: string | null;
  unix_sock_group: string | null;
  unix_sock_ro_perms: string;
  unix_sock_rw_perms: string;
  unix_sock_admin_perms: string;
  unix_sock_dir: string | null;
  auth_unix_ro: AuthMethod;
  auth_unix_rw: AuthMethod;
  auth_tcp: AuthMethod;
  auth_tls: AuthMethod;
  tcp_min_ssf: number;
  /** libvirt leaves this NULL and then builds the "none" access manager; we store that directly. */
  access_drivers: readonly string[];
  key_file: string | null;
  cert_file: string | null;
  ca_file: string | null;
  crl_file: string | null;
  tls_no_sanity_certificate: boolean;
  tls_no_verify_certificate: boolean;
  tls_allowed_dn_list: readonly string[] | null;
  tls_priority: string | null;
  sasl_allowed_username_list: readonly string[] | null;
  min_workers: number;
  max_workers: number;
  max_clients: number;
  max_queued_clients: number;
  max_anonymous_clients: number;
  prio_workers: number;
  max_client_requests: number;
  admin_min_workers: number;
  admin_max_workers: number;
  admin_max_clients: number;
  admin_max_queued_clients: number;
  admin_max_client_requests: number;
  audit_level: number;
  audit_logging: boolean;
  host_uuid: string | null;
  host_uuid_source: HostUuidSource;
  /** 0 = not set; otherwise 1 debug, 2 info, 3 warning, 4 error. */
  log_level: number;
  log_filters: string | null;
  log_outputs: string | null;
  keepalive_interval: number;
  keepalive_count: number;
  admin_keepalive_interval: number;
  admin_keepalive_count: number;
  ovs_timeout: number;
  /** Directory holding the per-driver daemon sockets `virt<driver>d-sock` and `…-sock-ro`. */
  backend_sock_dir: string;
  backend_sockets: readonly BackendSocketOverride[];
  /** "host:port" for the metrics endpoint; null = off. */
  metrics_listen: string | null;
}

export interface DaemonConfigResult {
  config: Readonly<DaemonConfig>;
  /** Keys in the file that nobody knows; libvirt ignores them silently, the daemon logs them at debug. */
  unknownKeys: string[];
  /** Known keys in the file whose behaviour is not implemented yet (see IMPLEMENTED_KEYS). */
  notSupportedYet: string[];
}

const INT_MIN = -2147483648n;
const INT_MAX = 2147483647n;
const UINT_MAX = 4294967295n;
// libvirt's SSF_WARNING_LEVEL: weaker SASL layers are refused for TCP.
const MIN_TCP_SSF = 112;
// LOCALSTATEDIR/run: libvirt's remote driver deliberately uses it, not RUNSTATEDIR, for backends.
const SYSTEM_BACKEND_SOCK_DIR = '/var/run/libvirt';

function homeDir(env: NodeJS.ProcessEnv): string {
  const home = env['HOME'];
  return home !== undefined && home !== '' ? home : userInfo().homedir;
}

function envDir(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value !== undefined && value !== '' ? value : undefined;
}

/** `$XDG_CONFIG_HOME`, else `$HOME/.config` (glib's g_get_user_config_dir, which libvirt uses). */
export function xdgConfigHome(env: NodeJS.ProcessEnv): string {
  return envDir(env, 'XDG_CONFIG_HOME') ?? `${homeDir(env)}/.config`;
}

/** `$XDG_RUNTIME_DIR`, else the cache dir `$XDG_CACHE_HOME` / `$HOME/.cache` (glib's fallback chain). */
export function xdgRuntimeDir(env: NodeJS.ProcessEnv): string {
  return envDir(env, 'XDG_RUNTIME_DIR') ?? envDir(env, 'XDG_CACHE_HOME') ?? `${homeDir(env)}/.cache`;
}

function deepFreeze(config: DaemonConfig): Readonly<DaemonConfig> {
  for (const value of Object.values(config)) {
    if (Array.isArray(value)) {
      for (const item of value) Object.freeze(item);
      Object.freeze(value);
    }
  }
  return Object.freeze(config);
}

function buildDefaults(privileged: boolean, env: NodeJS.ProcessEnv): DaemonConfig {
  // Polkit only makes sense for a system daemon; libvirt picks it as root and "none" otherwise.
  const unixAuth: AuthMethod = privileged ? 'polkit' : 'none';
  return {
    listen_tls: false,
    listen_tcp: false,
    tls_port: '16514',
    tcp_port: '16509',
    listen_addr: null,
    unix_sock_group: null,
    unix_sock_ro_perms: '0777',
    unix_sock_rw_perms: unixAuth === 'polkit' ? '0777' : '0700',
    unix_sock_admin_perms: '0700',
    unix_sock_dir: null,
    auth_unix_ro: unixAuth,
    auth_unix_rw: unixAuth,
    auth_tcp: 'sasl',
    auth_tls: 'none',
    tcp_min_ssf: 56,
    access_drivers: ['none'],
    key_file: null,
    cert_file: null,
    ca_file: null,
    crl_file: null,
    tls_no_sanity_certificate: false,
    tls_no_verify_certificate: false,
    tls_allowed_dn_list: null,
    tls_priority: null,
    sasl_allowed_username_list: null,
    min_workers: 5,
    max_workers: 20,
    max_clients: 5000,
    max_queued_clients: 1000,
    max_anonymous_clients: 20,
    prio_workers: 5,
    max_client_requests: 5,
    admin_min_workers: 5,
    admin_max_workers: 20,
    admin_max_clients: 5000,
    admin_max_queued_clients: 20,
    admin_max_client_requests: 5,
    audit_level: 1,
    audit_logging: false,
    host_uuid: null,
    host_uuid_source: 'smbios',
    log_level: 0,
    log_filters: null,
    log_outputs: null,
    keepalive_interval: 5,
    keepalive_count: 5,
    admin_keepalive_interval: 5,
    admin_keepalive_count: 5,
    ovs_timeout: 5,
    backend_sock_dir: privileged ? SYSTEM_BACKEND_SOCK_DIR : `${xdgRuntimeDir(env)}/libvirt`,
    backend_sockets: [],
    metrics_listen: null,
  };
}

/** The configuration used when no file is read. `env` feeds the non-root session directories. */
export function defaultDaemonConfig(
  privileged: boolean,
  env: NodeJS.ProcessEnv = process.env,
): Readonly<DaemonConfig> {
  return deepFreeze(buildDefaults(privileged, env));
}

/** Known keys present in a file (in file order) that this implementation does not act on yet. */
export function notSupportedYetKeys(presentKeys: Iterable<string>): string[] {
  const out: string[] = [];
  for (const key of presentKeys) {
    if (KNOWN_KEYS.has(key) && !OBSOLETE_KEYS.has(key) && !IMPLEMENTED_KEYS.has(key)) out.push(key);
  }
  return out;
}

/** Keys present in a file that neither libvirt nor we define. */
export function unknownConfigKeys(presentKeys: Iterable<string>): string[] {
  const out: string[] = [];
  for (const key of presentKeys) if (!KNOWN_KEYS.has(key)) out.push(key);
  return out;
}

// Typed lookups with libvirt's virConfGetValue* wording; undefined means "not in the file".
class EntryReader {
  constructor(
    private readonly entries: Map<string, ConfEntry>,
    readonly file: string,
  ) {}

  line(key: string): number | undefined {
    return this.entries.get(key)?.line;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** A value error in libvirt's words, with the entry's line appended since libvirt omits it. */
  error(code: string, key: string, text: string): ConfigError {
    const line = this.line(key);
    const suffix = line === undefined ? '' : ` (line ${line})`;
    return new ConfigError(code, `${text}${suffix}`, { file: this.file, line, key });
  }

  private typeError(key: string, expected: string): ConfigError {
    return this.error('CONF_TYPE', key, `${this.file}: expected ${expected} for '${key}' parameter`);
  }

  private rangeError(key: string, range: string): ConfigError {
    return this.error('CONF_RANGE', key, `${this.file}: value for '${key}' parameter must be ${range}`);
  }

  private value(key: string): ConfValue | undefined {
    return this.entries.get(key)?.value;
  }

  string(key: string): string | undefined {
    const v = this.value(key);
    if (v === undefined) return undefined;
    if (v.kind !== 'string') throw this.typeError(key, 'a string');
    return v.value;
  }

  bool(key: string): boolean | undefined {
    const v = this.value(key);
    if (v === undefined) return undefined;
    // A leading '-' makes the literal signed, and libvirt only takes unsigned literals as bools.
    if (v.kind !== 'int' || v.signed) throw this.typeError(key, 'a bool');
    if (v.value > 1n) throw this.rangeError(key, '0 or 1');
    return v.value === 1n;
  }

  int(key: string): number | undefined {
    const v = this.value(key);
    if (v === undefined) return undefined;
    if (v.kind !== 'int') throw this.typeError(key, 'a signed integer');
    if (v.value < INT_MIN || v.value > INT_MAX) throw this.rangeError(key, `in range ${INT_MIN}:${INT_MAX}`);
    return Number(v.value);
  }

  uint(key: string): number | undefined {
    const v = this.value(key);
    if (v === undefined) return undefined;
    if (v.kind !== 'int' || v.signed) throw this.typeError(key, 'an unsigned integer');
    if (v.value > UINT_MAX) throw this.rangeError(key, `in range 0:${UINT_MAX}`);
    return Number(v.value);
  }

  stringList(key: string): string[] | undefined {
    const v = this.value(key);
    if (v === undefined) return undefined;
    if (v.kind !== 'list') throw this.typeError(key, 'a string list');
    const out: string[] = [];
    for (const item of v.items) {
      if (item.kind !== 'string') throw this.typeError(key, 'a string list');
      out.push(item.value);
    }
    return out;
  }

  auth(key: string): AuthMethod | undefined {
    const s = this.string(key);
    if (s === undefined) return undefined;
    if (s === 'none' || s === 'sasl' || s === 'polkit') return s;
    throw this.error('CONF_UNSUPPORTED', key, `${this.file}: ${key}: unsupported auth ${s}`);
  }
}

/** Numeric mode of a validated `unix_sock_*_perms` string (e.g. "0770" → 0o770). */
export function socketMode(perms: string): number {
  return parseInt(perms, 8);
}

// libvirt parses these with strtol(…, 8) when it creates the sockets; we insist on plain octal
// digits and a real mode, which every sensible value satisfies.
function isOctalMode(perms: string): boolean {
  return /^[0-7]{1,5}$/.test(perms) && socketMode(perms) <= 0o7777;
}

// libvirt's virUUIDParse: 32 hex digits, '-' allowed between byte pairs, blanks around; a UUID whose
// bytes are all equal (e.g. all zero) is refused as a host UUID.
function isValidHostUuid(text: string): boolean {
  const s = text.replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, '');
  const bytes: number[] = [];
  let i = 0;
  while (bytes.length < 16) {
    if (s[i] === '-') {
      i++;
      continue;
    }
    const pair = s.slice(i, i + 2);
    if (!/^[0-9a-fA-F]{2}$/.test(pair)) return false;
    bytes.push(parseInt(pair, 16));
    i += 2;
  }
  if (i !== s.length) return false;
  return bytes.some((b) => b !== bytes[0]);
}

const BACKEND_DRIVER_RE = /^[a-z0-9]+$/;
const HOST_PORT_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):([0-9]{1,5})$/;

function parseBackendSockets(r: EntryReader): BackendSocketOverride[] | undefined {
  const key = 'backend_sockets';
  const items = r.stringList(key);
  if (items === undefined) return undefined;
  const seen = new Set<string>();
  const out: BackendSocketOverride[] = [];
  for (const item of items) {
    const eq = item.indexOf('=');
    const driver = eq < 0 ? '' : item.slice(0, eq);
    const path = eq < 0 ? '' : item.slice(eq + 1);
    if (!BACKEND_DRIVER_RE.test(driver) || !path.startsWith('/')) {
      throw r.error(
        'CONF_INVALID',
        key,
        `${r.file}: ${key}: invalid entry '${item}', expected "driver=/absolute/socket/path"`,
      );
    }
    if (seen.has(driver)) {
      throw r.error('CONF_INVALID', key, `${r.file}: ${key}: driver '${driver}' is listed twice`);
    }
    seen.add(driver);
    out.push({ driver, rwSocket: path, roSocket: `${path}-ro` });
  }
  return out;
}

function applyFile(c: DaemonConfig, r: EntryReader): void {
  // Same order as libvirt's daemonConfigLoadOptions, so the first error reported is the same one.
  c.listen_tcp = r.bool('listen_tcp') ?? c.listen_tcp;
  c.listen_tls = r.bool('listen_tls') ?? c.listen_tls;
  c.tls_port = r.string('tls_port') ?? c.tls_port;
  c.tcp_port = r.string('tcp_port') ?? c.tcp_port;
  c.listen_addr = r.string('listen_addr') ?? c.listen_addr;

  c.auth_unix_rw = r.auth('auth_unix_rw') ?? c.auth_unix_rw;
  // libvirt opens the rw socket wide whenever polkit guards it, even for a non-root daemon that
  // asked for polkit explicitly; an explicit unix_sock_rw_perms below still wins.
  if (c.auth_unix_rw === 'polkit') c.unix_sock_rw_perms = '0777';
  c.auth_unix_ro = r.auth('auth_unix_ro') ?? c.auth_unix_ro;
  c.auth_tcp = r.auth('auth_tcp') ?? c.auth_tcp;
  c.auth_tls = r.auth('auth_tls') ?? c.auth_tls;

  const ssf = r.uint('tcp_min_ssf');
  if (ssf !== undefined) {
    if (ssf < MIN_TCP_SSF) {
      throw r.error(
        'CONF_UNSUPPORTED',
        'tcp_min_ssf',
        `${r.file}: tcp_min_ssf: minimum SSF levels lower than ${MIN_TCP_SSF} are not supported`,
      );
    }
    c.tcp_min_ssf = ssf;
  }

  c.access_drivers = r.stringList('access_drivers') ?? c.access_drivers;

  c.unix_sock_group = r.string('unix_sock_group') ?? c.unix_sock_group;
  c.unix_sock_admin_perms = r.string('unix_sock_admin_perms') ?? c.unix_sock_admin_perms;
  c.unix_sock_ro_perms = r.string('unix_sock_ro_perms') ?? c.unix_sock_ro_perms;
  c.unix_sock_rw_perms = r.string('unix_sock_rw_perms') ?? c.unix_sock_rw_perms;
  c.unix_sock_dir = r.string('unix_sock_dir') ?? c.unix_sock_dir;

  c.tls_no_sanity_certificate = r.bool('tls_no_sanity_certificate') ?? c.tls_no_sanity_certificate;
  c.tls_no_verify_certificate = r.bool('tls_no_verify_certificate') ?? c.tls_no_verify_certificate;
  c.key_file = r.string('key_file') ?? c.key_file;
  c.cert_file = r.string('cert_file') ?? c.cert_file;
  c.ca_file = r.string('ca_file') ?? c.ca_file;
  c.crl_file = r.string('crl_file') ?? c.crl_file;
  c.tls_allowed_dn_list = r.stringList('tls_allowed_dn_list') ?? c.tls_allowed_dn_list;
  c.tls_priority = r.string('tls_priority') ?? c.tls_priority;

  c.sasl_allowed_username_list = r.stringList('sasl_allowed_username_list') ?? c.sasl_allowed_username_list;

  c.min_workers = r.uint('min_workers') ?? c.min_workers;
  c.max_workers = r.uint('max_workers') ?? c.max_workers;
  if (c.max_workers < 1) {
    throw r.error('CONF_INVALID', 'max_workers', `${r.file}: 'max_workers' must be greater than 0`);
  }
  c.max_clients = r.uint('max_clients') ?? c.max_clients;
  c.max_queued_clients = r.uint('max_queued_clients') ?? c.max_queued_clients;
  c.max_anonymous_clients = r.uint('max_anonymous_clients') ?? c.max_anonymous_clients;
  c.prio_workers = r.uint('prio_workers') ?? c.prio_workers;
  c.max_client_requests = r.uint('max_client_requests') ?? c.max_client_requests;

  c.admin_min_workers = r.uint('admin_min_workers') ?? c.admin_min_workers;
  c.admin_max_workers = r.uint('admin_max_workers') ?? c.admin_max_workers;
  c.admin_max_clients = r.uint('admin_max_clients') ?? c.admin_max_clients;
  c.admin_max_queued_clients = r.uint('admin_max_queued_clients') ?? c.admin_max_queued_clients;
  c.admin_max_client_requests = r.uint('admin_max_client_requests') ?? c.admin_max_client_requests;

  c.audit_level = r.uint('audit_level') ?? c.audit_level;
  c.audit_logging = r.bool('audit_logging') ?? c.audit_logging;

  c.host_uuid = r.string('host_uuid') ?? c.host_uuid;
  const uuidSource = r.string('host_uuid_source');

  c.log_level = r.uint('log_level') ?? c.log_level;
  c.log_filters = r.string('log_filters') ?? c.log_filters;
  c.log_outputs = r.string('log_outputs') ?? c.log_outputs;

  c.keepalive_interval = r.int('keepalive_interval') ?? c.keepalive_interval;
  c.keepalive_count = r.uint('keepalive_count') ?? c.keepalive_count;
  c.admin_keepalive_interval = r.int('admin_keepalive_interval') ?? c.admin_keepalive_interval;
  c.admin_keepalive_count = r.uint('admin_keepalive_count') ?? c.admin_keepalive_count;

  c.ovs_timeout = r.uint('ovs_timeout') ?? c.ovs_timeout;

  // What follows libvirt only notices later, while starting up; failing at load gives the same
  // outcome (exit 1) with a message that points at the line.
  for (const key of ['unix_sock_admin_perms', 'unix_sock_ro_perms', 'unix_sock_rw_perms'] as const) {
    if (!isOctalMode(c[key])) {
      throw r.error('CONF_INVALID', key, `${r.file}: ${key}: Failed to parse mode '${c[key]}'`);
    }
  }
  if (c.max_anonymous_clients > c.max_clients) {
    const key = r.has('max_anonymous_clients') ? 'max_anonymous_clients' : 'max_clients';
    throw r.error(
      'CONF_INVALID',
      key,
      `${r.file}: ${key}: The overall maximum number of clients must not be less than the number of clients waiting for authentication`,
    );
  }
  if (c.host_uuid !== null && !isValidHostUuid(c.host_uuid)) {
    throw r.error('CONF_INVALID', 'host_uuid', `${r.file}: host_uuid: invalid host UUID: ${c.host_uuid}`);
  }
  if (uuidSource !== undefined) {
    if (uuidSource !== 'smbios' && uuidSource !== 'machine-id') {
      throw r.error(
        'CONF_INVALID',
        'host_uuid_source',
        `${r.file}: host_uuid_source: invalid UUID source: ${uuidSource}`,
      );
    }
    c.host_uuid_source = uuidSource;
  }
  if (c.log_level > 4) {
    throw r.error(
      'CONF_INVALID',
      'log_level',
      `${r.file}: log_level: Failed to set logging priority, argument '${c.log_level}' is invalid`,
    );
  }

  // Our own keys.
  const sockDir = r.string('backend_sock_dir');
  if (sockDir !== undefined) {
    if (!sockDir.startsWith('/')) {
      throw r.error(
        'CONF_INVALID',
        'backend_sock_dir',
        `${r.file}: backend_sock_dir: expected an absolute directory, got '${sockDir}'`,
      );
    }
    c.backend_sock_dir = sockDir;
  }
  c.backend_sockets = parseBackendSockets(r) ?? c.backend_sockets;
  const metrics = r.string('metrics_listen');
  if (metrics !== undefined) {
    const m = HOST_PORT_RE.exec(metrics);
    const port = m?.[1] === undefined ? 0 : Number(m[1]);
    if (port < 1 || port > 65535) {
      throw r.error(
        'CONF_INVALID',
        'metrics_listen',
        `${r.file}: metrics_listen: expected "host:port" with a port in 1..65535, got '${metrics}'`,
      );
    }
    c.metrics_listen = metrics;
  }
}

/** Parses and validates configuration text; `file` names the source in errors. */
export function parseDaemonConfigText(
  text: string,
  file: string,
  privileged: boolean,
  env: NodeJS.ProcessEnv = process.env,
): DaemonConfigResult {
  const entries = parseConf(text, file);
  const config = buildDefaults(privileged, env);
  applyFile(config, new EntryReader(entries, file));
  return {
    config: deepFreeze(config),
    unknownKeys: unknownConfigKeys(entries.keys()),
    notSupportedYet: notSupportedYetKeys(entries.keys()),
  };
}

// strerror() texts for the failures a config read realistically meets, so messages match libvirt's.
const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  EOVERFLOW: 'Value too large for defined data type',
};

function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code !== undefined && STRERROR[code] !== undefined) return STRERROR[code];
  return err instanceof Error ? err.message : String(err);
}

// Reads at most one byte past the limit so that a huge (or endless) file is refused cheaply.
function readConfigFile(file: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new ConfigError('CONF_READ', `Failed to open file '${file}': ${describeErrno(err)}`, {
      file,
      cause: err,
    });
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    const size = fstatSync(fd).size;
    const chunkSize = Math.min(Math.max(size + 1, 4096), MAX_CONFIG_FILE_SIZE + 1);
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(chunkSize, MAX_CONFIG_FILE_SIZE + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > MAX_CONFIG_FILE_SIZE) {
        const err = Object.assign(new Error('file too large'), { code: 'EOVERFLOW' });
        throw new ConfigError('CONF_TOO_LARGE', `Failed to read file '${file}': ${describeErrno(err)}`, {
          file,
        });
      }
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('CONF_READ', `Failed to read file '${file}': ${describeErrno(err)}`, {
      file,
      cause: err,
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * Loads the daemon configuration. With `mustExist` false (the implicit default file) a missing file
 * means "all defaults", as in libvirt; any other read failure, or a `-f` file that is missing, is an
 * error.
 */
export function loadDaemonConfig(opts: {
  file: string;
  mustExist: boolean;
  privileged: boolean;
  env?: NodeJS.ProcessEnv;
}): DaemonConfigResult {
  const env = opts.env ?? process.env;
  let bytes: Buffer;
  try {
    bytes = readConfigFile(opts.file);
  } catch (err) {
    const cause = err instanceof ConfigError ? err.cause : undefined;
    if (!opts.mustExist && (cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      return { config: defaultDaemonConfig(opts.privileged, env), unknownKeys: [], notSupportedYet: [] };
    }
    throw err;
  }
  return parseDaemonConfigText(bytes.toString('utf8'), opts.file, opts.privileged, env);
}
