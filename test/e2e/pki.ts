// Test support: a throw-away x509 PKI made with GnuTLS's certtool at test time: CAs, a server
// certificate for 127.0.0.1/localhost, client certificates, CRLs, and libvirt-style pkipath
// directories (cacert.pem, clientcert.pem, clientkey.pem) for virsh's `pkipath=` URI parameter.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Issued {
  cert: string;
  key: string;
}

function certtool(args: string[]): void {
  const r = spawnSync('certtool', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`certtool ${args.join(' ')} failed: ${r.stderr}`);
}

let serial = 1;

export class TestPki {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private key(name: string): string {
    const path = join(this.dir, `${name}-key.pem`);
    certtool(['--generate-privkey', '--key-type=rsa', '--bits=2048', '--outfile', path]);
    return path;
  }

  private template(name: string, lines: string[]): string {
    const path = join(this.dir, `${name}.info`);
    writeFileSync(path, [...lines, `serial = ${serial++}`, 'expiration_days = 2', ''].join('\n'));
    return path;
  }

  /** A self-signed CA. */
  ca(name: string, cn = `Test CA ${name}`): Issued {
    const key = this.key(name);
    const cert = join(this.dir, `${name}-cert.pem`);
    const t = this.template(name, [`cn = "${cn}"`, 'ca', 'cert_signing_key', 'crl_signing_key']);
    certtool(['--generate-self-signed', '--load-privkey', key, '--template', t, '--outfile', cert]);
    return { cert, key };
  }

  /** A certificate issued by `ca`; `lines` are extra certtool template lines (dn, usage). */
  issue(ca: Issued, name: string, lines: string[]): Issued {
    const key = this.key(name);
    const cert = join(this.dir, `${name}-cert.pem`);
    const t = this.template(name, lines);
    certtool([
      '--generate-certificate',
      '--load-privkey',
      key,
      '--load-ca-certificate',
      ca.cert,
      '--load-ca-privkey',
      ca.key,
      '--template',
      t,
      '--outfile',
      cert,
    ]);
    return { cert, key };
  }

  server(ca: Issued, name = 'server'): Issued {
    return this.issue(ca, name, [
      'organization = "Test Org"',
      'cn = "localhost"',
      'ip_address = "127.0.0.1"',
      'dns_name = "localhost"',
      'tls_www_server',
      'encryption_key',
      'signing_key',
    ]);
  }

  /** A client certificate with DN C=GB,O=<org>,CN=<cn> (in that encoding order). */
  client(ca: Issued, name: string, cn: string, org = 'Test Org'): Issued {
    return this.issue(ca, name, [
      'country = "GB"',
      `organization = "${org}"`,
      `cn = "${cn}"`,
      'tls_www_client',
      'encryption_key',
      'signing_key',
    ]);
  }

  /** A CRL by `ca` revoking `revoked` (may be empty). */
  crl(ca: Issued, name: string, revoked: Issued[]): string {
    const out = join(this.dir, `${name}-crl.pem`);
    const t = join(this.dir, `${name}-crl.info`);
    writeFileSync(t, 'crl_next_update = 2\ncrl_number = 1\n');
    const args = [
      '--generate-crl',
      '--load-ca-privkey',
      ca.key,
      '--load-ca-certificate',
      ca.cert,
      '--template',
      t,
      '--outfile',
      out,
    ];
    if (revoked.length > 0) {
      const list = join(this.dir, `${name}-revoked.pem`);
      writeFileSync(list, revoked.map((r) => readFileSync(r.cert, 'utf8')).join(''));
      args.push('--load-certificate', list);
    }
    certtool(args);
    return out;
  }

  /** A pkipath directory for libvirt clients: CA bundle, and optionally a client cert and key. */
  clientDir(name: string, cas: Issued[], client: Issued | null): string {
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cacert.pem'), cas.map((c) => readFileSync(c.cert, 'utf8')).join(''));
    if (client !== null) {
      writeFileSync(join(dir, 'clientcert.pem'), readFileSync(client.cert));
      writeFileSync(join(dir, 'clientkey.pem'), readFileSync(client.key), { mode: 0o600 });
    }
    return dir;
  }
}
