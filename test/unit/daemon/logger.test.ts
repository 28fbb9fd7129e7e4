// The Logger: category filters, per-output priorities, the four output kinds (syslog and journald
// through a real datagram socket), live changes, and the start-up precedence of libvirt.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Logger, LogOutputOpenError, setupLogging, type LoggerIo } from '../../../src/daemon/logger.js';
import { LogSettingsError } from '../../../src/daemon/log-settings.js';
import { native, nativeTestHelpers } from '../../../src/native/native.js';

const dir = mkdtempSync(join(tmpdir(), 'vplog-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function capture(extra: Partial<LoggerIo> = {}): { io: Partial<LoggerIo>; out: string[] } {
  const out: string[] = [];
  return {
    out,
    io: {
      stderr: (t) => out.push(t),
      now: () => new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 6)),
      pid: 4242,
      hostname: 'testhost',
      ...extra,
    },
  };
}

test('without outputs, messages at or above the default priority go to stderr after the banner', () => {
  const { io, out } = capture();
  const log = new Logger({ io });
  log.log('info', 'dropped');
  log.log('warn', 'kept');
  assert.deepEqual(out, [
    '2025-01-02 03:04:05.006+0000: 4242: info : libvirt version: 11.3.0, package: virtproxyd-ts\n',
    '2025-01-02 03:04:05.006+0000: 4242: info : hostname: testhost\n',
    '2025-01-02 03:04:05.006+0000: 4242: warning : kept\n',
  ]);
});

test('the first matching filter sets a category priority; outputs then apply their own', () => {
  const { io, out } = capture();
  const log = new Logger({ io });
  log.setOutputs('1:stderr');
  log.setFilters('1:proxy 4:rpc');
  log.log('debug', 'from proxy', 'proxy.backend');
  log.log('debug', 'from daemon', 'daemon');
  log.log('warn', 'rpc warning', 'rpc.client');
  log.log('error', 'rpc error', 'rpc.client');
  const msgs = out.slice(2).map((l) => l.replace(/^.*? : /, ''));
  assert.deepEqual(msgs, ['from proxy\n', 'rpc error\n']);
  assert.ok(log.enabled('debug', 'proxy'));
  assert.ok(!log.enabled('debug', 'daemon'));

  out.length = 0;
  log.setOutputs('3:stderr');
  log.log('debug', 'below the output priority', 'proxy');
  log.log('warn', 'reaches it', 'proxy');
  assert.equal(out.filter((l) => l.includes('reaches it')).length, 1);
  assert.equal(out.filter((l) => l.includes('below')).length, 0);
});

test('filters and outputs read back in libvirt format and clear', () => {
  const { io } = capture();
  const log = new Logger({ io, defaultOutput: '3:stderr' });
  assert.deepEqual(log.filters(), { text: null, count: 0 });
  log.setFilters('1:util 2:+qemu');
  assert.deepEqual(log.filters(), { text: '1:*util* 2:*qemu* ', count: 2 });
  log.setFilters('');
  assert.deepEqual(log.filters(), { text: null, count: 0 });
  log.setOutputs('2:stderr 1:journald');
  assert.deepEqual(log.outputs(), { text: '2:stderr 1:journald', count: 2 });
  log.setOutputs('');
  assert.deepEqual(log.outputs(), { text: '3:stderr', count: 1 });
  log.setOutputs(null);
  assert.deepEqual(log.outputs(), { text: '3:stderr', count: 1 });
});

test('a rejected setting leaves the previous one in force', () => {
  const { io } = capture();
  const log = new Logger({ io });
  log.setFilters('1:a');
  log.setOutputs('2:stderr');
  assert.throws(() => log.setFilters('1:b 9:c'), LogSettingsError);
  assert.throws(() => log.setOutputs('1:stderr 1:file:/proc/nonexistent/dir/x.log'), LogOutputOpenError);
  assert.equal(log.filters().text, '1:*a* ');
  assert.equal(log.outputs().text, '2:stderr');
});

test('file outputs append libvirt-format lines, opened 0600', () => {
  const file = join(dir, 'd.log');
  const { io } = capture();
  const log = new Logger({ io, priority: 1 });
  log.setOutputs(`2:file:${file}`);
  log.log('debug', 'not for this output');
  log.log('info', 'hello file', 'daemon');
  log.close();
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 3);
  assert.equal(lines[2], '2025-01-02 03:04:05.006+0000: 4242: info : hello file');
});

