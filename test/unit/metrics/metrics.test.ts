// Prometheus text rendering, and the proxy metrics fed through the tracing channels and a wrapped
// backend leg: calls by procedure and status, events, streams, bytes, failures, disconnects.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProxyMetrics, disconnectCategory } from '../../../src/metrics/proxy-metrics.js';
import { Counter, Histogram, Registry } from '../../../src/metrics/registry.js';
import { parseMetricsListen, startMetricsEndpoint } from '../../../src/metrics/metrics-server.js';
import {
  QEMU_PROGRAM,
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_CONTINUE,
  VIR_NET_ERROR,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_STREAM,
} from '../../../src/protocol/constants.js';
import { encodeMessage } from '../../../src/protocol/header.js';
import type { ClientConnection } from '../../../src/server/client-connection.js';
import {
  authFailedChannel,
  backendConnectFailedChannel,
  backendOpenedChannel,
  clientClosedChannel,
  clientCreatedChannel,
  openDoneChannel,
  type ObservedLeg,
} from '../../../src/server/diagnostics.js';

test('the registry renders counters and cumulative histogram buckets', () => {
  const r = new Registry();
  const c = r.add(new Counter('x_total', 'Things.', ['kind']));
  c.inc({ kind: 'a"b\\c' });
  c.inc({ kind: 'a"b\\c' }, 2);
  const h = r.add(new Histogram('lat_seconds', 'Latency.', ['op'], [0.1, 1]));
  h.observe({ op: 'get' }, 0.05);
  h.observe({ op: 'get' }, 0.5);
  h.observe({ op: 'get' }, 5);
  assert.equal(
    r.render(),
    [
      '# HELP x_total Things.',
      '# TYPE x_total counter',
      'x_total{kind="a\\"b\\\\c"} 3',
      '# HELP lat_seconds Latency.',
      '# TYPE lat_seconds histogram',
      'lat_seconds_bucket{op="get",le="0.1"} 1',
      'lat_seconds_bucket{op="get",le="1"} 2',
      'lat_seconds_bucket{op="get",le="+Inf"} 3',
      'lat_seconds_sum{op="get"} 5.55',
      'lat_seconds_count{op="get"} 3',
      '',
    ].join('\n'),
  );
});

test('metrics_listen values', () => {
  assert.deepEqual(parseMetricsListen('127.0.0.1:9177'), { host: '127.0.0.1', port: 9177 });
  assert.deepEqual(parseMetricsListen('[::1]:9177'), { host: '::1', port: 9177 });
  assert.deepEqual(parseMetricsListen('9177'), { host: '127.0.0.1', port: 9177 });
  assert.throws(() => parseMetricsListen('host'));
});

function frame(prog: number, proc: number, type: number, serial: number, status = VIR_NET_OK): Buffer {
  return encodeMessage({ prog, vers: 1, proc, type, serial, status }, Buffer.alloc(8));
}

/** A stand-in for a BackendConnection with the surface the metrics wrap. */
class FakeLeg implements ObservedLeg {
  written: Buffer[] = [];
  onFrame: ((f: Buffer, fds: number[] | null) => void) | null = null;
  onClose: ((r: 'eof' | 'error' | 'keepalive' | 'client') => void) | null = null;
  write(f: Buffer): boolean {
    this.written.push(f);
    return true;
  }
  attach(
    onFrame: (f: Buffer, fds: number[] | null) => void,
    onClose: (r: 'eof' | 'error' | 'keepalive' | 'client') => void,
  ): void {
    this.onFrame = onFrame;
    this.onClose = onClose;
  }
}

function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

