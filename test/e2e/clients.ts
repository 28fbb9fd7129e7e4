// Client-side helpers for the e2e tests that the harness does not cover: virsh without `-q` (so
// each command's confirmation line can be asserted), long-running clients a test reads line by
// line or kills mid-call, unique object names, and file checksums. Test support only.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { after } from 'node:test';
import { GUEST_PREFIX } from './guest.js';
import { directUri, type RunResult } from './harness.js';

const VIRSH = '/usr/bin/virsh';
const PYTHON = '/usr/bin/python3';
const CLIENT_TIMEOUT_MS = 60_000;
/** C locale: assertions match libvirt's untranslated messages. */
const CLIENT_ENV = { ...process.env, LC_ALL: 'C', LANG: 'C' };

const live = new Set<ChildProcess>();

after(() => {
  for (const child of live) child.kill('SIGKILL');
});

process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * A name no other test process will pick: the shared prefix (so backend.sh can find leftovers),
 * a tag, this pid and a random suffix (several objects of one kind per process).
 */
export function uniqueName(tag: string): string {
  return `${GUEST_PREFIX}${tag}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** A Linux bridge name (at most 15 characters) no other test process will pick. */
export function uniqueBridge(): string {
  return `vpe${randomBytes(4).toString('hex')}`;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A client process the test talks to while it runs. */
export interface LiveClient {
  child: ChildProcess;
  /** Complete stdout lines so far. */
  lines: string[];
  /** Resolves with the first stdout line (present or future) that `match` accepts; rejects on exit or timeout. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves once the process has exited, with everything it printed. */
  done: Promise<RunResult & { signal: NodeJS.Signals | null }>;
}

/** Spawns a client in the C locale with piped stdout/stderr; killed when the test file ends. */
export function startClient(file: string, args: string[]): LiveClient {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: CLIENT_ENV });
  live.add(child);
  const lines: string[] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  const waiters = new Set<() => void>();
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    partial += s;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const w of waiters) w();
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<RunResult & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      live.delete(child);
      if (partial !== '') lines.push(partial);
      partial = '';
      for (const w of waiters) w();
      resolve({ code: code ?? -1, signal, stdout, stderr });
    });
  });
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const waitForLine = (match: (line: string) => boolean, timeoutMs = 30_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = lines.find(match);
        if (hit !== undefined) finish(() => resolve(hit));
        else if (exited())
          finish(() =>
            reject(
              new Error(`client exited before the expected line; stdout:\n${stdout}\nstderr:\n${stderr}`),
            ),
          );
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new Error(`no expected line within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`),
            ),
          ),
        timeoutMs,
      );
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      waiters.add(check);
      check();
    });
  return { child, lines, waitForLine, done };
}

/** Runs a client to completion (SIGKILLed after 60 s); never throws on a non-zero exit. */
async function runToEnd(file: string, args: string[]): Promise<RunResult> {
  const c = startClient(file, args);
  const timer = setTimeout(() => c.child.kill('SIGKILL'), CLIENT_TIMEOUT_MS);
  try {
    const r = await c.done;
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `virsh -c <uri> <commands>` without `-q`, so the confirmation each command prints ("Domain 'x'
 * defined from ...") reaches stdout. Several commands may be joined with ';' in one argument.
 */
export function virshLoud(uri: string, ...args: string[]): Promise<RunResult> {
  return runToEnd(VIRSH, ['-c', uri, ...args]);
}

/** Like virshLoud(), but asserts success and returns stdout. */
export async function virshLoudOk(uri: string, ...args: string[]): Promise<string> {
  const r = await virshLoud(uri, ...args);
  assert.equal(r.code, 0, `virsh -c ${uri} ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Runs a python script that prints one JSON object per line; asserts exit 0 and parses the lines. */
export async function pythonJsonLines(script: string, args: string[] = []): Promise<unknown[]> {
  const r = await runToEnd(PYTHON, ['-c', script, ...args]);
  assert.equal(r.code, 0, `python failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}

/** Runs virsh straight against libvirtd, ignoring failures: for cleanup that must not depend on the proxy. */
export async function cleanupDirect(driverUri: string, ...commands: string[][]): Promise<void> {
  for (const cmd of commands) await runToEnd(VIRSH, ['-q', '-c', directUri(driverUri), ...cmd]);
}
