// Auth layer: libvirt's SASL authentication of a client (remoteDispatchAuthSasl*, NOTES §7.3)
// over the Cyrus binding: INIT opens a session for service "libvirt" with libvirt's security
// properties (secure transports: no layer, anonymous allowed; plain TCP: tcp_min_ssf up to
// 100000, no anonymous or plaintext mechanisms), START/STEP run the mechanism, and completion
// demands SSF >= 56 on plain TCP and a user on sasl_allowed_username_list. Every failure is the
// same wire error and throws the session away, so a client can only start over with INIT.

import {
  REMOTE_AUTH_SASL_DATA_MAX,
  REMOTE_PROC_AUTH_SASL_INIT,
  REMOTE_PROC_AUTH_SASL_START,
  VIR_ERR_AUTH_FAILED,
  VIR_FROM_RPC,
} from '../protocol/constants.js';
import { remoteError, rpcError } from '../protocol/remote-error.js';
import type { NativeApi, SaslServerHandle } from '../native/native.js';
import type { ClientConnection, SaslOutcome } from '../server/client-connection.js';
import type { SecurityLayer } from '../transport/sasl-layer.js';
import { allowListPermits } from './tls-allow-list.js';
import {
  decodeSaslStartArgs,
  decodeSaslStepArgs,
  encodeSaslInitReply,
  encodeSaslStepReply,
} from './sasl-payloads.js';

/** Cyrus application name: selects /etc/sasl2/libvirt.conf (mech_list, sasldb_path, keytab). */
export const SASL_APP_NAME = 'libvirt';
/** Weakest security layer libvirt accepts on plain TCP, whatever tcp_min_ssf says. */
export const SASL_MIN_TCP_SSF = 56;
const SASL_MAX_BUF = 65536;

export interface SaslPolicy {
  /** tcp_min_ssf: the smallest security strength factor a mechanism must offer on plain TCP. */
  tcpMinSsf: number;
  /** sasl_allowed_username_list; null = no list (everyone). */
  allowedUsers: readonly string[] | null;
}

interface Session {
  conn: SaslServerHandle;
  done: boolean;
}

const AUTH_FAILED = remoteError(VIR_ERR_AUTH_FAILED, VIR_FROM_RPC, 'authentication failed');

function failed(): SaslOutcome {
  return { payload: null, error: AUTH_FAILED, done: null };
}

/** "ip;port" as libvirt hands addresses to Cyrus; unix sockets pretend to be 127.0.0.1;0. */
function saslAddr(address: string | undefined, port: number | undefined): string {
  if (address === undefined || port === undefined) return '127.0.0.1;0';
  return `${address};${port}`;
}

/** Key size in bits of the negotiated TLS cipher (what GnuTLS's key size ×8 gives libvirt). */
export function tlsCipherBits(cipherName: string): number {
  if (/256|CHACHA20/i.test(cipherName)) return 256;
  if (/128/.test(cipherName)) return 128;
  return 0;
}

export class SaslAuthenticator {
  private readonly sessions = new WeakMap<ClientConnection, Session>();
  policy: SaslPolicy;

  constructor(
    policy: SaslPolicy,
    private readonly api: NativeApi,
    private readonly log: (level: 'info' | 'warn' | 'debug', msg: string) => void = () => undefined,
  ) {
    this.policy = policy;
    api.saslServerInit(SASL_APP_NAME);
  }

  handle(c: ClientConnection, proc: number, payload: Buffer): SaslOutcome {
    if (proc === REMOTE_PROC_AUTH_SASL_INIT) return this.init(c);
    const s = this.sessions.get(c);
    let input: { mech: string | null; data: Buffer | null };
    try {
      if (proc === REMOTE_PROC_AUTH_SASL_START) {
        const a = decodeSaslStartArgs(payload);
        input = { mech: a.mech, data: a.data };
      } else {
        input = { mech: null, data: decodeSaslStepArgs(payload) };
      }
    } catch {
      // Like libvirt's dispatcher: a bad payload is refused before the session is looked at.
      return { payload: null, error: rpcError('Unable to decode message payload'), done: null };
    }
    if (s === undefined || s.done) {
      this.log('warn', `client ${c.id}: invalid SASL ${input.mech !== null ? 'start' : 'step'} request`);
      return failed();
    }
    let r: { done: boolean; data: Buffer | null };
    try {
      r = input.mech !== null ? s.conn.start(input.mech, input.data) : s.conn.step(input.data);
    } catch (e) {
      return this.fail(c, s, (e as Error).message);
    }
    if (r.data !== null && r.data.length > REMOTE_AUTH_SASL_DATA_MAX) {
      return this.fail(c, s, `SASL reply data too long: ${r.data.length}`);
    }
    if (!r.done)
      return { payload: encodeSaslStepReply({ complete: false, data: r.data }), error: null, done: null };
    return this.finish(c, s, r.data);
  }

