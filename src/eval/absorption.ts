/**
 * Feature absorption on the synthetic "first letter" hierarchy (paper Fig. 2), after SAEBench's
 * absorption eval (Chanin et al., "A is for Absorption"), mapped onto the generator's known ground
 * truth. docs/metrics.md (Absorption and SCR) has the full definition and the mapping; in short, for each
 * parent ("letter") p with direction g_p:
 *
 * 1. **Probe.** SAEBench trains a logistic probe for the letter; here the probe is the truth itself:
 *    the rows where p is active, and its direction g_p. The "probe projection" of a row is p's true
 *    magnitude a (the amount of g_p the generator put in the row).
 * 2. **Parent latents** (SAEBench's "main"/split latents from k-sparse probing). A latent *fires* on a
 *    row when its activation exceeds `eps`. Each latent i gets F1_i, the F1 of "i fires" against "p
 *    is active". Latents that track one of p's children better than p itself (max over children of
 *    the child F1 > F1_i) are token-level latents, not letter latents, and are left out. The rest
 *    are ranked by F1_i; the top one is taken, and the next ones one at a time while the F1 of "any
 *    chosen latent fires" rises by more than `f1JumpThreshold` (SAEBench's feature-split rule, up to
 *    `maxParentLatents`).
 * 3. **Per row** where p is active, with proj_i = f_i·(d_i·g_p)/scale (latent i's share of the
 *    reconstruction along g_p, d_i its decoder row) and cos_i = cos(d_i, g_p):
 *    - *full absorption* (SAEBench's `is_full_absorption`): every parent latent is silent, the latent
 *      with the largest proj_i has cos_i ≥ `cosThreshold`, and its proj_i ≥ `projectionThreshold`·a;
 *    - *absorption fraction* (SAEBench's `absorption_fraction`): with M = Σ_{parent latents} proj_i
 *      and T the sum of the largest `maxAbsorbingLatents` positive proj_i among the other latents
 *      with cos_i ≥ `cosThreshold`: 0 when M ≥ a or T < `projectionThreshold`·a; 1 when M ≤ 0;
 *      else min(T, a − M) / (min(T, a − M) + M);
 *    - *child-carried*: a full-absorption row whose absorbing latent also has cosine ≥
 *      `cosThreshold` with the direction of the child active on that row.
 * 4. Per letter, `absorption` is the full-absorption rate (absorbed rows / rows with p active); the
 *    mean and (sample) standard deviation are over letters that occur in the rows.
 *
 * Everything is a pure function of arrays: no GPU, no randomness.
 *
 * @example
 * ```ts
 * import { DEFAULT_SYNTHETIC } from "../config.ts";
 * import { SyntheticSource } from "../data/synthetic.ts";
 * import { absorption } from "./absorption.ts";
 * const src = new SyntheticSource(DEFAULT_SYNTHETIC, 64);
 * const x = new Float32Array(4096 * 64); // x: [4096, 64] f32
 * const truth = await src.nextBatchWithTruth(x);
 * // An "oracle SAE": one latent per true feature, activation = true magnitude.
 * const nF = src.truth.dictionary.length / 64;
 * const f = new Float32Array(4096 * nF); // f: [4096, nF] f32
 * for (let r = 0; r < 4096; r++) {
 *   for (let e = truth.rowPtr[r]; e < truth.rowPtr[r + 1]; e++) {
 *     f[r * nF + truth.features[e]] = truth.magnitudes[e];
 *   }
 * }
 * const res = absorption({
 *   latents: f, truth, wDec: src.truth.dictionary, dictionary: src.truth.dictionary,
 *   parents: src.truth.parents, dIn: 64,
 * });
 * console.log(res.metrics.mean); // 0: the oracle absorbs nothing
 * ```
 * @module
 */
import type { BatchTruth, ParentTruth } from "../data/synthetic.ts";
import { type EvalContext, type ExtraEvaluator, labelledRows } from "./evaluate.ts";
import type { AbsorptionMetrics } from "./schema.ts";

