// Daemon layer: the human-facing log with libvirt's semantics. A message has a category
// ("rpc.client", "daemon.admin", ...) and a level; the first log filter matching the category (else
// the default priority) decides whether it is kept, then every output whose own priority it meets
// receives it: stderr, a file, syslog or journald. Filters and outputs change live (virt-admin).

import fs from 'node:fs';
import { hostname } from 'node:os';
import { LIBVIRT_VERSION } from '../protocol/constants.js';
import { native } from '../native/native.js';
import {
  LogSettingsError,
  VIR_LOG_DEFAULT,
  VIR_LOG_INFO,
  defaultLogOutput,
  parseLogLevel,
  formatLogFilters,
  formatLogOutputs,
  parseLogFilters,
  parseLogOutputs,
  type LogFilter,
  type LogOutputSpec,
  type LogPriority,
} from './log-settings.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const PRIORITY: Record<LogLevel, LogPriority> = { debug: 1, info: 2, warn: 3, error: 4 };
const LABEL: Record<LogPriority, string> = { 1: 'debug', 2: 'info', 3: 'warning', 4: 'error' };
// syslog(3) severities for libvirt's priorities (LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR).
const SYSLOG_SEVERITY: Record<LogPriority, number> = { 1: 7, 2: 6, 3: 4, 4: 3 };
const LOG_DAEMON = 3 << 3;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export const SYSLOG_SOCKET = '/dev/log';
export const JOURNALD_SOCKET = '/run/systemd/journal/socket';
/** Category of messages that do not name one. */
export const DEFAULT_CATEGORY = 'daemon';

/** Side effects of the outputs, replaceable in tests. */
export interface LoggerIo {
  stderr(text: string): void;
  /** One datagram to a unix socket path (syslog, journald). */
  sendDatagram(socketPath: string, message: string): void;
  syslogSocket: string;
  journaldSocket: string;
  now(): Date;
  pid: number;
  hostname: string;
}

function defaultIo(): LoggerIo {
  return {
    stderr: (t) => process.stderr.write(t),
    sendDatagram: (p, m) => native().sdNotify(p, m),
    syslogSocket: SYSLOG_SOCKET,
    journaldSocket: JOURNALD_SOCKET,
    now: () => new Date(),
    pid: process.pid,
    hostname: hostname(),
  };
}

/** libvirt's timestamp: "YYYY-MM-DD HH:MM:SS.mmm+0000", UTC. */
export function logTimestamp(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '+0000');
}

/** The RFC 3164 time syslog(3) puts in a datagram: local "Mmm dd hh:mm:ss". */
function syslogTime(d: Date): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
}

interface Sink {
  spec: LogOutputSpec;
  /** libvirt opens every output with its version and host name. */
  announced: boolean;
  /** Set after the first delivery failure, so a missing socket is reported once. */
  failed: boolean;
  emit(priority: LogPriority, category: string, msg: string, now: Date): void;
  close(): void;
}

export interface LoggerOptions {
  priority?: LogPriority;
  /** The output `setOutputs(null | '')` falls back to (virLogSetDefaultOutput). */
  defaultOutput?: string | null;
  io?: Partial<LoggerIo>;
}

export class Logger {
  private priority: LogPriority;
  private filterList: LogFilter[] = [];
  private sinks: Sink[] = [];
  private defaultOutput: string | null;
  /** Category → priority, rebuilt when filters or the default priority change. */
  private readonly categoryPriority = new Map<string, LogPriority>();
  private readonly io: LoggerIo;
  private stderrAnnounced = false;

  constructor(opts: LoggerOptions = {}) {
    this.priority = opts.priority ?? VIR_LOG_DEFAULT;
    this.defaultOutput = opts.defaultOutput ?? null;
    this.io = { ...defaultIo(), ...opts.io };
  }

  get defaultPriority(): LogPriority {
    return this.priority;
  }

  setDefaultPriority(p: LogPriority): void {
    this.priority = p;
    this.categoryPriority.clear();
  }

  setDefaultOutput(output: string | null): void {
    this.defaultOutput = output;
  }

  /** Replaces all filters; null or blank clears them. Throws LogSettingsError, keeping the old set. */
  setFilters(src: string | null): void {
    this.filterList = src === null ? [] : parseLogFilters(src);
    this.categoryPriority.clear();
  }

  /**
   * Replaces all outputs; null or blank means the default output. The new outputs are opened
   * before the old ones close, so a failure leaves the old set in place.
   */
  setOutputs(src: string | null): void {
    const text = src !== null && src !== '' ? src : this.defaultOutput;
    if (text === null) return;
    const specs = parseLogOutputs(text);
    const opened: Sink[] = [];
    try {
      for (const s of specs) opened.push(this.openSink(s));
    } catch (e) {
      for (const s of opened) s.close();
      throw e;
    }
    const old = this.sinks;
    this.sinks = opened;
    for (const s of old) s.close();
  }

