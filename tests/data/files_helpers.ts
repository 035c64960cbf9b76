/**
 * Test builders for activation files, written byte by byte from the format specs (independent of
 * src/data/npy.ts's writer), and an independent reference decoder.
 */

/** Options of {@link npyFile}. */
export interface NpyOpts {
  /** Format major version: 1, 2 or 3. */
  version?: number;
  /** The descr string as written ('<f4', '<f2', '>f4', ...). */
  descr?: string;
  /** The fortran_order literal ("False", "True"). */
  fortran?: string;
  /** The shape literal, e.g. "(3, 4)". */
  shape?: string;
  /** Replaces the whole dict text. */
  dict?: string;
}

/** A .npy file: magic, version, header length, the dict padded to 64 bytes, then `data`. */
export function npyFile(data: Uint8Array, opts: NpyOpts = {}): Uint8Array {
  const version = opts.version ?? 1;
  const dict = opts.dict ??
    `{'descr': '${opts.descr ?? "<f4"}', 'fortran_order': ${opts.fortran ?? "False"}, 'shape': ${
      opts.shape ?? "(0, 1)"
    }, }`;
  const pre = version === 1 ? 10 : 12;
  let text = dict;
  while ((pre + text.length + 1) % 64 !== 0) text += " ";
  text += "\n";
  const head = new TextEncoder().encode(text); // ASCII in these tests (UTF-8 for v3)
  const out = new Uint8Array(pre + head.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  if (version === 1) {
    out[8] = head.length & 0xff;
    out[9] = head.length >> 8;
  } else {
    out[8] = head.length & 0xff;
    out[9] = (head.length >> 8) & 0xff;
    out[10] = (head.length >> 16) & 0xff;
    out[11] = head.length >>> 24;
  }
  out.set(head, pre);
  out.set(data, pre + head.length);
  return out;
}

/** Little-endian f32 bytes of `values`, one by one through a DataView. */
export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const v = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) v.setFloat32(i * 4, values[i], true);
  return out;
}

/** Little-endian u16 bytes (raw f16 / bf16 bit patterns). */
export function u16Bytes(bits: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(bits.length * 2);
  for (let i = 0; i < bits.length; i++) {
    out[2 * i] = bits[i] & 0xff;
    out[2 * i + 1] = bits[i] >> 8;
  }
  return out;
}

/** A safetensors file from a header object (serialised as given) and the data bytes. */
export function stFile(header: unknown, data: Uint8Array, pad = true): Uint8Array {
  let json = JSON.stringify(header);
  if (pad) { while (json.length % 8 !== 0) json += " "; }
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + data.length);
  let n = head.length;
  for (let i = 0; i < 8; i++) {
    out[i] = n % 256;
    n = Math.floor(n / 256);
  }
  out.set(head, 8);
  out.set(data, 8 + head.length);
  return out;
}

/** binary16 bits → number, from the IEEE 754 definition. */
export function refHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Decodes `count` elements of `dtype` at `offset` of `bytes` (reference for the readers). */
export function refDecode(
  bytes: Uint8Array,
  offset: number,
  count: number,
  dtype: "f32" | "f16" | "bf16",
): Float32Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    if (dtype === "f32") out[i] = v.getFloat32(offset + 4 * i, true);
    else if (dtype === "f16") out[i] = refHalf(v.getUint16(offset + 2 * i, true));
    else {
      const b = v.getUint16(offset + 2 * i, true);
      const u = new DataView(new ArrayBuffer(4));
      u.setUint32(0, b << 16);
      out[i] = u.getFloat32(0);
    }
  }
  return out;
}

/** Same values (NaN equal to NaN, +0 and -0 told apart) at every index. */
export function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}
