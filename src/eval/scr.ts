/**
 * Spurious correlation removal (SCR, paper Fig. 1b) on the synthetic target/spurious concept pair,
 * after SAEBench's SCR eval (Karvonen et al.). docs/metrics.md (Absorption and SCR) has the full
 * definition and the mapping; in short:
 *
 * 1. **Splits.** The rows are shuffled with the seed and cut into a train pool and a test pool. From
 *    the train pool: the *biased* set, rows where the labels agree ((1,1) and (0,0), equal counts);
 *    the *balanced* set, equal counts of all four (target, spurious) cells. From the test pool: a
 *    balanced test set, equal counts of all four cells.
 * 2. **Probes** (L2-regularised logistic regression on the d_in-dim activations, {@link
 *    trainLogisticProbe}): the *biased* probe on the biased set (label = target = spurious), the
 *    *skyline* probe on the balanced set with the target label, and the *spurious* probe on the
 *    balanced set with the spurious label.
 * 3. **Latent selection** (SAEBench's node effects for SCR): e_i = |Δ_i · (w_spur · d_i)/scale|,
 *    Δ_i the mean activation of latent i over balanced-set rows with spurious = 1 minus over rows
 *    with spurious = 0, w_spur the spurious probe's weights, d_i latent i's decoder row. The top-k
 *    latents by e_i (non-zero effects only) are ablated.
 * 4. **Ablation** on the test rows, keeping the SAE's error term as SAEBench does:
 *    x' = x − Σ_{i∈S} (f_i − c_i)·d_i/scale, where c_i = 0 for *zero* ablation (SAEBench, the
 *    default) and c_i = latent i's mean over the biased set for *mean* ablation (an option; see
 *    {@link ScrOptions.ablation} for when it matters).
 * 5. **Score** per k: (A_abl − A_base) / (A_skyline − A_base), A_base the biased probe's target
 *    accuracy on the balanced test set, A_abl the same after ablation, A_skyline the skyline probe's
 *    target accuracy there. 0 when A_skyline = A_base (nothing to recover).
 *
 * Everything is a pure, deterministic function of the arrays and the seed.
 *
 * @example
 * ```ts
 * import { scr } from "./scr.ts";
 * declare const x: Float32Array, f: Float32Array, wDec: Float32Array;
 * declare const target: Uint8Array, spurious: Uint8Array;
 * const res = scr({ x, latents: f, wDec, target, spurious, dIn: 64 });
 * console.log(res.metrics.k, res.metrics.score);
 * ```
 * @module
 */
import { Rng } from "../rng.ts";
import { type EvalContext, type ExtraEvaluator, labelledRows } from "./evaluate.ts";
import type { ScrMetrics } from "./schema.ts";

/** The paper's thresholds (Fig. 1b): how many latents are ablated. */
const SCR_KS: readonly number[] = [2, 5, 10, 20, 50, 100, 500];

/** Settings of {@link scr}; every field has a default (see {@link SCR_DEFAULTS}). */
export interface ScrOptions {
  /** Numbers of latents to ablate; each is clipped to d_sae and repeats dropped. */
  ks?: readonly number[];
  /** Seed of the train/test shuffle. */
  seed?: number;
  /** Share of the rows that go to the test pool. */
  testFraction?: number;
  /** L2 penalty of the probes, on standardised inputs, per mean log-loss. */
  l2?: number;
  /**
   * "zero" (default, SAEBench): ablated latents are set to 0. "mean": set to their mean over the
   * biased training set. SAEBench's concepts are two-sided (male/female, professor/nurse: latents
   * fire for both values), so zeroing a concept's latents moves both classes to one neutral point.
   * The synthetic spurious concept is one-sided (a feature present or absent), so zeroing its
   * latents moves every row to the "absent" side of the biased probe's threshold, which was fitted
   * between the classes: part of the gain is lost and the zero-ablation score understates what the
   * SAE isolates. Mean ablation moves every row to the neutral point instead, as SAEBench's zeroing
   * does for its two-sided concepts.
   */
  ablation?: "mean" | "zero";
  /**
   * Probe on the activations with the SAE error kept (SAEBench; default) or, when false, on the
   * SAE reconstructions (W_dec f + b_dec)/scale (needs {@link ScrInput.bDec}). On reconstructions
   * the baseline depends on the SAE: one that drops the spurious signal gives A_base ≈ A_skyline,
   * and the normalised score divides by that small gap (check base/skyline accuracies).
   */
  keepError?: boolean;
}

