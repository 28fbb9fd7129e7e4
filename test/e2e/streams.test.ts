// E2E: one client dying in the middle of a data stream must cost the others nothing. A virsh
// downloads a 200 MiB volume through the proxy into a FIFO the test stops reading, so the transfer
// stalls with data queued at every hop; another client keeps working through the same proxy, the
// first is SIGKILLed, and the proxy must stay up, serve on, and let go of the dead client's leg.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, openSync, closeSync, type ReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cleanupDirect, pythonJsonLines, sha256File, startClient, uniqueName } from './clients.js';
import { backendDir, directUri, startProxy, virsh, virshOk, type Proxy } from './harness.js';

const MiB = 1024 * 1024;
const BIG = 200 * MiB;
/** How much of the big download the test reads before it stops reading. */
const READ_BEFORE_STALL = 8 * MiB;

let proxy: Proxy;
let work: string;
const pool = uniqueName('spool');
let smallSha: string;

before(async () => {
  proxy = await startProxy();
  work = await mkdtemp(join(tmpdir(), 'vpe2e-streams-'));
  const poolDir = join(work, 'pool');
  // Set up straight against libvirtd: only the downloads under test go through the proxy.
  const direct = directUri('storage:///system');
  await virshOk(direct, 'pool-create-as', pool, 'dir', '--target', poolDir, '--build');
  // Sparse on disk, but a plain (non --sparse) download sends all 200 MiB as data.
  await virshOk(direct, 'vol-create-as', pool, 'big.raw', '200M', '--allocation', '0', '--format', 'raw');
  await virshOk(direct, 'vol-create-as', pool, 'small.raw', '4M', '--format', 'raw');
  const small = join(work, 'small.bin');
  await writeFile(small, randomBytes(4 * MiB));
  smallSha = await sha256File(small);
  await virshOk(direct, 'vol-upload', '--pool', pool, 'small.raw', small);
});

after(async () => {
  // A transient pool: destroying it is enough to forget it.
  await cleanupDirect('storage:///system', ['pool-destroy', pool]);
  await rm(work, { recursive: true, force: true });
});

/** Peer pids of libvirtd's current clients, from its admin socket (pids the proxy forwarded as identity). */
function backendClientPids(): number[] {
  const admin = `libvirtd:///system?socket=${backendDir()}/libvirt-admin-sock`;
  const run = (...args: string[]): string =>
    spawnSync('virt-admin', ['-q', '-c', admin, ...args], {
      encoding: 'utf8',
      env: { ...process.env, LC_ALL: 'C' },
    }).stdout;
  const ids = run('srv-clients-list', 'libvirtd')
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((id): id is string => id !== undefined && /^\d+$/.test(id));
  const pids: number[] = [];
  for (const id of ids) {
    // A client may leave between the listing and this call; its info is then simply missing.
    const m = /^unix_process_id\s*:\s*(\d+)$/m.exec(run('client-info', 'libvirtd', id));
    if (m?.[1] !== undefined) pids.push(Number(m[1]));
  }
  return pids;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const PY_DOWNLOAD = `
import hashlib, json, sys, libvirt
uri, pool, vol = sys.argv[1:4]
conn = libvirt.open(uri)
v = conn.storagePoolLookupByName(pool).storageVolLookupByName(vol)
st = conn.newStream(0)
v.download(st, 0, 0, 0)
h = hashlib.sha256()
n = 0
while True:
    chunk = st.recv(256 * 1024)
    if not chunk:
        break
    h.update(chunk)
    n += len(chunk)
st.finish()
print(json.dumps({"bytes": n, "sha256": h.hexdigest(),
                  "pool_listed": pool in [p.name() for p in conn.listAllStoragePools()]}))
conn.close()
`;

/** A second client's round of work through the proxy; asserts it all succeeded. */
async function otherClientWorks(label: string): Promise<void> {
  const qemu = proxy.uri('qemu:///system');
  const host = await virshOk(qemu, 'hostname');
  assert.equal(host, await virshOk(directUri('qemu:///system'), 'hostname'), label);
  await virshOk(qemu, 'list', '--all');
  const storage = proxy.uri('storage:///system');
  const down = join(work, `small-${label}.back`);
  await virshOk(storage, 'vol-download', '--pool', pool, 'small.raw', down);
  assert.equal(await sha256File(down), smallSha, `${label}: virsh download differs`);
  const [py] = await pythonJsonLines(PY_DOWNLOAD, [storage, pool, 'small.raw']);
  assert.deepEqual(py, { bytes: 4 * MiB, sha256: smallSha, pool_listed: true }, label);
}

test('a client SIGKILLed mid-download does not disturb another client of the same proxy', async () => {
  const fifo = join(work, 'big.fifo');
  const mk = spawnSync('mkfifo', [fifo]);
  assert.equal(mk.status, 0, String(mk.stderr));

  const storage = proxy.uri('storage:///system');
  const slow = startClient('/usr/bin/virsh', [
    '-q',
    '-c',
    storage,
    'vol-download',
    '--pool',
    pool,
    'big.raw',
    fifo,
  ]);
  const slowPid = slow.child.pid ?? -1;
  let reader: ReadStream | undefined;
  try {
    // Read until the transfer is well under way, then stop: virsh blocks writing the FIFO, stops
    // reading its socket, and the proxy's queues towards it fill.
    reader = createReadStream(fifo, { highWaterMark: 256 * 1024 });
    let got = 0;
    const r = reader;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got} bytes arrived within 30 s`)), 30_000);
      r.on('error', reject);
      r.on('data', (chunk) => {
        got += chunk.length;
        if (got >= READ_BEFORE_STALL) {
          r.pause();
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await new Promise((res) => setTimeout(res, 500));
    assert.ok(got < BIG, `the whole volume arrived (${got} bytes): nothing was stalled`);
    assert.equal(slow.child.exitCode, null, `the stalled virsh exited early:\n${slow.lines.join('\n')}`);
    // The stalled client holds a leg to libvirtd, opened with its identity.
    assert.ok(backendClientPids().includes(slowPid), `libvirtd has no client for virsh pid ${slowPid}`);

    await otherClientWorks('during');

    slow.child.kill('SIGKILL');
    const dead = await slow.done;
    assert.equal(dead.signal, 'SIGKILL');
    reader.destroy();

    await otherClientWorks('after');
    // The proxy hung up the dead client's leg to libvirtd.
    await waitFor(
      `libvirtd to drop the leg of virsh pid ${slowPid}`,
      () => !backendClientPids().includes(slowPid),
      10_000,
    );
  } finally {
    slow.child.kill('SIGKILL');
    await slow.done.catch(() => undefined);
    if (reader !== undefined && !reader.destroyed) reader.destroy();
    // If virsh never opened the FIFO, the reader's open is still blocked in a worker thread: open
    // the write end once to release it.
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // ENXIO: no reader is waiting, nothing to release.
    }
  }

  // The proxy survived, still serves, and logged no crash.
  assert.doesNotThrow(() => process.kill(proxy.pid, 0), 'the proxy process is gone');
  assert.equal((await virsh(proxy.uri('qemu:///system'), 'version')).code, 0);
  assert.doesNotMatch(
    proxy.stderr(),
    /\b(TypeError|RangeError|ReferenceError|AssertionError|ERR_[A-Z_]+|Uncaught|unhandled|FATAL)\b|^\s+at /m,
    `proxy stderr:\n${proxy.stderr()}`,
  );
});
