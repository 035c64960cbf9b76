import assert from "node:assert/strict";
import { join } from "node:path";
import { type ContextState, ContextStream, fileOrder } from "../../src/lm/contexts.ts";
import type { Tokenizer } from "../../src/lm/tokenizer.ts";
import { HfTokenizer } from "../../src/lm/hf_tokenizer.ts";
import { inspectText, type TextSource } from "../../src/lm/text.ts";
import { Rng } from "../../src/rng.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";
import { sharedLm } from "./helpers.ts";

const BOS = 1;

/** One token per character: '^' is BOS (1), other characters their code point + 10. */
const charTokenizer: Tokenizer = {
  name: "test:chars",
  vocabSize: 0x110000 + 10,
  bos: BOS,
  eos: 2,
  encode: (text) => Array.from(text, (c) => (c === "^" ? BOS : c.codePointAt(0)! + 10)),
  decode: (ids) => ids.map((i) => (i === BOS ? "^" : String.fromCodePoint(i - 10))).join(""),
};

/**
 * SAELens' concat_and_batch_sequences (sae_lens/tokenization_and_batching.py) with
 * begin_batch_token_id = bos, begin_sequence_token_id = None, sequence_separator_token_id = bos,
 * transcribed step by step from the Python (its _add_tokens_to_batch included).
 */
function saeLensContexts(docs: number[][], C: number, bos: number): number[][] {
  const out: number[][] = [];
  const addTokensToBatch = (
    batch: number[] | null,
    tokens: number[],
    offset: number,
  ): [number[], number] => {
    const prefix: number[] = [];
    let firstToken = tokens[offset];
    if (batch === null) {
      if (firstToken !== bos) {
        prefix.unshift(bos);
        firstToken = bos;
      }
      const tokensNeeded = Math.max(C - prefix.length, 0);
      const part = tokens.slice(offset, offset + tokensNeeded);
      return [[...prefix.slice(0, C), ...part], offset + tokensNeeded];
    }
    if (firstToken !== bos) {
      prefix.unshift(bos);
      firstToken = bos;
    }
    const tokensNeeded = Math.max(C - batch.length - prefix.length, 0);
    const prefixNeeded = Math.max(C - batch.length, 0);
    return [
      [...batch, ...prefix.slice(0, prefixNeeded), ...tokens.slice(offset, offset + tokensNeeded)],
      offset + tokensNeeded,
    ];
  };
  let batch: number[] | null = null;
  for (const tokens of docs) {
    let offset = 0;
    while (tokens.length - offset > 0) {
      [batch, offset] = addTokensToBatch(batch, tokens, offset);
      if (batch.length === C) {
        out.push(batch);
        batch = null;
      }
    }
  }
  return out;
}

async function all(stream: ContextStream, per = 3): Promise<number[][]> {
  const out: number[][] = [];
  for (;;) {
    const b = await stream.next(per);
    if (b === null) return out;
    for (let i = 0; i < b.n; i++) {
      out.push(Array.from(b.tokens.subarray(i * stream.context, (i + 1) * stream.context)));
    }
  }
}

function randomDoc(rng: Rng): string {
  const n = rng.uniform() < 0.2 ? rng.int(40) + 20 : rng.int(9);
  let s = rng.uniform() < 0.15 ? "^" : "";
  for (let i = 0; i < n; i++) {
    s += rng.uniform() < 0.05 ? "^" : String.fromCharCode(97 + rng.int(26));
  }
  return s;
}

async function writeJsonl(path: string, docs: string[]): Promise<void> {
  await Deno.writeTextFile(path, docs.map((text) => JSON.stringify({ text })).join("\n") + "\n");
}

