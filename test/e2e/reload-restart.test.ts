// SIGHUP and restart end to end. SIGHUP re-reads the config and applies TLS material (rotated
// certificate files included), the DN allow-list and logging without touching live clients, and
// names what needs a restart. SIGUSR2 hands the listening sockets to a new process while a connect
// loop runs against the unix and TCP services: not one attempt may be refused or go unanswered.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import tls from 'node:tls';
import { startProxy, virsh, virshOk, type Proxy } from './harness.js';
import { freePort, waitForPort } from './net-util.js';
import { TestPki, type Issued } from './pki.js';

const REMOTE_PROGRAM = 0x20008086;
const REMOTE_PROC_CONNECT_SUPPORTS_FEATURE = 60;
const VIR_DRV_FEATURE_PROGRAM_KEEPALIVE = 10;

/** CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE): answered by the proxy itself, even before open. */
function featureCall(serial: number): Buffer {
  const b = Buffer.alloc(32);
  [
    32,
    REMOTE_PROGRAM,
    1,
    REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
    0,
    serial,
    0,
    VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
  ].forEach((v, i) => b.writeUInt32BE(v, i * 4));
  return b;
}

/** Sends one call on `sock` and resolves with the reply's serial and status. */
function call(sock: Socket, serial: number, ms = 5000): Promise<{ serial: number; status: number }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error('no reply')), ms);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= buf.readUInt32BE(0)) {
        done(null, { serial: buf.readUInt32BE(20), status: buf.readUInt32BE(24) });
      }
    };
    const onEnd = (): void => done(new Error('connection closed'));
    const onError = (e: Error): void => done(e);
    const done = (e: Error | null, r?: { serial: number; status: number }): void => {
      clearTimeout(timer);
      sock.off('data', onData).off('end', onEnd).off('error', onError);
      if (e !== null) reject(e);
      else resolve(r as { serial: number; status: number });
    };
    sock.on('data', onData).once('end', onEnd).once('error', onError);
    sock.write(featureCall(serial));
  });
}

