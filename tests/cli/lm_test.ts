/** `sae lm info` and `sae lm generate`: output, files, and one-line errors with exit status 2. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../helpers/cli.ts";
import { parseCount } from "../../src/cli/lm.ts";
import { withTemp } from "../helpers/check.ts";
import { llama2cTokenizerBytes, randomTensors, TINY_CONFIGS, writeHfDir } from "../lm/fixtures.ts";

const sae = runCli;

Deno.test("sae lm info: text and --json describe the model; bad models exit 2 with one line", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.gemma2;
    const model = await writeHfDir(join(dir, "g"), cfg, randomTensors(cfg, 1), { dtype: "BF16" });
    const text = await sae(["lm", "info", "--model", model]);
    assert.equal(text.code, 0, text.err);
    assert.match(text.log, /family +gemma2: RMSNorm \(1 \+ w\), RoPE rotate-half θ 10000, GeGLU/);
    assert.match(text.log, /attention soft-cap 1\.5, logit soft-cap 2\.5, sliding window 5/);
    assert.match(text.log, /dtype +BF16 on disk, computed in f32/);
    assert.match(
      text.log,
      /hooks +blocks\.L\.\{hook_resid_pre,hook_attn_out,hook_mlp_out,hook_resid_post\} for L in 0\.\.2 \(12/,
    );
    const json = await sae(["lm", "info", "--model", model, "--json"]);
    const info = JSON.parse(json.log);
    assert.equal(info.family, "gemma2");
    assert.equal(info.context_length, 64);
    assert.equal(info.hooks.length, 12);
    assert.equal(info.tokenizer, null);

    await Deno.writeTextFile(
      join(model, "config.json"),
      JSON.stringify({ ...cfg, architectures: ["BertForMaskedLM"] }),
    );
    const bad = await sae(["lm", "info", "--model", model]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /^error: .*config\.json: architecture BertForMaskedLM is not supported/);
    assert.equal(bad.err.trim().split("\n").length, 1);
    assert.equal((await sae(["lm", "info", "--model", join(dir, "none")])).code, 2);
  });
});

Deno.test("sae lm generate: writes .txt and .jsonl corpora; bad flags and a mismatched tokenizer exit 2", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.llama;
    const model = await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 8));
    const tok = join(dir, "tok61.bin");
    await Deno.writeFile(tok, llama2cTokenizerBytes(61));
    const base = ["lm", "generate", "--model", model, "--tokenizer", tok, "--tokens", "40"];
    const txt = join(dir, "corpus.txt");
    const r = await sae([...base, "--out", txt, "--context", "12", "--batch", "4", "--seed", "3"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.log, /wrote .*corpus\.txt: \d+ documents, \d+ tokens/);
    const docs = (await Deno.readTextFile(txt)).trimEnd().split("\n\n");
    assert.ok(docs.length >= 4, `${docs.length} documents`);
    const jsonl = join(dir, "corpus.jsonl");
    const j = await sae([
      ...base,
      "--out",
      jsonl,
      "--context",
      "12",
      "--batch",
      "4",
      "--seed",
      "3",
    ]);
    assert.equal(j.code, 0, j.err);
    const lines = (await Deno.readTextFile(jsonl)).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.text.trim()), docs, "same seed: the same documents");

    for (
      const [args, pattern] of [
        [["--out", join(dir, "x.csv")], /--out '.*x\.csv' must end in \.txt or \.jsonl/],
        [["--out", txt, "--context", "65"], /--context 65 is longer than the model's 64/],
        [["--out", txt, "--temperature", "-1"], /--temperature must be a number >= 0/],
        [["--out", txt, "--batch", "0"], /--batch must be a positive whole number/],
      ] as const
    ) {
      const e = await sae([...base, ...args]);
      assert.equal(e.code, 2, e.err);
      assert.match(e.err, pattern);
    }
    await Deno.writeFile(tok, llama2cTokenizerBytes(40));
    const mis = await sae([...base, "--out", txt]);
    assert.equal(mis.code, 2);
    assert.match(
      mis.err,
      /tok61\.bin: the tokenizer has 40 tokens but the model's vocabulary .* has 61/,
    );
  });
});

Deno.test("parseCount: plain and k/M/G counts; anything else is a UserError", () => {
  assert.equal(parseCount("20000", "--tokens"), 20000);
  assert.equal(parseCount("2M", "--tokens"), 2_000_000);
  assert.equal(parseCount("1.5k", "--tokens"), 1500);
  for (const bad of ["0", "-3", "2x", "1.5", ""]) assert.throws(() => parseCount(bad, "--tokens"));
});
