// Metrics layer: the proxy's Prometheus metrics. Subscribes to the daemon's tracing channels; wraps
// each backend leg (only while metrics are on) to time forwarded calls and count events, streams
// and bytes; reads client and queue gauges from the servers at scrape time. Nothing here runs
// unless metrics_listen is set.

import type dc from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import {
  LXC_PROGRAM,
  QEMU_PROGRAM,
  REMOTE_PROGRAM,
  VIR_NET_CALL,
  VIR_NET_CALL_WITH_FDS,
  VIR_NET_CONTINUE,
  VIR_NET_MESSAGE,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_REPLY_WITH_FDS,
  VIR_NET_STREAM,
  VIR_NET_STREAM_HOLE,
} from '../protocol/constants.js';
import { OFF_PROC, OFF_PROG, OFF_SERIAL, OFF_STATUS, OFF_TYPE } from '../protocol/header.js';
import type { ProgramInfo } from '../protocol/procedure-types.js';
import {
  ADMIN_PROGRAM_INFO,
  LXC_PROGRAM_INFO,
  QEMU_PROGRAM_INFO,
  REMOTE_PROGRAM_INFO,
} from '../protocol/procedures.gen.js';
import type { ClientConnection } from '../server/client-connection.js';
import {
  adminCallChannel,
  authFailedChannel,
  backendConnectFailedChannel,
  backendOpenedChannel,
  clientClosedChannel,
  clientCreatedChannel,
  openDoneChannel,
  type AdminCallMessage,
  type AuthFailedMessage,
  type BackendConnectFailedMessage,
  type BackendOpenedMessage,
  type ClientClosedMessage,
  type ClientCreatedMessage,
  type ObservedLeg,
  type OpenDoneMessage,
} from '../server/diagnostics.js';
import { bytesReadOf } from '../transport/chunk-source.js';
import { bytesWrittenOf } from '../transport/ordered-writer.js';
import { CollectedCounter, Counter, Gauge, Histogram, Registry, type Labels } from './registry.js';

/** The servers whose state the gauges read at scrape time. */
export interface MetricsSources {
  /** The "virtproxyd" server's clients and its queue of connections waiting at a limit. */
  clients(): Iterable<ClientConnection>;
  queued(): number;
  adminClients(): number;
}

/** Seconds; covers a local getter (~100 µs) up to a slow migration step. */
export const CALL_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

function programInfo(prog: number): ProgramInfo | null {
  if (prog === REMOTE_PROGRAM) return REMOTE_PROGRAM_INFO;
  if (prog === QEMU_PROGRAM) return QEMU_PROGRAM_INFO;
  if (prog === LXC_PROGRAM) return LXC_PROGRAM_INFO;
  return null;
}

function procName(info: ProgramInfo | null, proc: number): string {
  return (proc >= 0 ? info?.procs[proc]?.name : undefined) ?? `unknown_${proc}`;
}

/** Stable label values for ClientConnection.closeReason texts. */
export function disconnectCategory(reason: string): string {
  if (reason === 'closed by peer') return 'closed_by_peer';
  if (reason === 'keepalive timeout') return 'keepalive_timeout';
  if (reason.startsWith('protocol error')) return 'protocol_error';
  if (reason.startsWith('socket error')) return 'socket_error';
  if (reason.startsWith('closed by client')) return 'connect_close';
  if (reason.startsWith('backend connection lost')) return 'backend_lost';
  if (reason.startsWith('disconnected by admin')) return 'admin';
  if (reason.startsWith('auth failure')) return 'auth_failure';
  if (reason.startsWith('daemon shutting down')) return 'shutdown';
  return 'other';
}

