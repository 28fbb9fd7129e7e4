// End-to-end: the Prometheus endpoint while real clients use the proxy. Every counter is read
// before and after a known load, and must move by exactly what that load did.
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { python, startProxy, virsh, virshOk, type Proxy } from './harness.js';

let proxy: Proxy;
let base: string;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

before(async () => {
  const port = await freePort();
  proxy = await startProxy({ conf: { metrics_listen: `127.0.0.1:${port}` } });
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  await proxy.stop();
});

type Samples = Map<string, number>;

async function scrape(): Promise<Samples> {
  const r = await fetch(`${base}/metrics`);
  assert.equal(r.status, 200);
  const out: Samples = new Map();
  for (const line of (await r.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

const get = (s: Samples, key: string): number => s.get(key) ?? 0;
const delta = (a: Samples, b: Samples, key: string): number => get(b, key) - get(a, key);
const calls = (proc: string, status: 'ok' | 'error'): string =>
  `virtproxyd_calls_total{program="remote",procedure="${proc}",status="${status}"}`;

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const HOLD = `
import libvirt, os, sys, time
uri, readyfile, stopfile = sys.argv[1:4]
c = libvirt.open(uri)
c.getHostname()
open(readyfile, 'w').write('x')
while not os.path.exists(stopfile):
    time.sleep(0.05)
c.getHostname()
print('done')
`;

// Registers for lifecycle events on the test driver, makes a domain go through define, start,
// destroy and undefine, and prints how many events it received.
const EVENTS = `
import sys, threading, time, libvirt
uri, name = sys.argv[1], sys.argv[2]
libvirt.virEventRegisterDefaultImpl()
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
conn = libvirt.open(uri)
seen = []
def on_event(conn, dom, event, detail, opaque):
    if dom.name() == name:
        seen.append(event)
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)
xml = "<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type></os></domain>" % name
dom = conn.defineXML(xml)
dom.create()
dom.destroy()
dom.undefine()
deadline = time.time() + 10
while len(seen) < 4 and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.3)
print(len(seen))
conn.close()
`;

test('counters move by exactly what a known load did', async () => {
  await until(
    async () => get(await scrape(), 'virtproxyd_clients{transport="unix",auth="authenticated"}') === 0,
    'an idle proxy',
  );
  const s0 = await scrape();
  const qemu = proxy.uri('qemu:///system');
  const N = 4;
  for (let i = 0; i < N; i++) await virshOk(qemu, 'hostname');
  const lookup = await virsh(qemu, 'dominfo', 'vpe2e-no-such-domain');
  assert.notEqual(lookup.code, 0);
  const bhyve = await virsh(proxy.uri('bhyve:///system'), 'hostname');
  assert.notEqual(bhyve.code, 0);
  const s1 = await scrape();

  assert.equal(delta(s0, s1, calls('REMOTE_PROC_CONNECT_GET_HOSTNAME', 'ok')), N);
  assert.equal(
    delta(
      s0,
      s1,
      'virtproxyd_call_duration_seconds_count{program="remote",procedure="REMOTE_PROC_CONNECT_GET_HOSTNAME",status="ok"}',
    ),
    N,
  );
  assert.equal(delta(s0, s1, calls('REMOTE_PROC_CONNECT_OPEN', 'ok')), N + 1);
  assert.equal(delta(s0, s1, calls('REMOTE_PROC_CONNECT_OPEN', 'error')), 1);
  assert.equal(delta(s0, s1, calls('REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME', 'error')), 1);
  assert.equal(delta(s0, s1, 'virtproxyd_backend_connect_failures_total{driver="bhyve"}'), 1);
  assert.equal(delta(s0, s1, 'virtproxyd_client_connections_total{transport="unix"}'), N + 2);
  assert.equal(delta(s0, s1, 'virtproxyd_client_disconnects_total{reason="connect_close"}'), N + 1);
  // virsh gives up on the failed open by closing its socket.
  assert.equal(delta(s0, s1, 'virtproxyd_client_disconnects_total{reason="closed_by_peer"}'), 1);
  for (const k of [
    'client",direction="in',
    'client",direction="out',
    'backend",direction="in',
    'backend",direction="out',
  ]) {
    assert.ok(delta(s0, s1, `virtproxyd_bytes_total{leg="${k}"}`) > 0, k);
  }
});

test('a connected client shows in the gauges while it is there', async () => {
  const ready = join(proxy.dir, 'gauge-ready');
  const stop = join(proxy.dir, 'gauge-stop');
  const held = python(HOLD, [proxy.uri('qemu:///system'), ready, stop]);
  try {
    await until(async () => existsSync(ready), 'the held client');
    const s = await scrape();
    assert.equal(get(s, 'virtproxyd_clients{transport="unix",auth="authenticated"}'), 1);
    assert.equal(get(s, 'virtproxyd_clients{transport="unix",auth="pending"}'), 0);
  } finally {
    writeFileSync(stop, '');
    assert.equal((await held).code, 0);
  }
  await until(
    async () => get(await scrape(), 'virtproxyd_clients{transport="unix",auth="authenticated"}') === 0,
    'the client to leave',
  );
});

test('a stream download counts one stream and its bytes on both legs', async () => {
  const s0 = await scrape();
  const shot = join(proxy.dir, 'shot.img');
  await virshOk(proxy.uri('test:///default'), 'screenshot', 'test', shot);
  const size = statSync(shot).size;
  assert.ok(size > 0);
  const s1 = await scrape();
  assert.equal(delta(s0, s1, 'virtproxyd_streams_opened_total'), 1);
  assert.equal(get(s1, 'virtproxyd_streams_active'), 0);
  assert.equal(delta(s0, s1, calls('REMOTE_PROC_DOMAIN_SCREENSHOT', 'ok')), 1);
  // The image crossed both legs (plus framing and the other calls of the session).
  assert.ok(delta(s0, s1, 'virtproxyd_bytes_total{leg="backend",direction="in"}') >= size);
  assert.ok(delta(s0, s1, 'virtproxyd_bytes_total{leg="client",direction="out"}') >= size);
});

test('events relayed equal the events the client received', async () => {
  const s0 = await scrape();
  const r = await python(EVENTS, [proxy.uri('test:///default'), `vpe2e-metrics-${process.pid}`]);
  assert.equal(r.code, 0, r.stderr);
  const received = Number(r.stdout.trim());
  assert.ok(received >= 4, `expected define, start, stop and undefine events, got ${received}`);
  const s1 = await scrape();
  const key =
    'virtproxyd_events_relayed_total{program="remote",procedure="REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE"}';
  assert.equal(delta(s0, s1, key), received);
});
