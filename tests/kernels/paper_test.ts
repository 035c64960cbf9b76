import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import type { GemmPath } from "../../src/kernels/gemm/mod.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  allocPaper,
  gradMaskKernel,
  initialPaperStats,
  initialThreshold,
  orthoGradDispatches,
  orthoGradReference,
  orthoPenaltyReference,
  type PaperSpec,
  paperStatsKernel,
  paperStatsReference,
} from "../../src/kernels/paper.ts";
import { METRIC_INDEX, METRIC_WORDS } from "../../src/kernels/metrics.ts";
import { packState } from "../../src/kernels/common.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

function spec(over: Partial<PaperSpec> = {}): PaperSpec {
  return {
    batch: 37,
    dSae: 301,
    emaDecay: 0.9,
    tauBase: 0.3,
    tauBeta: 40, // large so the variance term visibly moves the thresholds
    tauSign: "decrease",
    tauVariance: "rate",
    adaptive: true,
    reconOnlySteps: 2,
    lambdaOrtho: 0.1,
    orthoEps: 1e-6,
    orthoImportance: true,
    orthoReduction: "sum",
    squared: false,
    importanceLr: 0.5,
    lrForm: "max",
    ...over,
  };
}

function state(phase: number, l1 = 0, step = 1) {
  return packState({ step, lr: 0, b1t: 1, b2t: 1, l1_coef: l1, main_phase: phase });
}

Deno.test("grad_mask: importance norms of the raw gradient and the masked dL/dpre", async () => {
  const gpu = await getGpu();
  const rng = new Rng(31);
  const s = spec();
  const B = s.batch, m = s.dSae, l1 = 0.07;
  const raw = randArray(rng, B * m);
  const f = randArray(rng, B * m, -1, 1).map((v) => Math.max(v, 0));
  const pb = allocPaper(gpu, s);
  const dpre = gpu.upload("dpre", raw);
  gpu.write(pb.gnorm, new Float32Array(m).fill(NaN));
  run(gpu, [
    ...await gradMaskKernel(gpu, s, pb, {
      dpre,
      f: gpu.upload("f", f),
      state: gpu.upload("st", state(1, l1)),
    }),
  ]);
  const [gd, gn] = await gpu.readMany([{ buf: dpre }, { buf: pb.gnorm }]);
  const wantD = raw.map((v, i) => (f[i] > 0 ? v + l1 : 0));
  const wantN = new Float32Array(m);
  for (let i = 0; i < m; i++) {
    let ss = 0;
    for (let b = 0; b < B; b++) ss += raw[b * m + i] ** 2;
    wantN[i] = Math.sqrt(ss);
  }
  assertClose(gd, wantD, 1e-6, "dpre");
  assertClose(gn, wantN, 1e-5, "gnorm");
});