/** Default settings of {@link scr}. */
const SCR_DEFAULTS: Required<ScrOptions> = {
  ks: SCR_KS,
  seed: 0,
  testFraction: 0.5,
  l2: 1e-3,
  ablation: "zero",
  keepError: true,
};

/** What {@link scr} reads: labelled rows and the SAE's latents and decoder for them. */
export interface ScrInput {
  /** x: [rows, d_in] f32, row-major, the raw activations. */
  x: Float32Array;
  /** latents: [rows, d_sae] f32, row-major, the SAE's activations f of each row. */
  latents: Float32Array;
  /** wDec: [d_sae, d_in] f32, row-major, the SAE's decoder rows. */
  wDec: Float32Array;
  /** bDec: [d_in] f32, the decoder bias; only read when keepError is false. */
  bDec?: Float32Array;
  /** target: [rows] u8, the target concept label (0/1). */
  target: Uint8Array;
  /** spurious: [rows] u8, the spurious concept label (0/1). */
  spurious: Uint8Array;
  /** Activation width. */
  dIn: number;
  /** The SAE's input scale (LoadedSae.scale): latents reconstruct scale·x. Default 1. */
  scale?: number;
}

/** Result of {@link scr}: the eval.json block plus the accuracies behind it. */
export interface ScrResult {
  /** The schema's block (eval.json `scr`): k (clipped to d_sae) and the normalised score. */
  metrics: ScrMetrics;
  /** Biased probe's target accuracy on the balanced test set, before ablation. */
  base_accuracy: number;
  /** Skyline probe's (trained on the target) accuracy on the balanced test set. */
  skyline_accuracy: number;
  /** Biased probe's target accuracy after ablating the top-k latents, per k. */
  ablated_accuracy: number[];
  /** Latents by decreasing spurious effect (the first k are ablated at k; at most 500 listed). */
  ranked_latents: number[];
  /** Rows in the biased train set, the balanced train set and the balanced test set. */
  rows: { biased: number; balanced: number; test: number };
  /** The settings used. */
  options: Required<ScrOptions>;
}

/** A logistic-regression probe in the raw input space: P(y = 1 | x) = σ(w·x + b). */
export interface LogisticProbe {
  /** w: [d] f64. */
  w: Float64Array;
  b: number;
}

/**
 * Fits an L2-regularised logistic regression by Newton's method (full batch, backtracking line
 * search, Cholesky solve): deterministic, no learning rate to tune. Inputs are standardised per
 * dimension (mean/std over the training rows) before fitting, so `l2` is scale-free; the returned
 * probe is mapped back to the raw space. The bias is not penalised.
 *
 * Minimises (1/n) Σ log(1 + exp(−s_r·(w·z_r + b))) + (l2/2)·‖w‖² with s_r = ±1 and z the
 * standardised rows.
 *
 * @param x rows: [*, d] f32, row-major
 * @param d row width
 * @param idx the training rows (indices into x)
 * @param y label (0/1) of each training row, aligned with idx
 * @param l2 penalty (> 0 keeps separable data bounded)
 * @param maxIter Newton steps at most
 */
