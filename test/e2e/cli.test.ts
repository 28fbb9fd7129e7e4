// End-to-end tests of virtproxyd's command line as virtproxyd(8) and NOTES §9.1 describe it:
// --version, --help, bad options and arguments, and configuration files that fail to load (§8.3)
// or hold keys not implemented yet. Each case runs the real bin/virtproxyd in a temp dir.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot, startProxy, virshOk } from './harness.js';

const BIN = join(repoRoot, 'bin', 'virtproxyd');
// Generous for a loaded 2-core machine; a command that does not exit by then is a failure itself.
const RUN_TIMEOUT_MS = 15_000;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vpcli-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `node bin/virtproxyd ...args` to completion; SIGKILLs it (and reports so) if it hangs. */
function runDaemon(args: string[]): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      stderr += `\n[test: still running after ${RUN_TIMEOUT_MS} ms; killed]`;
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Writes a config file into the temp dir; its sockets would go to a private run dir. */
async function confFile(name: string, lines: string[]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, lines.join('\n') + '\n');
  return file;
}

function describe(r: Exit): string {
  return `exit ${r.code} (signal ${r.signal})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

// Every option virtproxyd(8) documents must appear in the usage text.
const DOCUMENTED_OPTIONS = [
  '--help',
  '--daemon',
  '--config',
  '--pid-file',
  '--timeout',
  '--verbose',
  '--version',
];
const SHORT_OPTIONS = ['-h', '-d', '-f', '-p', '-t', '-v'];

function assertUsage(text: string): void {
  assert.match(text, /Usage:\s*\n\s*virtproxyd \[options\]/);
  for (const o of [...DOCUMENTED_OPTIONS, ...SHORT_OPTIONS]) {
    assert.ok(text.includes(o), `usage text lacks ${o}:\n${text}`);
  }
}

test('--version prints "virtproxyd (libvirt) X.Y.Z" on stdout and exits 0', async () => {
  for (const flag of ['--version', '-V']) {
    const r = await runDaemon([flag]);
    assert.equal(r.code, 0, describe(r));
    assert.match(r.stdout, /^virtproxyd \(libvirt\) \d+\.\d+\.\d+\n$/, describe(r));
    assert.equal(r.stderr, '', describe(r));
  }
});

test('-h and --help print the usage on stderr, nothing on stdout, and exit 0', async () => {
  for (const flag of ['-h', '--help']) {
    const r = await runDaemon([flag]);
    assert.equal(r.code, 0, describe(r));
    assert.equal(r.stdout, '', describe(r));
    assertUsage(r.stderr);
  }
});

test('an unknown option prints the usage on stderr and exits non-zero', async () => {
  for (const flag of ['--bogus', '-x', '--listen']) {
    const r = await runDaemon([flag]);
    assert.notEqual(r.code, 0, describe(r));
    assert.equal(r.signal, null, describe(r));
    assert.equal(r.stdout, '', describe(r));
    assert.ok(r.stderr.includes(flag), `stderr does not name ${flag}:\n${r.stderr}`);
    assertUsage(r.stderr);
  }
});

test('an invalid -t value is refused with "Invalid value for timeout" and exit 1', async () => {
  // INT_MAX/1000 = 2147483 is the largest timeout libvirt accepts.
  for (const args of [['-t', 'abc'], ['--timeout=5x'], ['-t', '2147484'], ['-t', '']]) {
    const r = await runDaemon(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${describe(r)}`);
    assert.match(r.stderr, /Invalid value for timeout/, `${args.join(' ')}: ${describe(r)}`);
  }
});

test('-t without its value is refused, naming the option', async () => {
  const r = await runDaemon(['-t']);
  assert.equal(r.code, 1, describe(r));
  assert.match(r.stderr, /-t|--timeout/, describe(r));
  assertUsage(r.stderr);
});

test('a positional argument is refused with exit 1 and names the argument', async () => {
  const r = await runDaemon(['stray-argument']);
  assert.equal(r.code, 1, describe(r));
  assert.equal(r.stdout, '', describe(r));
  assert.ok(r.stderr.includes('stray-argument'), describe(r));
});

