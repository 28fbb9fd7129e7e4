// Default file locations of virtproxyd: config file, listening sockets, run directory, PID file
// (libvirt's virDaemonUnixSocketPaths and virPidFileConstructPath). Daemon layer, but pure: the
// environment and privilege are passed in, nothing is read from the process here.

import { xdgConfigHome, xdgRuntimeDir } from '../config/daemon-config.js';

// The build-time directories of a distribution libvirt (meson's sysconfdir, runstatedir, localstatedir).
export const SYSCONFDIR = '/etc';
export const RUNSTATEDIR = '/run';
export const LOCALSTATEDIR = '/var';

const DAEMON_NAME = 'virtproxyd';
// virtproxyd keeps libvirtd's socket names (prefix "libvirt"), so old clients find it unchanged.
const SOCKET_PREFIX = 'libvirt';

export interface DaemonPaths {
  configFile: string;
  /** Directory created at startup for sockets and (non-root) the PID file. */
  runDir: string;
  rwSocket: string;
  /** Only a system daemon offers a separate read-only socket. */
  roSocket: string | null;
  /** null when a non-root daemon is given unix_sock_dir: libvirt then creates no admin socket. */
  adminSocket: string | null;
  pidFile: string;
}

export function daemonPaths(opts: {
  privileged: boolean;
  env: NodeJS.ProcessEnv;
  unixSockDir?: string | undefined;
}): DaemonPaths {
  const { privileged, env, unixSockDir } = opts;
  const runDir = privileged ? `${RUNSTATEDIR}/libvirt` : `${xdgRuntimeDir(env)}/libvirt`;
  const configFile = privileged
    ? `${SYSCONFDIR}/libvirt/${DAEMON_NAME}.conf`
    : `${xdgConfigHome(env)}/libvirt/${DAEMON_NAME}.conf`;
  const pidFile = privileged ? `${RUNSTATEDIR}/${DAEMON_NAME}.pid` : `${runDir}/${DAEMON_NAME}.pid`;

  if (unixSockDir !== undefined) {
    // Plain concatenation like libvirt: "D/" gives "D//libvirt-sock", which names the same node.
    return {
      configFile,
      runDir,
      rwSocket: `${unixSockDir}/${SOCKET_PREFIX}-sock`,
      roSocket: privileged ? `${unixSockDir}/${SOCKET_PREFIX}-sock-ro` : null,
      adminSocket: privileged ? `${unixSockDir}/${SOCKET_PREFIX}-admin-sock` : null,
      pidFile,
    };
  }
  return {
    configFile,
    runDir,
    rwSocket: `${runDir}/${SOCKET_PREFIX}-sock`,
    roSocket: privileged ? `${runDir}/${SOCKET_PREFIX}-sock-ro` : null,
    adminSocket: `${runDir}/${SOCKET_PREFIX}-admin-sock`,
    pidFile,
  };
}
