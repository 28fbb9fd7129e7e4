// Daemon layer: SIGHUP. libvirt's virtproxyd re-reads nothing on SIGHUP (NOTES §9.5); ours
// re-reads the config file and applies what can change under live clients: the TLS key,
// certificate, CA and CRL (re-read even when the paths are unchanged, for rotation), the TLS
// checks and priority, both allow-lists, tcp_min_ssf, client limits and logging. Keys that need
// new sockets or a different process are reported as needing a restart. Existing connections
// are never touched; new handshakes and logins use the new settings. systemd hears RELOADING=1
// and READY=1 around it (Type=notify-reload).

import { ConfigError } from '../config/conf-parser.js';
import { loadDaemonConfig, type DaemonConfig } from '../config/daemon-config.js';
import { systemdNotify } from '../transport/socket-activation.js';
import type { Daemon } from './daemon.js';
import fs from 'node:fs';
import { VIR_LOG_DEFAULT, VIR_LOG_INFO, defaultLogOutput, parseLogLevel } from './log-settings.js';
import { JOURNALD_SOCKET, userCacheDir, type Logger } from './logger.js';
import { LOCALSTATEDIR } from './paths.js';
import { loadTls, type RemoteServices } from './remote-services.js';

/** Keys SIGHUP applies; every other changed key is reported as needing a restart. */
export const RELOADABLE_KEYS: ReadonlySet<string> = new Set([
  'key_file',
  'cert_file',
  'ca_file',
  'crl_file',
  'tls_no_sanity_certificate',
  'tls_no_verify_certificate',
  'tls_allowed_dn_list',
  'tls_priority',
  'sasl_allowed_username_list',
  'tcp_min_ssf',
  'max_clients',
  'max_anonymous_clients',
  'log_level',
  'log_filters',
  'log_outputs',
]);

export interface ReloadContext {
  daemon: Daemon;
  remote: RemoteServices;
  configFile: string;
  /** -f was given: the file must exist (else a missing default file means defaults). */
  configMustExist: boolean;
  privileged: boolean;
  verbose: boolean;
  /** Started with -d (decides the default log output, as at startup). */
  daemonized: boolean;
  env: NodeJS.ProcessEnv;
}

