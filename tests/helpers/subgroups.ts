/** Checks of subgroup code on devices that cannot run it. */
import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";

/**
 * Where the device lacks subgroups the subgroup variant cannot run, but naga still parses and
 * resolves it before refusing: the only error must be the missing capability (a typo or type
 * error in wgsl/collectives_sg.wgsl or a kernel written against it fails here).
 */
export async function assertOnlyLacksSubgroups(code: string): Promise<void> {
  const gpu = await getGpu();
  // In an error scope: an uncaptured error would mark the shared device failed for later tests.
  gpu.device.pushErrorScope("validation");
  const info = await gpu.device.createShaderModule({ code }).getCompilationInfo();
  assert.ok(await gpu.device.popErrorScope(), "the module is invalid on this device");
  const errors = info.messages.filter((m) => m.type === "error").map((m) => m.message);
  assert.ok(errors.length > 0, "expected the missing subgroup capability to be reported");
  for (const e of errors) assert.match(e, /Capabilities\(SUBGROUP\)/, e);
}
