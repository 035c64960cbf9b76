/**
 * `sae eval RUN --model DIR --text FILE`: eval.json's language-model block, an imported SAELens
 * SAE evaluated the same way, stories260K with a small trained SAE (when ../shared/lm exists),
 * and every bad input as one line with exit status 2.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../helpers/cli.ts";
import { mergeConfig } from "../../src/config.ts";
import { exportSaelens } from "../../src/export/saelens.ts";
import type { EvalReport } from "../../src/eval/schema.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { GpuLm, LmForward } from "../../src/lm/forward.ts";
import { harvest } from "../../src/lm/harvest.ts";
import { loadModel } from "../../src/lm/load.ts";
import { ContextStream } from "../../src/lm/contexts.ts";
import { inspectText } from "../../src/lm/text.ts";
import { openTokenizer } from "../../src/lm/tokenizer.ts";
import { train } from "../../src/sae/trainer.ts";
import { withTemp } from "../helpers/check.ts";
import { QUIET } from "../helpers/runs.ts";
import { randomTensors, sharedLm, TINY_CONFIGS, writeHfDir } from "../lm/fixtures.ts";
import { exactSae, randomSae, tinyTokenizer, writeRun, zeroSae } from "../eval/lm_helpers.ts";

const sae = runCli;

/** A tiny llama directory `m` (d 36, vocab 61, context 64), its tokenizer and some text. */
async function fixture(dir: string) {
  const cfg = TINY_CONFIGS.llama;
  const model = await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 8));
  const tok = join(dir, "tok61.bin");
  await Deno.writeFile(tok, tinyTokenizer(61));
  const text = join(dir, "eval.txt");
  const words = "the cat sat on a mat and saw 3 big dogs run far away, then it slept!";
  await Deno.writeTextFile(
    text,
    Array.from({ length: 4 }, (_, i) => words.slice(i) + " " + words.slice(0, i)).join("\n\n"),
  );
  const base = ["--model", model, "--tokenizer", tok, "--text", text, "--context", "16"];
  return { model, tok, text, base: [...base, "--batch", "4"] };
}

const HOOK = "blocks.1.hook_resid_pre";

async function report(path: string): Promise<EvalReport> {
  return JSON.parse(await Deno.readTextFile(path));
}

