/**
 * Checkpoints: `<runDir>/checkpoints/step-<8 digits>.safetensors`, written atomically. The
 * `__metadata__` holds `file_sha256`, `step` and `meta` (the caller's JSON: optimizer step, RNG
 * and data-source state, the config, ...). `file_sha256` is the hex SHA-256 of the whole file with
 * its own 64 digits read as '0': it covers the header (step, meta, the tensor table) as well as
 * the tensors, so a truncated or bit-flipped file, wherever the flip, is detected and the previous
 * checkpoint used instead.
 *
 * Checkpoints written before `file_sha256` existed carry `sha256`, the SHA-256 of the byte buffer
 * after the header only; they still load (their tensors verified) with
 * {@link Checkpoint.headerVerified} false, so a resume can say that their header is unchecked.
 *
 * @example
 * ```ts
 * import { loadLatestCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { f32Tensor } from "./safetensors.ts";
 * await saveCheckpoint("runs/x", 1000, { W_enc: f32Tensor([2], new Float32Array([1, 2])) }, { lr: 1e-4 });
 * const ck = await loadLatestCheckpoint("runs/x"); // { step: 1000, tensors, meta, path }
 * ```
 */

import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { UserError } from "../errors.ts";
import { atomicWrite, type Writer } from "./atomic.ts";
import { decodeSafetensors, encodeSafetensors, type Tensor } from "./safetensors.ts";

/** A loaded, verified checkpoint. */
export interface Checkpoint {
  path: string;
  step: number;
  tensors: Record<string, Tensor>;
  meta: Record<string, unknown>;
  /** Whether the checksum covered the header too (false for checkpoints that predate it). */
  headerVerified: boolean;
}

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** How many checkpoints to keep, newest first (default 3; at least 1). */
  keep?: number;
  /** Replaces the byte writer of the atomic write (tests inject failures with it). */
  writer?: Writer;
}

/** Options of {@link loadLatestCheckpoint}. */
export interface LoadLatestOptions {
  /** Where the one-line warning for each skipped checkpoint goes (default: stderr). */
  warn?: (line: string) => void;
}

const CHECKPOINT_RE = /^step-(\d{8,})\.safetensors$/;

/** The checkpoint directory of a run. */
function checkpointDir(runDir: string): string {
  return join(runDir, "checkpoints");
}

/** `step-00001000.safetensors` */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, "0")}.safetensors`;
}

function sha256Hex(chunks: Iterable<Uint8Array>): string {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return h.digest("hex");
}

/** The metadata key of the whole-file checksum, as it appears in the header's JSON. */
const FILE_SHA_NEEDLE = new TextEncoder().encode(`"file_sha256":"`);
const ZERO_DIGITS = new TextEncoder().encode("0".repeat(64));

/** Offset of the 64 digits of `file_sha256` in the header of `bytes`, or -1. */
function fileShaOffset(bytes: Uint8Array, headerEnd: number): number {
  const n = FILE_SHA_NEEDLE;
  outer: for (let i = 8; i + n.length + 64 <= headerEnd; i++) {
    for (let k = 0; k < n.length; k++) if (bytes[i + k] !== n[k]) continue outer;
    return i + n.length;
  }
  return -1;
}

/** SHA-256 of `bytes` with the 64 bytes at `at` read as the digit '0'. */
function fileSha(bytes: Uint8Array, at: number): string {
  return sha256Hex([bytes.subarray(0, at), ZERO_DIGITS, bytes.subarray(at + 64)]);
}

/**
 * Writes the checkpoint of `step` atomically, then deletes all but the newest `keep` checkpoints
 * (never the one just written). Returns its path.
 */
export async function saveCheckpoint(
  runDir: string,
  step: number,
  tensors: Record<string, Tensor>,
  meta: Record<string, unknown>,
  options: SaveCheckpointOptions = {},
): Promise<string> {
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`bad checkpoint step ${step}`);
  const keep = Math.max(1, options.keep ?? 3);
  const dir = checkpointDir(runDir);
  await Deno.mkdir(dir, { recursive: true });
  // The checksum goes first in the header, as zeros while the file is hashed, then the digits.
  const bytes = encodeSafetensors(tensors, {
    file_sha256: "0".repeat(64),
    step: String(step),
    meta: JSON.stringify(meta),
  });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const at = fileShaOffset(bytes, 8 + headerLen);
  bytes.set(new TextEncoder().encode(fileSha(bytes, at)), at);
  const path = join(dir, checkpointName(step));
  await atomicWrite(path, bytes, { writer: options.writer });

  const others = (await listCheckpoints(runDir)).map((c) => c.step).filter((s) => s !== step);
  for (const s of others.slice(keep - 1)) {
    await Deno.remove(join(dir, checkpointName(s))).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
  return path;
}

