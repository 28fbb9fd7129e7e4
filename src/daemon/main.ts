// Daemon layer: virtproxyd's entry point. Parses the command line, loads the config, takes the
// PID file, opens the listeners and wires clients to the proxy; owns signals and process exit.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadDaemonConfig, socketMode, type DaemonConfig } from '../config/daemon-config.js';
import { ConfigError } from '../config/conf-parser.js';
import { native } from '../native/native.js';
import { identityTypedParams, readPeerIdentity } from '../native/peer-identity.js';
import { ProxyOpener } from '../proxy/proxy-opener.js';
import { authorizePolkit } from '../auth/polkit.js';
import type { ClientConnection, ServiceInfo } from '../server/client-connection.js';
import { RpcServer } from '../server/server.js';
import { listenUnix } from '../transport/unix-listener.js';
import { CliError, VERSION_LINE, parseCli, usage, type CliOptions } from './cli.js';
import { Logger } from './logger.js';
import { daemonPaths } from './paths.js';
import { PidFile } from './pid-file.js';
import { xdgRuntimeDir } from '../config/daemon-config.js';
import { socketFd } from '../native/native.js';

/** Exit codes after option parsing (libvirt's virDaemonErr). */
const EXIT_PIDFILE = 1;
const EXIT_RUNDIR = 2;
const EXIT_NETWORK = 6;
const DAEMON_CHILD_ENV = 'VIRTPROXYD_DAEMON_STATUS_FD';

function lookupGroup(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined) return Number(f[2]);
  }
  throw new Error(`Failed to parse group '${name}'`);
}

interface Running {
  stop(reason: string): Promise<void>;
}

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
  const logger = new Logger(cli.verbose ? Math.min(config.log_level || 2, 2) : config.log_level || 3);
  if (notSupportedYet.length > 0) {
    logger.log('warn', `config keys not supported yet (ignored): ${notSupportedYet.join(', ')}`);
  }
  const paths = daemonPaths({ privileged, env: process.env, unixSockDir: config.unix_sock_dir ?? undefined });
  try {
    fs.mkdirSync(paths.runDir, { recursive: true, mode: privileged ? 0o755 : 0o700 });
    if (config.unix_sock_dir !== null) fs.mkdirSync(config.unix_sock_dir, { recursive: true });
  } catch (e) {
    fatal(EXIT_RUNDIR, `Unable to create rundir ${paths.runDir}: ${(e as Error).message}`);
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

  let running: Running;
  try {
    running = await startServing(config, paths, privileged, logger, cli, () => {
      void running.stop('idle timeout');
    });
  } catch (e) {
    pidFile?.release();
    fatal(EXIT_NETWORK, (e as Error).message);
    return;
  }
  logger.log('info', `virtproxyd ${VERSION_LINE} ready`);
  report(null);

  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    logger.log('info', `received ${sig}, shutting down`);
    void running.stop(sig).then(() => {
      pidFile?.release();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGQUIT', () => stop('SIGQUIT'));
  process.on('SIGHUP', () => logger.log('info', 'SIGHUP: nothing to reload yet (configuration is read at startup)'));
  process.on('SIGPIPE', () => undefined);
  running.stop = ((inner) => async (reason: string) => {
    await inner(reason);
    if (reason === 'idle timeout') {
      pidFile?.release();
      process.exit(0);
    }
  })(running.stop);
}

async function startServing(
  config: Readonly<DaemonConfig>,
  paths: ReturnType<typeof daemonPaths>,
  privileged: boolean,
  logger: Logger,
  cli: CliOptions,
  onIdle: () => void,
): Promise<Running> {
  const driverSockets = new Map<string, string>();
  for (const o of config.backend_sockets) driverSockets.set(o.driver, o.rwSocket);
  const peerIdentity = (c: ClientConnection) => {
    if (c.service.transport !== 'unix') return null;
    try {
      const id = readPeerIdentity(c.socket);
      return id === null ? null : identityTypedParams(id);
    } catch (e) {
      logger.log('warn', `client ${c.id}: cannot read peer identity: ${(e as Error).message}`);
      return null;
    }
  };
  const opener = new ProxyOpener({
    router: {
      privileged,
      backendSockDir: config.backend_sock_dir,
      sessionSockDir: path.join(xdgRuntimeDir(process.env), 'libvirt'),
      driverSockets,
    },
    keepaliveInterval: config.keepalive_interval,
    keepaliveCount: config.keepalive_count,
    identityOf: peerIdentity,
  });

  let idleTimer: NodeJS.Timeout | null = null;
  const armIdle = (n: number): void => {
    if (cli.timeout <= 0) return;
    if (idleTimer !== null) clearTimeout(idleTimer);
    idleTimer = null;
    if (n === 0) idleTimer = setTimeout(onIdle, cli.timeout * 1000);
  };

  const server = new RpcServer({
    name: 'virtproxyd',
    maxClients: config.max_clients,
    limits: {
      keepaliveInterval: config.keepalive_interval,
      keepaliveCount: config.keepalive_count,
      maxClientRequests: Math.max(1, config.max_client_requests),
    },
    hooks: {
      openBackend: (c, name, ro) => opener.open(c, name, ro),
      authorizePolkit: (c) => authorizePolkit(c),
      closed: (c, reason) => logger.log('info', `client ${c.id} disconnected: ${reason}`),
      log: (level, msg) => logger.log(level, msg),
    },
    onClientCreated: (c) => {
      if (c.service.transport === 'unix') {
        const fd = socketFd(c.socket);
        try {
          if (fd !== null) c.peerUid = native().getPeerCred(fd).uid;
        } catch {
          c.peerUid = null;
        }
      }
      logger.log('debug', `client ${c.id} connected on ${c.service.name}`);
    },
    onClientCountChange: armIdle,
  });

  const listeners: Array<{ server: net.Server; path: string }> = [];
  const gid = config.unix_sock_group !== null ? lookupGroup(config.unix_sock_group) : null;
  const backlog = config.max_queued_clients || 30;
  const addUnix = async (p: string, mode: number, service: ServiceInfo): Promise<void> => {
    const srv = net.createServer({ pauseOnConnect: false }, (sock) => server.accept(sock, service));
    await listenUnix(srv, { path: p, mode, gid, backlog });
    listeners.push({ server: srv, path: p });
    logger.log('debug', `listening on ${p} (${service.name})`);
  };
  try {
    await addUnix(paths.rwSocket, socketMode(config.unix_sock_rw_perms), {
      name: 'rw',
      readonly: false,
      auth: config.auth_unix_rw,
      transport: 'unix',
    });
    if (paths.roSocket !== null) {
      await addUnix(paths.roSocket, socketMode(config.unix_sock_ro_perms), {
        name: 'ro',
        readonly: true,
        auth: config.auth_unix_ro,
        transport: 'unix',
      });
    }
  } catch (e) {
    for (const l of listeners) {
      l.server.close();
      fs.rmSync(l.path, { force: true });
    }
    throw e;
  }
  armIdle(0);

  return {
    async stop(): Promise<void> {
      if (idleTimer !== null) clearTimeout(idleTimer);
      for (const l of listeners) {
        l.server.close();
        fs.rmSync(l.path, { force: true });
      }
      server.closeAll();
      // Give backend legs a moment to send CONNECT_CLOSE.
      await new Promise((r) => setTimeout(r, 50));
    },
  };
}

/** -d: start a detached copy and exit once it reports that it serves (or why it cannot). */
async function daemonize(argv: readonly string[]): Promise<void> {
  const script = process.argv[1] ?? '';
  const child = spawn(process.execPath, [script, ...argv], {
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
