/**
 * NumPy `.npy` files (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
 * the magic `\x93NUMPY`, a version byte pair (1.0, 2.0 or 3.0), a little-endian header length (u16
 * in 1.0, u32 in 2.0 and 3.0), then a Python dict literal `{'descr': '<f4', 'fortran_order':
 * False, 'shape': (N, d), }` padded with spaces and a newline, then the raw row-major data.
 *
 * Only the header is parsed here; rows are streamed by src/data/files.ts. Every number in the
 * header is checked against the file's size before anything is allocated from it.
 *
 * @example
 * ```ts
 * import { readNpyShard } from "./npy.ts";
 * const shard = await readNpyShard("acts/shard0.npy"); // { rows, d, dtype: "f32", dataOffset, ... }
 * ```
 * @module
 */

import { UserError } from "../errors.ts";

/** Element types a shard may hold (converted to f32 on read). */
export type ShardDtype = "f32" | "f16" | "bf16";

/** Bytes per element of each {@link ShardDtype}. */
export const SHARD_DTYPE_SIZE: Record<ShardDtype, number> = { f32: 4, f16: 2, bf16: 2 };

/** One activation file's layout: a row-major [rows, d] matrix at `dataOffset`. */
export interface ShardInfo {
  /** The path as given (used in every message). */
  path: string;
  /** "npy" or "safetensors". */
  format: "npy" | "safetensors";
  /** The tensor read (safetensors only). */
  tensor?: string;
  /** Element type on disk. */
  dtype: ShardDtype;
  /** Number of rows N. */
  rows: number;
  /** Row width d. */
  d: number;
  /** Byte offset of row 0 in the file. */
  dataOffset: number;
  /** Size of the file in bytes when its header was read. */
  fileSize: number;
}

/** The magic string every .npy file starts with. */
const NPY_MAGIC = new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

/** Headers longer than this are rejected before they are read (numpy itself writes < 1 KiB). */
const NPY_MAX_HEADER_BYTES = 1 << 20;

const DESCRS: Record<string, ShardDtype> = { "<f4": "f32", "<f2": "f16" };

/** Reads exactly `buf.length` bytes at `pos`; a short file is a UserError naming `path`. */
export async function readExactAt(
  file: Deno.FsFile,
  pos: number,
  buf: Uint8Array,
  path: string,
): Promise<void> {
  await file.seek(pos, Deno.SeekMode.Start);
  let done = 0;
  while (done < buf.length) {
    const n = await file.read(buf.subarray(done));
    if (n === null) {
      throw new UserError(
        `${path} ended after ${pos + done} bytes while reading bytes ${pos}..${
          pos + buf.length
        } (was it truncated or changed while training?)`,
      );
    }
    done += n;
  }
}

/** Opens `path` for reading with a one-line UserError when it cannot be. */
export async function openForRead(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(`activation file not found: ${path}`);
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new UserError(`cannot read activation file ${path}: permission denied`);
    }
    throw err;
  }
}

/** Reads and validates the header of the .npy file at `path`. */
export async function readNpyShard(path: string): Promise<ShardInfo> {
  const file = await openForRead(path);
  try {
    const size = (await file.stat()).size;
    if (size < 10) {
      throw new UserError(`${path} is not a .npy file: ${size} bytes, shorter than its preamble`);
    }
    const pre = new Uint8Array(Math.min(12, size));
    await readExactAt(file, 0, pre, path);
    const { start, length } = parseNpyPreamble(pre, size, path);
    const header = new Uint8Array(length);
    await readExactAt(file, start, header, path);
    return parseNpyHeader(header, pre[6], start, size, path);
  } finally {
    file.close();
  }
}

/**
 * Checks the magic and version and returns where the header dict starts and how long it is;
 * `pre` is the file's first min(12, size) bytes.
 */
function parseNpyPreamble(
  pre: Uint8Array,
  size: number,
  path: string,
): { start: number; length: number } {
  for (let i = 0; i < NPY_MAGIC.length; i++) {
    if (pre[i] !== NPY_MAGIC[i]) {
      throw new UserError(`${path} is not a .npy file (it does not start with \\x93NUMPY)`);
    }
  }
  const major = pre[6];
  const minor = pre[7];
  if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) {
    throw new UserError(
      `${path}: unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`,
    );
  }
  const view = new DataView(pre.buffer, pre.byteOffset, pre.byteLength);
  if (major !== 1 && pre.length < 12) {
    throw new UserError(`${path} is truncated: ${size} bytes end inside the .npy preamble`);
  }
  const start = major === 1 ? 10 : 12;
  const length = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (length > NPY_MAX_HEADER_BYTES) {
    throw new UserError(
      `${path}: .npy header length ${length} exceeds the ${NPY_MAX_HEADER_BYTES}-byte limit (damaged file?)`,
    );
  }
  if (start + length > size) {
    throw new UserError(
      `${path}: .npy header length ${length} runs past the end of the ${size}-byte file (truncated?)`,
    );
  }
  return { start, length };
}

