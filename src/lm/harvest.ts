/**
 * The shard writer behind `sae harvest`: contexts of text go through a model up to a hook, and
 * the hook's activations are written as `.npy` shards that `sae train --data DIR` reads as they
 * are. Generic over the model: the caller passes the function that turns token ids into
 * activations.
 *
 * Per shard N, in `outDir`:
 * - `acts-N.npy`: [rows, d] `<f4` or `<f2`, C order; rows are the contexts' positions 1..C−1 in
 *   context-major order (the BOS at position 0 is left out: its norm dwarfs the rest in most
 *   models);
 * - `tokens-N.npy`: [contexts, C] `<i4`, the token ids the rows came from (BOS included), so
 *   anyone can recompute the activations and max-activating examples can show the text;
 * - `manifest.json`: model, hook, context size, BOS handling and what was excluded, token count,
 *   the text sources with sizes and SHA-256, tokenizer, this tool's version, and each shard's
 *   rows, contexts, SHA-256 of both files and the text position after it.
 *
 * Every file is written beside its target and renamed over it when complete (src/run/atomic.ts),
 * shard files before the manifest entry that lists them, so a killed harvest leaves complete
 * shards and a manifest listing only complete shards. `resume` checks that the manifest was made
 * with the same settings and text, checks every listed shard against its SHA-256, and continues
 * from the text position after the last one; a shard file the manifest does not list is written
 * again. Memory stays at one batch of contexts and its activations. The output directory is locked
 * while a harvest writes into it (src/run/lock.ts): a second harvest into it is refused at once.
 *
 * @example
 * ```ts
 * import { harvest } from "./harvest.ts";
 * await harvest({
 *   contexts: { sources, tokenizer, context: 128 },
 *   activations: (tokens) => model.hookActivations(tokens), // [n·127, d] f32
 *   d: 768, tokens: 2_000_000, shardRows: 1 << 18, dtype: "f32", outDir: "acts",
 *   manifest: { model: { path: "gpt2" }, hook: "blocks.6.hook_resid_pre", tokenizer: { name, sha256 } },
 * });
 * ```
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { join } from "node:path";
import process from "node:process";
import cliProgress from "cli-progress";
import denoJson from "../../deno.json" with { type: "json" };
import { UserError } from "../errors.ts";
import { encodeNpyHeader } from "../data/npy.ts";
import { AtomicFile, atomicWrite, pathExists } from "../run/atomic.ts";
import { DirLock, LOCK_FILE } from "../run/lock.ts";
import {
  type ContextBatch,
  type ContextOptions,
  type ContextState,
  ContextStream,
} from "./contexts.ts";
import type { TextSource } from "./text.ts";

/** Fields of the manifest that describe the model side (the caller knows them). */
export interface HarvestManifestFields {
  /** The model, as the caller identifies it (path, family, SHA-256 of its weights, ...). */
  model: Record<string, unknown>;
  /** Hook point, TransformerLens-named (`blocks.2.hook_resid_pre`). */
  hook: string;
  /** The tokenizer: name and SHA-256 of its file (null where there is no file). */
  tokenizer: { name: string; sha256: string | null };
}

/** Options of {@link harvest}. */
export interface HarvestOptions {
  /** The text and how it is packed (src/lm/contexts.ts); opened (or resumed) by harvest. */
  contexts: Omit<ContextOptions, "from" | "loop">;
  /**
   * Activations of the hook for a batch of contexts: `tokens` is [n, context] int32; the result
   * is [n·(context−1), d] f32 with position 0 (BOS) of each context left out, context-major.
   */
  activations: (tokens: Int32Array) => Promise<Float32Array>;
  /** Width of the hook's activations. */
  d: number;
  /** Activation rows to write (rounded up to whole contexts of context−1 rows). */
  tokens: number;
  /** Most rows per shard (rounded down to whole contexts; at least one context). */
  shardRows: number;
  /** Element type of the activation shards. */
  dtype: "f32" | "f16";
  /** Output directory (created if missing). */
  outDir: string;
  /** Fields of the manifest describing the model. */
  manifest: HarvestManifestFields;
  /** Continue the harvest in `outDir` after its last complete shard. */
  resume?: boolean;
  /** Contexts per call of `activations` (default 16). */
  batchContexts?: number;
  /** Show a progress bar with tokens/s on stderr (default false). */
  progress?: boolean;
  /** Where notes go (default console.error). */
  log?: (line: string) => void;
  /** Stops the harvest after the batch in flight; the open shard is dropped. */
  signal?: AbortSignal;
}

