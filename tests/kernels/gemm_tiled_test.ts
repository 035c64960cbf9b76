import assert from "node:assert/strict";
import { createGpu, getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  type Epilogue,
  GEMM_TILE,
  gemmDispatches,
  gemmPath,
  gemmReference,
  type GemmSpec,
  TILED_CANDIDATES,
  type TiledTile,
} from "../../src/kernels/gemm/mod.ts";
import { tiledTileProblem } from "../../src/kernels/gemm/tiled.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";
import { checkGemm } from "../helpers/gemm.ts";

const LAYOUTS: [string, boolean, boolean][] = [
  ["NN", false, false],
  ["NT", false, true],
  ["TN", true, false],
  ["TT", true, true],
];
const EPILOGUES: Epilogue[] = [
  "none",
  "bias",
  "bias_relu",
  "relu_grad",
  "bias_threshold",
  "ortho_coef",
  "accumulate",
  "bias_gelu",
  "bias_accumulate",
];

// A 64x64 tile over K steps of 8: 68x132x36 is 2x3 blocks with partial edges and 4.5 K steps, read
// as vec4s; 67x131x27 is the same with no dimension a multiple of 4 (masked scalar loads).
const TILE: TiledTile = { BM: 64, BN: 64, BK: 8, TM: 8, TN: 8 };
const VEC_SHAPE = [68, 132, 36];
const ODD_SHAPE = [67, 131, 27];

for (const [name, transA, transB] of LAYOUTS) {
  for (const f16 of [false, true]) {
    Deno.test(`gemm tiled ${name}${f16 ? " f16" : ""}: every epilogue on awkward sizes`, async () => {
      for (const epilogue of EPILOGUES) {
        for (const shape of [VEC_SHAPE, ODD_SHAPE]) {
          await checkGemm(`${name} ${epilogue}`, shape, transA, transB, epilogue, {
            path: "tiled",
            tiledTile: TILE,
            f16,
          });
        }
      }
    });
  }
}

Deno.test("gemm tiled: tiny and thin shapes (one row, one column, K of 1-3)", async () => {
  for (const [name, transA, transB] of LAYOUTS) {
    for (const shape of [[1, 1, 1], [1, 70, 3], [70, 1, 2], [5, 3, 130]]) {
      await checkGemm(name, shape, transA, transB, "bias", { path: "tiled", tiledTile: TILE });
    }
  }
});

Deno.test("gemm tiled: every candidate tile that fits this device", async () => {
  const gpu = await getGpu();
  let ran = 0;
  for (const tiledTile of TILED_CANDIDATES) {
    if (tiledTileProblem(gpu, tiledTile)) continue;
    // 150 rows: two 128-row blocks, the second partial; K 52: 3.25 or 6.5 K steps.
    await checkGemm("NT", [150, 140, 52], false, true, "bias_relu", { path: "tiled", tiledTile });
    await checkGemm("TN", [150, 140, 52], true, false, "none", { path: "tiled", tiledTile });
    ran++;
  }
  assert.ok(ran >= 4, `only ${ran} candidate tiles fit this device`);
});

Deno.test("gemm tiled: tiles it cannot run are refused with the reason", async () => {
  const gpu = await getGpu();
  const buf = gpu.buffer("x", 1024);
  const spec: GemmSpec = {
    label: "bad",
    M: 8,
    N: 8,
    K: 8,
    transA: false,
    transB: true,
    epilogue: "none",
  };
  const bad: [TiledTile, RegExp][] = [
    [{ ...TILE, TM: 6 }, /TM and TN must be 4 or 8/],
    [{ ...TILE, BK: 6 }, /divide/],
    [{ BM: 128, BN: 64, BK: 128, TM: 8, TN: 8 }, /too few invocations/],
    [{ BM: 128, BN: 128, BK: 32, TM: 4, TN: 4 }, /invocations|workgroup/],
  ];
  for (const [tiledTile, why] of bad) {
    await assert.rejects(
      () => gemmDispatches(gpu, spec, { a: buf, b: buf, c: buf }, { path: "tiled", tiledTile }),
      why,
    );
  }
  buf.destroy();
});

Deno.test("gemm tiled over split views (leading dimensions, offsets, K parts), f32 and f16", async () => {
  // A binding limit of 2 KiB splits every operand: each part reads views that start mid-buffer
  // with the full matrices' leading dimensions, and parts along K accumulate.
  const gpu = await createGpu({ maxStorageBufferBindingSize: 2048 });
  for (const [M, N, K] of [[36, 52, 68], [37, 51, 67]]) {
    for (const [name, transA, transB] of LAYOUTS) {
      for (const f16 of [false, true]) {
        await checkGemm(`split ${name}`, [M, N, K], transA, transB, "bias", {
          path: "tiled",
          tiledTile: TILE,
          f16,
        }, gpu);
      }
    }
  }
});

