/**
 * Every encoder of a trained SAE is the trainer's: a tiny paper run with adaptive thresholds,
 * loaded back with loadSae, encodes rows with the host encoder (encodeRows, src/sae/encode.ts: the
 * library API) and with SaeForward (src/eval/evaluate.ts: `sae eval`, whose `encode` absorption
 * and SCR use) exactly as the trainer's own GPU forward pass does on the same rows, thresholds τ
 * included. (The SAELens export's thresholds: tests/export/saelens_test.ts.)
 */
import assert from "node:assert/strict";
import { SyntheticSource } from "../../src/data/synthetic.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { SaeForward } from "../../src/eval/evaluate.ts";
import { encodeRows, loadSae } from "../../src/sae/load.ts";
import { METRIC_WORDS } from "../../src/kernels/metrics.ts";
import type { Session } from "../../src/sae/session.ts";
import { train } from "../../src/sae/trainer.ts";
import { withTemp } from "../helpers/check.ts";
import { QUIET, tinyRun } from "../helpers/runs.ts";

Deno.test("encodeRows and SaeForward of a trained paper run equal the trainer's GPU codes, thresholds included", async () => {
  await withTemp(async (dir) => {
    const cfg = tinyRun({ variant: "paper", tau_base: 0.1, steps: 40 });
    let session: Session | null = null;
    await train(cfg, {
      ...QUIET,
      outDir: `${dir}/run`,
      onStep: (step, s) => {
        if (step === cfg.steps) session = s;
      },
    });
    const s = session as Session | null;
    assert.ok(s, "onStep saw the last step");

    // Rows of the run's own data, fresh ones.
    const x = new Float32Array(cfg.batch * cfg.d_in); // x: [batch, d_in] f32
    await new SyntheticSource({ ...cfg.synthetic, seed: 77 }, cfg.d_in).nextBatch(x);

    // The trainer's encoder: the step's forward pass on the session's buffers, with its τ.
    const acc = s.gpu.buffer("test acc", METRIC_WORDS * 4);
    s.gpu.write(s.bufs.x, x);
    run(s.gpu, await s.forward(acc));
    const gpuF = await s.gpu.read(s.bufs.f, cfg.batch * cfg.d_sae * 4); // f: [batch, d_sae]
    s.gpu.destroyBuffer(acc);

    const sae = await loadSae(`${dir}/run`);
    assert.ok(sae.threshold, "a paper run with adaptive_threshold loads its thresholds");
    const hostF = encodeRows(sae, x);
    const relu = encodeRows({ ...sae, threshold: null }, x);
    // The evaluation's encoder, in batches smaller than the run's.
    const fwd = await SaeForward.create(s.gpu, sae, 7);
    const evalF = await fwd.encode(x);
    fwd.destroy();
    let masked = 0;
    for (let i = 0; i < hostF.length; i++) {
      const j = i % cfg.d_sae;
      // Same code up to f32 rounding; a pre-activation within rounding of τ may fall either side.
      const nearEdge = Math.abs(relu[i] - sae.threshold[j]) < 1e-4;
      if (!nearEdge) {
        const tol = 1e-4 * Math.max(1, Math.abs(gpuF[i]));
        const at = `f[${Math.floor(i / cfg.d_sae)}, ${j}]`;
        assert.ok(Math.abs(gpuF[i] - hostF[i]) <= tol, `${at}: GPU ${gpuF[i]}, host ${hostF[i]}`);
        assert.ok(Math.abs(gpuF[i] - evalF[i]) <= tol, `${at}: GPU ${gpuF[i]}, eval ${evalF[i]}`);
      }
      if (relu[i] > 0 && hostF[i] === 0 && !nearEdge) masked++;
    }
    assert.ok(masked > 0, "τ masked no code: the test would pass with a plain ReLU encoder");
  });
});
