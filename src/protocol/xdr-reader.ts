// Protocol layer: a cursor over an XDR-encoded buffer. Every variable-length read takes an
// explicit maximum and checks padding, so hostile lengths fail before anything is allocated.

import { CodedError } from './coded-error.js';

export class XdrReader {
  private pos: number;

  constructor(
    private readonly buf: Buffer,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.end) throw new CodedError('EXDR_SHORT', 'XDR data ends too early');
  }

  int(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  bool(): boolean {
    const v = this.int();
    if (v !== 0 && v !== 1) throw new CodedError('EXDR_BOOL', `XDR bool out of range: ${v}`);
    return v === 1;
  }

  hyper(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Variable-length opaque: length word, bytes, zero padding to 4. Returns a view, not a copy. */
  opaque(max: number): Buffer {
    const len = this.uint();
    if (len > max) throw new CodedError('EXDR_TOO_LONG', `XDR opaque of ${len} bytes exceeds ${max}`);
    // Plain arithmetic: `(len + 3) & ~3` wraps to 0 for lengths near 2^32.
    const padded = len + ((4 - (len % 4)) % 4);
    this.need(padded);
    const out = this.buf.subarray(this.pos, this.pos + len);
    for (let i = this.pos + len; i < this.pos + padded; i++) {
      if (this.buf[i] !== 0) throw new CodedError('EXDR_PADDING', 'XDR padding is not zero');
    }
    this.pos += padded;
    return out;
  }

  fixedOpaque(len: number): Buffer {
    const padded = (len + 3) & ~3;
    this.need(padded);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += padded;
    return out;
  }

  string(max: number): string {
    return this.opaque(max).toString('utf8');
  }

  /** Optional value: a 0/1 presence word, then the value. */
  optional<T>(read: (r: XdrReader) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  /** Variable array: count word (checked against max before reading elements), then elements. */
  array<T>(max: number, read: (r: XdrReader) => T): T[] {
    const n = this.uint();
    if (n > max) throw new CodedError('EXDR_TOO_LONG', `XDR array of ${n} items exceeds ${max}`);
    // Each element takes at least 4 bytes; refuse counts the remaining data cannot hold.
    this.need(n * 4);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  /** `char x<N>` arrays: every byte travels as a 4-byte int (NOTES §1.7). */
  charArray(max: number): Buffer {
    const n = this.uint();
    if (n > max) throw new CodedError('EXDR_TOO_LONG', `XDR char array of ${n} items exceeds ${max}`);
    this.need(n * 4);
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.buf.readInt32BE(this.pos + i * 4) & 0xff;
    this.pos += n * 4;
    return out;
  }
}