test('-f with a missing file fails with exit 1 and names the file and the reason', async () => {
  const missing = join(dir, 'does-not-exist.conf');
  const pid = join(dir, 'missing.pid');
  const r = await runDaemon(['-f', missing, '-p', pid]);
  assert.equal(r.code, 1, describe(r));
  assert.ok(r.stderr.includes(missing), describe(r));
  assert.match(r.stderr, /No such file or directory/, describe(r));
  assert.equal(existsSync(pid), false, 'a daemon that failed its config must not leave a PID file');
});

test('a config syntax error names the file and line and exits 1 before touching any path', async () => {
  const run = join(dir, 'syntax-run');
  const file = await confFile('syntax.conf', [
    '# a comment on line 1',
    `unix_sock_dir = "${run}"`,
    'max_clients = ',
    'log_level = 3',
  ]);
  const pid = join(dir, 'syntax.pid');
  const r = await runDaemon(['-f', file, '-p', pid]);
  assert.equal(r.code, 1, describe(r));
  assert.ok(r.stderr.includes(`${file}:3:`), `stderr does not name ${file}:3:\n${r.stderr}`);
  assert.match(r.stderr, /configuration file syntax error/, describe(r));
  assert.match(r.stderr, /expecting a value/, describe(r));
  assert.equal(existsSync(pid), false, 'no PID file after a config error');
  assert.equal(existsSync(run), false, 'no socket dir after a config error');
});

test('a config type error names the key, the file and the line and exits 1', async () => {
  const file = await confFile('type.conf', [
    `unix_sock_dir = "${join(dir, 'type-run')}"`,
    '',
    'max_clients = "x"',
  ]);
  const pid = join(dir, 'type.pid');
  const r = await runDaemon(['-f', file, '-p', pid]);
  assert.equal(r.code, 1, describe(r));
  assert.ok(r.stderr.includes(file), describe(r));
  assert.match(r.stderr, /expected an unsigned integer for 'max_clients' parameter/, describe(r));
  assert.match(r.stderr, /line 3\b/, describe(r));
  assert.equal(existsSync(pid), false, 'no PID file after a config error');
});

test('a bool key given 2 is a range error naming the key and line', async () => {
  const file = await confFile('range.conf', ['listen_tls = 2']);
  const r = await runDaemon(['-f', file, '-p', '']);
  assert.equal(r.code, 1, describe(r));
  assert.match(r.stderr, /'listen_tls' parameter must be 0 or 1/, describe(r));
  assert.match(r.stderr, /line 1\b/, describe(r));
  assert.ok(r.stderr.includes(file), describe(r));
});

test('keys not implemented yet are reported once at startup and the daemon still serves', async () => {
  // audit_level and ovs_timeout are libvirt keys the daemon reads but does not act on
  // (outside IMPLEMENTED_KEYS in src/config/daemon-config.ts).
  const proxy = await startProxy({ conf: { audit_level: 1, ovs_timeout: 5 } });
  try {
    await virshOk(proxy.uri('qemu:///system'), 'hostname');
    await virshOk(proxy.uri('qemu:///system'), 'hostname');
    const err = proxy.stderr();
    const warnings = err.split('\n').filter((l) => /not supported yet/.test(l));
    assert.equal(warnings.length, 1, `expected one "not supported yet" line:\n${err}`);
    const [line] = warnings;
    assert.ok(
      line?.includes('audit_level') && line.includes('ovs_timeout'),
      `warning names both keys:\n${err}`,
    );
    // Implemented keys from the same file are not in the warning.
    assert.ok(
      !line?.includes('unix_sock_dir') && !line?.includes('auth_unix_rw'),
      `warning lists too much:\n${err}`,
    );
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
});

test('-v makes the daemon log informational messages that it keeps quiet without it', async () => {
  const quiet = await startProxy();
  const verbose = await startProxy({ args: ['-v'] });
  try {
    await virshOk(quiet.uri('qemu:///system'), 'hostname');
    await virshOk(verbose.uri('qemu:///system'), 'hostname');
  } finally {
    await quiet.stop();
    await verbose.stop();
  }
  assert.doesNotMatch(quiet.stderr(), /: info : /, `without -v:\n${quiet.stderr()}`);
  assert.match(verbose.stderr(), /: info : /, `with -v:\n${verbose.stderr()}`);
});
