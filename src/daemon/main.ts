// Daemon layer: virtproxyd's entry point. Parses the command line, loads the config, takes the
// PID file, opens the listeners and wires clients to the proxy; owns signals and process exit.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { loadDaemonConfig, type DaemonConfig } from '../config/daemon-config.js';
import { ConfigError } from '../config/conf-parser.js';
import { CliError, VERSION_LINE, parseCli, usage, type CliOptions } from './cli.js';
import { Daemon } from './daemon.js';
import { refuseLiveUnixSockets, setupMainServices } from './services.js';
import { setupRemoteServices, type RemoteServices } from './remote-services.js';
import { installReload } from './reload.js';
import { installRestart } from './restart.js';
import { systemdNotify, takeSocketActivation } from '../transport/socket-activation.js';
import { setupAdminService, setupMetrics } from './operations.js';
import { runDoctor } from './doctor.js';
import { setupLogging, userCacheDir, type Logger } from './logger.js';
import { LOCALSTATEDIR, daemonPaths } from './paths.js';
import { PidFile } from './pid-file.js';

/** Exit codes after option parsing (libvirt's virDaemonErr). */
const EXIT_PIDFILE = 1;
const EXIT_RUNDIR = 2;
const EXIT_NETWORK = 6;
const DAEMON_CHILD_ENV = 'VIRTPROXYD_DAEMON_STATUS_FD';

