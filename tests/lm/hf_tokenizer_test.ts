import assert from "node:assert/strict";
import { join } from "node:path";
import { HfTokenizer } from "../../src/lm/hf_tokenizer.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";
import { sharedLm } from "./helpers.ts";

/** A tiny BPE tokenizer.json whose post-processor adds <s> (as Llama's does). */
function tinyBpe(): Record<string, unknown> {
  const vocab: Record<string, number> = {
    "<s>": 0,
    "</s>": 1,
    "<unk>": 2,
    h: 3,
    e: 4,
    l: 5,
    o: 6,
    w: 7,
    r: 8,
    d: 9,
    he: 10,
    ll: 11,
    hell: 12,
    hello: 13,
  };
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    added_tokens: [special(0, "<s>"), special(1, "</s>"), special(2, "<unk>")],
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [0], tokens: ["<s>"] } },
    },
    decoder: null,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: ["h e", "l l", "he ll", "hell o"],
    },
  };
}

async function writeDir(dir: string, files: Record<string, unknown>): Promise<void> {
  for (const [name, v] of Object.entries(files)) {
    await Deno.writeTextFile(join(dir, name), JSON.stringify(v));
  }
}

Deno.test("GPT-2's tokenizer: 'Hello world' is [15496, 995], BOS = EOS = 50256", async () => {
  const dir = await sharedLm("tiny-gpt2-random");
  if (dir === null) return;
  const tok = await HfTokenizer.load(dir);
  assert.deepEqual(tok.encode("Hello world"), [15496, 995]);
  assert.equal(tok.bos, 50256);
  assert.equal(tok.eos, 50256);
  assert.equal(tok.bosText, "<|endoftext|>");
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.name, "hf:tokenizer.json");
  assert.match(tok.sha256, /^[0-9a-f]{64}$/);
  // The end-of-text string inside text is the special token, as HF's tokenizer(text) does.
  assert.deepEqual(tok.encode("Hello world<|endoftext|>"), [15496, 995, 50256]);
  assert.equal(tok.decode([15496, 995, 50256]), "Hello world<|endoftext|>");
  const text = "Once upon a time, a café served naïve pâtés. 😀";
  assert.equal(tok.decode(tok.encode(text)), text);
});

Deno.test("encode never adds BOS even when the post-processor would", async () => {
  await withTemp(async (dir) => {
    await writeDir(dir, {
      "tokenizer.json": tinyBpe(),
      "tokenizer_config.json": { bos_token: "<s>", eos_token: { content: "</s>" } },
    });
    const tok = await HfTokenizer.load(dir);
    assert.deepEqual(tok.encode("hello he"), [13, 10]);
    assert.equal(tok.bos, 0);
    assert.equal(tok.eos, 1);
    assert.equal(tok.vocabSize, 14);
  });
});

Deno.test("special tokens: special_tokens_map.json over tokenizer_config.json, then config.json", async () => {
  await withTemp(async (dir) => {
    await writeDir(dir, {
      "tokenizer.json": tinyBpe(),
      "tokenizer_config.json": { bos_token: "<s>", eos_token: "</s>" },
      "special_tokens_map.json": { bos_token: { content: "</s>" } },
      "config.json": { bos_token_id: 5, eos_token_id: [6, 7] },
    });
    let tok = await HfTokenizer.load(join(dir, "tokenizer.json"));
    assert.equal(tok.bos, 1, "special_tokens_map.json wins");
    assert.equal(tok.eos, 1, "tokenizer_config.json where the map is silent");
    await Deno.remove(join(dir, "special_tokens_map.json"));
    await Deno.remove(join(dir, "tokenizer_config.json"));
    tok = await HfTokenizer.load(dir);
    assert.equal(tok.bos, 5, "config.json when no tokenizer file names one");
    assert.equal(tok.eos, 6, "the first of a list");
    await Deno.remove(join(dir, "config.json"));
    tok = await HfTokenizer.load(dir);
    assert.equal(tok.bos, null);
    assert.equal(tok.eos, null);
  });
});

Deno.test("tokenizer errors are one line naming the file", async () => {
  await withTemp(async (dir) => {
    await rejectsUserError(() => HfTokenizer.load(join(dir, "nope")), /not found: .*nope/);
    await rejectsUserError(() => HfTokenizer.load(dir), /has no tokenizer\.json/);
    await Deno.writeTextFile(join(dir, "tokenizer.json"), "{ not json");
    await rejectsUserError(() => HfTokenizer.load(dir), /tokenizer\.json is not valid JSON/);
    await writeDir(dir, {
      "tokenizer.json": tinyBpe(),
      "tokenizer_config.json": { bos_token: "<|begin_of_text|>" },
    });
    await rejectsUserError(
      () => HfTokenizer.load(dir),
      /tokenizer_config\.json names bos_token "<\|begin_of_text\|>", which is not in/,
    );
    await writeDir(dir, {
      "tokenizer.json": { model: { type: "NoSuchModel" } },
      "tokenizer_config.json": {},
    });
    await rejectsUserError(() => HfTokenizer.load(dir), /cannot build this tokenizer/);
  });
});
