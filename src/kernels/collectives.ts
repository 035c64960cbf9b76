/**
 * Workgroup collectives (scan, sum) in two implementations with the same WGSL names: subgroup
 * operations (wgsl/collectives_sg.wgsl) where the device has the "subgroups" feature, workgroup
 * memory (wgsl/collectives_wg.wgsl) everywhere. A kernel family that reduces or scans across a
 * workgroup is written once against these names; its builder takes a `subgroups` option (default:
 * what the device has) so tests run both on an adapter that has subgroups, and the fallback here.
 */
import wgSrc from "../../wgsl/collectives_wg.wgsl" with { type: "text" };
import sgSrc from "../../wgsl/collectives_sg.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { withCommon } from "./common.ts";

/** Whether the device was created with the "subgroups" feature. */
export function hasSubgroups(gpu: Gpu): boolean {
  return gpu.device.features.has("subgroups");
}

/**
 * Which collectives a builder uses: `requested` if given (an error if the device lacks subgroups),
 * else subgroups exactly where the device has them.
 */
export function useSubgroups(gpu: Gpu, requested?: boolean): boolean {
  if (requested && !hasSubgroups(gpu)) {
    throw new Error("subgroup collectives requested on a device without the 'subgroups' feature");
  }
  return requested ?? hasSubgroups(gpu);
}

/** A family's WGSL with common.wgsl and the chosen collectives in front. */
export function withCollectives(src: string, subgroups: boolean): string {
  return withCommon((subgroups ? sgSrc : wgSrc) + "\n" + src, subgroups);
}