Deno.test("gemm tiled f16 needs shader-f16: refused without it, the texture path chosen instead", async () => {
  const gpu = await createGpu({ f16: false });
  assert.equal(gpu.hasF16, false);
  const buf = gpu.buffer("x", 4096);
  const spec: GemmSpec = {
    label: "f16",
    M: 8,
    N: 8,
    K: 8,
    transA: false,
    transB: true,
    epilogue: "none",
  };
  await assert.rejects(
    () => gemmDispatches(gpu, spec, { a: buf, b: buf, c: buf }, { path: "tiled", f16: true }),
    /shader-f16/,
  );
  const prev = Deno.env.get("SAE_ADAPTER_CLASS");
  Deno.env.set("SAE_ADAPTER_CLASS", "gpu");
  try {
    assert.equal(gemmPath(gpu, spec, { f16: true }), "texture");
    assert.equal(gemmPath(gpu, spec, {}), "tiled");
  } finally {
    if (prev === undefined) Deno.env.delete("SAE_ADAPTER_CLASS");
    else Deno.env.set("SAE_ADAPTER_CLASS", prev);
  }
  buf.destroy();
});

Deno.test("gemm tiled f16: the conversions carry their bytes, the product half the operand bytes", async () => {
  const gpu = await getGpu();
  const [M, N, K] = [36, 52, 68];
  const spec: GemmSpec = { label: "cost", M, N, K, transA: false, transB: true, epilogue: "none" };
  const bufs = {
    a: gpu.buffer("a", 4 * M * K),
    b: gpu.buffer("b", 4 * N * K),
    c: gpu.buffer("c", 4 * M * N),
  };
  const f32 = await gemmDispatches(gpu, spec, bufs, { path: "tiled" });
  const f16 = await gemmDispatches(gpu, spec, bufs, { path: "tiled", f16: true });
  assert.equal(f32.length, 1);
  assert.deepEqual(f16.map((d) => d.label), ["cost f16 A", "cost f16 B", "cost"]);
  assert.equal(f16[0].cost!.bytes, 6 * M * K); // read f32, write f16
  assert.equal(f16[2].cost!.flops, 2 * M * N * K);
  assert.equal(f32[0].cost!.bytes - f16[2].cost!.bytes, 2 * (M + N) * K);
  for (const b of Object.values(bufs)) b.destroy();
});

Deno.test("gemm tiled: GEMMs sharing the f16 scratch buffers, run in any order", async () => {
  // Every f16 GEMM converts into the same scratch buffers (a later, larger one grows them): each
  // dispatch list still computes its own product, whatever ran in between.
  const gpu = await getGpu();
  const rng = new Rng(5);
  const runs = [];
  for (const [M, N, K] of [[8, 12, 16], [64, 40, 132], [20, 8, 4]]) {
    const spec: GemmSpec = {
      label: `shared ${M}`,
      M,
      N,
      K,
      transA: false,
      transB: true,
      epilogue: "none",
    };
    const a = randArray(rng, M * K).map(Math.f16round);
    const b = randArray(rng, K * N).map(Math.f16round);
    const bufs = { a: gpu.upload("a", a), b: gpu.upload("b", b), c: poisoned(gpu, "c", M * N) };
    const list = await gemmDispatches(gpu, spec, bufs, { path: "tiled", f16: true });
    runs.push({ spec, a, b, bufs, list });
  }
  for (const r of [...runs].reverse()) run(gpu, r.list);
  for (const r of runs) run(gpu, r.list);
  for (const r of runs) {
    // Operands already f16 values: the conversion is exact whatever its rounding.
    const got = await gpu.read(r.bufs.c, r.spec.M * r.spec.N * 4);
    assertClose(got, gemmReference(r.spec, r.a, r.b), 1e-5, r.spec.label);
    for (const buf of Object.values(r.bufs)) buf.destroy();
  }
});

Deno.test("gemm tiled: the default tile follows the GEMM's size", async () => {
  const { tiledTile } = await import("../../src/kernels/gemm/choose.ts");
  const gpu = await getGpu();
  const prev = Deno.env.get("SAE_CACHE_DIR");
  Deno.env.set("SAE_CACHE_DIR", await Deno.makeTempDir()); // no cached choice
  try {
    const spec = (M: number, N: number): GemmSpec => ({
      label: "t",
      M,
      N,
      K: 512,
      transA: false,
      transB: true,
      epilogue: "none",
    });
    assert.deepEqual(tiledTile(gpu, spec(2048, 4096), {}), GEMM_TILE.tiled);
    assert.deepEqual(tiledTile(gpu, spec(1024, 512), {}), GEMM_TILE.tiledSmall);
    assert.deepEqual(tiledTile(gpu, spec(1024, 512), { tiledTile: TILE }), TILE);
  } finally {
    if (prev === undefined) Deno.env.delete("SAE_CACHE_DIR");
    else Deno.env.set("SAE_CACHE_DIR", prev);
  }
});