/** Thresholds of {@link absorption}; every field has a default (see {@link ABSORPTION_DEFAULTS}). */
export interface AbsorptionOptions {
  /**
   * Minimum cosine between an absorbing latent's decoder row and the parent direction. SAEBench
   * uses 0.025 (full) / 0.1 (fraction) at d_model ≈ 2304, where random directions have |cos| ≈ 0.02;
   * at d_in = 64 random directions have |cos| ≈ 0.125, so 0.3 (about 2.4σ) plays the same role. A
   * fully absorbing child latent, normalize(g_child + g_parent), has cos ≈ 0.71.
   */
  cosThreshold?: number;
  /** Share of the parent's magnitude the absorbing latent(s) must carry (SAEBench: 0.4). */
  projectionThreshold?: number;
  /** F1 gain needed to add one more parent latent (SAEBench's f1_jump_threshold: 0.03). */
  f1JumpThreshold?: number;
  /** At most this many parent latents per letter (SAEBench's max_k_value: 10). */
  maxParentLatents?: number;
  /** At most this many latents share the absorption in the fraction score (SAEBench: 3). */
  maxAbsorbingLatents?: number;
  /** A latent fires when its activation is above this (SAEBench's EPS: 1e-8). */
  eps?: number;
}

/** Default thresholds of {@link absorption}. */
const ABSORPTION_DEFAULTS: Required<AbsorptionOptions> = {
  cosThreshold: 0.3,
  projectionThreshold: 0.4,
  f1JumpThreshold: 0.03,
  maxParentLatents: 10,
  maxAbsorbingLatents: 3,
  eps: 1e-8,
};

/** What {@link absorption} reads: latents of rows whose ground truth is known. */
export interface AbsorptionInput {
  /** latents: [rows, d_sae] f32, row-major, the SAE's activations f of each row. */
  latents: Float32Array;
  /** The rows' ground truth (CSR of active features and magnitudes), e.g. from nextBatchWithTruth. */
  truth: Pick<BatchTruth, "rowPtr" | "features" | "magnitudes">;
  /** wDec: [d_sae, d_in] f32, row-major, the SAE's decoder rows. */
  wDec: Float32Array;
  /** dictionary: [n_features, d_in] f32, row-major, the true feature directions. */
  dictionary: Float32Array;
  /** The hierarchy: each parent ("letter") with its children. */
  parents: readonly ParentTruth[];
  /** Activation width. */
  dIn: number;
  /**
   * The SAE's input scale (LoadedSae.scale): latents reconstruct scale·x, so a latent's share of
   * the raw row is f_i·d_i/scale. Default 1.
   */
  scale?: number;
}

/** Everything {@link absorption} measured for one letter. */
export interface LetterAbsorption {
  letter: string;
  /** Rows where the parent is active (the denominator of the rates). */
  rows: number;
  /** The parent latents, best F1 first. */
  parent_latents: number[];
  /** F1 of "any parent latent fires" against "parent active". */
  parent_f1: number;
  /** Full-absorption rate: the schema's `absorption`. */
  absorption: number;
  /** Mean SAEBench absorption fraction over the parent's rows. */
  absorption_fraction: number;
  /** Rate of full-absorption rows carried by a latent aligned with the row's active child. */
  child_carried: number;
  /** Rate of rows where every parent latent is silent (absorbed or just missed). */
  parent_silent: number;
  /** The latents that absorbed the parent, with how many rows each, most rows first. */
  absorbing_latents: { latent: number; rows: number }[];
}

/** Result of {@link absorption}: the eval.json block plus per-letter detail. */
export interface AbsorptionResult {
  /** The schema's block (eval.json `absorption`). */
  metrics: AbsorptionMetrics;
  /** Per-letter detail, in parent order. */
  letters: LetterAbsorption[];
  /** Mean absorption fraction over letters that occur (SAEBench's mean_absorption_fraction_score). */
  mean_absorption_fraction: number;
  /** Mean child-carried rate over letters that occur. */
  mean_child_carried: number;
  /** The thresholds used. */
  options: Required<AbsorptionOptions>;
}

