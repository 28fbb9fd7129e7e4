// Auth layer: the few X.509 facts libvirt's certificate checks look at (validity, basic
// constraints, key usage, key purpose, public-key algorithm) and the subject DN formatted the way
// GnuTLS's gnutls_x509_crt_get_dn does, read straight from the DER. Node's X509Certificate hides
// criticality and key-usage bits and formats names the OpenSSL way, hence this small DER walker.

import { CodedError } from '../protocol/coded-error.js';

interface Tlv {
  tag: number;
  /** Offset of the first content byte. */
  start: number;
  /** Offset just past the content. */
  end: number;
  /** Offset of the tag byte. */
  head: number;
}

function readTlv(buf: Uint8Array, off: number, limit: number): Tlv {
  if (off + 2 > limit) throw bad('truncated element');
  const tag = buf[off] as number;
  if ((tag & 0x1f) === 0x1f) throw bad('multi-byte tags are not used in certificates');
  let len = buf[off + 1] as number;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw bad('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[p + i] as number);
    p += n;
  }
  if (p + len > limit) throw bad('element runs past its container');
  return { tag, start: p, end: p + len, head: off };
}

function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let off = parent.start; off < parent.end;) {
    const t = readTlv(buf, off, parent.end);
    out.push(t);
    off = t.end;
  }
  return out;
}

function bad(what: string): CodedError {
  return new CodedError('EX509', `malformed certificate: ${what}`);
}

export function decodeOid(bytes: Uint8Array): string {
  const parts: number[] = [];
  let v = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (parts.length === 0) {
        const first = v < 80 ? Math.floor(v / 40) : 2;
        parts.push(first, v - first * 40);
      } else {
        parts.push(v);
      }
      v = 0;
    }
  }
  return parts.join('.');
}

// Short names GnuTLS prints for attribute types; others appear as dotted OIDs with a hex value.
const DN_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.6', 'C'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.3', 'CN'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.9', 'street'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.12', 'title'],
  ['2.5.4.13', 'description'],
  ['2.5.4.4', 'surName'],
  ['2.5.4.42', 'givenName'],
  ['2.5.4.43', 'initials'],
  ['2.5.4.44', 'generationQualifier'],
  ['2.5.4.46', 'dnQualifier'],
  ['2.5.4.65', 'pseudonym'],
  ['2.5.4.17', 'postalCode'],
  ['2.5.4.41', 'Name'],
  ['2.5.4.15', 'businessCategory'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
  ['1.2.840.113549.1.9.1', 'EMAIL'],
]);

function decodeDirectoryString(buf: Uint8Array, t: Tlv): string | null {
  const body = Buffer.from(buf.subarray(t.start, t.end));
  switch (t.tag) {
    case 0x0c: // UTF8String
      return body.toString('utf8');
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x12: // NumericString
    case 0x1a: // VisibleString
      return body.toString('latin1');
    case 0x14: // TeletexString: treated as Latin-1, as most encoders mean it
      return body.toString('latin1');
    case 0x1e: {
      // BMPString: UCS-2 big endian
      const le = Buffer.alloc(body.length);
      for (let i = 0; i + 1 < body.length; i += 2) {
        le[i] = body[i + 1] as number;
        le[i + 1] = body[i] as number;
      }
      return le.toString('utf16le');
    }
    case 0x1c: {
      // UniversalString: UCS-4 big endian
      let s = '';
      for (let i = 0; i + 3 < body.length; i += 4) s += String.fromCodePoint(body.readUInt32BE(i));
      return s;
    }
    default:
      return null;
  }
}

/** RFC 4514 escaping as GnuTLS applies it to attribute values. */
export function escapeDnValue(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i] as string;
    const special =
      c === ',' ||
      c === '+' ||
      c === '"' ||
      c === '\\' ||
      c === '<' ||
      c === '>' ||
      c === ';' ||
      (i === 0 && (c === '#' || c === ' ')) ||
      (i === v.length - 1 && c === ' ');
    out += special ? `\\${c}` : c;
  }
  return out;
}

function formatName(buf: Uint8Array, name: Tlv): string {
  const rdns: string[] = [];
  for (const rdn of children(buf, name)) {
    const avas: string[] = [];
    for (const ava of children(buf, rdn)) {
      const [typ, val] = children(buf, ava);
      if (typ === undefined || val === undefined || typ.tag !== 0x06) throw bad('bad name attribute');
      const oid = decodeOid(buf.subarray(typ.start, typ.end));
      const short = DN_NAMES.get(oid);
      const text = short !== undefined ? decodeDirectoryString(buf, val) : null;
      if (short !== undefined && text !== null) {
        avas.push(`${short}=${escapeDnValue(text)}`);
      } else {
        avas.push(`${oid}=#${Buffer.from(buf.subarray(val.head, val.end)).toString('hex')}`);
      }
    }
    rdns.push(avas.join('+'));
  }
  return rdns.join(',');
}

