// Auth layer: polkit authorisation of a local client (NOTES §7.2) through Debian's `pkcheck`,
// with the subject = the client process (pid, start time, uid) and libvirt's action ids.

import { execFile } from 'node:child_process';
import {
  VIR_ERR_AUTH_CANCELLED,
  VIR_ERR_AUTH_FAILED,
  VIR_ERR_AUTH_UNAVAILABLE,
  VIR_FROM_POLKIT,
} from '../protocol/constants.js';
import { remoteError, type RemoteError } from '../protocol/remote-error.js';
import { readProcessStartTime } from '../native/peer-identity.js';
import { native, socketFd } from '../native/native.js';
import type { ClientConnection } from '../server/client-connection.js';

export function polkitAction(readonly: boolean): string {
  return readonly ? 'org.libvirt.unix.monitor' : 'org.libvirt.unix.manage';
}

export function authorizePolkit(client: ClientConnection): Promise<RemoteError | null> {
  const denied = remoteError(VIR_ERR_AUTH_FAILED, VIR_FROM_POLKIT, 'access denied by policy');
  const fd = socketFd(client.socket);
  if (fd === null) return Promise.resolve(denied);
  const cred = native().getPeerCred(fd);
  const start = readProcessStartTime(cred.pid);
  if (start === null) return Promise.resolve(denied);
  const action = polkitAction(client.readonly);
  return new Promise((resolve) => {
    execFile(
      'pkcheck',
      ['--action-id', action, '--process', `${cred.pid},${start},${cred.uid}`],
      { timeout: 30000 },
      (err) => {
        if (err === null) return resolve(null);
        const code = (err as { code?: number | string }).code;
        if (code === 2) {
          return resolve(
            remoteError(
              VIR_ERR_AUTH_UNAVAILABLE,
              VIR_FROM_POLKIT,
              `no polkit agent available to authenticate action '${action}'`,
            ),
          );
        }
        if (code === 3) {
          return resolve(
            remoteError(VIR_ERR_AUTH_CANCELLED, VIR_FROM_POLKIT, 'user cancelled authentication process'),
          );
        }
        resolve(denied);
      },
    );
  });
}
