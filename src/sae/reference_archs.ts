/**
 * Plain-TypeScript training steps of the TopK, BatchTopK, JumpReLU and Matryoshka variants,
 * written from the libraries' definitions (docs/architectures.md) in f64 sums, with the selections
 * and loss pieces taken from the kernels' references (src/kernels/topk.ts, jumprelu.ts) and the
 * optimizer from src/sae/reference.ts. Tests compare the GPU steps with them
 * (tests/sae/archs_step_test.ts).
 */
import type { TrainConfig } from "../config.ts";
import { adamSpec, adamwReference } from "../kernels/adamw.ts";
import { jumpReluTrainingReference } from "../kernels/jumprelu.ts";
import {
  auxLossReference,
  batchTopKReference,
  deadMaskReference,
  rowTopKReference,
  THETA_INIT,
  type ThetaRule,
  thetaUpdateReference,
} from "../kernels/topk.ts";
import { auxkSpec } from "./auxk.ts";
import { matryoshkaWidths } from "./matryoshka.ts";
import type { SaeWeights } from "./model.ts";
import { applyUpdate, type ReferenceOptState, referenceOptState } from "./reference.ts";

/** What a variant's reference step carries between steps besides the weights. */
export interface ArchRefState {
  opt: ReferenceOptState;
  /** [m] the step each latent last fired (0: never). */
  lastFired: Uint32Array;
  /** [m] the per-latent thresholds the inference encoder applies (BatchTopK's θ in every slot). */
  threshold: Float32Array;
  /** JumpReLU: log θ [m] and its Adam moments. */
  logTheta: Float32Array;
  thetaM: Float32Array;
  thetaV: Float32Array;
}

/** The state before the first step of `cfg`'s variant. */
export function archRefState(cfg: TrainConfig): ArchRefState {
  const m = cfg.d_sae;
  const theta0 = cfg.variant === "jumprelu"
    ? Math.fround(cfg.jumprelu_init_threshold)
    : THETA_INIT[cfg.topk_threshold];
  return {
    opt: referenceOptState(cfg.d_in, m),
    lastFired: new Uint32Array(m),
    threshold: new Float32Array(m).fill(theta0),
    logTheta: new Float32Array(m).fill(Math.log(cfg.jumprelu_init_threshold)),
    thetaM: new Float32Array(m),
    thetaV: new Float32Array(m),
  };
}

/** pre [B, m] = W_enc·x_c + b_enc and x_c [B, d] (f64). */
function encodePre(cfg: TrainConfig, w: SaeWeights, x: Float32Array) {
  const d = cfg.d_in, m = cfg.d_sae, B = x.length / d;
  const xc = new Float64Array(B * d), pre = new Float64Array(B * m);
  for (let r = 0; r < B; r++) {
    for (let k = 0; k < d; k++) {
      xc[r * d + k] = x[r * d + k] - (cfg.apply_b_dec_to_input ? w.bDec[k] : 0);
    }
    for (let i = 0; i < m; i++) {
      let s = w.bEnc[i];
      for (let k = 0; k < d; k++) s += w.wEnc[i * d + k] * xc[r * d + k];
      pre[r * m + i] = s;
    }
  }
  return { xc, pre };
}

/** x̂ [B, d] = f[:, :width]·W_dec[:width] + b_dec. */
function decode(cfg: TrainConfig, w: SaeWeights, f: ArrayLike<number>, width: number) {
  const d = cfg.d_in, m = cfg.d_sae, B = f.length / m;
  const xhat = new Float64Array(B * d);
  for (let r = 0; r < B; r++) {
    for (let k = 0; k < d; k++) {
      let s = w.bDec[k];
      for (let i = 0; i < width; i++) s += f[r * m + i] * w.wDec[i * d + k];
      xhat[r * d + k] = s;
    }
  }
  return xhat;
}

/** The reconstruction term mean_b ‖x − x̂‖² (or ‖·‖ with recon_loss l2) and dL/dx̂ [B, d]. */
function reconGrad(cfg: TrainConfig, x: Float32Array, xhat: Float64Array) {
  const d = cfg.d_in, B = x.length / d;
  const dxhat = new Float64Array(B * d);
  let recon = 0;
  for (let r = 0; r < B; r++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += (xhat[r * d + k] - x[r * d + k]) ** 2;
    const norm = Math.sqrt(ss);
    const squared = cfg.recon_loss === "squared";
    recon += squared ? ss : norm;
    const coef = squared ? 2 / B : norm > 0 ? 1 / (B * norm) : 0;
    for (let k = 0; k < d; k++) dxhat[r * d + k] = coef * (xhat[r * d + k] - x[r * d + k]);
  }
  return { recon: recon / B, dxhat };
}

