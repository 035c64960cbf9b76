/**
 * The step-state buffer (wgsl/state.wgsl): step counter, learning rate, Adam's bias-correction
 * powers and the L1 coefficient, advanced on the GPU by wgsl/schedule.wgsl.
 */
import stateSrc from "../../wgsl/state.wgsl" with { type: "text" };

/** Word index of each field in the state buffer (mirrors `struct State`). */
export const STATE_INDEX = { step: 0, lr: 1, b1t: 2, b2t: 3, l1_coef: 4, main_phase: 5 } as const;

/** Size of the state buffer in 32-bit words. */
export const STATE_WORDS = 8;

/** The WGSL struct, prepended to every kernel family that reads the state. */
export const STATE_WGSL = stateSrc;

/** Plain view of the state. */
export interface StepState {
  step: number;
  lr: number;
  b1t: number;
  b2t: number;
  l1_coef: number;
  /** 1 after the recon-only phase, else 0. */
  main_phase: number;
}

/** The state before the first step. */
export function initialState(): StepState {
  return { step: 0, lr: 0, b1t: 1, b2t: 1, l1_coef: 0, main_phase: 0 };
}

/** Packs a state into the buffer's bytes. */
export function packState(s: StepState): Uint32Array {
  const words = new Uint32Array(STATE_WORDS);
  const f = new Float32Array(words.buffer);
  words[STATE_INDEX.step] = s.step;
  f[STATE_INDEX.lr] = s.lr;
  f[STATE_INDEX.b1t] = s.b1t;
  f[STATE_INDEX.b2t] = s.b2t;
  f[STATE_INDEX.l1_coef] = s.l1_coef;
  f[STATE_INDEX.main_phase] = s.main_phase;
  return words;
}

/** Unpacks the buffer's words. */
export function unpackState(words: Uint32Array): StepState {
  const f = new Float32Array(words.buffer, words.byteOffset, words.length);
  return {
    step: words[STATE_INDEX.step],
    lr: f[STATE_INDEX.lr],
    b1t: f[STATE_INDEX.b1t],
    b2t: f[STATE_INDEX.b2t],
    l1_coef: f[STATE_INDEX.l1_coef],
    main_phase: f[STATE_INDEX.main_phase],
  };
}
