import assert from "node:assert/strict";
import type { TrainConfig } from "../../src/config.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { PARAM_NAMES, type SaeWeights } from "../../src/sae/model.ts";
import {
  referenceForward,
  referenceGradients,
  referenceOptState,
  referencePaperStep,
  referenceStep,
} from "../../src/sae/reference.ts";
import { Session } from "../../src/sae/session.ts";
import { initialPaperStats } from "../../src/kernels/paper.ts";
import { paperSpec } from "../../src/sae/paper.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";
import { stepConfig, stepWeights } from "../helpers/steps.ts";

const tinyConfig = (over: Partial<TrainConfig> = {}) => stepConfig({ l1: 0.05, ...over });
const randomWeights = (cfg: TrainConfig, rng: Rng) => stepWeights(cfg, rng);

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
  // The paper's loss (l2) and the squared one, with and without b_dec subtracted from the input.
  const cases = [
    { recon_loss: "l2" as const },
    { recon_loss: "squared" as const, apply_b_dec_to_input: false },
  ];
  for (const over of cases) {
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

// The paper's loss (l2) and the squared one, each reading of the choices that have several, with and
// without a recon-only phase (the thresholds of the first main-phase step come from the step
// before; with none, step 1 starts at τ_base).
const paperCases: Partial<TrainConfig>[] = [
  { recon_loss: "l2" },
  { recon_loss: "squared" },
  {
    recon_loss: "l2",
    tau_variance_sign: "increase",
    tau_variance: "token",
    ortho_importance: false,
    ortho_reduction: "sum",
    lambda_ortho: 0.5,
    importance_lr_form: "mean",
  },
  {
    recon_loss: "l2",
    ortho_reduction: "recon",
    lambda_ortho: 0.5 * 37,
    importance_lr_form: "inverse",
    recon_only_steps: 0,
  },
  {
    recon_loss: "squared",
    ortho_reduction: "per_latent",
    lambda_ortho: 0.5 * 37,
    tau_variance: "token",
    tau_beta: 1,
  },
  // Importance unused: no raw-gradient pass, dF masks in its epilogue.
  { recon_loss: "l2", lambda_ortho: 0, importance_lr: 0 },
];
for (const over of paperCases) {
  Deno.test(`paper step: 4 steps across the phase change match the reference step ${JSON.stringify(over)}`, async () => {
    const gpu = await getGpu();
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
    const ps = { stats: initialPaperStats(paperSpec(cfg)) };
    let refLoss = 0, refOrtho = 0;
    const labels = session.dispatchLabels();
    assert.equal(
      labels.some((l) => l.startsWith("importance grad")),
      cfg.importance_lr > 0 || (cfg.lambda_ortho > 0 && cfg.ortho_importance),
      "the raw-gradient pass runs exactly when the importance is used",
    );
    for (let s = 0; s < 4; s++) {
      const x = randArray(rng, cfg.batch * cfg.d_in, -1, 1);
      await session.step(x);
      const r = referencePaperStep(cfg, ref, opt, ps, x);
      refLoss += r.loss;
      refOrtho += r.ortho;
    }
    const { state, metrics } = await session.readMetrics();
    assert.equal(state.main_phase, 1);
    assertClose([metrics.loss], [refLoss / 4], 1e-5, "mean loss");
    assertClose([metrics.ortho], [refOrtho / 4], 1e-4, "mean orthogonality term");
    if (cfg.lambda_ortho > 0) {
      assert.ok(refOrtho > 1e-3 * refLoss, "the orthogonality term is live");
    }
    const got = await session.readWeights();
    const st = await session.snapshot();
    for (const n of PARAM_NAMES) {
      assertClose(got[n], ref[n], 2e-4, `param ${n}`);
      assertClose(st.adamM[n], opt.m[n], 2e-4, `adam m ${n}`);
    }
    assertClose(st.extra.ema_freq, ps.stats.freq, 1e-5, "EMA frequency");
    assertClose(st.extra.ema_var, ps.stats.fvar, 1e-4, "EMA variance");
    assertClose(st.extra.tau, ps.stats.tau, 1e-5, "thresholds");
    assertClose(st.extra.lr_scale, ps.stats.lrScale, 1e-4, "lr factors");
    // The mechanisms were live: some thresholds are non-zero and some lr factors moved from 1.
    assert.ok(ps.stats.tau.some((t) => t > 0));
    if (cfg.importance_lr > 0) assert.ok(ps.stats.lrScale.some((v) => Math.abs(v - 1) > 0.01));
  });
}

Deno.test("paper step: the first main-phase step runs with thresholds", async () => {
  // Thresholds are written one step ahead with the next step's phase: after recon_only_steps = 2,
  // step 3 already masks (a lagging τ would give step 3 a plain ReLU, i.e. more active latents).
  const gpu = await getGpu();
  const cfg = tinyConfig({
    variant: "paper",
    recon_only_steps: 2,
    tau_base: 0.2,
    lambda_ortho: 0,
    importance_lr: 0,
    l1: 0,
    lr: 1e-9,
  });
  const rng = new Rng(29);
  const session = await Session.create(gpu, cfg, randomWeights(cfg, rng), 1);
  const x = randArray(rng, cfg.batch * cfg.d_in, -1, 1);
  const l0 = [];
  for (let s = 0; s < 3; s++) {
    await session.step(x);
    l0.push((await session.readMetrics()).metrics.l0);
  }
  assert.equal(l0[0], l0[1], "the recon-only steps encode alike");
  assert.ok(l0[2] < l0[1] - 0.5, `step 3 masked nothing: L0 ${l0}`);
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
