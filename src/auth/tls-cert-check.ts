// Auth layer: libvirt's x509 rules. At startup, our own certificate and CA list are sanity
// checked (times, basic constraints, key usage, key purpose, and that the CA issued our
// certificate); after each handshake, the client's certificate is checked the same way and its
// DN against tls_allowed_dn_list. Messages follow libvirt's, so operators recognise them.

import { X509Certificate } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { CodedError } from '../protocol/coded-error.js';
import { allowListPermits } from './tls-allow-list.js';
import {
  KEY_USAGE_DIGITAL_SIGNATURE,
  KEY_USAGE_KEY_CERT_SIGN,
  KEY_USAGE_KEY_ENCIPHERMENT,
  KP_ANY,
  KP_TLS_WWW_CLIENT,
  KP_TLS_WWW_SERVER,
  PK_EC,
  PK_X25519,
  PK_X448,
  parseX509,
  pemCertificates,
  type X509Facts,
} from './tls-x509.js';

/** Whose certificate is being judged: ours (a server's) or a peer's (a client's). */
export type CertRole = 'server' | 'client';

// libvirt reads certificate files whole but refuses anything beyond 64 KiB, and at most 16 CAs.
const MAX_CERT_FILE = 1 << 16;
const MAX_CA_CERTS = 16;

/** One check's verdict: an error message (fatal) or null, plus warnings worth logging. */
export interface CertVerdict {
  error: string | null;
  warnings: string[];
}

function checkTimes(f: X509Facts, file: string, role: CertRole, isCA: boolean, now: Date): string | null {
  const who = isCA ? 'CA' : role;
  if (f.notAfter.getTime() < now.getTime()) return `The ${who} certificate ${file} has expired`;
  if (f.notBefore.getTime() > now.getTime()) return `The ${who} certificate ${file} is not yet active`;
  return null;
}

function checkBasicConstraints(f: X509Facts, file: string, role: CertRole, isCA: boolean): string | null {
  const bc = f.basicConstraints;
  if (bc !== null && bc.ca && !isCA) {
    return `The certificate ${file} basic constraints show a CA, but we need one for a ${role}`;
  }
  if (bc !== null && !bc.ca && isCA) return `The certificate ${file} basic constraints do not show a CA`;
  if (bc === null && isCA) return `The certificate ${file} is missing basic constraints for a CA`;
  return null;
}

function checkKeyUsage(f: X509Facts, file: string, isCA: boolean, warnings: string[]): string | null {
  const critical = f.keyUsage?.critical ?? false;
  // An absent extension counts as allowing what the role needs.
  const bits =
    f.keyUsage?.bits ??
    (isCA ? KEY_USAGE_KEY_CERT_SIGN : KEY_USAGE_DIGITAL_SIGNATURE | KEY_USAGE_KEY_ENCIPHERMENT);
  const need = (bit: number, what: string): string | null => {
    if (bits & bit) return null;
    const msg = `Certificate ${file} usage does not permit ${what}`;
    if (critical) return msg;
    warnings.push(msg);
    return null;
  };
  if (isCA) return need(KEY_USAGE_KEY_CERT_SIGN, 'certificate signing');
  const sig = need(KEY_USAGE_DIGITAL_SIGNATURE, 'digital signature');
  if (sig !== null) return sig;
  // Elliptic-curve keys must not carry keyEncipherment (RFC 8813), so its absence is fine there.
  const alg = f.publicKeyAlgorithm;
  if (alg === PK_EC || alg === PK_X25519 || alg === PK_X448) return null;
  return need(KEY_USAGE_KEY_ENCIPHERMENT, 'key encipherment');
}

function checkKeyPurpose(f: X509Facts, file: string, role: CertRole, warnings: string[]): string | null {
  const kp = f.keyPurposes;
  let allowServer = kp === null || kp.oids.length === 0;
  let allowClient = allowServer;
  for (const oid of kp?.oids ?? []) {
    if (oid === KP_TLS_WWW_SERVER) allowServer = true;
    else if (oid === KP_TLS_WWW_CLIENT) allowClient = true;
    else if (oid !== KP_ANY) allowServer = allowClient = true;
  }
  if (role === 'server' ? allowServer : allowClient) return null;
  const msg = `Certificate ${file} purpose does not allow use for with a TLS ${role}`;
  if (kp?.critical === true) return msg;
  warnings.push(msg);
  return null;
}

/** libvirt's virNetTLSCertCheck for one certificate of the given role. */
export function checkCertificate(
  f: X509Facts,
  file: string,
  role: CertRole,
  isCA: boolean,
  now: Date,
): CertVerdict {
  const warnings: string[] = [];
  const error =
    checkTimes(f, file, role, isCA, now) ??
    checkBasicConstraints(f, file, role, isCA) ??
    checkKeyUsage(f, file, isCA, warnings) ??
    (isCA ? null : checkKeyPurpose(f, file, role, warnings));
  return { error, warnings };
}

