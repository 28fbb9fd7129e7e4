// Parsing and formatting of libvirt's log_filters / log_outputs strings, and the default output.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  LogSettingsError,
  defaultLogOutput,
  formatLogFilters,
  formatLogOutputs,
  globToRegExp,
  parseLogFilters,
  parseLogLevel,
  parseLogOutputs,
} from '../../../src/daemon/log-settings.js';

test('filters keep libvirt stored form: match wrapped in *, each followed by a space', () => {
  const f = parseLogFilters('1:util  3:+rpc.client');
  assert.equal(f.length, 2);
  assert.equal(formatLogFilters(f), '1:*util* 3:*rpc.client* ');
  assert.equal(formatLogFilters(parseLogFilters('')), '');
  assert.equal(parseLogFilters('   ').length, 0);
});

test('filter matching is a glob over the whole category, so a bare word matches a substring', () => {
  const [f] = parseLogFilters('1:net');
  assert.ok(f);
  assert.ok(f.regex.test('rpc.netserverclient'));
  assert.ok(!f.regex.test('rpc.keepalive'));
  const [g] = parseLogFilters('2:rpc.*client');
  assert.ok(g?.regex.test('rpc.netserverclient'));
  assert.equal(g?.regex.test('rpcXnetserverclient'), false, 'a dot in a glob is literal');
  assert.ok(!globToRegExp('a.b').test('axb'));
  assert.ok(globToRegExp('a?c').test('abc'));
  assert.ok(globToRegExp('(x)[y]').test('(x)[y]'));
});

test('bad filters are rejected with libvirt messages', () => {
  const msg = (s: string): string => {
    try {
      parseLogFilters(s);
    } catch (e) {
      assert.ok(e instanceof LogSettingsError);
      return e.message;
    }
    return 'no error';
  };
  assert.equal(msg('9:x'), "Invalid priority '9' for filter '9:x'");
  assert.equal(msg('0:x'), "Invalid priority '0' for filter '0:x'");
  assert.equal(msg('a:x'), "Invalid priority 'a' for filter 'a:x'");
  assert.equal(msg('x'), "Malformed format for filter 'x'");
  assert.equal(msg('1:'), "Invalid match string ''");
  assert.equal(msg('1:+'), "Invalid match string '+'");
  // One bad word rejects the whole set.
  assert.equal(msg('1:ok 7:bad'), "Invalid priority '7' for filter '7:bad'");
});

test('outputs parse, resolve file paths and format back', () => {
  const o = parseLogOutputs('1:stderr 2:file:log/x.log 3:syslog:myident 4:journald', '/srv');
  assert.deepEqual(
    o.map((x) => [x.priority, x.dest, x.name]),
    [
      [1, 'stderr', null],
      [2, 'file', '/srv/log/x.log'],
      [3, 'syslog', 'myident'],
      [4, 'journald', null],
    ],
  );
  assert.equal(formatLogOutputs(o), '1:stderr 2:file:/srv/log/x.log 3:syslog:myident 4:journald');
});

test('a repeated destination replaces the earlier one and moves to the end', () => {
  assert.equal(formatLogOutputs(parseLogOutputs('1:stderr 3:stderr')), '3:stderr');
  assert.equal(formatLogOutputs(parseLogOutputs('1:file:/a 2:stderr 3:file:/a')), '2:stderr 3:file:/a');
  assert.equal(formatLogOutputs(parseLogOutputs('1:file:/a 3:file:/b')), '1:file:/a 3:file:/b');
});

test('bad outputs are rejected with libvirt messages', () => {
  const msg = (s: string): string => {
    try {
      parseLogOutputs(s);
    } catch (e) {
      assert.ok(e instanceof LogSettingsError);
      return e.message;
    }
    return 'no error';
  };
  assert.equal(msg('5:stderr'), "Invalid log priority '5' for log output '5:stderr'");
  assert.equal(msg('stderr'), "Malformed format for log output 'stderr'");
  assert.equal(msg('1:nowhere'), "Invalid log destination 'nowhere' for log output '1:nowhere'");
  assert.equal(
    msg('1:stderr:x'),
    "Log output '1:stderr:x' does not meet the format requirements for destination type 'stderr'",
  );
  assert.equal(
    msg('1:file'),
    "Log output '1:file' does not meet the format requirements for destination type 'file'",
  );
});

test('log levels accept numbers and names', () => {
  assert.equal(parseLogLevel('1'), 1);
  assert.equal(parseLogLevel('warning'), 3);
  assert.equal(parseLogLevel('error'), 4);
  assert.equal(parseLogLevel('5'), null);
  assert.equal(parseLogLevel('warn'), null);
});

test('default output follows virLogSetDefaultOutput', () => {
  const base = {
    priority: 3 as const,
    daemonized: false,
    privileged: true,
    stdinIsTty: false,
    haveJournald: false,
    localStateDir: '/var',
    userCacheDir: '/home/u/.cache/libvirt',
  };
  assert.equal(defaultLogOutput(base), '3:stderr');
  assert.equal(defaultLogOutput({ ...base, haveJournald: true }), '3:journald');
  assert.equal(defaultLogOutput({ ...base, haveJournald: true, stdinIsTty: true }), '3:stderr');
  assert.equal(defaultLogOutput({ ...base, daemonized: true }), '3:file:/var/log/libvirt/virtproxyd.log');
  assert.equal(
    defaultLogOutput({ ...base, daemonized: true, privileged: false }),
    '3:file:/home/u/.cache/libvirt/virtproxyd.log',
  );
  // journald never gets debug by default.
  assert.equal(
    defaultLogOutput({ ...base, priority: 1, daemonized: true, haveJournald: true }),
    '2:journald',
  );
});
