// Tests of peer identity collection: the pure parsers on tricky input, the cached
// passwd/group table, and readPeerIdentity against real unix connections (this
// process and a child process).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, Socket as NetSocket, createConnection, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type NativeApi, native, socketFd } from '../../../src/native/native.js';
import {
  IdNameTable,
  type PeerIdentity,
  identityTypedParams,
  parseIdNameFile,
  parseProcStatStartTime,
  readPeerIdentity,
  readProcessStartTime,
} from '../../../src/native/peer-identity.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'vpd-identity-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A /proc/<pid>/stat line with the given command and start time (field 22). */
function statLine(pid: number, comm: string, startTime: string): string {
  const rest = ['S', '1', String(pid), String(pid), '0', '-1', '4194560', '100', '0', '0', '0', '5', '3'];
  rest.push('0', '0', '20', '0', '1', '0', startTime, '12345678', '456', '18446744073709551615');
  // Fields 3..25 are above; add the remaining ones a modern kernel prints.
  for (let field = 26; field <= 52; field++) rest.push(String(field * 7));
  return `${pid} (${comm}) ${rest.join(' ')}\n`;
}

describe('parseProcStatStartTime', () => {
  test('reads field 22 of an ordinary line', () => {
    assert.equal(parseProcStatStartTime(statLine(42, 'virtproxyd', '987654')), 987654n);
  });

  test('command names with spaces, parentheses and ")" do not shift the fields', () => {
    for (const comm of [
      'a b',
      'x) S 1 2 3',
      ') )',
      '(((',
      'evil) 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20',
    ]) {
      assert.equal(parseProcStatStartTime(statLine(7, comm, '31337')), 31337n, comm);
    }
  });

  test('values beyond 2^53 keep full precision', () => {
    assert.equal(parseProcStatStartTime(statLine(1, 'init', '18446744073709551615')), 18446744073709551615n);
  });

  test('any command name, property', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 15 }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (comm, start) => {
          assert.equal(parseProcStatStartTime(statLine(99, comm, start.toString())), start);
        },
      ),
    );
  });

  test('malformed lines give null', () => {
    assert.equal(parseProcStatStartTime(''), null);
    assert.equal(parseProcStatStartTime('12 no parenthesis S 1 2 3'), null);
    assert.equal(parseProcStatStartTime('12 (short) S 1 2 3\n'), null);
    assert.equal(parseProcStatStartTime(statLine(3, 'x', '-5')), null);
    assert.equal(parseProcStatStartTime(statLine(3, 'x', '12ab')), null);
  });

  test("this process's own stat file parses, and a vanished pid gives null", () => {
    const mine = readProcessStartTime(process.pid);
    assert.ok(mine !== null && mine > 0n);
    assert.equal(mine, parseProcStatStartTime(readFileSync('/proc/self/stat', 'latin1')));
    assert.equal(readProcessStartTime(0), null);
    assert.equal(readProcessStartTime(-1), null);
    assert.equal(readProcessStartTime(1, join(dir, 'no-proc-here')), null);
  });
});

describe('parseIdNameFile / IdNameTable', () => {
  test('maps the third field to the first, first entry winning', () => {
    const names = parseIdNameFile(
      [
        '# comment',
        'root:x:0:0:root:/root:/bin/bash',
        '',
        'daemon:x:1:1::/usr/sbin:/usr/sbin/nologin',
        'shadowed:x:0:0::/:/bin/sh',
        '+nisuser::::::',
        'broken:x:notanumber:5::/:/bin/sh',
        'short:x',
        'libvirt-qemu:x:64055:108:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin',
        'kvm:x:108:',
      ].join('\n'),
    );
    assert.deepEqual(
      [...names.entries()],
      [
        [0, 'root'],
        [1, 'daemon'],
        [64055, 'libvirt-qemu'],
        [108, 'kvm'],
      ],
    );
  });

  test('re-reads the file when it changes, and treats a missing file as empty', () => {
    const path = join(dir, 'passwd');
    writeFileSync(path, 'alice:x:1000:1000::/home/alice:/bin/sh\n');
    utimesSync(path, 1_000_000, 1_000_000);
    const table = new IdNameTable(path);
    assert.equal(table.lookup(1000), 'alice');
    assert.equal(table.lookup(1001), null);

    // Same size, new mtime: only the stat stamp can reveal the change.
    writeFileSync(path, 'bobby:x:1001:1000::/home/bobby:/bin/sh\n');
    utimesSync(path, 2_000_000, 2_000_000);
    assert.equal(table.lookup(1000), null);
    assert.equal(table.lookup(1001), 'bobby');

    rmSync(path);
    assert.equal(table.lookup(1001), null);
  });
});

async function listen(path: string): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

