// Auth layer: libvirt's tls_priority is a GnuTLS priority string; Node speaks OpenSSL. This maps
// the part of the GnuTLS grammar that has an OpenSSL equivalent (base keyword, protocol versions,
// ciphers, MACs, key exchange, groups, server precedence, tickets) onto Node's TLS options, and
// refuses anything else with a message naming the token, rather than silently doing something
// weaker. The mapping table is documented in docs/remote.md.

import { constants } from 'node:crypto';
import type { SecureVersion } from 'node:tls';
import { CodedError } from '../protocol/coded-error.js';

export interface TlsProtocolSettings {
  minVersion: SecureVersion;
  maxVersion: SecureVersion;
  /** OpenSSL cipher list; TLS 1.3 suites (TLS_*) included, as Node's `ciphers` option takes them. */
  ciphers: string;
  /** OpenSSL group list, or 'auto' for OpenSSL's own choice. */
  ecdhCurve: string;
  honorCipherOrder: boolean;
  secureOptions: number;
}

type Cipher =
  | 'AES-128-GCM'
  | 'AES-256-GCM'
  | 'CHACHA20-POLY1305'
  | 'AES-128-CBC'
  | 'AES-256-CBC'
  | 'AES-128-CCM'
  | 'AES-256-CCM';
type Mac = 'AEAD' | 'SHA1' | 'SHA256' | 'SHA384';
type Kx = 'RSA' | 'DHE-RSA' | 'ECDHE-RSA' | 'ECDHE-ECDSA';
type Version = 'TLS1.2' | 'TLS1.3';

const CIPHERS: readonly Cipher[] = [
  'AES-128-GCM',
  'AES-256-GCM',
  'CHACHA20-POLY1305',
  'AES-128-CBC',
  'AES-256-CBC',
  'AES-128-CCM',
  'AES-256-CCM',
];
const MACS: readonly Mac[] = ['AEAD', 'SHA1', 'SHA256', 'SHA384'];
const KXS: readonly Kx[] = ['ECDHE-ECDSA', 'ECDHE-RSA', 'DHE-RSA', 'RSA'];
// GnuTLS group name → OpenSSL group name.
const GROUPS: ReadonlyMap<string, string> = new Map([
  ['X25519', 'X25519'],
  ['SECP256R1', 'P-256'],
  ['X448', 'X448'],
  ['SECP521R1', 'P-521'],
  ['SECP384R1', 'P-384'],
  ['FFDHE2048', 'ffdhe2048'],
  ['FFDHE3072', 'ffdhe3072'],
  ['FFDHE4096', 'ffdhe4096'],
  ['FFDHE6144', 'ffdhe6144'],
  ['FFDHE8192', 'ffdhe8192'],
]);

interface Suite {
  name: string;
  cipher: Cipher;
  mac: Mac;
  /** null for TLS 1.3 suites, whose key exchange is negotiated separately. */
  kx: Kx | null;
}

