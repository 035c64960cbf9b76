/**
 * Activations the user brings: a set of .npy / .safetensors shards, each a row-major [N, d]
 * matrix, streamed row by row through a bounded read buffer, shard after shard, looping over the
 * set (epochs). Nothing ever holds more than one read chunk of a shard.
 *
 * A data spec is a path, a directory (its *.npy and *.safetensors files, or the shards its
 * harvest manifest.json lists: src/lm/harvest.ts) or a glob (`*`, `?`,
 * `[abc]`, `**` for any depth of directories), optionally followed by `#NAME` after a
 * `.safetensors` pattern to pick the tensor read: `acts/*.safetensors#blocks.6.hook_resid_post`.
 * Shards are read in natural order of their paths (shard2 before shard10).
 *
 * Each shard is identified by its content ({@link shardContentId}), not its name: a checkpoint's
 * data state lists the shards' content IDs, and a resume over files that differ (same names and
 * shapes, other data) is refused naming the first shard that differs.
 *
 * @example
 * ```ts
 * import { FileSource } from "./files.ts";
 * const src = await FileSource.open("acts/*.npy", 768);
 * const x = new Float32Array(256 * 768); // x: [256, 768] f32, row-major
 * await src.nextBatch(x);
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { UserError } from "../errors.ts";
import {
  halfToFloatTable,
  openForRead,
  readExactAt,
  readNpyShard,
  SHARD_DTYPE_SIZE,
  type ShardInfo,
} from "./npy.ts";
import { readSafetensorsShard } from "./safetensors_source.ts";
import type { ActivationSource } from "./source.ts";

/** Options of {@link FileSource}. */
export interface FileSourceOptions {
  /** Tensor read from .safetensors shards (default: the `#NAME` of the spec, else the only 2-D one). */
  tensor?: string;
  /** Skip rows holding NaN/Inf (counted) instead of stopping with an error. */
  skipBadRows?: boolean;
  /** Bytes read per call into the file (default 4 MiB; at least one row). */
  readBytes?: number;
  /** Where notes (epoch ends, skipped rows) go (default: console.error). */
  log?: (line: string) => void;
}

/** Serialised state of a {@link FileSource}. */
export interface FileSourceState {
  /** Tag checked on restore. */
  kind: "files";
  /**
   * Format version: 2 identifies the shards by content; 1 (older checkpoints) by a hash of their
   * names and row counts (`fingerprint`), still accepted with a warning.
   */
  version: 2;
  /** Number of shards, total rows and row width: must match. */
  shards: number;
  rows: number;
  dIn: number;
  /** Each shard's {@link shardContentId}, in reading order: must match. */
  content: string[];
  /** Next shard to read and the next row in it. */
  shard: number;
  row: number;
  /** Passes over the shard set completed. */
  epoch: number;
  /** Rows skipped for NaN/Inf so far. */
  skipped: number;
}

const DEFAULT_READ_BYTES = 4 << 20;

/** Splits `pattern#tensor` (only after a .safetensors pattern) into its parts. */
function parseDataSpec(spec: string): { pattern: string; tensor?: string } {
  const m = /^(.*\.safetensors)#([^/]+)$/.exec(spec);
  return m ? { pattern: m[1], tensor: m[2] } : { pattern: spec };
}

/** The ActivationSource over a list of shards. */
export class FileSource implements ActivationSource {
  /** Row width (every shard's d). */
  readonly dIn: number;
  /** "files(acts/*.npy: 3 shards, 12,000 rows)". */
  readonly description: string;
  /** The shards, in reading order. */
  readonly shards: readonly ShardInfo[];
  /** Rows in all shards together. */
  readonly totalRows: number;

  private readonly skipBadRows: boolean;
  private readonly chunkBytes: number;
  private readonly log: (line: string) => void;
  private readonly content: string[];
  private shard = 0;
  private row = 0;
  private epoch = 0;
  private skipped = 0;
  private scratch: Uint8Array | null = null;

