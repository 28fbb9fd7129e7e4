// Unit tests for the virConf parser: each syntax form, line counting, and every error phrase.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  ConfigError,
  MAX_CONFIG_FILE_SIZE,
  parseConf,
  type ConfValue,
} from '../../../src/config/conf-parser.js';

const F = '/etc/libvirt/virtproxyd.conf';

function values(text: string): Record<string, ConfValue> {
  const out: Record<string, ConfValue> = {};
  for (const [k, e] of parseConf(text, F)) out[k] = e.value;
  return out;
}

function lines(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, e] of parseConf(text, F)) out[k] = e.line;
  return out;
}

const str = (value: string): ConfValue => ({ kind: 'string', value });
const uint = (value: bigint): ConfValue => ({ kind: 'int', value, signed: false });
const sint = (value: bigint): ConfValue => ({ kind: 'int', value, signed: true });
const list = (...items: ConfValue[]): ConfValue => ({ kind: 'list', items });

function syntaxError(text: string, line: number, what: string, code = 'CONF_SYNTAX'): void {
  assert.throws(
    () => parseConf(text, F),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `configuration file syntax error: ${F}:${line}: ${what}`);
      assert.equal(err.code, code);
      assert.equal(err.file, F);
      assert.equal(err.line, line);
      assert.equal(err.key, undefined);
      return true;
    },
  );
}

describe('parseConf: values', () => {
  it('parses double- and single-quoted strings verbatim, without escapes', () => {
    assert.deepEqual(values(`a = "x y\\n#z"\nb = 'say "hi"'\nc = ""\nd = "it's"\n`), {
      a: str('x y\\n#z'),
      b: str('say "hi"'),
      c: str(''),
      d: str("it's"),
    });
  });

  it('parses triple-quoted strings across lines and counts their lines', () => {
    const text = 'a = """one\n"two" ""\nthree"""\nb = 1\n';
    assert.deepEqual(values(text), { a: str('one\n"two" ""\nthree'), b: uint(1n) });
    assert.deepEqual(lines(text), { a: 1, b: 4 });
    assert.deepEqual(values('a = """"""\n'), { a: str('') });
  });

  it('parses integers: a leading minus makes them signed, plus and digits unsigned', () => {
    assert.deepEqual(values('a = 0\nb = +17\nc = -5\nd = -0\ne = 007\n'), {
      a: uint(0n),
      b: uint(17n),
      c: sint(-5n),
      d: sint(0n),
      e: uint(7n),
    });
  });

  it('accepts the 64-bit limits and rejects one past them', () => {
    assert.deepEqual(
      values('a = 18446744073709551615\nb = -9223372036854775808\nc = 000000000000000000000001\n'),
      {
        a: uint(18446744073709551615n),
        b: sint(-9223372036854775808n),
        c: uint(1n),
      },
    );
    syntaxError('a = 18446744073709551616', 1, 'numeric overflow in conf value', 'CONF_OVERFLOW');
    syntaxError('\na = -9223372036854775809', 2, 'numeric overflow in conf value', 'CONF_OVERFLOW');
    syntaxError(`a = ${'9'.repeat(100000)}`, 1, 'numeric overflow in conf value', 'CONF_OVERFLOW');
  });

  it('parses lists: empty, nested, multi-line, trailing comma', () => {
    assert.deepEqual(
      values('a = []\nb = [ ]\nc = ["x"]\nd = [\n  "x",\n  \'y\',\n  3,\n]\ne = [[1], []]\nf = [1,]\n'),
      {
        a: list(),
        b: list(),
        c: list(str('x')),
        d: list(str('x'), str('y'), uint(3n)),
        e: list(list(uint(1n)), list()),
        f: list(uint(1n)),
      },
    );
  });

  it('accepts comments inside lists (libvirt does not; documented extension)', () => {
    const text = 'a = [ # first\n  "x", # the x\n  # alone\n  "y" # last\n]\nb = 2\n';
    assert.deepEqual(values(text), { a: list(str('x'), str('y')), b: uint(2n) });
    assert.equal(lines(text)['b'], 6);
  });
});

