/**
 * `sae harvest` end to end: shards from the GPU forward equal the reference forward's hook rows for
 * the token ids saved beside them (random tiny weights; stories260K when ../shared/lm is there),
 * the manifest identifies model, tokenizer and text by content, the shards train, and bad input
 * stops with one line, exit status 2, nothing written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../helpers/cli.ts";
import { type HarvestManifest, sha256File } from "../../src/lm/harvest.ts";
import { type LmModel, loadModel } from "../../src/lm/load.ts";
import { referenceForward } from "../../src/lm/reference.ts";
import { assertClose, withTemp } from "../helpers/check.ts";
import {
  llama2cTokenizerBytes,
  randomTensors,
  sharedLm,
  TINY_CONFIGS,
  writeHfDir,
} from "../lm/fixtures.ts";

const sae = runCli;

/** The payload of an .npy file after its header, and its shape ([rows, cols], C order). */
async function npy(path: string): Promise<{ shape: number[]; data: ArrayBuffer }> {
  const bytes = await Deno.readFile(path);
  const headerLen = bytes[8] | (bytes[9] << 8);
  const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLen));
  const shape = /'shape': \((\d+), (\d+)\)/.exec(header)!.slice(1).map(Number);
  return { shape, data: bytes.slice(10 + headerLen).buffer };
}

/**
 * Checks every shard of the harvest in `out` against the reference forward run on the shard's
 * saved token ids, BOS rows left out; returns the contexts seen.
 */
async function checkShards(out: string, m: LmModel, tol: number): Promise<number> {
  const manifest: HarvestManifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
  const C = manifest.context_size, d = m.config.dModel;
  let contexts = 0;
  for (const s of manifest.shards) {
    const toks = await npy(join(out, s.tokens));
    assert.deepEqual(toks.shape, [s.contexts, C]);
    const ids = Array.from(new Int32Array(toks.data));
    for (let c = 0; c < s.contexts; c++) assert.equal(ids[c * C], manifest.bos_token_id);
    const acts = await npy(join(out, s.acts));
    assert.deepEqual(acts.shape, [s.contexts * (C - 1), d]);
    const got = manifest.dtype === "f16"
      ? new Float32Array(new Float16Array(acts.data))
      : new Float32Array(acts.data);
    const ref = referenceForward(m, ids, s.contexts, C, {
      hooks: [manifest.hook],
      stopAtHook: true,
    }).hooks[manifest.hook];
    const want = new Float32Array(s.contexts * (C - 1) * d);
    for (let c = 0; c < s.contexts; c++) {
      want.set(ref.subarray((c * C + 1) * d, (c + 1) * C * d), c * (C - 1) * d);
    }
    assertClose(got, want, tol, `${s.acts}`);
    contexts += s.contexts;
  }
  return contexts;
}

/** Words made of the tiny tokenizer's letters, in documents separated by blank lines. */
function tinyText(docs: number): string {
  const out: string[] = [];
  let x = 7;
  for (let i = 0; i < docs; i++) {
    const words: string[] = [];
    for (let w = 0; w < 3 + (i % 5); w++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      words.push("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ".slice(x % 30, (x % 30) + 1 + (x % 4)));
    }
    out.push(words.join(" ") + ".");
  }
  return out.join("\n\n") + "\n";
}

Deno.test("sae harvest (random tiny llama, f32 and f16): shards equal the reference's hook rows for the saved tokens", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.llama;
    const model = await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 3));
    const tok = join(dir, "tok61.bin");
    await Deno.writeFile(tok, llama2cTokenizerBytes(61));
    const text = join(dir, "a.txt");
    await Deno.writeTextFile(text, tinyText(120));
    const m = await loadModel(model, { tokenizer: tok });
    for (
      const [dtype, hook, tol] of [["f32", "blocks.1.hook_resid_pre", 1e-4], [
        "f16",
        "blocks.1.hook_mlp_out",
        2e-3,
      ]] as const
    ) {
      const out = join(dir, `acts-${dtype}`);
      // 7 contexts of 37 tokens (252 rows ≥ 250), 5 per shard, 3 per forward pass: the second
      // batch of each shard is short.
      const r = await sae([
        "harvest",
        "--model",
        model,
        "--tokenizer",
        tok,
        "--hook",
        hook,
        "--text",
        text,
        "--context",
        "37",
        "--tokens",
        "250",
        "--shard-rows",
        "180",
        "--batch",
        "3",
        "--dtype",
        dtype,
        "--out",
        out,
        "--no-progress",
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(
        r.log,
        new RegExp(
          `252 activation rows \\[36\\] ${dtype} at ${hook} from 7 contexts of 37 tokens in 2 shards`,
        ),
      );
      const manifest: HarvestManifest = JSON.parse(
        await Deno.readTextFile(join(out, "manifest.json")),
      );
      assert.deepEqual(manifest.shards.map((s) => s.contexts), [5, 2]);
      assert.equal(manifest.complete, true);
      assert.equal(manifest.hook, hook);
      assert.equal(manifest.d, 36);
      assert.equal(manifest.tokenizer.name, "llama2c:tok61.bin");
      assert.equal(manifest.tokenizer.sha256, await sha256File(tok));
      const model_ = manifest.model as {
        path: string;
        family: string;
        files: { file: string; sha256: string }[];
        fingerprint: string;
      };
      assert.equal(model_.path, model);
      assert.equal(model_.family, "llama");
      assert.deepEqual(model_.files.map((f) => f.file), ["config.json", "model.safetensors"]);
      assert.equal(model_.files[1].sha256, await sha256File(join(model, "model.safetensors")));
      assert.match(model_.fingerprint, /^[0-9a-f]{64}$/);
      assert.equal(await checkShards(out, m, tol), 7);
    }

    // A second harvest into the same directory is refused; --resume of a complete one is a no-op.
    const again = [
      "harvest",
      "--model",
      model,
      "--tokenizer",
      tok,
      "--hook",
      "blocks.1.hook_resid_pre",
      "--text",
      text,
      "--context",
      "37",
      "--tokens",
      "250",
      "--shard-rows",
      "180",
      "--batch",
      "3",
      "--out",
      join(dir, "acts-f32"),
      "--no-progress",
    ];
    const refused = await sae(again);
    assert.equal(refused.code, 2);
    assert.match(refused.err, /already holds a harvest.*--resume/);
    const resumed = await sae([...again, "--resume"]);
    assert.equal(resumed.code, 0, resumed.err);
    assert.match(resumed.log, /252 activation rows .* in 2 shards; train on them/);

    // The shards train as they are, d_in taken from them.
    const run = await sae([
      "train",
      "--data",
      join(dir, "acts-f32"),
      "--d-sae",
      "16",
      "--batch",
      "32",
      "--steps",
      "3",
      "--out",
      join(dir, "run"),
      "--no-progress",
    ]);
    assert.equal(run.code, 0, run.err);
  });
});