interface LegState {
  socket: ObservedLeg['socket'] | undefined;
  /** serial → start time (ms, performance clock) of calls awaiting a reply. */
  started: Map<number, number>;
  /** Serials of stream procedures whose reply opened a stream not yet finished. */
  streams: Set<number>;
  /** Serials of calls to stream procedures, until their reply. */
  streamCalls: Set<number>;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly clientConnections: Counter;
  private readonly disconnects: Counter;
  private readonly calls: Counter;
  private readonly callSeconds: Histogram;
  private readonly events: Counter;
  private readonly backendFailures: Counter;
  private readonly keepaliveTimeouts: Counter;
  private readonly authFailures: Counter;
  private readonly streamsOpened: Counter;
  /** Bytes of legs that have closed; live ones are read from their sockets at scrape time. */
  private closedBytes = { clientIn: 0, clientOut: 0, backendIn: 0, backendOut: 0 };
  private readonly legs = new Set<LegState>();
  /** A client's leg, finished when the client goes even if the leg never reports its close. */
  private readonly legOf = new WeakMap<ClientConnection, LegState>();
  private activeStreams = 0;
  private readonly subscriptions: Array<() => void> = [];

  constructor(private readonly src: MetricsSources) {
    const r = this.registry;
    r.add(
      new Gauge(
        'virtproxyd_clients',
        'Clients of the virtproxyd server by transport and authentication state.',
        ['transport', 'auth'],
        () => this.clientGauge(),
      ),
    );
    r.add(
      new Gauge(
        'virtproxyd_clients_queued',
        'Connections accepted but waiting at a client limit.',
        [],
        () => [[{}, this.src.queued()]],
      ),
    );
    r.add(
      new Gauge('virtproxyd_admin_clients', 'Clients of the admin server.', [], () => [
        [{}, this.src.adminClients()],
      ]),
    );
    this.clientConnections = r.add(
      new Counter('virtproxyd_client_connections_total', 'Client connections admitted, by transport.', [
        'transport',
      ]),
    );
    this.disconnects = r.add(
      new Counter('virtproxyd_client_disconnects_total', 'Client connections closed, by reason.', ['reason']),
    );
    this.calls = r.add(
      new Counter(
        'virtproxyd_calls_total',
        'Calls answered, by program, procedure and status (forwarded calls and CONNECT_OPEN; admin calls).',
        ['program', 'procedure', 'status'],
      ),
    );
    this.callSeconds = r.add(
      new Histogram(
        'virtproxyd_call_duration_seconds',
        'Time from a call to its reply as seen by the proxy.',
        ['program', 'procedure', 'status'],
        CALL_BUCKETS,
      ),
    );
    r.add(
      new CollectedCounter(
        'virtproxyd_bytes_total',
        'Bytes on the client and backend legs, by direction as seen from the proxy.',
        ['leg', 'direction'],
        () => this.bytes(),
      ),
    );
    r.add(
      new Gauge('virtproxyd_streams_active', 'Data streams open between clients and backends.', [], () => [
        [{}, this.activeStreams],
      ]),
    );
    this.streamsOpened = r.add(new Counter('virtproxyd_streams_opened_total', 'Data streams opened.'));
    this.events = r.add(
      new Counter('virtproxyd_events_relayed_total', 'Event messages relayed from backends to clients.', [
        'program',
        'procedure',
      ]),
    );
    this.backendFailures = r.add(
      new Counter(
        'virtproxyd_backend_connect_failures_total',
        'Failed attempts to open a backend connection, by driver.',
        ['driver'],
      ),
    );
    this.keepaliveTimeouts = r.add(
      new Counter(
        'virtproxyd_keepalive_timeouts_total',
        'Connections closed because keepalive went unanswered.',
        ['leg'],
      ),
    );
    this.authFailures = r.add(
      new Counter('virtproxyd_auth_failures_total', 'Failed authentication attempts, by method and reason.', [
        'method',
        'reason',
      ]),
    );
    const startSeconds = Math.floor(Date.now() / 1000 - process.uptime());
    r.add(
      new Gauge('process_start_time_seconds', 'Start time of the process since the epoch.', [], () => [
        [{}, startSeconds],
      ]),
    );
    r.add(
      new Gauge('process_resident_memory_bytes', 'Resident memory size.', [], () => [
        [{}, process.memoryUsage.rss()],
      ]),
    );
  }

