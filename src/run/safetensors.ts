/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON header (padded with spaces to 8-byte alignment), then the byte
 * buffer. The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets
 * relative to the byte buffer) and may hold `__metadata__`, a string → string map.
 *
 * Decoding trusts nothing: every size is checked against the file before it is used.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors, f32Tensor, tensorToF32 } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ w: f32Tensor([2, 2], new Float32Array([1, 2, 3, 4])) }, { step: "7" });
 * const { tensors, metadata } = decodeSafetensors(bytes);
 * tensorToF32(tensors.w); // Float32Array [1, 2, 3, 4]; metadata.step === "7"
 * ```
 */

import { UserError } from "../errors.ts";

/** Element types this toolkit reads and writes. */
export type Dtype = "F32" | "F16" | "BF16" | "I32" | "U32" | "F64";

/** One tensor: row-major little-endian bytes. */
export interface Tensor {
  dtype: Dtype;
  shape: number[];
  /** Exactly product(shape) × bytes-per-element bytes. */
  data: Uint8Array;
}

/** Bytes per element of each dtype. */
const DTYPE_SIZE: Record<Dtype, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F64: 8,
};

/** The spec's limit: a header longer than this is rejected before anything is allocated. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Encodes tensors (laid out in the object's key order) and optional string metadata.
 * Throws a plain Error on a malformed tensor: that is a bug in the caller, not user input.
 */
export function encodeSafetensors(
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Error(`safetensors metadata '${k}' is not a string`);
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === METADATA_KEY) throw new Error(`'${METADATA_KEY}' is not a valid tensor name`);
    if (!(t.dtype in DTYPE_SIZE)) throw new Error(`tensor '${name}': unknown dtype ${t.dtype}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`tensor '${name}': bad shape [${t.shape}]`);
    }
    const expected = numElements(t.shape) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new Error(
        `tensor '${name}': ${t.data.byteLength} bytes for ${t.dtype}[${t.shape}] (need ${expected})`,
      );
    }
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const t of Object.values(tensors)) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}

function bad(reason: string): UserError {
  return new UserError(`invalid safetensors file: ${reason}`);
}

function isOffset(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Decodes and validates a safetensors file. The returned tensors' `data` are views into `bytes`
 * (no copy). Throws a one-line UserError ("invalid safetensors file: ...") on any inconsistency.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  if (bytes.byteLength < 8) {
    throw bad(`${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bigLen = view.getBigUint64(0, true);
  if (bigLen > BigInt(MAX_HEADER_BYTES)) {
    throw bad(`header length ${bigLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLen = Number(bigLen);
  if (8 + headerLen > bytes.byteLength) {
    throw bad(
      `header length ${headerLen} runs past the end of the ${bytes.byteLength}-byte file (truncated?)`,
    );
  }
  const headerBytes = bytes.subarray(8, 8 + headerLen);
  if (headerBytes[0] !== 0x7b) throw bad("header does not start with '{'");
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw bad(`header is not valid JSON (${(err as Error).message.split("\n")[0]})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw bad("header is not a JSON object");
  }

  const metadata: Record<string, string> = {};
  const rawMeta = (header as Record<string, unknown>)[METADATA_KEY];
  if (rawMeta !== undefined) {
    if (typeof rawMeta !== "object" || rawMeta === null || Array.isArray(rawMeta)) {
      throw bad(`${METADATA_KEY} is not an object`);
    }
    for (const [k, v] of Object.entries(rawMeta)) {
      if (typeof v !== "string") throw bad(`${METADATA_KEY} value '${k}' is not a string`);
      if (k === "__proto__") throw bad(`${METADATA_KEY} key '__proto__' is not allowed`);
      metadata[k] = v;
    }
  }

  const dataStart = 8 + headerLen;
  const dataLen = bytes.byteLength - dataStart;
  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    if (name === "__proto__") throw bad("tensor name '__proto__' is not allowed");
    if (typeof info !== "object" || info === null || Array.isArray(info)) {
      throw bad(`tensor '${name}' entry is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_SIZE, dtype)) {
      throw bad(
        `tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)} (supported: ${
          Object.keys(DTYPE_SIZE).join(", ")
        })`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isOffset)) {
      throw bad(`tensor '${name}' shape ${JSON.stringify(shape)} is not a list of integers >= 0`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isOffset)) {
      throw bad(`tensor '${name}' data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as number[];
    if (begin > end || end > dataLen) {
      throw bad(
        `tensor '${name}' data_offsets [${begin}, ${end}] outside the ${dataLen}-byte data buffer`,
      );
    }
    // Overflow-safe: stop multiplying once the size exceeds the span it must equal.
    let need = DTYPE_SIZE[dtype as Dtype];
    for (const d of shape as number[]) {
      need *= d;
      if (need > end - begin) break;
    }
    if (need !== end - begin) {
      throw bad(
        `tensor '${name}' ${dtype}[${shape}] needs ${
          numElements(shape as number[]) * DTYPE_SIZE[dtype as Dtype]
        } bytes but data_offsets span ${end - begin}`,
      );
    }
    entries.push({ name, dtype: dtype as Dtype, shape: shape as number[], begin, end });
  }

  // The buffer must be covered exactly: no overlaps, no holes (the spec forbids both).
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of sorted) {
    if (e.begin < cursor) throw bad(`tensor '${e.name}' overlaps the tensor before it`);
    if (e.begin > cursor) throw bad(`hole in the data buffer before tensor '${e.name}'`);
    cursor = e.end;
  }
  if (cursor !== dataLen) {
    throw bad(`data buffer is ${dataLen} bytes but the tensors cover ${cursor}`);
  }

  const tensors: Record<string, Tensor> = {};
  for (const e of entries) {
    tensors[e.name] = {
      dtype: e.dtype,
      shape: e.shape,
      data: bytes.subarray(dataStart + e.begin, dataStart + e.end),
    };
  }
  return { tensors, metadata };
}

/** A F32 tensor of `values` (viewing its bytes, no copy, on little-endian machines). */
export function f32Tensor(shape: number[], values: Float32Array): Tensor {
  const n = numElements(shape);
  if (n !== values.length) {
    throw new Error(`f32Tensor: shape [${shape}] has ${n} elements, got ${values.length}`);
  }
  let data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (!LITTLE_ENDIAN) {
    data = new Uint8Array(values.byteLength);
    const view = new DataView(data.buffer);
    values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  }
  return { dtype: "F32", shape: [...shape], data };
}

/** IEEE 754 binary16 bits → number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A float tensor's values as a new Float32Array (F16, BF16 and F64 are converted). */
export function tensorToF32(t: Tensor): Float32Array {
  const size = DTYPE_SIZE[t.dtype];
  const n = t.data.byteLength / size;
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case "F32":
      if (LITTLE_ENDIAN) return new Float32Array(t.data.slice().buffer);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
      return out;
    case "BF16": {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      return out;
    }
    default:
      throw new UserError(`expected a float tensor (F32, F16, BF16, F64), got ${t.dtype}`);
  }
}