  /** virLogGetFilters and the count; text is null when there are none. */
  filters(): { text: string | null; count: number } {
    const n = this.filterList.length;
    return { text: n === 0 ? null : formatLogFilters(this.filterList), count: n };
  }

  outputs(): { text: string; count: number } {
    return { text: formatLogOutputs(this.sinks.map((s) => s.spec)), count: this.sinks.length };
  }

  private priorityOf(category: string): LogPriority {
    let p = this.categoryPriority.get(category);
    if (p === undefined) {
      p = this.filterList.find((f) => f.regex.test(category))?.priority ?? this.priority;
      this.categoryPriority.set(category, p);
    }
    return p;
  }

  /** Whether a message of this level and category would reach the outputs' priority check. */
  enabled(level: LogLevel, category: string = DEFAULT_CATEGORY): boolean {
    return PRIORITY[level] >= this.priorityOf(category);
  }

  log(level: LogLevel, msg: string, category: string = DEFAULT_CATEGORY): void {
    const priority = PRIORITY[level];
    if (priority < this.priorityOf(category)) return;
    const now = this.io.now();
    if (this.sinks.length === 0) {
      // libvirt writes to stderr while no output is defined.
      if (!this.stderrAnnounced) {
        this.stderrAnnounced = true;
        for (const line of this.banner()) this.io.stderr(this.fdLine(2, line, now));
      }
      this.io.stderr(this.fdLine(priority, msg, now));
      return;
    }
    for (const s of this.sinks) {
      if (priority < s.spec.priority) continue;
      if (!s.announced) {
        s.announced = true;
        for (const line of this.banner()) s.emit(2, 'util.log', line, now);
      }
      s.emit(priority, category, msg, now);
    }
  }

  /** A category-bound view, for layers that take a plain `(level, msg)` callback. */
  child(category: string): (level: LogLevel, msg: string) => void {
    return (level, msg) => this.log(level, msg, category);
  }

  close(): void {
    for (const s of this.sinks) s.close();
    this.sinks = [];
  }

  private banner(): string[] {
    return [`libvirt version: ${LIBVIRT_VERSION}, package: virtproxyd-ts`, `hostname: ${this.io.hostname}`];
  }

  private fdLine(priority: LogPriority, msg: string, now: Date): string {
    return `${logTimestamp(now)}: ${this.io.pid}: ${LABEL[priority]} : ${msg}\n`;
  }

  private openSink(spec: LogOutputSpec): Sink {
    const base = { spec, announced: false, failed: false };
    switch (spec.dest) {
      case 'stderr':
        return {
          ...base,
          emit: (p, _c, m, now) => this.io.stderr(this.fdLine(p, m, now)),
          close: () => undefined,
        };
      case 'file': {
        const file = spec.name ?? '';
        let fd: number;
        try {
          fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_APPEND | fs.constants.O_WRONLY, 0o600);
        } catch (e) {
          throw new LogOutputOpenError(`failed to open ${file}: ${systemMessage(e)}`);
        }
        return {
          ...base,
          emit: (p, _c, m, now) => {
            try {
              fs.writeSync(fd, this.fdLine(p, m, now));
            } catch {
              // A full disk must not take the daemon down; libvirt ignores write errors too.
            }
          },
          close: () => fs.closeSync(fd),
        };
      }
      case 'syslog': {
        const ident = spec.name ?? 'virtproxyd';
        const sink: Sink = {
          ...base,
          emit: (p, _c, m, now) => {
            const text = `<${LOG_DAEMON + SYSLOG_SEVERITY[p]}>${syslogTime(now)} ${ident}[${this.io.pid}]: ${this.io.pid}: ${LABEL[p]} : ${m}`;
            this.deliver(sink, this.io.syslogSocket, text);
          },
          close: () => undefined,
        };
        return sink;
      }
      case 'journald': {
        const sink: Sink = {
          ...base,
          emit: (p, c, m) => {
            // The native journal protocol: KEY=value lines. Values stay single-line (the binary
            // length form cannot travel through the datagram helper), so newlines become spaces.
            const one = (s: string): string => s.replace(/\n/g, ' ');
            const text =
              `MESSAGE=${one(m)}\nPRIORITY=${SYSLOG_SEVERITY[p]}\nSYSLOG_FACILITY=3\n` +
              `SYSLOG_IDENTIFIER=virtproxyd\nLIBVIRT_SOURCE=${one(c)}\n`;
            this.deliver(sink, this.io.journaldSocket, text);
          },
          close: () => undefined,
        };
        return sink;
      }
    }
  }

  private deliver(sink: Sink, socketPath: string, text: string): void {
    try {
      this.io.sendDatagram(socketPath, text);
      sink.failed = false;
    } catch (e) {
      if (sink.failed) return;
      sink.failed = true;
      const now = this.io.now();
      this.io.stderr(
        this.fdLine(
          3,
          `log output ${formatLogOutputs([sink.spec])} cannot deliver to ${socketPath}: ${systemMessage(e)}`,
          now,
        ),
      );
    }
  }
}