  /** Starts listening to the tracing channels. */
  subscribe(): void {
    const on = <T>(ch: dc.Channel, f: (m: T) => void): void => {
      const h = (m: unknown): void => f(m as T);
      ch.subscribe(h);
      this.subscriptions.push(() => ch.unsubscribe(h));
    };
    on<ClientCreatedMessage>(clientCreatedChannel, (m) => this.clientCreated(m.client));
    on<ClientClosedMessage>(clientClosedChannel, (m) => this.clientClosed(m.client, m.reason));
    on<BackendOpenedMessage>(backendOpenedChannel, (m) => this.instrumentLeg(m.client, m.leg));
    on<OpenDoneMessage>(openDoneChannel, (m) =>
      this.observeCall('remote', 'REMOTE_PROC_CONNECT_OPEN', m.ok, m.seconds),
    );
    on<BackendConnectFailedMessage>(backendConnectFailedChannel, (m) =>
      this.backendFailures.inc({ driver: m.driver }),
    );
    on<AuthFailedMessage>(authFailedChannel, (m) =>
      this.authFailures.inc({ method: m.method, reason: m.reason }),
    );
    on<AdminCallMessage>(adminCallChannel, (m) =>
      this.observeCall('admin', procName(ADMIN_PROGRAM_INFO, m.proc), m.ok, m.seconds),
    );
  }

  unsubscribe(): void {
    for (const u of this.subscriptions.splice(0)) u();
  }

  render(): string {
    return this.registry.render();
  }

