/**
 * Health of a run: the once-per-step parameter check (wgsl/health.wgsl), and the flags of the
 * metric accumulators (words 10-14 of METRIC_INDEX; wgsl/metrics.wgsl sets those of the loss terms
 * and the batch) read on the host.
 */
import healthSrc from "../../wgsl/health.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { cdiv, type Dispatch, kernel } from "../gpu/dispatch.ts";
import { rowParts } from "../gpu/split.ts";
import { wgslU32, withCommon } from "./common.ts";
import { METRIC_INDEX } from "./metrics.ts";

/** Invocations per workgroup of the parameter check (wgsl/health.wgsl says why it is not WG). */
const HEALTH_WG = wgslU32(healthSrc, "HEALTH_WG");

/** 0 finite, 1 infinite, 2 NaN. */
export type Badness = 0 | 1 | 2;

/** What went non-finite in the accumulated window (all 0 when healthy). */
export interface Health {
  /** The reconstruction term (Σ‖x − x̂‖ or Σ‖x − x̂‖²). */
  recon: Badness;
  /** The sparsity term Σf. */
  l1: Badness;
  /** A parameter after an update (wgsl/health.wgsl). */
  params: Badness;
  /** The batch itself (Σ‖x − x̄‖²): the data holds NaN or infinity. */
  input: Badness;
  /** First step whose loss terms or batch were bad (0: none seen, or only a parameter). */
  firstStep: number;
}

/** Reads the health flags of an accumulator buffer. */
export function health(acc: Float32Array): Health {
  const I = METRIC_INDEX;
  const b = (v: number): Badness => (v >= 2 ? 2 : v >= 1 ? 1 : 0);
  return {
    recon: b(acc[I.recon_bad]),
    l1: b(acc[I.l1_bad]),
    params: b(acc[I.params_bad]),
    input: b(acc[I.input_bad]),
    firstStep: acc[I.first_bad_step],
  };
}

/** Whether any flag of `h` is set. */
export function isBad(h: Health): boolean {
  return h.recon + h.l1 + h.params + h.input > 0;
}

/** A parameter as the check reads it (src/sae/model.ts's ParamBuffers fits). */
export interface CheckedParam {
  p: GPUBuffer;
  shape: readonly number[];
  size: number;
}

/**
 * Builds the once-per-step parameter check that sets the params_bad flag in `acc` (one dispatch,
 * or one per range of W_enc/W_dec rows when they exceed the binding limit; the biases are checked
 * by the first).
 */
export async function healthKernel(
  gpu: Gpu,
  params: { wEnc: CheckedParam; bEnc: CheckedParam; wDec: CheckedParam; bDec: CheckedParam },
  acc: GPUBuffer,
): Promise<Dispatch[]> {
  const [dSae, dIn] = params.wEnc.shape;
  const out: Dispatch[] = [];
  const bufs = [params.wEnc.p, params.wDec.p];
  for (const { r0, r1, views: [enc, dec] } of rowParts(gpu, dSae, dIn, bufs)) {
    const n = (r1 - r0) * dIn;
    const nBEnc = r0 === 0 ? params.bEnc.size : 0, nBDec = r0 === 0 ? params.bDec.size : 0;
    // About 16 elements a thread for the large matrices, at most 1024 workgroups.
    const groups = Math.max(1, Math.min(1024, cdiv(n, HEALTH_WG * 16)));
    out.push(
      await kernel(gpu, {
        label: "health",
        code: withCommon(healthSrc),
        constants: {
          N_WENC: n,
          N_BENC: nBEnc,
          N_WDEC: n,
          N_BDEC: nBDec,
          STRIDE: groups * HEALTH_WG,
          OFF_ENC: enc.off,
          OFF_DEC: dec.off,
        },
        buffers: [enc.binding, params.bEnc.p, dec.binding, params.bDec.p, acc],
        groups: [groups, 1, 1],
        // Integer tests only (no FLOPs); reads every element once.
        cost: { flops: 0, bytes: 4 * (2 * n + nBEnc + nBDec) },
      }),
    );
  }
  return out;
}

/** Reference of {@link healthKernel}: the worst badness of any element (0 finite, 1 ∞, 2 NaN). */
export function healthReference(...params: Float32Array[]): Badness {
  let worst: Badness = 0;
  for (const p of params) {
    for (const x of p) {
      if (Number.isNaN(x)) return 2;
      if (!Number.isFinite(x)) worst = 1;
    }
  }
  return worst;
}