/**
 * Measures feature absorption per letter of the synthetic hierarchy (see the module docs for the
 * definition and its mapping onto SAEBench's metric).
 *
 * @param input latents, ground truth, decoder and dictionary of the same rows
 * @param options thresholds; defaults in {@link ABSORPTION_DEFAULTS}
 * @returns the schema block plus per-letter detail
 * @throws Error when the array shapes disagree
 */
export function absorption(
  input: AbsorptionInput,
  options: AbsorptionOptions = {},
): AbsorptionResult {
  const opt = { ...ABSORPTION_DEFAULTS, ...options };
  const { latents, truth, wDec, dictionary, parents, dIn } = input;
  const scale = input.scale ?? 1;
  const n = truth.rowPtr.length - 1;
  const m = n > 0 ? latents.length / n : wDec.length / dIn;
  if (!Number.isInteger(m) || latents.length !== n * m || wDec.length !== m * dIn) {
    throw new Error(
      `absorption: shapes disagree: latents ${latents.length} values for ${n} rows, W_dec ${wDec.length} values for d_in=${dIn}`,
    );
  }
  const nF = dictionary.length / dIn;
  if (!Number.isInteger(nF)) {
    throw new Error(
      `absorption: dictionary length ${dictionary.length} is not a multiple of ${dIn}`,
    );
  }

  // fires: [d_sae] u32, rows where each latent fires.
  const fires = new Uint32Array(m);
  for (let r = 0; r < n; r++) {
    const o = r * m;
    for (let i = 0; i < m; i++) if (latents[o + i] > opt.eps) fires[i]++;
  }

  // Role of each true feature: parentOf[f] = parent index (or -1); childOf[f] = its parent's index.
  const parentOf = new Int32Array(nF).fill(-1);
  const childOf = new Int32Array(nF).fill(-1);
  parents.forEach((p, j) => {
    parentOf[p.feature] = j;
    for (const c of p.children) childOf[c] = j;
  });
  // Per parent: the rows where it is active, its magnitude there and the active child (-1: none).
  const pRows: number[][] = parents.map(() => []);
  const pMag: number[][] = parents.map(() => []);
  const pChild: number[][] = parents.map(() => []);
  for (let r = 0; r < n; r++) {
    const e0 = truth.rowPtr[r], e1 = truth.rowPtr[r + 1];
    for (let e = e0; e < e1; e++) {
      const j = parentOf[truth.features[e]];
      if (j < 0) continue;
      pRows[j].push(r);
      pMag[j].push(truth.magnitudes[e]);
      let child = -1;
      for (let e2 = e0; e2 < e1; e2++) {
        if (childOf[truth.features[e2]] === j) child = truth.features[e2];
      }
      pChild[j].push(child);
    }
  }

  // Decoder row norms, for cosines.
  const decNorm = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = 0;
    for (let k = 0; k < dIn; k++) s += wDec[i * dIn + k] ** 2;
    decNorm[i] = Math.sqrt(s);
  }

  const letters: LetterAbsorption[] = parents.map((p, j) =>
    letterAbsorption(p, pRows[j], pMag[j], pChild[j], {
      latents,
      m,
      n,
      fires,
      wDec,
      decNorm,
      dictionary,
      dIn,
      scale,
      opt,
    })
  );

  const present = letters.filter((l) => l.rows > 0);
  const rates = present.map((l) => l.absorption);
  const mean = avg(rates);
  const std = rates.length > 1
    ? Math.sqrt(rates.reduce((s, v) => s + (v - mean) ** 2, 0) / (rates.length - 1))
    : 0;
  return {
    metrics: {
      per_letter: letters.map((l) => ({
        letter: l.letter,
        absorption: l.absorption,
        parent_latents: l.parent_latents,
        rows: l.rows,
      })),
      mean,
      std,
    },
    letters,
    mean_absorption_fraction: avg(present.map((l) => l.absorption_fraction)),
    mean_child_carried: avg(present.map((l) => l.child_carried)),
    options: opt,
  };
}

interface Shared {
  latents: Float32Array;
  m: number;
  n: number;
  fires: Uint32Array;
  wDec: Float32Array;
  decNorm: Float64Array;
  dictionary: Float32Array;
  dIn: number;
  scale: number;
  opt: Required<AbsorptionOptions>;
}

