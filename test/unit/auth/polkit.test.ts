// Unit tests of the polkit check: the pkcheck command line (libvirt's "unix-process" subject), the
// mapping of pkcheck's answers to libvirt's errors (stderr texts as the real pkcheck 122 prints
// them), and authorizePolkit reading a real peer's credentials from a real unix connection. The
// real polkitd is exercised in test/e2e/polkit.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Server, type Socket, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  authorizePolkit,
  checkPolkit,
  pkcheckArgs,
  pkcheckOutcome,
  polkitAction,
  type PkcheckResult,
} from '../../../src/auth/polkit.js';
import { readProcessStartTime } from '../../../src/native/peer-identity.js';
import type { ClientConnection } from '../../../src/server/client-connection.js';

const MANAGE = 'org.libvirt.unix.manage';

function result(code: number | null, stderr = '', stdout = ''): PkcheckResult {
  return { code, stdout, stderr };
}

describe('polkitAction', () => {
  test('read-only clients ask for monitor, others for manage', () => {
    assert.equal(polkitAction(true), 'org.libvirt.unix.monitor');
    assert.equal(polkitAction(false), MANAGE);
  });
});

describe('pkcheckArgs', () => {
  test('names the process as pid,start-time,uid and allows interaction, as libvirt does', () => {
    assert.deepEqual(pkcheckArgs(MANAGE, { pid: 4242, startTime: 18446744073709551615n, uid: 1000 }), [
      '--action-id',
      MANAGE,
      '--process',
      '4242,18446744073709551615,1000',
      '--allow-user-interaction',
    ]);
  });
});

describe('pkcheckOutcome', () => {
  test('exit 1: "authentication failed: access denied by policy" (45, POLKIT 60)', () => {
    const e = pkcheckOutcome(MANAGE, result(1, 'Not authorized.\n'));
    assert.equal(e.code, 45);
    assert.equal(e.domain, 60);
    assert.equal(e.message, 'authentication failed: access denied by policy');
    assert.equal(e.str2, 'access denied by policy');
  });

  test('exit 2 (challenge, no agent): VIR_ERR_AUTH_UNAVAILABLE naming the action', () => {
    const e = pkcheckOutcome(
      MANAGE,
      result(
        2,
        'Authorization requires authentication but no agent is available.\n',
        'polkit\\56retains_authorization_after_challenge=1\n',
      ),
    );
    assert.equal(e.code, 94);
    assert.equal(e.domain, 60);
    assert.equal(
      e.message,
      "authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.manage'",
    );
  });

  test('exit 3, or a polkit.dismissed=true detail: VIR_ERR_AUTH_CANCELLED', () => {
    for (const r of [result(3), result(1, 'Not authorized.\n', 'polkit\\56dismissed=true\n')]) {
      const e = pkcheckOutcome(MANAGE, r);
      assert.equal(e.code, 79);
      assert.equal(e.domain, 60);
      assert.equal(e.message, 'authentication cancelled: user cancelled authentication process');
    }
  });

  test('exit 127 (the D-Bus call failed): VIR_ERR_DBUS_SERVICE with the GError text', () => {
    const gerr =
      'GDBus.Error:org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.PolicyKit1 was not provided by any .service files';
    const e = pkcheckOutcome(MANAGE, result(127, `Error checking for authorization ${MANAGE}: ${gerr}\n`));
    assert.equal(e.code, 89);
    assert.equal(e.domain, 47);
    assert.equal(e.message, `error from service: ${gerr}`);
    assert.equal(e.str2, gerr);
  });

  test('exit 126 (no system bus): internal error "Unable to get system bus connection"', () => {
    const e = pkcheckOutcome(
      MANAGE,
      result(
        126,
        'Error getting authority: Error initializing authority: Could not connect: No such file or directory\n',
      ),
    );
    assert.equal(e.code, 1);
    assert.equal(e.domain, 47);
    assert.equal(
      e.message,
      'internal error: Unable to get system bus connection: Could not connect: No such file or directory',
    );
  });

  test('pkcheck missing or killed: the generic "did not set virError" error, never success', () => {
    for (const r of [{ ...result(null), spawnError: 'spawn pkcheck ENOENT' }, result(null), result(5)]) {
      const e = pkcheckOutcome(MANAGE, r);
      assert.equal(e.code, 1);
      assert.equal(e.domain, 7);
      assert.equal(e.message, 'Library function returned error but did not set virError');
      assert.equal(e.str1, null);
    }
  });
});

describe('checkPolkit', () => {
  test('exit 0 is the only success; the runner gets the subject', async () => {
    const seen: string[][] = [];
    const ok = await checkPolkit(MANAGE, { pid: 7, startTime: 99n, uid: 5 }, async (args) => {
      seen.push([...args]);
      return result(0);
    });
    assert.equal(ok, null);
    assert.deepEqual(seen, [pkcheckArgs(MANAGE, { pid: 7, startTime: 99n, uid: 5 })]);
    const denied = await checkPolkit(MANAGE, { pid: 7, startTime: 99n, uid: 5 }, async () => result(1));
    assert.equal(denied?.code, 45);
  });
});

describe('authorizePolkit on a real unix connection', () => {
  let dir: string;
  let server: Server;
  let accepted: Promise<Socket>;
  let clientSide: Socket;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vpd-polkit-'));
    const path = join(dir, 'sock');
    server = createServer();
    accepted = new Promise((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    clientSide = createConnection(path);
  });

  after(() => {
    clientSide.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('asks about the peer process: its pid, start time from /proc and uid', async () => {
    const socket = await accepted;
    for (const readonly of [false, true]) {
      const calls: string[][] = [];
      const client = { socket, readonly } as unknown as ClientConnection;
      const err = await authorizePolkit(client, async (args) => {
        calls.push([...args]);
        return result(0);
      });
      assert.equal(err, null);
      const start = readProcessStartTime(process.pid);
      assert.ok(start !== null && start > 0n);
      assert.deepEqual(calls, [
        pkcheckArgs(polkitAction(readonly), {
          pid: process.pid,
          startTime: start,
          uid: process.getuid?.() ?? -1,
        }),
      ]);
    }
  });
});
