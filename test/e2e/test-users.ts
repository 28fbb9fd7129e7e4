// End-to-end support: throw-away local users for tests that need a real non-root client (identity
// forwarding, polkit). Users are created with useradd and removed again by the test file; clients
// run as them through util-linux setpriv. Needs root; `usersUnavailable()` says why not otherwise.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  /** A private home directory (libvirt's client library keeps a cache there). */
  home: string;
}

/** Why this process cannot create users and switch to them, or null when it can. */
export function usersUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'creating test users needs root';
  for (const tool of ['useradd', 'userdel', 'setpriv']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return null;
}

function idOf(name: string, flag: '-u' | '-g'): number {
  const r = spawnSync('id', [flag, name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`id ${flag} ${name}: ${r.stderr.trim()}`);
  return Number(r.stdout.trim());
}

/**
 * Creates system user `name` with a group of the same name (or reuses one a crashed run left),
 * with a home under `homeBase`.
 */
export function createUser(name: string, homeBase: string): TestUser {
  if (spawnSync('id', ['-u', name]).status !== 0) {
    const r = spawnSync(
      'useradd',
      ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`useradd ${name} failed: ${r.stderr.trim()}`);
  }
  const uid = idOf(name, '-u');
  const gid = idOf(name, '-g');
  const home = join(homeBase, `home-${name}`);
  mkdirSync(home, { recursive: true });
  chownSync(home, uid, gid);
  chmodSync(homeBase, 0o755);
  return { name, uid, gid, home };
}

/** Removes a user made by createUser; a failure is reported, not thrown (cleanup path). */
export function removeUser(name: string): string | null {
  const r = spawnSync('userdel', [name], { encoding: 'utf8' });
  return r.status === 0 ? null : `userdel ${name}: ${r.stderr.trim()}`;
}

/** Runs `file args` as `user` (uid, gid, its groups), with a minimal C-locale environment. */
export function spawnAs(user: TestUser, file: string, args: string[]): ChildProcess {
  return spawn(
    'setpriv',
    [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', file, ...args],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: user.home,
        LC_ALL: 'C',
        LANG: 'C',
      },
    },
  );
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `file args` as `user` to completion (SIGKILL after `timeoutMs`). */
export function runAs(user: TestUser, file: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnAs(user, file, args);
    child.stdin?.end();
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      stderr += `\nkilled after ${timeoutMs} ms`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
