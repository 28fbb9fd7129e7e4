// End-to-end: identity forwarding (NOTES §5). A non-root user made for the test connects through the
// proxy with python3-libvirt; the backend libvirtd's own admin interface (virt-admin client-info on
// its admin socket) must show that user's uid, gid, names and pid, not the proxy's (root). libvirtd
// replaces a client's identity with the one CONNECT_SET_IDENTITY carries, so this shows the proxy
// sent it, with names and types libvirtd accepted.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backendDir, startProxy, type Proxy } from './harness.js';
import { createUser, removeUser, spawnAs, usersUnavailable, type TestUser } from './test-users.js';

const USER = 'vpe2e-ident';
const PYTHON = '/usr/bin/python3';

/** Opens a connection, makes one forwarded call, prints its pid, and holds on until stdin ends. */
const HOLD_CONNECTION = `
import libvirt, os, sys
conn = libvirt.open(sys.argv[1])
conn.getHostname()
print(os.getpid(), flush=True)
sys.stdin.readline()
conn.close()
`;

const skip = usersUnavailable();
let proxy: Proxy;
let user: TestUser;

function adminUri(): string {
  return `libvirtd:///system?socket=${join(backendDir(), 'libvirt-admin-sock')}`;
}

function virtAdmin(...args: string[]): string {
  return execFileSync('virt-admin', ['-c', adminUri(), ...args], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C' },
    timeout: 30_000,
  });
}

/** client-info of every client of the backend's "libvirtd" server, as key → value maps. */
function backendClients(): Array<Map<string, string>> {
  const ids = virtAdmin('srv-clients-list', 'libvirtd')
    .split('\n')
    .map((l) => /^\s*(\d+)\s+\S+/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
  const out: Array<Map<string, string>> = [];
  for (const id of ids) {
    let text: string;
    try {
      text = virtAdmin('client-info', 'libvirtd', id);
    } catch {
      continue; // that client left meanwhile
    }
    const m = new Map<string, string>();
    for (const line of text.split('\n')) {
      const kv = /^(\S+)\s*:\s*(.*)$/.exec(line);
      if (kv !== null) m.set(kv[1] as string, (kv[2] as string).trim());
    }
    out.push(m);
  }
  return out;
}

/** Runs HOLD_CONNECTION as `u` against `uri`; resolves with its pid and a function to let it go. */
async function holdAs(u: TestUser, uri: string): Promise<{ pid: number; release: () => Promise<number> }> {
  const child = spawnAs(u, PYTHON, ['-c', HOLD_CONNECTION, uri]);
  let stdout = '';
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
  const pid = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`client did not connect in 30 s: ${stderr}`)), 30_000);
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const m = /^(\d+)\n/.exec(stdout);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`client exited (${code}) before connecting:\n${stderr}`));
    });
  });
  return {
    pid,
    release: async () => {
      child.stdin?.end('\n');
      return exited;
    },
  };
}

describe('identity forwarding to the backend', { skip: skip ?? false }, () => {
  before(async () => {
    proxy = await startProxy({ conf: { unix_sock_rw_perms: '0777', unix_sock_ro_perms: '0777' } });
    // The harness makes its temp dir private; the test user must reach the sockets in it.
    chmodSync(proxy.dir, 0o755);
    chmodSync(join(proxy.dir, 'run'), 0o755);
    user = createUser(USER, proxy.dir);
  });

  after(() => {
    const err = removeUser(USER);
    if (err !== null) console.error(err);
  });

  for (const ro of [false, true]) {
    it(`the backend attributes a ${ro ? 'read-only' : 'read-write'} connection to the real user`, async () => {
      const held = await holdAs(user, proxy.uri('qemu:///system', ro));
      try {
        const clients = backendClients();
        const mine = clients.filter((c) => c.get('unix_process_id') === String(held.pid));
        assert.equal(
          mine.length,
          1,
          `one backend client with pid ${held.pid}; saw:\n${JSON.stringify(clients.map((c) => Object.fromEntries(c)))}`,
        );
        const c = mine[0] as Map<string, string>;
        assert.equal(c.get('unix_user_id'), String(user.uid));
        assert.equal(c.get('unix_user_name'), user.name);
        assert.equal(c.get('unix_group_id'), String(user.gid));
        assert.equal(c.get('unix_group_name'), user.name);
        assert.equal(c.get('readonly'), ro ? 'yes' : 'no');
        assert.ok(
          !clients.some((x) => x.get('unix_process_id') === String(proxy.pid)),
          'no backend client carries the proxy’s own identity',
        );
      } finally {
        assert.equal(await held.release(), 0);
      }
    });
  }
});
