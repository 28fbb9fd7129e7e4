// Metrics layer: the HTTP endpoint Prometheus scrapes (GET /metrics). Plain node:http, loopback
// unless metrics_listen names another address; it serves nothing else and accepts no input.

import http from 'node:http';
import { PROMETHEUS_CONTENT_TYPE } from './registry.js';

export interface MetricsEndpoint {
  readonly server: http.Server;
  /** "host:port" actually bound (the port is known even when 0 was asked for). */
  readonly address: string;
  close(): Promise<void>;
}

/** metrics_listen: "host:port", "[v6]:port", or a bare port meaning the loopback address. */
export function parseMetricsListen(value: string): { host: string; port: number } {
  const bare = /^\d{1,5}$/.test(value) ? `127.0.0.1:${value}` : value;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(bare);
  const port = m === null ? -1 : Number(m[3]);
  if (m === null || port > 65535) throw new Error(`metrics_listen: expected "host:port", got '${value}'`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

export function startMetricsEndpoint(
  listen: { host: string; port: number },
  render: () => string,
  onError: (e: Error) => void = () => undefined,
): Promise<MetricsEndpoint> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      let body: string;
      try {
        body = render();
      } catch (e) {
        onError(e as Error);
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics collection failed\n');
        return;
      }
      res.writeHead(200, {
        'Content-Type': PROMETHEUS_CONTENT_TYPE,
        'Content-Length': Buffer.byteLength(body),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('virtproxyd metrics: /metrics\n');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  });
  // A scrape is tiny; do not let idle keep-alive connections pile up.
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      server.on('error', onError);
      const a = server.address();
      const address =
        a !== null && typeof a === 'object'
          ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
          : `${listen.host}:${listen.port}`;
      resolve({
        server,
        address,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
