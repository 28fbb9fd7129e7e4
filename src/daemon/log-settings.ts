// Daemon layer, pure: libvirt's logging settings as values. Parses and formats `log_filters`
// ("level:match ...") and `log_outputs` ("level:stderr level:file:PATH ...") with the error texts
// libvirt's virlog.c reports, and picks the default output the way virLogSetDefaultOutput does.

import path from 'node:path';

/** libvirt's virLogPriority: 1 debug, 2 info, 3 warning, 4 error. */
export type LogPriority = 1 | 2 | 3 | 4;

export const VIR_LOG_DEBUG: LogPriority = 1;
export const VIR_LOG_INFO: LogPriority = 2;
export const VIR_LOG_WARN: LogPriority = 3;
export const VIR_LOG_ERROR: LogPriority = 4;
/** Priority when neither log_level, LIBVIRT_DEBUG nor --verbose says otherwise. */
export const VIR_LOG_DEFAULT: LogPriority = VIR_LOG_WARN;

export type LogDestination = 'stderr' | 'syslog' | 'file' | 'journald';

export interface LogFilter {
  priority: LogPriority;
  /** The glob as libvirt stores it: the user's match wrapped in '*', so it matches substrings. */
  match: string;
  /** Compiled form of `match`, anchored at both ends. */
  regex: RegExp;
}

export interface LogOutputSpec {
  priority: LogPriority;
  dest: LogDestination;
  /** syslog ident or absolute file path; null for stderr and journald. */
  name: string | null;
}

/** A rejected filter or output string; `message` is libvirt's text (VIR_ERR_INVALID_ARG). */
export class LogSettingsError extends Error {
  override readonly name = 'LogSettingsError';
}

const DESTINATIONS: readonly LogDestination[] = ['stderr', 'syslog', 'file', 'journald'];

/** virStrToLong_uip as used for priorities: an unsigned decimal that uses the whole token. */
function parsePriority(token: string): LogPriority | null {
  if (!/^\s*\+?\d+$/.test(token)) return null;
  const n = Number(token.trim());
  return n >= 1 && n <= 4 ? (n as LogPriority) : null;
}

/** `log_level` / LIBVIRT_DEBUG values: "1".."4" or the level's name. */
export function parseLogLevel(value: string): LogPriority | null {
  switch (value) {
    case '1':
    case 'debug':
      return VIR_LOG_DEBUG;
    case '2':
    case 'info':
      return VIR_LOG_INFO;
    case '3':
    case 'warning':
      return VIR_LOG_WARN;
    case '4':
    case 'error':
      return VIR_LOG_ERROR;
    default:
      return null;
  }
}

/** GLib's g_pattern_match_simple: '*' any run, '?' one character, nothing else special. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

function nonEmptyWords(src: string): string[] {
  // g_strsplit on single spaces: runs of spaces leave empty words, which libvirt skips.
  return src.split(' ').filter((w) => w !== '');
}

export function parseLogFilter(src: string): LogFilter {
  const tokens = src.split(':');
  const level = tokens[0];
  const rawMatch = tokens[1];
  if (src === '' || level === undefined || rawMatch === undefined) {
    throw new LogSettingsError(`Malformed format for filter '${src}'`);
  }
  const priority = parsePriority(level);
  if (priority === null) throw new LogSettingsError(`Invalid priority '${level}' for filter '${src}'`);
  // A leading '+' once asked for stack traces; libvirt now ignores it.
  const match = rawMatch.startsWith('+') ? rawMatch.slice(1) : rawMatch;
  if (match === '') throw new LogSettingsError(`Invalid match string '${rawMatch}'`);
  const stored = `*${match}*`;
  return { priority, match: stored, regex: globToRegExp(stored) };
}

/** Space-separated filters; the first filter whose glob matches a category decides its priority. */
export function parseLogFilters(src: string): LogFilter[] {
  return nonEmptyWords(src).map(parseLogFilter);
}

export function parseLogOutput(src: string, cwd: string = process.cwd()): LogOutputSpec {
  const tokens = src.split(':');
  const level = tokens[0];
  const destName = tokens[1];
  if (level === undefined || destName === undefined) {
    throw new LogSettingsError(`Malformed format for log output '${src}'`);
  }
  const priority = parsePriority(level);
  if (priority === null) {
    throw new LogSettingsError(`Invalid log priority '${level}' for log output '${src}'`);
  }
  const dest = DESTINATIONS.find((d) => d === destName);
  if (dest === undefined) {
    throw new LogSettingsError(`Invalid log destination '${destName}' for log output '${src}'`);
  }
  const wanted = dest === 'stderr' || dest === 'journald' ? 2 : 3;
  if (tokens.length !== wanted) {
    throw new LogSettingsError(
      `Log output '${src}' does not meet the format requirements for destination type '${destName}'`,
    );
  }
  const extra = tokens[2] ?? null;
  // libvirt canonicalises file paths against the daemon's working directory.
  const name = dest === 'file' && extra !== null ? path.resolve(cwd, extra) : extra;
  return { priority, dest, name };
}

/**
 * Space-separated outputs. A later output with the same destination (and, for file and syslog,
 * the same name) replaces the earlier one and takes its place at the end, as in libvirt.
 */
export function parseLogOutputs(src: string, cwd?: string): LogOutputSpec[] {
  const list: LogOutputSpec[] = [];
  for (const word of nonEmptyWords(src)) {
    const spec = parseLogOutput(word, cwd);
    const at = list.findIndex((o) => o.dest === spec.dest && o.name === spec.name);
    list.push(spec);
    if (at >= 0) list.splice(at, 1);
  }
  return list;
}

/** virLogGetFilters: every filter followed by one space ("1:*util* 3:*rpc* "). */
export function formatLogFilters(filters: readonly LogFilter[]): string {
  return filters.map((f) => `${f.priority}:${f.match} `).join('');
}

/** virLogGetOutputs: outputs separated by single spaces. */
export function formatLogOutputs(outputs: readonly LogOutputSpec[]): string {
  return outputs
    .map((o) => (o.name === null ? `${o.priority}:${o.dest}` : `${o.priority}:${o.dest}:${o.name}`))
    .join(' ');
}

export interface DefaultOutputContext {
  /** The default priority at the time the default output is chosen. */
  priority: LogPriority;
  daemonized: boolean;
  privileged: boolean;
  stdinIsTty: boolean;
  /** Whether /run/systemd/journal/socket is writable. */
  haveJournald: boolean;
  /** $LOCALSTATEDIR, "/var" on distributions. */
  localStateDir: string;
  /** The user's cache directory (~/.cache), for a non-root daemon's log file. */
  userCacheDir: string;
  daemonName?: string;
}

/** virLogSetDefaultOutput: journald when it is there, else a log file (daemon) or stderr. */
export function defaultLogOutput(ctx: DefaultOutputContext): string {
  const name = ctx.daemonName ?? 'virtproxyd';
  // journald rate-limits; libvirt never sends it debug output by default.
  const journald = `${ctx.priority === VIR_LOG_DEBUG ? VIR_LOG_INFO : ctx.priority}:journald`;
  if (ctx.daemonized) {
    if (ctx.haveJournald) return journald;
    const dir = ctx.privileged ? `${ctx.localStateDir}/log/libvirt` : ctx.userCacheDir;
    return `${ctx.priority}:file:${dir}/${name}.log`;
  }
  if (!ctx.stdinIsTty && ctx.haveJournald) return journald;
  return `${ctx.priority}:stderr`;
}
