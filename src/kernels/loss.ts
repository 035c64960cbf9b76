/** Input preparation and reconstruction loss (wgsl/loss.wgsl). */
import lossSrc from "../../wgsl/loss.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";
import { hasSubgroups } from "./collectives.ts";
import { adapterClass } from "../gpu/adapter.ts";

/** Shapes and options of the loss kernels. */
export interface LossSpec {
  batch: number;
  dIn: number;
  /** Input normalisation factor (1 = none). */
  scale: number;
  applyBDec: boolean;
  squared: boolean;
}

/** Buffers of the loss kernels. */
export interface LossBuffers {
  x: GPUBuffer; // [B, d] raw in, scaled out
  xc: GPUBuffer; // [B, d] encoder input
  bDec: GPUBuffer; // [d]
  xhat: GPUBuffer; // [B, d]
  dxhat: GPUBuffer; // [B, d]
  xmean: GPUBuffer; // [d]
  rowstats: GPUBuffer; // [B, 3]
}

/** The family's WGSL, with subgroup reductions where the device has them. */
const code = (gpu: Gpu) => withCommon(lossSrc, hasSubgroups(gpu));

function constants(s: LossSpec): Record<string, number> {
  return {
    D: s.dIn,
    B: s.batch,
    SCALE: s.scale,
    APPLY_B_DEC: s.applyBDec ? 1 : 0,
    SQUARED: s.squared ? 1 : 0,
  };
}

/** x ← scale·x; xc ← x − b_dec. */
export function prepareKernel(gpu: Gpu, s: LossSpec, b: LossBuffers): Promise<Dispatch> {
  return kernel(gpu, {
    label: "prepare",
    code: code(gpu),
    entry: "prepare",
    constants: constants(s),
    buffers: [b.x, b.xc, b.bDec],
    groups: groupsFor(s.batch * s.dIn, WG),
    // A scale and (with b_dec) a subtraction per element; reads x (and b_dec), writes x and xc.
    cost: {
      flops: (s.applyBDec ? 2 : 1) * s.batch * s.dIn,
      bytes: 4 * (3 * s.batch * s.dIn + (s.applyBDec ? s.dIn : 0)),
    },
  });
}

/**
 * dL/dx̂ and per-row statistics (‖r‖, ‖r‖², ‖x − x̄‖²): one workgroup per row, or on CPU adapters
 * (`lane`, the default there) one invocation per row without barriers, a vec4 at a time when
 * d_in % 4 == 0.
 */
export function residualKernel(
  gpu: Gpu,
  s: LossSpec,
  b: LossBuffers,
  lane = adapterClass(gpu) === "cpu",
): Promise<Dispatch> {
  return kernel(gpu, {
    label: "residual",
    code: code(gpu),
    entry: lane ? (s.dIn % 4 === 0 ? "residual_lane4" : "residual_lane") : "residual",
    constants: constants(s),
    buffers: [b.x, null, null, b.xhat, b.dxhat, b.xmean, b.rowstats],
    groups: lane ? groupsFor(s.batch, WG) : groupsFor(s.batch),
    // Per element: r and its square summed (4), x − x̄ and its square summed (3), dL/dx̂ (2:
    // r again, times the row's coefficient); per row a norm and a coefficient (3). Reads x, x̂
    // and x̄, writes dL/dx̂ and the row statistics.
    cost: {
      flops: 9 * s.batch * s.dIn + 3 * s.batch,
      bytes: 4 * (3 * s.batch * s.dIn + s.dIn + 3 * s.batch),
    },
  });
}

/** Reference of {@link prepareKernel}: the scaled batch x [B, d] and the encoder input xc [B, d]. */
export function prepareReference(
  s: LossSpec,
  x: Float32Array,
  bDec: Float32Array,
): { x: Float32Array; xc: Float32Array } {
  const xs = x.map((v) => v * s.scale);
  return { x: xs, xc: xs.map((v, i) => s.applyBDec ? v - bDec[i % s.dIn] : v) };
}

/** Reference of {@link residualKernel}: returns dL/dx̂ [B, d] and rowstats [B, 3]. */
export function residualReference(
  s: LossSpec,
  x: Float32Array,
  xhat: Float32Array,
  xmean: Float32Array,
): { dxhat: Float32Array; rowstats: Float32Array } {
  const { batch: B, dIn: D } = s;
  const dxhat = new Float32Array(B * D);
  const rowstats = new Float32Array(B * 3);
  for (let b = 0; b < B; b++) {
    let ss = 0, vv = 0;
    for (let k = 0; k < D; k++) {
      const r = xhat[b * D + k] - x[b * D + k];
      const c = x[b * D + k] - xmean[k];
      ss += r * r;
      vv += c * c;
    }
    const norm = Math.sqrt(ss);
    const coef = s.squared ? 2 / B : norm > 0 ? 1 / (B * norm) : 0;
    for (let k = 0; k < D; k++) dxhat[b * D + k] = coef * (xhat[b * D + k] - x[b * D + k]);
    rowstats.set([norm, ss, vv], b * 3);
  }
  return { dxhat, rowstats };
}
