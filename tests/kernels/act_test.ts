import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  addDispatches,
  geluDispatches,
  geluTanh,
  gluDispatches,
  gluReference,
  silu,
} from "../../src/kernels/act.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

Deno.test("act: the scalar definitions at known points", () => {
  // torch: F.gelu(x, approximate="tanh") and F.silu at 1 and -2.
  assert.ok(Math.abs(geluTanh(1) - 0.8411919906082768) < 1e-12);
  assert.ok(Math.abs(geluTanh(-2) - -0.04540230591222492) < 1e-12);
  assert.ok(Math.abs(silu(1) - 0.7310585786300049) < 1e-12);
  assert.ok(Math.abs(silu(-2) - -0.2384058440442351) < 1e-12);
});

// Width 43 takes the one-float kernels, 44 the vec4 ones.
for (
  const [kind, width] of [["swiglu", 43], ["swiglu", 44], ["geglu", 43], ["geglu", 44]] as const
) {
  Deno.test(`act: ${kind} (width ${width}) on separate and fused gate/up matches the reference`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(kind.length + width);
    const rows = 74;
    // Large magnitudes included: SiLU and tanh must stay finite far out.
    const gate = randArray(rng, rows * width, -12, 12), up = randArray(rng, rows * width, -2, 2);
    gate[0] = -200;
    gate[1] = 200;
    const want = gluReference(kind, gate, up);
    const out = poisoned(gpu, "out", rows * width);
    const bufs = { gate: gpu.upload("gate", gate), up: gpu.upload("up", up), out };
    run(gpu, await gluDispatches(gpu, { rows, width, kind }, bufs));
    assertClose(await gpu.read(out), want, 1e-6, "separate");
    // Fused [rows, 2·width]: gate in the first half of each row, up in the second.
    const fused = new Float32Array(rows * 2 * width);
    for (let r = 0; r < rows; r++) {
      fused.set(gate.subarray(r * width, (r + 1) * width), r * 2 * width);
      fused.set(up.subarray(r * width, (r + 1) * width), r * 2 * width + width);
    }
    const fb = gpu.upload("gate_up", fused);
    const out2 = poisoned(gpu, "out2", rows * width);
    const layout = { ldGate: 2 * width, ldUp: 2 * width, offUp: width };
    run(
      gpu,
      await gluDispatches(gpu, { rows, width, kind, layout }, { gate: fb, up: fb, out: out2 }),
    );
    assertClose(await gpu.read(out2), want, 1e-6, "fused");
  });
}

Deno.test("act: gelu_new in place and the residual add match the references", async () => {
  const gpu = await getGpu();
  const rng = new Rng(5);
  for (const n of [74 * 37, 74 * 36]) await geluAndAdd(gpu, rng, n);
});

async function geluAndAdd(gpu: Gpu, rng: Rng, n: number) {
  const x = randArray(rng, n, -6, 6), y = randArray(rng, n, -2, 2);
  x[0] = -100;
  x[1] = 100;
  const xb = gpu.upload("x", x);
  run(gpu, await geluDispatches(gpu, { n }, { x: xb }));
  assertClose(await gpu.read(xb), x.map(geluTanh), 1e-6, "gelu_new");
  const rb = gpu.upload("resid", x), yb = gpu.upload("y", y);
  run(gpu, await addDispatches(gpu, { n }, { x: rb, y: yb }));
  assertClose(await gpu.read(rb), x.map((v, i) => v + y[i]), 1e-7, "add");
}