export async function main(argv: readonly string[]): Promise<void> {
  const argv0 = 'virtproxyd';
  let cli: CliOptions;
  try {
    cli = parseCli(argv);
  } catch (e) {
    process.stderr.write(`${argv0}: ${(e as Error).message}\n`);
    if (!(e instanceof CliError) || (e as Error).message !== 'Invalid value for timeout') {
      process.stderr.write(usage(argv0));
    }
    process.exit(1);
  }
  if (cli.help) {
    process.stderr.write(usage(argv0));
    process.exit(0);
  }
  if (cli.version) {
    process.stdout.write(`${VERSION_LINE}\n`);
    process.exit(0);
  }
  if (cli.doctor) {
    const code = await runDoctor(
      { configFile: cli.config, privileged: process.getuid?.() === 0, env: process.env },
      (s) => process.stdout.write(s),
    );
    process.exit(code);
  }
  if (cli.daemon && process.env[DAEMON_CHILD_ENV] === undefined) {
    await daemonize(argv);
    return;
  }
  const statusFd = process.env[DAEMON_CHILD_ENV] !== undefined ? Number(process.env[DAEMON_CHILD_ENV]) : null;
  delete process.env[DAEMON_CHILD_ENV];
  const report = (msg: string | null): void => {
    if (statusFd === null) return;
    try {
      fs.writeSync(statusFd, msg === null ? 'ok\n' : `${msg}\n`);
      fs.closeSync(statusFd);
    } catch {
      // parent gone
    }
  };
  const fatal = (code: number, msg: string): never => {
    process.stderr.write(`${argv0}: error: ${msg}\n`);
    report(msg);
    process.exit(code);
  };

  const privileged = process.getuid?.() === 0;
  const defaults = daemonPaths({ privileged, env: process.env });
  const configFile = cli.config ?? defaults.configFile;
  let config: Readonly<DaemonConfig>;
  let notSupportedYet: string[] = [];
  try {
    const r = loadDaemonConfig({ file: configFile, mustExist: cli.config !== null, privileged });
    config = r.config;
    notSupportedYet = r.notSupportedYet;
  } catch (e) {
    if (e instanceof ConfigError) fatal(1, `Can't load config file: ${e.message}: ${configFile}`);
    throw e;
  }
  let logger: Logger;
  try {
    logger = setupLogging({
      logLevel: config.log_level,
      logFilters: config.log_filters,
      logOutputs: config.log_outputs,
      verbose: cli.verbose,
      daemonized: cli.daemon,
      privileged,
      env: process.env,
      localStateDir: LOCALSTATEDIR,
      userCacheDir: userCacheDir(process.env),
    });
  } catch (e) {
    fatal(1, `Can't initialize logging: ${(e as Error).message}`);
    throw e;
  }
  if (notSupportedYet.length > 0) {
    logger.log('warn', `config keys not supported yet (ignored): ${notSupportedYet.join(', ')}`);
  }
  const paths = daemonPaths({ privileged, env: process.env, unixSockDir: config.unix_sock_dir ?? undefined });
  try {
    fs.mkdirSync(paths.runDir, { recursive: true, mode: privileged ? 0o755 : 0o700 });
  } catch (e) {
    fatal(EXIT_RUNDIR, `Unable to create rundir ${paths.runDir}: ${(e as Error).message}`);
  }
  if (config.unix_sock_dir !== null) {
    // Named on its own: blaming the run dir sends the admin to a directory that is fine.
    try {
      fs.mkdirSync(config.unix_sock_dir, { recursive: true });
    } catch (e) {
      fatal(
        EXIT_RUNDIR,
        `Unable to create socket directory ${config.unix_sock_dir}: ${(e as Error).message}`,
      );
    }
  }
  const pidPath = cli.pidFile ?? defaults.pidFile;
  let pidFile: PidFile | null = null;
  if (pidPath !== '') {
    try {
      pidFile = PidFile.acquire(pidPath);
    } catch (e) {
      fatal(EXIT_PIDFILE, (e as Error).message);
    }
  }

  const daemon = new Daemon(config, paths, privileged, logger, cli.timeout, (code) => {
    pidFile?.release();
    process.exit(code);
  });
  // Socket activation (systemd, or our own predecessor on restart) replaces the config's sockets.
  daemon.activation = takeSocketActivation(process.env, process.pid, (m) => logger.log('error', m));
  let remote: RemoteServices = { tls: null, tlsMaterial: null };
  try {
    // The main unix sockets last (rw last of all): everything before them can still fail
    // startup, and a socket that accepts tells a client, or a supervisor polling it, that the
    // daemon is up with all its sockets.
    await refuseLiveUnixSockets(daemon);
    remote = await setupRemoteServices(daemon);
    const admin = await setupAdminService(daemon, { remote, shutdown: () => stop('admin daemon-shutdown') });
    await setupMetrics(daemon, admin);
    await setupMainServices(daemon);
    const unclaimed = daemon.activation?.unclaimed() ?? [];
    if (unclaimed.length > 0) {
      throw new Error(`Some activation file descriptors are unclaimed: ${unclaimed.join(', ')}`);
    }
  } catch (e) {
    pidFile?.release();
    fatal(EXIT_NETWORK, (e as Error).message);
    return;
  }
  daemon.clientCountChanged();
  logger.log('info', `${VERSION_LINE} ready`);
  report(null);
  const notify = (msg: string): void => {
    try {
      systemdNotify(msg);
    } catch (e) {
      logger.log('warn', `sd_notify failed: ${(e as Error).message}`);
    }
  };
  notify('READY=1');

  const stop = (sig: string): void => {
    logger.log('info', `received ${sig}, shutting down`);
    notify('STOPPING=1');
    void daemon.stop().then(() => {
      pidFile?.release();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGQUIT', () => stop('SIGQUIT'));
  installReload({
    daemon,
    remote,
    configFile,
    configMustExist: cli.config !== null,
    privileged,
    verbose: cli.verbose,
    daemonized: cli.daemon,
    env: process.env,
  });
  installRestart({
    daemon,
    argv,
    statusFdEnv: DAEMON_CHILD_ENV,
    pidFile:
      pidPath === ''
        ? null
        : {
            release: () => pidFile?.release(),
            reacquire: () => {
              pidFile = PidFile.acquire(pidPath);
            },
          },
  });
  process.on('SIGPIPE', () => undefined);
  // A bug in one client's handling must not take every other client down with the daemon.
  process.on('unhandledRejection', (reason) => {
    logger.log(
      'error',
      `internal error (unhandled rejection): ${(reason as Error)?.stack ?? String(reason)}`,
    );
  });
}

/** -d: start a detached copy and exit once it reports that it serves (or why it cannot). */
async function daemonize(argv: readonly string[]): Promise<void> {
  const script = process.argv[1] ?? '';
  // execArgv carries the V8 flags of bin/virtproxyd's shebang to the detached copy.
  const child = spawn(process.execPath, [...process.execArgv, script, ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, [DAEMON_CHILD_ENV]: '3' },
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream | null;
  let text = '';
  if (pipe !== null) {
    pipe.setEncoding('utf8');
    for await (const chunk of pipe) text += chunk as string;
  }
  child.unref();
  if (text.startsWith('ok')) process.exit(0);
  process.stderr.write(
    `virtproxyd: error: ${text.trim() || 'daemon exited early'}. Check /var/log/messages or run without --daemon for more info.\n`,
  );
  process.exit(1);
}