export function trainLogisticProbe(
  x: Float32Array,
  d: number,
  idx: ArrayLike<number>,
  y: ArrayLike<number>,
  l2 = 1e-3,
  maxIter = 50,
): LogisticProbe {
  const n = idx.length;
  if (n === 0) throw new Error("trainLogisticProbe: no training rows");
  const mu = new Float64Array(d);
  const sd = new Float64Array(d);
  for (let t = 0; t < n; t++) {
    const o = idx[t] * d;
    for (let k = 0; k < d; k++) mu[k] += x[o + k];
  }
  for (let k = 0; k < d; k++) mu[k] /= n;
  for (let t = 0; t < n; t++) {
    const o = idx[t] * d;
    for (let k = 0; k < d; k++) sd[k] += (x[o + k] - mu[k]) ** 2;
  }
  for (let k = 0; k < d; k++) sd[k] = Math.sqrt(sd[k] / n) > 1e-8 ? Math.sqrt(sd[k] / n) : 1;
  // z: [n, d + 1] f64, standardised rows with a trailing 1 for the bias.
  const p = d + 1;
  const z = new Float64Array(n * p);
  for (let t = 0; t < n; t++) {
    const o = idx[t] * d;
    for (let k = 0; k < d; k++) z[t * p + k] = (x[o + k] - mu[k]) / sd[k];
    z[t * p + d] = 1;
  }
  const theta = new Float64Array(p);
  const margin = new Float64Array(n);
  const loss = (th: Float64Array): number => {
    let s = 0;
    for (let t = 0; t < n; t++) {
      let v = 0;
      for (let k = 0; k < p; k++) v += z[t * p + k] * th[k];
      margin[t] = v;
      const m = y[t] ? v : -v;
      s += m > 0 ? Math.log1p(Math.exp(-m)) : -m + Math.log1p(Math.exp(m));
    }
    let r = 0;
    for (let k = 0; k < d; k++) r += th[k] * th[k];
    return s / n + 0.5 * l2 * r;
  };
  let cur = loss(theta);
  const g = new Float64Array(p);
  const h = new Float64Array(p * p);
  const step = new Float64Array(p);
  const trial = new Float64Array(p);
  for (let it = 0; it < maxIter; it++) {
    g.fill(0);
    h.fill(0);
    for (let t = 0; t < n; t++) {
      const q = 1 / (1 + Math.exp(-margin[t]));
      const r = q - (y[t] ? 1 : 0);
      const wgt = Math.max(q * (1 - q), 1e-12);
      const zt = t * p;
      for (let a = 0; a < p; a++) {
        const za = z[zt + a];
        g[a] += r * za;
        const wa = wgt * za;
        for (let b = 0; b <= a; b++) h[a * p + b] += wa * z[zt + b];
      }
    }
    for (let a = 0; a < p; a++) {
      g[a] /= n;
      for (let b = 0; b <= a; b++) h[a * p + b] /= n;
      if (a < d) {
        g[a] += l2 * theta[a];
        h[a * p + a] += l2;
      } else h[a * p + a] += 1e-10;
    }
    choleskySolve(h, g, step, p);
    let gmax = 0;
    for (let a = 0; a < p; a++) gmax = Math.max(gmax, Math.abs(g[a]));
    if (gmax < 1e-10) break;
    let t = 1, next = cur;
    for (let ls = 0; ls < 40; ls++, t *= 0.5) {
      for (let a = 0; a < p; a++) trial[a] = theta[a] - t * step[a];
      next = loss(trial);
      if (next <= cur) break;
    }
    if (!(next <= cur)) {
      loss(theta); // restore margins
      break;
    }
    theta.set(trial);
    const gain = cur - next;
    cur = next;
    if (gain < 1e-12 * Math.max(1, cur)) break;
  }
  const w = new Float64Array(d);
  let b = theta[d];
  for (let k = 0; k < d; k++) {
    w[k] = theta[k] / sd[k];
    b -= w[k] * mu[k];
  }
  return { w, b };
}

/** Solves H s = g for symmetric positive definite H (lower triangle given) into `out`. */
function choleskySolve(h: Float64Array, g: Float64Array, out: Float64Array, p: number): void {
  const l = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = h[i * p + j];
      for (let k = 0; k < j; k++) s -= l[i * p + k] * l[j * p + k];
      if (i === j) l[i * p + i] = Math.sqrt(Math.max(s, 1e-300));
      else l[i * p + j] = s / l[j * p + j];
    }
  }
  for (let i = 0; i < p; i++) {
    let s = g[i];
    for (let k = 0; k < i; k++) s -= l[i * p + k] * out[k];
    out[i] = s / l[i * p + i];
  }
  for (let i = p - 1; i >= 0; i--) {
    let s = out[i];
    for (let k = i + 1; k < p; k++) s -= l[k * p + i] * out[k];
    out[i] = s / l[i * p + i];
  }
}