Deno.test("packing equals SAELens' concat_and_batch_sequences (prepend_bos, BOS separator)", async () => {
  await withTemp(async (dir) => {
    const rng = new Rng(3);
    for (const C of [2, 3, 7, 16]) {
      const files = [[], [], []].map(() => Array.from({ length: 30 }, () => randomDoc(rng)));
      const paths = files.map((_, i) => join(dir, `f${C}-${i}.jsonl`));
      for (let i = 0; i < files.length; i++) await writeJsonl(paths[i], files[i]);
      const sources = await inspectText(paths);
      const docs = files.flat().filter((d) => d.length > 0).map(charTokenizer.encode);
      const want = saeLensContexts(docs, C, BOS);
      // Small pieces: documents split across pieces pack as one document.
      const got = await all(
        ContextStream.open({
          sources,
          tokenizer: charTokenizer,
          context: C,
          text: { maxChars: 5 },
        }),
      );
      assert.ok(want.length > 10);
      assert.deepEqual(got, want, `context ${C}`);
      for (const row of got) assert.equal(row[0], BOS, "every context begins with BOS");
    }
  });
});

Deno.test("packing: a worked example (separators, a BOS-led document, the tail dropped)", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "d.jsonl");
    await writeJsonl(path, ["abcdefg", "hi", "^jk", "lmnopq", "rs"]);
    const stream = ContextStream.open({
      sources: await inspectText([path]),
      tokenizer: charTokenizer,
      context: 5,
    });
    const got = (await all(stream)).map((r) => charTokenizer.decode(r));
    assert.deepEqual(got, ["^abcd", "^efg^", "^hi^j", "^k^lm", "^nopq"]);
    assert.equal(stream.state().done, true);
    assert.equal(stream.state().contexts, 5);
    assert.equal(await stream.next(1), null);
  });
});

Deno.test("resume: from the state after any context, the same contexts follow", async () => {
  await withTemp(async (dir) => {
    const rng = new Rng(11);
    const paths = [join(dir, "a.jsonl"), join(dir, "b.txt")];
    await writeJsonl(paths[0], Array.from({ length: 40 }, () => randomDoc(rng)));
    await Deno.writeTextFile(
      paths[1],
      Array.from({ length: 40 }, () => randomDoc(rng) || "z").join("\n\n"),
    );
    const sources = await inspectText(paths);
    const opts = { sources, tokenizer: charTokenizer, context: 6, text: { maxChars: 7 } };
    const stream = ContextStream.open(opts);
    const states: ContextState[] = [stream.state()];
    const rows: number[][] = [];
    for (;;) {
      const b = await stream.next(1);
      if (b === null) break;
      rows.push(Array.from(b.tokens));
      states.push(JSON.parse(JSON.stringify(stream.state())));
    }
    assert.ok(rows.length > 30);
    for (let k = 0; k <= rows.length; k++) {
      const resumed = ContextStream.open({ ...opts, from: states[k] });
      assert.deepEqual(await all(resumed, 4), rows.slice(k), `resumed after ${k} contexts`);
      assert.equal(resumed.contexts, rows.length);
    }
  });
});