/** One letter: parent latents by F1 (children's latents excluded), then the per-row tests. */
function letterAbsorption(
  p: ParentTruth,
  rows: number[],
  mags: number[],
  childs: number[],
  s: Shared,
): LetterAbsorption {
  const { latents, m, n, fires, opt } = s;
  const P = rows.length;
  const empty: LetterAbsorption = {
    letter: p.letter,
    rows: 0,
    parent_latents: [],
    parent_f1: 0,
    absorption: 0,
    absorption_fraction: 0,
    child_carried: 0,
    parent_silent: 0,
    absorbing_latents: [],
  };
  if (P === 0) return empty;

  // tp: [d_sae] parent rows where each latent fires; tpChild: [children, d_sae] likewise per child.
  const nc = p.children.length;
  const tp = new Uint32Array(m);
  const tpChild = new Uint32Array(nc * m);
  const childCount = new Uint32Array(nc);
  for (let t = 0; t < P; t++) {
    const o = rows[t] * m;
    const c = p.children.indexOf(childs[t]);
    if (c >= 0) childCount[c]++;
    for (let i = 0; i < m; i++) {
      if (latents[o + i] > opt.eps) {
        tp[i]++;
        if (c >= 0) tpChild[c * m + i]++;
      }
    }
  }
  // Candidates: latents that fire on the parent and track it better than any single child.
  const f1 = new Float64Array(m);
  const cand: number[] = [];
  for (let i = 0; i < m; i++) {
    if (tp[i] === 0) continue;
    f1[i] = (2 * tp[i]) / (P + fires[i]);
    let childBest = 0;
    for (let c = 0; c < nc; c++) {
      childBest = Math.max(childBest, (2 * tpChild[c * m + i]) / (childCount[c] + fires[i]));
    }
    if (!(childBest > f1[i])) cand.push(i);
  }
  cand.sort((a, b) => f1[b] - f1[a] || a - b);

  // SAEBench's split rule on "any chosen latent fires": add while F1 rises by > f1JumpThreshold.
  const isParentRow = new Uint8Array(n);
  for (const r of rows) isParentRow[r] = 1;
  const anyFires = new Uint8Array(n);
  let anyTp = 0, anyAll = 0;
  let best = -Infinity;
  const chosen: number[] = [];
  for (const i of cand.slice(0, opt.maxParentLatents)) {
    let tpNew = anyTp, allNew = anyAll;
    for (let r = 0; r < n; r++) {
      if (!anyFires[r] && latents[r * m + i] > opt.eps) {
        allNew++;
        if (isParentRow[r]) tpNew++;
      }
    }
    const f1k = (2 * tpNew) / (P + allNew);
    if (!(f1k > best + opt.f1JumpThreshold)) break;
    best = f1k;
    chosen.push(i);
    for (let r = 0; r < n; r++) if (latents[r * m + i] > opt.eps) anyFires[r] = 1;
    anyTp = tpNew;
    anyAll = allNew;
  }
  const isChosen = new Uint8Array(m);
  for (const i of chosen) isChosen[i] = 1;

  // dot[i] = d_i · g_p / scale (a latent's share along g_p per unit activation); cos[i] = cos(d_i, g_p).
  const { wDec, decNorm, dictionary, dIn, scale } = s;
  const g = unit(dictionary, p.feature, dIn);
  const dot = new Float64Array(m);
  const cos = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let v = 0;
    for (let k = 0; k < dIn; k++) v += wDec[i * dIn + k] * g[k];
    dot[i] = v / scale;
    cos[i] = decNorm[i] > 0 ? v / decNorm[i] : 0;
  }
  const childDir = new Map<number, Float64Array>();
  for (const c of p.children) childDir.set(c, unit(dictionary, c, dIn));

  let full = 0, silent = 0, carried = 0, fracSum = 0;
  const absorbers = new Map<number, number>();
  const proj = new Float64Array(m);
  const pool: number[] = [];
  for (let t = 0; t < P; t++) {
    const o = rows[t] * m;
    const a = mags[t];
    let main = 0, mainSilent = true, top = -1, topProj = -Infinity;
    pool.length = 0;
    for (let i = 0; i < m; i++) {
      const fi = latents[o + i];
      proj[i] = fi * dot[i];
      if (isChosen[i]) {
        main += proj[i];
        if (fi > opt.eps) mainSilent = false;
      } else if (cos[i] >= opt.cosThreshold && proj[i] > 0) pool.push(i);
      if (proj[i] > topProj) {
        topProj = proj[i];
        top = i;
      }
    }
    if (mainSilent) silent++;
    // Full absorption: main latents silent, top projecting latent aligned and carrying ≥ 40%.
    if (
      mainSilent && a > 0 && cos[top] >= opt.cosThreshold && topProj >= opt.projectionThreshold * a
    ) {
      full++;
      absorbers.set(top, (absorbers.get(top) ?? 0) + 1);
      const cd = childDir.get(childs[t]);
      if (cd) {
        let v = 0;
        for (let k = 0; k < dIn; k++) v += wDec[top * dIn + k] * cd[k];
        if (decNorm[top] > 0 && v / decNorm[top] >= opt.cosThreshold) carried++;
      }
    }
    // Absorption fraction: the share of the parent taken by up to maxAbsorbingLatents others.
    pool.sort((x, y) => proj[y] - proj[x]);
    let T = 0;
    for (let q = 0; q < Math.min(opt.maxAbsorbingLatents, pool.length); q++) T += proj[pool[q]];
    let frac: number;
    if (main >= a || T < opt.projectionThreshold * a) frac = 0;
    else if (main <= 0) frac = 1;
    else {
      const ab = Math.min(T, a - main);
      frac = Math.min(1, Math.max(0, ab / (ab + main)));
    }
    fracSum += frac;
  }

  return {
    letter: p.letter,
    rows: P,
    parent_latents: chosen,
    parent_f1: chosen.length > 0 ? best : 0,
    absorption: full / P,
    absorption_fraction: fracSum / P,
    child_carried: carried / P,
    parent_silent: silent / P,
    absorbing_latents: [...absorbers].map(([latent, rows]) => ({ latent, rows }))
      .sort((x, y) => y.rows - x.rows || x.latent - y.latent),
  };
}