describe('readPeerIdentity', () => {
  test(
    'an in-process connection is this process, with names from the system',
    { timeout: 10_000 },
    async () => {
      const server = await listen(join(dir, 'self.sock'));
      const acceptedP = new Promise<Socket>((resolve) => server.once('connection', resolve));
      const client = createConnection(join(dir, 'self.sock'));
      const accepted = await acceptedP;
      try {
        const id = readPeerIdentity(accepted);
        assert.ok(id !== null);
        assert.equal(id.uid, process.getuid?.());
        assert.equal(id.gid, process.getgid?.());
        assert.equal(id.pid, process.pid);
        assert.equal(id.userName, userInfo().username);
        assert.equal(id.groupName, execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim());
        assert.equal(id.processTime, parseProcStatStartTime(readFileSync('/proc/self/stat', 'latin1')));
        assert.equal(id.selinuxContext, native().getPeerSecContext(socketFd(accepted) ?? -1));
      } finally {
        client.destroy();
        accepted.destroy();
        server.close();
      }
    },
  );

  test(
    'a child process peer is reported with its own pid and a later start time',
    { timeout: 10_000 },
    async () => {
      const path = join(dir, 'child.sock');
      const server = await listen(path);
      const acceptedP = new Promise<Socket>((resolve) => server.once('connection', resolve));
      const child = spawn(
        process.execPath,
        [
          '-e',
          "require('node:net').connect(process.argv[1]).resume().on('close', () => process.exit(0));",
          path,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      // A child that dies before connecting must fail the test, not leave it waiting.
      const accepted = await Promise.race([
        acceptedP,
        exited.then((code) => Promise.reject(new Error(`child exited early (${code}): ${stderr}`))),
      ]);
      try {
        const id = readPeerIdentity(accepted);
        assert.ok(id !== null);
        assert.equal(id.pid, child.pid);
        assert.notEqual(id.pid, process.pid);
        const mine = readProcessStartTime(process.pid);
        assert.ok(id.processTime !== null && mine !== null && id.processTime >= mine);
        assert.equal(id.processTime, readProcessStartTime(id.pid));
      } finally {
        accepted.destroy();
        server.close();
      }
      assert.equal(await exited, 0);
    },
  );

  test(
    'pid 0 from the kernel becomes -1 with no start time; unknown ids have no names',
    { timeout: 10_000 },
    async () => {
      const server = await listen(join(dir, 'fake.sock'));
      const acceptedP = new Promise<Socket>((resolve) => server.once('connection', resolve));
      const client = createConnection(join(dir, 'fake.sock'));
      const accepted = await acceptedP;
      const fake: NativeApi = {
        ...native(),
        getPeerCred: () => ({ uid: 4_000_000_001, gid: 4_000_000_002, pid: 0 }),
        getPeerSecContext: () => 'system_u:system_r:virt_t:s0',
      };
      try {
        assert.deepEqual(readPeerIdentity(accepted, fake), {
          uid: 4_000_000_001,
          gid: 4_000_000_002,
          pid: -1,
          userName: null,
          groupName: null,
          processTime: null,
          selinuxContext: 'system_u:system_r:virt_t:s0',
        });
      } finally {
        client.destroy();
        accepted.destroy();
        server.close();
      }
    },
  );

  test('TCP and unconnected sockets have no unix identity', { timeout: 10_000 }, async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const acceptedP = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const client = createConnection(port, '127.0.0.1');
    const accepted = await acceptedP;
    try {
      assert.equal(readPeerIdentity(accepted), null);
      assert.equal(readPeerIdentity(new NetSocket()), null);
    } finally {
      client.destroy();
      accepted.destroy();
      server.close();
    }
  });
});

describe('identityTypedParams', () => {
  const full: PeerIdentity = {
    uid: 107,
    gid: 36,
    pid: 4321,
    userName: 'qemu',
    groupName: 'kvm',
    processTime: 123456789n,
    selinuxContext: 'unconfined_u:unconfined_r:unconfined_t:s0',
  };

  test("lists the attributes in libvirt's order with libvirt's types", () => {
    assert.deepEqual(identityTypedParams(full), [
      { field: 'user-name', type: 7, value: 'qemu' },
      { field: 'unix-user-id', type: 4, value: 107n },
      { field: 'group-name', type: 7, value: 'kvm' },
      { field: 'unix-group-id', type: 4, value: 36n },
      { field: 'process-id', type: 3, value: 4321n },
      { field: 'process-time', type: 4, value: 123456789n },
      { field: 'selinux-context', type: 7, value: 'unconfined_u:unconfined_r:unconfined_t:s0' },
    ]);
  });

  test('absent attributes are left out, and pid -1 stays signed', () => {
    const params = identityTypedParams({
      ...full,
      pid: -1,
      userName: null,
      groupName: null,
      processTime: null,
      selinuxContext: null,
    });
    assert.deepEqual(params, [
      { field: 'unix-user-id', type: 4, value: 107n },
      { field: 'unix-group-id', type: 4, value: 36n },
      { field: 'process-id', type: 3, value: -1n },
    ]);
  });
});