test('syslog output sends RFC 3164 datagrams with the daemon facility and ident', () => {
  const sock = join(dir, 'syslog.sock');
  const h = nativeTestHelpers();
  const fd = h.testBindDgram(sock);
  try {
    const { io } = capture({ syslogSocket: sock, sendDatagram: (p, m) => native().sdNotify(p, m) });
    const log = new Logger({ io });
    log.setOutputs('3:syslog:vpx');
    log.log('error', 'disk on fire');
    const got: string[] = [];
    for (let m = h.testRecvDgram(fd); m !== null; m = h.testRecvDgram(fd)) got.push(m);
    assert.equal(got.length, 3, got.join('|'));
    // LOG_DAEMON (24) + LOG_ERR (3) = 27; banner lines are info: 24 + 6 = 30.
    assert.match(
      got[0] ?? '',
      /^<30>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d vpx\[4242\]: 4242: info : libvirt version/,
    );
    assert.match(got[2] ?? '', /^<27>.* vpx\[4242\]: 4242: error : disk on fire$/);
  } finally {
    native().closeFd(fd);
  }
});

test('journald output sends native-protocol fields; an absent socket is reported once', () => {
  const sock = join(dir, 'journal.sock');
  const h = nativeTestHelpers();
  const fd = h.testBindDgram(sock);
  try {
    const { io, out } = capture({ journaldSocket: sock, sendDatagram: (p, m) => native().sdNotify(p, m) });
    const log = new Logger({ io, priority: 2 });
    log.setOutputs('2:journald');
    log.log('info', 'line one\nline two', 'rpc.client');
    const got: string[] = [];
    for (let m = h.testRecvDgram(fd); m !== null; m = h.testRecvDgram(fd)) got.push(m);
    assert.equal(
      got[2],
      'MESSAGE=line one line two\nPRIORITY=6\nSYSLOG_FACILITY=3\nSYSLOG_IDENTIFIER=virtproxyd\nLIBVIRT_SOURCE=rpc.client\n',
    );
    assert.equal(out.length, 0);
    rmSync(sock);
    log.log('warn', 'lost 1');
    log.log('warn', 'lost 2');
    assert.equal(out.length, 1);
    assert.match(
      out[0] ?? '',
      /warning : log output 2:journald cannot deliver to .*journal\.sock: No such file/,
    );
  } finally {
    native().closeFd(fd);
  }
});

test('start-up precedence: config, then environment, then --verbose; default output last', () => {
  const { io } = capture();
  const base = {
    logLevel: 4,
    logFilters: '1:util',
    logOutputs: null,
    verbose: false,
    daemonized: false,
    privileged: true,
    env: {},
    localStateDir: '/var',
    userCacheDir: dir,
    stdinIsTty: false,
    haveJournald: false,
    io,
  };
  let log = setupLogging(base);
  assert.equal(log.defaultPriority, 4);
  assert.equal(log.filters().text, '1:*util* ');
  assert.equal(log.outputs().text, '4:stderr');

  log = setupLogging({
    ...base,
    env: { LIBVIRT_DEBUG: 'warning', LIBVIRT_LOG_FILTERS: '2:rpc', LIBVIRT_LOG_OUTPUTS: '1:stderr' },
  });
  assert.equal(log.defaultPriority, 3);
  assert.equal(log.filters().text, '2:*rpc* ');
  assert.equal(log.outputs().text, '1:stderr');

  log = setupLogging({ ...base, verbose: true });
  assert.equal(log.defaultPriority, 2);
  assert.equal(log.outputs().text, '2:stderr');

  log = setupLogging({ ...base, logOutputs: '3:stderr', verbose: true });
  assert.equal(log.outputs().text, '3:stderr', 'a configured output is not replaced by the default');

  assert.throws(
    () => setupLogging({ ...base, env: { LIBVIRT_DEBUG: 'loud' } }),
    /argument 'loud' is invalid/,
  );
  assert.throws(() => setupLogging({ ...base, logFilters: '1' }), /Malformed format for filter '1'/);
});
