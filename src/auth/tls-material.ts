// Auth layer: the server's TLS setup from the config: locate the x509 files, sanity check our own
// certificate (unless tls_no_sanity_certificate), map tls_priority, build Node's secure context,
// and the post-handshake judgement of each client certificate (chain, CRL, DN allow-list, key
// usage and purpose), softened to "accept without a DN" by tls_no_verify_certificate.

import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { CodedError } from '../protocol/coded-error.js';
import type { TlsPeerVerdict } from '../transport/tls-server.js';
import { sanityCheckCertificates, validateClientCertificate } from './tls-cert-check.js';
import { resolveTlsFiles, type TlsFileSettings, type TlsFiles } from './tls-files.js';
import { DEFAULT_TLS_PRIORITY, mapGnutlsPriority, type TlsProtocolSettings } from './tls-priority.js';

export interface TlsSettings extends TlsFileSettings {
  tls_no_sanity_certificate: boolean;
  tls_no_verify_certificate: boolean;
  tls_allowed_dn_list: readonly string[] | null;
  tls_priority: string | null;
}

export interface ServerTls {
  files: TlsFiles;
  /** Options for Node's TLS server; a context was built from them once to prove they load. */
  secure: tls.SecureContextOptions;
  protocol: TlsProtocolSettings;
  /** Sanity-check warnings (non-critical extensions that do not fit), for the log. */
  warnings: string[];
  checkPeer(sock: tls.TLSSocket): TlsPeerVerdict;
}

// OpenSSL verification codes → GnuTLS-style reasons libvirt users know.
const CHAIN_REASONS: Record<string, string> = {
  CERT_REVOKED: 'The client certificate has been revoked.',
  CERT_HAS_EXPIRED: 'The client certificate has expired',
  CERT_NOT_YET_VALID: 'The client certificate is not yet active',
  UNABLE_TO_GET_ISSUER_CERT: "The client certificate hasn't got a known issuer.",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "The client certificate hasn't got a known issuer.",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "The client certificate hasn't got a known issuer.",
  DEPTH_ZERO_SELF_SIGNED_CERT: "The client certificate hasn't got a known issuer.",
  SELF_SIGNED_CERT_IN_CHAIN: "The client certificate hasn't got a known issuer.",
  CERT_SIGNATURE_FAILURE: 'The client certificate is not trusted.',
  INVALID_PURPOSE: 'The client certificate purpose does not allow use with a TLS client',
};

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch (e) {
    throw new CodedError('ETLSLOAD', `Unable to read ${what} '${path}': ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/**
 * Everything the TLS service needs, or CodedError ('ETLSFILES', 'ETLSCERT', 'ETLSPRIORITY',
 * 'ETLSLOAD') with a message naming the file or setting at fault.
 */
export function loadServerTls(
  s: TlsSettings,
  privileged: boolean,
  home: string,
  log: (msg: string) => void = () => undefined,
): ServerTls {
  const files = resolveTlsFiles(s, privileged, home);
  const protocol = mapGnutlsPriority(s.tls_priority ?? DEFAULT_TLS_PRIORITY);
  const warnings = s.tls_no_sanity_certificate
    ? []
    : sanityCheckCertificates({ caFile: files.caFile, certFile: files.certFile, role: 'server' });
  const ca = readPem(files.caFile, 'CA certificate');
  const cert = readPem(files.certFile, 'server certificate');
  const key = readPem(files.keyFile, 'server key');
  const crl = files.crlFile !== null ? readPem(files.crlFile, 'CA CRL') : undefined;
  const secure: tls.SecureContextOptions = {
    ca,
    cert,
    key,
    ...(crl !== undefined ? { crl } : {}),
    minVersion: protocol.minVersion,
    maxVersion: protocol.maxVersion,
    ciphers: protocol.ciphers,
    ecdhCurve: protocol.ecdhCurve,
    honorCipherOrder: protocol.honorCipherOrder,
    secureOptions: protocol.secureOptions,
  };
  try {
    tls.createSecureContext(secure);
  } catch (e) {
    throw new CodedError(
      'ETLSLOAD',
      `Unable to set x509 key and certificate: ${files.keyFile}, ${files.certFile}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const allowedDNs = s.tls_allowed_dn_list;
  const noVerify = s.tls_no_verify_certificate;
  const checkPeer = (sock: tls.TLSSocket): TlsPeerVerdict => {
    let problem: string | null = null;
    let dname: string | null = null;
    const peer = sock.getPeerX509Certificate();
    if (peer === undefined) {
      problem = 'No certificate was found.';
    } else if (!sock.authorized) {
      const code = String(sock.authorizationError ?? 'unknown');
      problem = `${CHAIN_REASONS[code] ?? 'The client certificate is not trusted.'} (${code})`;
    } else {
      const v = validateClientCertificate(peer.raw, allowedDNs);
      if ('error' in v) {
        problem = v.error;
      } else {
        dname = v.dname;
        for (const w of v.warnings) log(w);
      }
    }
    if (problem === null) return { ok: true, dname };
    if (noVerify) {
      log(`ignoring client certificate problem (tls_no_verify_certificate): ${problem}`);
      return { ok: true, dname: null };
    }
    return { ok: false, reason: `Failed to verify peer's certificate: ${problem}` };
  };
  return { files, secure, protocol, warnings, checkPeer };
}