/** w·x_r + b for row r of x [*, d]. */
function logit(probe: LogisticProbe, x: Float32Array, r: number, d: number): number {
  let v = probe.b;
  for (let k = 0; k < d; k++) v += probe.w[k] * x[r * d + k];
  return v;
}

/**
 * Runs SCR (see the module docs): probes on biased/balanced splits of the rows, the top-k
 * spurious latents ablated for each k, SAEBench's normalised score per k.
 *
 * @param input rows, labels, latents and decoder
 * @param options settings; defaults in {@link SCR_DEFAULTS}
 * @returns the schema block plus the accuracies behind it
 * @throws Error when the shapes disagree or a (target, spurious) cell has too few rows
 */
export function scr(input: ScrInput, options: ScrOptions = {}): ScrResult {
  const opt = { ...SCR_DEFAULTS, ...options };
  const { latents, wDec, target, spurious, dIn: d } = input;
  const scale = input.scale ?? 1;
  const n = target.length;
  const m = wDec.length / d;
  if (
    input.x.length !== n * d || spurious.length !== n || !Number.isInteger(m) ||
    latents.length !== n * m
  ) {
    throw new Error(
      `scr: shapes disagree: x ${input.x.length}, latents ${latents.length}, W_dec ${wDec.length}, ${n} target / ${spurious.length} spurious labels, d_in=${d}`,
    );
  }
  // The probes' input space: raw rows (error kept) or reconstructions.
  let x = input.x;
  if (!opt.keepError) {
    const bDec = input.bDec;
    if (!bDec || bDec.length !== d) throw new Error("scr: keepError=false needs bDec [d_in]");
    x = new Float32Array(n * d);
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < d; k++) {
        let v = bDec[k];
        for (let i = 0; i < m; i++) {
          const fi = latents[r * m + i];
          if (fi !== 0) v += fi * wDec[i * d + k];
        }
        x[r * d + k] = v / scale;
      }
    }
  }

  // Shuffle, split, and bucket each pool by cell (2·target + spurious).
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(opt.seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const nTest = Math.round(n * opt.testFraction);
  const cells = (rows: number[]) => {
    const c: number[][] = [[], [], [], []];
    for (const r of rows) c[2 * target[r] + spurious[r]].push(r);
    return c;
  };
  const train = cells(order.slice(nTest));
  const test = cells(order.slice(0, nTest));
  const nb = Math.min(train[3].length, train[0].length);
  const nq = Math.min(...train.map((c) => c.length));
  const nt = Math.min(...test.map((c) => c.length));
  if (nb < 2 || nq < 2 || nt < 2) {
    throw new Error(
      `scr: too few rows per (target, spurious) cell (train ${train.map((c) => c.length)}, test ${
        test.map((c) => c.length)
      } for cells 00,01,10,11); draw more rows`,
    );
  }
  const biased = [...train[0].slice(0, nb), ...train[3].slice(0, nb)];
  const balanced = train.flatMap((c) => c.slice(0, nq));
  const testRows = test.flatMap((c) => c.slice(0, nt));
  const labels = (rows: number[], lab: Uint8Array) => Uint8Array.from(rows, (r) => lab[r]);

  const biasedProbe = trainLogisticProbe(x, d, biased, labels(biased, target), opt.l2);
  const skyline = trainLogisticProbe(x, d, balanced, labels(balanced, target), opt.l2);
  const spurProbe = trainLogisticProbe(x, d, balanced, labels(balanced, spurious), opt.l2);

  const accuracy = (probe: LogisticProbe) => {
    let ok = 0;
    for (const r of testRows) if ((logit(probe, x, r, d) > 0 ? 1 : 0) === target[r]) ok++;
    return ok / testRows.length;
  };
  const base = accuracy(biasedProbe);
  const sky = accuracy(skyline);

  // Node effects: |Δ mean activation (spurious 1 − 0, balanced set) · (w_spur · d_i)/scale|.
  const effect = new Float64Array(m);
  const meanBiased = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s1 = 0, s0 = 0, c1 = 0, c0 = 0;
    for (const r of balanced) {
      if (spurious[r]) {
        s1 += latents[r * m + i];
        c1++;
      } else {
        s0 += latents[r * m + i];
        c0++;
      }
    }
    let wd = 0;
    for (let k = 0; k < d; k++) wd += spurProbe.w[k] * wDec[i * d + k];
    effect[i] = Math.abs((s1 / c1 - s0 / c0) * wd / scale);
    let sb = 0;
    for (const r of biased) sb += latents[r * m + i];
    meanBiased[i] = opt.ablation === "mean" ? sb / biased.length : 0;
  }
  const ranked = Array.from({ length: m }, (_, i) => i)
    .filter((i) => effect[i] > 0)
    .sort((a, b) => effect[b] - effect[a] || a - b);

  // Ablating latent i moves the biased probe's logit by −(f_i − c_i)·(w_b · d_i)/scale; the sets
  // are nested in k, so logits are updated incrementally.
  const cb = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let v = 0;
    for (let k = 0; k < d; k++) v += biasedProbe.w[k] * wDec[i * d + k];
    cb[i] = v / scale;
  }
  const logits = Float64Array.from(testRows, (r) => logit(biasedProbe, x, r, d));
  const ks = [...new Set(opt.ks.map((k) => Math.max(0, Math.min(Math.floor(k), m))))];
  const kSorted = [...ks].sort((a, b) => a - b);
  const accAt = new Map<number, number>();
  let done = 0;
  for (const k of kSorted) {
    const upto = Math.min(k, ranked.length);
    for (; done < upto; done++) {
      const i = ranked[done];
      for (let t = 0; t < testRows.length; t++) {
        logits[t] -= (latents[testRows[t] * m + i] - meanBiased[i]) * cb[i];
      }
    }
    let ok = 0;
    for (let t = 0; t < testRows.length; t++) {
      if ((logits[t] > 0 ? 1 : 0) === target[testRows[t]]) ok++;
    }
    accAt.set(k, ok / testRows.length);
  }
  const ablated = ks.map((k) => accAt.get(k)!);
  const denom = sky - base;
  const score = ablated.map((a) => (Math.abs(denom) > 1e-12 ? (a - base) / denom : 0));
  return {
    metrics: { k: ks, score },
    base_accuracy: base,
    skyline_accuracy: sky,
    ablated_accuracy: ablated,
    ranked_latents: ranked.slice(0, 500),
    rows: { biased: biased.length, balanced: balanced.length, test: testRows.length },
    options: opt,
  };
}

