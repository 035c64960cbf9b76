/**
 * Core and ground-truth metrics against hand-computed tiny cases: on the host accumulators and
 * through the GPU forward pass with a hand-built SAE whose f and x̂ are known.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig, type SyntheticConfig } from "../../src/config.ts";
import type { ActivationSource } from "../../src/data/source.ts";
import { type BatchTruth, SyntheticSource } from "../../src/data/synthetic.ts";
import {
  CoreAccumulator,
  densityHistogram,
  GroundTruthAccumulator,
  unavailable,
} from "../../src/eval/core.ts";
import { evaluateSae, openEvalSource, SaeForward } from "../../src/eval/evaluate.ts";
import type { Recovery } from "../../src/eval/groundtruth.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { Rng } from "../../src/rng.ts";
import { encodeRows, type LoadedSae } from "../../src/sae/load.ts";
import { assertClose } from "../helpers/check.ts";

const close = (got: number, want: number, tol = 1e-6, what = "") =>
  assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `${what}: ${got} ≠ ${want}`);

// The hand case: d_in 2, d_sae 4, ReLU encoder with no biases, b_dec = 0.
//   W_enc rows: e1, e2, (−1, −1), 0 (b_enc −1: never fires)
//   W_dec rows: e1, 0.5·e2, (1, 1), 0
const HAND_X = [1, -1, 2, 2, -1, 0, 0, 3];
//   f:  (1,0,0,0) (2,2,0,0) (0,0,1,0) (0,3,0,0)
const HAND_F = [1, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0, 0, 3, 0, 0];
//   x̂:  (1,0) (2,1) (1,1) (0,1.5)
const HAND_XHAT = [1, 0, 2, 1, 1, 1, 0, 1.5];

/** The metrics of the hand case, computed by hand (see the comments). */
const HAND = {
  // residuals (0,−1) (0,1) (−2,−1) (0,1.5): Σ‖r‖² = 1 + 1 + 5 + 2.25 = 9.25 over 8 elements
  mse: 9.25 / 8,
  // x̄ = (0.5, 1); Σ‖x − x̄‖² = 4.25 + 3.25 + 3.25 + 4.25 = 15
  explained_variance: 1 - 9.25 / 15,
  // cos: 1/√2, 6/√40, −1/√2, 1
  cosine_similarity: (6 / Math.sqrt(40) + 1) / 4,
  // ‖x̂‖/‖x‖: 1/√2, √5/√8, √2/1, 1.5/3
  l2_ratio: (1 / Math.SQRT2 + Math.sqrt(5 / 8) + Math.SQRT2 + 0.5) / 4,
  // Σ‖x̂‖² = 1 + 5 + 2 + 2.25; Σ x·x̂ = 1 + 6 − 1 + 4.5
  relative_reconstruction_bias: 10.25 / 10.5,
  l0: 5 / 4,
  l1: 9 / 4,
  // firing frequencies 0.5, 0.5, 0.25, 0: one dead latent, three above 0.1
  dead_fraction: 0.25,
  dense_fraction: 0.75,
};

function handSae(scale = 1): LoadedSae {
  const cfg = mergeConfig(DEFAULT_CONFIG, {
    d_in: 2,
    d_sae: 4,
    batch: 4,
    apply_b_dec_to_input: false,
    data: "hand",
  });
  return {
    cfg,
    scale,
    weights: {
      wEnc: new Float32Array([1, 0, 0, 1, -1, -1, 0, 0]),
      bEnc: new Float32Array([0, 0, 0, -1]),
      wDec: new Float32Array([1, 0, 0, 0.5, 1, 1, 0, 0]),
      bDec: new Float32Array(2),
    },
    threshold: null,
  };
}

/** A source cycling through fixed rows. */
function rowSource(rows: number[], dIn: number): ActivationSource {
  let next = 0;
  const n = rows.length / dIn;
  return {
    dIn,
    description: "hand rows",
    nextBatch(out: Float32Array) {
      for (let r = 0; r < out.length / dIn; r++, next = (next + 1) % n) {
        out.set(rows.slice(next * dIn, (next + 1) * dIn), r * dIn);
      }
      return Promise.resolve();
    },
    state: () => next,
    restore: (s: unknown) => void (next = s as number),
  };
}

