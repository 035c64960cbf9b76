import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "../../src/config.ts";
import { PARAM_NAMES } from "../../src/sae/model.ts";
import { assertClose } from "../helpers/check.ts";
import { fiveSteps } from "../helpers/steps.ts";

for (const variant of ["baseline", "paper"] as const) {
  Deno.test(`gemm_f16: a ${variant} step with f16 GEMM operands stays within f16 error of f32`, async () => {
    const base = mergeConfig(DEFAULT_CONFIG, {
      variant,
      d_in: 24,
      d_sae: 72,
      batch: 40,
      lr: 1e-3,
      recon_only_steps: 2,
      lambda_ortho: 0.1,
    });
    const f32 = await fiveSteps(base);
    const f16 = await fiveSteps({ ...base, gemm_f16: true });
    let differs = false;
    for (const n of PARAM_NAMES) {
      assertClose(f16.w[n], f32.w[n], 2e-2, n);
      differs ||= f16.w[n].some((v, i) => v !== f32.w[n][i]);
    }
    assert.ok(differs, "f16 storage changed nothing: the option is not wired");
    assert.ok(Math.abs(f16.m.loss - f32.m.loss) <= 1e-2 * Math.abs(f32.m.loss));
  });
}
