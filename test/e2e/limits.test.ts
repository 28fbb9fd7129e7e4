// End-to-end: client limits and flow control (NOTES §2, §10.2, §10.3) with real libvirt clients.
// - max_clients: the (max+1)th client waits, unserved, until another leaves, then proceeds.
// - max_client_requests: a python3-libvirt client with keepalive (1 s / 1) keeps that many slow
//   calls in flight (QEMU monitor calls on a guest whose QEMU we freeze with SIGSTOP) plus one more
//   that waits in the proxy, for several keepalive intervals. libvirt's daemon stops reading such
//   a client, so its PINGs go unanswered and the client library drops the connection; through the
//   proxy the connection must survive and every call complete once QEMU runs again.
// - Before authentication only the auth procedures work, on a real polkit-protected socket.
// - keepalive_required is obsolete: accepted, ignored, not even warned about.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { guestName, tinyGuestXml } from './guest.js';
import { startProxy, virsh, type Proxy } from './harness.js';

const PYTHON = '/usr/bin/python3';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A python3 child driven line by line: it prints JSON lines, we answer with lines on stdin. */
class PyChild {
  private lines: string[] = [];
  private waiters: Array<(l: string) => void> = [];
  private buf = '';
  stderr = '';
  readonly exited: Promise<number>;

  constructor(
    script: string,
    args: string[],
    readonly child: ChildProcess = spawn(PYTHON, ['-c', script, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    }),
  ) {
    children.add(child);
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      this.buf += s;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const w = this.waiters.shift();
        if (w !== undefined) w(line);
        else this.lines.push(line);
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) =>
      child.once('close', (code) => {
        children.delete(child);
        resolve(code ?? -1);
      }),
    );
  }

  /** The next line printed, or null if none comes within `ms` (or the child exits first). */
  next(ms: number): Promise<string | null> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve) => {
      const w = (line: string): void => {
        clearTimeout(t);
        resolve(line);
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(null);
      }, ms);
      this.waiters.push(w);
      void this.exited.then(() => {
        clearTimeout(t);
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(null);
      });
    });
  }

  say(line: string): void {
    this.child.stdin?.write(line + '\n');
  }
}

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Connects, makes a forwarded call, says "open"; closes when told "bye". */
const HOLDER = `
import sys, libvirt
conn = libvirt.open(sys.argv[1])
conn.getHostname()
print("open", flush=True)
sys.stdin.readline()
conn.close()
print("closed", flush=True)
`;

describe('max_clients', () => {
  it('the client past max_clients waits unserved until another leaves, then proceeds', async () => {
    const proxy = await startProxy({ conf: { max_clients: 2, max_anonymous_clients: 2 } });
    const uri = proxy.uri('qemu:///system');
    const a = new PyChild(HOLDER, [uri]);
    const b = new PyChild(HOLDER, [uri]);
    assert.equal(await a.next(30_000), 'open', a.stderr);
    assert.equal(await b.next(30_000), 'open', b.stderr);
    const c = new PyChild(HOLDER, [uri]);
    assert.equal(await c.next(2000), null, 'the third client is not served while two are connected');
    assert.equal(c.child.exitCode, null, 'it waits; it is not refused');
    a.say('bye');
    assert.equal(await a.next(10_000), 'closed');
    assert.equal(await c.next(30_000), 'open', `third client once a slot freed: ${c.stderr}`);
    for (const p of [b, c]) {
      p.say('bye');
      assert.equal(await p.next(10_000), 'closed');
      assert.equal(await p.exited, 0, p.stderr);
    }
    await proxy.stop();
  });
});

/**
 * Creates the guest and reports QEMU's pid file; on "go" starts three QEMU monitor calls in threads
 * (max_client_requests is 2, so the third waits in the proxy) and reports when they return.
 */