const TEMP_RE = /^step-\d{8,}\.safetensors\.tmp-[0-9a-f]+$/;

/**
 * Removes temporary files that a write killed before its rename left in the checkpoint directory
 * (they are never read; this only reclaims their space). Returns the names removed.
 */
export async function removeStaleTemps(runDir: string): Promise<string[]> {
  const dir = checkpointDir(runDir);
  const removed: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && TEMP_RE.test(e.name)) {
        await Deno.remove(join(dir, e.name)).catch(() => {});
        removed.push(e.name);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return removed;
}

/** The run's checkpoint files, newest step first. */
export async function listCheckpoints(runDir: string): Promise<{ step: number; path: string }[]> {
  const dir = checkpointDir(runDir);
  const found: { step: number; path: string }[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = e.isFile ? CHECKPOINT_RE.exec(e.name) : null;
      if (m) found.push({ step: Number(m[1]), path: join(dir, e.name) });
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return found.sort((a, b) => b.step - a.step);
}

/**
 * Reads, decodes and verifies one checkpoint. Throws a one-line UserError naming the file if it
 * is truncated, malformed or fails its checksum (whole-file, or the tensors' for an older file).
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new UserError(`checkpoint not found: ${path}`);
    throw err;
  }
  let decoded;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`checkpoint ${path}: ${err.message}`);
    throw err;
  }
  const { tensors, metadata } = decoded;
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  let headerVerified: boolean;
  if (typeof metadata.file_sha256 === "string") {
    const at = fileShaOffset(bytes, 8 + headerLen);
    const digits = at < 0 ? "" : new TextDecoder().decode(bytes.subarray(at, at + 64));
    if (digits !== metadata.file_sha256 || fileSha(bytes, at) !== digits) {
      throw new UserError(`checkpoint ${path}: checksum mismatch (the file is corrupt)`);
    }
    headerVerified = true;
  } else if (typeof metadata.sha256 === "string") {
    if (sha256Hex([bytes.subarray(8 + headerLen)]) !== metadata.sha256) {
      throw new UserError(`checkpoint ${path}: checksum mismatch (the file is corrupt)`);
    }
    headerVerified = false;
  } else {
    throw new UserError(`checkpoint ${path}: metadata has no 'file_sha256' (no checksum)`);
  }
  const step = Number(metadata.step);
  if (metadata.step === undefined || !/^\d+$/.test(metadata.step) || !Number.isSafeInteger(step)) {
    throw new UserError(`checkpoint ${path}: metadata has no valid 'step'`);
  }
  const named = CHECKPOINT_RE.exec(basename(path));
  if (named && Number(named[1]) !== step) {
    throw new UserError(
      `checkpoint ${path}: it holds step ${step}, not the step its name says (renamed?)`,
    );
  }
  let meta: unknown;
  try {
    meta = JSON.parse(metadata.meta ?? "{}");
  } catch {
    throw new UserError(`checkpoint ${path}: metadata 'meta' is not JSON`);
  }
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) {
    throw new UserError(`checkpoint ${path}: metadata 'meta' is not a JSON object`);
  }
  return { path, step, tensors, meta: meta as Record<string, unknown>, headerVerified };
}

/**
 * The newest checkpoint of `runDir` that decodes and verifies, or null if there is none. Each
 * corrupt or truncated one skipped on the way is reported in one warning line naming the file.
 */
export async function loadLatestCheckpoint(
  runDir: string,
  options: LoadLatestOptions = {},
): Promise<Checkpoint | null> {
  const warn = options.warn ?? ((line: string) => console.error(line));
  for (const { path } of await listCheckpoints(runDir)) {
    try {
      return await loadCheckpoint(path);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      warn(`warning: skipping unusable ${err.message}`);
    }
  }
  return null;
}
