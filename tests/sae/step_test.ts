import assert from "node:assert/strict";
import { DEFAULT_CONFIG, type TrainConfig } from "../../src/config.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { initWeights, PARAM_NAMES, type SaeWeights } from "../../src/sae/model.ts";
import {
  referenceForward,
  referenceGradients,
  referenceOptState,
  referencePaperStep,
  referenceStep,
} from "../../src/sae/reference.ts";
import { Session } from "../../src/sae/session.ts";
import { initialPaperStats } from "../../src/kernels/paper.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

function tinyConfig(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...DEFAULT_CONFIG,
    d_in: 13,
    d_sae: 37,
    batch: 29,
    lr: 1e-2,
    warmup_steps: 2,
    l1: 0.05,
    ...over,
  };
}

function randomWeights(cfg: TrainConfig, rng: Rng): SaeWeights {
  const w = initWeights(cfg.d_in, cfg.d_sae, 1, randArray(rng, cfg.d_in, -0.2, 0.2));
  // Perturb W_enc away from W_decᵀ and give b_enc both signs so every code path is exercised.
  w.wEnc = w.wEnc.map((v) => v + 0.1 * (rng.uniform() - 0.5));
  w.bEnc = randArray(rng, cfg.d_sae, -0.1, 0.1);
  return w;
}

for (const recon_loss of ["l2", "squared"] as const) {
  for (const apply_b_dec_to_input of [true, false]) {
    Deno.test(`reference gradients match finite differences (${recon_loss}, b_dec in input: ${apply_b_dec_to_input})`, () => {
      const cfg = tinyConfig({ d_in: 5, d_sae: 7, batch: 4, recon_loss, apply_b_dec_to_input });
      const rng = new Rng(21);
      const w = randomWeights(cfg, rng);
      const x = randArray(rng, cfg.batch * cfg.d_in, -1, 1);
      const g = referenceGradients(cfg, w, x, cfg.l1);
      for (const name of PARAM_NAMES) {
        const p = w[name];
        for (let i = 0; i < p.length; i++) {
          const orig = p[i];
          p[i] = orig + 1e-3;
          const up = referenceForward(cfg, w, x, cfg.l1).loss;
          const hUp = p[i] - orig;
          p[i] = orig - 1e-3;
          const down = referenceForward(cfg, w, x, cfg.l1).loss;
          const hDown = orig - p[i];
          p[i] = orig;
          const fd = (up - down) / (hUp + hDown);
          if (Math.abs(fd - g[name][i]) > 2e-3 * Math.max(1, Math.abs(fd))) {
            throw new Error(`${name}[${i}]: analytic ${g[name][i]}, finite difference ${fd}`);
          }
        }
      }
    });
  }
}

Deno.test("GPU step: loss and every parameter and moment after 3 steps match the reference step", async () => {
  const gpu = await getGpu();
  for (const over of [{}, { recon_loss: "squared" as const, apply_b_dec_to_input: false }]) {
    const cfg = tinyConfig(over);
    const rng = new Rng(17);
    const w0 = randomWeights(cfg, rng);
    const session = await Session.create(gpu, cfg, w0, 1);
    const ref = {
      wEnc: w0.wEnc.slice(),
      bEnc: w0.bEnc.slice(),
      wDec: w0.wDec.slice(),
      bDec: w0.bDec.slice(),
    };
    const opt = referenceOptState(cfg.d_in, cfg.d_sae);
    let refLoss = 0;
    for (let s = 0; s < 3; s++) {
      const x = randArray(rng, cfg.batch * cfg.d_in, -1, 1);
      await session.step(x);
      refLoss += referenceStep(cfg, ref, opt, x);
    }
    const { metrics, state } = await session.readMetrics();
    if (state.step !== 3) throw new Error(`step counter ${state.step}`);
    assertClose([metrics.loss], [refLoss / 3], 1e-5, "mean loss");
    const got = await session.readWeights();
    const st = await session.snapshot();
    for (const n of PARAM_NAMES) {
      assertClose(got[n], ref[n], 1e-4, `param ${n}`);
      assertClose(st.adamM[n], opt.m[n], 1e-4, `adam m ${n}`);
      assertClose(st.adamV[n], opt.v[n], 1e-4, `adam v ${n}`);
    }
  }
});