/** One shard as the manifest lists it. */
export interface HarvestShard {
  acts: string;
  tokens: string;
  rows: number;
  contexts: number;
  acts_sha256: string;
  tokens_sha256: string;
  /** The text position after this shard's last context. */
  text_state: ContextState;
}

/** `manifest.json` of a harvest. */
export interface HarvestManifest {
  format: "sae-harvest";
  version: 1;
  tool: { name: string; version: string };
  model: Record<string, unknown>;
  hook: string;
  d: number;
  dtype: "f32" | "f16";
  context_size: number;
  prepend_bos: true;
  bos_token_id: number;
  excluded: string;
  packing: string;
  tokenizer: { name: string; sha256: string | null };
  text: TextSource[];
  requested_tokens: number;
  rows_per_context: number;
  shard_contexts: number;
  /** Activation rows written (in listed shards). */
  tokens: number;
  contexts: number;
  complete: boolean;
  text_exhausted: boolean;
  shards: HarvestShard[];
}

/** What {@link harvest} did. */
export interface HarvestResult {
  manifest: HarvestManifest;
  /** Shards written by this call (not counting those a resume found). */
  written: number;
  /** Whether it stopped on `signal` before finishing. */
  interrupted: boolean;
}

/** Bytes of activations per shard when no shard size is given. */
export const DEFAULT_SHARD_BYTES = 256 << 20;

/** Rows per shard holding about {@link DEFAULT_SHARD_BYTES} of activations of width `d`. */
export function defaultShardRows(d: number, dtype: "f32" | "f16"): number {
  return Math.max(1, Math.floor(DEFAULT_SHARD_BYTES / (d * (dtype === "f32" ? 4 : 2))));
}

/** Format tag of the manifest, also how `sae train --data DIR` recognises a harvest. */
const HARVEST_FORMAT = "sae-harvest";

const EXCLUDED =
  "position 0 of every context (the BOS that begins it): each context gives context_size - 1 rows; BOS tokens separating documents inside a context are kept";
const PACKING =
  "SAELens concat_and_batch_sequences with prepend_bos=True and sequence_separator_token='bos': documents tokenized without BOS and concatenated, BOS first in every context unless the text already starts with it, BOS before a document starting inside a context unless it starts with BOS, the tail shorter than a context dropped (docs/lm.md, Contexts)";

/** Runs a harvest; see the module doc. */
export async function harvest(opts: HarvestOptions): Promise<HarvestResult> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const C = opts.contexts.context;
  const rowsPerContext = C - 1;
  checkOptions(opts);
  const shardContexts = Math.max(1, Math.floor(opts.shardRows / rowsPerContext));
  const totalContexts = Math.ceil(opts.tokens / rowsPerContext);
  const batch = opts.batchContexts ?? 16;
  // Checks the context settings (size, BOS) before anything touches the disk.
  ContextStream.open(opts.contexts);

  await ensureDir(opts.outDir);
  // One harvest at a time writes here (a second is refused at once, naming the first).
  let lock: DirLock;
  try {
    lock = await DirLock.acquire(opts.outDir, "sae harvest", { log });
  } catch (err) {
    throw writeError(join(opts.outDir, LOCK_FILE), err);
  }
  try {
    return await harvestLocked(opts, log, shardContexts, totalContexts, batch);
  } finally {
    await lock.release();
  }
}

