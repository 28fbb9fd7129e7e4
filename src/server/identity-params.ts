// Server layer: validation of CONNECT_SET_IDENTITY parameters, with the same rules and error
// texts as libvirt's typed-parameter checks (NOTES §5.3).

import {
  VIR_ERR_ARGUMENT_UNSUPPORTED,
  VIR_ERR_INVALID_ARG,
  VIR_FROM_NONE,
  VIR_TYPED_PARAM_LLONG,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_ULLONG,
} from '../protocol/constants.js';
import type { TypedParam } from '../protocol/payloads.js';
import { remoteError, type RemoteError } from '../protocol/remote-error.js';

const TYPE_NAMES = ['unknown', 'int', 'uint', 'llong', 'ullong', 'double', 'boolean', 'string'];

export const IDENTITY_PARAM_TYPES: ReadonlyMap<string, number> = new Map([
  ['user-name', VIR_TYPED_PARAM_STRING],
  ['unix-user-id', VIR_TYPED_PARAM_ULLONG],
  ['group-name', VIR_TYPED_PARAM_STRING],
  ['unix-group-id', VIR_TYPED_PARAM_ULLONG],
  ['process-id', VIR_TYPED_PARAM_LLONG],
  ['process-time', VIR_TYPED_PARAM_ULLONG],
  ['sasl-user-name', VIR_TYPED_PARAM_STRING],
  ['x509-distinguished-name', VIR_TYPED_PARAM_STRING],
  ['selinux-context', VIR_TYPED_PARAM_STRING],
  ['system.token', VIR_TYPED_PARAM_STRING],
]);

export function validateIdentityParams(params: readonly TypedParam[]): RemoteError | null {
  // libvirt walks the parameters sorted by name (strcmp), so when several are bad the first in byte
  // order is reported, and a repeated name is reported before its type is looked at.
  const sorted = [...params].sort((a, b) => Buffer.compare(Buffer.from(a.field), Buffer.from(b.field)));
  let last: string | null = null;
  for (const p of sorted) {
    const want = IDENTITY_PARAM_TYPES.get(p.field);
    if (want === undefined) {
      return remoteError(VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_FROM_NONE, `parameter '${p.field}' not supported`);
    }
    if (p.field === last) {
      return remoteError(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, `parameter '${p.field}' occurs multiple times`);
    }
    if (p.type !== want) {
      return remoteError(
        VIR_ERR_INVALID_ARG,
        VIR_FROM_NONE,
        `invalid type '${TYPE_NAMES[p.type] ?? 'unknown'}' for parameter '${p.field}', expected '${TYPE_NAMES[want]}'`,
      );
    }
    last = p.field;
  }
  return null;
}
