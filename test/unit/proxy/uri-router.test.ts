// Unit tests for UriRouter (NOTES §4.2–§4.4): driver → daemon socket mapping, read-only and
// session variants, the flags and name sent to the backend, libvirt's error texts for refused URIs,
// and probing for an empty name with an injected existence test.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  REMOTE_DRIVER_OPEN_RO,
  REMOTE_DRIVER_OPEN_USER,
  VIR_ERR_INVALID_ARG,
  VIR_ERR_NO_CONNECT,
  VIR_ERR_NO_SUPPORT,
  VIR_FROM_DOMAIN,
  VIR_FROM_NONE,
  VIR_FROM_REMOTE,
} from '../../../src/protocol/constants.js';
import type { RemoteError } from '../../../src/protocol/remote-error.js';
import { daemonSocketName, UriRouter, type Route, type RouterConfig } from '../../../src/proxy/uri-router.js';

const SYS = '/var/run/libvirt';
const SESSION = '/run/user/1000/libvirt';

function router(over: Partial<RouterConfig> = {}): UriRouter {
  return new UriRouter({
    privileged: true,
    backendSockDir: SYS,
    sessionSockDir: SESSION,
    driverSockets: new Map(),
    exists: () => false,
    ...over,
  });
}

function ok(r: UriRouter, name: string | null, readonly = false): Route {
  const res = r.route(name, readonly);
  if (!res.ok) assert.fail(`route(${String(name)}) failed: ${res.error.message ?? ''}`);
  return res.route;
}

function fails(r: UriRouter, name: string | null, readonly = false): RemoteError {
  const res = r.route(name, readonly);
  if (res.ok) assert.fail(`route(${String(name)}) unexpectedly gave ${res.route.socketPath}`);
  return res.error;
}

describe('UriRouter: system sockets (root proxy)', () => {
  it('routes qemu:///system to virtqemud-sock', () => {
    assert.deepEqual(ok(router(), 'qemu:///system'), {
      socketPath: `${SYS}/virtqemud-sock`,
      backendName: 'qemu:///system',
      backendFlags: 0,
      uri: 'qemu:///system',
      driver: 'qemu',
      readonly: false,
    });
  });

  it('uses the -sock-ro socket and flags bit0 for a read-only open', () => {
    const r = ok(router(), 'qemu:///system', true);
    assert.equal(r.socketPath, `${SYS}/virtqemud-sock-ro`);
    assert.equal(r.backendFlags, REMOTE_DRIVER_OPEN_RO);
    assert.equal(r.readonly, true);
  });

  const MAPPING: Array<[string, string]> = [
    ['network:///system', 'virtnetworkd'],
    ['storage:///system', 'virtstoraged'],
    ['secret:///system', 'virtsecretd'],
    ['nodedev:///system', 'virtnodedevd'],
    ['nwfilter:///system', 'virtnwfilterd'],
    ['interface:///system', 'virtinterfaced'],
    ['lxc:///', 'virtlxcd'],
    ['xen:///system', 'virtxend'],
    ['vbox:///session', 'virtvboxd'],
    ['ch:///system', 'virtchd'],
    ['bhyve:///system', 'virtbhyved'],
    ['vz:///system', 'virtvzd'],
    ['parallels:///system', 'virtparallelsd'],
  ];
  for (const [uri, daemon] of MAPPING) {
    it(`routes ${uri} to ${daemon}`, () => {
      const r = ok(router(), uri);
      assert.equal(r.socketPath, `${SYS}/${daemon}-sock`);
      assert.equal(r.backendName, uri);
      assert.equal(r.backendFlags, 0, 'root never sets USER, even for /session');
      assert.equal(ok(router(), uri, true).socketPath, `${SYS}/${daemon}-sock-ro`);
    });
  }

  it('routes an unknown scheme foo:///x to virtfood-sock (the connect then fails)', () => {
    const r = ok(router(), 'foo:///x');
    assert.equal(r.socketPath, `${SYS}/virtfood-sock`);
    assert.equal(r.backendName, 'foo:///x');
    assert.equal(daemonSocketName('foo'), 'virtfood-sock');
  });

  it('routes qemu:///session of a root proxy to the system socket', () => {
    const r = ok(router(), 'qemu:///session');
    assert.equal(r.socketPath, `${SYS}/virtqemud-sock`);
    assert.equal(r.backendFlags, 0);
    assert.equal(r.backendName, 'qemu:///session');
  });

  it('uses a configured socket for a driver, with "-ro" appended when read-only', () => {
    const r = router({ driverSockets: new Map([['qemu', '/srv/q.sock']]) });
    assert.equal(ok(r, 'qemu:///system').socketPath, '/srv/q.sock');
    assert.equal(ok(r, 'qemu:///system', true).socketPath, '/srv/q.sock-ro');
    assert.equal(ok(r, 'network:///system').socketPath, `${SYS}/virtnetworkd-sock`);
  });

  it('accepts an explicit +unix transport and strips it from the forwarded name', () => {
    const r = ok(router(), 'qemu+unix:///system');
    assert.equal(r.socketPath, `${SYS}/virtqemud-sock`);
    assert.equal(r.backendName, 'qemu:///system');
    assert.equal(r.uri, 'qemu+unix:///system');
    assert.equal(
      ok(router(), 'qemu+UNIX:///system').backendName,
      'qemu:///system',
      'transport is case-insensitive',
    );
  });
});

