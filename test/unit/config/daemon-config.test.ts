// Unit tests for the daemon configuration: defaults, per-type errors, libvirt's checks, our own keys,
// and loading from real files in a temporary directory.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConfigError } from '../../../src/config/conf-parser.js';
import {
  IMPLEMENTED_KEYS,
  LIBVIRT_KEYS,
  OWN_KEYS,
  defaultDaemonConfig,
  loadDaemonConfig,
  notSupportedYetKeys,
  parseDaemonConfigText,
  socketMode,
  xdgConfigHome,
  xdgRuntimeDir,
} from '../../../src/config/daemon-config.js';

const F = '/etc/libvirt/virtproxyd.conf';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

function load(text: string, privileged = true) {
  return parseDaemonConfigText(text, F, privileged, ENV);
}

function rejects(
  text: string,
  expected: { code: string; message: string; line?: number; key?: string },
): void {
  assert.throws(
    () => load(text),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.message, expected.message);
      assert.equal(err.code, expected.code);
      assert.equal(err.file, F);
      assert.equal(err.line, expected.line);
      assert.equal(err.key, expected.key);
      return true;
    },
  );
}

describe('defaults', () => {
  it('root: polkit on the unix sockets, rw socket wide open, system backend dir', () => {
    const c = defaultDaemonConfig(true, ENV);
    assert.equal(c.auth_unix_rw, 'polkit');
    assert.equal(c.auth_unix_ro, 'polkit');
    assert.equal(c.unix_sock_rw_perms, '0777');
    assert.equal(c.unix_sock_ro_perms, '0777');
    assert.equal(c.unix_sock_admin_perms, '0700');
    assert.equal(c.backend_sock_dir, '/var/run/libvirt');
  });

  it('non-root: no auth, rw socket private, session backend dir under XDG_RUNTIME_DIR', () => {
    const c = defaultDaemonConfig(false, ENV);
    assert.equal(c.auth_unix_rw, 'none');
    assert.equal(c.auth_unix_ro, 'none');
    assert.equal(c.unix_sock_rw_perms, '0700');
    assert.equal(c.backend_sock_dir, '/run/user/1000/libvirt');
    assert.equal(defaultDaemonConfig(false, { HOME: '/home/u' }).backend_sock_dir, '/home/u/.cache/libvirt');
  });

  it('has every libvirt default of virtproxyd', () => {
    const c = defaultDaemonConfig(true, ENV);
    assert.deepEqual(
      { ...c, auth_unix_rw: undefined, auth_unix_ro: undefined, unix_sock_rw_perms: undefined },
      {
        listen_tls: false,
        listen_tcp: false,
        tls_port: '16514',
        tcp_port: '16509',
        listen_addr: null,
        unix_sock_group: null,
        unix_sock_ro_perms: '0777',
        unix_sock_rw_perms: undefined,
        unix_sock_admin_perms: '0700',
        unix_sock_dir: null,
        auth_unix_ro: undefined,
        auth_unix_rw: undefined,
        auth_tcp: 'sasl',
        auth_tls: 'none',
        tcp_min_ssf: 56,
        access_drivers: ['none'],
        key_file: null,
        cert_file: null,
        ca_file: null,
        crl_file: null,
        tls_no_sanity_certificate: false,
        tls_no_verify_certificate: false,
        tls_allowed_dn_list: null,
        tls_priority: null,
        sasl_allowed_username_list: null,
        min_workers: 5,
        max_workers: 20,
        max_clients: 5000,
        max_queued_clients: 1000,
        max_anonymous_clients: 20,
        prio_workers: 5,
        max_client_requests: 5,
        admin_min_workers: 5,
        admin_max_workers: 20,
        admin_max_clients: 5000,
        admin_max_queued_clients: 20,
        admin_max_client_requests: 5,
        audit_level: 1,
        audit_logging: false,
        host_uuid: null,
        host_uuid_source: 'smbios',
        log_level: 0,
        log_filters: null,
        log_outputs: null,
        keepalive_interval: 5,
        keepalive_count: 5,
        admin_keepalive_interval: 5,
        admin_keepalive_count: 5,
        ovs_timeout: 5,
        backend_sock_dir: '/var/run/libvirt',
        backend_sockets: [],
        metrics_listen: null,
      },
    );
  });

  it('an empty file gives the defaults', () => {
    assert.deepEqual(load('').config, defaultDaemonConfig(true, ENV));
    assert.deepEqual(load('', false).config, defaultDaemonConfig(false, ENV));
  });

  it('is frozen, lists included', () => {
    const c = load('access_drivers = ["polkit"]\nbackend_sockets = ["qemu=/s"]\n').config;
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.access_drivers));
    assert.ok(Object.isFrozen(c.backend_sockets));
    assert.ok(Object.isFrozen(c.backend_sockets[0]));
    assert.throws(() => {
      (c as { max_clients: number }).max_clients = 1;
    }, TypeError);
    assert.throws(() => (c.access_drivers as string[]).push('x'), TypeError);
    assert.ok(Object.isFrozen(defaultDaemonConfig(true, ENV).access_drivers));
  });
});

