/**
 * A plain-TypeScript training step of the baseline SAE, written from the math (f64 accumulation),
 * independent of the GPU kernels: tests compare the GPU step with it, and its gradients are checked
 * against finite differences.
 */
import type { TrainConfig } from "../config.ts";
import {
  orthoGradReference,
  orthoPenaltyReference,
  type PaperStats,
  paperStatsReference,
} from "../kernels/paper.ts";
import { adamSpec, adamwReference } from "../kernels/adamw.ts";
import { normalizeReference, projectGradReference } from "../kernels/decoder.ts";
import { encodeInto } from "./encode.ts";
import { PARAM_NAMES, type ParamName, type SaeWeights } from "./model.ts";
import { paperSpec } from "./paper.ts";
import { initialState } from "../kernels/common.ts";

/** Loss terms and intermediate values of one forward pass. */
export interface ReferenceForward {
  loss: number;
  recon: number;
  l1: number;
  f: Float64Array; // [B, m]
  xhat: Float64Array; // [B, d]
  xc: Float64Array; // [B, d]
}

type Cfg = Pick<TrainConfig, "d_in" | "d_sae" | "apply_b_dec_to_input" | "recon_loss">;

/**
 * Forward pass and loss L = mean_b recon_b + l1Weight · mean_b ‖f_b‖₁ (x already scaled). With
 * `tau`, latent i is kept only where its pre-activation exceeds max(τ_i, 0) (adaptive masking).
 */
export function referenceForward(
  cfg: Cfg,
  w: SaeWeights,
  x: Float32Array,
  l1Weight: number,
  tau?: ArrayLike<number>,
): ReferenceForward {
  const d = cfg.d_in, m = cfg.d_sae, B = x.length / d;
  const xc = new Float64Array(B * d);
  const f = new Float64Array(B * m);
  const xhat = new Float64Array(B * d);
  const enc = { dIn: d, dSae: m, applyBDec: cfg.apply_b_dec_to_input, scale: 1, tau: tau ?? null };
  encodeInto(enc, w, x, f, xc);
  let recon = 0, l1 = 0;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < m; i++) l1 += Math.abs(f[b * m + i]);
    let ss = 0;
    for (let k = 0; k < d; k++) {
      let s = w.bDec[k];
      for (let i = 0; i < m; i++) s += f[b * m + i] * w.wDec[i * d + k];
      xhat[b * d + k] = s;
      ss += (s - x[b * d + k]) ** 2;
    }
    recon += cfg.recon_loss === "squared" ? ss : Math.sqrt(ss);
  }
  recon /= B;
  l1 /= B;
  return { loss: recon + l1Weight * l1, recon, l1, f, xhat, xc };
}

/**
 * Gradients of {@link referenceForward}'s loss with respect to each parameter (through the mask
 * as the identity where a latent is kept). `stats`, when given, receives per latent the number of
 * rows it fired on and ‖dL_recon/df_i‖₂ over the batch (the paper's importance gradient).
 */
export function referenceGradients(
  cfg: Cfg,
  w: SaeWeights,
  x: Float32Array,
  l1Weight: number,
  tau?: ArrayLike<number>,
  stats?: { fires: Float64Array; gnorm: Float64Array },
): SaeWeights {
  const d = cfg.d_in, m = cfg.d_sae, B = x.length / d;
  const fw = referenceForward(cfg, w, x, l1Weight, tau);
  const gss = new Float64Array(m);
  const g: SaeWeights = {
    wEnc: new Float32Array(m * d),
    bEnc: new Float32Array(m),
    wDec: new Float32Array(m * d),
    bDec: new Float32Array(d),
  };
  const gwe = new Float64Array(m * d), gbe = new Float64Array(m);
  const gwd = new Float64Array(m * d), gbd = new Float64Array(d);
  const dxh = new Float64Array(d);
  for (let b = 0; b < B; b++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += (fw.xhat[b * d + k] - x[b * d + k]) ** 2;
    const norm = Math.sqrt(ss);
    const coef = cfg.recon_loss === "squared" ? 2 / B : norm > 0 ? 1 / (B * norm) : 0;
    for (let k = 0; k < d; k++) {
      dxh[k] = coef * (fw.xhat[b * d + k] - x[b * d + k]);
      gbd[k] += dxh[k];
    }
    for (let i = 0; i < m; i++) {
      const fi = fw.f[b * m + i];
      let df = 0;
      for (let k = 0; k < d; k++) {
        df += dxh[k] * w.wDec[i * d + k];
        gwd[i * d + k] += fi * dxh[k];
      }
      gss[i] += df * df;
      if (fi <= 0) continue;
      if (stats) stats.fires[i]++;
      const dpre = df + l1Weight / B;
      gbe[i] += dpre;
      for (let k = 0; k < d; k++) {
        gwe[i * d + k] += dpre * fw.xc[b * d + k];
        if (cfg.apply_b_dec_to_input) gbd[k] -= dpre * w.wEnc[i * d + k];
      }
    }
  }
  if (stats) { for (let i = 0; i < m; i++) stats.gnorm[i] = Math.sqrt(gss[i]); }
  g.wEnc.set(gwe);
  g.bEnc.set(gbe);
  g.wDec.set(gwd);
  g.bDec.set(gbd);
  return g;
}