function parseTime(buf: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(buf.subarray(t.start, t.end)).toString('latin1');
  let m: RegExpMatchArray | null;
  if (t.tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?Z$/.exec(s)) !== null) {
    const yy = Number(m[1]);
    return new Date(
      Date.UTC(
        yy >= 50 ? 1900 + yy : 2000 + yy,
        Number(m[2]) - 1,
        Number(m[3]),
        Number(m[4]),
        Number(m[5]),
        Number(m[6] ?? 0),
      ),
    );
  }
  if (t.tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?Z$/.exec(s)) !== null) {
    return new Date(
      Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)),
    );
  }
  throw bad(`unsupported time '${s}'`);
}

/** keyUsage bits in GnuTLS's numbering, which is also the DER bit order. */
export const KEY_USAGE_DIGITAL_SIGNATURE = 0x80;
export const KEY_USAGE_KEY_ENCIPHERMENT = 0x20;
export const KEY_USAGE_KEY_CERT_SIGN = 0x04;

export const KP_TLS_WWW_SERVER = '1.3.6.1.5.5.7.3.1';
export const KP_TLS_WWW_CLIENT = '1.3.6.1.5.5.7.3.2';
export const KP_ANY = '2.5.29.37.0';

export const PK_RSA = '1.2.840.113549.1.1.1';
export const PK_EC = '1.2.840.10045.2.1';
export const PK_X25519 = '1.3.101.110';
export const PK_X448 = '1.3.101.111';

export interface X509Facts {
  /** Subject DN as gnutls_x509_crt_get_dn prints it: attributes in encoding order. */
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** null when the extension is absent. */
  basicConstraints: { ca: boolean; critical: boolean } | null;
  /** First key-usage byte(s) as an integer with bit 0x80 = digitalSignature; null when absent. */
  keyUsage: { bits: number; critical: boolean } | null;
  /** Extended key usage OIDs; null when absent. */
  keyPurposes: { oids: string[]; critical: boolean } | null;
  /** OID of the subject public key algorithm. */
  publicKeyAlgorithm: string;
}

/** Reads the facts above from one DER certificate; throws CodedError 'EX509' on malformed input. */
export function parseX509(der: Uint8Array): X509Facts {
  const cert = readTlv(der, 0, der.length);
  if (cert.tag !== 0x30) throw bad('not a SEQUENCE');
  const tbs = children(der, cert)[0];
  if (tbs === undefined || tbs.tag !== 0x30) throw bad('no tbsCertificate');
  const f = children(der, tbs);
  let i = 0;
  if (f[0]?.tag === 0xa0) i++; // explicit version
  const issuer = f[i + 2];
  const validity = f[i + 3];
  const subject = f[i + 4];
  const spki = f[i + 5];
  if (issuer === undefined || validity === undefined || subject === undefined || spki === undefined) {
    throw bad('missing fields');
  }
  const [nb, na] = children(der, validity);
  if (nb === undefined || na === undefined) throw bad('bad validity');
  const alg = children(der, spki)[0];
  const algOid = alg !== undefined ? children(der, alg)[0] : undefined;
  if (algOid === undefined || algOid.tag !== 0x06) throw bad('bad public key info');

  const facts: X509Facts = {
    subject: formatName(der, subject),
    issuer: formatName(der, issuer),
    notBefore: parseTime(der, nb),
    notAfter: parseTime(der, na),
    basicConstraints: null,
    keyUsage: null,
    keyPurposes: null,
    publicKeyAlgorithm: decodeOid(der.subarray(algOid.start, algOid.end)),
  };
  const extWrap = f.slice(i + 6).find((t) => t.tag === 0xa3);
  const extSeq = extWrap !== undefined ? children(der, extWrap)[0] : undefined;
  for (const ext of extSeq !== undefined ? children(der, extSeq) : []) {
    const parts = children(der, ext);
    const oidT = parts[0];
    if (oidT === undefined || oidT.tag !== 0x06) throw bad('bad extension');
    const critical = parts[1]?.tag === 0x01 && der[parts[1].start] !== 0;
    const value = parts[parts.length - 1];
    if (value === undefined || value.tag !== 0x04) throw bad('bad extension value');
    const inner = readTlv(der, value.start, value.end);
    const oid = decodeOid(der.subarray(oidT.start, oidT.end));
    if (oid === '2.5.29.19') {
      const first = children(der, inner)[0];
      const ca = first !== undefined && first.tag === 0x01 && der[first.start] !== 0;
      facts.basicConstraints = { ca, critical };
    } else if (oid === '2.5.29.15') {
      // BIT STRING: unused-bits count, then the bits; only the first two bytes carry named bits.
      const b0 = inner.end > inner.start + 1 ? (der[inner.start + 1] as number) : 0;
      const b1 = inner.end > inner.start + 2 ? (der[inner.start + 2] as number) : 0;
      facts.keyUsage = { bits: b0 | (b1 << 8), critical };
    } else if (oid === '2.5.29.37') {
      const oids = children(der, inner).map((t) => decodeOid(der.subarray(t.start, t.end)));
      facts.keyPurposes = { oids, critical };
    }
  }
  return facts;
}

/** DER bodies of every certificate in a PEM text, in file order. */
export function pemCertificates(pem: string): Buffer[] {
  const out: Buffer[] = [];
  const re =
    /-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----([\s\S]*?)-----END (?:X509 |TRUSTED )?CERTIFICATE-----/g;
  for (const m of pem.matchAll(re)) out.push(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'));
  return out;
}