function checkHand(core: Record<string, unknown>, mseFactor = 1) {
  for (const [k, v] of Object.entries(HAND)) {
    close(core[k] as number, k === "mse" ? v * mseFactor : v, 1e-6, k);
  }
}

Deno.test("core metrics: the hand case on the host accumulator", () => {
  const acc = new CoreAccumulator(2, 4);
  // Two calls of two rows each: accumulation across batches must not change anything.
  acc.addRecon(HAND_X.slice(0, 4), HAND_XHAT.slice(0, 4));
  acc.addRecon(HAND_X.slice(4), HAND_XHAT.slice(4));
  acc.addSparsity(HAND_F.slice(0, 8));
  acc.addSparsity(HAND_F.slice(8));
  const core = acc.result(unavailable("no model"));
  checkHand(core as unknown as Record<string, unknown>);
  assert.equal(core.recon_rows, 4);
  assert.equal(core.sparsity_rows, 4);
});

Deno.test("density histogram: log10 bins of 0.25 from floor(log10(1/rows)); never-fired apart", () => {
  // rows 4: bins [−1, −0.75) [−0.75, −0.5) [−0.5, −0.25) [−0.25, 0]
  const h = densityHistogram([2, 2, 1, 0], 4);
  assert.deepEqual(h.edges, [-1, -0.75, -0.5, -0.25, 0]);
  assert.deepEqual(h.counts, [0, 1, 2, 0]);
  assert.equal(h.never_fired, 1);
  // rows 1000: edges from −3; frequency 1 lands in the last bin, 1/1000 in the first.
  const g = densityHistogram([1000, 1, 0, 0, 10], 1000);
  assert.equal(g.edges[0], -3);
  assert.equal(g.edges.length, 13);
  assert.equal(g.counts[g.counts.length - 1], 1);
  assert.equal(g.counts[0], 1);
  assert.equal(g.counts[4], 1); // log10(0.01) = −2 starts bin 4
  assert.equal(g.never_fired, 2);
  assert.equal(g.counts.reduce((a, b) => a + b, 0) + g.never_fired, 5);
});

Deno.test("core metrics: the hand case through the GPU forward pass; KL/CE unavailable", async () => {
  const gpu = await getGpu();
  const sae = handSae();
  const fwd = await SaeForward.create(gpu, sae, 4);
  try {
    const { f, xhat } = await fwd.forward(new Float32Array(HAND_X));
    assertClose(f, HAND_F, 1e-6, "f");
    assertClose(xhat!, HAND_XHAT, 1e-6, "x̂");
  } finally {
    fwd.destroy();
  }
  const report = await evaluateSae(sae, rowSource(HAND_X, 2), {
    reconBatches: 1,
    sparsityBatches: 1,
  });
  checkHand(report.core as unknown as Record<string, unknown>);
  assert.equal(report.ground_truth, undefined);
  for (const v of [report.core.kl_div_score, report.core.ce_loss_score]) {
    assert.ok(typeof v === "object" && v.available === false, "KL/CE must not be numbers");
    assert.match(v.reason, /language model/);
  }
  assert.deepEqual(report.core.density_histogram.counts, [0, 1, 2, 0]);
  // Twice the rows: reconstruction metrics over batch 1 only, sparsity over both (same values).
  const twice = await evaluateSae(sae, rowSource(HAND_X, 2), {
    reconBatches: 1,
    sparsityBatches: 2,
  });
  checkHand(twice.core as unknown as Record<string, unknown>);
  assert.equal(twice.core.recon_rows, 4);
  assert.equal(twice.core.sparsity_rows, 8);
});

Deno.test("core metrics: reported in raw activation units when the run scaled its inputs", async () => {
  // scale 2 on rows x/2 gives the encoder the same inputs; x̂ comes back halved, MSE quartered.
  const report = await evaluateSae(handSae(2), rowSource(HAND_X.map((v) => v / 2), 2), {
    reconBatches: 1,
    sparsityBatches: 1,
  });
  checkHand(report.core as unknown as Record<string, unknown>, 0.25);
});

