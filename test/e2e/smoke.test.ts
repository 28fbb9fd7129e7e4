// Smoke tests: the proxy in front of the real libvirtd answers real virsh for the qemu driver just
// as libvirtd itself does. The harness stops the proxy when the file ends.
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { before, test } from 'node:test';
import { directUri, startProxy, virshOk, type Proxy } from './harness.js';

let proxy: Proxy;

before(async () => {
  proxy = await startProxy();
});

test('virsh version through the proxy reaches the QEMU driver', async () => {
  const out = await virshOk(proxy.uri('qemu:///system'), 'version');
  assert.match(out, /^Running hypervisor: QEMU \d+\.\d+\.\d+$/m);
});

test('virsh hostname through the proxy matches libvirtd answered directly', async () => {
  const viaProxy = (await virshOk(proxy.uri('qemu:///system'), 'hostname')).trim();
  const direct = (await virshOk(directUri('qemu:///system'), 'hostname')).trim();
  assert.equal(viaProxy, direct);
  // libvirt may return the canonical (dotted) name where os.hostname() has the short one.
  assert.equal(direct.split('.')[0], hostname().split('.')[0]);
});
