// Benchmark support: a bare libvirt RPC client over a unix socket, built on the proxy's own
// protocol layer. It does just what the benchmarks need (the client handshake, calls matched by
// serial, keepalive answers, reading one download stream) with as little work per frame as
// possible, so that the load generator measures the daemon rather than itself.

import net from 'node:net';

import {
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  REMOTE_AUTH_NONE,
  REMOTE_PROC_AUTH_LIST,
  REMOTE_PROC_CONNECT_OPEN,
  REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  REMOTE_STRING_MAX,
  VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
  VIR_NET_CALL,
  VIR_NET_CONTINUE,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_STREAM,
} from '../src/protocol/constants.js';
import { FrameDecoder } from '../src/protocol/frame-decoder.js';
import {
  OFF_PROC,
  OFF_PROG,
  OFF_SERIAL,
  OFF_STATUS,
  OFF_TYPE,
  encodeMessage,
  framePayload,
} from '../src/protocol/header.js';
import { decodeAuthList, decodeInt, encodeConnectOpenArgs, encodeInt } from '../src/protocol/payloads.js';
import { decodeRemoteError } from '../src/protocol/remote-error.js';
import { XdrReader } from '../src/protocol/xdr-reader.js';
import { XdrWriter } from '../src/protocol/xdr-writer.js';

export const REMOTE_PROC_CONNECT_GET_HOSTNAME = 59;
export const REMOTE_PROC_STORAGE_VOL_LOOKUP_BY_PATH = 97;
export const REMOTE_PROC_STORAGE_VOL_DOWNLOAD = 209;

const PONG = encodeMessage({
  prog: KEEPALIVE_PROGRAM,
  vers: KEEPALIVE_PROTOCOL_VERSION,
  proc: KEEPALIVE_PROC_PONG,
  type: VIR_NET_MESSAGE,
  serial: 0,
  status: VIR_NET_OK,
});

/** Called with the whole reply frame (length word included) of one call. */
export type ReplyHandler = (frame: Buffer) => void;

/** A remote_nonnull_storage_vol. */
export interface StorageVol {
  pool: string;
  name: string;
  key: string;
}

export class WireClient {
  private serial = 0;
  private readonly pending = new Map<number, ReplyHandler>();
  /** STREAM frames by the serial of the call that opened the stream. */
  private readonly streams = new Map<number, ReplyHandler>();
  /** Promise-style waiters, failed when the socket closes under them. */
  private readonly waiters = new Set<(err: Error) => void>();
  private readonly decoder: FrameDecoder;
  private closedError: Error | null = null;
  /** Told once when the socket closes, with the reason. */
  onClose: ((err: Error) => void) | null = null;

  private constructor(readonly socket: net.Socket) {
    this.decoder = new FrameDecoder(
      (f) => this.socketOnFrame(f),
      (e) => socket.destroy(e),
    );
    socket.on('data', (chunk: Buffer) => {
      // One writev for every call the replies in this chunk trigger.
      socket.cork();
      this.decoder.push(chunk);
      socket.uncork();
    });
    socket.on('error', (e) => (this.closedError ??= e));
    socket.on('close', () => this.socketOnClose());
  }

