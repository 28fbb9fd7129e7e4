// The shipped units render, pass systemd-analyze verify, and name the sockets the way the daemon
// claims them (the unit name is the fd name).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ACTIVATION_NAMES } from '../../../src/daemon/remote-services.js';

const repo = join(import.meta.dirname, '..', '..', '..', '..');
const units = ['virtproxyd.service', ...Object.values(ACTIVATION_NAMES)];

test(
  'install.sh renders every unit and systemd-analyze accepts them',
  { skip: !existsSync('/usr/bin/systemd-analyze') && 'no systemd-analyze' },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpunits-'));
    const r = spawnSync('bash', [join(repo, 'systemd', 'install.sh'), '--unitdir', dir, '--no-reload'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    for (const u of units) assert.ok(existsSync(join(dir, u)), u);
    const v = spawnSync('systemd-analyze', ['verify', '--man=no', ...units.map((u) => join(dir, u))], {
      encoding: 'utf8',
    });
    assert.equal(v.status, 0, v.stderr);
    const svc = readFileSync(join(dir, 'virtproxyd.service'), 'utf8');
    assert.match(svc, /^ExecStart=\S+node \S+\/bin\/virtproxyd \$VIRTPROXYD_ARGS$/m);
    assert.match(svc, /^Environment=VIRTPROXYD_ARGS="--timeout 120"$/m);
    assert.match(svc, /^BindsTo=virtproxyd.socket$/m);
    assert.match(svc, /^Type=notify(-reload)?$/m);
    assert.doesNotMatch(svc, /@[A-Z_]+@/);
    const listen = (u: string) => /^ListenStream=(.*)$/m.exec(readFileSync(join(dir, u), 'utf8'))?.[1];
    assert.equal(listen('virtproxyd.socket'), '/run/libvirt/libvirt-sock');
    assert.equal(listen('virtproxyd-ro.socket'), '/run/libvirt/libvirt-sock-ro');
    assert.equal(listen('virtproxyd-admin.socket'), '/run/libvirt/libvirt-admin-sock');
    assert.equal(listen('virtproxyd-tcp.socket'), '16509');
    assert.equal(listen('virtproxyd-tls.socket'), '16514');
    for (const u of Object.values(ACTIVATION_NAMES)) {
      const text = readFileSync(join(dir, u), 'utf8');
      assert.match(text, /^Service=virtproxyd.service$/m, u);
      assert.doesNotMatch(
        text,
        /FileDescriptorName=/,
        `${u}: the default name (the unit name) is what the daemon claims`,
      );
    }
  },
);
