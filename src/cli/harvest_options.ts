/**
 * Option parsing for `sae harvest` (the command itself is wired where the model's forward pass
 * lives): flags as Commander hands them over, checked and turned into a {@link HarvestPlan} before
 * anything is read or written, each bad value a one-line UserError naming the flag.
 *
 * @example
 * ```ts
 * import { parseHarvestFlags } from "./harvest_options.ts";
 * const plan = parseHarvestFlags({
 *   model: "gpt2/", hook: "blocks.6.hook_resid_pre", text: ["a.txt"], context: "128",
 *   tokens: "2M", out: "acts/",
 * });
 * plan.tokens; // 2_000_000
 * ```
 * @module
 */

import { UserError } from "../errors.ts";
import type { ModelHarvestPlan } from "../lm/harvest_model.ts";

/** The flags of `sae harvest` as strings (Commander's raw values). */
export interface HarvestFlags {
  /** --model DIR or a llama2.c .bin. */
  model?: string;
  /** --tokenizer FILE (llama2.c tokenizer .bin, or a tokenizer.json elsewhere). */
  tokenizer?: string;
  /** --hook NAME. */
  hook?: string;
  /** --text FILE... */
  text?: string[];
  /** --context N (default 128). */
  context?: string;
  /** --tokens N (suffixes k, M, G; default 2M). */
  tokens?: string;
  /** --out DIR. */
  out?: string;
  /** --dtype f32|f16 (default f32). */
  dtype?: string;
  /** --shard-rows N (default: 256 MiB of activations per shard). */
  shardRows?: string;
  /** --batch N, contexts per forward pass (default 16). */
  batch?: string;
  /** --shuffle-seed N: read the files in a seeded order (default: the order given). */
  shuffleSeed?: string;
  /** --resume. */
  resume?: boolean;
  /** --no-progress sets false. */
  progress?: boolean;
}

/** What `sae harvest` will do, checked. */
export type HarvestPlan = ModelHarvestPlan;

/** Defaults of the optional flags. */
export const HARVEST_DEFAULTS = {
  context: 128,
  tokens: 2_000_000,
  batch: 16,
  dtype: "f32",
} as const;

export { DEFAULT_SHARD_BYTES, defaultShardRows } from "../lm/harvest.ts";

/**
 * A count with an optional suffix: `2000000`, `2_000_000`, `2e6`, `2M`, `500k`, `1.5G`
 * (k = 10³, M = 10⁶, G = 10⁹); a positive integer or a UserError naming `flag`.
 */
export function parseCount(text: string, flag: string): number {
  const m = /^\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([kKmMgG]?)\s*$/.exec(text);
  const scale = { "": 1, k: 1e3, m: 1e6, g: 1e9 }[m?.[2].toLowerCase() ?? ""] ?? 1;
  const v = m === null ? NaN : Number(m[1].replaceAll("_", "")) * scale;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new UserError(`${flag} ${text} is not a positive whole number (e.g. 2000000, 2M, 500k)`);
  }
  return v;
}

function integer(text: string, flag: string, min: number): number {
  const v = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new UserError(`${flag} ${text} must be a whole number of at least ${min}`);
  }
  return v;
}

/** Checks the flags and fills in defaults; nothing is read from disk. */
export function parseHarvestFlags(flags: HarvestFlags): HarvestPlan {
  const need = (v: string | undefined, flag: string, what: string): string => {
    if (v === undefined || v.trim() === "") throw new UserError(`${flag} is required: ${what}`);
    return v;
  };
  const model = need(flags.model, "--model", "a model directory or a llama2.c .bin checkpoint");
  const hook = need(
    flags.hook,
    "--hook",
    "a hook point such as blocks.2.hook_resid_pre (see sae lm info)",
  );
  const outDir = need(
    flags.out,
    "--out",
    "the directory the shards and manifest.json are written to",
  );
  const text = flags.text ?? [];
  if (text.length === 0) {
    throw new UserError("--text is required: one or more .txt, .jsonl or .parquet files");
  }
  const dtype = flags.dtype ?? HARVEST_DEFAULTS.dtype;
  if (dtype !== "f32" && dtype !== "f16") {
    throw new UserError(`--dtype ${dtype} is not supported; use f32 or f16`);
  }
  return {
    model,
    tokenizer: flags.tokenizer ?? null,
    hook,
    text,
    context: flags.context === undefined
      ? HARVEST_DEFAULTS.context
      : integer(flags.context, "--context", 2),
    tokens: flags.tokens === undefined
      ? HARVEST_DEFAULTS.tokens
      : parseCount(flags.tokens, "--tokens"),
    outDir,
    dtype,
    shardRows: flags.shardRows === undefined ? null : parseCount(flags.shardRows, "--shard-rows"),
    batch: flags.batch === undefined ? HARVEST_DEFAULTS.batch : integer(flags.batch, "--batch", 1),
    shuffleSeed: flags.shuffleSeed === undefined
      ? null
      : integer(flags.shuffleSeed, "--shuffle-seed", 0),
    resume: flags.resume === true,
    progress: flags.progress ?? Deno.stderr.isTerminal(),
  };
}
