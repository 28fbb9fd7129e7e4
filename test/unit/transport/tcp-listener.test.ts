// TCP listeners as libvirt binds them: numeric ports or /etc/services names, one socket per
// address, wildcard = both families, a family that cannot bind skipped.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { CodedError } from '../../../src/protocol/coded-error.js';
import { listenAddresses, listenTcp, resolvePort } from '../../../src/transport/tcp-listener.js';

const SERVICES = `# comment
libvirt-tcp   16509/tcp   virt-tcp   # alias
libvirt-tls   16514/tcp
udponly       999/udp
`;

test('ports: numbers and service names', () => {
  assert.equal(resolvePort('16509', SERVICES), 16509);
  assert.equal(resolvePort('libvirt-tls', SERVICES), 16514);
  assert.equal(resolvePort('virt-tcp', SERVICES), 16509);
  assert.throws(() => resolvePort('udponly', SERVICES), CodedError);
  assert.throws(() => resolvePort('nope', SERVICES), /Servname not supported/);
  assert.throws(() => resolvePort('70000', SERVICES), CodedError);
});

test('addresses: wildcard is both families, literals stay as given', async () => {
  assert.deepEqual(await listenAddresses(null), [
    { address: '::', family: 6 },
    { address: '0.0.0.0', family: 4 },
  ]);
  assert.deepEqual(await listenAddresses('127.0.0.1'), [{ address: '127.0.0.1', family: 4 }]);
  assert.deepEqual(await listenAddresses('::1'), [{ address: '::1', family: 6 }]);
});

test('binds, sets the backlog, and reports a port in use', async () => {
  const [srv] = await listenTcp({ host: '127.0.0.1', port: '0', backlog: 5 });
  assert.ok(srv !== undefined);
  const port = (srv.address() as net.AddressInfo).port;
  await assert.rejects(
    listenTcp({ host: '127.0.0.1', port: String(port), backlog: 5 }),
    (e: unknown) => e instanceof CodedError && e.code === 'EBIND' && /Unable to bind to port/.test(e.message),
  );
  srv.close();
});

test('unset listen_addr: an IPv6 (v6-only) and an IPv4 wildcard socket on the same port', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const servers = await listenTcp({ host: null, port: String(port), backlog: 5 });
  try {
    assert.deepEqual(
      servers.map((s) => (s.address() as net.AddressInfo).address),
      ['::', '0.0.0.0'],
    );
    for (const host of ['::1', '127.0.0.1']) {
      await new Promise<void>((resolve, reject) => {
        const c = net.connect({ host, port }, () => {
          c.destroy();
          resolve();
        });
        c.once('error', reject);
      });
    }
  } finally {
    for (const s of servers) s.close();
  }
});

test('an IPv6 literal binds only that address', async () => {
  const [srv, ...rest] = await listenTcp({ host: '::1', port: '0', backlog: 5 });
  assert.equal(rest.length, 0);
  assert.equal((srv?.address() as net.AddressInfo).address, '::1');
  srv?.close();
});