Deno.test("loop: passes repeat the text (tail dropped each pass); shuffled file order per pass", async () => {
  await withTemp(async (dir) => {
    const paths = ["p.jsonl", "q.jsonl", "r.jsonl"].map((n) => join(dir, n));
    await writeJsonl(paths[0], ["abcdefghij"]);
    await writeJsonl(paths[1], ["klmnopqrst"]);
    await writeJsonl(paths[2], ["uvwxyz"]);
    const sources = await inspectText(paths);
    const onePass = await all(
      ContextStream.open({ sources, tokenizer: charTokenizer, context: 8 }),
    );
    assert.equal(onePass.length, 3);
    const looped = ContextStream.open({
      sources,
      tokenizer: charTokenizer,
      context: 8,
      loop: true,
    });
    const rows = (await looped.next(9))!;
    assert.equal(rows.n, 9);
    const got = Array.from(
      { length: 9 },
      (_, i) => Array.from(rows.tokens.subarray(i * 8, i * 8 + 8)),
    );
    assert.deepEqual(got, [...onePass, ...onePass, ...onePass]);
    assert.equal(looped.state().next!.epoch, 2);

    // Shuffled: each pass reads every file once, in an order drawn from the seed.
    const seen = new Set<string>();
    for (let e = 0; e < 8; e++) {
      const order = fileOrder(3, 5, e);
      assert.deepEqual([...order].sort(), [0, 1, 2]);
      seen.add(order.join());
    }
    assert.ok(seen.size > 1, "the order changes between passes");
    assert.deepEqual(fileOrder(3, undefined, 4), [0, 1, 2]);
    const opts = { sources, tokenizer: charTokenizer, context: 4, loop: true, shuffleSeed: 5 };
    const s = ContextStream.open(opts);
    const first = (await s.next(7))!;
    const saved = s.state();
    const rest = (await s.next(20))!;
    const again = ContextStream.open({ ...opts, from: saved });
    assert.deepEqual((await again.next(20))!.tokens, rest.tokens);
    const fresh = ContextStream.open(opts);
    assert.deepEqual((await fresh.next(7))!.tokens, first.tokens, "deterministic");
  });
});

Deno.test("bad settings and mismatched resumes: one line each", async () => {
  await withTemp(async (dir) => {
    const a = join(dir, "a.jsonl");
    const b = join(dir, "b.jsonl");
    await writeJsonl(a, ["abc"]);
    await writeJsonl(b, ["abd"]);
    const sources = await inspectText([a]);
    const open = (o: Partial<Parameters<typeof ContextStream.open>[0]>) => () =>
      Promise.resolve().then(() =>
        ContextStream.open({ sources, tokenizer: charTokenizer, context: 4, ...o })
      );
    await rejectsUserError(open({ context: 1 }), /context 1 is too short/);
    await rejectsUserError(
      open({ tokenizer: { ...charTokenizer, bos: null } }),
      /names no BOS token/,
    );
    const short = ContextStream.open({ sources, tokenizer: charTokenizer, context: 9, loop: true });
    await rejectsUserError(() => short.next(1), /shorter than one context of 9 tokens/);
    const s = ContextStream.open({ sources, tokenizer: charTokenizer, context: 4 });
    await s.next(1);
    const saved = s.state();
    await rejectsUserError(open({ from: saved, context: 5 }), /used context 4 but now 5/);
    await rejectsUserError(
      open({ from: saved, sources: await inspectText([b]) }),
      /text file 1 \(.*b\.jsonl\) is not the one the run read/,
    );
    await rejectsUserError(
      open({ from: saved, sources: await inspectText([a, b]) }),
      /read 1 text file/,
    );
    await rejectsUserError(open({ from: saved, shuffleSeed: 3 }), /file shuffle seed/);
    await rejectsUserError(
      open({ from: { ...saved, next: { ...saved.next!, file: 4 } } }),
      /out of range/,
    );
  });
});

Deno.test("GPT-2's tokenizer on TinyStories: contexts are BOS + the documents' own tokens", async () => {
  const gpt2 = await sharedLm("tiny-gpt2-random");
  const text = await sharedLm("text/tinystories-sample.txt");
  if (gpt2 === null || text === null) return;
  const tokenizer = await HfTokenizer.load(gpt2);
  const sources: TextSource[] = await inspectText([text]);
  const stream = ContextStream.open({ sources, tokenizer, context: 64 });
  const b = (await stream.next(4))!;
  const paragraphs = (await Deno.readTextFile(text)).split(/\n\s*\n/).map((p) => p.trim());
  const want = saeLensContexts(paragraphs.slice(0, 20).map((p) => tokenizer.encode(p)), 64, 50256)
    .slice(0, 4).flat();
  assert.deepEqual(Array.from(b.tokens), want);
  assert.equal(b.tokens[0], 50256);
  assert.match(
    tokenizer.decode(Array.from(b.tokens.subarray(1, 64))),
    /^One day, a little girl named Lily/,
  );
});
