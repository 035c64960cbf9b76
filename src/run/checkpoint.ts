/**
 * Checkpoints: `<runDir>/checkpoints/step-<8 digits>.safetensors`, written atomically. The
 * `__metadata__` holds `step`, `meta` (the caller's JSON: optimizer step, RNG and data-source
 * state, ...) and `sha256`, the hex SHA-256 of the byte buffer after the header, so a truncated
 * or bit-flipped file is detected and the previous checkpoint used instead.
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
import { join } from "node:path";
import { UserError } from "../errors.ts";
import { atomicWrite, type Writer } from "./atomic.ts";
import { decodeSafetensors, encodeSafetensors, type Tensor } from "./safetensors.ts";

/** A loaded, verified checkpoint. */
export interface Checkpoint {
  path: string;
  step: number;
  tensors: Record<string, Tensor>;
  meta: Record<string, unknown>;
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
  // The encoder lays tensors out in key order, so this is the hash of the file's byte buffer.
  const sha256 = sha256Hex(Object.values(tensors).map((t) => t.data));
  const bytes = encodeSafetensors(tensors, {
    step: String(step),
    meta: JSON.stringify(meta),
    sha256,
  });
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
 * is truncated, malformed or fails its checksum.
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
  const step = Number(metadata.step);
  if (metadata.step === undefined || !/^\d+$/.test(metadata.step) || !Number.isSafeInteger(step)) {
    throw new UserError(`checkpoint ${path}: metadata has no valid 'step'`);
  }
  if (typeof metadata.sha256 !== "string") {
    throw new UserError(`checkpoint ${path}: metadata has no 'sha256'`);
  }
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const actual = sha256Hex([bytes.subarray(8 + headerLen)]);
  if (actual !== metadata.sha256) {
    throw new UserError(`checkpoint ${path}: checksum mismatch (the file is corrupt)`);
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
  return { path, step, tensors, meta: meta as Record<string, unknown> };
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