/** An output that could not be opened: libvirt reports this as a system error, not a syntax one. */
export class LogOutputOpenError extends Error {
  override readonly name = 'LogOutputOpenError';
}

function systemMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const texts: Record<string, string> = {
    ENOENT: 'No such file or directory',
    EACCES: 'Permission denied',
    EISDIR: 'Is a directory',
    ECONNREFUSED: 'Connection refused',
    EROFS: 'Read-only file system',
  };
  return (err.code !== undefined ? texts[err.code] : undefined) ?? err.message;
}

export { LogSettingsError };

/** libvirt's user cache directory (virGetUserCacheDirectory): where a session daemon logs. */
export function userCacheDir(env: NodeJS.ProcessEnv): string {
  const xdg = env['XDG_CACHE_HOME'];
  const base = xdg !== undefined && xdg !== '' ? xdg : `${env['HOME'] ?? '/'}/.cache`;
  return `${base}/libvirt`;
}

export interface LoggingSetup {
  /** The config's log_level (0 = unset). */
  logLevel: number;
  logFilters: string | null;
  logOutputs: string | null;
  verbose: boolean;
  daemonized: boolean;
  privileged: boolean;
  env: NodeJS.ProcessEnv;
  /** $LOCALSTATEDIR ("/var") for a system daemon's log file. */
  localStateDir: string;
  /** libvirt's user cache directory ($XDG_CACHE_HOME/libvirt) for a session daemon's log file. */
  userCacheDir: string;
  stdinIsTty?: boolean;
  haveJournald?: boolean;
  io?: Partial<LoggerIo>;
}

/**
 * The daemon's logger, configured the way virDaemonSetupLogging does it: config, then the
 * LIBVIRT_DEBUG / LIBVIRT_LOG_FILTERS / LIBVIRT_LOG_OUTPUTS environment, then --verbose; the
 * default output only when nothing named one. Throws LogSettingsError or LogOutputOpenError.
 */
export function setupLogging(s: LoggingSetup): Logger {
  const logger = new Logger({ io: s.io });
  if (s.logLevel !== 0) {
    const p = parseLogLevel(String(s.logLevel));
    if (p === null)
      throw new LogSettingsError(`Failed to set logging priority, argument '${s.logLevel}' is invalid`);
    logger.setDefaultPriority(p);
  }
  logger.setFilters(s.logFilters);
  logger.setOutputs(s.logOutputs);
  const envLevel = s.env['LIBVIRT_DEBUG'];
  if (envLevel !== undefined && envLevel !== '') {
    const p = parseLogLevel(envLevel);
    if (p === null)
      throw new LogSettingsError(`Failed to set logging priority, argument '${envLevel}' is invalid`);
    logger.setDefaultPriority(p);
  }
  const envFilters = s.env['LIBVIRT_LOG_FILTERS'];
  if (envFilters !== undefined && envFilters !== '') logger.setFilters(envFilters);
  const envOutputs = s.env['LIBVIRT_LOG_OUTPUTS'];
  if (envOutputs !== undefined && envOutputs !== '') logger.setOutputs(envOutputs);
  if (s.verbose && logger.defaultPriority > VIR_LOG_INFO) logger.setDefaultPriority(VIR_LOG_INFO);
  let haveJournald = s.haveJournald;
  if (haveJournald === undefined) {
    try {
      fs.accessSync(JOURNALD_SOCKET, fs.constants.W_OK);
      haveJournald = true;
    } catch {
      haveJournald = false;
    }
  }
  logger.setDefaultOutput(
    defaultLogOutput({
      priority: logger.defaultPriority,
      daemonized: s.daemonized,
      privileged: s.privileged,
      stdinIsTty: s.stdinIsTty ?? process.stdin.isTTY === true,
      haveJournald,
      localStateDir: s.localStateDir,
      userCacheDir: s.userCacheDir,
    }),
  );
  if (logger.outputs().count === 0) {
    if (!s.privileged && s.daemonized && !haveJournald)
      fs.mkdirSync(s.userCacheDir, { recursive: true, mode: 0o700 });
    logger.setOutputs(null);
  }
  return logger;
}