function readCertFile(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null; // libvirt skips files it cannot read; the TLS context load reports them
  }
  try {
    const buf = Buffer.alloc(MAX_CERT_FILE + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_CERT_FILE) throw new CodedError('ETLSCERT', `File '${path}' is too large`);
    return buf.subarray(0, n).toString('latin1');
  } finally {
    closeSync(fd);
  }
}

/**
 * The startup sanity check of our own certificate and CA list (skipped by
 * tls_no_sanity_certificate). Throws CodedError 'ETLSCERT' with libvirt's message; returns the
 * warnings for the log.
 */
export function sanityCheckCertificates(opts: {
  caFile: string;
  certFile: string;
  role: CertRole;
  now?: Date;
}): string[] {
  const now = opts.now ?? new Date();
  const { caFile, certFile, role } = opts;
  const warnings: string[] = [];
  const fail = (msg: string): never => {
    throw new CodedError('ETLSCERT', msg);
  };
  const certPem = readCertFile(certFile);
  const caPem = readCertFile(caFile);
  let cert: { der: Buffer; facts: X509Facts } | null = null;
  if (certPem !== null) {
    const der = pemCertificates(certPem)[0];
    if (der === undefined) fail(`Unable to import ${role} certificate ${certFile}`);
    try {
      cert = { der: der as Buffer, facts: parseX509(der as Buffer) };
    } catch {
      fail(`Unable to import ${role} certificate ${certFile}`);
    }
  }
  const cas: Array<{ der: Buffer; facts: X509Facts }> = [];
  if (caPem !== null) {
    const ders = pemCertificates(caPem);
    if (ders.length === 0 || ders.length > MAX_CA_CERTS)
      fail(`Unable to import CA certificate list ${caFile}`);
    for (const der of ders) {
      try {
        cas.push({ der, facts: parseX509(der) });
      } catch {
        fail(`Unable to import CA certificate list ${caFile}`);
      }
    }
  }
  const take = (v: CertVerdict): void => {
    warnings.push(...v.warnings);
    if (v.error !== null) fail(v.error);
  };
  if (cert !== null) take(checkCertificate(cert.facts, certFile, role, false, now));
  for (const ca of cas) take(checkCertificate(ca.facts, caFile, role, true, now));
  if (cert !== null && cas.length > 0) {
    const reason = issuedBy(cert, cas);
    if (reason !== null)
      fail(`Our own certificate ${certFile} failed validation against ${caFile}: ${reason}`);
  }
  return warnings;
}

/** null when one of `cas` issued and signed `cert`, else GnuTLS's reason text. */
function issuedBy(
  cert: { der: Buffer; facts: X509Facts },
  cas: Array<{ der: Buffer; facts: X509Facts }>,
): string | null {
  const candidates = cas.filter((ca) => ca.facts.subject === cert.facts.issuer);
  if (candidates.length === 0) return "The certificate hasn't got a known issuer.";
  const x = new X509Certificate(cert.der);
  for (const ca of candidates) {
    try {
      if (x.verify(new X509Certificate(ca.der).publicKey)) return null;
    } catch {
      // an unusable CA key just fails this candidate
    }
  }
  return 'The certificate is not trusted.';
}

/**
 * The checks libvirt runs on a client's certificate once the TLS library has verified the chain
 * (virNetTLSCertValidate): validity, DN against the allow-list, not a CA, key usage and purpose.
 * Returns the DN to record as the client's identity, or the reason to refuse it.
 */
export function validateClientCertificate(
  der: Uint8Array,
  allowedDNs: readonly string[] | null,
  now = new Date(),
): { dname: string; warnings: string[] } | { error: string } {
  let f: X509Facts;
  try {
    f = parseX509(der);
  } catch (e) {
    return { error: `Failed to get certificate [session] distinguished name: ${(e as Error).message}` };
  }
  const file = '[session]';
  const timeErr = checkTimes(f, file, 'client', false, now);
  if (timeErr !== null) return { error: timeErr };
  if (!allowListPermits(allowedDNs, f.subject)) {
    return {
      error:
        "Client's Distinguished Name is not on the list of allowed clients (tls_allowed_dn_list).  " +
        `Client DN: '${f.subject}'`,
    };
  }
  const warnings: string[] = [];
  const err =
    checkBasicConstraints(f, file, 'client', false) ??
    checkKeyUsage(f, file, false, warnings) ??
    checkKeyPurpose(f, file, 'client', warnings);
  if (err !== null) return { error: err };
  return { dname: f.subject, warnings };
}