/** A random SAE (d_in 8, d_sae 12, batch 4) and a sampler of random rows. */
function randomSae(seed: number, scale: number, threshold: Float32Array | null = null) {
  const rng = new Rng(seed);
  const d = 8, m = 12;
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const sae: LoadedSae = {
    cfg: mergeConfig(DEFAULT_CONFIG, { d_in: d, d_sae: m, batch: 4 }),
    scale,
    weights: { wEnc: rand(m * d), bEnc: rand(m), wDec: rand(m * d), bDec: rand(d) },
    threshold,
  };
  return { sae, d, m, rows: (n: number) => rand(n * d) };
}

Deno.test("SaeForward.encode: any row count, batched and padded, equals encodeRows", async () => {
  const gpu = await getGpu();
  const { sae, m, rows } = randomSae(5, 1.5);
  const fwd = await SaeForward.create(gpu, sae, 4);
  try {
    for (const n of [0, 1, 4, 5, 11]) {
      const x = rows(n);
      const got = await fwd.encode(x);
      assert.equal(got.length, n * m);
      assertClose(got, encodeRows(sae, x), 1e-5, `encode ${n} rows`);
    }
  } finally {
    fwd.destroy();
  }
});

Deno.test("ground truth: precision/recall of the best-matching latent on a hand case", () => {
  // Feature 0 ↔ latent 1, feature 1 ↔ latent 0. Rows: truth {0}, {0,1}, {}, {1}.
  const truth: BatchTruth = {
    rowPtr: new Uint32Array([0, 1, 3, 3, 4]),
    features: new Uint32Array([0, 0, 1, 1]),
    magnitudes: new Float32Array([1, 1, 1, 1]),
    target: new Uint8Array(4),
    spurious: new Uint8Array(4),
  };
  // latent 1 fires on rows 0, 2 (TP 1 of 2 fires, 1 of 2 active); latent 0 on rows 1, 3 (2/2).
  const f = [0, 1, 1, 0, 0, 1, 1, 0];
  const acc = new GroundTruthAccumulator(new Uint32Array([1, 0]), 2);
  acc.add(f, truth);
  const rec: Recovery = {
    mmcs: 0.9,
    recovered: 0.5,
    threshold: 0.9,
    best: new Float32Array([0.95, 0.85]),
    bestLatent: new Uint32Array([1, 0]),
  };
  const g = acc.result(rec);
  assert.deepEqual(g.features.map((x) => [x.feature, x.latent, x.precision, x.recall]), [
    [0, 1, 0.5, 0.5],
    [1, 0, 1, 1],
  ]);
  close(g.features[0].cosine, 0.95, 1e-6);
  assert.equal(g.mean_precision, 0.75);
  assert.equal(g.mean_recall, 0.75);
  assert.equal(g.mmcs, 0.9);
  assert.equal(g.recovered_at_0_9, 0.5);
});

/** Solves A·X = B for square A [n, n] (f64 Gauss-Jordan with partial pivoting); B [n, k]. */
function solve(a: Float64Array, b: Float64Array, n: number, k: number): Float64Array {
  a = a.slice();
  b = b.slice();
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[p * n + c])) p = r;
    for (let j = 0; j < n; j++) [a[c * n + j], a[p * n + j]] = [a[p * n + j], a[c * n + j]];
    for (let j = 0; j < k; j++) [b[c * k + j], b[p * k + j]] = [b[p * k + j], b[c * k + j]];
    const piv = a[c * n + c];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const q = a[r * n + c] / piv;
      for (let j = 0; j < n; j++) a[r * n + j] -= q * a[c * n + j];
      for (let j = 0; j < k; j++) b[r * k + j] -= q * b[c * k + j];
    }
  }
  for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) b[r * k + j] /= a[r * n + r];
  return b;
}

