// Proxy layer: what CONNECT_OPEN does for a client: route its URI, open the backend leg with the
// client's identity, and hand the leg back to the client connection.

import { existsSync } from 'node:fs';
import type { ClientConnection } from '../server/client-connection.js';
import type { TypedParam } from '../protocol/payloads.js';
import { BackendConnection, BackendError } from './backend-connection.js';
import { UriRouter, type RouterConfig } from './uri-router.js';

export interface OpenerOptions {
  router: Omit<RouterConfig, 'exists'> & { exists?: RouterConfig['exists'] };
  keepaliveInterval: number;
  keepaliveCount: number;
  identityOf: (client: ClientConnection) => TypedParam[] | null;
  onBackendFailure?: (driver: string) => void;
}

export class ProxyOpener {
  readonly router: UriRouter;

  constructor(private readonly opts: OpenerOptions) {
    this.router = new UriRouter({ exists: existsSync, ...opts.router });
  }

  async open(
    client: ClientConnection,
    name: string | null,
    readonly: boolean,
  ): Promise<{ leg: BackendConnection; uri: string }> {
    const r = this.router.route(name, readonly);
    if (!r.ok) throw new BackendError(r.error);
    const identity = client.identityOverride ?? this.opts.identityOf(client);
    try {
      const leg = await BackendConnection.open({
        socketPath: r.route.socketPath,
        name: r.route.backendName,
        flags: r.route.backendFlags,
        identity,
        keepaliveInterval: this.opts.keepaliveInterval,
        keepaliveCount: this.opts.keepaliveCount,
      });
      return { leg, uri: r.route.uri };
    } catch (e) {
      this.opts.onBackendFailure?.(r.route.driver);
      throw e;
    }
  }
}