  private *clientGauge(): Iterable<[Labels, number]> {
    const counts = new Map<string, number>();
    for (const c of this.src.clients()) {
      const k = `${c.service.transport}\u0000${c.authenticated ? 'authenticated' : 'pending'}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    // Always show the unix series, so a dashboard sees 0 rather than a gap.
    for (const auth of ['authenticated', 'pending']) {
      const k = `unix\u0000${auth}`;
      if (!counts.has(k)) counts.set(k, 0);
    }
    for (const [k, n] of counts) {
      const [transport = '', auth = ''] = k.split('\u0000');
      yield [{ transport, auth }, n];
    }
  }

  private *bytes(): Iterable<[Labels, number]> {
    let clientIn = this.closedBytes.clientIn;
    let clientOut = this.closedBytes.clientOut;
    for (const c of this.src.clients()) {
      clientIn += bytesReadOf(c.socket);
      clientOut += bytesWrittenOf(c.socket);
    }
    let backendIn = this.closedBytes.backendIn;
    let backendOut = this.closedBytes.backendOut;
    for (const l of this.legs) {
      backendIn += l.socket === undefined ? 0 : bytesReadOf(l.socket);
      backendOut += l.socket === undefined ? 0 : bytesWrittenOf(l.socket);
    }
    yield [{ leg: 'client', direction: 'in' }, clientIn];
    yield [{ leg: 'client', direction: 'out' }, clientOut];
    yield [{ leg: 'backend', direction: 'in' }, backendIn];
    yield [{ leg: 'backend', direction: 'out' }, backendOut];
  }

  clientCreated(c: ClientConnection): void {
    this.clientConnections.inc({ transport: c.service.transport });
  }

  clientClosed(c: ClientConnection, reason: string): void {
    this.closedBytes.clientIn += bytesReadOf(c.socket);
    this.closedBytes.clientOut += bytesWrittenOf(c.socket);
    const leg = this.legOf.get(c);
    if (leg !== undefined) this.legClosed(leg, 'client');
    const cat = disconnectCategory(reason);
    this.disconnects.inc({ reason: cat });
    if (cat === 'keepalive_timeout') this.keepaliveTimeouts.inc({ leg: 'client' });
  }

  private observeCall(program: string, procedure: string, ok: boolean, seconds: number): void {
    const labels = { program, procedure, status: ok ? 'ok' : 'error' };
    this.calls.inc(labels);
    this.callSeconds.observe(labels, seconds);
  }

  /**
   * Wraps a fresh backend leg's write and attach, so every frame crossing it is seen once. Runs
   * inside the publish of backendOpenedChannel, before the client attaches.
   */
  instrumentLeg(client: ClientConnection, leg: ObservedLeg): void {
    const st: LegState = {
      socket: leg.socket,
      started: new Map(),
      streams: new Set(),
      streamCalls: new Set(),
    };
    this.legs.add(st);
    this.legOf.set(client, st);
    const write = leg.write.bind(leg);
    leg.write = (frame: Buffer): boolean => {
      this.clientToBackend(st, frame);
      return write(frame);
    };
    const writeWithFds = leg.writeWithFds?.bind(leg);
    if (writeWithFds !== undefined) {
      leg.writeWithFds = (frame: Buffer, fds: number[]): void => {
        this.clientToBackend(st, frame);
        writeWithFds(frame, fds);
      };
    }
    const attach = leg.attach.bind(leg);
    leg.attach = (onFrame, onClose): void => {
      attach(
        (frame, fds) => {
          this.backendToClient(st, frame);
          onFrame(frame, fds);
        },
        (reason) => {
          this.legClosed(st, reason);
          onClose(reason);
        },
      );
    };
  }

  private clientToBackend(st: LegState, frame: Buffer): void {
    const type = frame.readInt32BE(OFF_TYPE);
    if (type === VIR_NET_CALL || type === VIR_NET_CALL_WITH_FDS) {
      const serial = frame.readUInt32BE(OFF_SERIAL);
      st.started.set(serial, performance.now());
      const info = programInfo(frame.readUInt32BE(OFF_PROG));
      const proc = frame.readInt32BE(OFF_PROC);
      if (proc >= 0 && info?.procs[proc]?.stream != null) st.streamCalls.add(serial);
      return;
    }
    if (type === VIR_NET_STREAM || type === VIR_NET_STREAM_HOLE) this.streamFrame(st, frame);
  }

  private backendToClient(st: LegState, frame: Buffer): void {
    const type = frame.readInt32BE(OFF_TYPE);
    if (type === VIR_NET_REPLY || type === VIR_NET_REPLY_WITH_FDS) {
      const serial = frame.readUInt32BE(OFF_SERIAL);
      const t0 = st.started.get(serial);
      if (t0 === undefined) return;
      st.started.delete(serial);
      const ok = frame.readInt32BE(OFF_STATUS) === VIR_NET_OK;
      const prog = frame.readUInt32BE(OFF_PROG);
      const info = programInfo(prog);
      this.observeCall(
        info?.name ?? String(prog),
        procName(info, frame.readInt32BE(OFF_PROC)),
        ok,
        (performance.now() - t0) / 1000,
      );
      if (st.streamCalls.delete(serial) && ok) {
        st.streams.add(serial);
        this.activeStreams++;
        this.streamsOpened.inc();
      }
      return;
    }
    if (type === VIR_NET_MESSAGE) {
      const prog = frame.readUInt32BE(OFF_PROG);
      const info = programInfo(prog);
      this.events.inc({
        program: info?.name ?? String(prog),
        procedure: procName(info, frame.readInt32BE(OFF_PROC)),
      });
      return;
    }
    if (type === VIR_NET_STREAM || type === VIR_NET_STREAM_HOLE) this.streamFrame(st, frame);
  }

  /** A stream ends at the first finish (status OK) or abort/error (status ERROR) in either direction. */
  private streamFrame(st: LegState, frame: Buffer): void {
    if (frame.readInt32BE(OFF_STATUS) === VIR_NET_CONTINUE) return;
    if (st.streams.delete(frame.readUInt32BE(OFF_SERIAL))) this.activeStreams--;
  }

  private legClosed(st: LegState, reason: string): void {
    if (!this.legs.delete(st)) return;
    this.closedBytes.backendIn += st.socket === undefined ? 0 : bytesReadOf(st.socket);
    this.closedBytes.backendOut += st.socket === undefined ? 0 : bytesWrittenOf(st.socket);
    this.activeStreams -= st.streams.size;
    st.streams.clear();
    if (reason === 'keepalive') this.keepaliveTimeouts.inc({ leg: 'backend' });
  }
}