  /**
   * Expands `spec`, reads every shard's header and checks each shard's d against `dIn`, all
   * before any row is read.
   */
  static async open(spec: string, dIn: number, opts: FileSourceOptions = {}): Promise<FileSource> {
    const { pattern, tensor: specTensor } = parseDataSpec(spec);
    const tensor = opts.tensor ?? specTensor;
    const paths = await expandDataPaths(pattern);
    const shards: ShardInfo[] = [];
    const content: string[] = [];
    for (const p of paths) {
      const shard = await readShard(p, tensor);
      if (shard.d !== dIn) {
        throw new UserError(
          `shard ${p} has d=${shard.d} but d_in is ${dIn}; pass --d-in ${shard.d}`,
        );
      }
      shards.push(shard);
      content.push(await shardContentId(shard));
    }
    return new FileSource(shards, `files(${spec})`, opts, content);
  }

  /**
   * A source over already-read shards (they must share one d and hold at least one row);
   * `content`: their {@link shardContentId}s (default: their layouts only, for sources built in
   * memory by tests).
   */
  constructor(
    shards: ShardInfo[],
    description: string,
    opts: FileSourceOptions = {},
    content?: string[],
  ) {
    if (shards.length === 0) throw new UserError(`${description}: no activation files`);
    const d = shards[0].d;
    for (const s of shards) {
      if (s.d !== d) {
        throw new UserError(`shard ${s.path} has d=${s.d} but ${shards[0].path} has d=${d}`);
      }
    }
    this.shards = shards;
    this.dIn = d;
    this.totalRows = shards.reduce((n, s) => n + s.rows, 0);
    if (this.totalRows === 0) {
      throw new UserError(`${description}: the activation files hold no rows`);
    }
    this.description = `${description.replace(/\)$/, "")}: ${shards.length} shard${
      shards.length === 1 ? "" : "s"
    }, ${this.totalRows} rows)`;
    this.skipBadRows = opts.skipBadRows === true;
    const rowBytes = d * 4;
    this.chunkBytes = Math.max(rowBytes, opts.readBytes ?? DEFAULT_READ_BYTES);
    this.log = opts.log ?? ((line) => console.error(line));
    this.content = content ?? shards.map((s) => `layout:${layoutOf(s)}`);
  }

  /** Fills `out` ([rows, dIn] f32, row-major) with the next rows of the shard stream. */
  async nextBatch(out: Float32Array): Promise<void> {
    const d = this.dIn;
    if (out.length % d !== 0) {
      throw new Error(`file source: batch buffer length ${out.length} is not a multiple of d=${d}`);
    }
    const want = out.length / d;
    let filled = 0;
    let file: Deno.FsFile | null = null;
    let fileShard = -1;
    let sinceGood = 0;
    try {
      while (filled < want) {
        const sh = this.shards[this.shard];
        if (this.row >= sh.rows) {
          this.shard++;
          this.row = 0;
          if (this.shard === this.shards.length) this.endEpoch();
          continue;
        }
        if (fileShard !== this.shard) {
          file?.close();
          file = null;
          file = await openShard(sh);
          fileShard = this.shard;
        }
        const itemsize = SHARD_DTYPE_SIZE[sh.dtype];
        const chunkRows = Math.max(1, Math.floor(this.chunkBytes / (d * itemsize)));
        const take = Math.min(want - filled, sh.rows - this.row, chunkRows);
        const dst = out.subarray(filled * d, (filled + take) * d);
        await this.readRows(file!, sh, this.row, dst);
        const good = this.keepFinite(dst, take, sh);
        filled += good;
        sinceGood = good > 0 ? 0 : sinceGood + take;
        if (sinceGood >= this.totalRows) {
          throw new UserError(
            `every row of ${this.description} has NaN/Inf (${this.skipped} skipped); check the data`,
          );
        }
      }
    } finally {
      file?.close();
    }
  }

