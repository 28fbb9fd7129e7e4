// The one loader and typed face of the native addon (native/): peer credentials, fd
// passing, sd_notify and PID-file locking, the few things Node cannot do itself. Everything above
// this layer talks to `NativeApi`, so a fake can stand in where the addon is absent.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodedError } from '../protocol/coded-error.js';

export interface PeerCred {
  uid: number;
  gid: number;
  /** 0 when the peer lives in another pid namespace or has gone away. */
  pid: number;
}

export interface NativeApi {
  /** SO_PEERCRED of a connected AF_UNIX socket. */
  getPeerCred(fd: number): PeerCred;
  /** SO_PEERSEC label of the peer; null when no security module labels sockets. */
  getPeerSecContext(fd: number): string | null;
  /** Sends `fdToSend` with one 0x00 byte (libvirt's scheme); false when the socket is full. */
  sendFd(sockFd: number, fdToSend: number): boolean;
  /**
   * Receives one passed fd (close-on-exec); null when nothing is waiting yet. Node must
   * not be reading the socket meanwhile: a plain read() of the dummy byte drops its fd.
   */
  recvFd(sockFd: number): number | null;
  closeFd(fd: number): void;
  /** A connected AF_UNIX stream pair, close-on-exec, in blocking mode. */
  socketPair(): [number, number];
  /** One datagram to a $NOTIFY_SOCKET-style address ('@' prefix = abstract namespace). */
  sdNotify(socketPath: string, message: string): void;
  /** Non-blocking POSIX write lock on byte 0 (libvirt's PID-file lock); false if another process has it. */
  lockFile(fd: number): boolean;
  /**
   * Reads a unix stream socket with recvmsg() on Node's loop, keeping passed fds: `onChunk` gets
   * each chunk with the fds that came with it (null chunk: end of stream when errno is 0).
   */
  /** sasl_server_init for an application name (Cyrus reads <name>.conf); later calls are no-ops. */
  saslServerInit(appName: string): void;
  /** A server session; addresses as libvirt formats them ("ip;port"). */
  SaslServer: new (service: string, localAddr: string | null, remoteAddr: string | null) => SaslServerHandle;
  FdReader: new (
    fd: number,
    onChunk: (chunk: Buffer | null, fds: number[] | null, errno: number) => void,
  ) => FdReaderHandle;
  /** One non-blocking send(); bytes taken by the kernel (0 when the socket is full). */
  trySend(fd: number, data: Buffer): number;
}

/** One Cyrus SASL server session (native/src/sasl.cc); methods throw code 'ESASL' on failure. */
export interface SaslServerHandle {
  setExternalSsf(ssf: number): void;
  setSecurityProps(minSsf: number, maxSsf: number, allowAnonymous: boolean, maxBufSize: number): void;
  /** sasl_listmech joined by ','. */
  listMechanisms(): string;
  /** `done` true for SASL_OK, false for SASL_CONTINUE; data null when Cyrus produced none. */
  start(mech: string, data: Buffer | null): { done: boolean; data: Buffer | null };
  step(data: Buffer | null): { done: boolean; data: Buffer | null };
  userName(): string | null;
  ssf(): number;
  maxOutput(): number;
  encode(data: Buffer): Buffer;
  decode(data: Buffer): Buffer;
  dispose(): void;
}

export interface FdReaderHandle {
  start(): void;
  stop(): void;
  close(): void;
}

/** Functions the addon exports only so its own tests can play the other side. */
export interface NativeTestHelpers {
  /** A non-blocking unix datagram socket bound to `path` ('@' prefix = abstract). */
  testBindDgram(path: string): number;
  /** One datagram as a string, or null when none is queued. */
  testRecvDgram(fd: number): string | null;
  /** pipe2(O_CLOEXEC): [read end, write end]. */
  testPipe(): [number, number];
  /** One 0x00 byte carrying all of `fds` in a single SCM_RIGHTS message. */
  testSendFds(sockFd: number, fds: number[]): void;
}

const ADDON_RELATIVE_PATH = join('native', 'build', 'Release', 'virtproxyd_native.node');

let loaded: (NativeApi & NativeTestHelpers) | undefined;

/**
 * The repository root: the nearest ancestor holding native/binding.gyp. Searching
 * (rather than a fixed '../..') keeps this right both for the compiled file in
 * dist/src/native/ and for the source file when run through a TypeScript loader.
 */
function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'native', 'binding.gyp'))) return dir;
    if (dirname(dir) === dir) return join(here, '..', '..', '..');
  }
}

/** Path the addon is loaded from (exported for error messages and diagnostics). */
export function addonPath(): string {
  return join(repoRoot(), ADDON_RELATIVE_PATH);
}

function load(): NativeApi & NativeTestHelpers {
  if (loaded !== undefined) return loaded;
  const path = addonPath();
  const require = createRequire(import.meta.url);
  try {
    loaded = require(path) as NativeApi & NativeTestHelpers;
  } catch (cause) {
    throw new CodedError(
      'ENATIVE',
      `virtproxyd native addon could not be loaded from ${path} (run \`npm run build:native\`)`,
      { cause },
    );
  }
  return loaded;
}

/** The addon, loaded on first use; throws an Error with code 'ENATIVE' if it is not built. */
export function native(): NativeApi {
  return load();
}

/** The addon's test-only helpers (same loading rules as `native()`). */
export function nativeTestHelpers(): NativeTestHelpers {
  return load();
}

/**
 * The OS file descriptor behind a connected net.Socket, or null when there is none
 * (not yet connected, destroyed, or a stream without its own handle).
 * Node has no public API for this; libuv's handle exposes it as the internal
 * `_handle.fd`, so that reach into internals is kept to this one function.
 */
export function socketFd(sock: Socket): number | null {
  const handle = (sock as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}
