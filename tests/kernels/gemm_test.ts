import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { type Epilogue, gemm, gemmReference, type GemmSpec } from "../../src/kernels/gemm.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

const cases: [string, boolean, boolean, Epilogue][] = [
  ["NT bias_relu (encoder)", false, true, "bias_relu"],
  ["NN bias (decoder)", false, false, "bias"],
  ["NT relu_grad (dF)", false, true, "relu_grad"],
  ["TN none (weight grads)", true, false, "none"],
  ["TT none", true, true, "none"],
];

// Awkward sizes: none a multiple of the 64x64x16 tile; one smaller than a tile; one with K < BK.
const shapes = [[37, 53, 71], [5, 3, 130], [130, 67, 9], [1, 1, 1]];

for (const [name, transA, transB, epilogue] of cases) {
  Deno.test(`gemm ${name} matches the reference on awkward sizes`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(7);
    for (const [M, N, K] of shapes) {
      const spec: GemmSpec = { label: name, M, N, K, transA, transB, epilogue, scalarIdx: 1 };
      const a = randArray(rng, M * K);
      const b = randArray(rng, K * N);
      // relu_grad masks by E > 0: use a signed matrix so roughly half the entries are masked.
      const e = randArray(rng, epilogue === "relu_grad" ? M * N : N);
      const s = new Float32Array([0.5, 0.125, 2]);
      const bufs = {
        a: gpu.upload("a", a),
        b: gpu.upload("b", b),
        c: poisoned(gpu, "c", M * N),
        e: gpu.upload("e", e),
        s: gpu.upload("s", s),
      };
      run(gpu, [await gemm(gpu, spec, bufs)]);
      const got = await gpu.read(bufs.c, M * N * 4);
      assertClose(got, gemmReference(spec, a, b, e, s), 1e-5, `${name} ${M}x${N}x${K}`);
    }
  });
}

Deno.test("gemm reference itself: a hand-computed 2x2 case", () => {
  const spec: GemmSpec = {
    label: "t",
    M: 2,
    N: 2,
    K: 2,
    transA: false,
    transB: true,
    epilogue: "bias_relu",
  };
  // [[1,2],[3,4]]·[[1,0],[1,-1]]ᵀ = [[1,-1],[3,-1]]; + [0, 0.5] → relu → [[1,0],[3,0]]
  const c = gemmReference(
    spec,
    new Float32Array([1, 2, 3, 4]),
    new Float32Array([1, 0, 1, -1]),
    new Float32Array([0, 0.5]),
  );
  if (c.join() !== "1,0,3,0") throw new Error(`got ${c.join()}`);
});
