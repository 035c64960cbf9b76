/**
 * A tiny live-training problem for tests: a random llama of awkward sizes (d 36, vocab 61,
 * context 64) written as a Hugging Face directory, a character tokenizer for it, and text of
 * random words, with the config and CLI flags of a live run on them.
 */
import { join } from "node:path";
import { DEFAULT_CONFIG, mergeConfig, type TrainConfig } from "../../src/config.ts";
import { Rng } from "../../src/rng.ts";
import { tinyTokenizer } from "../eval/lm_helpers.ts";
import { randomTensors, TINY_CONFIGS, writeHfDir } from "./fixtures.ts";

/** The hook the tiny runs read. */
export const LIVE_HOOK = "blocks.1.hook_resid_pre";

/** Documents of random lowercase words, `chars` characters in all (one token per character). */
export function randomText(chars: number, seed: number): string {
  const rng = new Rng(seed);
  const docs: string[] = [];
  let total = 0;
  while (total < chars) {
    const words = Array.from(
      { length: 5 + rng.int(20) },
      () =>
        Array.from({ length: 1 + rng.int(7) }, () => String.fromCharCode(97 + rng.int(26))).join(
          "",
        ),
    );
    const doc = words.join(" ") + ".";
    docs.push(doc);
    total += doc.length;
  }
  return docs.join("\n\n");
}

/** A tiny live problem in `dir`. */
export interface LiveFixture {
  model: string;
  tokenizer: string;
  text: string;
  /** A live run's config (context 16, lm_batch 2, buffer 8 contexts, batch 24, d_sae 48). */
  cfg: TrainConfig;
  /** The same run as `sae train` flags (without --out and --steps). */
  args: string[];
}

/** Writes the model, tokenizer and `chars` characters of text into `dir`. */
export async function liveFixture(dir: string, chars = 3000): Promise<LiveFixture> {
  const llama = TINY_CONFIGS.llama;
  const model = await writeHfDir(join(dir, "m"), llama, randomTensors(llama, 8));
  const tokenizer = join(dir, "tok61.bin");
  await Deno.writeFile(tokenizer, tinyTokenizer(61));
  const text = join(dir, "text.txt");
  await Deno.writeTextFile(text, randomText(chars, 1));
  const cfg = mergeConfig(DEFAULT_CONFIG, {
    data: "live",
    model,
    tokenizer,
    hook_name: LIVE_HOOK,
    dataset_path: text,
    context_size: 16,
    lm_batch: 2,
    buffer_contexts: 8,
    d_in: 36,
    d_sae: 48,
    batch: 24,
    init_rows: 48,
    log_every: 10,
    checkpoint_every: 0,
  });
  const args = [
    "--model",
    model,
    "--tokenizer",
    tokenizer,
    "--hook",
    LIVE_HOOK,
    "--text",
    text,
    "--context",
    "16",
    "--lm-batch",
    "2",
    "--buffer-contexts",
    "8",
    "--d-sae",
    "48",
    "--batch",
    "24",
    "--set",
    "init_rows=48",
    "--no-progress",
  ];
  return { model, tokenizer, text, cfg, args };
}
