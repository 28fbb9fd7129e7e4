// E2E: the storage driver and data streams through the proxy. A `dir` pool in a temp dir is
// defined via storage:///system; a 24 MiB random file goes up with vol-upload and back with
// vol-download (STREAM frames both ways), and a file with holes makes a --sparse round trip
// (STREAM_HOLE frames), which must come back equal and still sparse.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, open, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cleanupDirect, sha256File, uniqueName, virshLoudOk } from './clients.js';
import { directUri, startProxy, virshOk, type Proxy } from './harness.js';

const MiB = 1024 * 1024;

let proxy: Proxy;
let uri: string;
let work: string;
let poolDir: string;
const pool = uniqueName('pool');

before(async () => {
  proxy = await startProxy();
  uri = proxy.uri('storage:///system');
  work = await mkdtemp(join(tmpdir(), 'vpe2e-storage-'));
  poolDir = join(work, 'pool');
  // libvirtd runs as root here, but keep the pool dir usable whoever it runs as.
  await chmod(work, 0o755);
});

after(async () => {
  await cleanupDirect('storage:///system', ['pool-destroy', pool], ['pool-undefine', pool]);
  await rm(work, { recursive: true, force: true });
});

test('define, build and start a dir pool', async () => {
  const defined = await virshLoudOk(uri, 'pool-define-as', pool, 'dir', '--target', poolDir);
  assert.match(defined, new RegExp(`^Pool ${pool} defined$`, 'm'));
  assert.match(await virshLoudOk(uri, 'pool-build', pool), new RegExp(`^Pool ${pool} built$`, 'm'));
  assert.match(await virshLoudOk(uri, 'pool-start', pool), new RegExp(`^Pool ${pool} started$`, 'm'));
  const info = await virshOk(uri, 'pool-info', pool);
  assert.match(info, /^State:\s+running$/m);
  assert.match(info, /^Persistent:\s+yes$/m);
  const xml = await virshOk(uri, 'pool-dumpxml', pool);
  assert.match(xml, new RegExp(`<path>${poolDir}</path>`));
});

test('vol-upload then vol-download of 24 MiB of random data keeps every byte', async () => {
  const src = join(work, 'random.bin');
  const back = join(work, 'random.back');
  await writeFile(src, randomBytes(24 * MiB));
  const want = await sha256File(src);

  const made = await virshLoudOk(uri, 'vol-create-as', pool, 'random.raw', '24M', '--format', 'raw');
  assert.match(made, /^Vol random\.raw created$/m);
  await virshOk(uri, 'vol-upload', '--pool', pool, 'random.raw', src);
  // What landed in the pool, read without libvirt in between.
  assert.equal(await sha256File(join(poolDir, 'random.raw')), want);
  await virshOk(uri, 'vol-download', '--pool', pool, 'random.raw', back);
  assert.equal((await stat(back)).size, 24 * MiB);
  assert.equal(await sha256File(back), want);
});

/** Bytes the filesystem has actually allocated for a file. */
async function allocated(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

test('vol-upload --sparse and vol-download --sparse keep the contents and the holes', async (t) => {
  const size = 64 * MiB;
  const src = join(work, 'sparse.bin');
  const back = join(work, 'sparse.back');
  await writeFile(src, '');
  await truncate(src, size);
  const fh = await open(src, 'r+');
  try {
    // Data at the start, in the middle, and at the very end; holes between.
    for (const [off, len] of [
      [0, MiB],
      [20 * MiB + 4096, 3 * 4096],
      [50 * MiB, MiB],
      [size - 4096, 4096],
    ] as const) {
      await fh.write(randomBytes(len), 0, len, off);
    }
  } finally {
    await fh.close();
  }
  const want = await sha256File(src);
  const srcSparse = (await allocated(src)) < size / 4;

  // --allocation 0: otherwise libvirt preallocates the volume and it has no holes to report.
  await virshOk(uri, 'vol-create-as', pool, 'sparse.raw', '64M', '--allocation', '0', '--format', 'raw');
  await virshOk(uri, 'vol-upload', '--sparse', '--pool', pool, 'sparse.raw', src);
  const inPool = join(poolDir, 'sparse.raw');
  assert.equal((await stat(inPool)).size, size);
  assert.equal(await sha256File(inPool), want);
  await virshOk(uri, 'vol-download', '--sparse', '--pool', pool, 'sparse.raw', back);
  assert.equal((await stat(back)).size, size);
  assert.equal(await sha256File(back), want);

  if (!srcSparse) {
    t.diagnostic(`the filesystem under ${work} does not keep holes; checked contents only`);
    return;
  }
  // Holes crossed the proxy as holes: had they arrived as zero-filled data, the files would be
  // fully allocated.
  assert.ok(
    (await allocated(inPool)) < size / 4,
    `pool volume allocated ${await allocated(inPool)} of ${size}`,
  );
  assert.ok((await allocated(back)) < size / 4, `download allocated ${await allocated(back)} of ${size}`);
});

test('destroy and undefine the pool', async () => {
  await virshOk(uri, 'vol-delete', '--pool', pool, 'random.raw');
  await virshOk(uri, 'vol-delete', '--pool', pool, 'sparse.raw');
  assert.match(await virshLoudOk(uri, 'pool-destroy', pool), new RegExp(`^Pool ${pool} destroyed$`, 'm'));
  assert.match(
    await virshLoudOk(uri, 'pool-undefine', pool),
    new RegExp(`^Pool ${pool} has been undefined$`, 'm'),
  );
  const listed = await virshOk(uri, 'pool-list', '--all', '--name');
  assert.ok(!listed.split('\n').includes(pool), `${pool} still listed:\n${listed}`);
  const direct = await virshOk(directUri('storage:///system'), 'pool-list', '--all', '--name');
  assert.ok(!direct.split('\n').includes(pool), `libvirtd still knows ${pool}:\n${direct}`);
});