Deno.test("ground truth: a planted SAE recovers every feature with precision and recall 1", async () => {
  const d = 16, nF = 8, m = 12;
  const synthetic: SyntheticConfig = {
    ...DEFAULT_CONFIG.synthetic,
    n_features: nF,
    mean_l0: 2,
    n_groups: 0,
    n_parents: 0,
    children_per_parent: 0,
    concept_probability: 0.2,
    magnitude_std: 0.1,
    noise_std: 0,
    seed: 3,
  };
  const cfg = mergeConfig(DEFAULT_CONFIG, { d_in: d, d_sae: m, batch: 64, synthetic });
  const { source, heldOut } = await openEvalSource(cfg);
  assert.ok(heldOut);
  assert.ok(source instanceof SyntheticSource);
  // Same ground truth as the training stream, different rows.
  const train = new SyntheticSource(synthetic, d);
  assert.deepEqual(source.truth.dictionary, train.truth.dictionary);
  const a = new Float32Array(4 * d), b = new Float32Array(4 * d);
  await train.nextBatch(a);
  await (await openEvalSource(cfg)).source.nextBatch(b);
  assert.notDeepEqual(a, b);

  // Encoder: the pseudo-inverse of the dictionary D [nF, d], W = (D Dᵀ)⁻¹ D, so W(x − offset)
  // gives each feature's magnitude exactly (no noise); latent perm[j] holds feature j.
  const D = Float64Array.from(source.truth.dictionary);
  const G = new Float64Array(nF * nF);
  for (let i = 0; i < nF; i++) {
    for (let j = 0; j < nF; j++) {
      for (let k = 0; k < d; k++) G[i * nF + j] += D[i * d + k] * D[j * d + k];
    }
  }
  const W = solve(G, D, nF, d);
  const perm = [5, 0, 9, 2, 11, 7, 3, 8];
  const wEnc = new Float32Array(m * d), wDec = new Float32Array(m * d);
  const bEnc = new Float32Array(m).fill(-1); // junk latents never fire
  const rng = new Rng(9);
  for (let i = 0; i < m; i++) for (let k = 0; k < d; k++) wDec[i * d + k] = rng.normal() / 4;
  perm.forEach((lat, j) => {
    wEnc.set(W.subarray(j * d, (j + 1) * d), lat * d);
    wDec.set(D.subarray(j * d, (j + 1) * d), lat * d);
    bEnc[lat] = -0.01;
  });
  const sae: LoadedSae = {
    cfg,
    scale: 1,
    weights: { wEnc, bEnc, wDec, bDec: Float32Array.from(source.truth.offset) },
    threshold: null,
  };
  const report = await evaluateSae(sae, source, { reconBatches: 2, sparsityBatches: 8 });
  const g = report.ground_truth!;
  assert.ok(g, "synthetic data must report ground truth");
  close(g.mmcs, 1, 1e-5, "mmcs");
  assert.equal(g.recovered_at_0_9, 1);
  assert.deepEqual(g.features.map((x) => x.latent), perm);
  for (const x of g.features) {
    assert.equal(x.precision, 1, `precision of feature ${x.feature}`);
    assert.equal(x.recall, 1, `recall of feature ${x.feature}`);
  }
  assert.equal(g.mean_precision, 1);
  assert.equal(g.mean_recall, 1);
  // Exact directions, magnitudes short by the 0.01 bias: x̂ ≈ x.
  assert.ok(report.core.explained_variance > 0.999, `EV ${report.core.explained_variance}`);
  close(report.core.l0, 2, 0.25, "L0 near mean_l0");
  assert.equal(report.core.dead_fraction, (m - nF) / m);
});

Deno.test("SaeForward with thresholds: JumpReLU as encodeRows (negative τ = ReLU)", async () => {
  const gpu = await getGpu();
  const tau = Float32Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? -0.5 : 0.4 * (i % 4)));
  const { sae, rows } = randomSae(6, 1, tau);
  const fwd = await SaeForward.create(gpu, sae, 4);
  try {
    const x = rows(7);
    const f = await fwd.encode(x);
    assertClose(f, encodeRows(sae, x), 1e-5, "JumpReLU");
    const relu = encodeRows({ ...sae, threshold: null }, x);
    assert.ok(f.some((v, i) => v === 0 && relu[i] > 0), "the thresholds masked nothing");
  } finally {
    fwd.destroy();
  }
});