function open(target: { path: string } | { port: number }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = 'path' in target ? connect(target.path) : connect({ port: target.port, host: '127.0.0.1' });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function waitFor(pred: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const extraPids: number[] = [];
after(() => {
  for (const pid of extraPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

describe('SIGHUP', () => {
  let proxy: Proxy;
  let port: number;
  let pki: TestPki;
  let ca: Issued;
  let certB: Issued;
  let dirs: Record<'alpha' | 'beta', string>;
  let confFile: string;
  let certFile: string;
  let keyFile: string;

  function uri(who: 'alpha' | 'beta'): string {
    return `qemu+tls://127.0.0.1:${port}/system?pkipath=${dirs[who]}`;
  }

  /** Serial number of the certificate a fresh TLS connection is shown. */
  function serverSerial(): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = tls.connect(
        { port, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(ca.cert) },
        () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.destroy();
        },
      );
      s.on('error', reject);
    });
  }

  test('setup', async () => {
    pki = new TestPki(await mkdtemp(join(tmpdir(), 'vphup-')));
    ca = pki.ca('ca');
    const certA = pki.server(ca, 'server-a');
    certB = pki.server(ca, 'server-b');
    dirs = {
      alpha: pki.clientDir('alpha', [ca], pki.client(ca, 'alpha', 'alpha')),
      beta: pki.clientDir('beta', [ca], pki.client(ca, 'beta', 'beta')),
    };
    certFile = join(pki.dir, 'live-cert.pem');
    keyFile = join(pki.dir, 'live-key.pem');
    copyFileSync(certA.cert, certFile);
    copyFileSync(certA.key, keyFile);
    port = await freePort();
    proxy = await startProxy({
      conf: {
        listen_tls: 1,
        listen_addr: '127.0.0.1',
        tls_port: String(port),
        ca_file: ca.cert,
        cert_file: certFile,
        key_file: keyFile,
        tls_allowed_dn_list: ['C=GB,O=Test Org,CN=alpha'],
        log_level: 2,
      },
    });
    confFile = join(proxy.dir, 'virtproxyd.conf');
    await waitForPort(port);
  });

  test('reload swaps the allow-list and the certificate, keeps live clients, names what needs a restart', async () => {
    await virshOk(uri('alpha'), 'hostname');
    assert.notEqual((await virsh(uri('beta'), 'hostname')).code, 0);
    const before = await serverSerial();

    // A client connected before the reload, mid-session.
    const held = await open({ path: proxy.rwSock });
    assert.equal((await call(held, 1)).status, 0);

    writeFileSync(
      confFile,
      readFileSync(confFile, 'utf8')
        .replace(/^tls_allowed_dn_list = .*$/m, 'tls_allowed_dn_list = [ "C=GB,O=Test Org,CN=beta" ]')
        .replace(/^log_level = .*$/m, 'log_level = 1') + 'max_workers = 7\n',
    );
    copyFileSync(certB.cert, certFile);
    copyFileSync(certB.key, keyFile);
    process.kill(proxy.pid, 'SIGHUP');
    await waitFor(() => /reload: applied/.test(proxy.stderr()));
    assert.match(proxy.stderr(), /reload: applied .*TLS material/);
    assert.match(proxy.stderr(), /need a restart \(not applied\): max_workers/);

    await virshOk(uri('beta'), 'hostname');
    const r = await virsh(uri('alpha'), 'hostname');
    assert.notEqual(r.code, 0, 'alpha is no longer on the allow-list');
    assert.notEqual(await serverSerial(), before, 'new handshakes use the rotated certificate');
    assert.equal((await call(held, 2)).status, 0, 'the client connected before the reload is still served');
    // log_level 1 took effect: per-client debug lines now appear.
    const probe = await open({ path: proxy.rwSock });
    await call(probe, 3);
    probe.destroy();
    await waitFor(() => /debug : client \d+ connected on rw/.test(proxy.stderr()));
    held.destroy();
  });

  test('a config that no longer parses changes nothing', async () => {
    writeFileSync(confFile, readFileSync(confFile, 'utf8') + 'this is = = broken\n');
    const n = (proxy.stderr().match(/reload: /g) ?? []).length;
    process.kill(proxy.pid, 'SIGHUP');
    await waitFor(() => (proxy.stderr().match(/reload: /g) ?? []).length > n);
    assert.match(proxy.stderr(), /reload: Can't load config file: .*syntax error/);
    await virshOk(uri('beta'), 'hostname');
  });
});

describe('restart (SIGUSR2)', () => {
  test('a connect loop on the unix and TCP services sees no refused or unanswered attempt', async () => {
    process.env['VIRTPROXYD_RESTART_DRAIN_SECS'] = '20';
    const tcpPort = await freePort();
    const metricsPort = await freePort();
    const proxy = await startProxy({
      conf: {
        metrics_listen: `127.0.0.1:${metricsPort}`,
        listen_tcp: 1,
        auth_tcp: 'none',
        listen_addr: '127.0.0.1',
        tcp_port: String(tcpPort),
        log_level: 2,
      },
    });
    await waitForPort(tcpPort);
    const oldPid = proxy.pid;
    const held = await open({ path: proxy.rwSock });
    assert.equal((await call(held, 1)).status, 0);

    let ok = 0;
    const failures: string[] = [];
    let running = true;
    let serial = 100;
    const worker = async (i: number): Promise<void> => {
      while (running) {
        const target = (serial + i) % 2 === 0 ? { path: proxy.rwSock } : { port: tcpPort };
        const s = serial++;
        try {
          const sock = await open(target);
          const r = await call(sock, s);
          sock.destroy();
          if (r.serial !== s || r.status !== 0) throw new Error(`bad reply ${JSON.stringify(r)}`);
          ok++;
        } catch (e) {
          failures.push(`${'path' in target ? 'unix' : 'tcp'}: ${(e as Error).message}`);
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await new Promise((r) => setTimeout(r, 300));
    const okBefore = ok;
    process.kill(oldPid, 'SIGUSR2');
    let newPid = oldPid;
    await waitFor(() => {
      const text = existsSync(proxy.pidFile) ? readFileSync(proxy.pidFile, 'utf8') : '';
      newPid = /^\d+$/.test(text) ? Number(text) : oldPid;
      return newPid !== oldPid;
    });
    extraPids.push(newPid);
    await waitFor(() => /restart: process \d+ serves now/.test(proxy.stderr()));
    const okAtSwitch = ok;
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await Promise.all(workers);
    assert.deepEqual(failures, []);
    assert.ok(
      okBefore > 0 && ok > okAtSwitch,
      `calls before ${okBefore}, at switch ${okAtSwitch}, total ${ok}`,
    );

    // The old process still serves the client it had, then leaves once that client is gone.
    assert.ok(alive(oldPid), 'the old process drains its clients');
    assert.equal((await call(held, 2)).status, 0);
    held.destroy();
    await waitFor(() => !alive(oldPid));

    // The new process serves real clients on both services and owns the sockets from now on.
    await virshOk(proxy.uri('qemu:///system'), 'hostname');
    await virshOk(`qemu+tcp://127.0.0.1:${tcpPort}/system`, 'hostname');
    // The admin socket and the metrics endpoint are bound again by the new process.
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(metrics.status, 200);
    await metrics.text();
    (await open({ path: proxy.adminSock })).destroy();
    process.kill(newPid, 'SIGTERM');
    await waitFor(() => !alive(newPid));
    assert.equal(existsSync(proxy.rwSock), false, 'the new process removes the sockets on exit');
  });
});
