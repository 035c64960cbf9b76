/**
 * A tokenizer from a Hugging Face `tokenizer.json`, run by npm `@huggingface/tokenizers` (Hugging
 * Face's own JavaScript implementation of the Rust library's pipelines: normalizer,
 * pre-tokenizer, BPE / WordPiece / Unigram model, decoder).
 *
 * BOS and EOS are resolved as `transformers` resolves `tokenizer.bos_token_id`: the token named by
 * `special_tokens_map.json` (which `from_pretrained` lets override `tokenizer_config.json`), else by
 * `tokenizer_config.json`, looked up in the vocabulary; when neither file names one, the model's
 * `config.json` `bos_token_id` / `eos_token_id` (the first id when it is a list). GPT-2: both are
 * 50256 `<|endoftext|>`.
 *
 * @example
 * ```ts
 * import { HfTokenizer } from "./hf_tokenizer.ts";
 * const tok = await HfTokenizer.load("../shared/lm/tiny-gpt2-random");
 * tok.encode("Hello world"); // [15496, 995]
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { UserError } from "../errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** A {@link Tokenizer} backed by a Hugging Face `tokenizer.json`. */
export class HfTokenizer implements Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly bos: number | null;
  readonly eos: number | null;
  /** Path of the tokenizer.json read. */
  readonly path: string;
  /** SHA-256 (hex) of the tokenizer.json bytes, to identify it by content. */
  readonly sha256: string;
  /** Text of the BOS and EOS tokens (null where the id is null). */
  readonly bosText: string | null;
  readonly eosText: string | null;

  private readonly impl: HfTokenizerImpl;

  private constructor(
    impl: HfTokenizerImpl,
    path: string,
    sha256: string,
    special: { bos: number | null; eos: number | null },
  ) {
    this.impl = impl;
    this.path = path;
    this.sha256 = sha256;
    this.name = `hf:${basename(path)}`;
    let maxId = -1;
    for (const id of impl.get_vocab(true).values()) maxId = Math.max(maxId, id);
    for (const id of impl.get_added_tokens_decoder().keys()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.bos = special.bos;
    this.eos = special.eos;
    this.bosText = special.bos === null ? null : impl.id_to_token(special.bos) ?? null;
    this.eosText = special.eos === null ? null : impl.id_to_token(special.eos) ?? null;
  }

  /**
   * Loads `tokenizer.json` from a model directory (or the file itself), with the special tokens of
   * the `tokenizer_config.json`, `special_tokens_map.json` and `config.json` beside it.
   */
  static async load(pathOrDir: string): Promise<HfTokenizer> {
    let path = pathOrDir;
    try {
      if ((await Deno.stat(pathOrDir)).isDirectory) path = join(pathOrDir, "tokenizer.json");
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new UserError(
          `tokenizer not found: ${pathOrDir} (give a model directory holding tokenizer.json, or the file)`,
        );
      }
      throw err;
    }
    const dir = dirname(path);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new UserError(
          `${path} not found: the model directory has no tokenizer.json (save it with tokenizer.save_pretrained(DIR), or pass --tokenizer)`,
        );
      }
      throw err;
    }
    const json = parseJsonFile(bytes, path);
    const config = await readOptionalJson(join(dir, "tokenizer_config.json"));
    const specialMap = await readOptionalJson(join(dir, "special_tokens_map.json"));
    const modelConfig = await readOptionalJson(join(dir, "config.json"));
    let impl: HfTokenizerImpl;
    try {
      impl = new HfTokenizerImpl(json, config ?? {});
    } catch (err) {
      throw new UserError(
        `${path}: @huggingface/tokenizers cannot build this tokenizer (${
          oneLine((err as Error).message)
        }); check that it is a tokenizer.json written by Hugging Face tokenizers`,
      );
    }
    const lookUp = (role: "bos" | "eos"): number | null => {
      const key = `${role}_token`;
      for (
        const [file, obj] of [["special_tokens_map.json", specialMap], [
          "tokenizer_config.json",
          config,
        ]] as const
      ) {
        if (obj === null || !(key in obj)) continue;
        const text = tokenContent(obj[key]);
        if (text === null) return null; // named explicitly as none
        const id = impl.token_to_id(text);
        if (id === undefined) {
          throw new UserError(
            `${join(dir, file)} names ${key} ${
              JSON.stringify(text)
            }, which is not in ${path}'s vocabulary; fix the file or use the tokenizer it was saved with`,
          );
        }
        return id;
      }
      const fromModel = modelConfig?.[`${role}_token_id`];
      const id = Array.isArray(fromModel) ? fromModel[0] : fromModel;
      return typeof id === "number" && Number.isInteger(id) && id >= 0 ? id : null;
    };
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    return new HfTokenizer(impl, path, sha256, { bos: lookUp("bos"), eos: lookUp("eos") });
  }

  encode(text: string): number[] {
    return this.impl.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[]): string {
    return this.impl.decode(ids, { skip_special_tokens: false });
  }
}

/** The text of a special-token entry: a string, `{content}`, or null. */
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (
    v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string"
  ) {
    return (v as { content: string }).content;
  }
  return null;
}

function parseJsonFile(bytes: Uint8Array, path: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new UserError(`${path} is not valid JSON (${oneLine((err as Error).message)})`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new UserError(`${path} does not hold a JSON object`);
  }
  return v as Record<string, unknown>;
}

async function readOptionalJson(path: string): Promise<Record<string, unknown> | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  return parseJsonFile(bytes, path);
}

function oneLine(s: string): string {
  const line = s.replace(/\s+/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}
