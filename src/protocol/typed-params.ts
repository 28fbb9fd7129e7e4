// Protocol layer: libvirt's typed-parameter validation (virTypedParamsValidate): each parameter
// must be an allowed name, at most once, with its declared type. Used for client identities and
// the admin program's settings, with libvirt's error codes and texts.

import { VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_ERR_INVALID_ARG, VIR_FROM_NONE } from './constants.js';
import type { TypedParam } from './payloads.js';
import { remoteError, type RemoteError } from './remote-error.js';

const TYPE_NAMES = ['unknown', 'int', 'uint', 'llong', 'ullong', 'double', 'boolean', 'string'];

/** `typeOf` gives the allowed type of a name, or undefined when the name is not allowed. */
export function validateTypedParams(
  params: readonly TypedParam[],
  typeOf: (field: string) => number | undefined,
): RemoteError | null {
  // libvirt walks the parameters sorted by name (strcmp), so when several are bad the first in byte
  // order is reported, and a repeated name is reported before its type is looked at.
  const sorted = [...params].sort((a, b) => Buffer.compare(Buffer.from(a.field), Buffer.from(b.field)));
  let last: string | null = null;
  for (const p of sorted) {
    const want = typeOf(p.field);
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
