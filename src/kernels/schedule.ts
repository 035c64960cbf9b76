/** Step schedule (wgsl/schedule.wgsl): advances the step state on the GPU. */
import scheduleSrc from "../../wgsl/schedule.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, kernel } from "../gpu/dispatch.ts";
import { STATE_WORDS, type StepState, withCommon } from "./common.ts";

/** Schedule settings, fixed for a run. */
export interface ScheduleSpec {
  lr: number;
  warmupSteps: number;
  beta1: number;
  beta2: number;
  /** λ1 / batch. */
  l1Coef: number;
  /** Steps with the L1 term off. */
  reconOnlySteps: number;
}

/** Builds the schedule dispatch over the state buffer. */
export function scheduleKernel(gpu: Gpu, s: ScheduleSpec, state: GPUBuffer): Promise<Dispatch> {
  return kernel(gpu, {
    label: "schedule",
    code: withCommon(scheduleSrc),
    constants: {
      LR: s.lr,
      WARMUP_STEPS: s.warmupSteps,
      BETA1: s.beta1,
      BETA2: s.beta2,
      L1_COEF: s.l1Coef,
      RECON_ONLY_STEPS: s.reconOnlySteps,
    },
    buffers: [state],
    groups: [1, 1, 1],
    // The warmup ratio and lr (3 FLOPs), two bias powers; reads and writes the state.
    cost: { flops: 5, bytes: 2 * 4 * STATE_WORDS },
  });
}

/** Reference: the state after one more step (f32 rounding as on the GPU). */
export function scheduleReference(prev: StepState, s: ScheduleSpec): StepState {
  const f = Math.fround;
  const t = prev.step + 1;
  return {
    step: t,
    lr: f(f(s.lr) * Math.min(1, f(t / Math.max(s.warmupSteps, 1)))),
    b1t: f(prev.b1t * f(s.beta1)),
    b2t: f(prev.b2t * f(s.beta2)),
    l1_coef: t > s.reconOnlySteps ? f(s.l1Coef) : 0,
    main_phase: t > s.reconOnlySteps ? 1 : 0,
  };
}