const BUSY_CLIENT = `
import json, sys, threading, time, libvirt, libvirt_qemu
uri, xml = sys.argv[1], sys.argv[2]
libvirt.virEventRegisterDefaultImpl()
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
conn = libvirt.open(uri)
# Ping after 1 s of silence, give up after 1 unanswered ping: about 2 s.
conn.setKeepAlive(1, 1)
dom = conn.createXML(xml, 0)
print(json.dumps({"created": dom.name(), "id": dom.ID()}), flush=True)
sys.stdin.readline()
results = []
def monitor(i):
    t0 = time.time()
    try:
        libvirt_qemu.qemuMonitorCommand(dom, '{"execute":"query-status"}', 0)
        results.append({"i": i, "ok": True, "secs": time.time() - t0})
    except libvirt.libvirtError as e:
        results.append({"i": i, "ok": False, "error": e.get_error_message(), "secs": time.time() - t0})
threads = [threading.Thread(target=monitor, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
print(json.dumps({"calls": "sent"}), flush=True)
for t in threads:
    t.join()
out = {"results": results, "alive": conn.isAlive() == 1}
try:
    out["hostname"] = conn.getHostname()
finally:
    dom.destroy()
print(json.dumps(out), flush=True)
conn.close()
`;

describe('max_client_requests and keepalive', () => {
  let proxy: Proxy | undefined;
  let qemuPid = 0;

  after(async () => {
    if (qemuPid > 0) {
      try {
        process.kill(qemuPid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    if (proxy !== undefined)
      await virsh(proxy.uri('qemu:///system'), 'destroy', guestName('busy')).catch(() => null);
  });

  it('a client at the request limit keeps its connection past several keepalive intervals', async () => {
    proxy = await startProxy({ conf: { max_client_requests: 2, keepalive_interval: 1, keepalive_count: 1 } });
    const py = new PyChild(BUSY_CLIENT, [proxy.uri('qemu:///system'), tinyGuestXml(guestName('busy'))]);
    const created = JSON.parse((await py.next(60_000)) ?? 'null') as { created: string } | null;
    assert.ok(created !== null, `guest not created: ${py.stderr}`);
    qemuPid = Number(readFileSync(`/run/libvirt/qemu/${created.created}.pid`, 'utf8').trim());
    assert.ok(qemuPid > 0);
    // A frozen QEMU never answers its monitor: the first call waits for it, the second for the
    // domain's job lock (libvirt gives up on that after 30 s), the third in the proxy.
    process.kill(qemuPid, 'SIGSTOP');
    py.say('go');
    assert.deepEqual(JSON.parse((await py.next(10_000)) ?? 'null'), { calls: 'sent' });
    // Five keepalive periods of the client (1 s interval, dead after ~2 s without a PONG), and
    // of the proxy's own keepalive towards the client.
    await sleep(6000);
    assert.equal(py.child.exitCode, null, `client gave up while busy:\n${py.stderr}`);
    process.kill(qemuPid, 'SIGCONT');
    const done = JSON.parse((await py.next(40_000)) ?? 'null') as {
      results: Array<{ i: number; ok: boolean; error?: string; secs: number }>;
      alive: boolean;
      hostname?: string;
    } | null;
    assert.ok(done !== null, `client did not finish:\n${py.stderr}`);
    assert.equal(done.results.length, 3);
    for (const r of done.results) assert.equal(r.ok, true, `monitor call ${r.i}: ${r.error ?? ''}`);
    // At least the calls held up by the frozen QEMU really were in flight that long.
    assert.ok(
      done.results.filter((r) => r.secs >= 5).length >= 2,
      `calls were slow: ${JSON.stringify(done.results)}`,
    );
    assert.equal(done.alive, true, 'the connection is still alive');
    assert.ok((done.hostname ?? '').length > 0);
    assert.equal(await py.exited, 0, py.stderr);
    qemuPid = 0;
    assert.doesNotMatch(proxy.stderr(), /keepalive timeout/);
  });
});

describe('keepalive_required', () => {
  it('is accepted and ignored, as by libvirt (obsolete keys)', async () => {
    const proxy = await startProxy({ conf: { keepalive_required: 1, admin_keepalive_required: 1 } });
    const r = await virsh(proxy.uri('qemu:///system'), 'hostname');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(proxy.stderr(), /keepalive_required/);
    await proxy.stop();
  });
});

describe('before authentication', () => {
  it('on a polkit socket only the auth procedures answer until AUTH_LIST authenticates root', async () => {
    const proxy = await startProxy({ conf: { auth_unix_rw: 'polkit' } });
    const { sock, call } = await rawClient(proxy.rwSock);
    const text = (f: Buffer): string => f.subarray(44, 44 + f.readUInt32BE(40)).toString();
    const uri = Buffer.from('qemu:///system');
    const openArgs = Buffer.alloc(8 + Math.ceil(uri.length / 4) * 4 + 4);
    openArgs.writeUInt32BE(1, 0);
    openArgs.writeUInt32BE(uri.length, 4);
    uri.copy(openArgs, 8);
    // CONNECT_OPEN, SUPPORTS_FEATURE(keepalive), GET_HOSTNAME, DOMAIN_LOOKUP_BY_NAME: all refused.
    for (const [proc, payload] of [
      [1, openArgs],
      [60, Buffer.from('0000000a', 'hex')],
      [59, Buffer.alloc(0)],
      [23, Buffer.from('0000000178000000', 'hex')],
    ] as const) {
      const f = await call(proc, payload);
      assert.equal(f.readUInt32BE(24), 1, `proc ${proc} must fail before authentication`);
      assert.equal(text(f), 'authentication required', `proc ${proc}`);
    }
    // AUTH_LIST: root is let in without polkit ([NONE]); then the same open works.
    const list = await call(66);
    assert.equal(list.subarray(24).toString('hex'), '00000000' + '00000001' + '00000000');
    const open = await call(1, openArgs);
    assert.equal(open.readUInt32BE(24), 0, 'open after authentication');
    const host = await call(59);
    assert.equal(host.readUInt32BE(24), 0);
    sock.destroy();
    await proxy.stop();
  });

  it('AUTH_POLKIT on a socket without polkit auth fails with the generic error, as libvirt', async () => {
    const proxy = await startProxy();
    const { sock, call } = await rawClient(proxy.rwSock);
    const f = await call(70);
    assert.equal(f.readUInt32BE(24), 1);
    assert.equal(f.readInt32BE(28), 1, 'VIR_ERR_INTERNAL_ERROR');
    assert.equal(f.readInt32BE(32), 7, 'VIR_FROM_RPC');
    assert.equal(
      f.subarray(44, 44 + f.readUInt32BE(40)).toString(),
      'Library function returned error but did not set virError',
    );
    sock.destroy();
    await proxy.stop();
  });
});

/** A bare remote-program client: call(proc, payload) resolves with the next non-keepalive frame. */
async function rawClient(path: string): Promise<{
  sock: ReturnType<typeof connect>;
  call: (proc: number, payload?: Buffer) => Promise<Buffer>;
}> {
  const sock = connect(path);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let buf = Buffer.alloc(0);
  const waiters: Array<(f: Buffer) => void> = [];
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= buf.readUInt32BE(0)) {
      const n = buf.readUInt32BE(0);
      const f = Buffer.from(buf.subarray(0, n));
      buf = buf.subarray(n);
      waiters.shift()?.(f);
    }
  });
  let serial = 0;
  const call = (proc: number, payload: Buffer = Buffer.alloc(0)): Promise<Buffer> => {
    const h = Buffer.alloc(28);
    [28 + payload.length, 0x20008086, 1, proc, 0, ++serial, 0].forEach((w, i) => h.writeUInt32BE(w, i * 4));
    sock.write(Buffer.concat([h, payload]));
    return new Promise((resolve) => waiters.push(resolve));
  };
  return { sock, call };
}
