// Tests of the native addon through its typed wrapper: real sockets, pipes and
// datagrams, checking what the kernel actually delivered.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { type Server, type Socket, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { addonPath, native, nativeTestHelpers, socketFd } from '../../../src/native/native.js';

const api = native();
const helpers = nativeTestHelpers();

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'vpd-native-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

/** Whether O_CLOEXEC is set on one of this process's fds, read from /proc/self/fdinfo. */
function isCloseOnExec(fd: number): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  assert.ok(flags !== undefined);
  return (parseInt(flags, 8) & 0o2000000) !== 0;
}

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

async function connectedPair(path: string): Promise<{ server: Server; accepted: Socket; client: Socket }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const acceptedP = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = createConnection(path);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  return { server, accepted: await acceptedP, client };
}

describe('getPeerCred / getPeerSecContext', () => {
  test('an in-process unix connection reports this process on both ends', { timeout: 10_000 }, async () => {
    const { server, accepted, client } = await connectedPair(join(dir, 'cred.sock'));
    try {
      for (const sock of [accepted, client]) {
        const fd = socketFd(sock);
        assert.ok(fd !== null);
        assert.deepEqual(api.getPeerCred(fd), {
          uid: process.getuid?.(),
          gid: process.getgid?.(),
          pid: process.pid,
        });
      }
    } finally {
      client.destroy();
      accepted.destroy();
      server.close();
    }
  });

  test('a socketPair reports this process', () => {
    const [a, b] = api.socketPair();
    try {
      assert.equal(api.getPeerCred(b).pid, process.pid);
      assert.ok(isCloseOnExec(a) && isCloseOnExec(b));
      const label = api.getPeerSecContext(a);
      // Depends on the host's security module; either no label or a real one.
      assert.ok(label === null || (typeof label === 'string' && label.length > 0 && !label.includes('\0')));
    } finally {
      api.closeFd(a);
      api.closeFd(b);
    }
  });

  test('a non-socket fd is an ENOTSOCK error, not "no credentials"', () => {
    const [r, w] = helpers.testPipe();
    try {
      assert.equal(
        codeOf(() => api.getPeerCred(r)),
        'ENOTSOCK',
      );
      assert.equal(
        codeOf(() => api.getPeerSecContext(r)),
        'ENOTSOCK',
      );
    } finally {
      api.closeFd(r);
      api.closeFd(w);
    }
  });

  test('errors look like Node system errors; bad arguments are TypeErrors', () => {
    const [r, w] = helpers.testPipe();
    api.closeFd(r);
    api.closeFd(w);
    assert.throws(() => api.closeFd(r), { code: 'EBADF', syscall: 'close', errno: -9 });
    assert.throws(() => api.getPeerCred(-1), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => api.getPeerCred(1.5), TypeError);
    assert.throws(() => api.sdNotify(1 as unknown as string, 'x'), TypeError);
  });
});

describe('sendFd / recvFd', () => {
  test("a pipe's write end travels over a socketPair and still writes into that pipe", () => {
    const [a, b] = api.socketPair();
    const [r, w] = helpers.testPipe();
    try {
      assert.equal(api.sendFd(a, w), true);
      const got = api.recvFd(b);
      assert.ok(got !== null);
      assert.notEqual(got, w);
      assert.ok(isCloseOnExec(got), 'received fd must be close-on-exec');
      api.closeFd(w);
      writeSync(got, 'through the passed fd');
      api.closeFd(got);
      const buf = Buffer.alloc(64);
      assert.equal(buf.toString('utf8', 0, readSync(r, buf)), 'through the passed fd');
      // The received fd was the last write end: the pipe now reads EOF.
      assert.equal(readSync(r, buf), 0);
      // Exactly one byte per fd was consumed: nothing else is waiting.
      assert.equal(api.recvFd(b), null);
    } finally {
      api.closeFd(r);
      api.closeFd(a);
      api.closeFd(b);
    }
  });

  test('recvFd with nothing queued returns null; after the peer closes it throws EOF', () => {
    const [a, b] = api.socketPair();
    assert.equal(api.recvFd(b), null);
    api.closeFd(a);
    assert.equal(
      codeOf(() => api.recvFd(b)),
      'EOF',
    );
    api.closeFd(b);
  });

  test('a data byte without an fd is EBADMSG', () => {
    const [a, b] = api.socketPair();
    try {
      writeSync(a, Buffer.from([0]));
      assert.equal(
        codeOf(() => api.recvFd(b)),
        'EBADMSG',
      );
    } finally {
      api.closeFd(a);
      api.closeFd(b);
    }
  });

  for (const count of [2, 3]) {
    test(`a message carrying ${count} fds is EBADMSG and leaks none of them`, () => {
      const [a, b] = api.socketPair();
      const [r, w] = helpers.testPipe();
      try {
        helpers.testSendFds(a, count === 2 ? [r, w] : [r, w, r]);
        const before = openFdCount();
        assert.equal(
          codeOf(() => api.recvFd(b)),
          'EBADMSG',
        );
        assert.equal(openFdCount(), before);
      } finally {
        for (const fd of [a, b, r, w]) api.closeFd(fd);
      }
    });
  }

  test('sendFd returns false once the socket buffer is full, and every sent fd arrives', () => {
    const [a, b] = api.socketPair();
    const [r, w] = helpers.testPipe();
    try {
      let sent = 0;
      while (api.sendFd(a, w)) {
        sent++;
        assert.ok(sent < 100_000, 'socket never filled up');
      }
      assert.ok(sent > 0);
      let received = 0;
      for (let fd = api.recvFd(b); fd !== null; fd = api.recvFd(b)) {
        api.closeFd(fd);
        received++;
      }
      assert.equal(received, sent);
    } finally {
      for (const fd of [a, b, r, w]) api.closeFd(fd);
    }
  });

  test('sendFd to a closed peer throws EPIPE (no SIGPIPE)', () => {
    const [a, b] = api.socketPair();
    const [r, w] = helpers.testPipe();
    api.closeFd(b);
    try {
      assert.equal(
        codeOf(() => api.sendFd(a, w)),
        'EPIPE',
      );
    } finally {
      for (const fd of [a, r, w]) api.closeFd(fd);
    }
  });
});

