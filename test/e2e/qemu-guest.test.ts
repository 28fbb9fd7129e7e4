// E2E: a real QEMU guest through the proxy. A python3-libvirt client registers for domain
// lifecycle events and creates the tiny guest; virsh (another client of the same proxy) checks it
// runs, takes a screenshot (a download stream) and destroys it. The python client must have been
// told of both the start and the stop: events cross the proxy as unsolicited MESSAGE frames.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { cleanupDirect, startClient, virshLoudOk } from './clients.js';
import { guestName, tinyGuestXml } from './guest.js';
import { startProxy, virsh, virshOk, type Proxy } from './harness.js';

let proxy: Proxy;

before(async () => {
  proxy = await startProxy();
});

// Prints one JSON object per line: events as they arrive, "created" once the guest runs, "done"
// after STOPPED (or after 30 s without it). Event numbers are mapped to their libvirt names here,
// so the test never hard-codes enum values.
const PY_EVENTS = `
import json, sys, threading, time, libvirt
uri, xml = sys.argv[1], sys.argv[2]
def names(prefix, *suffixes):
    return {getattr(libvirt, prefix + s): s for s in suffixes if hasattr(libvirt, prefix + s)}
EVENTS = names("VIR_DOMAIN_EVENT_", "DEFINED", "UNDEFINED", "STARTED", "SUSPENDED", "RESUMED",
               "STOPPED", "SHUTDOWN", "PMSUSPENDED", "CRASHED")
STOPPED = names("VIR_DOMAIN_EVENT_STOPPED_", "SHUTDOWN", "DESTROYED", "CRASHED", "MIGRATED",
                "SAVED", "FAILED", "FROM_SNAPSHOT")
libvirt.virEventRegisterDefaultImpl()
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
conn = libvirt.open(uri)
stopped = threading.Event()
def on_lifecycle(conn, dom, event, detail, opaque):
    name = EVENTS.get(event, str(event))
    out = {"event": name, "domain": dom.name()}
    if name == "STOPPED":
        out["detail"] = STOPPED.get(detail, str(detail))
    print(json.dumps(out), flush=True)
    if name == "STOPPED":
        stopped.set()
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
dom = conn.createXML(xml, 0)
print(json.dumps({"created": dom.name(), "running": dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING}), flush=True)
print(json.dumps({"done": stopped.wait(30)}), flush=True)
conn.close()
`;

interface PyLine {
  event?: string;
  domain?: string;
  detail?: string;
  created?: string;
  running?: boolean;
  done?: boolean;
}

test('lifecycle events, dominfo and a screenshot of a running guest', async () => {
  const name = guestName('events');
  const uri = proxy.uri('qemu:///system');
  const py = startClient('/usr/bin/python3', ['-c', PY_EVENTS, uri, tinyGuestXml(name)]);
  try {
    const createdLine = await py.waitForLine((l) => l.includes('"created"'), 60_000);
    assert.deepEqual(JSON.parse(createdLine), { created: name, running: true });

    const info = await virshOk(uri, 'dominfo', name);
    assert.match(info, new RegExp(`^Name:\\s+${name}$`, 'm'));
    assert.match(info, /^State:\s+running$/m);
    assert.match(info, /^Persistent:\s+no$/m);

    const shot = join(proxy.dir, 'screen.img');
    const saved = await virshLoudOk(uri, 'screenshot', name, shot);
    assert.match(
      saved,
      new RegExp(`^Screenshot saved to ${shot}, with type of image/(png|x-portable-pixmap)$`, 'm'),
    );
    const image = await readFile(shot);
    const png = image.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const ppm = /^P6\s+\d+\s+\d+\s+\d+\s/.test(image.subarray(0, 32).toString('latin1'));
    assert.ok(png || ppm, `screenshot is neither PNG nor PPM: ${image.subarray(0, 16).toString('hex')}`);
    assert.ok(image.length > 100, `screenshot has only ${image.length} bytes`);
    await writeFile(shot, ''); // keep the proxy's temp dir small

    assert.match(await virshLoudOk(uri, 'destroy', name), new RegExp(`^Domain '${name}' destroyed$`, 'm'));
    // A transient guest is gone once destroyed.
    const gone = await virsh(uri, 'domstate', name);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, new RegExp(`failed to get domain '${name}'`));

    const result = await py.done;
    assert.equal(result.code, 0, `python failed:\n${result.stderr}${result.stdout}`);
    const lines = result.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as PyLine);
    assert.deepEqual(
      lines.at(-1),
      { done: true },
      `no STOPPED event reached the python client:\n${result.stdout}`,
    );
    const events = lines.filter((l) => l.event !== undefined);
    assert.ok(
      events.every((e) => e.domain === name),
      `events for another domain: ${JSON.stringify(events)}`,
    );
    const kinds = events.map((e) => e.event);
    assert.ok(kinds.includes('STARTED'), `no STARTED event: ${JSON.stringify(events)}`);
    const stopped = events.find((e) => e.event === 'STOPPED');
    assert.deepEqual(stopped, { event: 'STOPPED', domain: name, detail: 'DESTROYED' });
    assert.ok(
      kinds.indexOf('STARTED') < kinds.indexOf('STOPPED'),
      `events out of order: ${kinds.join(', ')}`,
    );
  } finally {
    py.child.kill('SIGKILL');
    await cleanupDirect('qemu:///system', ['destroy', name]);
  }
});