// Every reading of each choice appears in some case: the variance (rate, token), the orthogonality
// reduction (sum, mean, per_latent, recon with either loss), the lr factor (max, mean, inverse), and
// importance off (its loop skipped: s stays 0, factors 1).
const statsCases: Partial<PaperSpec>[] = [
  {},
  {
    tauSign: "increase",
    tauVariance: "token",
    orthoImportance: false,
    orthoReduction: "mean",
    importanceLr: 0.8,
    lrForm: "mean",
  },
  { orthoReduction: "per_latent", lrForm: "inverse", tauVariance: "token", tauBeta: 2 },
  { orthoReduction: "recon", squared: false },
  { orthoReduction: "recon", squared: true, importanceLr: 0.3, lrForm: "mean" },
  { orthoImportance: false, importanceLr: 0, adaptive: false },
];
for (const over of statsCases) {
  Deno.test(`paper stats follow the reference over several steps ${JSON.stringify(over)}`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(32);
    const s = spec(over);
    const m = s.dSae, B = s.batch;
    const pb = allocPaper(gpu, s);
    const fstats = gpu.buffer("fstats", m * 8);
    const rowstats = gpu.buffer("rowstats", B * 12);
    const ref = initialPaperStats(s);
    assert.deepEqual(await gpu.read(pb.tau), Float32Array.from(ref.tau), "initial thresholds");
    for (let step = 1; step <= 6; step++) {
      const phase = step > s.reconOnlySteps ? 1 : 0;
      const fires = new Float32Array(m).map(() => rng.int(B + 1));
      const gnorm = randArray(rng, m, 0, 2);
      const fs = new Float32Array(2 * m);
      fires.forEach((v, i) => (fs[2 * i] = v));
      const rs = randArray(rng, B * 3, 0.5, 3); // [B, 3]: ‖r‖, ‖r‖², ‖x − x̄‖² (any positives)
      let recon = 0;
      for (let b = 0; b < B; b++) recon += rs[3 * b + (s.squared ? 1 : 0)];
      gpu.write(fstats, fs);
      gpu.write(pb.gnorm, gnorm);
      gpu.write(rowstats, rs);
      run(gpu, [
        await paperStatsKernel(gpu, s, pb, {
          fstats,
          state: gpu.upload("st", state(phase, 0, step)),
          rowstats,
        }),
      ]);
      paperStatsReference(s, ref, fires, gnorm, step, recon / B);
      const [freq, fvar, tau, imp, weight, lrs, ps] = await gpu.readMany(
        [pb.freq, pb.fvar, pb.tau, pb.imp, pb.weight, pb.lrScale, pb.pscal].map((buf) => ({ buf })),
      );
      assertClose(freq, ref.freq, 1e-5, `freq @${step}`);
      assertClose(fvar, ref.fvar, 1e-4, `var @${step}`);
      assertClose(tau, ref.tau, 1e-5, `tau @${step}`);
      assertClose(imp, ref.imp, 1e-5, `importance @${step}`);
      assertClose(weight, ref.weight, 1e-5, `weight @${step}`);
      assertClose(lrs, ref.lrScale, 1e-5, `lr scale @${step}`);
      assertClose([ps[0], ps[1]], [ref.orthoScale, s.orthoEps], 1e-5, `scalars @${step}`);
      // The thresholds written at a step are the next step's: off until the phase change.
      if (step < s.reconOnlySteps && Math.max(...tau) !== 0) {
        throw new Error("thresholds in warmup");
      }
      if (s.adaptive && step >= s.reconOnlySteps && !tau.some((t) => t > 0)) {
        throw new Error(`no thresholds for step ${step + 1}, the main phase`);
      }
      if (phase === 1) assert.ok(ref.orthoScale > 0, "the orthogonality scale is live");
    }
    if (s.importanceLr === 0 && !s.orthoImportance) {
      assert.ok(
        ref.lrScale.every((v) => v === 1) && ref.imp.every((v) => v === 0),
        "no importance",
      );
    }
    if (!s.adaptive) return;
    // Thresholds moved with the variance, in the configured direction.
    const tau = await gpu.read(pb.tau);
    const moved = tau.filter((t) => (s.tauSign === "increase" ? t > s.tauBase : t < s.tauBase));
    if (moved.length < m / 2) throw new Error(`only ${moved.length} thresholds moved`);
  });
}

Deno.test("paper stats readings: the token variance is the indicator's, the mean lr factor averages 1", () => {
  const s = spec({ tauVariance: "token", lrForm: "mean", emaDecay: 0.99, reconOnlySteps: 0 });
  const rng = new Rng(35);
  const m = s.dSae, B = s.batch;
  const st = initialPaperStats(s);
  const p = new Float64Array(m).map(() => rng.uniform() * 0.5);
  const rate = initialPaperStats({ ...s, tauVariance: "rate" });
  for (let step = 1; step <= 3000; step++) {
    // Each latent fires on a Binomial(B, p_i) number of rows.
    const fires = p.map((pi) => {
      let k = 0;
      for (let b = 0; b < B; b++) if (rng.uniform() < pi) k++;
      return k;
    });
    const gnorm = p.map(() => rng.uniform());
    paperStatsReference(s, st, fires, gnorm, step, 1);
    paperStatsReference({ ...s, tauVariance: "rate" }, rate, fires, gnorm, step, 1);
  }
  // Token: ≈ p(1 − p), the Bernoulli variance of 1[f_i > 0]; rate: ≈ p(1 − p)/B.
  for (let i = 0; i < m; i++) {
    const bern = p[i] * (1 - p[i]);
    assert.ok(
      Math.abs(st.fvar[i] - bern) < 0.2 * bern + 2e-3,
      `token var ${st.fvar[i]} vs ${bern}`,
    );
    assert.ok(rate.fvar[i] < 3 * bern / B + 1e-4, `rate var ${rate.fvar[i]} vs ${bern / B}`);
  }
  const mean = st.lrScale.reduce((a, v) => a + v, 0) / m;
  assert.ok(Math.abs(mean - 1) < 1e-9, `mean lr factor ${mean}`);
  assert.ok(Math.max(...st.lrScale) > 1, "the mean form raises the important latents' rate");
});