/** The harvest itself, with `opts.outDir` locked. */
async function harvestLocked(
  opts: HarvestOptions,
  log: (line: string) => void,
  shardContexts: number,
  totalContexts: number,
  batch: number,
): Promise<HarvestResult> {
  const C = opts.contexts.context;
  const rowsPerContext = C - 1;
  const manifestPath = join(opts.outDir, "manifest.json");
  const fresh = freshManifest(opts, shardContexts);
  let manifest: HarvestManifest;
  if (opts.resume && await pathExists(manifestPath)) {
    manifest = await resumeManifest(opts, fresh, log);
  } else {
    await refuseExisting(opts.outDir);
    if (opts.resume) {
      log(
        `harvest: ${opts.outDir} has no manifest.json yet (no shard was completed); starting from the first shard`,
      );
    }
    manifest = fresh;
  }
  await removeStaleTemporaries(opts.outDir);
  if (manifest.complete) {
    log(
      `harvest: ${opts.outDir} is already complete (${manifest.tokens} tokens in ${manifest.shards.length} shards)`,
    );
    return { manifest, written: 0, interrupted: false };
  }

  const last = manifest.shards[manifest.shards.length - 1];
  const stream = ContextStream.open({ ...opts.contexts, from: last?.text_state });
  const bar = opts.progress
    ? new cliProgress.SingleBar({
      format: "harvest |{bar}| {value}/{total} tokens | {tps} tokens/s | shard {shard}",
      stream: process.stderr,
      hideCursor: true,
    }, cliProgress.Presets.shades_classic)
    : null;
  bar?.start(totalContexts * rowsPerContext, manifest.contexts * rowsPerContext, {
    tps: "-",
    shard: manifest.shards.length,
  });
  const t0 = performance.now();
  let modelTokens = 0;
  let written = 0;
  let interrupted = false;
  try {
    while (manifest.contexts < totalContexts) {
      if (opts.signal?.aborted) {
        interrupted = true;
        break;
      }
      const index = manifest.shards.length;
      const want = Math.min(shardContexts, totalContexts - manifest.contexts);
      const shard = await writeShard(opts, stream, index, want, batch, (n) => {
        modelTokens += n * C;
        const s = (performance.now() - t0) / 1000;
        bar?.increment(n * rowsPerContext, {
          tps: s > 0 ? Math.round(modelTokens / s).toLocaleString("en-US") : "-",
          shard: index,
        });
      });
      if (shard === "interrupted") {
        interrupted = true;
        break;
      }
      if (shard !== null) {
        manifest.shards.push(shard);
        manifest.contexts += shard.contexts;
        manifest.tokens += shard.rows;
        written++;
      }
      if (shard === null || shard.contexts < want) {
        manifest.text_exhausted = true;
        break;
      }
      if (manifest.contexts < totalContexts) await writeManifest(manifestPath, manifest);
    }
    if (!interrupted) manifest.complete = true;
    await writeManifest(manifestPath, manifest);
  } finally {
    bar?.stop();
  }
  if (manifest.text_exhausted) {
    log(
      `harvest: the text ended after ${manifest.tokens} tokens (${manifest.contexts} contexts) of the ${opts.tokens} asked for; manifest.json records what was written (give more text for more)`,
    );
  }
  return { manifest, written, interrupted };
}

function checkOptions(opts: HarvestOptions): void {
  const pos = (v: number, name: string, flag: string) => {
    if (!Number.isInteger(v) || v < 1) {
      throw new UserError(`${name} must be a positive integer, not ${v} (${flag})`);
    }
  };
  pos(opts.d, "the activation width d", "the model's hook");
  pos(opts.tokens, "the token count", "--tokens");
  pos(opts.shardRows, "rows per shard", "--shard-rows");
  pos(opts.batchContexts ?? 16, "contexts per batch", "--batch");
  if (opts.dtype !== "f32" && opts.dtype !== "f16") {
    throw new UserError(`--dtype ${opts.dtype} is not supported (f32 or f16)`);
  }
}