  static connect(path: string): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new WireClient(socket));
      });
    });
  }

  get inflight(): number {
    return this.pending.size;
  }

  /** Sends a CALL; `onReply` gets its REPLY frame. Returns the serial used. */
  send(proc: number, payload: Buffer | null, onReply: ReplyHandler): number {
    const serial = this.serial++;
    this.pending.set(serial, onReply);
    this.socket.write(
      encodeMessage(
        {
          prog: REMOTE_PROGRAM,
          vers: REMOTE_PROTOCOL_VERSION,
          proc,
          type: VIR_NET_CALL,
          serial,
          status: VIR_NET_OK,
        },
        payload,
      ),
    );
    return serial;
  }

  /** A call as a promise of the reply payload; an error reply rejects with libvirt's message. */
  call(proc: number, payload: Buffer | null = null): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiters.add(reject);
      this.send(proc, payload, (frame) => {
        this.waiters.delete(reject);
        try {
          resolve(replyPayload(frame, proc));
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  }

  /** The client half of libvirt's handshake (NOTES §4.7): AUTH_LIST, keepalive feature, CONNECT_OPEN. */
  async open(uri: string): Promise<void> {
    const auth = decodeAuthList(await this.call(REMOTE_PROC_AUTH_LIST));
    if (auth[0] !== undefined && auth[0] !== REMOTE_AUTH_NONE) {
      throw new Error(`benchmark client: the server wants auth type ${auth[0]}; only 'none' is supported`);
    }
    const ka = decodeInt(
      await this.call(REMOTE_PROC_CONNECT_SUPPORTS_FEATURE, encodeInt(VIR_DRV_FEATURE_PROGRAM_KEEPALIVE)),
    );
    if (ka !== 1) throw new Error(`benchmark client: keepalive feature answered ${ka}`);
    await this.call(REMOTE_PROC_CONNECT_OPEN, encodeConnectOpenArgs({ name: uri, flags: 0 }));
  }

  async lookupVolByPath(path: string): Promise<StorageVol> {
    const r = new XdrReader(
      await this.call(REMOTE_PROC_STORAGE_VOL_LOOKUP_BY_PATH, new XdrWriter().string(path).toBuffer()),
    );
    return {
      pool: r.string(REMOTE_STRING_MAX),
      name: r.string(REMOTE_STRING_MAX),
      key: r.string(REMOTE_STRING_MAX),
    };
  }

  /**
   * Downloads a whole volume (NOTES §1.10): counts the bytes of the STREAM/CONTINUE packets until
   * the empty one, then sends the finishing STREAM/OK and waits for the daemon's answer to it.
   * `onData` sees every data payload (a view, valid only during the call).
   */
  downloadVol(vol: StorageVol, onData?: (data: Buffer) => void): Promise<number> {
    const args = new XdrWriter()
      .string(vol.pool)
      .string(vol.name)
      .string(vol.key)
      .uhyper(0n)
      .uhyper(0n)
      .uint(0)
      .toBuffer();
    return new Promise<number>((resolve, reject) => {
      this.waiters.add(reject);
      let bytes = 0;
      let replied = false;
      let finishing = false;
      const serial = this.send(REMOTE_PROC_STORAGE_VOL_DOWNLOAD, args, (frame) => {
        try {
          replyPayload(frame, REMOTE_PROC_STORAGE_VOL_DOWNLOAD);
          replied = true;
        } catch (e) {
          this.streams.delete(serial);
          this.waiters.delete(reject);
          reject(e as Error);
        }
      });
      this.streams.set(serial, (frame) => {
        const status = frame.readInt32BE(OFF_STATUS);
        const data = framePayload(frame);
        if (status === VIR_NET_CONTINUE && !finishing) {
          if (data.length > 0) {
            bytes += data.length;
            onData?.(data);
            return;
          }
          finishing = true;
          this.socket.write(
            encodeMessage({
              prog: REMOTE_PROGRAM,
              vers: REMOTE_PROTOCOL_VERSION,
              proc: REMOTE_PROC_STORAGE_VOL_DOWNLOAD,
              type: VIR_NET_STREAM,
              serial,
              status: VIR_NET_OK,
            }),
          );
          return;
        }
        this.streams.delete(serial);
        this.waiters.delete(reject);
        if (status === VIR_NET_OK && finishing && replied) resolve(bytes);
        else if (status === VIR_NET_OK) reject(new Error(`stream finished early (reply seen: ${replied})`));
        else reject(new Error(`stream error: ${decodeRemoteError(data).message ?? '(no message)'}`));
      });
    });
  }

  /** Closes the socket without CONNECT_CLOSE (the daemons treat EOF the same way). */
  destroy(): void {
    this.socket.destroy();
  }

  private socketOnFrame(frame: Buffer): void {
    const type = frame.readInt32BE(OFF_TYPE);
    if (type === VIR_NET_REPLY) {
      const serial = frame.readUInt32BE(OFF_SERIAL);
      const h = this.pending.get(serial);
      if (h === undefined) {
        this.socket.destroy(new Error(`reply for serial ${serial} that no call is waiting for`));
        return;
      }
      this.pending.delete(serial);
      h(frame);
      return;
    }
    if (type === VIR_NET_STREAM) {
      this.streams.get(frame.readUInt32BE(OFF_SERIAL))?.(frame);
      return;
    }
    if (
      type === VIR_NET_MESSAGE &&
      frame.readUInt32BE(OFF_PROG) === KEEPALIVE_PROGRAM &&
      frame.readInt32BE(OFF_PROC) === KEEPALIVE_PROC_PING
    ) {
      this.socket.write(PONG);
    }
  }

  private socketOnClose(): void {
    const err = this.closedError ?? new Error('connection closed by the server');
    this.onClose?.(err);
    for (const fail of this.waiters) fail(err);
    this.waiters.clear();
    this.pending.clear();
    this.streams.clear();
  }
}

/** The payload of an OK reply to `proc`; throws with libvirt's message for an error reply. */
export function replyPayload(frame: Buffer, proc: number): Buffer {
  if (frame.readInt32BE(OFF_PROC) !== proc) {
    throw new Error(`reply for proc ${frame.readInt32BE(OFF_PROC)}, expected ${proc}`);
  }
  const payload = framePayload(frame);
  if (frame.readInt32BE(OFF_STATUS) !== VIR_NET_OK) {
    throw new Error(`proc ${proc} failed: ${decodeRemoteError(payload).message ?? '(no message)'}`);
  }
  return payload;
}

/** The hostname in a CONNECT_GET_HOSTNAME reply payload. */
export function decodeHostname(payload: Buffer): string {
  return new XdrReader(payload).string(REMOTE_STRING_MAX);
}