Deno.test("initial thresholds: τ_base when step 1 is in the main phase, else 0", () => {
  assert.equal(initialThreshold(spec({ reconOnlySteps: 0 })), 0.3);
  assert.equal(initialThreshold(spec({ reconOnlySteps: 5 })), 0);
  assert.equal(initialThreshold(spec({ reconOnlySteps: 0, adaptive: false })), 0);
});

Deno.test("ortho gradient: reference matches finite differences of the penalty with α held fixed", () => {
  const rng = new Rng(33);
  const m = 6, d = 4, lambda = 0.3, eps = 1e-6;
  const w = randArray(rng, m * d);
  const weight = randArray(rng, m, 0.1, 1);
  const norm = 0.8;
  const g = orthoGradReference(w, weight, 4 * lambda / norm, eps, m, d);
  const w0 = w.slice();
  for (let i = 0; i < m * d; i++) {
    const h = 1e-3;
    const up = w.slice(), down = w.slice();
    up[i] += h;
    down[i] -= h;
    const fd = (orthoPenaltyReference(up, w0, weight, norm, lambda, eps, m, d) -
      orthoPenaltyReference(down, w0, weight, norm, lambda, eps, m, d)) / (up[i] - down[i]);
    if (Math.abs(fd - g[i]) > 1e-3 * Math.max(1, Math.abs(fd))) {
      throw new Error(`[${i}]: analytic ${g[i]}, finite difference ${fd}`);
    }
  }
});

const orthoCases: [number, number, GemmPath | undefined][] = [
  [150, 36, undefined],
  [70, 13, undefined],
  [256, 20, undefined],
  // The packed paths (CPU adapters), with W_dec packed once for all blocks: 4 blocks, the last of
  // 8 rows.
  [200, 36, "texture"],
  [200, 36, "bcast"],
];
for (const [m, d, path] of orthoCases) {
  Deno.test(`ortho gradient on the GPU (chunks of 64 rows, m=${m}, d=${d}${path ? `, ${path} path` : ""}) matches the materialised reference`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(34);
    const w = randArray(rng, m * d);
    const weight = randArray(rng, m, 0, 1);
    const g0 = randArray(rng, m * d);
    const scale = 0.37, eps = 1e-3;
    const acc0 = randArray(rng, METRIC_WORDS, 1, 5);
    const b = {
      wDec: gpu.upload("w", w),
      gDec: gpu.upload("g", g0),
      weight: gpu.upload("weight", weight),
      pscal: gpu.upload("pscal", new Float32Array([scale, eps])),
      acc: gpu.upload("acc", acc0),
    };
    const ds = await orthoGradDispatches(gpu, m, d, b, 64, path ? { path } : {});
    // Blocks I ≤ J: one Gram GEMM each, one product with W on the diagonal and two off it.
    const c = Math.ceil(m / 64);
    // (On the packed paths: "... pack A/B" dispatches per GEMM, "ortho pack W ..." once.)
    const products = ds.filter((x) => /^ortho (gram|grad) \d+$/.test(x.label)).length;
    if (products !== c * (c + 1) / 2 + c * c) throw new Error(`${products} products`);
    if (path) {
      // W_dec's blocks come packed: only the coefficient blocks are packed per GEMM (as A of the
      // products with W), never a W operand.
      const perGemm = ds.filter((x) => / pack [AB]$/.test(x.label)).map((x) => x.label);
      assert.deepEqual(perGemm.filter((l) => !/^ortho grad \d+ pack A$/.test(l)), [], "W repacked");
      assert.equal(perGemm.length, c * c, "one coefficient pack per product with W");
      assert.ok(ds.some((x) => x.label.startsWith("ortho pack W")), "W packed once");
    }
    // Stale values in the gradient's scratch must not leak in: run twice, from the same start.
    run(gpu, ds);
    gpu.write(b.gDec, g0);
    gpu.write(b.acc, acc0);
    run(gpu, ds);
    const [got, acc] = await gpu.readMany([{ buf: b.gDec }, { buf: b.acc }]);
    const want = orthoGradReference(w, weight, scale, eps, m, d).map((v, i) => v + g0[i]);
    assertClose(got, want, 1e-5, "dW_dec + ortho");
    // The penalty: S0 = 4λR/norm, so λR/norm = S0/4 with norm 1.
    const p = orthoPenaltyReference(w, w, weight, 1, scale / 4, eps, m, d);
    assertClose([acc[METRIC_INDEX.ortho] - acc0[METRIC_INDEX.ortho]], [p], 1e-5, "ortho value");
    assertClose([acc[METRIC_INDEX.loss] - acc0[METRIC_INDEX.loss]], [p], 1e-5, "ortho in loss");
    for (let k = 0; k < METRIC_WORDS; k++) {
      if (k !== METRIC_INDEX.ortho && k !== METRIC_INDEX.loss) {
        assert.equal(acc[k], acc0[k], `acc[${k}]`);
      }
    }
  });
}

