// Unit tests for the default daemon paths (NOTES §9.2, virtproxyd(8) FILES).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { daemonPaths } from '../../../src/daemon/paths.js';

describe('daemonPaths', () => {
  it('root', () => {
    assert.deepEqual(daemonPaths({ privileged: true, env: { HOME: '/root', XDG_RUNTIME_DIR: '/ignored' } }), {
      configFile: '/etc/libvirt/virtproxyd.conf',
      runDir: '/run/libvirt',
      rwSocket: '/run/libvirt/libvirt-sock',
      roSocket: '/run/libvirt/libvirt-sock-ro',
      adminSocket: '/run/libvirt/libvirt-admin-sock',
      pidFile: '/run/virtproxyd.pid',
    });
  });

  it('root with unix_sock_dir: all three sockets move, run dir and PID file stay', () => {
    assert.deepEqual(daemonPaths({ privileged: true, env: {}, unixSockDir: '/srv/s' }), {
      configFile: '/etc/libvirt/virtproxyd.conf',
      runDir: '/run/libvirt',
      rwSocket: '/srv/s/libvirt-sock',
      roSocket: '/srv/s/libvirt-sock-ro',
      adminSocket: '/srv/s/libvirt-admin-sock',
      pidFile: '/run/virtproxyd.pid',
    });
  });

  it('non-root with XDG variables', () => {
    const env = { HOME: '/home/u', XDG_CONFIG_HOME: '/cfg', XDG_RUNTIME_DIR: '/run/user/1000' };
    assert.deepEqual(daemonPaths({ privileged: false, env }), {
      configFile: '/cfg/libvirt/virtproxyd.conf',
      runDir: '/run/user/1000/libvirt',
      rwSocket: '/run/user/1000/libvirt/libvirt-sock',
      roSocket: null,
      adminSocket: '/run/user/1000/libvirt/libvirt-admin-sock',
      pidFile: '/run/user/1000/libvirt/virtproxyd.pid',
    });
  });

  it('non-root without XDG variables falls back to ~/.config and ~/.cache', () => {
    assert.deepEqual(daemonPaths({ privileged: false, env: { HOME: '/home/u', XDG_RUNTIME_DIR: '' } }), {
      configFile: '/home/u/.config/libvirt/virtproxyd.conf',
      runDir: '/home/u/.cache/libvirt',
      rwSocket: '/home/u/.cache/libvirt/libvirt-sock',
      roSocket: null,
      adminSocket: '/home/u/.cache/libvirt/libvirt-admin-sock',
      pidFile: '/home/u/.cache/libvirt/virtproxyd.pid',
    });
  });

  it('non-root runtime dir falls back to XDG_CACHE_HOME before ~/.cache', () => {
    const p = daemonPaths({ privileged: false, env: { HOME: '/home/u', XDG_CACHE_HOME: '/cache' } });
    assert.equal(p.runDir, '/cache/libvirt');
    assert.equal(p.rwSocket, '/cache/libvirt/libvirt-sock');
  });

  it('non-root with unix_sock_dir: only the rw socket, no admin socket', () => {
    assert.deepEqual(
      daemonPaths({
        privileged: false,
        env: { HOME: '/home/u', XDG_RUNTIME_DIR: '/r' },
        unixSockDir: '/tmp/x/',
      }),
      {
        configFile: '/home/u/.config/libvirt/virtproxyd.conf',
        runDir: '/r/libvirt',
        rwSocket: '/tmp/x//libvirt-sock',
        roSocket: null,
        adminSocket: null,
        pidFile: '/r/libvirt/virtproxyd.pid',
      },
    );
  });

  it('an undefined unixSockDir means the default location', () => {
    assert.equal(
      daemonPaths({ privileged: true, env: {}, unixSockDir: undefined }).rwSocket,
      '/run/libvirt/libvirt-sock',
    );
  });
});