function freshManifest(opts: HarvestOptions, shardContexts: number): HarvestManifest {
  const C = opts.contexts.context;
  const bos = opts.contexts.tokenizer.bos;
  return {
    format: HARVEST_FORMAT,
    version: 1,
    tool: { name: "sae", version: denoJson.version },
    model: opts.manifest.model,
    hook: opts.manifest.hook,
    d: opts.d,
    dtype: opts.dtype,
    context_size: C,
    prepend_bos: true,
    bos_token_id: bos ?? -1,
    excluded: EXCLUDED,
    packing: PACKING,
    tokenizer: opts.manifest.tokenizer,
    text: opts.contexts.sources,
    requested_tokens: opts.tokens,
    rows_per_context: C - 1,
    shard_contexts: shardContexts,
    tokens: 0,
    contexts: 0,
    complete: false,
    text_exhausted: false,
    shards: [],
  };
}

/**
 * Writes shard `index` with up to `want` contexts: null when the text had none left,
 * "interrupted" when the signal fired (the shard's files are dropped).
 */
async function writeShard(
  opts: HarvestOptions,
  stream: ContextStream,
  index: number,
  want: number,
  batch: number,
  onBatch: (contexts: number) => void,
): Promise<HarvestShard | null | "interrupted"> {
  const C = opts.contexts.context;
  const d = opts.d;
  const rowsPerContext = C - 1;
  const actsName = `acts-${index}.npy`;
  const tokensName = `tokens-${index}.npy`;
  const acts = await createShardFile(join(opts.outDir, actsName));
  let toks: AtomicFile;
  try {
    toks = await createShardFile(join(opts.outDir, tokensName));
  } catch (err) {
    await acts.abort();
    throw err;
  }
  const actsHash = createHash("sha256");
  const toksHash = createHash("sha256");
  let pending: Promise<ContextBatch | null> | null = null;
  const put = async (file: AtomicFile, hash: Hash, bytes: Uint8Array) => {
    hash.update(bytes);
    await file.write(bytes);
  };
  try {
    const actsHeader = encodeNpyHeader(want * rowsPerContext, d, opts.dtype);
    const toksHeader = encodeNpyHeader(want, C, "i32");
    await put(acts, actsHash, actsHeader);
    await put(toks, toksHash, toksHeader);
    // The next batch is packed (tokenized on this thread) while the model runs on the current one.
    let done = 0;
    let asked = Math.min(batch, want);
    pending = stream.next(asked);
    while (pending !== null) {
      if (opts.signal?.aborted) {
        pending.catch(() => {});
        await acts.abort();
        await toks.abort();
        return "interrupted";
      }
      const b = await pending;
      pending = null;
      if (b === null) break;
      const running = opts.activations(b.tokens);
      const left = want - done - b.n;
      if (b.n === asked && left > 0) {
        asked = Math.min(batch, left);
        pending = stream.next(asked);
      }
      const x = await running;
      if (!(x instanceof Float32Array) || x.length !== b.n * rowsPerContext * d) {
        throw new Error(
          `activations returned ${x?.length} values for ${b.n} contexts; expected ${b.n} × ${rowsPerContext} × ${d}`,
        );
      }
      await put(acts, actsHash, encodeRows(x, opts.dtype, actsName));
      await put(
        toks,
        toksHash,
        new Uint8Array(b.tokens.buffer, b.tokens.byteOffset, b.tokens.byteLength),
      );
      done += b.n;
      onBatch(b.n);
    }
    if (done === 0) {
      await acts.abort();
      await toks.abort();
      return null;
    }
    let actsSha: string;
    let toksSha: string;
    if (done < want) {
      // The text ended inside the shard: the headers get the counts written, and the hashes are
      // taken again from the files.
      const a = encodeNpyHeader(done * rowsPerContext, d, opts.dtype);
      const t = encodeNpyHeader(done, C, "i32");
      if (a.length !== actsHeader.length || t.length !== toksHeader.length) {
        throw new Error("npy header length changed with the row count");
      }
      await acts.writeAt(0, a);
      await toks.writeAt(0, t);
      actsSha = await sha256File(acts.tmp);
      toksSha = await sha256File(toks.tmp);
    } else {
      actsSha = actsHash.digest("hex");
      toksSha = toksHash.digest("hex");
    }
    await acts.commit();
    await toks.commit();
    return {
      acts: actsName,
      tokens: tokensName,
      rows: done * rowsPerContext,
      contexts: done,
      acts_sha256: actsSha,
      tokens_sha256: toksSha,
      text_state: stream.state(),
    };
  } catch (err) {
    // A batch being packed when the model failed must not reject unobserved.
    pending?.catch(() => {});
    await acts.abort();
    await toks.abort();
    throw err;
  }
}

