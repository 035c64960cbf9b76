import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig, type PartialConfig } from "../../src/config.ts";
import { PARAM_NAMES } from "../../src/sae/model.ts";
import { assertClose } from "../helpers/check.ts";
import { fiveSteps } from "../helpers/steps.ts";

for (
  const [name, over] of [
    ["topk", { variant: "topk" }],
    ["topk without AuxK", { variant: "topk", auxk: "off" }],
    ["batchtopk", { variant: "batchtopk" }],
    ["jumprelu", { variant: "jumprelu", jumprelu_init_threshold: 0.05 }],
    ["matryoshka", { variant: "matryoshka", matryoshka_fractions: "0.25,0.75" }],
  ] as const
) {
  Deno.test(`sparse latents: a ${name} run matches the dense one (always sparse vs never)`, async () => {
    const base = mergeConfig(DEFAULT_CONFIG, {
      sparse_min_flops: 0,
      d_in: 24,
      d_sae: 72,
      batch: 40,
      lr: 1e-3,
      k: 5,
      dead_steps: 1, // every latent counts as dead: AuxK sends gradient to latents where f = 0
      ...over as PartialConfig,
    });
    const dense = await fiveSteps({ ...base, sparse_max_density: 0 });
    const sparse = await fiveSteps({ ...base, sparse_max_density: 1 });
    for (const n of PARAM_NAMES) assertClose(sparse.w[n], dense.w[n], 1e-4, n);
    assert.equal(sparse.m.sparse_fraction, 1);
    assert.equal(dense.m.sparse_fraction, 0);
    const has = (l: string) => sparse.labels.includes(l);
    // The row top-k lists its kept entries: the CSR comes from them, not from a pass over f.
    assert.equal(has("topk lists to csr"), base.variant === "topk");
    assert.equal(has("sparse rows"), base.variant !== "topk");
    // AuxK's gradient reaches latents where f = 0: dW_enc stays dense.
    assert.equal(has("dW_enc sparse"), base.auxk === "off" || base.variant === "jumprelu");
    assert.ok(Math.abs(sparse.m.loss - dense.m.loss) <= 1e-4 * Math.max(1, dense.m.loss));
  });
}
