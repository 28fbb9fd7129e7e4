// Unit tests for CONNECT_SET_IDENTITY parameter validation (NOTES §5.3): the exact libvirt codes,
// domains and texts for unknown keys, wrong types and repeats, and which error wins when a request
// has several (libvirt checks the parameters sorted by name).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  VIR_ERR_ARGUMENT_UNSUPPORTED,
  VIR_ERR_INVALID_ARG,
  VIR_FROM_NONE,
  VIR_TYPED_PARAM_BOOLEAN,
  VIR_TYPED_PARAM_DOUBLE,
  VIR_TYPED_PARAM_INT,
  VIR_TYPED_PARAM_LLONG,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_UINT,
  VIR_TYPED_PARAM_ULLONG,
} from '../../../src/protocol/constants.js';
import type { TypedParam } from '../../../src/protocol/payloads.js';
import { IDENTITY_PARAM_TYPES, validateIdentityParams } from '../../../src/server/identity-params.js';

const str = (field: string, value = 'v'): TypedParam => ({ field, type: VIR_TYPED_PARAM_STRING, value });
const ull = (field: string, value = 0n): TypedParam => ({ field, type: VIR_TYPED_PARAM_ULLONG, value });
const ll = (field: string, value = 0n): TypedParam => ({ field, type: VIR_TYPED_PARAM_LLONG, value });

/** A complete identity as virtproxyd collects it for a local client (NOTES §5.1). */
const FULL: TypedParam[] = [
  str('user-name', 'alice'),
  ull('unix-user-id', 1000n),
  str('group-name', 'alice'),
  ull('unix-group-id', 1000n),
  ll('process-id', 4242n),
  ull('process-time', 123456n),
  str('sasl-user-name', 'alice@EXAMPLE'),
  str('x509-distinguished-name', 'CN=alice'),
  str('selinux-context', 'unconfined_u:unconfined_r:unconfined_t:s0'),
  str('system.token', 'abc'),
];

function expectError(params: TypedParam[], code: number, message: string): void {
  const e = validateIdentityParams(params);
  assert.ok(e !== null, 'expected an error');
  assert.equal(e.code, code);
  assert.equal(e.domain, VIR_FROM_NONE);
  assert.equal(e.message, message);
  assert.equal(e.level, 2);
}

describe('validateIdentityParams', () => {
  it('accepts the ten known keys with their types, in any order, and an empty list', () => {
    assert.equal(IDENTITY_PARAM_TYPES.size, 10);
    assert.equal(validateIdentityParams(FULL), null);
    assert.equal(validateIdentityParams([...FULL].reverse()), null);
    assert.equal(validateIdentityParams([]), null);
    assert.equal(validateIdentityParams([ll('process-id', -1n)]), null);
  });

  it('refuses an unknown key: ARGUMENT_UNSUPPORTED (74), domain NONE', () => {
    expectError(
      [str('user-name'), str('favourite-colour')],
      VIR_ERR_ARGUMENT_UNSUPPORTED,
      "argument unsupported: parameter 'favourite-colour' not supported",
    );
    const e = validateIdentityParams([str('x')]);
    assert.equal(e?.str2, "parameter 'x' not supported");
  });

  it('is case-sensitive about keys', () => {
    expectError(
      [str('User-Name')],
      VIR_ERR_ARGUMENT_UNSUPPORTED,
      "argument unsupported: parameter 'User-Name' not supported",
    );
  });

  it('refuses a wrong type: INVALID_ARG (8) naming the given and the expected type', () => {
    expectError(
      [str('unix-user-id')],
      VIR_ERR_INVALID_ARG,
      "invalid argument: invalid type 'string' for parameter 'unix-user-id', expected 'ullong'",
    );
    expectError(
      [ull('process-id')],
      VIR_ERR_INVALID_ARG,
      "invalid argument: invalid type 'ullong' for parameter 'process-id', expected 'llong'",
    );
    expectError(
      [ll('user-name')],
      VIR_ERR_INVALID_ARG,
      "invalid argument: invalid type 'llong' for parameter 'user-name', expected 'string'",
    );
  });

  it('names every virTypedParameterType, and "unknown" for anything else', () => {
    const names: Array<[number, string]> = [
      [VIR_TYPED_PARAM_INT, 'int'],
      [VIR_TYPED_PARAM_UINT, 'uint'],
      [VIR_TYPED_PARAM_LLONG, 'llong'],
      [VIR_TYPED_PARAM_ULLONG, 'ullong'],
      [VIR_TYPED_PARAM_DOUBLE, 'double'],
      [VIR_TYPED_PARAM_BOOLEAN, 'boolean'],
      [VIR_TYPED_PARAM_STRING, 'string'],
      [0, 'unknown'],
      [8, 'unknown'],
      [-1, 'unknown'],
    ];
    for (const [type, name] of names) {
      if (type === VIR_TYPED_PARAM_ULLONG) continue; // the right type for this key
      expectError(
        [{ field: 'unix-group-id', type, value: 0 }],
        VIR_ERR_INVALID_ARG,
        `invalid argument: invalid type '${name}' for parameter 'unix-group-id', expected 'ullong'`,
      );
    }
  });

  it('refuses a repeated key: INVALID_ARG (8) "occurs multiple times"', () => {
    expectError(
      [str('user-name', 'a'), ull('unix-user-id'), str('user-name', 'b')],
      VIR_ERR_INVALID_ARG,
      "invalid argument: parameter 'user-name' occurs multiple times",
    );
  });

  it('reports a repeat before looking at the repeated entry’s type', () => {
    expectError(
      [str('user-name'), ull('user-name')],
      VIR_ERR_INVALID_ARG,
      "invalid argument: parameter 'user-name' occurs multiple times",
    );
    // The first occurrence is still type-checked first.
    expectError(
      [ull('user-name'), str('user-name')],
      VIR_ERR_INVALID_ARG,
      "invalid argument: invalid type 'ullong' for parameter 'user-name', expected 'string'",
    );
  });

  it('with several bad entries, reports the first in name (byte) order, as libvirt does', () => {
    // 'group-name' sorts before 'zzz', whatever the order on the wire.
    const typeError = "invalid argument: invalid type 'ullong' for parameter 'group-name', expected 'string'";
    expectError([str('zzz'), ull('group-name')], VIR_ERR_INVALID_ARG, typeError);
    expectError([ull('group-name'), str('zzz')], VIR_ERR_INVALID_ARG, typeError);
    // 'aaa' sorts first, so the unknown key wins here.
    expectError(
      [ull('group-name'), str('aaa')],
      VIR_ERR_ARGUMENT_UNSUPPORTED,
      "argument unsupported: parameter 'aaa' not supported",
    );
    // Upper case sorts before lower case in byte order.
    expectError(
      [str('x509-distinguished-name'), str('user-name'), str('user-name'), str('Zed')],
      VIR_ERR_ARGUMENT_UNSUPPORTED,
      "argument unsupported: parameter 'Zed' not supported",
    );
    // A repeat of 'process-id' sorts before a bad 'user-name'.
    expectError(
      [ll('user-name'), ll('process-id'), ll('process-id')],
      VIR_ERR_INVALID_ARG,
      "invalid argument: parameter 'process-id' occurs multiple times",
    );
  });

  it('does not reorder the caller’s array', () => {
    const params = [str('zzz'), ull('group-name')];
    validateIdentityParams(params);
    assert.deepEqual(
      params.map((p) => p.field),
      ['zzz', 'group-name'],
    );
  });
});
