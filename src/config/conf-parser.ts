// Parser for libvirt's virConf syntax, the format of virtproxyd.conf (libvirt's src/util/virconf.c).
// Config layer: pure text in, typed entries out; it never touches files or the process. Syntax
// errors carry libvirt's wording so messages read the same as the C daemon's.

export type ConfValue =
  | { kind: 'string'; value: string }
  | { kind: 'int'; value: bigint; signed: boolean }
  | { kind: 'list'; items: ConfValue[] };

export interface ConfEntry {
  name: string;
  value: ConfValue;
  /** 1-based line on which the entry's name starts. */
  line: number;
}

/** Every configuration failure: syntax, type, semantic check or unreadable file. */
export class ConfigError extends Error {
  readonly code: string;
  readonly file: string;
  readonly line: number | undefined;
  readonly key: string | undefined;

  constructor(
    code: string,
    message: string,
    where: { file: string; line?: number | undefined; key?: string | undefined; cause?: unknown },
  ) {
    super(message, where.cause === undefined ? undefined : { cause: where.cause });
    this.name = 'ConfigError';
    this.code = code;
    this.file = where.file;
    this.line = where.line;
    this.key = where.key;
  }
}

/** libvirt refuses configuration files above 10 MiB as a sanity check. */
export const MAX_CONFIG_FILE_SIZE = 10 * 1024 * 1024;

/** The `what` phrases libvirt prints after "configuration file syntax error: <file>:<line>: ". */
export type ConfSyntaxProblem =
  | 'expecting a name'
  | 'expecting an assignment'
  | 'expecting a value'
  | 'unterminated string'
  | 'expecting a separator'
  | 'expecting a separator in list'
  | 'list is not closed with ]'
  | 'unterminated number'
  | 'numeric overflow in conf value'
  | 'lists nested too deeply';

// libvirt recurses without bound on nested lists; a file of ten million '[' would overflow our stack,
// so we stop at a depth no real configuration comes near (daemon keys only use flat lists).
const MAX_LIST_DEPTH = 64;

const UNSIGNED_MAX = (1n << 64n) - 1n;
const SIGNED_MIN_MAGNITUDE = 1n << 63n;
const MAX_DIGITS = UNSIGNED_MAX.toString().length;

const CH_TAB = 0x09;
const CH_LF = 0x0a;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_DQUOTE = 0x22;
const CH_HASH = 0x23;
const CH_SQUOTE = 0x27;
const CH_PLUS = 0x2b;
const CH_COMMA = 0x2c;
const CH_MINUS = 0x2d;
const CH_SEMICOLON = 0x3b;
const CH_EQUALS = 0x3d;
const CH_LBRACKET = 0x5b;
const CH_RBRACKET = 0x5d;
const CH_UNDERSCORE = 0x5f;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isBlank(c: number): boolean {
  return c === CH_SPACE || c === CH_TAB;
}

function isEol(c: number): boolean {
  return c === CH_LF || c === CH_CR;
}

class ConfParser {
  private pos = 0;
  private line = 1;
  private readonly end: number;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {
    this.end = text.length;
  }

  parse(): Map<string, ConfEntry> {
    const entries = new Map<string, ConfEntry>();
    for (;;) {
      this.skipBlanksAndEol();
      // libvirt fails a file holding nothing but whitespace with "expecting a name"; accepting it
      // is the only sane reading and cannot change the meaning of any file libvirt accepts.
      if (this.pos >= this.end) break;
      if (this.cur() === CH_HASH) {
        this.skipToEol();
      } else {
        const entry = this.parseAssignment();
        // A repeated key is still parsed (so it must be valid) but libvirt looks up the first one.
        if (!entries.has(entry.name)) entries.set(entry.name, entry);
      }
      this.parseSeparator();
    }
    return entries;
  }

  private cur(): number {
    return this.pos < this.end ? this.text.charCodeAt(this.pos) : -1;
  }

  private fail(what: ConfSyntaxProblem): never {
    throw new ConfigError(
      what === 'numeric overflow in conf value' ? 'CONF_OVERFLOW' : 'CONF_SYNTAX',
      `configuration file syntax error: ${this.file}:${this.line}: ${what}`,
      { file: this.file, line: this.line },
    );
  }

  private skipBlanks(): void {
    while (this.pos < this.end && isBlank(this.text.charCodeAt(this.pos))) this.pos++;
  }

  private skipBlanksAndEol(): void {
    while (this.pos < this.end) {
      const c = this.text.charCodeAt(this.pos);
      if (c === CH_LF) this.line++;
      else if (c !== CH_CR && !isBlank(c)) break;
      this.pos++;
    }
  }

  // Inside lists libvirt takes no comments; we allow them (as whitespace up to the end of the
  // line) because it costs nothing and only widens what is accepted.
  private skipListSpace(): void {
    for (;;) {
      this.skipBlanksAndEol();
      if (this.cur() !== CH_HASH) return;
      this.skipToEol();
    }
  }