Deno.test("sae harvest: bad input stops with one line, exit 2, nothing written", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.llama;
    const model = await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 3));
    const tok = join(dir, "tok61.bin");
    await Deno.writeFile(tok, llama2cTokenizerBytes(61));
    const small = join(dir, "tok40.bin");
    await Deno.writeFile(small, llama2cTokenizerBytes(40));
    const text = join(dir, "a.txt");
    await Deno.writeTextFile(text, tinyText(20));
    const empty = join(dir, "empty.txt");
    await Deno.writeTextFile(empty, " \n\n \t\n");
    const out = join(dir, "acts");
    const base = { model, tokenizer: tok, hook: "blocks.0.hook_resid_post", text, context: "16" };
    const cases: [Partial<typeof base>, RegExp][] = [
      [
        { hook: "blocks.2.hook_resid_pre" },
        /hook 'blocks\.2\.hook_resid_pre' does not exist .*valid hooks are blocks\.L\.\{hook_resid_pre,hook_attn_out,hook_mlp_out,hook_resid_post\} for L in 0\.\.1/,
      ],
      [{ hook: "blocks.0.resid" }, /valid hooks are/],
      [
        { context: "65" },
        /--context 65 is longer than the model's 64 tokens .*--context 64 or less/,
      ],
      [{ text: empty }, /empty\.txt.*(no text|empty)/i],
      [{ text: join(dir, "missing.txt") }, /missing\.txt/],
      [
        { tokenizer: small },
        /tok40\.bin: the tokenizer has 40 tokens but the model's vocabulary .* has 61/,
      ],
      [{ model: join(dir, "none") }, /no such file or directory/],
    ];
    for (const [patch, pattern] of cases) {
      const f = { ...base, ...patch };
      const r = await sae([
        "harvest",
        "--model",
        f.model,
        "--tokenizer",
        f.tokenizer,
        "--hook",
        f.hook,
        "--text",
        f.text,
        "--context",
        f.context,
        "--tokens",
        "100",
        "--out",
        out,
        "--no-progress",
      ]);
      assert.equal(r.code, 2, `${JSON.stringify(patch)}: ${r.err}`);
      assert.match(r.err, /^error: /);
      assert.equal(r.err.trim().split("\n").length, 1, r.err);
      assert.match(r.err, pattern);
      await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound);
    }
  });
});

Deno.test("sae harvest stories260K: shards equal the reference forward on the saved tokens", async () => {
  const lm = sharedLm("sae harvest on stories260K");
  if (!lm) return;
  await withTemp(async (dir) => {
    const ckpt = join(lm, "stories260K", "stories260K.bin");
    const text = join(lm, "text", "tinystories-sample.txt");
    const out = join(dir, "acts");
    const r = await sae([
      "harvest",
      "--model",
      ckpt,
      "--hook",
      "blocks.3.hook_resid_post",
      "--text",
      text,
      "--context",
      "64",
      "--tokens",
      "600",
      "--batch",
      "4",
      "--out",
      out,
      "--no-progress",
    ]);
    assert.equal(r.code, 0, r.err);
    const m = await loadModel(ckpt);
    assert.equal(await checkShards(out, m, 1e-4), 10);
    // The first context is BOS and the first story's start, as the tokenizer encodes it.
    const manifest: HarvestManifest = JSON.parse(
      await Deno.readTextFile(join(out, "manifest.json")),
    );
    const ids = new Int32Array((await npy(join(out, manifest.shards[0].tokens))).data);
    const first = (await Deno.readTextFile(text)).split("\n\n")[0].trim();
    assert.deepEqual(Array.from(ids.subarray(1, 64)), m.tokenizer!.encode(first).slice(0, 63));
    assert.equal(manifest.tokenizer.name, "llama2c:tok512.bin");
    assert.equal(
      (manifest.model as { files: { sha256: string }[] }).files[0].sha256.slice(0, 8),
      "b0a507e7",
    );
  });
});