Deno.test("ortho gradient with α held constant is 2(|c| + ε)/(|c| + 2ε) times autograd's through α", () => {
  // Autograd through α differentiates c²/(|c| + ε) as a whole: per pair c(|c| + 2ε)/(|c| + ε)²
  // against 2c/(|c| + ε) with α fixed. Checked on the whole penalty by finite differences with α
  // recomputed from the perturbed weights, for an ε small (ratio 2) and one comparable to |c|.
  const rng = new Rng(36);
  const m = 5, d = 3;
  const w = randArray(rng, m * d);
  const weight = randArray(rng, m, 0.2, 1);
  for (const eps of [1e-6, 0.3]) {
    const fixed = orthoGradReference(w, weight, 4, eps, m, d); // λ = 1, norm 1
    const through = (v: Float32Array) => orthoPenaltyReference(v, v, weight, 1, 1, eps, m, d);
    // The per-pair ratio, reassembled: the gradient through α is Σ_j 2·s_i s_j·c(|c|+2ε)/(|c|+ε)²·w_j.
    const want = new Float64Array(m * d);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        if (i === j) continue;
        let cij = 0;
        for (let k = 0; k < d; k++) cij += w[i * d + k] * w[j * d + k];
        const a = Math.abs(cij);
        const coef = 2 * weight[i] * weight[j] * cij * (a + 2 * eps) / (a + eps) ** 2;
        for (let k = 0; k < d; k++) want[i * d + k] += coef * w[j * d + k];
      }
    }
    let ratioMin = Infinity, ratioMax = 0;
    for (let i = 0; i < m * d; i++) {
      const h = 1e-3;
      const up = w.slice(), down = w.slice();
      up[i] += h;
      down[i] -= h;
      const fd = (through(up) - through(down)) / (up[i] - down[i]);
      assert.ok(
        Math.abs(fd - want[i]) < 2e-3 * Math.max(1, Math.abs(fd)),
        `[${i}] ${fd} ${want[i]}`,
      );
      if (Math.abs(fd) > 0.05) {
        ratioMin = Math.min(ratioMin, fixed[i] / fd);
        ratioMax = Math.max(ratioMax, fixed[i] / fd);
      }
    }
    if (eps < 1e-3) {
      assert.ok(ratioMin > 1.99 && ratioMax < 2.01, `ratio ${ratioMin}..${ratioMax}, not 2`);
    } else assert.ok(ratioMin < 1.9, "a large ε makes the ratio fall below 2");
  }
});