/** Rows {@link createAbsorptionEvaluator} draws by default (about 160 per letter at the defaults). */
const ABSORPTION_ROWS = 8192;

/**
 * An {@link ExtraEvaluator} for `evaluateRun`: draws `rows` fresh rows with their truth from the
 * synthetic evaluation source, encodes them with the run's encoder (ctx.encode, JumpReLU included)
 * and returns `{ absorption }`. On non-synthetic data it returns `{}` (no hierarchy to probe).
 *
 * @param options thresholds, plus `rows` (default {@link ABSORPTION_ROWS})
 */
export function createAbsorptionEvaluator(
  options: AbsorptionOptions & { rows?: number } = {},
): ExtraEvaluator {
  return async (ctx: EvalContext) => {
    const { rows = ABSORPTION_ROWS, ...opt } = options;
    const got = await labelledRows(ctx, rows);
    if (got === null) return {};
    const res = absorption({
      latents: got.latents,
      truth: got.truth,
      wDec: ctx.sae.weights.wDec,
      dictionary: got.src.truth.dictionary,
      parents: got.src.truth.parents,
      dIn: got.src.dIn,
      scale: ctx.sae.scale,
    }, opt);
    return { absorption: res.metrics };
  };
}

/** {@link createAbsorptionEvaluator} with the default thresholds and rows. */
export const absorptionEvaluator: ExtraEvaluator = createAbsorptionEvaluator();

/** Row j of `w` [*, d], normalised to unit length (f64). */
function unit(w: Float32Array, j: number, d: number): Float64Array {
  const v = new Float64Array(d);
  let s = 0;
  for (let k = 0; k < d; k++) {
    v[k] = w[j * d + k];
    s += v[k] * v[k];
  }
  const nrm = Math.sqrt(s) || 1;
  for (let k = 0; k < d; k++) v[k] /= nrm;
  return v;
}

function avg(v: number[]): number {
  return v.length > 0 ? v.reduce((a, b) => a + b, 0) / v.length : 0;
}
