import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "../../src/config.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { initWeights, PARAM_NAMES, sparseEnabled } from "../../src/sae/model.ts";
import { Session } from "../../src/sae/session.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";
import { fiveSteps } from "../helpers/steps.ts";

// The paper variant with λ_ortho = ρ = 0 uses no importance, so its dF goes sparse like the
// baseline's.
const sparseCases = [
  { variant: "baseline", lambda_ortho: 0.1, importance_lr: 0.5 },
  { variant: "paper", lambda_ortho: 0.1, importance_lr: 0.5 },
  { variant: "paper", lambda_ortho: 0, importance_lr: 0 },
] as const;
for (const c of sparseCases) {
  const { variant } = c;
  const rawGrad = variant === "paper" && (c.lambda_ortho > 0 || c.importance_lr > 0);
  Deno.test(`sparse latents: a ${variant} run matches the dense one (always sparse vs never) ${JSON.stringify(c)}`, async () => {
    const base = mergeConfig(DEFAULT_CONFIG, {
      sparse_min_flops: 0, // these shapes are far below the default size limit
      d_in: 24,
      d_sae: 72,
      batch: 40,
      lr: 1e-3,
      l1: 1,
      recon_only_steps: 1,
      ...c,
    });
    const dense = await fiveSteps({ ...base, sparse_max_density: 0 });
    const sparse = await fiveSteps({ ...base, sparse_max_density: 1 });
    assert.ok(
      !dense.labels.some((l) => l.includes("sparse")),
      "density 0 must build no sparse path",
    );
    for (const k of ["decode sparse", "dW_dec sparse", "dW_enc sparse", "sparse plan"]) {
      assert.ok(sparse.labels.includes(k), `${k} missing from ${sparse.labels}`);
    }
    // The baseline also replaces dF; the paper variant needs its dense raw gradient where it
    // computes the importance.
    assert.equal(sparse.labels.includes("dF sparse"), !rawGrad);
    for (const n of PARAM_NAMES) assertClose(sparse.w[n], dense.w[n], 1e-4, n);
    // Which path ran (the plan counts sparse steps). The sparse decode and weight gradients sum
    // in the same order as the small dense GEMMs here (ascending latent / row, one FMA each), so
    // the paper variant's weights can come out bit-identical; the count is the evidence.
    assert.equal(dense.m.sparse_fraction, 0);
    assert.equal(sparse.m.sparse_fraction, 1);
    for (
      const k of ["loss", "l0", "explained_variance", "dense_fraction", "dead_fraction"] as const
    ) {
      assert.ok(Math.abs(sparse.m[k] - dense.m[k]) <= 1e-4 * Math.max(1, Math.abs(dense.m[k])), k);
    }
  });
}

Deno.test("sparse latents: a density limit between the steps' densities runs both paths", async () => {
  // A large L1 step size makes f sparser step by step; a limit between the first and the last
  // step's density makes the plan switch path mid-run, and the run must still track the dense one.
  const base = mergeConfig(DEFAULT_CONFIG, {
    sparse_min_flops: 0, // these shapes are far below the default size limit
    d_in: 24,
    d_sae: 72,
    batch: 40,
    lr: 3e-2,
    l1: 3,
    warmup_steps: 0,
  });
  const gpu = await getGpu();
  const rng = new Rng(8);
  const w = initWeights(base.d_in, base.d_sae, 3, randArray(rng, base.d_in, -0.2, 0.2));
  const session = await Session.create(gpu, { ...base, sparse_max_density: 0 }, w, 1);
  const densities: number[] = [];
  for (let i = 0; i < 5; i++) {
    await session.step(randArray(rng, base.batch * base.d_in, -1, 1));
    densities.push((await session.readMetrics()).metrics.l0 / base.d_sae);
  }
  const limit = (Math.max(...densities) + Math.min(...densities)) / 2;
  assert.ok(Math.max(...densities) - Math.min(...densities) > 0.02, `${densities}`);
  const dense = await fiveSteps({ ...base, sparse_max_density: 0 });
  const mixed = await fiveSteps({ ...base, sparse_max_density: limit });
  for (const n of PARAM_NAMES) assertClose(mixed.w[n], dense.w[n], 1e-4, n);
  assert.ok(
    mixed.m.sparse_fraction > 0 && mixed.m.sparse_fraction < 1,
    `sparse on ${mixed.m.sparse_fraction} of the steps (densities ${densities}, limit ${limit})`,
  );
});

Deno.test("sparse latents: built only for steps large enough to pay for the lists", async () => {
  const gpu = await getGpu();
  // The CPU default shape (2·256·64·512 = 2^24 FLOPs) stays dense; the bench shape does not.
  assert.equal(sparseEnabled(gpu, DEFAULT_CONFIG), false);
  const big = mergeConfig(DEFAULT_CONFIG, { batch: 1024, d_in: 512, d_sae: 4096 });
  assert.equal(sparseEnabled(gpu, big), true);
  assert.equal(sparseEnabled(gpu, { ...big, sparse_max_density: 0 }), false);
  assert.equal(sparseEnabled(gpu, { ...DEFAULT_CONFIG, sparse_min_flops: 0 }), true);
  assert.equal(sparseEnabled(gpu, { ...big, d_in: 510 }), false, "rows not in vec4s");
  // The sparse kernels bind f and the weights whole: either over the binding limit, dense.
  const limit = { maxBinding: 4096 * 512 * 4 } as typeof gpu;
  const narrow = { ...big, batch: 256 }; // f [256, 4096] 4 MiB, W_dec [4096, 512] 8 MiB
  assert.equal(sparseEnabled(limit, narrow), true, "W_dec exactly at the limit");
  assert.equal(sparseEnabled(limit, { ...narrow, d_in: 516 }), false, "weights over the limit");
  assert.equal(sparseEnabled(limit, { ...narrow, batch: 516 }), false, "f over the limit");
});
