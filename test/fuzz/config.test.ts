// Fuzz target: the configuration surface read at startup and through the admin socket: the virConf
// parser, the typed daemon config built from it, log_filters/log_outputs strings and the command
// line. Text is drawn from virConf's own token alphabet around real key names, so most inputs get
// deep into the parsers. Each may only succeed or fail with its own error class, quickly.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';

import { ConfigError, parseConf } from '../../src/config/conf-parser.js';
import { LIBVIRT_KEYS, OWN_KEYS, parseDaemonConfigText } from '../../src/config/daemon-config.js';
import { CliError, parseCli } from '../../src/daemon/cli.js';
import { LogSettingsError, parseLogFilters, parseLogOutputs } from '../../src/daemon/log-settings.js';
import { Meter, fuzzParams } from './support.js';

// Parsers of text already in memory: a few copies of the input at most.
const meter = new Meter('config', { maxSingle: (n) => 4 * n + 4096, maxTotal: (n) => 16 * n + 65536 });
after(() => meter.print());

function only<E>(cls: abstract new (...a: never[]) => E, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof cls)) throw e;
  }
}

const KEYS = [...LIBVIRT_KEYS, ...OWN_KEYS, 'keepalive_required', 'no_such_key'];

const token = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...KEYS) },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      ' = ',
      '=',
      ' ',
      '\t',
      '\n',
      '\r\n',
      '\r',
      '#',
      '# comment\n',
      ';',
      ',',
      '[',
      ']',
      '[ ',
      ' ]',
      '"',
      "'",
      '"""',
      '"x"',
      "'y'",
      '"""multi\nline"""',
      '0',
      '1',
      '-1',
      '+5',
      '007',
      '18446744073709551615',
      '18446744073709551616',
      '-9223372036854775809',
      '99999999999999999999999',
      '0x10',
      '1e3',
      '"none"',
      '"polkit"',
      '"sasl"',
      '"0777"',
      '"0o777"',
      '"9"',
      '"1:stderr"',
      '"3:file:/tmp/x.log"',
      '"1:*rpc*"',
      '"qemu=/run/x"',
      '"127.0.0.1:9000"',
      '"machine-id"',
      '"smbios"',
      '"tls"',
      'é',
      '💡',
      '\0',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);

const confText = fc.oneof(
  fc.array(token, { maxLength: 60 }).map((t) => t.join('')),
  // Well-formed assignments of random values to real keys: reaches the typed checks.
  fc
    .array(
      fc.tuple(
        fc.constantFrom(...KEYS),
        fc.oneof(
          fc.integer().map(String),
          fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s.replace(/[\n\r\\]/g, ''))),
          fc
            .array(
              fc.string({ maxLength: 6 }).map((s) => `"${s.replace(/["\n\r\\]/g, '')}"`),
              { maxLength: 4 },
            )
            .map((a) => `[${a.join(', ')}]`),
        ),
      ),
      { maxLength: 12 },
    )
    .map((kv) => kv.map(([k, v]) => `${k} = ${v}`).join('\n')),
  fc.string({ maxLength: 300 }),
);

describe('fuzz: configuration', () => {
  it('virConf parser and the typed daemon config', { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(confText, fc.boolean(), (text, privileged) =>
        meter.run(text.length, () => {
          only(ConfigError, () => parseConf(text, 'fuzz.conf'));
          only(ConfigError, () => {
            const r = parseDaemonConfigText(text, 'fuzz.conf', privileged, { HOME: '/root' });
            assert.ok(Object.isFrozen(r.config));
          });
        }),
      ),
      fuzzParams(10_000),
    );
  });

  it('deeply nested lists and long files stay bounded', { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.constantFrom('[', '[ 1,', '"', '#', 'a=1\n'),
        (n, unit) => {
          const text = `x = ${unit.repeat(n)}`;
          meter.run(text.length, () => only(ConfigError, () => parseConf(text, 'deep.conf')));
        },
      ),
      fuzzParams(500),
    );
  });

  it('log_filters and log_outputs strings', { timeout: 600_000 }, () => {
    const part = fc.constantFrom(
      '1',
      '2',
      '3',
      '4',
      '0',
      '5',
      '+1',
      ' ',
      ':',
      '*',
      '?',
      'rpc',
      'util',
      'stderr',
      'file',
      'syslog',
      'journald',
      '/tmp/l',
      'x',
      '+',
    );
    const text = fc.oneof(
      fc.array(part, { maxLength: 20 }).map((p) => p.join('')),
      fc.string({ maxLength: 64 }),
    );
    fc.assert(
      fc.property(text, (s) =>
        meter.run(s.length, () => {
          only(LogSettingsError, () => {
            for (const f of parseLogFilters(s)) {
              // Filters are matched against category names; the compiled glob must stay linear.
              f.regex.test('daemon.rpc.virnetserverclient.' + 'a'.repeat(200));
            }
          });
          only(LogSettingsError, () => parseLogOutputs(s, '/'));
        }),
      ),
      fuzzParams(10_000),
    );
  });

  it('command line', () => {
    const arg = fc.constantFrom(
      '-d',
      '--daemon',
      '-l',
      '--listen',
      '-t',
      '--timeout',
      '5',
      '-1',
      'abc',
      '-f',
      '--config',
      '/x.conf',
      '-p',
      '--pid-file',
      '',
      '-v',
      '--verbose',
      '-V',
      '--version',
      '-h',
      '--help',
      '--bogus',
      '--timeout=',
      '--timeout=99999999999',
      'positional',
    );
    fc.assert(
      fc.property(fc.array(arg, { maxLength: 8 }), (args) =>
        meter.run(args.join(' ').length, () => only(CliError, () => parseCli(args))),
      ),
      fuzzParams(5_000),
    );
  });
});
