// Auth layer: where the server's x509 material comes from (libvirt's virnettlsconfig.c rules).
// Either key_file, cert_file and ca_file are all set (crl_file optional), or the default files
// are used: the system pki tree for root; for others ~/.pki/libvirt first, each missing piece
// (CA, CRL, the cert+key pair) then taken from the system tree.

import { existsSync } from 'node:fs';
import { CodedError } from '../protocol/coded-error.js';

export interface TlsFiles {
  caFile: string;
  /** null when there is none: a missing default CRL is simply skipped. */
  crlFile: string | null;
  certFile: string;
  keyFile: string;
}

export interface TlsFileSettings {
  key_file: string | null;
  cert_file: string | null;
  ca_file: string | null;
  crl_file: string | null;
}

export const SYSTEM_PKI = {
  caFile: '/etc/pki/CA/cacert.pem',
  crlFile: '/etc/pki/CA/cacrl.pem',
  certFile: '/etc/pki/libvirt/servercert.pem',
  keyFile: '/etc/pki/libvirt/private/serverkey.pem',
} as const;

function configError(msg: string): CodedError {
  return new CodedError('ETLSFILES', msg);
}

function missing(what: string, path: string): CodedError {
  return configError(`${what} '${path}' does not exist: No such file or directory`);
}

/**
 * The files to load. `home` is the daemon user's home directory (for ~/.pki/libvirt when not
 * privileged); `exists` is injectable for tests. Throws CodedError 'ETLSFILES' with libvirt's text.
 */
export function resolveTlsFiles(
  s: TlsFileSettings,
  privileged: boolean,
  home: string,
  exists: (p: string) => boolean = existsSync,
): TlsFiles {
  if (s.ca_file !== null || s.cert_file !== null || s.key_file !== null) {
    if (s.ca_file === null) throw configError('No CA certificate path set to match server key/cert');
    if (s.cert_file === null) throw configError('No server certificate path set to match server key');
    if (s.key_file === null) throw configError('No server key path set to match server cert');
    if (!exists(s.ca_file)) throw missing('CA certificate', s.ca_file);
    return {
      caFile: s.ca_file,
      crlFile: s.crl_file !== null && exists(s.crl_file) ? s.crl_file : null,
      certFile: s.cert_file,
      keyFile: s.key_file,
    };
  }
  let caFile: string | null = null;
  let crlFile: string | null = null;
  let certFile: string | null = null;
  let keyFile: string | null = null;
  if (!privileged) {
    const dir = `${home}/.pki/libvirt`;
    if (exists(`${dir}/cacert.pem`)) caFile = `${dir}/cacert.pem`;
    if (exists(`${dir}/cacrl.pem`)) crlFile = `${dir}/cacrl.pem`;
    const cert = `${dir}/servercert.pem`;
    const key = `${dir}/serverkey.pem`;
    if (exists(cert)) {
      if (!exists(key)) throw configError(`Key '${key}' does not exist, but certificate '${cert}' does`);
      certFile = cert;
      keyFile = key;
    } else if (exists(key)) {
      throw configError(`Certificate '${cert}' does not exist, but key '${key}' does`);
    }
  }
  if (caFile === null) {
    if (!exists(SYSTEM_PKI.caFile)) throw missing('CA certificate', SYSTEM_PKI.caFile);
    caFile = SYSTEM_PKI.caFile;
  }
  if (crlFile === null && exists(SYSTEM_PKI.crlFile)) crlFile = SYSTEM_PKI.crlFile;
  if (certFile === null || keyFile === null) {
    if (!exists(SYSTEM_PKI.certFile)) throw missing('Certificate', SYSTEM_PKI.certFile);
    if (!exists(SYSTEM_PKI.keyFile)) {
      throw configError(
        `Key '${SYSTEM_PKI.keyFile}' does not exist, but certificate '${SYSTEM_PKI.certFile}' does`,
      );
    }
    certFile = SYSTEM_PKI.certFile;
    keyFile = SYSTEM_PKI.keyFile;
  }
  return { caFile, crlFile, certFile, keyFile };
}