export interface ReloadReport {
  /** Groups of settings that were (re)applied, e.g. "TLS material". */
  applied: string[];
  /** Changed keys that only take effect after a restart. */
  needRestart: string[];
  /** Things that failed; the old settings stay in force for those. */
  errors: string[];
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Changed keys between two configs, in key order. */
export function changedKeys(before: Readonly<DaemonConfig>, after: Readonly<DaemonConfig>): string[] {
  return (Object.keys(after) as Array<keyof DaemonConfig>).filter((k) => !same(before[k], after[k]));
}

/** Applies log_level / log_filters / log_outputs with the startup precedence (env, --verbose). */
export function applyLogSettings(
  logger: Logger,
  c: Readonly<DaemonConfig>,
  ctx: Pick<ReloadContext, 'env' | 'verbose' | 'daemonized' | 'privileged'>,
): void {
  const env = ctx.env;
  const level = c.log_level !== 0 ? parseLogLevel(String(c.log_level)) : null;
  const envLevel = env['LIBVIRT_DEBUG'] ? parseLogLevel(env['LIBVIRT_DEBUG']) : null;
  let p = envLevel ?? level ?? VIR_LOG_DEFAULT;
  if (ctx.verbose && p > VIR_LOG_INFO) p = VIR_LOG_INFO;
  let haveJournald = false;
  try {
    fs.accessSync(JOURNALD_SOCKET, fs.constants.W_OK);
    haveJournald = true;
  } catch {
    // no journald
  }
  // The default output carries the priority it was chosen with, so it is chosen again.
  logger.setDefaultOutput(
    defaultLogOutput({
      priority: p,
      daemonized: ctx.daemonized,
      privileged: ctx.privileged,
      stdinIsTty: process.stdin.isTTY === true,
      haveJournald,
      localStateDir: LOCALSTATEDIR,
      userCacheDir: userCacheDir(env),
    }),
  );
  // Outputs and filters first: both keep the old set when the new text is bad.
  const envOutputs = env['LIBVIRT_LOG_OUTPUTS'];
  logger.setOutputs(envOutputs ? envOutputs : c.log_outputs);
  const envFilters = env['LIBVIRT_LOG_FILTERS'];
  logger.setFilters(envFilters ? envFilters : c.log_filters);
  logger.setDefaultPriority(p);
}

/**
 * One reload. `current` is the configuration in force (updated in place on success); returns
 * what happened, for the log and for tests.
 */
export function reloadDaemon(ctx: ReloadContext, current: { config: Readonly<DaemonConfig> }): ReloadReport {
  const d = ctx.daemon;
  const report: ReloadReport = { applied: [], needRestart: [], errors: [] };
  let next: Readonly<DaemonConfig>;
  try {
    next = loadDaemonConfig({
      file: ctx.configFile,
      mustExist: ctx.configMustExist,
      privileged: ctx.privileged,
      env: ctx.env,
    }).config;
  } catch (e) {
    const msg = e instanceof ConfigError ? e.message : String(e);
    report.errors.push(`Can't load config file: ${msg}: ${ctx.configFile}`);
    return report;
  }
  const changed = changedKeys(current.config, next);
  report.needRestart = changed.filter((k) => !RELOADABLE_KEYS.has(k));

  if (ctx.remote.tls !== null) {
    try {
      const material = loadTls(d, next);
      ctx.remote.tls.update({ secure: material.secure, checkPeer: material.checkPeer });
      ctx.remote.tlsMaterial = material;
      report.applied.push('TLS material and checks');
    } catch (e) {
      report.errors.push(`TLS reload failed, keeping the previous certificates: ${(e as Error).message}`);
    }
  }
  if (d.sasl !== null) {
    d.sasl.policy = { tcpMinSsf: next.tcp_min_ssf, allowedUsers: next.sasl_allowed_username_list };
    report.applied.push('SASL policy');
  }
  if (changed.includes('max_clients') || changed.includes('max_anonymous_clients')) {
    const srv = d.server as typeof d.server & {
      setClientLimits?(maxClients: number | null, maxUnauth: number | null): void;
    };
    if (srv.setClientLimits !== undefined) srv.setClientLimits(next.max_clients, next.max_anonymous_clients);
    else srv.maxClients = next.max_clients;
    report.applied.push('client limits');
  }
  try {
    applyLogSettings(d.logger, next, ctx);
    report.applied.push('logging');
  } catch (e) {
    report.errors.push(`logging settings not applied: ${(e as Error).message}`);
  }
  // What was not applied stays as before, so the next reload compares against what runs.
  const merged: Record<string, unknown> = { ...current.config };
  for (const k of changed) {
    if (RELOADABLE_KEYS.has(k)) merged[k] = next[k as keyof DaemonConfig];
  }
  current.config = Object.freeze(merged as unknown as DaemonConfig);
  return report;
}

/** Microseconds on CLOCK_MONOTONIC, which is what systemd wants in MONOTONIC_USEC. */
function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** Installs the SIGHUP handler. */
export function installReload(ctx: ReloadContext): { reload(): ReloadReport } {
  const current = { config: ctx.daemon.config };
  const log = (level: 'info' | 'warn' | 'error', msg: string): void => ctx.daemon.logger.log(level, msg);
  const notify = (msg: string): void => {
    try {
      systemdNotify(msg, ctx.env);
    } catch (e) {
      log('warn', `sd_notify failed: ${(e as Error).message}`);
    }
  };
  const reload = (): ReloadReport => {
    notify(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
    const r = reloadDaemon(ctx, current);
    for (const e of r.errors) log('error', `reload: ${e}`);
    if (r.needRestart.length > 0) {
      log('warn', `reload: changed settings that need a restart (not applied): ${r.needRestart.join(', ')}`);
    }
    log('info', `reload: applied ${r.applied.join(', ') || 'nothing'}`);
    notify('READY=1');
    return r;
  };
  process.on('SIGHUP', () => {
    reload();
  });
  return { reload };
}
