/**
 * Activation shards in safetensors files: only the header (8-byte length + JSON) is read here;
 * rows are streamed from the data offset by src/data/files.ts, so a file of any size costs its
 * header's bytes. The tensor read is the one named (`acts.safetensors#NAME` on the command line)
 * or else the file's only 2-D tensor; F32, F16 and BF16 are supported.
 *
 * Like src/run/safetensors.ts the header is trusted in nothing: every length and offset is
 * checked against the file's size before anything is allocated or read.
 *
 * @example
 * ```ts
 * import { readSafetensorsShard } from "./safetensors_source.ts";
 * const shard = await readSafetensorsShard("acts.safetensors", "resid_post");
 * ```
 * @module
 */

import { UserError } from "../errors.ts";
import { MAX_HEADER_BYTES } from "../run/safetensors.ts";
import { openForRead, printable, readExactAt, type ShardDtype, type ShardInfo } from "./npy.ts";

/** Bytes per element of every dtype the safetensors format defines. */
const ELEMENT_SIZE: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

const READABLE: Record<string, ShardDtype> = { F32: "f32", F16: "f16", BF16: "bf16" };

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Reads and validates the header of the safetensors file at `path` and picks the tensor to read:
 * `tensor` when given, else the only 2-D tensor.
 */
export async function readSafetensorsShard(path: string, tensor?: string): Promise<ShardInfo> {
  const file = await openForRead(path);
  try {
    const size = (await file.stat()).size;
    if (size < 8) {
      throw new UserError(
        `${path} is not a safetensors file: ${size} bytes, shorter than the 8-byte header length`,
      );
    }
    const pre = new Uint8Array(8);
    await readExactAt(file, 0, pre, path);
    const bigLen = new DataView(pre.buffer).getBigUint64(0, true);
    if (bigLen > BigInt(MAX_HEADER_BYTES)) {
      throw new UserError(
        `${path}: safetensors header length ${bigLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
      );
    }
    const headerLen = Number(bigLen);
    if (8 + headerLen > size) {
      throw new UserError(
        `${path}: safetensors header length ${headerLen} runs past the end of the ${size}-byte file (truncated?)`,
      );
    }
    const header = new Uint8Array(headerLen);
    await readExactAt(file, 8, header, path);
    return parseSafetensorsHeader(header, size, path, tensor);
  } finally {
    file.close();
  }
}

/** Parses a header (the `headerLen` JSON bytes after the length) and picks the tensor. */
function parseSafetensorsHeader(
  bytes: Uint8Array,
  size: number,
  path: string,
  tensor?: string,
): ShardInfo {
  const bad = (reason: string) => new UserError(`${path}: invalid safetensors header: ${reason}`);
  if (bytes[0] !== 0x7b) throw bad("it does not start with '{'");
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw bad(`not valid JSON (${(err as Error).message.split("\n")[0]})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw bad("not a JSON object");
  }
  const dataStart = 8 + bytes.length;
  const dataLen = size - dataStart;
  const entries: Entry[] = [];
  let maxEnd = 0;
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (typeof info !== "object" || info === null || Array.isArray(info)) {
      throw bad(`tensor '${printable(name)}' entry is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== "string" || !Object.hasOwn(ELEMENT_SIZE, dtype)) {
      throw bad(
        `tensor '${printable(name)}' has unknown dtype ${JSON.stringify(dtype)?.slice(0, 40)}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isIndex)) {
      throw bad(`tensor '${printable(name)}' shape is not a list of integers >= 0`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      throw bad(`tensor '${printable(name)}' data_offsets is not [begin, end]`);
    }
    const [begin, end] = offsets as number[];
    if (begin > end) {
      throw bad(`tensor '${printable(name)}' data_offsets [${begin}, ${end}] end before begin`);
    }
    // Overflow-safe: stop multiplying once the size exceeds the span it must equal.
    let need = ELEMENT_SIZE[dtype];
    for (const d of shape as number[]) {
      need *= d;
      if (need > end - begin) break;
    }
    if (need !== end - begin) {
      throw bad(
        `tensor '${printable(name)}' ${dtype}[${shape}] does not fit its data_offsets span of ${
          end - begin
        } bytes`,
      );
    }
    maxEnd = Math.max(maxEnd, end);
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  if (maxEnd > dataLen) {
    throw new UserError(
      `${path} is truncated: its header needs ${dataStart + maxEnd} bytes but the file is ${size}`,
    );
  }
  const shown = (e: Entry) => `'${printable(e.name)}' ${e.dtype}[${e.shape.join(", ")}]`;
  let pick: Entry | undefined;
  if (tensor !== undefined) {
    pick = entries.find((e) => e.name === tensor);
    if (pick === undefined) {
      throw new UserError(
        `${path} has no tensor '${printable(tensor)}'; it holds ${
          entries.length === 0 ? "no tensors" : entries.slice(0, 10).map(shown).join(", ")
        }`,
      );
    }
    if (pick.shape.length !== 2) {
      throw new UserError(`${path}: tensor ${shown(pick)} is not 2-D [N, d]`);
    }
  } else {
    const twoD = entries.filter((e) => e.shape.length === 2);
    if (twoD.length !== 1) {
      const list = (twoD.length === 0 ? entries : twoD).slice(0, 10).map(shown).join(", ");
      throw new UserError(
        twoD.length === 0
          ? `${path} has no 2-D tensor to read rows from (it holds ${list || "no tensors"})`
          : `${path} has ${twoD.length} 2-D tensors (${list}); name one with --data '${path}#NAME'`,
      );
    }
    pick = twoD[0];
  }
  const dtype = READABLE[pick.dtype];
  if (dtype === undefined) {
    throw new UserError(
      `${path}: tensor '${
        printable(pick.name)
      }' has dtype ${pick.dtype}; supported: F32, F16, BF16`,
    );
  }
  if (pick.shape[1] === 0) throw new UserError(`${path}: tensor ${shown(pick)} has d = 0`);
  return {
    path,
    format: "safetensors",
    tensor: pick.name,
    dtype,
    rows: pick.shape[0],
    d: pick.shape[1],
    dataOffset: dataStart + pick.begin,
    fileSize: size,
  };
}

function isIndex(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