/** Parses the header dict (`bytes`, the `length` bytes after the preamble) into a shard layout. */
function parseNpyHeader(
  bytes: Uint8Array,
  major: number,
  start: number,
  size: number,
  path: string,
): ShardInfo {
  let text: string;
  try {
    text = new TextDecoder(major === 3 ? "utf-8" : "latin1", { fatal: true }).decode(bytes);
  } catch {
    throw new UserError(`${path}: .npy header is not valid ${major === 3 ? "UTF-8" : "latin-1"}`);
  }
  let dict: unknown;
  try {
    dict = parsePyLiteral(text);
  } catch (err) {
    throw new UserError(
      `${path}: .npy header is not a Python dict literal (${(err as Error).message})`,
    );
  }
  if (!(dict instanceof Map)) throw new UserError(`${path}: .npy header is not a dict`);
  const keys = [...dict.keys()];
  const want = ["descr", "fortran_order", "shape"];
  for (const k of keys) {
    if (typeof k !== "string" || !want.includes(k)) {
      throw new UserError(
        `${path}: .npy header has unexpected key ${
          pyRepr(k)
        } (expected exactly 'descr', 'fortran_order', 'shape')`,
      );
    }
  }
  for (const k of want) {
    if (!dict.has(k)) throw new UserError(`${path}: .npy header lacks '${k}'`);
  }
  const descr = dict.get("descr");
  if (typeof descr !== "string") {
    throw new UserError(
      `${path}: .npy dtype ${
        pyRepr(descr)
      } is a structured dtype; supported: '<f4' (float32), '<f2' (float16)`,
    );
  }
  const dtype = DESCRS[descr];
  if (dtype === undefined) {
    throw new UserError(
      `${path}: .npy dtype ${
        pyRepr(descr)
      } is not supported; supported: '<f4' (float32) and '<f2' (float16), little-endian (convert with a.astype('<f4'))`,
    );
  }
  const fortran = dict.get("fortran_order");
  if (fortran !== false) {
    throw new UserError(
      fortran === true
        ? `${path}: .npy data is in Fortran (column-major) order; save np.ascontiguousarray(a) instead`
        : `${path}: .npy 'fortran_order' is ${pyRepr(fortran)}, not False`,
    );
  }
  const shape = dict.get("shape");
  if (
    !Array.isArray(shape) || shape.length !== 2 ||
    !shape.every((v) => typeof v === "bigint" && v >= 0n)
  ) {
    throw new UserError(
      `${path}: .npy shape ${pyRepr(shape)} is not (N, d): activation files hold one row per token`,
    );
  }
  const [bigRows, bigD] = shape as bigint[];
  if (bigD === 0n || bigD > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new UserError(`${path}: .npy shape (${bigRows}, ${bigD}) has an impossible row width`);
  }
  const itemsize = SHARD_DTYPE_SIZE[dtype];
  const dataBytes = bigRows * bigD * BigInt(itemsize);
  const expected = BigInt(start + bytes.length) + dataBytes;
  if (expected !== BigInt(size)) {
    const what = expected > BigInt(size) ? "is truncated" : "has trailing bytes";
    throw new UserError(
      `${path} ${what}: header says (${bigRows}, ${bigD}) '${descr}', so the file should be ${expected} bytes, but it is ${size}`,
    );
  }
  return {
    path,
    format: "npy",
    dtype,
    rows: Number(bigRows),
    d: Number(bigD),
    dataOffset: start + bytes.length,
    fileSize: size,
  };
}

/**
 * The header of a version 1.0 .npy file for a C-order [rows, d] array of '<f4', '<f2' or '<i4'
 * (token ids beside activation shards), padded so the data starts at a multiple of 64 bytes (as
 * numpy writes it).
 */
