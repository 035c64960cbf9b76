import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../../src/gpu/device.ts";
import { GpuLm } from "../../src/lm/forward.ts";
import { HookRows } from "../../src/lm/hook_rows.ts";
import { loadModel } from "../../src/lm/load.ts";
import { referenceForward } from "../../src/lm/reference.ts";
import { assertClose, rejectsUserError, withTemp } from "../helpers/check.ts";
import { randomTensors, randomTokens, TINY_CONFIGS, writeHfDir } from "./fixtures.ts";

/** The reference's rows of `hook` at positions 1..C−1 of each context, context-major. */
function referenceRows(
  m: Awaited<ReturnType<typeof loadModel>>,
  tokens: number[],
  n: number,
  C: number,
  hook: string,
): Float32Array {
  const d = m.config.dModel;
  const all = referenceForward(m, tokens, n, C, { hooks: [hook], stopAtHook: true }).hooks[hook];
  const out = new Float32Array(n * (C - 1) * d);
  for (let c = 0; c < n; c++) {
    out.set(all.subarray((c * C + 1) * d, (c + 1) * C * d), c * (C - 1) * d);
  }
  return out;
}

for (
  const [family, hook] of [
    ["gpt2", "blocks.0.hook_resid_pre"],
    ["llama", "blocks.1.hook_attn_out"],
    ["gemma2", "blocks.1.hook_mlp_out"],
  ] as const
) {
  Deno.test(`HookRows ${family} ${hook}: full and short batches give the reference's rows without BOS`, async () => {
    await withTemp(async (dir) => {
      const cfg = TINY_CONFIGS[family];
      const m = await loadModel(await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 8)));
      const lm = GpuLm.upload(await getGpu(), m);
      const C = 37, batch = 3, d = m.config.dModel, V = m.config.vocabSize;
      const rows = await HookRows.build(lm, { hook, context: C, batch });
      try {
        for (const [n, seed] of [[3, 1], [2, 2], [1, 3]]) {
          const tokens = randomTokens(n * C, V, seed);
          const got = await rows.read(Int32Array.from(tokens));
          assert.equal(got.length, n * (C - 1) * d);
          assertClose(got, referenceRows(m, tokens, n, C, hook), 1e-4, `${family} n=${n}`);
        }
        await assert.rejects(() => rows.read(new Int32Array(4 * C)), /not 1\.\.3 contexts/);
      } finally {
        rows.destroy();
        lm.destroy();
      }
    });
  });
}

Deno.test("HookRows: an unknown hook lists the valid ones; a context over the model's is refused", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.llama;
    const m = await loadModel(await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 8)));
    const lm = GpuLm.upload(await getGpu(), m);
    try {
      await rejectsUserError(
        () => HookRows.build(lm, { hook: "blocks.2.hook_resid_pre", context: 8, batch: 1 }),
        /valid hooks are blocks\.L\.\{hook_resid_pre,.*\} for L in 0\.\.1/,
      );
      await rejectsUserError(
        () => HookRows.build(lm, { hook: "blocks.0.hook_resid_post", context: 65, batch: 1 }),
        /longer than the model's 64.*--context 64 or less/,
      );
    } finally {
      lm.destroy();
    }
  });
});