/** Adam moments of all four parameters. */
export interface ReferenceOptState {
  m: SaeWeights;
  v: SaeWeights;
  step: number;
}

/** Zero moments. */
export function referenceOptState(d: number, m: number): ReferenceOptState {
  const z = () => ({
    wEnc: new Float32Array(m * d),
    bEnc: new Float32Array(m),
    wDec: new Float32Array(m * d),
    bDec: new Float32Array(d),
  });
  return { m: z(), v: z(), step: 0 };
}

/**
 * One full baseline training step in place: gradient, decoder-gradient projection, AdamW with
 * warmup and bias correction, decoder renormalisation. `x` must already be scaled. Returns the loss
 * before the update.
 */
export function referenceStep(
  cfg: TrainConfig,
  w: SaeWeights,
  opt: ReferenceOptState,
  x: Float32Array,
): number {
  const l1 = opt.step + 1 > cfg.recon_only_steps ? cfg.l1 : 0;
  const loss = referenceForward(cfg, w, x, l1).loss;
  applyUpdate(cfg, w, opt, referenceGradients(cfg, w, x, l1));
  return loss;
}

/** The paper variant's extra reference state. */
export interface ReferencePaperState {
  stats: PaperStats;
}

/**
 * One training step of the paper's method in place (see src/sae/paper.ts for the order):
 * thresholds from the previous step mask the encoder; the raw reconstruction gradient gives the
 * importance; statistics update (thresholds for the next step); the orthogonality gradient (α and
 * R from this step's weights, importance and batch, held constant) joins dL/dW_dec; AdamW with
 * per-latent factors; renormalisation. Returns the loss before the update: reconstruction + the
 * phase's L1 term + the orthogonality term, and that term alone.
 */
export function referencePaperStep(
  cfg: TrainConfig,
  w: SaeWeights,
  opt: ReferenceOptState,
  ps: ReferencePaperState,
  x: Float32Array,
): { loss: number; ortho: number } {
  const d = cfg.d_in, m = cfg.d_sae;
  const t = opt.step + 1;
  const phase = t > cfg.recon_only_steps ? 1 : 0;
  const l1 = phase ? cfg.l1 : 0;
  const tau = cfg.adaptive_threshold ? ps.stats.tau : undefined;
  const fw = referenceForward(cfg, w, x, l1, tau);
  const batchStats = { fires: new Float64Array(m), gnorm: new Float64Array(m) };
  const g = referenceGradients(cfg, w, x, l1, tau, batchStats);
  const spec = paperSpec(cfg);
  paperStatsReference(spec, ps.stats, batchStats.fires, batchStats.gnorm, t, fw.recon);
  let ortho = 0;
  if (cfg.lambda_ortho > 0) {
    const S0 = ps.stats.orthoScale;
    const og = orthoGradReference(w.wDec, ps.stats.weight, S0, cfg.ortho_eps, m, d);
    for (let i = 0; i < og.length; i++) g.wDec[i] += og[i];
    // S0 = 4λR·phase/norm: the penalty with weight λR·phase and normaliser norm, i.e. S0/4 over 1.
    ortho = orthoPenaltyReference(w.wDec, w.wDec, ps.stats.weight, 1, S0 / 4, cfg.ortho_eps, m, d);
  }
  const scale = cfg.importance_lr > 0 ? ps.stats.lrScale : undefined;
  applyUpdate(cfg, w, opt, g, scale);
  return { loss: fw.loss + ortho, ortho };
}

/**
 * Decoder-gradient projection, AdamW with warmup and bias correction (optionally with per-latent
 * lr factors), renormalisation: the kernels' references, in the step's order.
 */
export function applyUpdate(
  cfg: TrainConfig,
  w: SaeWeights,
  opt: ReferenceOptState,
  g: SaeWeights,
  lrScale?: ArrayLike<number>,
): void {
  const d = cfg.d_in, m = cfg.d_sae;
  projectGradReference(w.wDec, g.wDec, m, d);
  const t = ++opt.step;
  const st = {
    ...initialState(),
    step: t,
    lr: cfg.lr * Math.min(1, t / Math.max(cfg.warmup_steps, 1)),
    b1t: cfg.beta1 ** t,
    b2t: cfg.beta2 ** t,
  };
  const adam = adamSpec(cfg);
  const rowLen: Partial<Record<ParamName, number>> = { wEnc: d, bEnc: 1, wDec: d };
  // The GPU holds the factors as f32.
  const values = lrScale ? Float32Array.from(lrScale) : undefined;
  for (const name of PARAM_NAMES) {
    const len = rowLen[name];
    const scale = values && len ? { values, rowLen: len } : undefined;
    adamwReference(adam, st, w[name], g[name], opt.m[name], opt.v[name], scale);
  }
  normalizeReference(w.wDec, m, d);
}