describe('sdNotify', () => {
  test('delivers one datagram to a socket path', () => {
    const path = join(dir, 'notify.sock');
    const receiver = helpers.testBindDgram(path);
    try {
      api.sdNotify(path, 'READY=1');
      api.sdNotify(path, 'STOPPING=1\nEXTEND_TIMEOUT_USEC=30000000');
      assert.equal(helpers.testRecvDgram(receiver), 'READY=1');
      assert.equal(helpers.testRecvDgram(receiver), 'STOPPING=1\nEXTEND_TIMEOUT_USEC=30000000');
      assert.equal(helpers.testRecvDgram(receiver), null);
    } finally {
      api.closeFd(receiver);
    }
  });

  test("a leading '@' addresses the abstract namespace", () => {
    const name = `@virtproxyd-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const receiver = helpers.testBindDgram(name);
    try {
      api.sdNotify(name, 'RELOADING=1');
      assert.equal(helpers.testRecvDgram(receiver), 'RELOADING=1');
      // The abstract name is not a file: the same spelling without '@' is a different address.
      assert.equal(
        codeOf(() => api.sdNotify(`/${name.slice(1)}`, 'x')),
        'ENOENT',
      );
    } finally {
      api.closeFd(receiver);
    }
  });

  test('bad addresses are coded errors', () => {
    assert.equal(
      codeOf(() => api.sdNotify(join(dir, 'nobody-here.sock'), 'READY=1')),
      'ENOENT',
    );
    assert.equal(
      codeOf(() => api.sdNotify('relative.sock', 'READY=1')),
      'EINVAL',
    );
    assert.equal(
      codeOf(() => api.sdNotify('', 'READY=1')),
      'EINVAL',
    );
    assert.equal(
      codeOf(() => api.sdNotify(`/${'x'.repeat(200)}`, 'READY=1')),
      'ENAMETOOLONG',
    );
  });
});

describe('lockFile', () => {
  /** Whether a separate process can take the lock, asked through the same addon. */
  function otherProcessCanLock(path: string): boolean {
    const script = [
      "const fd = require('node:fs').openSync(process.argv[2], 'r+');",
      'process.stdout.write(String(require(process.argv[1]).lockFile(fd)));',
    ].join(' ');
    return execFileSync(process.execPath, ['-e', script, addonPath(), path], { encoding: 'utf8' }) === 'true';
  }

  test('excludes other processes until the holder closes the fd', () => {
    const path = join(dir, 'virtproxyd.pid');
    const fd = openSync(path, 'w');
    assert.equal(api.lockFile(fd), true);
    // POSIX record locks belong to the process, so taking it again here succeeds.
    assert.equal(api.lockFile(fd), true);
    assert.equal(otherProcessCanLock(path), false);
    closeSync(fd);
    assert.equal(otherProcessCanLock(path), true);
  });

  test('a read-only fd cannot take a write lock', () => {
    const path = join(dir, 'readonly.pid');
    closeSync(openSync(path, 'w'));
    const fd = openSync(path, 'r');
    try {
      assert.equal(
        codeOf(() => api.lockFile(fd)),
        'EBADF',
      );
    } finally {
      closeSync(fd);
    }
  });
});

describe('socketFd', () => {
  test(
    'is the fd of a connected socket and null before connect and after destroy',
    { timeout: 10_000 },
    async () => {
      const { server, accepted, client } = await connectedPair(join(dir, 'fd.sock'));
      const fd = socketFd(client);
      assert.ok(fd !== null && fd > 2);
      assert.ok(readdirSync('/proc/self/fd').includes(String(fd)));
      client.destroy();
      accepted.destroy();
      server.close();
      assert.equal(socketFd(client), null);
      const { Socket: SocketClass } = await import('node:net');
      assert.equal(socketFd(new SocketClass()), null);
    },
  );
});
