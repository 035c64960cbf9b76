/**
 * What every kernel family shares: wgsl/common.wgsl (the workgroup size, the step-state struct,
 * workgroup reductions), prepended to a family's source by {@link withCommon}, and the TypeScript
 * mirror of the step state.
 */
import commonSrc from "../../wgsl/common.wgsl" with { type: "text" };

/** Default workgroup size of the element-wise and row kernels, read from wgsl/common.wgsl. */
export const WG: number = Number(/const WG: u32 = (\d+)u;/.exec(commonSrc)![1]);

/** A kernel family's WGSL with the shared declarations of wgsl/common.wgsl in front. */
export function withCommon(src: string): string {
  return commonSrc + "\n" + src;
}