// In preference order: TLS 1.3, forward-secret AEAD, forward-secret CBC, then static RSA.
const SUITES: readonly Suite[] = [
  { name: 'TLS_AES_256_GCM_SHA384', cipher: 'AES-256-GCM', mac: 'AEAD', kx: null },
  { name: 'TLS_CHACHA20_POLY1305_SHA256', cipher: 'CHACHA20-POLY1305', mac: 'AEAD', kx: null },
  { name: 'TLS_AES_128_GCM_SHA256', cipher: 'AES-128-GCM', mac: 'AEAD', kx: null },
  { name: 'TLS_AES_128_CCM_SHA256', cipher: 'AES-128-CCM', mac: 'AEAD', kx: null },
  { name: 'ECDHE-ECDSA-AES256-GCM-SHA384', cipher: 'AES-256-GCM', mac: 'AEAD', kx: 'ECDHE-ECDSA' },
  { name: 'ECDHE-RSA-AES256-GCM-SHA384', cipher: 'AES-256-GCM', mac: 'AEAD', kx: 'ECDHE-RSA' },
  { name: 'ECDHE-ECDSA-CHACHA20-POLY1305', cipher: 'CHACHA20-POLY1305', mac: 'AEAD', kx: 'ECDHE-ECDSA' },
  { name: 'ECDHE-RSA-CHACHA20-POLY1305', cipher: 'CHACHA20-POLY1305', mac: 'AEAD', kx: 'ECDHE-RSA' },
  { name: 'ECDHE-ECDSA-AES128-GCM-SHA256', cipher: 'AES-128-GCM', mac: 'AEAD', kx: 'ECDHE-ECDSA' },
  { name: 'ECDHE-RSA-AES128-GCM-SHA256', cipher: 'AES-128-GCM', mac: 'AEAD', kx: 'ECDHE-RSA' },
  { name: 'ECDHE-ECDSA-AES256-CCM', cipher: 'AES-256-CCM', mac: 'AEAD', kx: 'ECDHE-ECDSA' },
  { name: 'ECDHE-ECDSA-AES128-CCM', cipher: 'AES-128-CCM', mac: 'AEAD', kx: 'ECDHE-ECDSA' },
  { name: 'DHE-RSA-AES256-GCM-SHA384', cipher: 'AES-256-GCM', mac: 'AEAD', kx: 'DHE-RSA' },
  { name: 'DHE-RSA-CHACHA20-POLY1305', cipher: 'CHACHA20-POLY1305', mac: 'AEAD', kx: 'DHE-RSA' },
  { name: 'DHE-RSA-AES128-GCM-SHA256', cipher: 'AES-128-GCM', mac: 'AEAD', kx: 'DHE-RSA' },
  { name: 'ECDHE-ECDSA-AES256-SHA384', cipher: 'AES-256-CBC', mac: 'SHA384', kx: 'ECDHE-ECDSA' },
  { name: 'ECDHE-RSA-AES256-SHA384', cipher: 'AES-256-CBC', mac: 'SHA384', kx: 'ECDHE-RSA' },
  { name: 'ECDHE-ECDSA-AES128-SHA256', cipher: 'AES-128-CBC', mac: 'SHA256', kx: 'ECDHE-ECDSA' },
  { name: 'ECDHE-RSA-AES128-SHA256', cipher: 'AES-128-CBC', mac: 'SHA256', kx: 'ECDHE-RSA' },
  { name: 'DHE-RSA-AES256-SHA256', cipher: 'AES-256-CBC', mac: 'SHA256', kx: 'DHE-RSA' },
  { name: 'DHE-RSA-AES128-SHA256', cipher: 'AES-128-CBC', mac: 'SHA256', kx: 'DHE-RSA' },
  { name: 'ECDHE-ECDSA-AES256-SHA', cipher: 'AES-256-CBC', mac: 'SHA1', kx: 'ECDHE-ECDSA' },
  { name: 'ECDHE-RSA-AES256-SHA', cipher: 'AES-256-CBC', mac: 'SHA1', kx: 'ECDHE-RSA' },
  { name: 'ECDHE-ECDSA-AES128-SHA', cipher: 'AES-128-CBC', mac: 'SHA1', kx: 'ECDHE-ECDSA' },
  { name: 'ECDHE-RSA-AES128-SHA', cipher: 'AES-128-CBC', mac: 'SHA1', kx: 'ECDHE-RSA' },
  { name: 'DHE-RSA-AES256-SHA', cipher: 'AES-256-CBC', mac: 'SHA1', kx: 'DHE-RSA' },
  { name: 'DHE-RSA-AES128-SHA', cipher: 'AES-128-CBC', mac: 'SHA1', kx: 'DHE-RSA' },
  { name: 'AES256-GCM-SHA384', cipher: 'AES-256-GCM', mac: 'AEAD', kx: 'RSA' },
  { name: 'AES128-GCM-SHA256', cipher: 'AES-128-GCM', mac: 'AEAD', kx: 'RSA' },
  { name: 'AES256-SHA256', cipher: 'AES-256-CBC', mac: 'SHA256', kx: 'RSA' },
  { name: 'AES128-SHA256', cipher: 'AES-128-CBC', mac: 'SHA256', kx: 'RSA' },
  { name: 'AES256-SHA', cipher: 'AES-256-CBC', mac: 'SHA1', kx: 'RSA' },
  { name: 'AES128-SHA', cipher: 'AES-128-CBC', mac: 'SHA1', kx: 'RSA' },
];