describe('reading values', () => {
  it('reads every type', () => {
    const c = load(
      [
        'listen_tcp = 1',
        'listen_tls = 0',
        'tcp_port = "16000"',
        'unix_sock_group = "libvirt"',
        'unix_sock_dir = "/tmp/s"',
        'max_clients = 4294967295',
        'keepalive_interval = -1',
        'admin_keepalive_interval = 2147483647',
        'keepalive_count = 0',
        'tls_allowed_dn_list = ["C=GB,*", "O=x"]',
        'sasl_allowed_username_list = []',
        'log_level = 4',
        'log_outputs = "1:stderr"',
        'host_uuid = " 00000000-0000-0000-0000-000000000001 "',
        'host_uuid_source = "machine-id"',
        'tcp_min_ssf = 112',
      ].join('\n'),
    ).config;
    assert.equal(c.listen_tcp, true);
    assert.equal(c.listen_tls, false);
    assert.equal(c.tcp_port, '16000');
    assert.equal(c.unix_sock_group, 'libvirt');
    assert.equal(c.unix_sock_dir, '/tmp/s');
    assert.equal(c.max_clients, 4294967295);
    assert.equal(c.keepalive_interval, -1);
    assert.equal(c.admin_keepalive_interval, 2147483647);
    assert.equal(c.keepalive_count, 0);
    assert.deepEqual(c.tls_allowed_dn_list, ['C=GB,*', 'O=x']);
    assert.deepEqual(c.sasl_allowed_username_list, []);
    assert.equal(c.log_level, 4);
    assert.equal(c.log_outputs, '1:stderr');
    assert.equal(c.host_uuid, ' 00000000-0000-0000-0000-000000000001 ');
    assert.equal(c.host_uuid_source, 'machine-id');
    assert.equal(c.tcp_min_ssf, 112);
  });

  it('signed int accepts both literal kinds; uint and bool only unsigned ones', () => {
    assert.equal(load('keepalive_interval = +7').config.keepalive_interval, 7);
    assert.equal(load('keepalive_interval = -2147483648').config.keepalive_interval, -2147483648);
    assert.equal(load('listen_tcp = +1').config.listen_tcp, true);
  });

  it('uses the first of duplicated keys', () => {
    assert.equal(load('max_clients = 100\nmax_clients = "x"\n').config.max_clients, 100);
  });
});

