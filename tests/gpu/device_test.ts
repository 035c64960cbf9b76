import assert, { rejects } from "node:assert/strict";
import { createGpu, getGpu } from "../../src/gpu/device.ts";

const code = `
override SCALE: f32 = 1.0;
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(1)
fn twice() { x[0] = 2.0 * SCALE * x[0]; }
@compute @workgroup_size(1)
fn thrice() { x[0] = 3.0 * SCALE * x[0]; }
`;

Deno.test("Gpu.pipeline creates each (source, entry point, constants) once and counts it", async () => {
  const gpu = await getGpu();
  const before = gpu.counters.pipelines;
  const a = await gpu.pipeline("a", code, { SCALE: 2 }, "twice");
  assert.equal(gpu.counters.pipelines, before + 1);
  // The same source, entry point and constants (whatever the label): the same pipeline.
  assert.equal(await gpu.pipeline("b", code, { SCALE: 2 }, "twice"), a);
  assert.equal(gpu.counters.pipelines, before + 1);
  // Another entry point, other constants, another source: each a new pipeline.
  const others = [
    await gpu.pipeline("c", code, { SCALE: 2 }, "thrice"),
    await gpu.pipeline("d", code, { SCALE: 3 }, "twice"),
    await gpu.pipeline("e", code + "\n", { SCALE: 2 }, "twice"),
  ];
  assert.equal(new Set([a, ...others]).size, 4);
  assert.equal(gpu.counters.pipelines, before + 4);
});

Deno.test("Gpu.pipeline: a source that does not compile throws naming the kernel, every time", async () => {
  // Its own device: an invalid module may also reach the device as an uncaptured error.
  const gpu = await createGpu();
  for (let i = 0; i < 2; i++) {
    await rejects(
      () => gpu.pipeline("broken", "fn main( {", {}, "main"),
      /'broken' failed to compile/,
    );
  }
});