/** dL/df [B, m] += dL/dx̂·W_dec[i]ᵀ for latents i < width. */
function addDf(
  cfg: TrainConfig,
  w: SaeWeights,
  dxhat: Float64Array,
  width: number,
  out: Float64Array,
) {
  const d = cfg.d_in, m = cfg.d_sae, B = dxhat.length / d;
  for (let r = 0; r < B; r++) {
    for (let i = 0; i < width; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += dxhat[r * d + k] * w.wDec[i * d + k];
      out[r * m + i] += s;
    }
  }
}

/** dW_dec [m, d] += f[:, :width]ᵀ·G for G [B, d]. */
function addDwDec(
  cfg: TrainConfig,
  f: ArrayLike<number>,
  G: Float64Array,
  width: number,
  out: Float64Array,
) {
  const d = cfg.d_in, m = cfg.d_sae, B = G.length / d;
  for (let r = 0; r < B; r++) {
    for (let i = 0; i < width; i++) {
      const fi = f[r * m + i];
      if (fi === 0) continue;
      for (let k = 0; k < d; k++) out[i * d + k] += fi * G[r * d + k];
    }
  }
}

/**
 * The gradients of W_enc, b_enc and b_dec from dL/dpre [B, m] and the summed dL/dx̂ [B, d] (b_dec
 * reaches x̂ directly and, with apply_b_dec_to_input, the encoder's input), with dW_dec given.
 */
function paramGrads(
  cfg: TrainConfig,
  w: SaeWeights,
  xc: Float64Array,
  dpre: Float64Array,
  dxhat: Float64Array,
  gwd: Float64Array,
): SaeWeights {
  const d = cfg.d_in, m = cfg.d_sae, B = dpre.length / m;
  const gwe = new Float64Array(m * d), gbe = new Float64Array(m), gbd = new Float64Array(d);
  for (let r = 0; r < B; r++) {
    for (let k = 0; k < d; k++) gbd[k] += dxhat[r * d + k];
    for (let i = 0; i < m; i++) {
      const g = dpre[r * m + i];
      if (g === 0) continue;
      gbe[i] += g;
      for (let k = 0; k < d; k++) {
        gwe[i * d + k] += g * xc[r * d + k];
        if (cfg.apply_b_dec_to_input) gbd[k] -= g * w.wEnc[i * d + k];
      }
    }
  }
  return {
    wEnc: Float32Array.from(gwe),
    bEnc: Float32Array.from(gbe),
    wDec: Float32Array.from(gwd),
    bDec: Float32Array.from(gbd),
  };
}

/**
 * AuxK on the step's residual (src/sae/auxk.ts): adds its gradient to dpre [B, m] and dW_dec
 * [m, d]; returns the loss. `x` and `xhat` as the GPU holds them (f32).
 */
function auxk(
  cfg: TrainConfig,
  w: SaeWeights,
  st: ArchRefState,
  step: number,
  pre32: Float32Array,
  x: Float32Array,
  xhat: Float64Array,
  dpre: Float64Array,
  gwd: Float64Array,
): number {
  if (cfg.auxk === "off") return 0;
  const d = cfg.d_in, m = cfg.d_sae, B = x.length / d;
  const s = auxkSpec(cfg.auxk, cfg, cfg.k_aux);
  const { dead, numDead } = deadMaskReference(st.lastFired, step, cfg.dead_steps);
  const k = Math.min(s.kAux, m);
  const sel = rowTopKReference(
    pre32,
    { B, m, k, reluBefore: s.reluBefore, reluAfter: false },
    dead,
  );
  const recons = Float32Array.from(decode(cfg, { ...w, bDec: new Float32Array(d) }, sel.f, m));
  const { loss, g } = auxLossReference(s, x, Float32Array.from(xhat), recons, numDead);
  for (let r = 0; r < B; r++) {
    for (let e = 0; e < sel.cnt[r]; e++) {
      if (s.reluBefore && !(sel.val[r * k + e] > 0)) continue;
      const j = sel.idx[r * k + e];
      let v = 0;
      for (let c = 0; c < d; c++) v += g[r * d + c] * w.wDec[j * d + c];
      dpre[r * m + j] += v;
    }
  }
  addDwDec(cfg, sel.f, g, m, gwd);
  return loss;
}

/** The latents that fired (f > 0 in some row) get `step` as their last-fired step. */
function markFired(st: ArchRefState, f: ArrayLike<number>, m: number, step: number) {
  for (let i = 0; i < f.length; i++) if (f[i] > 0) st.lastFired[i % m] = step;
}