export function encodeNpyHeader(rows: number, d: number, dtype: "f32" | "f16" | "i32"): Uint8Array {
  const descr = dtype === "f32" ? "<f4" : dtype === "f16" ? "<f2" : "<i4";
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${rows}, ${d}), }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - 10 - 1, " ") + "\n";
  if (dict.length > 0xffff) throw new Error("npy header too long for version 1.0");
  const out = new Uint8Array(total);
  out.set(NPY_MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// A parser for the Python literals a .npy header holds: dicts (as Map), tuples and lists (as
// arrays), strings, integers (as bigint, with Python 2's 'L' suffix), True, False, None.

type PyValue = string | bigint | boolean | null | PyValue[] | Map<PyValue, PyValue>;

const MAX_DEPTH = 16;

/** Parses one Python literal spanning all of `text` (surrounding whitespace allowed). */
export function parsePyLiteral(text: string): PyValue {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const fail = (what: string): never => {
    throw new Error(`${what} at character ${i}`);
  };
  const value = (depth: number): PyValue => {
    if (depth > MAX_DEPTH) fail("nesting too deep");
    ws();
    const c = text[i];
    if (c === undefined) return fail("unexpected end");
    if (c === "{" || c === "(" || c === "[") {
      const close = c === "{" ? "}" : c === "(" ? ")" : "]";
      i++;
      const items: PyValue[] = [];
      const map = new Map<PyValue, PyValue>();
      let sawComma = false;
      for (;;) {
        ws();
        if (text[i] === close) {
          i++;
          break;
        }
        if (items.length + map.size > 0 && !sawComma) fail(`expected ',' or '${close}'`);
        const v = value(depth + 1);
        if (c === "{") {
          if (typeof v === "object" && v !== null) fail("unhashable dict key");
          ws();
          if (text[i] !== ":") fail("expected ':'");
          i++;
          map.set(v, value(depth + 1));
        } else items.push(v);
        ws();
        sawComma = text[i] === ",";
        if (sawComma) i++;
      }
      if (c === "{") return map;
      // (x) without a comma is just x in Python.
      if (c === "(" && items.length === 1 && !sawComma) return items[0];
      return items;
    }
    if (c === "'" || c === '"') {
      i++;
      let s = "";
      for (;;) {
        const ch = text[i];
        if (ch === undefined || ch === "\n") fail("unterminated string");
        i++;
        if (ch === c) return s;
        if (ch === "\\") {
          const e = text[i++];
          if (e === undefined) fail("unterminated string");
          s += e === "n" ? "\n" : e === "t" ? "\t" : e;
        } else s += ch;
      }
    }
    const m = /^(?:[+-]?\d+L?|True|False|None)/.exec(text.slice(i, i + 64));
    if (!m) return fail(`unexpected ${JSON.stringify(c)}`);
    i += m[0].length;
    if (m[0] === "True") return true;
    if (m[0] === "False") return false;
    if (m[0] === "None") return null;
    return BigInt(m[0].replace("L", ""));
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("trailing characters");
  return v;
}

/**
 * `text` with control characters escaped (\n, \x07, ...) and cut to `max` characters, for
 * one-line messages that quote file contents.
 */
export function printable(text: string, max = 60): string {
  // deno-lint-ignore no-control-regex
  const s = text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    const hex = c.charCodeAt(0).toString(16).padStart(2, "0");
    return c === "\n" ? "\\n" : c === "\t" ? "\\t" : `\\x${hex}`;
  });
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** A Python-looking rendering of a parsed value for messages (short). */
function pyRepr(v: unknown): string {
  const r = (x: unknown): string => {
    if (typeof x === "string") return `'${printable(x)}'`;
    if (typeof x === "bigint") return String(x);
    if (x === true) return "True";
    if (x === false) return "False";
    if (x === null) return "None";
    if (x === undefined) return "nothing";
    if (Array.isArray(x)) return `(${x.map(r).join(", ")}${x.length === 1 ? "," : ""})`;
    if (x instanceof Map) return `{${[...x].map(([k, val]) => `${r(k)}: ${r(val)}`).join(", ")}}`;
    return String(x);
  };
  const s = r(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

// ---------------------------------------------------------------------------------------------
// Element conversion.

let halfTable: Float32Array | null = null;

/** HALF[h]: the f32 value of binary16 bits h (a 256 KiB table built on first use). */
export function halfToFloatTable(): Float32Array {
  if (halfTable === null) {
    const bits = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) bits[i] = i;
    halfTable = new Float32Array(65536);
    halfTable.set(new Float16Array(bits.buffer));
  }
  return halfTable;
}