describe('type errors, with file, line and key', () => {
  const cases: [string, string, string][] = [
    ['tls_port = 16514', 'tls_port', `${F}: expected a string for 'tls_port' parameter`],
    ['listen_addr = ["a"]', 'listen_addr', `${F}: expected a string for 'listen_addr' parameter`],
    ['listen_tcp = "1"', 'listen_tcp', `${F}: expected a bool for 'listen_tcp' parameter`],
    ['listen_tcp = -1', 'listen_tcp', `${F}: expected a bool for 'listen_tcp' parameter`],
    ['listen_tcp = -0', 'listen_tcp', `${F}: expected a bool for 'listen_tcp' parameter`],
    ['audit_logging = [1]', 'audit_logging', `${F}: expected a bool for 'audit_logging' parameter`],
    ['max_clients = -1', 'max_clients', `${F}: expected an unsigned integer for 'max_clients' parameter`],
    ['max_clients = "5"', 'max_clients', `${F}: expected an unsigned integer for 'max_clients' parameter`],
    [
      'keepalive_interval = "5"',
      'keepalive_interval',
      `${F}: expected a signed integer for 'keepalive_interval' parameter`,
    ],
    [
      'access_drivers = "polkit"',
      'access_drivers',
      `${F}: expected a string list for 'access_drivers' parameter`,
    ],
    [
      'tls_allowed_dn_list = ["a", 1]',
      'tls_allowed_dn_list',
      `${F}: expected a string list for 'tls_allowed_dn_list' parameter`,
    ],
    [
      'sasl_allowed_username_list = [["a"]]',
      'sasl_allowed_username_list',
      `${F}: expected a string list for 'sasl_allowed_username_list' parameter`,
    ],
    ['backend_sock_dir = 1', 'backend_sock_dir', `${F}: expected a string for 'backend_sock_dir' parameter`],
    [
      'backend_sockets = "qemu=/x"',
      'backend_sockets',
      `${F}: expected a string list for 'backend_sockets' parameter`,
    ],
    ['metrics_listen = 9667', 'metrics_listen', `${F}: expected a string for 'metrics_listen' parameter`],
  ];
  for (const [text, key, message] of cases) {
    it(text, () => {
      rejects(`# comment\n\n${text}\n`, { code: 'CONF_TYPE', message: `${message} (line 3)`, line: 3, key });
    });
  }
});

describe('range errors', () => {
  const cases: [string, string, string][] = [
    ['listen_tls = 2', 'listen_tls', `${F}: value for 'listen_tls' parameter must be 0 or 1`],
    [
      'max_clients = 4294967296',
      'max_clients',
      `${F}: value for 'max_clients' parameter must be in range 0:4294967295`,
    ],
    [
      'keepalive_interval = 2147483648',
      'keepalive_interval',
      `${F}: value for 'keepalive_interval' parameter must be in range -2147483648:2147483647`,
    ],
    [
      'keepalive_interval = -2147483649',
      'keepalive_interval',
      `${F}: value for 'keepalive_interval' parameter must be in range -2147483648:2147483647`,
    ],
  ];
  for (const [text, key, message] of cases) {
    it(text, () => {
      rejects(`a = 1\n${text}`, { code: 'CONF_RANGE', message: `${message} (line 2)`, line: 2, key });
    });
  }
});

