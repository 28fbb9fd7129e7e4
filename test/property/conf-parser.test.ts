// Property tests for the virConf parser: generated configurations written out with varied but valid
// layout parse back to the same values and lines; arbitrary text fails only with ConfigError.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { ConfigError, parseConf, type ConfValue } from '../../src/config/conf-parser.js';

const RUNS = 1000;

// A value plus a way to print it; numbers carry their literal so '+', '-0' and leading zeros occur.
type Gen = { value: ConfValue; text: string };

const quotableChars = fc.constantFrom(
  'a',
  'Z',
  '0',
  ' ',
  '\t',
  '"',
  "'",
  '#',
  ';',
  ',',
  '[',
  ']',
  '=',
  '\n',
  '\r',
  'é',
  '💡',
);

const stringGen: fc.Arbitrary<Gen> = fc
  .record({ s: fc.string({ unit: quotableChars, maxLength: 12 }), preferTriple: fc.boolean() })
  .filter(({ s, preferTriple }) => {
    const singleLine = !s.includes('\n') && !s.includes('\r');
    const tripleOk = !s.includes('"""') && !s.endsWith('"');
    if (preferTriple) return tripleOk;
    return (singleLine && (!s.includes('"') || !s.includes("'"))) || tripleOk;
  })
  .map(({ s, preferTriple }) => {
    const singleLine = !s.includes('\n') && !s.includes('\r');
    let text: string;
    if (!preferTriple && singleLine && !s.includes('"')) text = `"${s}"`;
    else if (!preferTriple && singleLine && !s.includes("'")) text = `'${s}'`;
    else text = `"""${s}"""`;
    return { value: { kind: 'string', value: s }, text };
  });

const unsignedGen: fc.Arbitrary<Gen> = fc
  .record({
    n: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 10n })),
    plus: fc.boolean(),
    zeros: fc.nat({ max: 3 }),
  })
  .map(({ n, plus, zeros }) => ({
    value: { kind: 'int', value: n, signed: false },
    text: `${plus ? '+' : ''}${'0'.repeat(zeros)}${n}`,
  }));

const signedGen: fc.Arbitrary<Gen> = fc
  .record({ n: fc.bigInt({ min: 0n, max: 1n << 63n }), zeros: fc.nat({ max: 2 }) })
  .map(({ n, zeros }) => ({
    value: { kind: 'int', value: -n, signed: true },
    text: `-${'0'.repeat(zeros)}${n}`,
  }));

const listSpace = fc.constantFrom('', ' ', '\t', '\n', '\n  ', ' # note\n', '\r\n');

const valueGen: fc.Arbitrary<Gen> = fc.letrec<{ value: Gen }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    stringGen,
    unsignedGen,
    signedGen,
    fc
      .record({
        items: fc.array(tie('value'), { maxLength: 4 }),
        spaces: fc.array(listSpace, { minLength: 12, maxLength: 12 }),
        trailingComma: fc.boolean(),
      })
      .map(({ items, spaces, trailingComma }) => {
        const sp = (i: number): string => spaces[i % spaces.length] ?? '';
        let text = `[${sp(0)}`;
        items.forEach((item, i) => {
          if (i > 0) text += `${sp(i + 1)},${sp(i + 2)}`;
          text += item.text;
        });
        if (trailingComma && items.length > 0) text += `${sp(7)},`;
        text += `${sp(8)}]`;
        return { value: { kind: 'list', items: items.map((g) => g.value) } as ConfValue, text };
      }),
  ),
})).value;

const entryGen = fc.record({
  name: fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,8}$/),
  value: valueGen,
  lead: fc.constantFrom('', ' ', '\t'),
  beforeEq: fc.constantFrom('', ' ', '\t '),
  afterEq: fc.constantFrom('', ' ', '\t'),
  trailingComment: fc.option(
    fc.string({ unit: fc.constantFrom('x', ' ', '#', '"', ';', '['), maxLength: 6 }),
    {
      nil: undefined,
    },
  ),
  separator: fc.constantFrom(
    '\n',
    ';',
    ' ; ',
    '\n\n',
    '\r\n',
    ';\n# comment line\n',
    '\n  # indented # comment\n',
  ),
});

describe('parseConf properties', () => {
  it('serialised configurations parse back to the first value of each key, with its line', () => {
    fc.assert(
      fc.property(
        fc.array(entryGen, { maxLength: 8 }),
        fc.constantFrom('', '# header\n', '\n\n'),
        (entries, head) => {
          let text = head;
          const expected = new Map<string, { value: ConfValue; line: number }>();
          entries.forEach((e) => {
            text += e.lead;
            const line = 1 + (text.match(/\n/g)?.length ?? 0);
            if (!expected.has(e.name)) expected.set(e.name, { value: e.value.value, line });
            text += `${e.name}${e.beforeEq}=${e.afterEq}${e.value.text}`;
            // A trailing comment runs to the end of the line, so it needs a separator that ends one.
            const endsLine = e.separator.startsWith('\n') || e.separator.startsWith('\r');
            const sep = e.trailingComment !== undefined && !endsLine ? '\n' : e.separator;
            if (e.trailingComment !== undefined) text += ` #${e.trailingComment}`;
            text += sep;
          });
          const parsed = parseConf(text, 'gen.conf');
          assert.deepEqual(
            new Map([...parsed].map(([k, v]) => [k, { value: v.value, line: v.line }])),
            expected,
            JSON.stringify(text),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('arbitrary text either parses or throws ConfigError', { timeout: 30_000 }, () => {
    const syntaxy = fc.constantFrom(
      'a',
      'b',
      '_',
      '0',
      '9',
      '-',
      '+',
      ' ',
      '\t',
      '\n',
      '\r',
      '=',
      ';',
      ',',
      '#',
      '"',
      '"""',
      "'",
      '[',
      ']',
      'x = ',
      '\u0000',
    );
    const texts = fc.oneof(
      fc.string({ unit: syntaxy, maxLength: 60 }),
      fc.string({ unit: 'binary', maxLength: 60 }),
      fc.string({ maxLength: 60 }),
    );
    fc.assert(
      fc.property(texts, (text) => {
        try {
          const parsed = parseConf(text, 'fuzz.conf');
          assert.ok(parsed instanceof Map);
          for (const [name, entry] of parsed) {
            assert.match(name, /^[A-Za-z][A-Za-z0-9_]*$/);
            assert.ok(entry.line >= 1);
          }
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          assert.equal(err.file, 'fuzz.conf');
          assert.ok(err.line !== undefined && err.line >= 1);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
