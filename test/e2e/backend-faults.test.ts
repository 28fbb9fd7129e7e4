// End-to-end tests of how virtproxyd's backend legs follow their clients and the backend: a client
// that goes away has its leg to libvirtd closed; a libvirtd that dies gives each of its clients a
// libvirt error and a clean close (NOTES §10.1, §10.5) while the proxy lives on and serves again
// once libvirtd is back. The second test SIGKILLs the shared libvirtd and restarts it with
// scripts/backend.sh, so everything it asserts is gathered quickly and the restart always runs.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { backendDir, directUri, repoRoot, startProxy, virshOk, type Proxy } from './harness.js';

const PYTHON = '/usr/bin/python3';
// libvirt's virConnectCloseReason.
const VIR_CONNECT_CLOSE_REASON_ERROR = 0;
const VIR_CONNECT_CLOSE_REASON_EOF = 1;
const VIR_ERR_INTERNAL_ERROR = 1;
const VIR_ERR_SYSTEM_ERROR = 38;
const VIR_FROM_RPC = 7;

let proxy: Proxy;
const clients = new Set<ChildProcess>();

before(async () => {
  proxy = await startProxy();
});

after(() => {
  for (const c of clients) c.kill('SIGKILL');
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, ms: number, probe: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
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

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

interface Leg {
  /** Bytes libvirtd has not read yet on its end of the connection. */
  recvQ: number;
}

/**
 * The proxy's open connections to libvirtd: libvirtd's ends of connections on its rw socket (from
 * `ss`) whose peer is a socket the proxy process holds. Other engineers' clients of the same
 * libvirtd are not counted.
 */
function backendLegs(pid: number): Leg[] {
  const mine = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1] !== undefined) mine.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const r = spawnSync('ss', ['-xn', 'src', join(backendDir(), 'libvirt-sock')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `ss failed: ${r.stderr}`);
  const legs: Leg[] = [];
  for (const line of r.stdout.split('\n').slice(1)) {
    // u_str ESTAB <recv-q> <send-q> <path> <inode> * <peer inode>
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[1] === 'ESTAB' && mine.has(f[7] ?? '')) legs.push({ recvQ: Number(f[2]) });
  }
  return legs;
}

/**
 * A python3-libvirt client on one connection, driven over stdin ("hostname", "close"), answering
 * one JSON line per command; with `closeCallback` it runs an event loop thread and reports the
 * close callback as {"event": "closed", "reason": N}.
 */
const CLIENT = `
import json, sys, threading, libvirt
libvirt.registerErrorHandler(lambda ctx, err: None, None)
uri, with_cb = sys.argv[1], sys.argv[2] == "1"
def out(**kw):
    print(json.dumps(kw), flush=True)
if with_cb:
    libvirt.virEventRegisterDefaultImpl()
    def loop():
        while True:
            libvirt.virEventRunDefaultImpl()
    threading.Thread(target=loop, daemon=True).start()
conn = libvirt.open(uri)
if with_cb:
    conn.registerCloseCallback(lambda c, reason, opaque: out(event="closed", reason=reason), None)
out(event="open")
for line in sys.stdin:
    cmd = line.strip()
    try:
        if cmd == "hostname":
            out(event="result", ok=conn.getHostname())
        elif cmd == "close":
            out(event="result", ok=conn.close())
    except libvirt.libvirtError as e:
        out(event="result", err={"code": e.get_error_code(), "domain": e.get_error_domain(), "message": e.get_error_message()})
`;

interface Event {
  event: 'open' | 'closed' | 'result';
  reason?: number;
  ok?: unknown;
  err?: { code: number; domain: number; message: string };
}

class PyClient {
  readonly child: ChildProcess;
  readonly events: Event[] = [];
  private stderr = '';
  private taken = 0;

  constructor(uri: string, closeCallback: boolean) {
    this.child = spawn(PYTHON, ['-c', CLIENT, uri, closeCallback ? '1' : '0'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    clients.add(this.child);
    this.child.once('exit', () => clients.delete(this.child));
    let buf = '';
    this.child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) this.events.push(JSON.parse(l) as Event);
    });
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    // A client killed on purpose must not fail the test through EPIPE on its stdin.
    this.child.stdin?.on('error', () => undefined);
  }

  waitEvent(kind: Event['event'], ms: number): Promise<Event> {
    return waitFor(`python client event '${kind}'`, ms, () => {
      const e = this.events.find((x) => x.event === kind);
      if (e === undefined && this.child.exitCode !== null) {
        assert.fail(
          `python client exited (${this.child.exitCode}): ${JSON.stringify(this.events)}\n${this.stderr}`,
        );
      }
      return e;
    });
  }

  /** Sends a command without waiting; nextResult() collects its answer. */
  send(cmd: 'hostname' | 'close'): void {
    this.child.stdin?.write(`${cmd}\n`);
  }

  async nextResult(ms: number): Promise<Event> {
    const results = (): Event[] => this.events.filter((e) => e.event === 'result');
    const r = await waitFor(`python client result #${this.taken + 1}`, ms, () => {
      if (results().length <= this.taken && this.child.exitCode !== null) {
        assert.fail(
          `python client exited (${this.child.exitCode}): ${JSON.stringify(this.events)}\n${this.stderr}`,
        );
      }
      return results()[this.taken];
    });
    this.taken++;
    return r;
  }

  async call(cmd: 'hostname' | 'close', ms = 30_000): Promise<Event> {
    this.send(cmd);
    return this.nextResult(ms);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

async function openClient(closeCallback = false): Promise<PyClient> {
  const c = new PyClient(proxy.uri('qemu:///system'), closeCallback);
  await c.waitEvent('open', 30_000);
  return c;
}

test('a client that goes away has its backend leg closed; the others keep theirs', async () => {
  await waitFor('no backend legs before the test', 5000, () => backendLegs(proxy.pid).length === 0);
  const a = await openClient();
  const b = await openClient();
  try {
    await waitFor('two backend legs', 5000, () => backendLegs(proxy.pid).length === 2);

    a.kill();
    await waitFor("the killed client's leg to close", 5000, () => backendLegs(proxy.pid).length === 1);
    // The survivor's leg is the one left, and it still carries calls.
    const r = await b.call('hostname');
    assert.equal(typeof r.ok, 'string', JSON.stringify(r));
    assert.equal(backendLegs(proxy.pid).length, 1);

    // A client that closes politely releases its leg too.
    const closed = await b.call('close');
    assert.equal(closed.ok, 0, JSON.stringify(closed));
    await waitFor("the closed client's leg to close", 5000, () => backendLegs(proxy.pid).length === 0);
  } finally {
    a.kill();
    b.kill();
  }
  // A complete virsh run leaves nothing behind either.
  await virshOk(proxy.uri('qemu:///system'), 'hostname');
  await waitFor('no legs after virsh', 5000, () => backendLegs(proxy.pid).length === 0);
});

/** libvirtd's pid from the backend dir's pid file, checked to be a live libvirtd. */
function libvirtdPid(): number {
  const pid = Number(readFileSync(join(backendDir(), 'libvirtd.pid'), 'utf8').trim());
  assert.ok(Number.isInteger(pid) && pid > 1, 'no pid in libvirtd.pid');
  assert.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'libvirtd');
  return pid;
}

