import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { resampleReference } from "../../src/kernels/resample.ts";
import { initWeights, PARAM_NAMES, type SaeWeights } from "../../src/sae/model.ts";
import { referenceForward, referenceOptState, referenceStep } from "../../src/sae/reference.ts";
import { resamplePlan } from "../../src/sae/resample.ts";
import { Session } from "../../src/sae/session.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";
import { stepConfig } from "../helpers/steps.ts";

for (const rule of ["anthropic", "dictionary_learning"] as const) {
  Deno.test(`resampling (${rule}): GPU steps with a resample match the reference, and the resampled latents fire`, async () => {
    const cfg = stepConfig({
      l1: 0.05,
      steps: 100,
      resample_steps: 4,
      resample_rule: rule,
    });
    const gpu = await getGpu();
    const rng = new Rng(41);
    const w0 = initWeights(cfg.d_in, cfg.d_sae, 1, randArray(rng, cfg.d_in, -0.2, 0.2));
    w0.bEnc = randArray(rng, cfg.d_sae, -0.1, 0.1);
    for (let i = 0; i < cfg.d_sae; i += 4) w0.bEnc[i] = -20; // these never fire: dead
    const session = await Session.create(gpu, cfg, w0, 1);
    const ref: SaeWeights = {
      wEnc: w0.wEnc.slice(),
      bEnc: w0.bEnc.slice(),
      wDec: w0.wDec.slice(),
      bDec: w0.bDec.slice(),
    };
    const opt = referenceOptState(cfg.d_in, cfg.d_sae);
    const lastFired = new Uint32Array(cfg.d_sae);
    let resampled = 0;
    for (let step = 1; step <= 6; step++) {
      const x = randArray(rng, cfg.batch * cfg.d_in, -1, 1);
      await session.step(x);
      const got = await session.resample(step);
      // The reference: the step's forward pass (row errors, fires), its update, then the resample.
      const fw = referenceForward(cfg, ref, x, cfg.l1);
      const xc = Float32Array.from(fw.xc);
      const rowError = Array.from({ length: cfg.batch }, (_, b) => {
        let s = 0;
        for (let k = 0; k < cfg.d_in; k++) {
          s += (fw.xhat[b * cfg.d_in + k] - x[b * cfg.d_in + k]) ** 2;
        }
        return Math.sqrt(s);
      });
      for (let i = 0; i < fw.f.length; i++) if (fw.f[i] > 0) lastFired[i % cfg.d_sae] = step;
      referenceStep(cfg, ref, opt, x);
      if (step % cfg.resample_steps !== 0) {
        assert.equal(got, 0);
        continue;
      }
      const plan = resamplePlan({
        step,
        window: cfg.resample_steps,
        lastFired,
        rowError,
        power: rule === "anthropic" ? 2 : 1,
        seed: cfg.seed,
      });
      assert.equal(got, plan.pairs.length);
      assert.ok(got >= Math.ceil(cfg.d_sae / 4), `${got} resampled`);
      resampled = got;
      const hm = (n: "wEnc" | "bEnc" | "wDec") => ({ p: ref[n], m: opt.m[n], v: opt.v[n] });
      resampleReference(
        { m: cfg.d_sae, d: cfg.d_in, normalizeEnc: rule === "anthropic" },
        { wEnc: hm("wEnc"), bEnc: hm("bEnc"), wDec: hm("wDec") },
        xc,
        plan.pairs,
        plan.dead,
      );
    }
    assert.ok(resampled > 0);
    const snap = await session.snapshot();
    for (const n of PARAM_NAMES) {
      assertClose(snap.weights[n], ref[n], 2e-4, `param ${n}`);
      assertClose(snap.adamM[n], opt.m[n], 2e-4, `adam m ${n}`);
    }
    // The latents that never fired before fire now.
    for (let i = 0; i < cfg.d_sae; i += 4) {
      assert.ok(snap.lastFired[i] > 4, `latent ${i} still dead`);
    }
  });
}
