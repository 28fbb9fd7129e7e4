// E2E: test:///default through the proxy. The C virtproxyd cannot serve it (the test driver lives
// in libvirt.so and refuses the identity call); this proxy forwards it to the daemon named by the
// `test` entry of backend_sockets, which the harness sets. The test driver's state lives only as
// long as its connection, so each lifecycle runs within one client connection.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { pythonJsonLines, uniqueName, virshLoudOk } from './clients.js';
import { testDomainXml } from './guest.js';
import { directUri, startProxy, type Proxy } from './harness.js';

let proxy: Proxy;
let uri: string;

before(async () => {
  proxy = await startProxy();
  uri = proxy.uri('test:///default');
});

test('virsh: define, start, destroy, undefine in one connection', async () => {
  const name = uniqueName('td');
  const file = join(proxy.dir, `${name}.xml`);
  await writeFile(file, testDomainXml(name));
  const steps = [
    `define ${file}`,
    `domstate ${name}`,
    `start ${name}`,
    `domstate ${name}`,
    'list --all --name',
    `destroy ${name}`,
    `domstate ${name}`,
    `undefine ${name}`,
    'list --all --name',
  ];
  const out = await virshLoudOk(uri, steps.join(' ; '));
  // virsh ends each command's output with a blank line; split on those to get per-step output.
  const parts = out
    .trimEnd()
    .split(/\n\n+/)
    .map((p) => p.trim());
  assert.deepEqual(
    parts,
    [
      `Domain '${name}' defined from ${file}`,
      'shut off',
      `Domain '${name}' started`,
      'running',
      // Running domains by id: the driver's built-in 'test' (id 1), then ours.
      `test\n${name}`,
      `Domain '${name}' destroyed`,
      'shut off',
      `Domain '${name}' has been undefined`,
      'test',
    ],
    `virsh output:\n${out}`,
  );
});

const PY_LIFECYCLE = `
import json, sys, libvirt
uri, xml = sys.argv[1], sys.argv[2]
conn = libvirt.open(uri)
def emit(step, **kw):
    print(json.dumps(dict(step=step, **kw)), flush=True)
emit("open", type=conn.getType())
dom = conn.defineXML(xml)
emit("define", name=dom.name(), state=dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF, persistent=dom.isPersistent())
dom.create()
emit("start", running=dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING, active=dom.isActive(), id_positive=dom.ID() > 0)
emit("list", names=sorted(d.name() for d in conn.listAllDomains()))
dom.destroy()
emit("destroy", shutoff=dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF, active=dom.isActive())
dom.undefine()
try:
    conn.lookupByName(dom.name())
    emit("lookup", found=True)
except libvirt.libvirtError as e:
    emit("lookup", found=False, no_domain=e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN, msg=e.get_error_message())
emit("list", names=sorted(d.name() for d in conn.listAllDomains()))
conn.close()
`;

test('python3-libvirt: the same lifecycle in one script, as libvirtd answers it directly', async () => {
  const name = uniqueName('tdpy');
  const lines = await pythonJsonLines(PY_LIFECYCLE, [uri, testDomainXml(name)]);
  assert.deepEqual(lines, [
    { step: 'open', type: 'TEST' },
    { step: 'define', name, state: true, persistent: 1 },
    { step: 'start', running: true, active: 1, id_positive: true },
    { step: 'list', names: ['test', name].sort() },
    { step: 'destroy', shutoff: true, active: 0 },
    {
      step: 'lookup',
      found: false,
      no_domain: true,
      msg: 'Domain not found',
    },
    { step: 'list', names: ['test'] },
  ]);
  // The same script straight at libvirtd prints the same, bar the domain name.
  const directName = uniqueName('tdpy');
  const direct = await pythonJsonLines(PY_LIFECYCLE, [
    directUri('test:///default'),
    testDomainXml(directName),
  ]);
  assert.equal(JSON.stringify(direct).replaceAll(directName, name), JSON.stringify(lines));
});
