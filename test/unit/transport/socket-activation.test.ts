// sd_listen_fds with names, as libvirt reads it: our pid, a count, mandatory names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  SocketActivation,
  parseActivation,
  takeSocketActivation,
} from '../../../src/transport/socket-activation.js';

test('named fds from 3 on; several fds may share a name', () => {
  const r = parseActivation(
    {
      LISTEN_PID: '42',
      LISTEN_FDS: '3',
      LISTEN_FDNAMES: 'virtproxyd.socket:virtproxyd-tcp.socket:virtproxyd-tcp.socket',
    },
    42,
  );
  assert.equal(r.kind, 'active');
  assert.deepEqual(r.kind === 'active' ? [...r.fds] : [], [
    ['virtproxyd.socket', [3]],
    ['virtproxyd-tcp.socket', [4, 5]],
  ]);
});

test('not for us, absent, or unusable', () => {
  assert.equal(parseActivation({}, 1).kind, 'none');
  assert.equal(parseActivation({ LISTEN_PID: '2', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a' }, 1).kind, 'none');
  assert.equal(parseActivation({ LISTEN_PID: '1', LISTEN_FDS: '0' }, 1).kind, 'none');
  const noNames = parseActivation({ LISTEN_PID: '1', LISTEN_FDS: '1' }, 1);
  assert.deepEqual(noNames, {
    kind: 'ignored',
    reason: 'Missing LISTEN_FDNAMES env from systemd socket activation',
  });
  assert.equal(parseActivation({ LISTEN_PID: '1', LISTEN_FDS: '2', LISTEN_FDNAMES: 'a' }, 1).kind, 'ignored');
  assert.equal(parseActivation({ LISTEN_PID: '1', LISTEN_FDS: 'x', LISTEN_FDNAMES: 'a' }, 1).kind, 'ignored');
});

test('taking clears the variables; claims are by name and once', () => {
  const env: NodeJS.ProcessEnv = {
    LISTEN_PID: '7',
    LISTEN_FDS: '2',
    LISTEN_FDNAMES: 'a.socket:b.socket',
    VIRTPROXYD_HANDOVER: '1',
    KEEP: 'x',
  };
  const warnings: string[] = [];
  const act = takeSocketActivation(env, 7, (m) => warnings.push(m));
  assert.deepEqual(env, { KEEP: 'x' });
  assert.ok(act instanceof SocketActivation);
  assert.equal(act?.owned, true);
  assert.deepEqual(act?.take('a.socket'), [3]);
  assert.deepEqual(act?.take('a.socket'), []);
  assert.deepEqual(act?.unclaimed(), ['b.socket']);
  const none = takeSocketActivation({ LISTEN_PID: '7', LISTEN_FDS: '1' }, 7, (m) => warnings.push(m));
  assert.equal(none, null);
  assert.match(warnings[0] ?? '', /Missing LISTEN_FDNAMES.*creating sockets from the configuration/);
});
