// E2E: what real clients see when the proxy says no. The read-only socket allows queries but not
// changes (libvirtd's own check, relayed); an unknown driver names the daemon socket it could not
// reach; test:///default without a `test` backend mapping fails the way the C virtproxyd does.
// Error codes are compared as python3-libvirt reports them.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cleanupDirect, pythonJsonLines, uniqueBridge, uniqueName } from './clients.js';
import { backendDir, directUri, startProxy, virsh, virshOk, type Proxy } from './harness.js';

let proxy: Proxy;
/** A proxy whose config maps no driver to an explicit socket: test:///default is then refused. */
let bare: Proxy;
const netName = uniqueName('ronet');

before(async () => {
  [proxy, bare] = await Promise.all([startProxy(), startProxy({ conf: { backend_sockets: [] } })]);
});

after(async () => {
  // Only reached if the read-only check failed to stop the definition.
  await cleanupDirect('network:///system', ['net-undefine', netName]);
});

/** Opens each URI with python3-libvirt and reports the error (or success) as a JSON line. */
const PY_OPEN = `
import json, sys, libvirt
libvirt.registerErrorHandler(lambda ctx, err: None, None)
for uri in sys.argv[1:]:
    try:
        conn = libvirt.open(uri)
        print(json.dumps({"ok": True, "type": conn.getType()}))
        conn.close()
    except libvirt.libvirtError as e:
        print(json.dumps({"ok": False, "code": e.get_error_code(), "domain": e.get_error_domain(),
                          "message": e.get_error_message(),
                          "SYSTEM_ERROR": libvirt.VIR_ERR_SYSTEM_ERROR,
                          "NO_SUPPORT": libvirt.VIR_ERR_NO_SUPPORT,
                          "FROM_RPC": libvirt.VIR_FROM_RPC,
                          "FROM_DOMAIN": libvirt.VIR_FROM_DOMAIN}))
`;

test('read-only socket: virsh list works, net-define is refused by libvirtd', async () => {
  const ro = proxy.uri('qemu:///system', true);
  const listed = await virsh(ro, 'list', '--all', '--name');
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal(listed.stderr, '');
  // Queries reach libvirtd: the read-only leg answers as libvirtd's read-only socket does.
  assert.equal(await virshOk(ro, 'hostname'), await virshOk(directUri('qemu:///system', true), 'hostname'));

  const file = join(proxy.dir, 'ro-net.xml');
  await writeFile(file, `<network><name>${netName}</name><bridge name='${uniqueBridge()}'/></network>\n`);
  const refused = await virsh(ro, 'net-define', file);
  assert.notEqual(refused.code, 0, `net-define succeeded on the read-only socket:\n${refused.stdout}`);
  assert.match(refused.stderr, /operation forbidden: read only access prevents virNetworkDefineXML/);
  const nets = await virshOk(directUri('network:///system'), 'net-list', '--all', '--name');
  assert.ok(!nets.split('\n').includes(netName), 'the network was defined despite the read-only socket');
});

test('read-only socket: python sees VIR_ERR_OPERATION_DENIED for a secret definition', async () => {
  const script = `
import json, sys, libvirt
libvirt.registerErrorHandler(lambda ctx, err: None, None)
conn = libvirt.open(sys.argv[1])
try:
    conn.secretDefineXML(sys.argv[2], 0)
    print(json.dumps({"ok": True}))
except libvirt.libvirtError as e:
    print(json.dumps({"ok": False, "denied": e.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED,
                      "message": e.get_error_message()}))
print(json.dumps({"can_list": isinstance(conn.listAllSecrets(), list)}))
`;
  const uuid = randomUUID();
  const xml = `<secret ephemeral='yes' private='yes'><uuid>${uuid}</uuid></secret>`;
  try {
    assert.deepEqual(await pythonJsonLines(script, [proxy.uri('secret:///system', true), xml]), [
      {
        ok: false,
        denied: true,
        message: 'operation forbidden: read only access prevents virSecretDefineXML',
      },
      { can_list: true },
    ]);
  } finally {
    await cleanupDirect('secret:///system', ['secret-undefine', uuid]);
  }
});

test('an unknown driver fails with the daemon socket it could not reach', async () => {
  const sock = `${backendDir()}/virtfood-sock`;
  const r = await virsh(proxy.uri('foo:///system'), 'list');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /failed to connect to the hypervisor/);
  assert.ok(
    r.stderr.includes(`Failed to connect socket to '${sock}': No such file or directory`),
    `unexpected stderr:\n${r.stderr}`,
  );

  const [res] = await pythonJsonLines(PY_OPEN, [proxy.uri('foo:///system')]);
  assert.deepEqual(res, {
    ok: false,
    code: 38,
    domain: 7,
    message: `Failed to connect socket to '${sock}': No such file or directory`,
    SYSTEM_ERROR: 38,
    NO_SUPPORT: 3,
    FROM_RPC: 7,
    FROM_DOMAIN: 20,
  });
});

test('test:///default without a backend mapping fails as the C virtproxyd does', async () => {
  const msg = 'this function is not supported by the connection driver: virConnectSetIdentity';
  const r = await virsh(bare.uri('test:///default'), 'list');
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes(msg), `unexpected stderr:\n${r.stderr}`);

  const [res, mapped] = await pythonJsonLines(PY_OPEN, [
    bare.uri('test:///default'),
    proxy.uri('test:///default'),
  ]);
  // VIR_ERR_NO_SUPPORT from VIR_FROM_DOMAIN, as libvirt's public API reports an unimplemented call.
  assert.deepEqual(res, {
    ok: false,
    code: 3,
    domain: 20,
    message: msg,
    SYSTEM_ERROR: 38,
    NO_SUPPORT: 3,
    FROM_RPC: 7,
    FROM_DOMAIN: 20,
  });
  // The proxy with the mapping serves the same URI.
  assert.deepEqual(mapped, { ok: true, type: 'TEST' });
  // And the failure is the proxy's alone: both proxies are still up and serving.
  assert.match(await virshOk(bare.uri('qemu:///system'), 'version'), /Running hypervisor: QEMU/);
});