  /** Drops the client's session (connection closed). */
  forget(c: ClientConnection): void {
    const s = this.sessions.get(c);
    if (s === undefined) return;
    this.sessions.delete(c);
    s.conn.dispose();
  }

  private init(c: ClientConnection): SaslOutcome {
    if (c.service.auth !== 'sasl' || this.sessions.has(c)) {
      this.log('warn', `client ${c.id}: invalid SASL init request`);
      return failed();
    }
    const unix = c.service.transport === 'unix';
    const sock = c.socket;
    let conn: SaslServerHandle;
    try {
      conn = new this.api.SaslServer(
        SASL_APP_NAME,
        unix ? saslAddr(undefined, undefined) : saslAddr(sock.localAddress, sock.localPort),
        unix ? saslAddr(undefined, undefined) : saslAddr(sock.remoteAddress, sock.remotePort),
      );
    } catch (e) {
      this.log('warn', `client ${c.id}: ${(e as Error).message}`);
      return failed();
    }
    const s: Session = { conn, done: false };
    try {
      if (c.service.transport === 'tls') {
        const cipher = (sock as { getCipher?: () => { name: string } }).getCipher?.();
        conn.setExternalSsf(tlsCipherBits(cipher?.name ?? ''));
      }
      if (c.service.transport === 'tcp') {
        conn.setSecurityProps(this.policy.tcpMinSsf, 100000, false, SASL_MAX_BUF);
      } else {
        // TLS or a local socket already protects the data: no layer, anonymous allowed.
        conn.setSecurityProps(0, 0, true, SASL_MAX_BUF);
      }
      const mechlist = conn.listMechanisms();
      if (mechlist === '') throw new Error('no SASL mechanism is available');
      this.sessions.set(c, s);
      return { payload: encodeSaslInitReply(mechlist), error: null, done: null };
    } catch (e) {
      conn.dispose();
      this.log('warn', `client ${c.id}: SASL init failed: ${(e as Error).message}`);
      return failed();
    }
  }

  private finish(c: ClientConnection, s: Session, data: Buffer | null): SaslOutcome {
    let user: string | null;
    let ssf = 0;
    try {
      if (c.service.transport === 'tcp') {
        ssf = s.conn.ssf();
        if (ssf < SASL_MIN_TCP_SSF) return this.fail(c, s, `negotiated SSF ${ssf} was not strong enough`);
      }
      user = s.conn.userName();
    } catch (e) {
      return this.fail(c, s, (e as Error).message);
    }
    if (user === null) return this.fail(c, s, 'no client username was found');
    if (!allowListPermits(this.policy.allowedUsers, user)) {
      return this.fail(c, s, `SASL client identity '${user}' is not on the list of allowed clients`);
    }
    s.done = true;
    let layer: SecurityLayer | null = null;
    if (ssf > 0) {
      const conn = s.conn;
      layer = {
        maxOutput: conn.maxOutput(),
        encode: (b) => conn.encode(b),
        decode: (b) => conn.decode(b),
        dispose: () => conn.dispose(),
      };
    }
    this.log('info', `client ${c.id}: SASL authentication as '${user}' succeeded (ssf ${ssf})`);
    return {
      payload: encodeSaslStepReply({ complete: true, data }),
      error: null,
      done: { userName: user, layer },
    };
  }

  private fail(c: ClientConnection, s: Session, why: string): SaslOutcome {
    this.log('warn', `client ${c.id}: SASL authentication failed: ${why}`);
    this.sessions.delete(c);
    s.conn.dispose();
    return failed();
  }
}

/** The daemon's hook: refuses SASL calls when no service uses SASL (no context, as in libvirt). */
export function saslOutcome(
  auth: SaslAuthenticator | null,
  c: ClientConnection,
  proc: number,
  payload: Buffer,
): SaslOutcome {
  return auth !== null ? auth.handle(c, proc, payload) : failed();
}
