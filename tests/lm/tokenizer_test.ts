import assert from "node:assert/strict";
import { join } from "node:path";
import { parseHfConfig } from "../../src/lm/config.ts";
import {
  decodeLlama2cTokenizer,
  type Llama2cTokenizer,
  loadLlama2cTokenizer,
} from "../../src/lm/llama2c_tokenizer.ts";
import { checkTokenizerFits, openTokenizer } from "../../src/lm/tokenizer.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";
import { sharedLm, TINY_CONFIGS } from "./fixtures.ts";

/** A tokenizer file of the given pieces and scores, in llama2.c's format. */
function tokFile(pieces: string[], scores: number[]): Uint8Array {
  const enc = new TextEncoder();
  const parts = pieces.map((p) => enc.encode(p));
  const out = new Uint8Array(4 + parts.reduce((s, p) => s + 8 + p.length, 0));
  const v = new DataView(out.buffer);
  v.setInt32(0, Math.max(...parts.map((p) => p.length)), true);
  let o = 4;
  parts.forEach((p, i) => {
    v.setFloat32(o, scores[i], true);
    v.setInt32(o + 4, p.length, true);
    out.set(p, o + 8);
    o += 8 + p.length;
  });
  return out;
}

/** llama2.c run.c's encode as written there: rescan every adjacent pair after each merge. */
function naiveEncode(tok: Llama2cTokenizer, text: string): number[] {
  // deno-lint-ignore no-explicit-any
  const t = tok as any as { ids: Map<string, number>; scores: Float32Array; byteIds: number[] };
  const bs = (b: Uint8Array) => String.fromCharCode(...b);
  const bytes = new TextEncoder().encode(" " + text);
  const syms: string[] = [];
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    const n = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    const s = bs(bytes.subarray(i, i + n));
    if (t.ids.has(s)) syms.push(s);
    else for (let k = 0; k < n; k++) syms.push(`<byte${bytes[i + k]}>`);
    i += n;
  }
  const id = (s: string) =>
    s.startsWith("<byte") ? t.byteIds[Number(s.slice(5, -1))] : t.ids.get(s)!;
  for (;;) {
    let best = -1e10, at = -1;
    for (let i = 0; i + 1 < syms.length; i++) {
      if (syms[i].startsWith("<byte") || syms[i + 1].startsWith("<byte")) continue;
      const hit = t.ids.get(syms[i] + syms[i + 1]);
      if (hit !== undefined && t.scores[hit] > best) {
        best = t.scores[hit];
        at = i;
      }
    }
    if (at < 0) break;
    syms.splice(at, 2, syms[at] + syms[at + 1]);
  }
  return syms.map(id);
}

Deno.test("llama2c tokenizer: tok512.bin encodes TinyStories as llama2.c's O(n²) merge loop does, and decodes back", async () => {
  const lm = sharedLm("tok512.bin encoding");
  if (!lm) return;
  const tok = await loadLlama2cTokenizer(join(lm, "stories260K/tok512.bin"));
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.name, "llama2c:tok512.bin");
  const text = await Deno.readTextFile(join(lm, "text/tinystories-sample.txt"));
  const docs = text.split(/\n\s*\n/).filter((d) => d.trim()).slice(0, 12);
  docs.push("naïve café ☃ — 1234 <0x41>", "  two leading spaces", "x");
  for (const doc of docs) {
    const ids = tok.encode(doc);
    assert.deepEqual(ids, naiveEncode(tok, doc), doc.slice(0, 40));
    assert.equal(tok.decode(ids), doc);
    assert.equal(tok.decode([1, ...ids, 2]), doc);
  }
  // Known ids: " Once" is 403 and " upon" 407 in stories260K's vocabulary.
  assert.deepEqual(tok.encode("Once upon").slice(0, 2), [403, 407]);
  assert.deepEqual(tok.encode(""), []);
});

Deno.test("llama2c tokenizer: highest-score merge first, leftmost on ties, bytes for unknown characters", () => {
  const pieces = ["<unk>", "<s>", "</s>"];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const base = pieces.length;
  pieces.push(" ", "a", "b", "ab", "ba", " a", "aba");
  const scores: number[] = pieces.map((_, i) => i < base ? 0 : -10);
  scores[base + 3] = 5; // ab
  scores[base + 4] = 5; // ba: ties with ab; the leftmost pair wins
  scores[base + 5] = 1; // " a"
  scores[base + 6] = 7; // aba
  const tok = decodeLlama2cTokenizer(tokFile(pieces, scores), "t.bin");
  // " abab": pairs " a"(1) ab(5) ba(5) ab(5): leftmost ab at 1 → " ", "ab", "a", "b";
  // then ab+a = "aba"(7) → " ", "aba", "b"; nothing else merges.
  assert.deepEqual(tok.encode("abab"), [base, base + 6, base + 2]);
  assert.deepEqual(naiveEncode(tok, "abab"), tok.encode("abab"));
  // "é" (c3 a9) is not a piece: its two bytes are.
  assert.deepEqual(tok.encode("é"), [base, 3 + 0xc3, 3 + 0xa9]);
  assert.equal(tok.decode(tok.encode("é")), "é");
});

Deno.test("tokenizers: bad files and a vocabulary mismatch are one-line UserErrors", async () => {
  await withTemp(async (dir) => {
    const bad = join(dir, "bad.bin");
    await Deno.writeFile(bad, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9]));
    await rejectsUserError(() => loadLlama2cTokenizer(bad), /bad\.bin: not a llama2\.c tokenizer/);
    await rejectsUserError(() => openTokenizer(join(dir, "vocab.txt")), /not a tokenizer file/);
  });
  const lm = sharedLm("tokenizer/vocabulary mismatch");
  if (!lm) return;
  const tok = await loadLlama2cTokenizer(join(lm, "stories260K/tok512.bin"));
  const cfg = parseHfConfig(TINY_CONFIGS.llama, "tiny/config.json");
  assert.throws(
    () => checkTokenizerFits(tok, cfg),
    /tok512\.bin: the tokenizer has 512 tokens but the model's vocabulary \(tiny\/config\.json\) has 61/,
  );
  checkTokenizerFits(tok, { ...cfg, vocabSize: 512 });
  checkTokenizerFits(tok, { ...cfg, vocabSize: 576 }); // padded to a multiple of 64
});