  /** JSON-serialisable stream position. */
  state(): FileSourceState {
    return {
      kind: "files",
      version: 2,
      shards: this.shards.length,
      rows: this.totalRows,
      dIn: this.dIn,
      content: [...this.content],
      shard: this.shard,
      row: this.row,
      epoch: this.epoch,
      skipped: this.skipped,
    };
  }

  /**
   * Continues from a {@link FileSource.state} of a source over the same shards: the same number,
   * rows and width, and the same content shard by shard (version 1 states, which predate content
   * IDs, are matched by names and row counts, with a warning).
   */
  restore(state: unknown): void {
    const s = state as
      | Partial<Omit<FileSourceState, "version"> & { version: 1 | 2; fingerprint: string }>
      | null;
    const ints = ["shards", "rows", "dIn", "shard", "row", "epoch", "skipped"] as const;
    const v1 = s?.version === 1 && typeof s.fingerprint === "string";
    const v2 = s?.version === 2 && Array.isArray(s.content) &&
      s.content.every((c) => typeof c === "string");
    if (
      !s || typeof s !== "object" || s.kind !== "files" || !(v1 || v2) ||
      !ints.every((k) => Number.isSafeInteger(s[k]) && (s[k] as number) >= 0)
    ) {
      throw new UserError(
        "file source: the saved data state is not an activation-file state; resume with the data the run was started with",
      );
    }
    if (s.shards !== this.shards.length || s.rows !== this.totalRows || s.dIn !== this.dIn) {
      throw new UserError(
        `file source: the run was started on ${s.shards} shards with ${s.rows} rows of d=${s.dIn} but ${this.description} has ${this.shards.length} shards with ${this.totalRows} rows of d=${this.dIn}; resume with the same files`,
      );
    }
    if (v2) {
      const i = this.content.findIndex((c, k) => c !== s.content![k]);
      if (i >= 0) {
        throw new UserError(
          `file source: ${this.shards[i].path} (shard ${i + 1} of ${this.shards.length}) is not ` +
            `the file the run was started with: same shape, other content (${
              briefId(s.content![i])
            } then, ${briefId(this.content[i])} now); resume with the same files`,
        );
      }
    } else {
      const names = fnv1a(this.shards.map((x) => `${baseName(x.path)}:${x.rows}`).join("\n"));
      if (names !== s.fingerprint) {
        throw new UserError(
          `file source: the run was started on other file names or row counts than ${this.description}; resume with the same files`,
        );
      }
      this.log(
        "warning: the checkpoint predates content checks of the data: the files are matched by " +
          "name and row count only",
      );
    }
    if (s.shard! >= this.shards.length || s.row! > this.shards[s.shard!].rows) {
      throw new UserError(
        `file source: the saved position (shard ${s.shard}, row ${s.row}) is outside the files; the checkpoint is damaged`,
      );
    }
    this.shard = s.shard!;
    this.row = s.row!;
    this.epoch = s.epoch!;
    this.skipped = s.skipped!;
  }

  /** Rows skipped for NaN/Inf so far. */
  get skippedRows(): number {
    return this.skipped;
  }

  /** Completed passes over the shard set. */
  get epochs(): number {
    return this.epoch;
  }

  private endEpoch(): void {
    this.shard = 0;
    this.epoch++;
    const skipped = this.skipBadRows ? `, ${this.skipped} rows with NaN/Inf skipped so far` : "";
    this.log(
      `data: epoch ${this.epoch} done (${this.totalRows} rows in ${this.shards.length} shard${
        this.shards.length === 1 ? "" : "s"
      }${skipped}); starting epoch ${this.epoch + 1} from the first shard`,
    );
  }