describe('UriRouter: forwarded name and parameters', () => {
  it('drops the parameters the remote driver consumes and keeps the others in order', () => {
    const r = ok(
      router(),
      'qemu:///system?auth=sasl&foo=1&mode=direct&no_verify=1&bar=two%20words&pkipath=/x&tls_priority=NORMAL',
    );
    assert.equal(r.backendName, 'qemu:///system?foo=1&bar=two%20words');
    assert.equal(r.socketPath, `${SYS}/virtqemud-sock`);
  });

  it('drops every consumed parameter', () => {
    const consumed = [
      'command',
      'auth',
      'sshauth',
      'netcat',
      'keyfile',
      'pkipath',
      'known_hosts',
      'known_hosts_verify',
      'tls_priority',
      'proxy',
      'no_sanity',
      'no_verify',
      'no_tty',
      'authfile',
    ];
    const query = consumed.map((k) => `${k}=x`).join('&');
    assert.equal(ok(router(), `qemu:///system?${query}&keep=1`).backendName, 'qemu:///system?keep=1');
  });

  it('keeps the fragment', () => {
    assert.equal(ok(router(), 'qemu:///system?a=b#frag').backendName, 'qemu:///system?a=b#frag');
  });

  it('lets name= replace the whole forwarded name', () => {
    const r = ok(router(), 'qemu:///system?name=qemu:///embed%3Froot%3D/tmp&foo=1');
    assert.equal(r.backendName, 'qemu:///embed?root=/tmp');
    assert.equal(r.socketPath, `${SYS}/virtqemud-sock`, 'the socket still follows the scheme');
  });

  it('accepts mode=direct', () => {
    assert.equal(ok(router(), 'qemu:///system?mode=direct').backendName, 'qemu:///system');
  });
});

describe('UriRouter: refused URIs', () => {
  it('rejects an unknown transport with libvirt’s text', () => {
    const e = fails(router(), 'qemu+carrierpigeon:///system');
    assert.equal(e.code, VIR_ERR_INVALID_ARG);
    assert.equal(e.domain, VIR_FROM_REMOTE);
    assert.equal(
      e.message,
      'invalid argument: remote_open: transport in URL not recognised (should be tls|unix|ssh|ext|tcp|libssh2|libssh)',
    );
  });

  it('rejects +unix with a server', () => {
    const e = fails(router(), 'qemu+unix://example.org/system');
    assert.equal(e.code, VIR_ERR_INVALID_ARG);
    assert.equal(e.domain, VIR_FROM_REMOTE);
    assert.equal(
      e.message,
      "invalid argument: using unix socket and remote server 'example.org' is not supported.",
    );
  });

  it('refuses remote hosts and network transports', () => {
    for (const uri of [
      'qemu://example.org/system',
      'qemu+ssh://root@example.org/system',
      'qemu+tls://h/system',
      'qemu+tcp:///system',
    ]) {
      const e = fails(router(), uri);
      assert.equal(e.code, VIR_ERR_NO_SUPPORT, uri);
      assert.equal(e.domain, VIR_FROM_REMOTE, uri);
      assert.match(e.message ?? '', /^this function is not supported by the connection driver: /, uri);
    }
  });

  it('refuses mode=legacy and mode=auto: connections from inside a daemon must be direct', () => {
    for (const mode of ['legacy', 'auto']) {
      const e = fails(router(), `qemu:///system?mode=${mode}`);
      assert.equal(e.code, VIR_ERR_INVALID_ARG);
      assert.equal(e.domain, VIR_FROM_REMOTE);
      assert.equal(e.message, 'invalid argument: Connections from inside daemon must be direct');
    }
  });

  it('refuses socket= (the proxy must not connect wherever a client says)', () => {
    const e = fails(router(), 'qemu+unix:///system?socket=/tmp/evil');
    assert.equal(e.code, VIR_ERR_INVALID_ARG);
    assert.equal(e.domain, VIR_FROM_REMOTE);
    assert.match(e.message ?? '', /socket/);
  });

  it('fails the in-process test driver as real virtproxyd does (NOTES §4.2)', () => {
    for (const uri of ['test:///default', 'test+unix:///default', 'esx:///', 'openvz:///system']) {
      const e = fails(router(), uri);
      assert.equal(e.code, VIR_ERR_NO_SUPPORT, uri);
      assert.equal(e.domain, VIR_FROM_DOMAIN, uri);
      assert.equal(
        e.message,
        'this function is not supported by the connection driver: virConnectSetIdentity',
        uri,
      );
    }
  });

  it('forwards test:///default when a socket is configured for "test"', () => {
    const r = router({ driverSockets: new Map([['test', '/srv/test.sock']]) });
    const route = ok(r, 'test:///default');
    assert.equal(route.socketPath, '/srv/test.sock');
    assert.equal(route.backendName, 'test:///default');
    assert.equal(ok(r, 'test:///default', true).socketPath, '/srv/test.sock-ro');
  });
});

