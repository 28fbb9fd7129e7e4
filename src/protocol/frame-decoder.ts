// Protocol layer: splits a byte stream into whole libvirt messages. The length word is checked
// before any body is buffered; frames that sit inside one chunk are handed out as views, and only
// frames spanning chunks are copied. A framing violation is reported once and stops the decoder.

import { CodedError } from './coded-error.js';
import { VIR_NET_MESSAGE_HEADER_XDR_LEN, VIR_NET_MESSAGE_LEN_MAX, VIR_NET_MESSAGE_MAX } from './constants.js';

export const MAX_FRAME_LEN = VIR_NET_MESSAGE_MAX + VIR_NET_MESSAGE_LEN_MAX;

/** Frames at least this long may be relayed in pieces as they arrive (see setCutThrough). */
export const CUT_THROUGH_MIN = 16384;

/** Receives the pieces of one relayed frame; `last` marks its final piece. */
export type PieceSink = (piece: Buffer, last: boolean) => void;

/**
 * Asked when a long frame starts but does not fit in the chunk at hand. `head` holds at least
 * the length word and header. Returning a sink relays the frame in pieces instead of assembling it.
 */
export type CutThroughHook = (head: Buffer, len: number) => PieceSink | null;

export class FrameDecoder {
  /** Bytes of a partial length word. */
  /** Holds a length word split across chunks; allocated on first need (idle clients never do). */
  private lenBufStore: Buffer | null = null;
  private lenHave = 0;
  /** A frame being assembled across chunks. */
  private partial: Buffer | null = null;
  private partialHave = 0;
  private failed = false;
  private cutThrough: CutThroughHook | null = null;
  /** The sink of a frame being relayed in pieces, and how many of its bytes are still to come. */
  private through: PieceSink | null = null;
  private throughLeft = 0;
  /** Bytes to drop before the next frame (dummy bytes that carried passed fds). */
  private skipLeft = 0;

  constructor(
    private readonly onFrame: (frame: Buffer) => void,
    private readonly onError: (err: CodedError) => void,
    private readonly maxLen = MAX_FRAME_LEN,
  ) {}

  /** Lets long frames bypass assembly: their bytes go to a sink as they arrive. */
  setCutThrough(hook: CutThroughHook | null): void {
    this.cutThrough = hook;
  }

  private get lenBuf(): Buffer {
    if (this.lenBufStore === null) this.lenBufStore = Buffer.alloc(4);
    return this.lenBufStore;
  }

  /** True while part of a frame is buffered. */
  get pending(): boolean {
    return this.lenHave > 0 || this.partial !== null;
  }

  /** Bytes buffered for an incomplete frame. */
  get bufferedBytes(): number {
    return this.partial ? this.partialHave : this.lenHave;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    let pos = 0;
    const n = chunk.length;
    if (this.through !== null) {
      const take = Math.min(this.throughLeft, n);
      const sink = this.through;
      this.throughLeft -= take;
      if (this.throughLeft === 0) this.through = null;
      sink(take === n ? chunk : chunk.subarray(0, take), this.throughLeft === 0);
      pos = take;
      if (pos === n || this.failed) return;
    }
    if (this.partial !== null || this.lenHave > 0) {
      pos = this.continuePartial(chunk);
      if (pos < 0) return;
    }
    while (pos < n && !this.failed) {
      if (this.skipLeft > 0) {
        const drop = Math.min(this.skipLeft, n - pos);
        this.skipLeft -= drop;
        pos += drop;
        continue;
      }
      if (n - pos < 4) {
        chunk.copy(this.lenBuf, 0, pos, n);
        this.lenHave = n - pos;
        return;
      }
      const len = chunk.readUInt32BE(pos);
      if (!this.checkLength(len)) return;
      if (n - pos >= len) {
        this.onFrame(chunk.subarray(pos, pos + len));
        pos += len;
      } else {
        const hook = this.cutThrough;
        if (hook !== null && len >= CUT_THROUGH_MIN && n - pos >= VIR_NET_MESSAGE_HEADER_XDR_LEN) {
          const piece = chunk.subarray(pos, n);
          const sink = hook(piece, len);
          if (sink !== null) {
            this.through = sink;
            this.throughLeft = len - piece.length;
            sink(piece, false);
            return;
          }
        }
        this.partial = Buffer.allocUnsafe(len);
        chunk.copy(this.partial, 0, pos, n);
        this.partialHave = n - pos;
        return;
      }
    }
  }

  /** Feeds the start of a chunk into a pending frame; returns where unread data begins, or -1. */
  private continuePartial(chunk: Buffer): number {
    let pos = 0;
    if (this.partial === null) {
      if (this.lenHave === 0) return 0;
      const take = Math.min(4 - this.lenHave, chunk.length);
      chunk.copy(this.lenBuf, this.lenHave, 0, take);
      this.lenHave += take;
      pos = take;
      if (this.lenHave < 4) return -1;
      this.lenHave = 0;
      const len = this.lenBuf.readUInt32BE(0);
      if (!this.checkLength(len)) return -1;
      this.partial = Buffer.allocUnsafe(len);
      this.lenBuf.copy(this.partial, 0, 0, 4);
      this.partialHave = 4;
    }
    const frame = this.partial;
    const take = Math.min(frame.length - this.partialHave, chunk.length - pos);
    chunk.copy(frame, this.partialHave, pos, pos + take);
    this.partialHave += take;
    pos += take;
    if (this.partialHave < frame.length) return -1;
    this.partial = null;
    this.partialHave = 0;
    this.onFrame(frame);
    return this.failed ? -1 : pos;
  }

  private checkLength(len: number): boolean {
    if (len < VIR_NET_MESSAGE_HEADER_XDR_LEN) {
      this.fail(
        new CodedError(
          'EFRAME_SHORT',
          `packet ${len} bytes received from client too small, want at least ${VIR_NET_MESSAGE_HEADER_XDR_LEN}`,
        ),
      );
      return false;
    }
    if (len > this.maxLen) {
      this.fail(
        new CodedError(
          'EFRAME_LONG',
          `packet ${len} bytes received from client too large, want at most ${this.maxLen}`,
        ),
      );
      return false;
    }
    return true;
  }

  /** Bytes still to be skipped. */
  get skipping(): number {
    return this.skipLeft;
  }

  /** Discards the next n bytes of the stream (called from onFrame, before the following frame). */
  skip(n: number): void {
    this.skipLeft += n;
  }

  /** Stops decoding; used by the owner on a protocol violation found in a frame. */
  stop(): void {
    this.failed = true;
    this.partial = null;
    this.through = null;
  }

  private fail(err: CodedError): void {
    this.stop();
    this.onError(err);
  }
}