describe('parseConf: statements', () => {
  it('separates statements by newlines or semicolons', () => {
    assert.deepEqual(values('a=1;b=2 ; c = 3;\n\n\nd=4'), {
      a: uint(1n),
      b: uint(2n),
      c: uint(3n),
      d: uint(4n),
    });
  });

  it('accepts names of letters, digits and underscores starting with a letter, case-sensitively', () => {
    assert.deepEqual(values('Abc_9 = 1\nabc_9 = 2\n'), { Abc_9: uint(1n), abc_9: uint(2n) });
  });

  it('skips comments on their own line and after values', () => {
    const text = '# header\n  # indented\na = 1 # trailing\n\t# tab\nb = "x#y" #c\n#';
    assert.deepEqual(values(text), { a: uint(1n), b: str('x#y') });
    assert.deepEqual(lines(text), { a: 3, b: 5 });
  });

  it('keeps the FIRST occurrence of a duplicated key', () => {
    const text = 'a = 1\nb = 2\na = "later"\n';
    assert.deepEqual(values(text), { a: uint(1n), b: uint(2n) });
    assert.deepEqual(lines(text), { a: 1, b: 2 });
  });

  it('still checks later duplicates', () => {
    syntaxError('a = 1\na = "oops\n', 2, 'unterminated string');
  });

  it('treats CR as a line end that does not count a line', () => {
    assert.deepEqual(values('a = 1\r\nb = 2\r\n'), { a: uint(1n), b: uint(2n) });
    assert.deepEqual(lines('a = 1\r\nb = 2\r\n'), { a: 1, b: 2 });
  });

  it('accepts empty and whitespace-only text', () => {
    assert.equal(parseConf('', F).size, 0);
    assert.equal(parseConf(' \n\t\n', F).size, 0);
    assert.equal(parseConf('# only a comment', F).size, 0);
  });

  it('returns entries in file order of first appearance', () => {
    assert.deepEqual([...parseConf('z=1\ny=2\nz=3\nx=4\n', F).keys()], ['z', 'y', 'x']);
  });
});

describe('parseConf: errors', () => {
  it('expecting a name', () => {
    syntaxError('a = 1\n9abc = 2\n', 2, 'expecting a name');
    syntaxError('_a = 1', 1, 'expecting a name');
    syntaxError('a = 1;;', 1, 'expecting a name');
    syntaxError('\n\n= 1', 3, 'expecting a name');
  });

  it('expecting an assignment', () => {
    syntaxError('abc', 1, 'expecting an assignment');
    syntaxError('abc\n= 1', 1, 'expecting an assignment');
    syntaxError('a-b = 1', 1, 'expecting an assignment');
    syntaxError('a : 1', 1, 'expecting an assignment');
  });

  it('expecting a value', () => {
    syntaxError('a =', 1, 'expecting a value');
    syntaxError('a =\n1', 1, 'expecting a value');
    syntaxError('a = yes', 1, 'expecting a value');
    syntaxError('a = [,]', 1, 'expecting a value');
    syntaxError('a = [1,\n,]', 2, 'expecting a value');
    syntaxError('a = [1,', 1, 'expecting a value');
  });

  it('unterminated string', () => {
    syntaxError('a = "abc', 1, 'unterminated string');
    syntaxError("a = 1\nb = 'abc\n'", 2, 'unterminated string');
    syntaxError('a = "abc\'', 1, 'unterminated string');
    syntaxError('a = """abc\n\ndef""', 3, 'unterminated string');
  });

  it('expecting a separator', () => {
    syntaxError('a = 1 b = 2', 1, 'expecting a separator');
    syntaxError('a = 12abc', 1, 'expecting a separator');
    syntaxError('a = 1.5', 1, 'expecting a separator');
    syntaxError('a = "x""y"', 1, 'expecting a separator');
    syntaxError('a = []]', 1, 'expecting a separator');
  });

  it('expecting a separator in list', () => {
    syntaxError('a = [1 2]', 1, 'expecting a separator in list');
    syntaxError('a = [\n"x"\n"y"]', 3, 'expecting a separator in list');
    syntaxError('a = [1;2]', 1, 'expecting a separator in list');
  });

  it('list is not closed with ]', () => {
    syntaxError('a = [', 1, 'list is not closed with ]');
    syntaxError('a = [1,\n2\n', 3, 'list is not closed with ]');
    syntaxError('a = [ # comment\n', 2, 'list is not closed with ]');
  });

  it('unterminated number', () => {
    syntaxError('a = -', 1, 'unterminated number');
    syntaxError('a = +x', 1, 'unterminated number');
    syntaxError('a = 1\nb = --1', 2, 'unterminated number');
  });

  it('refuses absurd list nesting with a ConfigError, not a stack overflow', () => {
    assert.equal(values(`a = ${'['.repeat(64)}${']'.repeat(64)}`)['a']?.kind, 'list');
    syntaxError(`a = ${'['.repeat(65)}${']'.repeat(65)}`, 1, 'lists nested too deeply');
    syntaxError(`a = ${'['.repeat(1_000_000)}`, 1, 'lists nested too deeply');
  });

  it('refuses text larger than 10 MiB', () => {
    const big = `a = "${'x'.repeat(MAX_CONFIG_FILE_SIZE)}"`;
    assert.throws(
      () => parseConf(big, F),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'CONF_TOO_LARGE' &&
        err.message === `Failed to read file '${F}': Value too large for defined data type`,
    );
    const exact = `# ${'x'.repeat(MAX_CONFIG_FILE_SIZE - 2)}`;
    assert.equal(parseConf(exact, F).size, 0);
  });

  it('reports the line of the offending character after multi-line constructs', () => {
    syntaxError('a = """x\ny"""\nb = [\n1,\n2\n3]', 6, 'expecting a separator in list');
  });
});