/** BatchTopK's θ rule of a config. */
function thetaRule(cfg: TrainConfig): ThetaRule {
  return cfg.topk_threshold === "saelens" ? { kind: "saelens", lr: cfg.topk_threshold_lr } : {
    kind: "dictionary_learning",
    beta: cfg.threshold_beta,
    startStep: cfg.threshold_start_step,
  };
}

/**
 * One step of the top-k variants in place (topk, batchtopk, matryoshka: see their files), x
 * already scaled. Returns the logged loss (the full dictionary's reconstruction term).
 */
export function referenceTopKFamilyStep(
  cfg: TrainConfig,
  w: SaeWeights,
  st: ArchRefState,
  x: Float32Array,
): number {
  const d = cfg.d_in, m = cfg.d_sae, B = x.length / d;
  const step = st.opt.step + 1;
  const { xc, pre } = encodePre(cfg, w, x);
  const pre32 = Float32Array.from(pre);
  let f: Float32Array;
  if (cfg.variant === "topk") {
    f = rowTopKReference(pre32, { B, m, k: cfg.k }).f;
  } else {
    const bt = batchTopKReference(pre32, { B, m, k: cfg.k });
    f = bt.f;
    const theta = thetaUpdateReference(thetaRule(cfg), st.threshold[0], bt.minPositive, step);
    st.threshold.fill(theta);
  }
  // The levels: the whole dictionary, and Matryoshka's nested prefixes (each a loss of its own).
  const widths = cfg.variant === "matryoshka" ? matryoshkaWidths(cfg) : [m];
  const dLdf = new Float64Array(B * m), gwd = new Float64Array(m * d);
  const dxhatSum = new Float64Array(B * d);
  let logged = 0, xhatFull = new Float64Array(0);
  for (const width of widths) {
    const xhat = decode(cfg, w, f, width);
    const { recon, dxhat } = reconGrad(cfg, x, xhat);
    if (width === m) {
      logged = recon;
      xhatFull = xhat;
    }
    addDf(cfg, w, dxhat, width, dLdf);
    addDwDec(cfg, f, dxhat, width, gwd);
    for (let i = 0; i < dxhat.length; i++) dxhatSum[i] += dxhat[i];
  }
  // TopK's and BatchTopK's autograd: the kept entries pass dL/df·ReLU'(value), i.e. where f > 0.
  const dpre = dLdf.map((g, i) => f[i] > 0 ? g : 0);
  auxk(cfg, w, st, step, pre32, x, xhatFull, dpre, gwd);
  markFired(st, f, m, step);
  applyUpdate(cfg, w, st.opt, paramGrads(cfg, w, xc, dpre, dxhatSum, gwd));
  return logged;
}

/**
 * One JumpReLU step in place (src/sae/jumprelu.ts): SAELens' forward and straight-through
 * gradients (jumpReluTrainingReference), the L0 penalty, AdamW on log θ with the parameters'
 * settings, θ = exp(log θ) for the encoder at inference. Returns the logged loss (the
 * reconstruction term).
 */
export function referenceJumpReluStep(
  cfg: TrainConfig,
  w: SaeWeights,
  st: ArchRefState,
  x: Float32Array,
): number {
  const d = cfg.d_in, m = cfg.d_sae, B = x.length / d;
  const step = st.opt.step + 1;
  const { xc, pre } = encodePre(cfg, w, x);
  const pre32 = Float32Array.from(pre);
  const f = new Float32Array(B * m);
  for (let i = 0; i < B * m; i++) {
    f[i] = pre32[i] > Math.fround(Math.exp(st.logTheta[i % m])) ? pre32[i] : 0;
  }
  const xhat = decode(cfg, w, f, m);
  const { recon, dxhat } = reconGrad(cfg, x, xhat);
  const dLdf = new Float64Array(B * m), gwd = new Float64Array(m * d);
  addDf(cfg, w, dxhat, m, dLdf);
  addDwDec(cfg, f, dxhat, m, gwd);
  const jr = jumpReluTrainingReference(
    pre32,
    st.logTheta,
    { B, m, bandwidth: cfg.jumprelu_bandwidth },
    cfg.l0_coefficient,
    Float32Array.from(dLdf),
  );
  markFired(st, f, m, step);
  applyUpdate(cfg, w, st.opt, paramGrads(cfg, w, xc, Float64Array.from(jr.dpre), dxhat, gwd));
  const adamState = {
    lr: cfg.lr * Math.min(1, step / Math.max(cfg.warmup_steps, 1)),
    b1t: cfg.beta1 ** step,
    b2t: cfg.beta2 ** step,
  };
  adamwReference(
    adamSpec(cfg),
    adamState,
    st.logTheta,
    Float32Array.from(jr.gLogTheta),
    st.thetaM,
    st.thetaV,
  );
  st.threshold = st.logTheta.map(Math.exp);
  return recon;
}