  /** Reads rows [row, row + dst.length / d) of `sh` into `dst` as f32, one chunk per read. */
  private async readRows(
    file: Deno.FsFile,
    sh: ShardInfo,
    row: number,
    dst: Float32Array,
  ): Promise<void> {
    const itemsize = SHARD_DTYPE_SIZE[sh.dtype];
    const pos = sh.dataOffset + row * sh.d * itemsize;
    if (sh.dtype === "f32") {
      // Little-endian f32 on disk: read straight into the output.
      await readExactAt(
        file,
        pos,
        new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength),
        sh.path,
      );
      return;
    }
    const n = dst.length;
    if (this.scratch === null || this.scratch.length < n * 2) {
      this.scratch = new Uint8Array(Math.max(n * 2, Math.min(this.chunkBytes, 1 << 20)));
    }
    const bytes = this.scratch.subarray(0, n * 2);
    await readExactAt(file, pos, bytes, sh.path);
    const half = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    if (sh.dtype === "f16") {
      const table = halfToFloatTable();
      for (let i = 0; i < n; i++) dst[i] = table[half[i]];
    } else {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) bits[i] = half[i] << 16;
    }
  }

  /**
   * Checks the `n` rows just read into `dst` (those of `sh` from this.row on) for NaN/Inf: an
   * error naming the shard and row, or (skipping) compacts the finite rows to the front. Advances
   * the row position and returns the number of rows kept.
   */
  private keepFinite(dst: Float32Array, n: number, sh: ShardInfo): number {
    const d = this.dIn;
    let kept = 0;
    for (let r = 0; r < n; r++) {
      const o = r * d;
      let ok = true;
      for (let k = 0; k < d; k++) {
        const v = dst[o + k];
        // NaN - NaN and Inf - Inf are NaN; NaN !== NaN.
        if (v - v !== 0) {
          ok = false;
          break;
        }
      }
      if (!ok) {
        const at = this.row + r;
        if (!this.skipBadRows) {
          throw new UserError(
            `${sh.path} row ${at} has NaN/Inf; clean the data or pass --skip-bad-rows`,
          );
        }
        if (this.skipped === 0) {
          this.log(
            `data: skipping rows with NaN/Inf (first: ${sh.path} row ${at}); counts follow at each epoch's end`,
          );
        }
        this.skipped++;
        continue;
      }
      if (kept !== r) dst.copyWithin(kept * d, o, o + d);
      kept++;
    }
    this.row += n;
    return kept;
  }
}

/**
 * The row width of the activation files `spec` names (same syntax as {@link FileSource.open}),
 * from their headers, with the first shard's path; shards of different widths stop with a
 * UserError naming two of them.
 */
export async function dataWidth(spec: string): Promise<{ d: number; path: string }> {
  const { pattern, tensor } = parseDataSpec(spec);
  let first: ShardInfo | null = null;
  for (const p of await expandDataPaths(pattern)) {
    const shard = await readShard(p, tensor);
    first ??= shard;
    if (shard.d !== first.d) {
      throw new UserError(`shard ${p} has d=${shard.d} but ${first.path} has d=${first.d}`);
    }
  }
  if (first === null) throw new UserError(`${spec}: no activation files`);
  return { d: first.d, path: first.path };
}

/** A shard is hashed whole up to this size; a larger one is sampled ({@link shardContentId}). */
export const FULL_HASH_BYTES = 16 << 20;
/** Blocks read from a sampled shard, and their size. */
const SAMPLE_BLOCKS = 64;
const SAMPLE_BLOCK_BYTES = 64 << 10;

/**
 * What a shard holds, identified by its content: `sha256:<hex>` of its layout (format, tensor,
 * dtype, rows, d, data offset, file size) and every byte, for a file of at most
 * {@link FULL_HASH_BYTES}; `sha256-sampled:<hex>` of its layout and 64 blocks of 64 KiB spread
 * evenly over a larger file, the first and the last included: 4 MiB read whatever the size
 * (7–27 ms for a 1 GiB file here, where hashing it whole takes 0.7–0.8 s from the page cache and
 * far longer from a disk). Another file of the same name and shape differs in every sampled
 * block; an edit of a sampled file that misses all 64 blocks goes unseen.
 */
