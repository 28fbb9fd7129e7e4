// Allow-list globbing as GLib's g_pattern_match_simple: whole-string, '*' and '?' only.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { allowListPermits, globMatch } from '../../../src/auth/tls-allow-list.js';

test('glob basics', () => {
  assert.ok(globMatch('C=GB,O=Test Org,CN=*', 'C=GB,O=Test Org,CN=client1'));
  assert.ok(globMatch('*', ''));
  assert.ok(globMatch('a*b*c', 'abc'));
  assert.ok(globMatch('a*b*c', 'axxbyyc'));
  assert.ok(globMatch('?lice', 'alice'));
  assert.ok(!globMatch('?lice', 'lice'));
  assert.ok(!globMatch('alice', 'alice2'), 'whole string');
  assert.ok(!globMatch('CN=*', 'C=GB,CN=x'), 'anchored at the start');
  assert.ok(globMatch('a\\*', 'a\\xyz'), 'backslash is an ordinary character');
  assert.ok(globMatch('h?llo', 'hällo'), "'?' is one character, not one byte");
});

test('unset list admits everyone, an empty list nobody', () => {
  assert.ok(allowListPermits(null, 'anyone'));
  assert.ok(!allowListPermits([], 'anyone'));
  assert.ok(allowListPermits(['bob', 'al*'], 'alice'));
  assert.ok(!allowListPermits(['bob', 'al*'], 'mallory'));
});

test('property: same answer as the equivalent anchored regular expression', () => {
  const alphabet = fc.constantFrom('a', 'b', '*', '?', ',', '=');
  fc.assert(
    fc.property(
      fc.string({ unit: alphabet, maxLength: 8 }),
      fc.string({ unit: fc.constantFrom('a', 'b', ',', '='), maxLength: 10 }),
      (p, t) => {
        const re = new RegExp(
          `^${[...p].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c)).join('')}$`,
          's',
        );
        assert.equal(globMatch(p, t), re.test(t));
      },
    ),
  );
});
