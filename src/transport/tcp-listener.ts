// Transport layer: the TCP listening sockets of the tcp and tls services, bound the way libvirt
// binds them: every address the listen_addr lookup yields (the IPv4 and IPv6 wildcards when
// unset), IPv6 sockets v6-only, a family that cannot bind (address in use or unavailable)
// skipped as long as one socket is up, and max_queued_clients as the backlog.

import { ADDRCONFIG } from 'node:dns';
import dns from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { CodedError } from '../protocol/coded-error.js';

export interface TcpListenOptions {
  /** listen_addr: an IPv4/IPv6 literal or host name; null = all addresses. */
  host: string | null;
  /** tcp_port / tls_port: a port number or a service name from /etc/services. */
  port: string;
  backlog: number;
}

/** The numeric port for a port string; service names are looked up in `servicesText` (/etc/services). */
export function resolvePort(port: string, servicesText?: string): number {
  if (/^\d+$/.test(port)) {
    const n = Number(port);
    if (n <= 65535) return n;
  } else if (port !== '') {
    let text = servicesText;
    if (text === undefined) {
      try {
        text = readFileSync('/etc/services', 'utf8');
      } catch {
        text = '';
      }
    }
    for (const line of text.split('\n')) {
      const fields = line.replace(/#.*/, '').trim().split(/\s+/);
      const [name, portProto, ...aliases] = fields;
      if (name === undefined || portProto === undefined) continue;
      const m = /^(\d+)\/tcp$/.exec(portProto);
      if (m !== null && (name === port || aliases.includes(port))) return Number(m[1]);
    }
  }
  throw new CodedError(
    'EPORT',
    `Unable to resolve address '${port}' service: Servname not supported for ai_socktype`,
  );
}

/** The addresses to bind, in order, for a listen_addr (null = wildcards of both families). */
export async function listenAddresses(
  host: string | null,
): Promise<Array<{ address: string; family: 4 | 6 }>> {
  if (host === null || host === '') {
    return [
      { address: '::', family: 6 },
      { address: '0.0.0.0', family: 4 },
    ];
  }
  const fam = net.isIP(host);
  if (fam !== 0) return [{ address: host, family: fam as 4 | 6 }];
  try {
    const all = await dns.lookup(host, { all: true, hints: ADDRCONFIG });
    return all.map((a) => ({ address: a.address, family: a.family as 4 | 6 }));
  } catch (e) {
    throw new CodedError('ERESOLVE', `Unable to resolve address '${host}' service: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

function listenOne(srv: net.Server, opts: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    srv.once('error', onError);
    srv.listen(opts, () => {
      srv.removeListener('error', onError);
      resolve();
    });
  });
}

/**
 * Binds one listening socket per address. Throws CodedError 'EBIND' ("Unable to bind to port")
 * when none could be bound, or at once for any error other than EADDRINUSE / EADDRNOTAVAIL /
 * EAFNOSUPPORT (a missing IPv6 stack).
 */
export async function listenTcp(opts: TcpListenOptions): Promise<net.Server[]> {
  const port = resolvePort(opts.port);
  const addrs = await listenAddresses(opts.host);
  const servers: net.Server[] = [];
  let lastError: NodeJS.ErrnoException | null = null;
  for (const a of addrs) {
    const srv = net.createServer({ noDelay: true, pauseOnConnect: false });
    try {
      await listenOne(srv, {
        host: a.address,
        port,
        backlog: opts.backlog,
        ipv6Only: a.family === 6,
        exclusive: true,
      });
      servers.push(srv);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      srv.close();
      if (err.code !== 'EADDRINUSE' && err.code !== 'EADDRNOTAVAIL' && err.code !== 'EAFNOSUPPORT') {
        for (const s of servers) s.close();
        throw new CodedError('EBIND', `Unable to bind to port ${port} on ${a.address}: ${err.message}`, {
          cause: e,
        });
      }
      lastError = err;
    }
  }
  if (servers.length === 0) {
    throw new CodedError(
      'EBIND',
      `Unable to bind to port ${port}: ${lastError?.message ?? 'no address to bind'}`,
      {
        cause: lastError,
      },
    );
  }
  return servers;
}