/** Rows {@link createScrEvaluator} draws by default (about 340 per off-diagonal test cell). */
const SCR_ROWS = 8192;

/**
 * An {@link ExtraEvaluator} for `evaluateRun`: draws `rows` fresh rows with their labels from the
 * synthetic evaluation source, encodes them with the run's encoder (ctx.encode, JumpReLU included)
 * and returns `{ scr }`. On non-synthetic data it returns `{}` (no concept labels).
 *
 * @param options settings, plus `rows` (default {@link SCR_ROWS})
 */
export function createScrEvaluator(options: ScrOptions & { rows?: number } = {}): ExtraEvaluator {
  return async (ctx: EvalContext) => {
    const { rows = SCR_ROWS, ...opt } = options;
    const got = await labelledRows(ctx, rows);
    if (got === null) return {};
    const res = scr({
      x: got.x,
      latents: got.latents,
      wDec: ctx.sae.weights.wDec,
      bDec: ctx.sae.weights.bDec,
      target: got.truth.target,
      spurious: got.truth.spurious,
      dIn: got.src.dIn,
      scale: ctx.sae.scale,
    }, opt);
    return { scr: res.metrics };
  };
}

/** {@link createScrEvaluator} with the default settings and rows. */
export const scrEvaluator: ExtraEvaluator = createScrEvaluator();
