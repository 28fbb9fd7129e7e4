// Protocol layer: XDR payloads of the few procedures the proxy decodes or builds itself
// (open, auth, features, URI, identity, close event). Everything else is forwarded as bytes.

import {
  REMOTE_AUTH_TYPE_LIST_MAX,
  REMOTE_CONNECT_IDENTITY_PARAMS_MAX,
  REMOTE_STRING_MAX,
  VIR_TYPED_PARAM_BOOLEAN,
  VIR_TYPED_PARAM_DOUBLE,
  VIR_TYPED_PARAM_INT,
  VIR_TYPED_PARAM_LLONG,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_UINT,
  VIR_TYPED_PARAM_ULLONG,
} from './constants.js';
import { CodedError } from './coded-error.js';
import { XdrReader } from './xdr-reader.js';
import { XdrWriter } from './xdr-writer.js';

export interface ConnectOpenArgs {
  name: string | null;
  flags: number;
}

export function decodeConnectOpenArgs(payload: Buffer): ConnectOpenArgs {
  const r = new XdrReader(payload);
  const name = r.optional((x) => x.string(REMOTE_STRING_MAX));
  const flags = r.uint();
  return { name, flags };
}

export function encodeConnectOpenArgs(a: ConnectOpenArgs): Buffer {
  return new XdrWriter().optionalString(a.name).uint(a.flags).toBuffer();
}

export function decodeInt(payload: Buffer): number {
  return new XdrReader(payload).int();
}

export function encodeInt(v: number): Buffer {
  return new XdrWriter(4).int(v).toBuffer();
}

export function encodeString(s: string): Buffer {
  return new XdrWriter().string(s).toBuffer();
}

export function decodeAuthList(payload: Buffer): number[] {
  return new XdrReader(payload).array(REMOTE_AUTH_TYPE_LIST_MAX, (r) => r.int());
}

export function encodeAuthList(types: readonly number[]): Buffer {
  const w = new XdrWriter().uint(types.length);
  for (const t of types) w.int(t);
  return w.toBuffer();
}

export type TypedParamValue = number | bigint | boolean | string;

export interface TypedParam {
  field: string;
  type: number;
  value: TypedParamValue;
}

export function writeTypedParam(w: XdrWriter, p: TypedParam): void {
  w.string(p.field).int(p.type);
  switch (p.type) {
    case VIR_TYPED_PARAM_INT:
      w.int(Number(p.value));
      break;
    case VIR_TYPED_PARAM_UINT:
      w.uint(Number(p.value));
      break;
    case VIR_TYPED_PARAM_LLONG:
      w.hyper(BigInt(p.value));
      break;
    case VIR_TYPED_PARAM_ULLONG:
      w.uhyper(BigInt(p.value));
      break;
    case VIR_TYPED_PARAM_DOUBLE:
      w.double(Number(p.value));
      break;
    case VIR_TYPED_PARAM_BOOLEAN:
      w.int(p.value === true || p.value === 1 ? 1 : 0);
      break;
    case VIR_TYPED_PARAM_STRING:
      w.string(String(p.value));
      break;
    default:
      throw new CodedError('EXDR_PARAM_TYPE', `unknown typed parameter type ${p.type}`);
  }
}

export function readTypedParam(r: XdrReader): TypedParam {
  const field = r.string(REMOTE_STRING_MAX);
  const type = r.int();
  let value: TypedParamValue;
  switch (type) {
    case VIR_TYPED_PARAM_INT:
      value = r.int();
      break;
    case VIR_TYPED_PARAM_UINT:
      value = r.uint();
      break;
    case VIR_TYPED_PARAM_LLONG:
      value = r.hyper();
      break;
    case VIR_TYPED_PARAM_ULLONG:
      value = r.uhyper();
      break;
    case VIR_TYPED_PARAM_DOUBLE:
      value = r.double();
      break;
    case VIR_TYPED_PARAM_BOOLEAN:
      value = r.int() !== 0;
      break;
    case VIR_TYPED_PARAM_STRING:
      value = r.string(REMOTE_STRING_MAX);
      break;
    default:
      throw new CodedError('EXDR_PARAM_TYPE', `unknown typed parameter type ${type}`);
  }
  return { field, type, value };
}

export function encodeTypedParams(params: readonly TypedParam[]): XdrWriter {
  const w = new XdrWriter();
  w.uint(params.length);
  for (const p of params) writeTypedParam(w, p);
  return w;
}

export interface SetIdentityArgs {
  params: TypedParam[];
  flags: number;
}

export function decodeSetIdentityArgs(payload: Buffer): SetIdentityArgs {
  const r = new XdrReader(payload);
  const params = r.array(REMOTE_CONNECT_IDENTITY_PARAMS_MAX, readTypedParam);
  const flags = r.uint();
  return { params, flags };
}

export function encodeSetIdentityArgs(a: SetIdentityArgs): Buffer {
  return encodeTypedParams(a.params).uint(a.flags).toBuffer();
}
