// Server layer: the "virtproxyd" RPC server: its services (listening sockets), its clients with
// their ids, and the client limits (all clients; clients still authenticating). Over a limit, new
// connections are accepted but left unread until a slot frees, so to the client they look queued in
// the backlog, as with libvirt. Limits can change while running (virt-admin srv-clients-set).

import type net from 'node:net';
import {
  ClientConnection,
  type ClientHooks,
  type ClientLimits,
  type ServiceInfo,
} from './client-connection.js';

export interface ServerOptions {
  name: string;
  maxClients: number;
  /** max_anonymous_clients: clients still authenticating; 0 = no limit. */
  maxUnauthClients?: number;
  limits: ClientLimits;
  /** Hooks for each client; `closed` is wrapped so the server sees it first. */
  hooks: ClientHooks;
  /** Called for each new client before it reads anything (peer identity etc.). */
  onClientCreated?: (c: ClientConnection) => void;
  /** Fires whenever the number of clients changes. */
  onClientCountChange?: (n: number) => void;
}

export class RpcServer {
  readonly clients = new Map<number, ClientConnection>();
  private nextId = 1;
  private readonly waiting: Array<{ socket: net.Socket; service: ServiceInfo }> = [];
  maxClients: number;
  maxUnauthClients: number;

  constructor(private readonly opts: ServerOptions) {
    this.maxClients = opts.maxClients;
    this.maxUnauthClients = opts.maxUnauthClients ?? 0;
  }

  /** Clients on services with authentication that have not completed it. */
  get unauthClients(): number {
    let n = 0;
    for (const c of this.clients.values()) if (!c.authenticated) n++;
    return n;
  }

  /** Like libvirt's virNetServerCheckLimits: either limit stops admission for every service. */
  private atLimit(): boolean {
    if (this.maxClients > 0 && this.clients.size >= this.maxClients) return true;
    return this.maxUnauthClients > 0 && this.unauthClients >= this.maxUnauthClients;
  }

  /** Applies new limits (null keeps one) and admits queued connections that now fit. */
  setClientLimits(maxClients: number | null, maxUnauthClients: number | null): void {
    if (maxClients !== null) this.maxClients = maxClients;
    if (maxUnauthClients !== null) this.maxUnauthClients = maxUnauthClients;
    this.admitWaiting();
  }

  /** Connections accepted but not yet admitted because a limit was reached. */
  get queued(): number {
    return this.waiting.length;
  }

  get name(): string {
    return this.opts.name;
  }

  /** Entry point for every accepted socket of every service of this server. */
  accept(socket: net.Socket, service: ServiceInfo): void {
    if (this.waiting.length > 0 || this.atLimit()) {
      socket.pause();
      this.waiting.push({ socket, service });
      socket.once('close', () => {
        const i = this.waiting.findIndex((w) => w.socket === socket);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        // Never a client (no id), but the operator should know why a peer gave up.
        this.opts.hooks.log('info', `a connection on ${service.name} left while queued at the client limit`);
      });
      return;
    }
    this.admit(socket, service);
  }

  /** The hooks every client gets: the caller's, wrapped so the server sees arrivals and exits. */
  private clientHooks: ClientHooks | null = null;

  private hooksForClients(): ClientHooks {
    if (this.clientHooks !== null) return this.clientHooks;
    this.clientHooks = {
      ...this.opts.hooks,
      closed: (c, reason) => {
        this.clients.delete(c.id);
        this.opts.hooks.closed(c, reason);
        this.opts.onClientCountChange?.(this.clients.size);
        this.admitWaiting();
      },
      authenticated: (c) => {
        this.opts.hooks.authenticated?.(c);
        this.admitWaiting();
      },
    };
    return this.clientHooks;
  }

  private admit(socket: net.Socket, service: ServiceInfo): void {
    const id = this.nextId++;
    const client = new ClientConnection(id, socket, service, this.opts.limits, this.hooksForClients());
    this.clients.set(id, client);
    this.opts.onClientCreated?.(client);
    this.opts.onClientCountChange?.(this.clients.size);
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0 && !this.atLimit()) {
      const w = this.waiting.shift();
      if (w === undefined || w.socket.destroyed) continue;
      // The client connection starts reading the socket itself.
      this.admit(w.socket, w.service);
    }
  }

  closeAll(): void {
    for (const w of this.waiting) w.socket.destroy();
    this.waiting.length = 0;
    for (const c of this.clients.values()) c.destroy();
  }
}