test('calls, events, streams, failures and disconnects through channels and a wrapped leg', async () => {
  const clients: ClientConnection[] = [];
  const m = new ProxyMetrics({ clients: () => clients, queued: () => 0, adminClients: () => 0 });
  m.subscribe();
  try {
    const client = {
      service: { transport: 'unix' },
      authenticated: true,
      socket: { bytesRead: 100, bytesWritten: 200 },
    } as unknown as ClientConnection;
    clients.push(client);
    clientCreatedChannel.publish({ client });
    const leg = new FakeLeg();
    backendOpenedChannel.publish({ client, leg, uri: 'qemu:///system' });
    openDoneChannel.publish({ client, seconds: 0.01, ok: true });
    const seen: Buffer[] = [];
    leg.attach(
      (f) => seen.push(f),
      () => undefined,
    );
    // Two GET_HOSTNAME calls (59), one failing; a domain event; a stream download (screenshot, 211).
    leg.write(frame(REMOTE_PROGRAM, 59, VIR_NET_CALL, 1));
    leg.write(frame(REMOTE_PROGRAM, 59, VIR_NET_CALL, 2));
    leg.onFrame?.(frame(REMOTE_PROGRAM, 59, VIR_NET_REPLY, 2, VIR_NET_ERROR), null);
    leg.onFrame?.(frame(REMOTE_PROGRAM, 59, VIR_NET_REPLY, 1), null);
    leg.onFrame?.(frame(REMOTE_PROGRAM, 318, VIR_NET_MESSAGE, 1), null);
    leg.write(frame(REMOTE_PROGRAM, 211, VIR_NET_CALL, 3));
    leg.onFrame?.(frame(REMOTE_PROGRAM, 211, VIR_NET_REPLY, 3), null);
    let text = m.render();
    assert.equal(sample(text, 'virtproxyd_streams_active'), 1);
    leg.onFrame?.(frame(REMOTE_PROGRAM, 211, VIR_NET_STREAM, 3, VIR_NET_CONTINUE), null);
    assert.equal(sample(m.render(), 'virtproxyd_streams_active'), 1, 'data does not end a stream');
    leg.onFrame?.(frame(REMOTE_PROGRAM, 211, VIR_NET_STREAM, 3, VIR_NET_OK), null);
    leg.write(frame(QEMU_PROGRAM, 1, VIR_NET_CALL, 4));
    leg.onFrame?.(frame(QEMU_PROGRAM, 1, VIR_NET_REPLY, 4), null);
    assert.equal(seen.length, 7, 'every frame still reaches the client');
    assert.equal(leg.written.length, 4, 'every frame still reaches the backend');
    backendConnectFailedChannel.publish({ driver: 'network' });
    authFailedChannel.publish({ client, method: 'polkit', reason: 'denied' });
    leg.onClose?.('keepalive');
    clients.pop();
    clientClosedChannel.publish({ client, reason: 'keepalive timeout' });

    text = m.render();
    const has = (line: string): void => assert.ok(text.includes(`${line}\n`), `missing: ${line}\n${text}`);
    has(
      'virtproxyd_calls_total{program="remote",procedure="REMOTE_PROC_CONNECT_GET_HOSTNAME",status="ok"} 1',
    );
    has(
      'virtproxyd_calls_total{program="remote",procedure="REMOTE_PROC_CONNECT_GET_HOSTNAME",status="error"} 1',
    );
    has('virtproxyd_calls_total{program="remote",procedure="REMOTE_PROC_CONNECT_OPEN",status="ok"} 1');
    has('virtproxyd_calls_total{program="qemu",procedure="QEMU_PROC_DOMAIN_MONITOR_COMMAND",status="ok"} 1');
    has(
      'virtproxyd_call_duration_seconds_count{program="remote",procedure="REMOTE_PROC_CONNECT_GET_HOSTNAME",status="ok"} 1',
    );
    has(
      'virtproxyd_events_relayed_total{program="remote",procedure="REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE"} 1',
    );
    has('virtproxyd_streams_active 0');
    has('virtproxyd_streams_opened_total 1');
    has('virtproxyd_backend_connect_failures_total{driver="network"} 1');
    has('virtproxyd_auth_failures_total{method="polkit",reason="denied"} 1');
    has('virtproxyd_keepalive_timeouts_total{leg="backend"} 1');
    has('virtproxyd_keepalive_timeouts_total{leg="client"} 1');
    has('virtproxyd_client_disconnects_total{reason="keepalive_timeout"} 1');
    has('virtproxyd_client_connections_total{transport="unix"} 1');
    // The closed client's socket totals are kept after it is gone.
    has('virtproxyd_bytes_total{leg="client",direction="in"} 100');
    has('virtproxyd_bytes_total{leg="client",direction="out"} 200');
  } finally {
    m.unsubscribe();
  }
  assert.equal(clientCreatedChannel.hasSubscribers, false);
});

test('disconnect reasons map to stable labels', () => {
  assert.equal(disconnectCategory('closed by peer'), 'closed_by_peer');
  assert.equal(disconnectCategory('protocol error: packet 3 bytes too small'), 'protocol_error');
  assert.equal(disconnectCategory('auth failure (polkit: denied)'), 'auth_failure');
  assert.equal(disconnectCategory('disconnected by admin'), 'admin');
  assert.equal(disconnectCategory('something new'), 'other');
});

test('the endpoint serves /metrics and nothing else', async () => {
  const ep = await startMetricsEndpoint({ host: '127.0.0.1', port: 0 }, () => 'a_total 1\n');
  try {
    const base = `http://${ep.address}`;
    const r = await fetch(`${base}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(await r.text(), 'a_total 1\n');
    assert.equal((await fetch(`${base}/other`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  } finally {
    await ep.close();
  }
});