export async function shardContentId(sh: ShardInfo): Promise<string> {
  const hash = createHash("sha256");
  hash.update(layoutOf(sh));
  const file = await openForRead(sh.path);
  try {
    const size = (await file.stat()).size;
    if (size !== sh.fileSize) {
      throw new UserError(
        `${sh.path} changed while being opened: it was ${sh.fileSize} bytes and is now ${size}`,
      );
    }
    if (size <= FULL_HASH_BYTES) {
      const buf = new Uint8Array(Math.max(1, Math.min(size, 4 << 20)));
      for (let pos = 0; pos < size; pos += buf.length) {
        const part = buf.subarray(0, Math.min(buf.length, size - pos));
        await readExactAt(file, pos, part, sh.path);
        hash.update(part);
      }
      return `sha256:${hash.digest("hex")}`;
    }
    const block = new Uint8Array(SAMPLE_BLOCK_BYTES);
    for (let i = 0; i < SAMPLE_BLOCKS; i++) {
      const pos = Math.floor((i * (size - block.length)) / (SAMPLE_BLOCKS - 1));
      await readExactAt(file, pos, block, sh.path);
      hash.update(block);
    }
    return `sha256-sampled:${hash.digest("hex")}`;
  } finally {
    file.close();
  }
}

/** A shard's layout as text (part of its content ID). */
function layoutOf(sh: ShardInfo): string {
  return JSON.stringify([
    sh.format,
    sh.tensor ?? null,
    sh.dtype,
    sh.rows,
    sh.d,
    sh.dataOffset,
    sh.fileSize,
  ]);
}

/** "sha256:1a2b3c4d5e6f…" */
function briefId(id: string): string {
  const at = id.indexOf(":");
  return at < 0 ? id : `${id.slice(0, at)} ${id.slice(at + 1, at + 13)}…`;
}

/** Reads the header of one shard, by its extension. */
export function readShard(path: string, tensor?: string): Promise<ShardInfo> {
  if (/\.npy$/i.test(path)) return readNpyShard(path);
  if (/\.safetensors$/i.test(path)) return readSafetensorsShard(path, tensor);
  return Promise.reject(
    new UserError(`${path}: unsupported activation file (expected .npy or .safetensors)`),
  );
}

/** Opens a shard for reading rows, checking it has not changed size since its header was read. */
async function openShard(sh: ShardInfo): Promise<Deno.FsFile> {
  const file = await openForRead(sh.path);
  try {
    const size = (await file.stat()).size;
    if (size !== sh.fileSize) {
      throw new UserError(
        `${sh.path} changed while in use: it was ${sh.fileSize} bytes and is now ${size}`,
      );
    }
  } catch (err) {
    file.close();
    throw err;
  }
  return file;
}

// ---------------------------------------------------------------------------------------------
// Paths and globs.

const GLOB_CHARS = /[*?[]/;

/**
 * The shard paths a data spec names, in natural order: a file, a directory's *.npy and
 * *.safetensors files, or a glob. Throws a UserError when nothing matches.
 */
export async function expandDataPaths(pattern: string): Promise<string[]> {
  if (!GLOB_CHARS.test(pattern)) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(pattern);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new UserError(
          `activation data '${pattern}' not found (give a .npy/.safetensors file, a directory or a glob, or 'synthetic')`,
        );
      }
      throw err;
    }
    if (!info.isDirectory) return [pattern];
    const harvested = await harvestShards(pattern);
    if (harvested !== null) return harvested;
    const found: string[] = [];
    for await (const e of Deno.readDir(pattern)) {
      if (/\.(npy|safetensors)$/i.test(e.name) && !e.name.startsWith(".")) {
        const p = joinPath(pattern, e.name);
        if ((await statOrNull(p))?.isFile) found.push(p);
      }
    }
    if (found.length === 0) {
      throw new UserError(`directory ${pattern} holds no .npy or .safetensors files`);
    }
    return found.sort(naturalCompare);
  }
  const matches = await expandGlob(pattern);
  if (matches.length === 0) {
    throw new UserError(`the glob '${pattern}' matches no files`);
  }
  return matches;
}