interface Selection {
  versions: Set<Version>;
  ciphers: Set<Cipher>;
  macs: Set<Mac>;
  kxs: Set<Kx>;
  groups: Set<string>;
  honorCipherOrder: boolean;
  secureOptions: number;
}

function base(keyword: string): Selection | null {
  const all = (): Selection => ({
    versions: new Set<Version>(['TLS1.2', 'TLS1.3']),
    ciphers: new Set(CIPHERS),
    macs: new Set(MACS),
    kxs: new Set(KXS),
    groups: new Set(GROUPS.keys()),
    honorCipherOrder: false,
    secureOptions: 0,
  });
  switch (keyword) {
    case 'NORMAL':
    case 'PERFORMANCE':
    case 'SECURE128':
    case 'LEGACY':
    case '@SYSTEM':
      return all();
    case 'PFS': {
      const s = all();
      s.kxs.delete('RSA');
      return s;
    }
    case 'SECURE192':
    case 'SECURE256': {
      const s = all();
      s.ciphers = new Set<Cipher>(['AES-256-GCM', 'CHACHA20-POLY1305', 'AES-256-CBC', 'AES-256-CCM']);
      s.macs.delete('SHA1');
      s.groups = new Set(['SECP384R1', 'SECP521R1', 'X448', 'FFDHE8192']);
      return s;
    }
    case 'NONE':
      return {
        versions: new Set(),
        ciphers: new Set(),
        macs: new Set(),
        kxs: new Set(),
        groups: new Set(),
        honorCipherOrder: false,
        secureOptions: 0,
      };
    default:
      return null;
  }
}

function refuse(priority: string, token: string, why: string): CodedError {
  return new CodedError('ETLSPRIORITY', `tls_priority '${priority}': cannot honour '${token}': ${why}`);
}

function toggle<T>(set: Set<T>, add: boolean, items: readonly T[]): void {
  for (const i of items) {
    if (add) set.add(i);
    else set.delete(i);
  }
}

/**
 * Node TLS options equivalent to a GnuTLS priority string; throws CodedError 'ETLSPRIORITY'
 * naming the first token that has no faithful OpenSSL counterpart.
 */
