/**
 * Matryoshka BatchTopK's nested reconstructions (wgsl/matryoshka.wgsl): the inner levels' residual
 * gradients folded into the step's dL/dx̂ with the corrections of the later groups, and the mask of
 * TopK's autograd. The variant (src/sae/matryoshka.ts) runs the prefix decodes and the corrections'
 * products as GEMMs over row blocks of W_dec.
 */
import matryoshkaSrc from "../../wgsl/matryoshka.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type ComputeDispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";

const code = withCommon(matryoshkaSrc);

/** Shapes of {@link prefixResidualKernel}. */
export interface PrefixSpec {
  B: number;
  d: number;
  /** Inner levels (all but the whole dictionary). */
  levels: number;
  /** Squared reconstruction loss (else ‖x − x̂‖₂). */
  squared: boolean;
}

/**
 * From the inner levels' reconstructions xhatP [levels, B, d] and the step's input x [B, d]:
 * dxhat [B, d] += Σ_p D_p and negT [levels, B, d] with negT[j] = −Σ_{p ≤ j} D_p, D_p = dL_p/dx̂_p
 * (2(x̂_p − x)/B, or (x̂_p − x)/(B‖x̂_p − x‖) for the l2 loss).
 */
export function prefixResidualKernel(
  gpu: Gpu,
  s: PrefixSpec,
  b: { x: GPUBuffer; xhatP: GPUBuffer; negT: GPUBuffer; dxhat: GPUBuffer },
): Promise<ComputeDispatch> {
  const n = s.levels * s.B * s.d;
  return kernel(gpu, {
    label: "matryoshka residuals",
    code,
    entry: "prefix_residual",
    constants: { B: s.B, D: s.d, LEVELS: s.levels, SQUARED: s.squared ? 1 : 0 },
    buffers: [b.x, b.xhatP, b.negT, b.dxhat],
    groups: groupsFor(s.B, WG),
    cost: { flops: 4 * n + s.B * s.d, bytes: 4 * (3 * n + 3 * s.B * s.d) },
  });
}

/** dpre [n] ← dpre·1[f > 0] (the mask TopK's and BatchTopK's autograd applies to dL/df). */
export function maskGradKernel(
  gpu: Gpu,
  n: number,
  b: { f: GPUBuffer; dpre: GPUBuffer },
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label: "matryoshka mask",
    code,
    entry: "mask_grad",
    constants: { N: n },
    buffers: [null, null, null, null, b.f, b.dpre],
    groups: groupsFor(n, WG),
    cost: { flops: 0, bytes: 12 * n },
  });
}

/** Reference of {@link prefixResidualKernel}: the new dxhat and negT (f64 sums). */
export function prefixResidualReference(
  s: PrefixSpec,
  x: Float32Array,
  xhatP: Float32Array,
  dxhat: Float32Array,
): { dxhat: Float32Array; negT: Float32Array } {
  const { B, d, levels } = s;
  const negT = new Float32Array(levels * B * d), out = dxhat.slice();
  for (let r = 0; r < B; r++) {
    const acc = new Float64Array(d);
    for (let p = 0; p < levels; p++) {
      const base = p * B * d + r * d;
      let ss = 0;
      for (let k = 0; k < d; k++) ss += (xhatP[base + k] - x[r * d + k]) ** 2;
      const c = s.squared ? 2 / B : ss > 0 ? 1 / (B * Math.sqrt(ss)) : 0;
      for (let k = 0; k < d; k++) {
        acc[k] += c * (xhatP[base + k] - x[r * d + k]);
        negT[base + k] = -acc[k];
      }
    }
    for (let k = 0; k < d; k++) out[r * d + k] += acc[k];
  }
  return { dxhat: out, negT };
}
