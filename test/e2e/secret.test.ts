// E2E: the secret driver through the proxy via secret:///system. A non-private ceph secret with a
// unique usage name is defined, given a value (virsh, base64 from a file), read back by virsh and
// by python3-libvirt (raw bytes), then undefined; libvirtd is asked directly that it is gone.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cleanupDirect, pythonJsonLines, uniqueName, virshLoudOk } from './clients.js';
import { directUri, startProxy, virsh, virshOk, type Proxy } from './harness.js';

let proxy: Proxy;
let uri: string;
const uuid = randomUUID();
const usage = uniqueName('secret');
const value = randomBytes(32);

before(async () => {
  proxy = await startProxy();
  uri = proxy.uri('secret:///system');
});

after(async () => {
  await cleanupDirect('secret:///system', ['secret-undefine', uuid]);
});

const READ_BACK = `
import json, sys, base64, libvirt
conn = libvirt.open(sys.argv[1])
sec = conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_CEPH, sys.argv[2])
print(json.dumps({"uuid": sec.UUIDString(), "usage": sec.usageID(),
                  "value": base64.b64encode(sec.value()).decode()}))
conn.close()
`;

test('secret-define, set-value, get-value and undefine through secret:///system', async () => {
  const xmlFile = join(proxy.dir, 'secret.xml');
  await writeFile(
    xmlFile,
    `<secret ephemeral='no' private='no'>\n  <uuid>${uuid}</uuid>\n  <usage type='ceph'>\n    <name>${usage}</name>\n  </usage>\n</secret>\n`,
  );
  assert.match(await virshLoudOk(uri, 'secret-define', xmlFile), new RegExp(`^Secret ${uuid} created$`, 'm'));

  const listed = await virshOk(uri, 'secret-list');
  assert.match(listed, new RegExp(`^\\s*${uuid}\\s+ceph ${usage}\\s*$`, 'm'));

  // From a file: virsh refuses a secret value on its command line.
  const valueFile = join(proxy.dir, 'secret.b64');
  await writeFile(valueFile, value.toString('base64'));
  assert.match(await virshLoudOk(uri, 'secret-set-value', uuid, '--file', valueFile), /^Secret value set$/m);

  assert.equal((await virshOk(uri, 'secret-get-value', uuid)).trim(), value.toString('base64'));
  assert.deepEqual(await pythonJsonLines(READ_BACK, [uri, usage]), [
    { uuid, usage, value: value.toString('base64') },
  ]);
  // The value lives in libvirtd.
  assert.equal(
    (await virshOk(directUri('secret:///system'), 'secret-get-value', uuid)).trim(),
    value.toString('base64'),
  );

  assert.match(await virshLoudOk(uri, 'secret-undefine', uuid), new RegExp(`^Secret ${uuid} deleted$`, 'm'));
  assert.doesNotMatch(await virshOk(uri, 'secret-list'), new RegExp(uuid));
  const direct = await virsh(directUri('secret:///system'), 'secret-dumpxml', uuid);
  assert.notEqual(direct.code, 0);
  assert.match(direct.stderr, new RegExp(`Secret not found: no secret with matching uuid '${uuid}'`));
});
