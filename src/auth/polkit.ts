// Auth layer: polkit authorisation of a local client (NOTES §7.2) through the system's polkit, by
// running its `pkcheck` tool: subject = the client process (pid, start time, uid), action
// org.libvirt.unix.manage or .monitor, user interaction allowed, as libvirt asks. pkcheck's answer
// is turned into the error libvirt's own D-Bus call would produce.

import { execFile } from 'node:child_process';
import {
  VIR_ERR_AUTH_CANCELLED,
  VIR_ERR_AUTH_FAILED,
  VIR_ERR_AUTH_UNAVAILABLE,
  VIR_ERR_ERROR,
  VIR_ERR_INTERNAL_ERROR,
  VIR_FROM_POLKIT,
  VIR_FROM_RPC,
} from '../protocol/constants.js';
import { remoteError, type RemoteError } from '../protocol/remote-error.js';
import { readProcessStartTime } from '../native/peer-identity.js';
import { native, socketFd } from '../native/native.js';
import type { ClientConnection } from '../server/client-connection.js';

/** virErrorNumber / virErrorDomain values only this module raises. */
const VIR_ERR_DBUS_SERVICE = 89;
const VIR_FROM_DBUS = 47;

/** How long one check may take; libvirt's D-Bus calls give up after 30 s too. */
const PKCHECK_TIMEOUT_MS = 30_000;

export interface PolkitSubject {
  pid: number;
  /** Process start time in clock ticks since boot (field 22 of /proc/<pid>/stat). */
  startTime: bigint;
  uid: number;
}

/** What one pkcheck run produced; `code` null when it could not run or was killed. */
export interface PkcheckResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Why pkcheck could not be run at all (e.g. not installed), if so. */
  spawnError?: string;
}

export type PkcheckRunner = (args: readonly string[]) => Promise<PkcheckResult>;

export function polkitAction(readonly: boolean): string {
  return readonly ? 'org.libvirt.unix.monitor' : 'org.libvirt.unix.manage';
}

/** pkcheck's command line for one check: the "unix-process" subject libvirt sends over D-Bus. */
export function pkcheckArgs(action: string, subject: PolkitSubject): string[] {
  return [
    '--action-id',
    action,
    '--process',
    `${subject.pid},${subject.startTime},${subject.uid}`,
    '--allow-user-interaction',
  ];
}

/**
 * The wire error for a handler that failed without reporting one: libvirt's daemon sends this when
 * the client's start time is unknown or its identity cannot be read (NOTES §1.5, §7.2).
 */
export function unreportedError(): RemoteError {
  return {
    code: VIR_ERR_INTERNAL_ERROR,
    domain: VIR_FROM_RPC,
    message: 'Library function returned error but did not set virError',
    level: VIR_ERR_ERROR,
    str1: null,
    str2: null,
    str3: null,
    int1: 0,
    int2: 0,
  };
}

function dbusError(code: number, template: string, detail: string): RemoteError {
  return {
    code,
    domain: VIR_FROM_DBUS,
    message: template.replace('%s', () => detail),
    level: VIR_ERR_ERROR,
    str1: template.replace('%s', '%1$s'),
    str2: detail,
    str3: null,
    int1: -1,
    int2: -1,
  };
}

/** pkcheck prints details as key=value lines; polkit escapes '.' in keys as "\56". */
function details(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    out.set(line.slice(0, eq).replace(/\\56/g, '.'), line.slice(eq + 1));
  }
  return out;
}

/**
 * Maps a pkcheck run to libvirt's outcome of CheckAuthorization: null when authorised, else the
 * error libvirt reports (virPolkitCheckAuth and its D-Bus helpers).
 *
 * pkcheck exits 0 authorised, 1 not authorised, 2 a challenge (authentication needed, no agent
 * could do it), 3 the user dismissed the dialog, 126 no authority (no system bus), 127 the D-Bus
 * call itself failed (e.g. polkitd not running).
 */
export function pkcheckOutcome(action: string, r: PkcheckResult): RemoteError {
  if (r.code === 1 && details(r.stdout).get('polkit.dismissed') === 'true') r = { ...r, code: 3 };
  switch (r.code) {
    case 1:
      return remoteError(VIR_ERR_AUTH_FAILED, VIR_FROM_POLKIT, 'access denied by policy');
    case 2:
      return remoteError(
        VIR_ERR_AUTH_UNAVAILABLE,
        VIR_FROM_POLKIT,
        `no polkit agent available to authenticate action '${action}'`,
      );
    case 3:
      return remoteError(VIR_ERR_AUTH_CANCELLED, VIR_FROM_POLKIT, 'user cancelled authentication process');
    case 126: {
      // "Error getting authority: Error initializing authority: <GError text>": libvirt fails
      // earlier, getting its system bus connection, with the same GError text.
      const m = /Error initializing authority: (.*)/.exec(r.stderr);
      const detail = `Unable to get system bus connection: ${(m?.[1] ?? r.stderr).trim()}`;
      return dbusError(VIR_ERR_INTERNAL_ERROR, 'internal error: %s', detail);
    }
    case 127: {
      // "Error checking for authorization <action>: <GError text>": the CheckAuthorization call
      // failed; libvirt reports the same GError text as VIR_ERR_DBUS_SERVICE.
      const m = /Error checking for authorization [^:]*: (.*)/.exec(r.stderr);
      if (m?.[1] !== undefined) return dbusError(VIR_ERR_DBUS_SERVICE, 'error from service: %s', m[1].trim());
      return unreportedError();
    }
    default:
      // pkcheck missing, killed by the timeout, or an exit code it does not document.
      return unreportedError();
  }
}

/** Runs the real pkcheck (found on PATH, talking to the bus DBUS_SYSTEM_BUS_ADDRESS names, if set). */
export const runPkcheck: PkcheckRunner = (args) =>
  new Promise((resolve) => {
    execFile('pkcheck', args, { timeout: PKCHECK_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err === null) return resolve({ code: 0, stdout, stderr });
      const code = (err as { code?: number | string }).code;
      if (typeof code === 'number') return resolve({ code, stdout, stderr });
      resolve({ code: null, stdout, stderr, spawnError: err.message });
    });
  });

/** Asks polkit whether `subject` may perform `action`; null when it may. */
export async function checkPolkit(
  action: string,
  subject: PolkitSubject,
  run: PkcheckRunner = runPkcheck,
): Promise<RemoteError | null> {
  const r = await run(pkcheckArgs(action, subject));
  return r.code === 0 ? null : pkcheckOutcome(action, r);
}

/**
 * The AUTH_POLKIT check for a client on a unix socket: its credentials are read from the socket
 * now (as libvirt does at this call), its start time from /proc; a read-only client asks for the
 * monitor action, any other for manage.
 */
export function authorizePolkit(
  client: ClientConnection,
  run: PkcheckRunner = runPkcheck,
): Promise<RemoteError | null> {
  const fd = socketFd(client.socket);
  if (fd === null) return Promise.resolve(unreportedError());
  let cred;
  try {
    cred = native().getPeerCred(fd);
  } catch {
    return Promise.resolve(unreportedError());
  }
  const startTime = readProcessStartTime(cred.pid);
  // libvirt refuses a client whose start time it cannot read rather than ask polkit without it.
  if (startTime === null || startTime === 0n) return Promise.resolve(unreportedError());
  return checkPolkit(polkitAction(client.readonly), { pid: cred.pid, startTime, uid: cred.uid }, run);
}
