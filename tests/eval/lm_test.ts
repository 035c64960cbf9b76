/**
 * KL and CE with the SAE spliced in (src/eval/lm.ts): the three GPU passes against the
 * TypeScript reference on tiny random models, and the limiting cases (an exact SAE scores 1 and
 * 1; one that outputs zeros scores 0 and 0).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  evalMasks,
  LmAccumulator,
  lmEvalReference,
  type LmEvalSpec,
  LmEvaluator,
} from "../../src/eval/lm.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { GpuLm } from "../../src/lm/forward.ts";
import { type LmModel, loadModel } from "../../src/lm/load.ts";
import { referenceForward } from "../../src/lm/reference.ts";
import type { LoadedSae } from "../../src/sae/load.ts";
import { assertClose, withTemp } from "../helpers/check.ts";
import { randomTensors, randomTokens, TINY_CONFIGS, writeHfDir } from "../lm/fixtures.ts";
import { exactSae, randomSae, zeroSae } from "./lm_helpers.ts";

/** Contexts that begin with BOS (1) and hold some EOS (2) and BOS separators inside. */
function contexts(batch: number, C: number, vocab: number, seed: number): number[] {
  const t = randomTokens(batch * C, vocab, seed);
  for (let b = 0; b < batch; b++) {
    t[b * C] = 1;
    t[b * C + 4] = 2;
    t[b * C + 5] = 1;
  }
  return t;
}

async function tinyModel(dir: string, family: keyof typeof TINY_CONFIGS): Promise<LmModel> {
  const cfg = { ...TINY_CONFIGS[family], bos_token_id: 1, eos_token_id: 2 };
  return await loadModel(await writeHfDir(join(dir, family), cfg, randomTensors(cfg, 21)));
}

Deno.test("evalMasks: SAEBench's masks (special tokens out, CE without the last position, padding nowhere)", () => {
  const spec: LmEvalSpec = {
    hook: "blocks.0.hook_resid_pre",
    batch: 3,
    context: 4,
    ignoreTokens: [1, 2],
    excludeSpecial: true,
  };
  const tokens = [1, 5, 2, 6, 1, 7, 8, 1, 1, 9, 9, 9];
  const m = evalMasks(spec, tokens, 2);
  assert.deepEqual([...m.keep], [0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1]);
  assert.deepEqual([...m.kl], [0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual([...m.ce], [0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual([...m.targets], [0, 2, 0, 0, 0, 8, 1, 0, 0, 0, 0, 0]);
  const all = evalMasks({ ...spec, excludeSpecial: false }, tokens, 2);
  assert.ok(all.keep.every((k) => k === 1));
  assert.deepEqual(all.kl, m.kl);
});

for (
  const [family, hook, sae] of [
    ["llama", "blocks.1.hook_resid_pre", (d: number) => randomSae(d, 50, 3, { scale: 0.8 })],
    ["gpt2", "blocks.1.hook_mlp_out", (d: number) => randomSae(d, 50, 4, { tau: 0.05 })],
    ["gemma2", "blocks.1.hook_attn_out", (d: number) => randomSae(d, 43, 5, { scale: 1.7 })],
  ] as const
) {
  Deno.test(`LmEvaluator ${family} at ${hook}: per-token CE and KL of the three passes match the reference`, async () => {
    await withTemp(async (dir) => {
      const m = await tinyModel(dir, family);
      const gpu = await getGpu();
      const lm = GpuLm.upload(gpu, m);
      const s = sae(m.config.dModel);
      for (const excludeSpecial of [true, false]) {
        const spec: LmEvalSpec = {
          hook,
          batch: 3,
          context: 11,
          ignoreTokens: [1, 2],
          excludeSpecial,
        };
        const ev = await LmEvaluator.create(lm, s, spec);
        const tokens = contexts(3, 11, m.config.vocabSize, 8);
        const got = await ev.run(tokens, 2);
        const want = lmEvalReference(m, s, spec, tokens, 2);
        assert.deepEqual(got.masks, want.masks);
        const what = `${family} exclude ${excludeSpecial}`;
        for (const k of ["ceClean", "ceSae", "ceZero", "klSae", "klZero"] as const) {
          assertClose(got[k], want[k], 2e-4, `${what} ${k}`);
          assert.ok(got[k].some((v) => v > 1e-3), `${what} ${k}: not all zero`);
        }
        // The SAE really moved the model, and masked tokens are 0.
        assert.ok(got.klSae.some((v, t) => Math.abs(v - got.klZero[t]) > 1e-3));
        assert.ok(got.klSae.every((v, t) => want.masks.kl[t] || v === 0));
        // The hook's activations read back are the clean pass's.
        const clean = referenceForward(m, tokens, 3, 11, { hooks: [hook] }).hooks[hook];
        assertClose(got.x, clean, 1e-4, `${what} x`);
        ev.destroy();
      }
      lm.destroy();
    });
  });
}

/** Scores of `sae` over two batches of random contexts. */
async function scores(
  lm: GpuLm,
  sae: LoadedSae,
  hook: string,
  excludeSpecial: boolean,
): Promise<ReturnType<LmAccumulator["result"]>> {
  const spec: LmEvalSpec = { hook, batch: 2, context: 13, ignoreTokens: [1, 2], excludeSpecial };
  const ev = await LmEvaluator.create(lm, sae, spec);
  const acc = new LmAccumulator(sae.cfg.d_in, sae.cfg.d_sae);
  for (const seed of [1, 2]) acc.add(await ev.run(contexts(2, 13, lm.config.vocabSize, seed), 2));
  ev.destroy();
  return acc.result();
}

Deno.test("LmEvaluator limiting cases: an exact SAE scores 1 and 1, one that outputs zeros 0 and 0", async () => {
  await withTemp(async (dir) => {
    for (
      const [family, hook] of [["llama", "blocks.1.hook_resid_pre"], [
        "gemma2",
        "blocks.0.hook_mlp_out",
      ]] as const
    ) {
      const m = await tinyModel(dir, family);
      const lm = GpuLm.upload(await getGpu(), m);
      const d = m.config.dModel;
      for (
        const sae of [exactSae(d), exactSae(d, { scale: 2, thresholds: true })]
      ) {
        const r = await scores(lm, sae, hook, true);
        assert.equal(r.kl_div_with_sae, 0, `${family}: the spliced pass is the clean one`);
        assert.equal(r.ce_loss_with_sae, r.ce_loss_without_sae);
        assert.ok(r.kl_div_with_ablation > 0.01);
        assert.equal(r.kl_div_score, 1);
        assert.equal(r.ce_loss_score, 1);
      }
      // Zeros everywhere, special tokens included: the zero-ablated pass exactly.
      const zero = await scores(lm, zeroSae(d, 40), hook, false);
      assert.equal(zero.kl_div_with_sae, zero.kl_div_with_ablation);
      assert.equal(zero.kl_div_score, 0);
      assert.equal(zero.ce_loss_score, 0);
      // Keeping BOS and EOS at their activation (the default) is not zero ablation there.
      const kept = await scores(lm, zeroSae(d, 40), hook, true);
      assert.notEqual(kept.kl_div_with_sae, kept.kl_div_with_ablation);
      lm.destroy();
    }
  });
});
