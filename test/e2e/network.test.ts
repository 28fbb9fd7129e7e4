// E2E: the network driver through the proxy. A persistent, isolated network (no forward, no DHCP,
// never started) is defined, read back, listed and undefined by real virsh, once via
// network:///system (routed to virtnetworkd's socket) and once via qemu:///system (whose daemon
// serves network calls too); libvirtd is asked directly that it is gone.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cleanupDirect, uniqueBridge, uniqueName, virshLoudOk } from './clients.js';
import { directUri, startProxy, virsh, virshOk, type Proxy } from './harness.js';

let proxy: Proxy;
const created: string[] = [];

before(async () => {
  proxy = await startProxy();
});

after(async () => {
  for (const name of created) await cleanupDirect('network:///system', ['net-undefine', name]);
});

async function defineAndUndefine(driverUri: string): Promise<void> {
  const uri = proxy.uri(driverUri);
  const name = uniqueName('net');
  const uuid = randomUUID();
  const bridge = uniqueBridge();
  const file = join(proxy.dir, `${name}.xml`);
  await writeFile(
    file,
    `<network>\n  <name>${name}</name>\n  <uuid>${uuid}</uuid>\n  <bridge name='${bridge}'/>\n</network>\n`,
  );
  created.push(name);

  const defined = await virshLoudOk(uri, 'net-define', file);
  assert.match(defined, new RegExp(`^Network ${name} defined from ${file}$`, 'm'));

  const xml = await virshOk(uri, 'net-dumpxml', name);
  assert.match(xml, new RegExp(`<name>${name}</name>`));
  assert.match(xml, new RegExp(`<uuid>${uuid}</uuid>`));
  assert.match(xml, new RegExp(`<bridge name='${bridge}'`));
  assert.doesNotMatch(xml, /<forward/, 'an isolated network has no <forward>');

  assert.equal((await virshOk(uri, 'net-uuid', name)).trim(), uuid);
  // The definition reached the real daemon, not some state inside the proxy.
  assert.equal((await virshOk(directUri('network:///system'), 'net-uuid', name)).trim(), uuid);
  const listed = await virshOk(uri, 'net-list', '--all');
  const row = listed.split('\n').find((l) => l.trim().split(/\s+/)[0] === name);
  assert.ok(row !== undefined, `net-list --all lacks ${name}:\n${listed}`);
  // Name, state, autostart, persistent.
  assert.deepEqual(row.trim().split(/\s+/), [name, 'inactive', 'no', 'yes']);

  const undefined_ = await virshLoudOk(uri, 'net-undefine', name);
  assert.match(undefined_, new RegExp(`^Network ${name} has been undefined$`, 'm'));

  const after_ = await virshOk(uri, 'net-list', '--all', '--name');
  assert.ok(!after_.split('\n').includes(name), `${name} still listed through the proxy:\n${after_}`);
  const direct = await virsh(directUri('network:///system'), 'net-info', name);
  assert.notEqual(direct.code, 0, `libvirtd still knows ${name}:\n${direct.stdout}`);
  assert.match(direct.stderr, new RegExp(`Network not found: no network with matching name '${name}'`));
  created.splice(created.indexOf(name), 1);
}

test('net-define / dumpxml / list / undefine through network:///system', async () => {
  await defineAndUndefine('network:///system');
});

test('net-define / dumpxml / list / undefine through qemu:///system', async () => {
  await defineAndUndefine('qemu:///system');
});
