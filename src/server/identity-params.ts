// Server layer: validation of CONNECT_SET_IDENTITY parameters, with the same rules and error
// texts as libvirt's typed-parameter checks (NOTES §5.3).

import {
  VIR_TYPED_PARAM_LLONG,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_ULLONG,
} from '../protocol/constants.js';
import type { TypedParam } from '../protocol/payloads.js';
import type { RemoteError } from '../protocol/remote-error.js';
import { validateTypedParams } from '../protocol/typed-params.js';

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
  return validateTypedParams(params, (f) => IDENTITY_PARAM_TYPES.get(f));
}