export function mapGnutlsPriority(priority: string): TlsProtocolSettings {
  const tokens = priority.split(':').filter((t) => t !== '');
  const first = tokens.shift() ?? '';
  const sel = base(first);
  if (sel === null)
    throw refuse(
      priority,
      first,
      'unknown base keyword (use NORMAL, PFS, SECURE128, SECURE256, PERFORMANCE, @SYSTEM or NONE)',
    );
  for (const token of tokens) {
    if (token.startsWith('%')) {
      if (token === '%SERVER_PRECEDENCE') sel.honorCipherOrder = true;
      else if (token === '%NO_TICKETS') sel.secureOptions |= constants.SSL_OP_NO_TICKET;
      else if (token === '%COMPAT') continue;
      else throw refuse(priority, token, 'no OpenSSL equivalent');
      continue;
    }
    const sign = token[0];
    if (sign !== '+' && sign !== '-' && sign !== '!')
      throw refuse(priority, token, 'expected +NAME, -NAME or %FLAG');
    const add = sign === '+';
    const name = token.slice(1);
    const rejectAdd = (why: string): void => {
      if (add) throw refuse(priority, token, why);
    };
    if (name === 'VERS-ALL' || name === 'VERS-TLS-ALL') toggle(sel.versions, add, ['TLS1.2', 'TLS1.3']);
    else if (name === 'VERS-TLS1.3' || name === 'VERS-TLS1.2')
      toggle(sel.versions, add, [name.slice(5) as Version]);
    else if (['VERS-TLS1.1', 'VERS-TLS1.0', 'VERS-SSL3.0'].includes(name))
      rejectAdd('this daemon never offers protocols older than TLS 1.2');
    else if (name.startsWith('VERS-DTLS'))
      continue; // datagram TLS is not used on stream sockets
    else if (name === 'CIPHER-ALL') toggle(sel.ciphers, add, CIPHERS);
    else if ((CIPHERS as readonly string[]).includes(name)) toggle(sel.ciphers, add, [name as Cipher]);
    else if (name === 'MAC-ALL') toggle(sel.macs, add, ['SHA1', 'SHA256', 'SHA384']);
    else if ((MACS as readonly string[]).includes(name)) toggle(sel.macs, add, [name as Mac]);
    else if (name === 'KX-ALL') toggle(sel.kxs, add, KXS);
    else if ((KXS as readonly string[]).includes(name)) toggle(sel.kxs, add, [name as Kx]);
    else if (
      name === 'GROUP-ALL' ||
      name === 'CURVE-ALL' ||
      name === 'GROUP-EC-ALL' ||
      name === 'GROUP-DH-ALL'
    ) {
      const which = [...GROUPS.keys()].filter((g) =>
        name === 'GROUP-EC-ALL'
          ? !g.startsWith('FFDHE')
          : name === 'GROUP-DH-ALL'
            ? g.startsWith('FFDHE')
            : true,
      );
      toggle(sel.groups, add, which);
    } else if (name.startsWith('GROUP-') || name.startsWith('CURVE-')) {
      const g = name.slice(name.indexOf('-') + 1);
      if (GROUPS.has(g)) toggle(sel.groups, add, [g]);
      else rejectAdd('unknown or unsupported group');
    } else if (name.startsWith('COMP-')) {
      continue; // TLS compression is never used
    } else if (
      name === 'SIGN-ALL' ||
      name === 'CTYPE-ALL' ||
      name === 'CTYPE-X509' ||
      name === 'CTYPE-X.509'
    ) {
      // Adding what is already offered is fine; taking it all away cannot be expressed.
      if (!add) throw refuse(priority, token, 'restricting signature or certificate types is not supported');
    } else if (add) {
      throw refuse(priority, token, 'unknown or unsupported algorithm');
    } else if (name.startsWith('SIGN-') || name.startsWith('CTYPE-')) {
      throw refuse(priority, token, 'restricting signature or certificate types is not supported');
    }
    // Removing an algorithm we never offer (3DES, CAMELLIA, ARCFOUR, MD5, DHE-DSS, PSK, ...) is a no-op.
  }
  const suites = SUITES.filter(
    (s) =>
      sel.ciphers.has(s.cipher) &&
      (s.kx === null
        ? sel.versions.has('TLS1.3')
        : sel.versions.has('TLS1.2') && sel.macs.has(s.mac) && sel.kxs.has(s.kx)),
  );
  const has13 = suites.some((s) => s.kx === null);
  const has12 = suites.some((s) => s.kx !== null);
  if (!has13 && !has12) throw refuse(priority, priority, 'no TLS 1.2 or 1.3 cipher suite is left enabled');
  if (sel.groups.size === 0) throw refuse(priority, priority, 'no key exchange group is left enabled');
  const allGroups = sel.groups.size === GROUPS.size;
  return {
    minVersion: has12 ? 'TLSv1.2' : 'TLSv1.3',
    maxVersion: has13 ? 'TLSv1.3' : 'TLSv1.2',
    ciphers: suites.map((s) => s.name).join(':'),
    ecdhCurve: allGroups
      ? 'auto'
      : [...GROUPS]
          .filter(([g]) => sel.groups.has(g))
          .map(([, o]) => o)
          .join(':'),
    honorCipherOrder: sel.honorCipherOrder,
    secureOptions: sel.secureOptions,
  };
}

/** libvirt's build default when tls_priority is unset. */
export const DEFAULT_TLS_PRIORITY = 'NORMAL';