for (const variant of ["baseline", "paper"] as const) {
  Deno.test(`${variant} step creates no pipelines or bind groups and reads nothing back`, async () => {
    const gpu = await getGpu();
    const cfg = tinyConfig({ variant, recon_only_steps: 2 });
    const session = await Session.create(gpu, cfg, randomWeights(cfg, new Rng(1)), 1);
    const before = { ...gpu.counters };
    const x = randArray(new Rng(2), cfg.batch * cfg.d_in);
    for (let i = 0; i < 5; i++) await session.step(x);
    await session.sync();
    assert.equal(gpu.counters.pipelines, before.pipelines);
    assert.equal(gpu.counters.bindGroups, before.bindGroups);
    assert.equal(gpu.counters.readbacks, before.readbacks);
    assert.equal(gpu.counters.submits, before.submits + 5);
    // The logged scalars cost exactly one readback.
    await session.readMetrics();
    assert.equal(gpu.counters.readbacks, before.readbacks + 1);
  });
}

function copyWeights(w: SaeWeights): SaeWeights {
  return { wEnc: w.wEnc.slice(), bEnc: w.bEnc.slice(), wDec: w.wDec.slice(), bDec: w.bDec.slice() };
}

Deno.test("paper step: 4 steps across the phase change match the reference step", async () => {
  const gpu = await getGpu();
  for (
    const over of [{}, {
      tau_variance_sign: "increase" as const,
      ortho_importance: false,
      ortho_reduction: "sum" as const,
    }]
  ) {
    const cfg = tinyConfig({
      variant: "paper",
      recon_only_steps: 1,
      ema_decay: 0.5, // fast statistics so thresholds and importance move within 4 steps
      tau_base: 0.05,
      tau_beta: 10,
      lambda_ortho: 0.5 * 37 * 36, // the mean over pairs divides by m(m − 1)
      importance_lr: 0.7,
      ...over,
    });
    const rng = new Rng(19);
    const w0 = randomWeights(cfg, rng);
    const session = await Session.create(gpu, cfg, w0, 1);
    const ref = copyWeights(w0);
    const opt = referenceOptState(cfg.d_in, cfg.d_sae);
    const ps = { stats: initialPaperStats(cfg.d_sae) };
    let refLoss = 0;
    for (let s = 0; s < 4; s++) {
      const x = randArray(rng, cfg.batch * cfg.d_in, -1, 1);
      await session.step(x);
      refLoss += referencePaperStep(cfg, ref, opt, ps, x);
    }
    const { state, metrics } = await session.readMetrics();
    assert.equal(state.main_phase, 1);
    assertClose([metrics.loss], [refLoss / 4], 1e-5, "mean loss");
    const got = await session.readWeights();
    const st = await session.snapshot();
    for (const n of PARAM_NAMES) {
      assertClose(got[n], ref[n], 2e-4, `param ${n}`);
      assertClose(st.adamM[n], opt.m[n], 2e-4, `adam m ${n}`);
    }
    assertClose(st.extra.ema_freq, ps.stats.freq, 1e-5, "EMA frequency");
    assertClose(st.extra.tau, ps.stats.tau, 1e-5, "thresholds");
    assertClose(st.extra.lr_scale, ps.stats.lrScale, 1e-4, "lr factors");
    // The mechanisms were live: some thresholds are non-zero and some lr factors below 1.
    assert.ok(ps.stats.tau.some((t) => t > 0));
    assert.ok(ps.stats.lrScale.some((v) => v < 0.99));
  }
});

Deno.test("paper variant with every mechanism off reproduces the baseline step bit for bit", async () => {
  const gpu = await getGpu();
  const base = tinyConfig();
  const off = tinyConfig({
    variant: "paper",
    adaptive_threshold: false,
    lambda_ortho: 0,
    importance_lr: 0,
  });
  const rng = new Rng(23);
  const w0 = randomWeights(base, rng);
  const xs = [0, 1, 2].map(() => randArray(rng, base.batch * base.d_in, -1, 1));
  const results = [];
  for (const cfg of [base, off]) {
    const s = await Session.create(gpu, cfg, copyWeights(w0), 1);
    for (const x of xs) await s.step(x);
    results.push(await s.readWeights());
  }
  for (const n of PARAM_NAMES) assert.deepEqual(results[1][n], results[0][n], n);
});