/** Activation rows as the bytes of the shard's dtype; f16 must hold every value. */
function encodeRows(x: Float32Array, dtype: "f32" | "f16", name: string): Uint8Array {
  if (dtype === "f32") return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const h = new Float16Array(x);
  for (let i = 0; i < h.length; i++) {
    // An f32 beyond ±65504 becomes ±Inf in f16; NaN/Inf from the model pass through.
    if (!Number.isFinite(h[i]) && Number.isFinite(x[i])) {
      throw new UserError(
        `${name}: activation value ${
          x[i]
        } is outside f16's range (±65504); harvest with --dtype f32`,
      );
    }
  }
  return new Uint8Array(h.buffer);
}

async function createShardFile(path: string): Promise<AtomicFile> {
  try {
    return await AtomicFile.create(path);
  } catch (err) {
    throw writeError(path, err);
  }
}

function writeError(path: string, err: unknown): unknown {
  if (err instanceof Deno.errors.PermissionDenied) {
    return new UserError(`cannot write ${path}: permission denied (choose a writable --out)`);
  }
  if (err instanceof Deno.errors.NotFound) {
    return new UserError(`cannot write ${path}: its directory is gone`);
  }
  if (err instanceof Error && /\(os error \d+\)/.test(err.message)) {
    return new UserError(
      `cannot write ${path}: ${err.message}; the shards manifest.json lists are complete: free ` +
        `space, then --resume`,
    );
  }
  return err;
}

async function writeManifest(path: string, manifest: HarvestManifest): Promise<void> {
  try {
    await atomicWrite(path, JSON.stringify(manifest, null, 1) + "\n");
  } catch (err) {
    throw writeError(path, err);
  }
}

async function ensureDir(dir: string): Promise<void> {
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new UserError(`--out ${dir} is a file; give a directory`);
    return;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw writeError(dir, err);
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (err) {
    throw writeError(dir, err);
  }
}

const SHARD_FILE = /^(acts|tokens)-\d+\.npy$/;
const TEMPORARY = /^(?:(?:acts|tokens)-\d+\.npy|manifest\.json)\.tmp-[0-9a-f]{12}$/;

/** A fresh harvest never writes over another's files. */
async function refuseExisting(dir: string): Promise<void> {
  if (await pathExists(join(dir, "manifest.json"))) {
    throw new UserError(
      `${dir} already holds a harvest (manifest.json); pass --resume to continue it, or choose another --out`,
    );
  }
  for await (const e of Deno.readDir(dir)) {
    if (SHARD_FILE.test(e.name)) {
      throw new UserError(
        `${dir} holds ${e.name} but no manifest.json (files of another tool, or of a harvest killed before its first shard was recorded); move them away or choose another --out`,
      );
    }
  }
}

/** Temporary files of a killed harvest (never listed anywhere). */
async function removeStaleTemporaries(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && TEMPORARY.test(e.name)) await Deno.remove(join(dir, e.name)).catch(() => {});
  }
}

