// Transport layer: the server side of libvirt's TLS transport on accepted TCP sockets. Runs the
// handshake (a client certificate is requested, not demanded), lets the caller judge the peer,
// and only then writes the single 0x01 byte libvirt clients wait for before their first call; a
// refused peer gets nothing and is closed. Certificates and checks can be swapped at run time
// (SIGHUP reload); handshakes already under way finish with the ones they started with.

import type net from 'node:net';
import tls from 'node:tls';

/** The caller's verdict on a peer after the handshake. */
export type TlsPeerVerdict = { ok: true; dname: string | null } | { ok: false; reason: string };

export interface TlsAcceptorOptions {
  /** Key, certificate, CA, CRL and protocol settings (Node's createSecureContext options). */
  secure: tls.SecureContextOptions;
  /** Judges the peer once the handshake is done (chain state is on `sock.authorized`). */
  checkPeer(sock: tls.TLSSocket): TlsPeerVerdict;
}

export interface TlsAcceptorEvents {
  /** A peer passed; the confirmation byte is queued. */
  ready(sock: tls.TLSSocket): void;
  /** A peer's certificate was refused; the connection is closed. */
  refused(remote: string, reason: string): void;
  /** The handshake itself failed (or the peer left during it); the connection is closed. */
  handshakeFailed(remote: string, reason: string): void;
}

/** The byte libvirt's server sends once the peer's certificate passed (virNetServerClient). */
const TLS_CONFIRM = Buffer.from([1]);

const peerNames = new WeakMap<net.Socket, string>();

/** The client certificate's DN recorded for an accepted TLS socket, if it was verified. */
export function tlsPeerDName(sock: net.Socket): string | null {
  return peerNames.get(sock) ?? null;
}

function describe(sock: net.Socket): string {
  const a = sock.remoteAddress;
  if (a === undefined) return '?';
  return a.includes(':') ? `[${a}]:${sock.remotePort}` : `${a}:${sock.remotePort}`;
}

/**
 * One TLS service's handshakes. Node's tls.Server is used without listening: accepted sockets are
 * injected with its 'connection' event, which gives its verification results and setSecureContext.
 */
export class TlsAcceptor {
  private readonly server: tls.Server;
  private checkPeer: TlsAcceptorOptions['checkPeer'];
  /** Handshakes in progress. */
  pending = 0;

  constructor(opts: TlsAcceptorOptions, events: TlsAcceptorEvents) {
    this.checkPeer = opts.checkPeer;
    this.server = tls.createServer({ ...opts.secure, requestCert: true, rejectUnauthorized: false });
    this.server.on('secureConnection', (sock: tls.TLSSocket) => {
      this.pending--;
      let verdict: TlsPeerVerdict;
      try {
        verdict = this.checkPeer(sock);
      } catch (e) {
        verdict = { ok: false, reason: (e as Error).message };
      }
      if (!verdict.ok) {
        const who = describe(sock);
        // The peer may reset first; the refusal is reported once, here.
        sock.on('error', () => undefined);
        sock.destroy();
        events.refused(who, verdict.reason);
        return;
      }
      if (verdict.dname !== null) peerNames.set(sock, verdict.dname);
      sock.write(TLS_CONFIRM);
      events.ready(sock);
    });
    this.server.on('tlsClientError', (err: Error, sock: tls.TLSSocket) => {
      this.pending--;
      const who = describe(sock);
      sock.destroy();
      events.handshakeFailed(who, err.message);
    });
  }

  /** New material and checks for later handshakes. */
  update(opts: TlsAcceptorOptions): void {
    this.server.setSecureContext(opts.secure);
    this.checkPeer = opts.checkPeer;
  }

  /** Starts the handshake on an accepted TCP socket. */
  accept(raw: net.Socket): void {
    this.pending++;
    this.server.emit('connection', raw);
  }
}