Deno.test("sae eval --model: eval.json gets SAEBench's KL and CE block; an exact SAE scores 1 and 1", async () => {
  await withTemp(async (dir) => {
    const { base, text, tok } = await fixture(dir);
    const s = exactSae(36);
    s.cfg = mergeConfig(s.cfg, { model_name: "m", hook_name: HOOK });
    const run = await writeRun(join(dir, "exact"), s);
    const r = await sae(["eval", run, ...base, "--recon-batches", "3"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.log, /CE loss clean \/ spliced \/ zero-ablated +([\d.]+) \/ \1 \/ [\d.]+ nats/);
    assert.match(r.log, /KL divergence score +1\.0000/);
    const e = await report(join(run, "eval.json"));
    const lm = e.lm!;
    assert.equal(lm.hook, HOOK);
    assert.equal(lm.batches, 3);
    assert.equal(lm.batch_size_prompts, 4);
    assert.equal(lm.context_size, 16);
    assert.deepEqual(lm.ignored_token_ids, [1, 2]);
    assert.equal(lm.exclude_special_tokens_from_reconstruction, true);
    assert.equal(lm.kl_div_score, 1);
    assert.equal(lm.ce_loss_score, 1);
    assert.equal(lm.kl_div_with_sae, 0);
    assert.ok(lm.kl_div_with_ablation > 0);
    // The core metrics are of the same tokens: every non-special position of 12 contexts.
    assert.equal(e.core.recon_rows, lm.kl_tokens);
    assert.ok(lm.kl_tokens > 12 * 12 && lm.kl_tokens < 12 * 16);
    assert.ok(lm.ce_tokens < lm.kl_tokens);
    assert.equal(e.core.kl_div_score, 1);
    assert.equal(e.core.mse, 0);
    assert.equal(e.core.explained_variance, 1);

    // Zeros everywhere (BOS and EOS included) is zero ablation: 0 and 0.
    const z = zeroSae(36, 20);
    z.cfg = mergeConfig(z.cfg, { hook_name: HOOK });
    const zrun = await writeRun(join(dir, "zero"), z);
    const zr = await sae(["eval", zrun, ...base, "--reconstruct-special-tokens"]);
    assert.equal(zr.code, 0, zr.err);
    const zl = (await report(join(zrun, "eval.json"))).lm!;
    assert.equal(zl.kl_div_score, 0);
    assert.equal(zl.ce_loss_score, 0);
    // The text ends before 10 batches; the last one is padded, the padding counted nowhere.
    const stream = ContextStream.open({
      sources: await inspectText([text]),
      tokenizer: await openTokenizer(tok),
      context: 16,
    });
    const all = (await stream.next(1000))!;
    assert.ok(all.n % 4 !== 0 && all.n < 40, `${all.n} contexts`);
    assert.equal(zl.batches, Math.ceil(all.n / 4));
    assert.equal(zl.kl_tokens, all.tokens.filter((t) => t !== 1 && t !== 2).length);
    assert.equal(zl.exclude_special_tokens_from_reconstruction, false);
  });
});

Deno.test("sae import then sae eval --model: an SAE in SAELens' layout is scored the same way", async () => {
  await withTemp(async (dir) => {
    const { base } = await fixture(dir);
    // An exact SAE with input scale 2: the export folds it, the import restores it.
    const s = exactSae(36, { scale: 2 });
    s.cfg = mergeConfig(s.cfg, { normalize_activations: "expected_average_only_in" });
    const run = await writeRun(join(dir, "run"), s);
    await exportSaelens(run, join(dir, "sl"), {
      overwrite: false,
      model: { model_name: "m", hook_name: HOOK, hook_layer: 1 },
    });
    const imp = await sae(["import", join(dir, "sl"), "--out", join(dir, "imported")]);
    assert.equal(imp.code, 0, imp.err);
    const r = await sae(["eval", join(dir, "imported"), ...base]);
    assert.equal(r.code, 0, r.err);
    const lm = (await report(join(dir, "imported", "eval.json"))).lm!;
    assert.equal(lm.hook, HOOK, "the hook comes from the imported cfg.json");
    assert.equal(lm.kl_div_score, 1);
    assert.equal(lm.ce_loss_score, 1);
  });
});

Deno.test("sae eval --model: bad input is one line with exit status 2", async () => {
  await withTemp(async (dir) => {
    const { base, model, text, tok } = await fixture(dir);
    const good = randomSae(36, 40, 2);
    good.cfg = mergeConfig(good.cfg, { model_name: "m", hook_name: HOOK });
    const run = await writeRun(join(dir, "run"), good);
    const unrecorded = await writeRun(join(dir, "unrecorded"), randomSae(36, 40, 2));
    const narrow = randomSae(20, 40, 2);
    narrow.cfg = mergeConfig(narrow.cfg, { hook_name: HOOK });
    const narrowRun = await writeRun(join(dir, "narrow"), narrow);
    const other = randomSae(36, 40, 2);
    other.cfg = mergeConfig(other.cfg, { model_name: "gpt2", hook_name: HOOK });
    const otherRun = await writeRun(join(dir, "other"), other);
    // Trained on a harvest of another model: its manifest says so.
    const acts = join(dir, "acts");
    await Deno.mkdir(acts);
    await Deno.writeTextFile(
      join(acts, "manifest.json"),
      JSON.stringify({ format: "sae-harvest", model: { name: "tiny-other" }, hook: HOOK }),
    );
    const harvested = randomSae(36, 40, 2);
    harvested.cfg = mergeConfig(harvested.cfg, { data: acts });
    const harvestedRun = await writeRun(join(dir, "harvested"), harvested);
    const tok40 = join(dir, "tok40.bin");
    await Deno.writeFile(tok40, tinyTokenizer(40));
    const short = join(dir, "short.txt");
    await Deno.writeTextFile(short, "a cat");
    for (
      const [args, pattern] of [
        [
          [run, ...base, "--hook", "blocks.9.hook_resid_pre"],
          /hook 'blocks\.9\.hook_resid_pre' does not exist in .*: valid hooks are blocks\.L\.\{hook_resid_pre,hook_attn_out,hook_mlp_out,hook_resid_post\} for L in 0\.\.1/,
        ],
        [
          [narrowRun, ...base],
          /the SAE has d_in 20 but blocks\.1\.hook_resid_pre of .* is 36 wide/,
        ],
        [
          [run, "--model", model, "--tokenizer", tok40, "--text", text, "--context", "16"],
          /tok40\.bin: the tokenizer has 40 tokens but the model's vocabulary .* has 61/,
        ],
        [
          [run, "--model", model, "--tokenizer", tok, "--text", short, "--context", "16"],
          /the evaluation text \(.*short\.txt\) holds fewer than 16 tokens, one context/,
        ],
        [
          [otherRun, ...base],
          /was trained on model 'gpt2' \(config\.yaml\) but --model is 'm': pass that model, or --allow-model-mismatch/,
        ],
        [
          [harvestedRun, ...base],
          /was trained on model 'tiny-other' \(.*acts\/manifest\.json\) but --model is 'm'/,
        ],
        [
          [run, ...base, "--hook", "blocks.0.hook_resid_pre"],
          /was trained on blocks\.1\.hook_resid_pre \(config\.yaml\) but --hook is blocks\.0\.hook_resid_pre/,
        ],
        [
          [unrecorded, ...base],
          /does not record the hook its SAE was trained on \(hook_name\): pass --hook/,
        ],
        [[run, ...base, "--context", "65"], /a context of 65 tokens is longer than the model's 64/],
        [[run, ...base, "--data", "synthetic"], /--data and --model exclude each other/],
        [
          [run, ...base, "--sparsity-batches", "3"],
          /--sparsity-batches does not apply with --model/,
        ],
        [[run, "--model", model], /--model needs --text/],
        [[run, "--text", text], /--text applies only with --model/],
      ] as const
    ) {
      const r = await sae(["eval", ...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.equal(r.err.trim().split("\n").length, 1, r.err);
      assert.match(r.err, pattern);
    }
    // The same weights under another name evaluate with --allow-model-mismatch.
    const ok = await sae(["eval", otherRun, ...base, "--allow-model-mismatch"]);
    assert.equal(ok.code, 0, ok.err);
  });
});

Deno.test("sae eval --model on stories260K at blocks.2.hook_resid_pre with a small trained SAE", async () => {
  const shared = sharedLm("stories260K KL/CE evaluation");
  if (!shared) return;
  await withTemp(async (dir) => {
    const bin = join(shared, "stories260K/stories260K.bin");
    const hook = "blocks.2.hook_resid_pre";
    // The SAE trains on the second half of the sample's stories and is evaluated on the first.
    const stories = await Deno.readTextFile(join(shared, "text/tinystories-sample.txt"));
    const cut = stories.indexOf("\n\n", stories.length >> 1);
    const heldOut = join(dir, "eval.txt"), trainText = join(dir, "train.txt");
    await Deno.writeTextFile(heldOut, stories.slice(0, cut));
    await Deno.writeTextFile(trainText, stories.slice(cut));
    const m = await loadModel(bin);
    const gpu = await getGpu();
    const lm = GpuLm.upload(gpu, m);
    const fwd = await LmForward.build(lm, { batch: 16, seq: 128, hooks: [hook], stopAtHook: true });
    const acts = join(dir, "acts");
    await harvest({
      contexts: { sources: await inspectText([trainText]), tokenizer: m.tokenizer!, context: 128 },
      activations: async (tokens) => {
        const n = tokens.length / 128;
        const ids = new Uint32Array(16 * 128).fill(1);
        ids.set(tokens);
        fwd.run(ids);
        const all = await gpu.read(fwd.hooks[hook], 16 * 128 * 64 * 4);
        const out = new Float32Array(n * 127 * 64);
        for (let c = 0; c < n; c++) {
          out.set(all.subarray((c * 128 + 1) * 64, (c + 1) * 128 * 64), c * 127 * 64);
        }
        return out;
      },
      d: 64,
      tokens: 20_000,
      shardRows: 1 << 16,
      dtype: "f32",
      outDir: acts,
      manifest: {
        model: { name: "stories260K.bin" },
        hook,
        tokenizer: { name: m.tokenizer!.name, sha256: null },
      },
      log: () => {},
    });
    fwd.destroy();
    lm.destroy();
    const run = join(dir, "run");
    await train(
      mergeConfig(exactSae(32).cfg, {
        data: acts,
        d_in: 64,
        d_sae: 256,
        batch: 256,
        steps: 300,
        l1: 0.02,
        log_every: 100,
        checkpoint_every: 0,
        init_rows: 1024,
      }),
      { ...QUIET, outDir: run },
    );
    const r = await sae(["eval", run, "--model", bin, "--text", heldOut, "--recon-batches", "2"]);
    assert.equal(r.code, 0, r.err);
    const e = await report(join(run, "eval.json"));
    const L = e.lm!;
    assert.equal(L.hook, hook, "from the harvest's manifest");
    assert.equal(L.kl_tokens, e.core.recon_rows);
    // A real model on its own domain: a CE well under ln 512, a real SAE between the two limits.
    assert.ok(L.ce_loss_without_sae < 2.5, `clean CE ${L.ce_loss_without_sae}`);
    assert.ok(L.ce_loss_without_sae < L.ce_loss_with_sae);
    assert.ok(L.ce_loss_with_sae < L.ce_loss_with_ablation);
    assert.ok(L.kl_div_score > 0.5 && L.kl_div_score < 1, `KL score ${L.kl_div_score}`);
    assert.ok(L.ce_loss_score > 0.5 && L.ce_loss_score < 1, `CE score ${L.ce_loss_score}`);
    assert.ok(e.core.explained_variance > 0.5, `EV ${e.core.explained_variance}`);
  });
});
