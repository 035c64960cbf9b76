/**
 * What every kernel family shares: wgsl/common.wgsl (the workgroup size, the step-state struct,
 * workgroup reductions), prepended to a family's source by {@link withCommon}, and the TypeScript
 * mirror of the step state, which wgsl/schedule.wgsl advances on the GPU each step.
 */
import commonSrc from "../../wgsl/common.wgsl" with { type: "text" };
import commonSgSrc from "../../wgsl/common_sg.wgsl" with { type: "text" };

/** The value of `const <name>: u32 = <n>u;` in a WGSL source: sizes both sides need, kept in WGSL. */
export function wgslU32(src: string, name: string): number {
  const m = new RegExp(`const ${name}: u32 = (\\d+)u;`).exec(src);
  if (!m) throw new Error(`no 'const ${name}: u32' in the WGSL source`);
  return Number(m[1]);
}

/** Default workgroup size of the element-wise and row kernels, read from wgsl/common.wgsl. */
export const WG: number = wgslU32(commonSrc, "WG");

/** wgsl/common.wgsl with its workgroup-memory reductions replaced by wgsl/common_sg.wgsl's. */
const commonWithSubgroups = (() => {
  const begin = commonSrc.indexOf("// BEGIN workgroup-memory reductions");
  const endMark = "// END workgroup-memory reductions";
  const end = commonSrc.indexOf(endMark);
  if (begin < 0 || end < begin) throw new Error("wgsl/common.wgsl lost its reduction markers");
  return commonSrc.slice(0, begin) + commonSgSrc + commonSrc.slice(end + endMark.length);
})();

/**
 * A kernel family's WGSL with the shared declarations of wgsl/common.wgsl in front; with
 * `subgroups` (a device with the "subgroups" feature: `hasSubgroups` in collectives.ts), its
 * workgroup reductions are the subgroup versions of wgsl/common_sg.wgsl.
 */
export function withCommon(src: string, subgroups = false): string {
  return (subgroups ? commonWithSubgroups : commonSrc) + "\n" + src;
}

/** Word index of each field in the state buffer (mirrors `struct State` in wgsl/common.wgsl). */
export const STATE_INDEX = { step: 0, lr: 1, b1t: 2, b2t: 3, l1_coef: 4, main_phase: 5 } as const;

/** Size of the state buffer in 32-bit words (`struct State`, padding included). */
export const STATE_WORDS = 8;

/** Plain view of the step state. */
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

/** Packs a state into the buffer's words. */
export function packState(s: StepState): Uint32Array<ArrayBuffer> {
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