/** SHA-256 of a file's bytes, read in 4 MiB chunks. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(4 << 20);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/**
 * The manifest of the harvest in `opts.outDir`, checked against the options (same model, hook,
 * text, tokenizer and sizes) and with its shards checked against their SHA-256; the shard list
 * ends before the first shard whose files are missing (those are written again).
 */
async function resumeManifest(
  opts: HarvestOptions,
  fresh: HarvestManifest,
  log: (line: string) => void,
): Promise<HarvestManifest> {
  const path = join(opts.outDir, "manifest.json");
  const text = await Deno.readTextFile(path);
  let m: HarvestManifest;
  try {
    m = JSON.parse(text);
  } catch {
    throw new UserError(
      `cannot resume: ${path} is not valid JSON (damaged); harvest again into another --out`,
    );
  }
  if (m === null || typeof m !== "object" || m.format !== HARVEST_FORMAT || m.version !== 1) {
    throw new UserError(
      `cannot resume: ${path} is not a harvest manifest (format ${HARVEST_FORMAT}, version 1)`,
    );
  }
  const same = (what: string, was: unknown, now: unknown) => {
    if (JSON.stringify(was) !== JSON.stringify(now)) {
      throw new UserError(
        `cannot resume: ${path} was made with ${what} ${brief(was)} but now ${
          brief(now)
        }; resume with the same settings or choose another --out`,
      );
    }
  };
  same("model", m.model, fresh.model);
  same("hook", m.hook, fresh.hook);
  same("d", m.d, fresh.d);
  same("--dtype", m.dtype, fresh.dtype);
  same("--context", m.context_size, fresh.context_size);
  same("BOS id", m.bos_token_id, fresh.bos_token_id);
  same("tokenizer", m.tokenizer, fresh.tokenizer);
  same("--tokens", m.requested_tokens, fresh.requested_tokens);
  same("contexts per shard", m.shard_contexts, fresh.shard_contexts);
  // The text is identified by its content: the same files under other paths resume.
  same(
    "text (SHA-256 of each file)",
    (m.text ?? []).map((s) => s.sha256),
    fresh.text.map((s) => s.sha256),
  );
  if (m.text.some((s, i) => s.path !== fresh.text[i].path)) {
    log(`harvest: the text files have other paths than manifest.json records, the same content`);
    m.text = fresh.text;
  }
  if (!Array.isArray(m.shards)) {
    throw new UserError(`cannot resume: ${path} lists no shards (damaged)`);
  }
  const kept: HarvestShard[] = [];
  for (let i = 0; i < m.shards.length; i++) {
    const s = m.shards[i];
    if (s?.acts !== `acts-${i}.npy` || s?.tokens !== `tokens-${i}.npy`) {
      throw new UserError(
        `cannot resume: ${path} shard ${i} is not acts-${i}.npy/tokens-${i}.npy (damaged)`,
      );
    }
    const files: [string, string][] = [[s.acts, s.acts_sha256], [s.tokens, s.tokens_sha256]];
    let missing = false;
    for (const [name] of files) {
      try {
        await Deno.stat(join(opts.outDir, name));
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        missing = true;
      }
    }
    if (missing) {
      log(
        `harvest: shard ${i} of ${m.shards.length} listed in manifest.json is missing; redoing from shard ${i}`,
      );
      break;
    }
    for (const [name, sha] of files) {
      if ((await sha256File(join(opts.outDir, name))) !== sha) {
        throw new UserError(
          `cannot resume: ${
            join(opts.outDir, name)
          } does not match the SHA-256 manifest.json lists (changed or damaged since written); delete it and the shards after it, then --resume writes them again`,
        );
      }
    }
    kept.push(s);
  }
  if (kept.length < m.shards.length) {
    m.complete = false;
    m.text_exhausted = false;
  }
  m.shards = kept;
  m.contexts = kept.reduce((n, s) => n + s.contexts, 0);
  m.tokens = kept.reduce((n, s) => n + s.rows, 0);
  return m;
}

function brief(v: unknown): string {
  const s = JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
