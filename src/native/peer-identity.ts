// Who is on the other end of a local (AF_UNIX) client connection, gathered the way
// libvirt builds a client identity (NOTES §5.1), and its typed-parameter form for
// REMOTE_PROC_CONNECT_SET_IDENTITY. Native layer: kernel credentials via the addon,
// names from /etc/passwd and /etc/group, process start time from /proc.
import { readFileSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type NativeApi, native, socketFd } from './native.js';

export interface PeerIdentity {
  uid: number;
  gid: number;
  /** -1 when the kernel reports 0 (peer in another pid namespace), as libvirt does. */
  pid: number;
  /** null when the uid has no /etc/passwd entry. */
  userName: string | null;
  /** null when the gid has no /etc/group entry. */
  groupName: string | null;
  /** Start time of `pid` in clock ticks since boot; null when it cannot be read. */
  processTime: bigint | null;
  /** Peer's security label; null when no security module labels sockets. */
  selinuxContext: string | null;
}

export interface IdentityTypedParam {
  field: string;
  type: number;
  value: string | bigint | number;
}

// libvirt's virTypedParameterType values for the types an identity uses.
const VIR_TYPED_PARAM_LLONG = 3;
const VIR_TYPED_PARAM_ULLONG = 4;
const VIR_TYPED_PARAM_STRING = 7;

/**
 * Maps the numeric id (third field) of a passwd- or group-format file to its name
 * (first field). The first entry wins, as with getpwuid()/getgrgid() on "files".
 * Comments, blank lines, NIS compat entries ('+'/'-') and malformed ids are skipped.
 */
export function parseIdNameFile(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const fields = line.split(':');
    const name = fields[0];
    const id = fields[2];
    if (name === undefined || name === '' || id === undefined || !/^\d+$/.test(id)) continue;
    const value = Number(id);
    if (!names.has(value)) names.set(value, name);
  }
  return names;
}

/**
 * id → name lookups over one passwd- or group-format file. The parsed file is kept
 * until the file's mtime, inode or size changes, so an account added while the
 * daemon runs is seen without re-reading the file for every client.
 * Only local files are consulted: accounts that live solely in other NSS sources
 * (LDAP, sssd, systemd-homed) come back as null.
 */
export class IdNameTable {
  readonly #path: string;
  #stamp: string | null = null;
  #names = new Map<number, string>();

  constructor(path: string) {
    this.#path = path;
  }

  lookup(id: number): string | null {
    this.#refresh();
    return this.#names.get(id) ?? null;
  }

  #refresh(): void {
    const stat = statSync(this.#path, { throwIfNoEntry: false, bigint: true });
    const stamp = stat === undefined ? 'missing' : `${stat.mtimeNs}:${stat.ino}:${stat.size}`;
    if (stamp === this.#stamp) return;
    let text = '';
    try {
      text = readFileSync(this.#path, 'utf8');
    } catch {
      // An unreadable file behaves like an empty one: every lookup yields null.
    }
    this.#names = parseIdNameFile(text);
    this.#stamp = stamp;
  }
}

/**
 * Field 22 (starttime) of a /proc/<pid>/stat line. Field 2 is the command name in
 * parentheses and may itself contain spaces and ')', so fields are counted from the
 * last ')' in the line.
 */
export function parseProcStatStartTime(text: string): bigint | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // After the command come fields 3, 4, ...; field 22 is therefore at index 19.
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const value = fields[22 - 3];
  if (value === undefined || !/^\d+$/.test(value)) return null;
  return BigInt(value);
}

/** Start time of a process in clock ticks since boot, or null if it is unknown. */
export function readProcessStartTime(pid: number, procRoot = '/proc'): bigint | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    // latin1 maps bytes 1:1, so an odd command name cannot shift the fields.
    return parseProcStatStartTime(readFileSync(`${procRoot}/${pid}/stat`, 'latin1'));
  } catch {
    return null;
  }
}

const users = new IdNameTable('/etc/passwd');
const groups = new IdNameTable('/etc/group');

/**
 * The identity of the process at the other end of a connected unix socket, or null
 * when the socket has no OS fd or is not local (a TCP peer has no kernel credentials;
 * libvirt collects these attributes for unix sockets only). Addon errors propagate.
 */
export function readPeerIdentity(sock: Socket, api?: NativeApi): PeerIdentity | null {
  const fd = socketFd(sock);
  if (fd === null || sock.remoteFamily !== undefined) return null;
  const addon = api ?? native();
  const cred = addon.getPeerCred(fd);
  return {
    uid: cred.uid,
    gid: cred.gid,
    pid: cred.pid === 0 ? -1 : cred.pid,
    userName: users.lookup(cred.uid),
    groupName: groups.lookup(cred.gid),
    processTime: readProcessStartTime(cred.pid),
    selinuxContext: addon.getPeerSecContext(fd),
  };
}

/**
 * The identity as libvirt's typed parameters, in the order libvirt adds them
 * (virNetServerClientCreateIdentity). Unknown names and start time are left out
 * rather than sent empty; libvirt would refuse such a client, and that choice
 * belongs to the caller. sasl-user-name and x509-distinguished-name are not part of
 * the socket identity: the auth layer appends them.
 */
export function identityTypedParams(id: PeerIdentity): IdentityTypedParam[] {
  const params: IdentityTypedParam[] = [];
  if (id.userName !== null)
    params.push({ field: 'user-name', type: VIR_TYPED_PARAM_STRING, value: id.userName });
  params.push({ field: 'unix-user-id', type: VIR_TYPED_PARAM_ULLONG, value: BigInt(id.uid) });
  if (id.groupName !== null) {
    params.push({ field: 'group-name', type: VIR_TYPED_PARAM_STRING, value: id.groupName });
  }
  params.push({ field: 'unix-group-id', type: VIR_TYPED_PARAM_ULLONG, value: BigInt(id.gid) });
  params.push({ field: 'process-id', type: VIR_TYPED_PARAM_LLONG, value: BigInt(id.pid) });
  if (id.processTime !== null) {
    params.push({ field: 'process-time', type: VIR_TYPED_PARAM_ULLONG, value: id.processTime });
  }
  if (id.selinuxContext !== null) {
    params.push({ field: 'selinux-context', type: VIR_TYPED_PARAM_STRING, value: id.selinuxContext });
  }
  return params;
}
