// End-to-end: Debian's real virt-admin (libvirt-clients) manages the proxy through its admin socket
// exactly as it manages libvirt's own daemons: servers, clients (list, info, disconnect), live
// client limits, worker settings, log filters and outputs, and the auto-shutdown timeout.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN,
  ADMIN_PROC_CONNECT_OPEN,
} from '../../src/admin/admin-protocol.js';
import { ADMIN_PROGRAM } from '../../src/protocol/constants.js';
import { readHeader } from '../../src/protocol/header.js';
import { WireClient, words } from '../component/wire-client.js';
import { python, startProxy, virsh, type Proxy, type RunResult } from './harness.js';

const VIRT_ADMIN = '/usr/bin/virt-admin';

/** `virt-admin -c libvirtd:///system?socket=<admin socket> ...args`, killed after 30 s. */
function virtAdmin(p: Proxy, ...args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(VIRT_ADMIN, ['-c', `libvirtd:///system?socket=${p.adminSock}`, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

async function virtAdminOk(p: Proxy, ...args: string[]): Promise<string> {
  const r = await virtAdmin(p, ...args);
  assert.equal(r.code, 0, `virt-admin ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** "key : value" lines of virt-admin's info commands. */
function fields(out: string): Record<string, string> {
  const f: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^(\S+)\s*: (.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) f[m[1]] = m[2];
  }
  return f;
}

/** Ids of srv-clients-list's table. */
function clientIds(out: string): number[] {
  return out
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(unix|tcp|tls)\s/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined)
    .map(Number);
}

async function until<T>(f: () => Promise<T | null>, what: string, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== null) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A client that stays connected and keeps calling until its stop file appears; it records its
// pid, and reports a closed connection with exit status 3.
const HOLD = `
import libvirt, os, sys, time
uri, pidfile, stopfile = sys.argv[1:4]
c = libvirt.open(uri)
c.getHostname()
open(pidfile, 'w').write(str(os.getpid()))
try:
    while not os.path.exists(stopfile):
        c.getHostname()
        time.sleep(0.1)
    c.getHostname()
except libvirt.libvirtError as e:
    print('closed: %s' % e)
    sys.exit(3)
print('done')
`;

describe('virt-admin against the proxy', () => {
  let proxy: Proxy;

  before(async () => {
    proxy = await startProxy();
  });

  after(async () => {
    await proxy.stop();
  });

  it('version and srv-list show the two servers the C daemon has', async () => {
    assert.match(await virtAdminOk(proxy, 'version'), /^Running against daemon: 11\.3\.0$/m);
    const out = await virtAdminOk(proxy, 'srv-list');
    assert.match(out, /^\s*0\s+admin$/m);
    assert.match(out, /^\s*1\s+virtproxyd$/m);
    const err = await virtAdmin(proxy, 'srv-threadpool-info', 'nosuch');
    assert.notEqual(err.code, 0);
    assert.match(err.stderr, /error: Server not found: No server named 'nosuch'/);
  });

  it('srv-threadpool-info / -set: configured values, validated changes', async () => {
    let f = fields(await virtAdminOk(proxy, 'srv-threadpool-info', 'virtproxyd'));
    assert.deepEqual(
      [
        f['minWorkers'],
        f['maxWorkers'],
        f['nWorkers'],
        f['freeWorkers'],
        f['prioWorkers'],
        f['jobQueueDepth'],
      ],
      ['5', '20', '1', '1', '5', '0'],
    );
    await virtAdminOk(proxy, 'srv-threadpool-set', 'virtproxyd', '--max-workers', '30', '--min-workers', '2');
    f = fields(await virtAdminOk(proxy, 'srv-threadpool-info', 'virtproxyd'));
    assert.deepEqual([f['minWorkers'], f['maxWorkers']], ['2', '30']);
    const bad = await virtAdmin(proxy, 'srv-threadpool-set', 'virtproxyd', '--min-workers', '40');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /minWorkers cannot be larger than maxWorkers/);
    assert.equal(fields(await virtAdminOk(proxy, 'srv-threadpool-info', 'admin'))['prioWorkers'], '0');
  });

  it('clients: list two, info on one, disconnect it while the other keeps working', async () => {
    const stop = join(proxy.dir, 'stop-hold');
    const pidA = join(proxy.dir, 'a.pid');
    const pidB = join(proxy.dir, 'b.pid');
    const uri = proxy.uri('qemu:///system');
    const a = python(HOLD, [uri, pidA, stop]);
    const b = python(HOLD, [uri, pidB, stop]);
    try {
      const ids = await until(async () => {
        const l = clientIds(await virtAdminOk(proxy, 'srv-clients-list', 'virtproxyd'));
        return l.length === 2 && existsSync(pidA) && existsSync(pidB) ? l : null;
      }, 'two connected clients');
      // Find which client is process A by its pid in client-info.
      const infos = await Promise.all(
        ids.map(async (id) => fields(await virtAdminOk(proxy, 'client-info', 'virtproxyd', String(id)))),
      );
      const pa = readFileSync(pidA, 'utf8').trim();
      const ia = infos.findIndex((i) => i['unix_process_id'] === pa);
      assert.ok(ia >= 0, `no client has pid ${pa}: ${JSON.stringify(infos)}`);
      const info = infos[ia] ?? {};
      assert.equal(info['id'], String(ids[ia]));
      assert.equal(info['transport'], 'unix');
      assert.equal(info['readonly'], 'no');
      assert.equal(info['unix_user_id'], String(process.getuid?.()));
      assert.equal(info['unix_user_name'], 'root');
      assert.match(info['connection_time'] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}$/);

      const out = await virtAdminOk(proxy, 'client-disconnect', 'virtproxyd', String(ids[ia]));
      assert.match(out, new RegExp(`Client '${ids[ia]}' disconnected`));
      const ra = await a;
      assert.equal(ra.code, 3, `client A should see its connection close:\n${ra.stdout}${ra.stderr}`);
      assert.match(ra.stdout, /closed: /);
      assert.deepEqual(clientIds(await virtAdminOk(proxy, 'srv-clients-list', 'virtproxyd')), [ids[1 - ia]]);
      writeFileSync(stop, '');
      const rb = await b;
      assert.equal(rb.code, 0, `client B must keep working:\n${rb.stdout}${rb.stderr}`);
      assert.match(rb.stdout, /^done$/m);
      const err = await virtAdmin(proxy, 'client-info', 'virtproxyd', String(ids[ia]));
      assert.match(err.stderr, new RegExp(`Client not found: No client with matching ID '${ids[ia]}'`));
    } finally {
      writeFileSync(stop, '');
      await Promise.allSettled([a, b]);
    }
  });

  it('srv-clients-set --max-clients takes effect for the next connection', async () => {
    const stop = join(proxy.dir, 'stop-limit');
    const pid = join(proxy.dir, 'l.pid');
    const holder = python(HOLD, [proxy.uri('qemu:///system'), pid, stop]);
    try {
      await until(async () => (existsSync(pid) ? true : null), 'the holding client');
      await virtAdminOk(
        proxy,
        'srv-clients-set',
        'virtproxyd',
        '--max-clients',
        '1',
        '--max-unauth-clients',
        '0',
      );
      const f = fields(await virtAdminOk(proxy, 'srv-clients-info', 'virtproxyd'));
      assert.deepEqual([f['nclients_max'], f['nclients'], f['nclients_unauth_max']], ['1', '1', '0']);
      let done = false;
      const next = virsh(proxy.uri('qemu:///system'), 'hostname').then((r) => {
        done = true;
        return r;
      });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(done, false, 'a second client must wait while the server is at max clients');
      writeFileSync(stop, '');
      assert.equal((await holder).code, 0);
      const r = await next;
      assert.equal(r.code, 0, r.stderr);
    } finally {
      writeFileSync(stop, '');
      await virtAdminOk(
        proxy,
        'srv-clients-set',
        'virtproxyd',
        '--max-clients',
        '5000',
        '--max-unauth-clients',
        '20',
      );
    }
  });

  it('daemon-log-filters / daemon-log-outputs: set live, read back, and used', async () => {
    const logFile = join(proxy.dir, 'live.log');
    await virtAdminOk(proxy, 'daemon-log-filters', '--filters', '2:rpc.server +1:nothing.here');
    assert.match(
      await virtAdminOk(proxy, 'daemon-log-filters'),
      /Logging filters: 2:\*rpc\.server\* 1:\*nothing\.here\* $/m,
    );
    await virtAdminOk(proxy, 'daemon-log-outputs', '--outputs', `2:file:${logFile} 4:stderr`);
    assert.match(
      await virtAdminOk(proxy, 'daemon-log-outputs'),
      new RegExp(`Logging outputs: 2:file:${logFile} 4:stderr$`, 'm'),
    );
    await virsh(proxy.uri('qemu:///system'), 'hostname');
    const log = await until(async () => {
      const t = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      return /info : client \d+ disconnected: closed by client \(CONNECT_CLOSE\)/.test(t) ? t : null;
    }, 'the disconnect line in the new log file');
    assert.match(log, /: info : libvirt version: 11\.3\.0/);
    const bad = await virtAdmin(proxy, 'daemon-log-outputs', '--outputs', '7:stderr');
    assert.match(bad.stderr, /Invalid log priority '7' for log output '7:stderr'/);
    // An empty set of outputs means the default one; no filters reads back as empty.
    await virtAdminOk(proxy, 'daemon-log-outputs', '--outputs', '');
    assert.match(await virtAdminOk(proxy, 'daemon-log-outputs'), /Logging outputs: 3:stderr$/m);
    await virtAdminOk(proxy, 'daemon-log-filters', '--filters', '');
    assert.match(await virtAdminOk(proxy, 'daemon-log-filters'), /Logging filters: $/m);
  });

  it('server-update-tls without a TLS service fails like libvirt', async () => {
    const r = await virtAdmin(proxy, 'server-update-tls', 'virtproxyd');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no tls service found, unable to update tls files/);
  });
});

describe('virt-admin daemon-timeout', () => {
  it('the daemon exits once it has had no client for the new timeout', async () => {
    const p = await startProxy();
    await virtAdminOk(p, 'daemon-timeout', '--timeout', '1');
    const alive = (): boolean => {
      try {
        process.kill(p.pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await until(async () => (alive() ? null : true), 'the proxy to exit on its idle timeout', 10_000);
    assert.equal(await p.stop(), 0);
    assert.equal(existsSync(p.adminSock), false, 'the admin socket is removed on exit');
  });
});

describe('daemon shutdown through the admin program', () => {
  // virt-admin 9.0 predates virAdmConnectDaemonShutdown (libvirt 11.2), so a raw client calls it.
  it('replies, then the daemon stops cleanly', async () => {
    const p = await startProxy();
    const c = await WireClient.connect(p.adminSock);
    try {
      assert.equal(readHeader(await c.call(ADMIN_PROGRAM, ADMIN_PROC_CONNECT_OPEN, words(0))).status, 0);
      const r = await c.call(ADMIN_PROGRAM, ADMIN_PROC_CONNECT_DAEMON_SHUTDOWN, words(0));
      assert.equal(readHeader(r).status, 0);
      await c.waitClosed(10_000);
      await until(
        async () => {
          try {
            process.kill(p.pid, 0);
            return null;
          } catch {
            return true;
          }
        },
        'the daemon to exit by itself',
        10_000,
      );
      assert.equal(await p.stop(), 0);
      assert.equal(existsSync(p.rwSock), false);
    } finally {
      c.close();
      await p.stop();
    }
  });
});

describe('admin socket access', () => {
  it('is created 0700 and refuses a peer of another uid even when the mode allows it', async () => {
    const p = await startProxy({ conf: { unix_sock_admin_perms: '0777' } });
    try {
      // The harness's private directories would stop the other user before the socket does.
      chmodSync(p.dir, 0o711);
      chmodSync(join(p.dir, 'run'), 0o711);
      const r = await new Promise<RunResult>((resolve) => {
        const child = spawn(
          '/usr/bin/setpriv',
          [
            '--reuid=65534',
            '--regid=65534',
            '--clear-groups',
            VIRT_ADMIN,
            '-c',
            `libvirtd:///system?socket=${p.adminSock}`,
            'srv-list',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', HOME: '/' } },
        );
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.once('close', (code) => resolve({ code: code ?? -1, stdout: out, stderr: out }));
      });
      assert.notEqual(r.code, 0, r.stdout);
      assert.doesNotMatch(r.stdout, /virtproxyd/);
      assert.match(p.stderr(), /admin connection refused: client pid \d+ runs as uid 65534/);
    } finally {
      await p.stop();
    }
    const q = await startProxy();
    try {
      assert.equal(statSync(q.adminSock).mode & 0o777, 0o700);
    } finally {
      await q.stop();
    }
  });
});