describe('UriRouter: non-root (session) proxy', () => {
  const user = (over: Partial<RouterConfig> = {}): UriRouter => router({ privileged: false, ...over });

  it('routes /session URIs to the session socket with the USER flag', () => {
    const r = ok(user(), 'qemu:///session');
    assert.equal(r.socketPath, `${SESSION}/virtqemud-sock`);
    assert.equal(r.backendFlags, REMOTE_DRIVER_OPEN_USER);
    assert.equal(r.backendName, 'qemu:///session');
  });

  it('has no -ro variant for session sockets, but still sends the RO bit', () => {
    const r = ok(user(), 'qemu:///session', true);
    assert.equal(r.socketPath, `${SESSION}/virtqemud-sock`);
    assert.equal(r.backendFlags, REMOTE_DRIVER_OPEN_USER | REMOTE_DRIVER_OPEN_RO);
  });

  it('routes a non-/session path to the system socket without USER', () => {
    const r = ok(user(), 'qemu:///system');
    assert.equal(r.socketPath, `${SYS}/virtqemud-sock`);
    assert.equal(r.backendFlags, 0);
    assert.equal(ok(user(), 'qemu:///session/', false).backendFlags, 0, 'only exactly "/session"');
  });

  it('sets USER for test+… schemes (when a test socket is configured)', () => {
    const r = ok(user({ driverSockets: new Map([['test', '/srv/t.sock']]) }), 'test+unix:///default', true);
    assert.equal(r.backendFlags, REMOTE_DRIVER_OPEN_USER | REMOTE_DRIVER_OPEN_RO);
    assert.equal(r.socketPath, '/srv/t.sock', 'no -ro for a session-style open');
  });
});

describe('UriRouter: empty name probing (NOTES §4.4)', () => {
  function probing(privileged: boolean, present: string[]): { r: UriRouter; asked: string[] } {
    const asked: string[] = [];
    const r = router({
      privileged,
      exists: (p) => {
        asked.push(p);
        return present.includes(p);
      },
    });
    return { r, asked };
  }

  it('root probes xen, qemu, lxc, vbox, bhyve, vz in that order', () => {
    const { r, asked } = probing(true, []);
    r.route(null, false);
    assert.deepEqual(asked, [
      `${SYS}/virtxend-sock`,
      `${SYS}/virtqemud-sock`,
      `${SYS}/virtlxcd-sock`,
      `${SYS}/virtvboxd-sock`,
      `${SYS}/virtbhyved-sock`,
      `${SYS}/virtvzd-sock`,
    ]);
  });

  it('root probes the -ro sockets for a read-only open', () => {
    const { r, asked } = probing(true, []);
    r.route('', true);
    assert.equal(asked.length, 6);
    for (const p of asked) assert.match(p, /-sock-ro$/);
  });

  it('root picks the first existing socket and reports <driver>:///system', () => {
    const { r, asked } = probing(true, [`${SYS}/virtqemud-sock`, `${SYS}/virtlxcd-sock`]);
    const route = ok(r, null);
    assert.equal(asked.length, 2, 'stops at the first hit');
    assert.equal(route.uri, 'qemu:///system');
    assert.equal(route.backendName, 'qemu:///system');
    assert.equal(route.socketPath, `${SYS}/virtqemud-sock`);
    assert.equal(route.backendFlags, 0);
  });

  it('treats "" like null', () => {
    const { r } = probing(true, [`${SYS}/virtlxcd-sock-ro`]);
    const route = ok(r, '', true);
    assert.equal(route.uri, 'lxc:///system');
    assert.equal(route.socketPath, `${SYS}/virtlxcd-sock-ro`);
    assert.equal(route.backendFlags, REMOTE_DRIVER_OPEN_RO);
  });

  it('non-root probes the session qemu then vbox sockets, always the RW name', () => {
    const { r, asked } = probing(false, [`${SESSION}/virtvboxd-sock`]);
    const route = ok(r, null, true);
    assert.deepEqual(asked, [`${SESSION}/virtqemud-sock`, `${SESSION}/virtvboxd-sock`]);
    assert.equal(route.uri, 'vbox:///session');
    assert.equal(route.socketPath, `${SESSION}/virtvboxd-sock`);
    assert.equal(route.backendFlags, REMOTE_DRIVER_OPEN_USER | REMOTE_DRIVER_OPEN_RO);
  });

  it('fails with NO_CONNECT (5), domain NONE, when nothing is found', () => {
    for (const privileged of [true, false]) {
      const { r } = probing(privileged, []);
      const e = fails(r, null);
      assert.equal(e.code, VIR_ERR_NO_CONNECT);
      assert.equal(e.domain, VIR_FROM_NONE);
      assert.equal(e.message, 'no connection driver available for <null>');
      assert.equal(e.str2, '<null>');
    }
  });

  it('does not probe when a name is given', () => {
    const { r, asked } = probing(true, []);
    ok(r, 'qemu:///system');
    assert.deepEqual(asked, []);
  });
});
