// Daemon layer: the command line of virtproxyd(8), parsed with node:util parseArgs into a plain
// value; usage text and version line live here so --help, the man page and README stay in step.

import { parseArgs } from 'node:util';
import { LIBVIRT_VERSION } from '../protocol/constants.js';

export interface CliOptions {
  help: boolean;
  version: boolean;
  daemon: boolean;
  verbose: boolean;
  config: string | null;
  pidFile: string | null;
  timeout: number;
  /** --doctor: check the setup and exit (not in libvirt's virtproxyd). */
  doctor: boolean;
}

export class CliError extends Error {}

export const VERSION_LINE = `virtproxyd (libvirt) ${LIBVIRT_VERSION}`;

export function usage(argv0: string): string {
  return `
Usage:
  ${argv0} [options]

Options:
  -h | --help            Display program help
  -v | --verbose         Verbose messages
  -d | --daemon          Run as a daemon & write PID file
  -t | --timeout <secs>  Exit after timeout period
  -f | --config <file>   Configuration file
  -V | --version         Display version information
  -p | --pid-file <file> Change name of PID file
       --doctor          Check configuration, sockets, driver daemons and
                         certificates; say what clients would hit; exit 0 if healthy

proxy daemon: forwards libvirt client connections to the per-driver daemons.

  Default paths:

    Configuration file (unless overridden by -f):
      /etc/libvirt/virtproxyd.conf (as root)
      $XDG_CONFIG_HOME/libvirt/virtproxyd.conf (otherwise)

    Sockets:
      /run/libvirt/libvirt-sock, /run/libvirt/libvirt-sock-ro (as root)
      $XDG_RUNTIME_DIR/libvirt/libvirt-sock (otherwise)

    PID file (unless overridden by -p):
      /run/virtproxyd.pid (as root)
      $XDG_RUNTIME_DIR/libvirt/virtproxyd.pid (otherwise)

  Signals: SIGTERM/SIGINT/SIGQUIT stop the daemon; SIGHUP reloads what can be reloaded;
  SIGUSR2 restarts gracefully, handing the listening sockets to a fresh copy.
`;
}

export function parseCli(args: readonly string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
        daemon: { type: 'boolean', short: 'd' },
        verbose: { type: 'boolean', short: 'v' },
        config: { type: 'string', short: 'f' },
        'pid-file': { type: 'string', short: 'p' },
        timeout: { type: 'string', short: 't' },
        doctor: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (parsed.positionals.length > 0) throw new CliError(`unexpected argument '${parsed.positionals[0]}'`);
  const v = parsed.values;
  let timeout = 0;
  if (v.timeout !== undefined) {
    if (!/^\d+$/.test(v.timeout) || Number(v.timeout) > Math.floor(2147483647 / 1000)) {
      throw new CliError('Invalid value for timeout');
    }
    timeout = Number(v.timeout);
  }
  return {
    help: v.help === true,
    version: v.version === true,
    daemon: v.daemon === true,
    verbose: v.verbose === true,
    config: v.config ?? null,
    pidFile: v['pid-file'] ?? null,
    timeout,
    doctor: v.doctor === true,
  };
}
