/**
 * The tokenizer interface every tokenizer here implements (llama2.c's `tok.bin` in
 * src/lm/llama2c_tokenizer.ts, Hugging Face's `tokenizer.json` in src/lm/hf_tokenizer.ts), how a
 * tokenizer file is opened by its name, and the check that a tokenizer fits a model.
 *
 * @example
 * ```ts
 * import { openTokenizer } from "./tokenizer.ts";
 * const tok = await openTokenizer("../shared/lm/stories260K/tok512.bin");
 * tok.decode(tok.encode("Once upon a time")); // "Once upon a time"
 * ```
 */
import { basename } from "node:path";
import { UserError } from "../errors.ts";
import type { LmConfig } from "./config.ts";
import { HfTokenizer } from "./hf_tokenizer.ts";
import { loadLlama2cTokenizer } from "./llama2c_tokenizer.ts";

/** A text ⇄ token id mapping. */
export interface Tokenizer {
  /** What it is and where it came from, e.g. "llama2c:tok512.bin". */
  readonly name: string;
  /** Number of ids it can produce (largest id + 1). */
  readonly vocabSize: number;
  /** Id prepended to each context (prepend_bos), or null when the tokenizer has none. */
  readonly bos: number | null;
  /** End-of-sequence id, or null. */
  readonly eos: number | null;
  /** Token ids of `text`; never adds BOS. */
  encode(text: string): number[];
  /** The text of `ids` (BOS and EOS decode to nothing). */
  decode(ids: number[]): string;
}

/**
 * Tokenizer loaders by file name ending: the first whose key ends the file's name opens it. Each
 * kind of tokenizer file registers itself here with one line.
 */
export const TOKENIZER_LOADERS: { suffix: string; load: (path: string) => Promise<Tokenizer> }[] = [
  { suffix: ".bin", load: loadLlama2cTokenizer },
  { suffix: ".json", load: (path) => HfTokenizer.load(path) },
];

/** Opens a tokenizer file by its kind (see {@link TOKENIZER_LOADERS}). */
export async function openTokenizer(path: string): Promise<Tokenizer> {
  const loader = TOKENIZER_LOADERS.find((l) => basename(path).endsWith(l.suffix));
  if (!loader) {
    throw new UserError(
      `${path}: not a tokenizer file this tool reads (${
        TOKENIZER_LOADERS.map((l) => l.suffix).join(", ")
      }): pass --tokenizer with one`,
    );
  }
  return await loader.load(path);
}

/**
 * Checks that `tok` can drive the model of `cfg`: its ids must index the embedding, and the
 * embedding may be larger only by the padding models add to round their vocabulary up (to a
 * multiple of 64, less than 1024 extra rows), as GPT-NeoX's 50304 rows for 50277 ids.
 */
export function checkTokenizerFits(tok: Tokenizer, cfg: LmConfig): void {
  const model = cfg.vocabSize, n = tok.vocabSize;
  const padded = model > n && model % 64 === 0 && model - n < 1024;
  if (n === model || padded) return;
  throw new UserError(
    `${tok.name}: the tokenizer has ${n} tokens but the model's vocabulary (${cfg.source}) has ` +
      `${model}: pass the tokenizer this model was trained with (--tokenizer)`,
  );
}