function restartBackend(): void {
  const r = spawnSync('bash', [join(repoRoot, 'scripts', 'backend.sh'), 'start', backendDir()], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `backend.sh start failed: ${r.stderr}${r.stdout}`);
}

test('libvirtd killed: every client gets a libvirt error and a close, the proxy lives and serves again', async (t) => {
  // A: close callback and event loop; B: idle plain client; C: a call in flight when libvirtd dies.
  const a = await openClient(true);
  const b = await openClient();
  const c = await openClient();
  const pid = libvirtdPid();
  let stopped = false;
  let killed = false;
  try {
    for (const cl of [a, b, c]) assert.equal(typeof (await cl.call('hostname')).ok, 'string');
    await waitFor('three backend legs', 5000, () => backendLegs(proxy.pid).length === 3);

    // Freeze libvirtd so C's call is certainly inside it (unread on its socket) when it dies.
    process.kill(pid, 'SIGSTOP');
    stopped = true;
    c.send('hostname');
    await waitFor("C's call to reach libvirtd's socket", 5000, () =>
      backendLegs(proxy.pid).some((l) => l.recvQ > 0),
    );
    process.kill(pid, 'SIGKILL');
    killed = true;
    await waitFor('libvirtd to die', 10_000, () => !alive(pid));

    // C: the call in flight fails with the error libvirt's own client raises for a lost socket.
    const inflight = await c.nextResult(10_000);
    assert.deepEqual(inflight.err, {
      code: VIR_ERR_INTERNAL_ERROR,
      domain: VIR_FROM_RPC,
      message: 'internal error: client socket is closed',
    });

    // A: the close callback fires with a reason saying the connection broke, not that it was closed on purpose.
    const cb = await a.waitEvent('closed', 10_000);
    assert.ok(
      cb.reason === VIR_CONNECT_CLOSE_REASON_EOF || cb.reason === VIR_CONNECT_CLOSE_REASON_ERROR,
      `close reason ${cb.reason}`,
    );
    const ra = await a.call('hostname', 10_000);
    assert.deepEqual(ra.err, {
      code: VIR_ERR_INTERNAL_ERROR,
      domain: VIR_FROM_RPC,
      message: 'internal error: client socket is closed',
    });

    // B (no event loop): its next call finds the connection gone and fails with an RPC error.
    const rb = await b.call('hostname', 10_000);
    t.diagnostic(`close callback reason ${cb.reason}; idle client's error ${JSON.stringify(rb.err)}`);
    assert.ok(rb.err !== undefined, `B's call succeeded: ${JSON.stringify(rb)}`);
    assert.equal(rb.err.domain, VIR_FROM_RPC, JSON.stringify(rb));
    assert.ok([VIR_ERR_INTERNAL_ERROR, VIR_ERR_SYSTEM_ERROR].includes(rb.err.code), JSON.stringify(rb));
    assert.match(
      rb.err.message,
      /client socket is closed|End of file while reading data|Broken pipe|reset by peer/,
    );

    // The proxy itself lives on, keeps listening, and holds no dead legs.
    assert.ok(alive(proxy.pid), `the proxy died with libvirtd:\n${proxy.stderr()}`);
    assert.ok(await canConnect(proxy.rwSock), 'the proxy stopped listening');
    assert.equal(backendLegs(proxy.pid).length, 0);
  } finally {
    a.kill();
    b.kill();
    c.kill();
    if (killed) restartBackend();
    else if (stopped) process.kill(pid, 'SIGCONT');
  }

  // libvirtd is back: a new client through the same proxy works, as it does directly.
  const viaProxy = (await virshOk(proxy.uri('qemu:///system'), 'hostname')).trim();
  const direct = (await virshOk(directUri('qemu:///system'), 'hostname')).trim();
  assert.equal(viaProxy, direct);
  const d = await openClient(true);
  try {
    assert.equal((await d.call('hostname')).ok, direct);
  } finally {
    d.kill();
  }
  assert.ok(alive(proxy.pid));
});