describe('libvirt semantic checks', () => {
  it('auth values', () => {
    for (const key of ['auth_unix_rw', 'auth_unix_ro', 'auth_tcp', 'auth_tls']) {
      rejects(`${key} = "kerberos"`, {
        code: 'CONF_UNSUPPORTED',
        message: `${F}: ${key}: unsupported auth kerberos (line 1)`,
        line: 1,
        key,
      });
    }
    const c = load(
      'auth_unix_rw = "sasl"\nauth_unix_ro = "none"\nauth_tcp = "none"\nauth_tls = "polkit"\n',
    ).config;
    assert.deepEqual(
      [c.auth_unix_rw, c.auth_unix_ro, c.auth_tcp, c.auth_tls],
      ['sasl', 'none', 'none', 'polkit'],
    );
  });

  it('rw perms follow polkit, but an explicit value wins and "none" does not tighten them', () => {
    assert.equal(load('auth_unix_rw = "none"').config.unix_sock_rw_perms, '0777');
    assert.equal(load('auth_unix_rw = "polkit"', false).config.unix_sock_rw_perms, '0777');
    assert.equal(load('auth_unix_rw = "sasl"', false).config.unix_sock_rw_perms, '0700');
    assert.equal(
      load('unix_sock_rw_perms = "0770"\nauth_unix_rw = "polkit"').config.unix_sock_rw_perms,
      '0770',
    );
  });

  it('tcp_min_ssf below 112', () => {
    rejects('tcp_min_ssf = 111', {
      code: 'CONF_UNSUPPORTED',
      message: `${F}: tcp_min_ssf: minimum SSF levels lower than 112 are not supported (line 1)`,
      line: 1,
      key: 'tcp_min_ssf',
    });
  });

  it('max_workers 0', () => {
    rejects('\nmax_workers = 0', {
      code: 'CONF_INVALID',
      message: `${F}: 'max_workers' must be greater than 0 (line 2)`,
      line: 2,
      key: 'max_workers',
    });
  });

  it('max_clients below max_anonymous_clients', () => {
    const what =
      'The overall maximum number of clients must not be less than the number of clients waiting for authentication';
    rejects('max_clients = 10', {
      code: 'CONF_INVALID',
      message: `${F}: max_clients: ${what} (line 1)`,
      line: 1,
      key: 'max_clients',
    });
    rejects('max_clients = 10\nmax_anonymous_clients = 11', {
      code: 'CONF_INVALID',
      message: `${F}: max_anonymous_clients: ${what} (line 2)`,
      line: 2,
      key: 'max_anonymous_clients',
    });
    assert.equal(load('max_clients = 10\nmax_anonymous_clients = 10').config.max_clients, 10);
    assert.equal(load('max_clients = 0\nmax_anonymous_clients = 0').config.max_anonymous_clients, 0);
  });

  it('octal perms', () => {
    assert.equal(socketMode(load('unix_sock_ro_perms = "0666"').config.unix_sock_ro_perms), 0o666);
    for (const [key, bad] of [
      ['unix_sock_ro_perms', '0778'],
      ['unix_sock_rw_perms', 'rw-rw----'],
      ['unix_sock_admin_perms', ''],
      ['unix_sock_rw_perms', '17777'],
    ] as const) {
      rejects(`${key} = "${bad}"`, {
        code: 'CONF_INVALID',
        message: `${F}: ${key}: Failed to parse mode '${bad}' (line 1)`,
        line: 1,
        key,
      });
    }
  });

  it('host_uuid_source', () => {
    rejects('host_uuid_source = "dmi"', {
      code: 'CONF_INVALID',
      message: `${F}: host_uuid_source: invalid UUID source: dmi (line 1)`,
      line: 1,
      key: 'host_uuid_source',
    });
    assert.equal(load('host_uuid_source = "smbios"').config.host_uuid_source, 'smbios');
  });

  it('host_uuid', () => {
    assert.equal(load('host_uuid = "0123456789abcdef0123456789ABCDEF"').config.host_uuid?.length, 32);
    assert.equal(load('host_uuid = "01-23456789abcdef0123456789ABCD-EF"').config.host_uuid?.length, 34);
    for (const bad of [
      '00000000-0000-0000-0000-000000000000',
      '0123456789abcdef0123456789abcde',
      '0123456789abcdef0123456789abcdef0',
      '0123456789abcdef0123456789abcdeg',
      '0-123456789abcdef0123456789abcdef',
    ]) {
      rejects(`host_uuid = "${bad}"`, {
        code: 'CONF_INVALID',
        message: `${F}: host_uuid: invalid host UUID: ${bad} (line 1)`,
        line: 1,
        key: 'host_uuid',
      });
    }
  });

  it('log_level above 4', () => {
    rejects('log_level = 5', {
      code: 'CONF_INVALID',
      message: `${F}: log_level: Failed to set logging priority, argument '5' is invalid (line 1)`,
      line: 1,
      key: 'log_level',
    });
  });

  it('reports the first problem in libvirt load order', () => {
    rejects('max_clients = "x"\nlisten_tcp = 3\n', {
      code: 'CONF_RANGE',
      message: `${F}: value for 'listen_tcp' parameter must be 0 or 1 (line 2)`,
      line: 2,
      key: 'listen_tcp',
    });
  });

  it('syntax errors come from the parser', () => {
    assert.throws(
      () => load('max_clients = \n'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message === `configuration file syntax error: ${F}:1: expecting a value` &&
        err.line === 1,
    );
  });
});

describe('our own keys', () => {
  it('backend_sock_dir', () => {
    assert.equal(load('backend_sock_dir = "/srv/sockets"', false).config.backend_sock_dir, '/srv/sockets');
    rejects('backend_sock_dir = "relative/dir"', {
      code: 'CONF_INVALID',
      message: `${F}: backend_sock_dir: expected an absolute directory, got 'relative/dir' (line 1)`,
      line: 1,
      key: 'backend_sock_dir',
    });
  });

  it('backend_sockets', () => {
    const c = load('backend_sockets = [\n  "qemu=/run/q/sock",\n  "network2=/x=y",\n]').config;
    assert.deepEqual(c.backend_sockets, [
      { driver: 'qemu', rwSocket: '/run/q/sock', roSocket: '/run/q/sock-ro' },
      { driver: 'network2', rwSocket: '/x=y', roSocket: '/x=y-ro' },
    ]);
    for (const bad of ['qemu', 'qemu=', 'QEMU=/s', '=/s', 'qemu=rel/s', 'qe-mu=/s', 'qemu =/s']) {
      rejects(`\nbackend_sockets = ["lxc=/ok", "${bad}"]`, {
        code: 'CONF_INVALID',
        message: `${F}: backend_sockets: invalid entry '${bad}', expected "driver=/absolute/socket/path" (line 2)`,
        line: 2,
        key: 'backend_sockets',
      });
    }
    rejects('backend_sockets = ["qemu=/a", "qemu=/b"]', {
      code: 'CONF_INVALID',
      message: `${F}: backend_sockets: driver 'qemu' is listed twice (line 1)`,
      line: 1,
      key: 'backend_sockets',
    });
  });

  it('metrics_listen', () => {
    assert.equal(load('metrics_listen = "127.0.0.1:9667"').config.metrics_listen, '127.0.0.1:9667');
    assert.equal(load('metrics_listen = "[::1]:9667"').config.metrics_listen, '[::1]:9667');
    assert.equal(load('metrics_listen = "localhost:1"').config.metrics_listen, 'localhost:1');
    for (const bad of ['9667', '127.0.0.1', '127.0.0.1:0', 'h:65536', '::1:9667', 'h:port', '']) {
      rejects(`metrics_listen = "${bad}"`, {
        code: 'CONF_INVALID',
        message: `${F}: metrics_listen: expected "host:port" with a port in 1..65535, got '${bad}' (line 1)`,
        line: 1,
        key: 'metrics_listen',
      });
    }
  });
});

describe('unknown and not-yet-supported keys', () => {
  it('ignores unknown keys but lists them, and lists known but unimplemented ones', () => {
    const r = load(
      'frobnicate = 1\nmax_clients = 90\naudit_level = 1\nkeepalive_required = 1\nmetrics_listen = "h:1"\nzzz = []\naudit_level = 0\n',
    );
    assert.deepEqual(r.unknownKeys, ['frobnicate', 'zzz']);
    assert.deepEqual(r.notSupportedYet, ['audit_level']);
    assert.equal(r.config.max_clients, 90);
  });

  it('IMPLEMENTED_KEYS are all known keys', () => {
    for (const key of IMPLEMENTED_KEYS) {
      assert.ok(LIBVIRT_KEYS.includes(key) || OWN_KEYS.includes(key), key);
    }
    assert.deepEqual(notSupportedYetKeys(IMPLEMENTED_KEYS), []);
    assert.deepEqual(notSupportedYetKeys(['audit_level', 'nope']), ['audit_level']);
  });
});

describe('xdg directories', () => {
  it('fall back like glib', () => {
    assert.equal(xdgConfigHome({ HOME: '/h', XDG_CONFIG_HOME: '/c' }), '/c');
    assert.equal(xdgConfigHome({ HOME: '/h', XDG_CONFIG_HOME: '' }), '/h/.config');
    assert.equal(xdgRuntimeDir({ HOME: '/h', XDG_RUNTIME_DIR: '/r', XDG_CACHE_HOME: '/k' }), '/r');
    assert.equal(xdgRuntimeDir({ HOME: '/h', XDG_CACHE_HOME: '/k' }), '/k');
    assert.equal(xdgRuntimeDir({ HOME: '/h' }), '/h/.cache');
  });
});

describe('loadDaemonConfig', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vpd-config-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads and validates a file', () => {
    const file = join(dir, 'a.conf');
    writeFileSync(file, 'max_clients = 42\nunix_sock_group = "ünïcode"\nwhat = 1\n');
    const r = loadDaemonConfig({ file, mustExist: true, privileged: false, env: ENV });
    assert.equal(r.config.max_clients, 42);
    assert.equal(r.config.unix_sock_group, 'ünïcode');
    assert.equal(r.config.auth_unix_rw, 'none');
    assert.deepEqual(r.unknownKeys, ['what']);
    assert.deepEqual(r.notSupportedYet, []);
  });

  it('a missing implicit file means defaults; a missing -f file is an error', () => {
    const file = join(dir, 'missing.conf');
    const r = loadDaemonConfig({ file, mustExist: false, privileged: true, env: ENV });
    assert.deepEqual(r.config, defaultDaemonConfig(true, ENV));
    assert.deepEqual(r.unknownKeys, []);
    assert.throws(
      () => loadDaemonConfig({ file, mustExist: true, privileged: true, env: ENV }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'CONF_READ' &&
        err.file === file &&
        err.message === `Failed to open file '${file}': No such file or directory`,
    );
  });

  it('reading a directory fails even when the file may be missing', () => {
    assert.throws(
      () => loadDaemonConfig({ file: dir, mustExist: false, privileged: true, env: ENV }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'CONF_READ' &&
        err.message === `Failed to read file '${dir}': Is a directory`,
    );
  });

  it('an unreadable file fails', { skip: process.getuid?.() === 0 ? 'root reads anything' : false }, () => {
    const file = join(dir, 'secret.conf');
    writeFileSync(file, 'a = 1\n');
    chmodSync(file, 0o000);
    assert.throws(
      () => loadDaemonConfig({ file, mustExist: false, privileged: true, env: ENV }),
      (err: unknown) =>
        err instanceof ConfigError && err.message === `Failed to open file '${file}': Permission denied`,
    );
  });

  it('refuses files over 10 MiB without parsing them', () => {
    const file = join(dir, 'big.conf');
    writeFileSync(file, Buffer.alloc(10 * 1024 * 1024 + 1, 0x23));
    assert.throws(
      () => loadDaemonConfig({ file, mustExist: true, privileged: true, env: ENV }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'CONF_TOO_LARGE' &&
        err.message === `Failed to read file '${file}': Value too large for defined data type`,
    );
    writeFileSync(file, Buffer.alloc(10 * 1024 * 1024, 0x23));
    assert.deepEqual(loadDaemonConfig({ file, mustExist: true, privileged: true, env: ENV }).unknownKeys, []);
  });

  it('reports syntax errors with the file path', () => {
    const file = join(dir, 'bad.conf');
    writeFileSync(file, 'a = 1\nb = [1 2]\n');
    assert.throws(
      () => loadDaemonConfig({ file, mustExist: true, privileged: true, env: ENV }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message === `configuration file syntax error: ${file}:2: expecting a separator in list`,
    );
  });
});
