// Server layer: the daemon's tracing points, as node:diagnostics_channel channels (like undici's
// diagnostics.js). Publishers check `hasSubscribers` first, so with metrics off a tracing point
// costs one property read; subscribers (the metrics collector, tests) run synchronously inside
// publish(), which lets one wrap a backend leg before the client starts using it.

import dc from 'node:diagnostics_channel';
import type net from 'node:net';
import type { ClientConnection } from './client-connection.js';

/** A backend leg as observers see it: the methods they may wrap, and its socket for byte counts. */
export interface ObservedLeg {
  write(frame: Buffer): boolean;
  writeWithFds?(frame: Buffer, fds: number[]): void;
  attach(
    onFrame: (frame: Buffer, fds: number[] | null) => void,
    onClose: (reason: 'eof' | 'error' | 'keepalive' | 'client') => void,
  ): void;
  readonly socket?: net.Socket;
}

export interface ClientCreatedMessage {
  client: ClientConnection;
}

export interface ClientClosedMessage {
  client: ClientConnection;
  reason: string;
}

export interface BackendOpenedMessage {
  client: ClientConnection;
  leg: ObservedLeg;
  uri: string;
}

/** CONNECT_OPEN, which the proxy answers itself once the backend leg is (or is not) open. */
export interface OpenDoneMessage {
  client: ClientConnection;
  seconds: number;
  ok: boolean;
}

export interface BackendConnectFailedMessage {
  driver: string;
}

export interface AuthFailedMessage {
  client: ClientConnection;
  /** 'polkit', 'sasl', 'tls'. */
  method: string;
  /** Short, stable words ('denied', 'error', 'bad-credentials', ...): they become label values. */
  reason: string;
}

/** One call answered by the admin server. */
export interface AdminCallMessage {
  proc: number;
  ok: boolean;
  seconds: number;
}

export const clientCreatedChannel = dc.channel('virtproxyd:client:created');
export const clientClosedChannel = dc.channel('virtproxyd:client:closed');
export const backendOpenedChannel = dc.channel('virtproxyd:backend:opened');
export const openDoneChannel = dc.channel('virtproxyd:call:connect-open');
export const backendConnectFailedChannel = dc.channel('virtproxyd:backend:connect-failed');
export const authFailedChannel = dc.channel('virtproxyd:auth:failed');
export const adminCallChannel = dc.channel('virtproxyd:admin:call');

/** Publishes only when someone listens, so the message object is never built for nothing. */
export function trace<T>(ch: dc.Channel, make: () => T): void {
  if (ch.hasSubscribers) ch.publish(make());
}