  private skipToEol(): void {
    while (this.pos < this.end && !isEol(this.text.charCodeAt(this.pos))) this.pos++;
  }

  private parseAssignment(): ConfEntry {
    const line = this.line;
    const name = this.parseName();
    this.skipBlanks();
    if (this.cur() !== CH_EQUALS) this.fail('expecting an assignment');
    this.pos++;
    const value = this.parseValue(0);
    this.skipBlanks();
    if (this.cur() === CH_HASH) this.skipToEol();
    return { name, value, line };
  }

  private parseName(): string {
    const start = this.pos;
    if (!isAlpha(this.cur())) this.fail('expecting a name');
    this.pos++;
    for (;;) {
      const c = this.cur();
      if (!isAlpha(c) && !isDigit(c) && c !== CH_UNDERSCORE) break;
      this.pos++;
    }
    return this.text.slice(start, this.pos);
  }

  private parseSeparator(): void {
    this.skipBlanks();
    if (this.pos >= this.end) return;
    const c = this.cur();
    if (isEol(c)) return; // the statement loop skips the line breaks themselves
    if (c !== CH_SEMICOLON) this.fail('expecting a separator');
    this.pos++;
  }

  private parseValue(depth: number): ConfValue {
    this.skipBlanks();
    const c = this.cur();
    if (c === CH_DQUOTE || c === CH_SQUOTE) return { kind: 'string', value: this.parseString(c) };
    if (c === CH_LBRACKET) return this.parseList(depth + 1);
    if (isDigit(c) || c === CH_MINUS || c === CH_PLUS) return this.parseNumber();
    return this.fail('expecting a value');
  }

  private parseString(quote: number): string {
    if (quote === CH_DQUOTE && this.text.startsWith('"""', this.pos)) {
      const start = this.pos + 3;
      const close = this.text.indexOf('"""', start);
      const stop = close < 0 ? this.end : close;
      for (let i = start; i < stop; i++) if (this.text.charCodeAt(i) === CH_LF) this.line++;
      this.pos = stop;
      if (close < 0) this.fail('unterminated string');
      this.pos = close + 3;
      return this.text.slice(start, close);
    }
    const start = this.pos + 1;
    let i = start;
    while (i < this.end) {
      const c = this.text.charCodeAt(i);
      if (c === quote || isEol(c)) break;
      i++;
    }
    this.pos = i;
    if (this.cur() !== quote) this.fail('unterminated string');
    this.pos++;
    return this.text.slice(start, i);
  }

  private parseNumber(): ConfValue {
    const sign = this.cur();
    const signed = sign === CH_MINUS;
    if (signed || sign === CH_PLUS) this.pos++;
    const start = this.pos;
    while (this.pos < this.end && isDigit(this.text.charCodeAt(this.pos))) this.pos++;
    if (this.pos === start) this.fail('unterminated number');
    let digits = this.text.slice(start, this.pos);
    let nonZero = 0;
    while (nonZero < digits.length - 1 && digits.charCodeAt(nonZero) === 0x30) nonZero++;
    digits = digits.slice(nonZero);
    // Checking the length first keeps a megabyte of digits from costing a huge BigInt conversion.
    if (digits.length > MAX_DIGITS) this.fail('numeric overflow in conf value');
    const magnitude = BigInt(digits);
    if (signed ? magnitude > SIGNED_MIN_MAGNITUDE : magnitude > UNSIGNED_MAX) {
      this.fail('numeric overflow in conf value');
    }
    return { kind: 'int', value: signed ? -magnitude : magnitude, signed };
  }

  private parseList(depth: number): ConfValue {
    if (depth > MAX_LIST_DEPTH) this.fail('lists nested too deeply');
    this.pos++; // '['
    const items: ConfValue[] = [];
    this.skipListSpace();
    if (this.pos < this.end && this.cur() !== CH_RBRACKET) {
      items.push(this.parseValue(depth));
      this.skipListSpace();
    }
    while (this.pos < this.end && this.cur() !== CH_RBRACKET) {
      if (this.cur() !== CH_COMMA) this.fail('expecting a separator in list');
      this.pos++;
      this.skipListSpace();
      if (this.cur() === CH_RBRACKET) break;
      items.push(this.parseValue(depth));
      this.skipListSpace();
    }
    if (this.cur() !== CH_RBRACKET) this.fail('list is not closed with ]');
    this.pos++;
    return { kind: 'list', items };
  }
}

/**
 * Parses virConf text. Keys map to their FIRST occurrence, as libvirt's lookup returns the first
 * match; later duplicates must still be well-formed. `file` only names the source in errors.
 */
export function parseConf(text: string, file: string): Map<string, ConfEntry> {
  if (Buffer.byteLength(text, 'utf8') > MAX_CONFIG_FILE_SIZE) {
    throw new ConfigError(
      'CONF_TOO_LARGE',
      `Failed to read file '${file}': Value too large for defined data type`,
      {
        file,
      },
    );
  }
  return new ConfParser(text, file).parse();
}