/**
 * The activation shards a harvest directory's manifest.json lists (`sae harvest` writes token-id
 * files beside them, which are not activations), or null when `dir` holds no harvest manifest.
 */
async function harvestShards(dir: string): Promise<string[] | null> {
  const path = joinPath(dir, "manifest.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  let m: { format?: unknown; shards?: { acts?: unknown }[] };
  try {
    m = JSON.parse(text);
  } catch {
    return null; // Not a harvest's manifest (those are written atomically).
  }
  if (m?.format !== "sae-harvest") return null;
  const shards = Array.isArray(m.shards) ? m.shards : [];
  const paths = shards.map((s) => s?.acts).filter((a): a is string => typeof a === "string");
  if (paths.length === 0) {
    throw new UserError(
      `${path} lists no completed shards yet; finish the harvest (--resume) first`,
    );
  }
  return paths.map((a) => joinPath(dir, a));
}

/** Files matching a glob (`*`, `?`, `[...]` within a path segment; `**` for any directories). */
async function expandGlob(pattern: string): Promise<string[]> {
  const absolute = pattern.startsWith("/");
  const segs = pattern.split("/").filter((s, i) => s !== "" || i === 0);
  if (absolute) segs.shift();
  let dirs: string[] = [absolute ? "/" : ""];
  const out: string[] = [];
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    const last = i === segs.length - 1;
    const next: string[] = [];
    if (seg === "**") {
      for (const d of dirs) next.push(d, ...(await walkDirs(d)));
      if (last) {
        // A trailing ** matches the files in those directories.
        for (const d of next) {
          for (const e of await listDir(d)) {
            if (!e.name.startsWith(".") && (await statOrNull(joinPath(d, e.name)))?.isFile) {
              out.push(joinPath(d, e.name));
            }
          }
        }
      }
      dirs = [...new Set(next)];
      continue;
    }
    if (!GLOB_CHARS.test(seg)) {
      for (const d of dirs) {
        const p = joinPath(d, seg);
        const st = await statOrNull(p);
        if (st === null) continue;
        if (last ? st.isFile : st.isDirectory) (last ? out : next).push(p);
      }
    } else {
      const re = globSegmentRegex(seg);
      for (const d of dirs) {
        for (const e of await listDir(d)) {
          if (!re.test(e.name)) continue;
          const p = joinPath(d, e.name);
          const st = await statOrNull(p);
          if (st === null) continue;
          if (last ? st.isFile : st.isDirectory) (last ? out : next).push(p);
        }
      }
    }
    dirs = next;
  }
  return [...new Set(out)].sort(naturalCompare);
}

/** The regex of one glob path segment; a leading '.' is only matched literally. */
export function globSegmentRegex(seg: string): RegExp {
  let re = "";
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const close = seg.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let body = seg.slice(i + 1, close);
      const negate = body.startsWith("!") || body.startsWith("^");
      if (negate) body = body.slice(1);
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(seg.startsWith(".") ? `^${re}$` : `^(?!\\.)${re}$`);
}

/** Compares paths with digit runs as numbers: shard2 < shard10. */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i];
    const y = rb[i];
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const dx = BigInt(x);
      const dy = BigInt(y);
      if (dx !== dy) return dx < dy ? -1 : 1;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return ra.length - rb.length;
}

function joinPath(dir: string, name: string): string {
  if (dir === "") return name;
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function baseName(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

async function statOrNull(p: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(p);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return null;
    }
    throw err;
  }
}

async function listDir(d: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const e of Deno.readDir(d === "" ? "." : d)) entries.push(e);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return [];
    throw err;
  }
  return entries;
}

/** Every directory below `d` (not following symlinks), not hidden ones. */
async function walkDirs(d: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await listDir(d)) {
    if (e.isDirectory && !e.name.startsWith(".")) {
      const p = joinPath(d, e.name);
      out.push(p, ...(await walkDirs(p)));
    }
  }
  return out;
}

/** FNV-1a 32-bit hash as 8 hex digits (the version 1 data state's fingerprint of names). */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
