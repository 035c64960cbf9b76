import gemmWgsl from "../../wgsl/gemm.wgsl" with { type: "text" };
import { forcedAdapterClass } from "../../src/gpu/adapter.ts";
import { createGpu, getGpu } from "../../src/gpu/device.ts";
import { type Dispatch, kernel, run } from "../../src/gpu/dispatch.ts";
import {
  type Epilogue,
  gemm,
  gemmDispatches,
  gemmReference,
  type GemmSpec,
  vec4Ok,
} from "../../src/kernels/gemm/mod.ts";
import { encodeParams, PARAMS_FIELDS } from "../../src/kernels/gemm/params.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";
import { checkGemm } from "../helpers/gemm.ts";
import assert, { rejects } from "node:assert/strict";

/** FLOPs of a dispatch list, from the costs its dispatches carry. */
function flopsOf(list: Dispatch[]): number {
  return list.reduce((sum, d) => sum + d.cost!.flops, 0);
}

const cases: [string, boolean, boolean, Epilogue][] = [
  ["NT bias_relu (encoder)", false, true, "bias_relu"],
  ["NN bias (decoder)", false, false, "bias"],
  ["NT relu_grad (dF)", false, true, "relu_grad"],
  ["TN none (weight grads)", true, false, "none"],
  ["TT none", true, true, "none"],
  ["NT bias_gelu (GPT-2 MLP in)", false, true, "bias_gelu"],
  ["TN bias_accumulate (residual branch)", true, false, "bias_accumulate"],
];

// Awkward sizes: none a multiple of the 64x64x16 tile; one smaller than a tile; one with K < BK.
const shapes = [[37, 53, 71], [5, 3, 130], [130, 67, 9], [1, 1, 1]];

const check = checkGemm;

/**
 * A test of paths only CPU adapters take, forced by name (vec4, scalar, texture, broadcast): the
 * same code whatever the class, so the SAE_ADAPTER_CLASS=gpu pass of CI (`deno task
 * test:gpu-paths`) leaves it to the first pass and runs the tests that take the default path.
 */
function cpuPathTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: forcedAdapterClass() === "gpu", fn });
}

for (const [name, transA, transB, epilogue] of cases) {
  Deno.test(`gemm ${name} matches the reference on awkward sizes`, async () => {
    for (const shape of shapes) await check(name, shape, transA, transB, epilogue);
  });
}

// Shapes the vec4 path takes (vec4 dimensions multiples of 4), none a multiple of its 64x64 tile;
// 4x4x4 is smaller than one invocation's 8x8 block; 36x52x1028 has a long K.
const vec4Shapes = [[36, 52, 68], [4, 4, 4], [132, 68, 8], [8, 200, 12], [36, 52, 1028]];
// Shapes where only some dimensions are multiples of 4: which path runs depends on the layout.
const mixedShapes = [[37, 52, 72], [36, 53, 72], [36, 52, 71], [1, 4, 4]];

for (const [name, transA, transB, epilogue] of cases) {
  Deno.test(`gemm ${name} vec4 path matches the reference`, async () => {
    for (const shape of vec4Shapes) {
      const [M, N, K] = shape;
      if (!vec4Ok({ M, N, K, transA, transB })) throw new Error(`${shape} should take vec4`);
      await check(name, shape, transA, transB, epilogue);
    }
  });

  Deno.test(`gemm ${name} on sizes divisible by 4 in some dimensions only`, async () => {
    for (const shape of mixedShapes) await check(name, shape, transA, transB, epilogue);
  });

  cpuPathTest(`gemm ${name} vec4 tile variants and the forced scalar path agree`, async () => {
    for (const V_RG of [1, 2] as const) {
      for (const V_CG of [1, 2] as const) {
        const tile = { V_WG_X: 4, V_WG_Y: 2, V_RG, V_CG };
        await check(name, [36, 52, 68], transA, transB, epilogue, { path: "vec4", tile });
      }
    }
    await check(name, [36, 52, 68], transA, transB, epilogue, { path: "scalar" });
  });

  cpuPathTest(`gemm ${name} texture path matches the reference`, async () => {
    for (const shape of vec4Shapes) {
      await check(name, shape, transA, transB, epilogue, { path: "texture" });
    }
    // Packed textures only 16 or 4 texels wide: matrix rows wrap across texture rows.
    for (const texWidth of [16, 4]) {
      await check(name, [36, 52, 68], transA, transB, epilogue, { path: "texture", texWidth });
    }
    // Tiles of 4-32 rows by 1-4 column groups, none dividing 36x52 evenly.
    for (const [T_R, T_CG] of [[4, 1], [8, 3], [12, 2], [32, 4]]) {
      const texTile = { T_WG: 4, T_R, T_CG };
      await check(name, [36, 52, 68], transA, transB, epilogue, { path: "texture", texTile });
    }
  });

  cpuPathTest(`gemm ${name} broadcast path matches the reference`, async () => {
    // 36x52x1028: K/4 = 257 texels in 2 dispatches of 5 stages of 29 (padded to 290); 132x68x8
    // and 8x200x12
    // narrower in one dimension than a workgroup's lanes (the shared rows swap to B' for 132x68).
    for (const shape of vec4Shapes) {
      await check(name, shape, transA, transB, epilogue, { path: "bcast" });
    }
    // Tiny tiles: stages of 8 texels, 2 per dispatch (K = 92: 23 texels, 3 stages in 2
    // dispatches, padded to 32: the last stage all zeros), 3 shared rows, 8 lanes; lanes along N
    // (36x52) and along M (52x12, N narrower than M).
    const bcTile = { T: 8, R: 3, KC4: 8, U: 16 };
    for (const shape of [[36, 52, 92], [52, 12, 92]]) {
      await check(name, shape, transA, transB, epilogue, { path: "bcast", bcTile });
    }
    // Packed textures 16 texels wide: packed rows wrap across texture rows.
    await check(name, [36, 52, 68], transA, transB, epilogue, { path: "bcast", texWidth: 16 });
  });

  Deno.test(`gemm ${name} f16 operand storage: f32 accuracy on the rounded operands`, async () => {
    for (const shape of [[36, 52, 68], [132, 68, 8]]) {
      await check(name, shape, transA, transB, epilogue, { f16: true });
    }
    await check(name, [36, 52, 68], transA, transB, epilogue, { f16: true, texWidth: 16 });
    // The broadcast path with f16 operands (by default only GEMMs of 2^27 FLOPs and up take it).
    await check(name, [36, 52, 68], transA, transB, epilogue, { f16: true, path: "bcast" });
  });
}

for (const path of ["texture", "bcast"] as const) {
  cpuPathTest(
    `gemm ${path} path: GEMMs sharing the packed textures, run in any order`,
    async () => {
      // Every GEMM packs into the same scratch textures (a later, larger one grows them): each
      // dispatch list still computes its own product, whatever ran in between.
      const gpu = await getGpu();
      const rng = new Rng(11);
      const shapes = [[8, 12, 16], [64, 40, 132], [20, 8, 4]];
      // K = 132: 33 texels: 3 stages of 11 (2 would need padding; 3 divide evenly), one per
      // dispatch (at most 16 texels each).
      const bcTile = { T: 8, R: 3, KC4: 32, U: 16 };
      const runs = [];
      for (const [M, N, K] of shapes) {
        const spec: GemmSpec = {
          label: `shared ${M}`,
          M,
          N,
          K,
          transA: true,
          transB: false,
          epilogue: "none",
        };
        const a = randArray(rng, M * K);
        const b = randArray(rng, K * N);
        const bufs = { a: gpu.upload("a", a), b: gpu.upload("b", b), c: poisoned(gpu, "c", M * N) };
        const list = await gemmDispatches(gpu, spec, bufs, { path, bcTile });
        // pack A, pack B, then one product (the broadcast path: one per U texels of K, 3 here).
        const expected = path === "bcast" && K > 128 ? 5 : 3;
        if (list.length !== expected) {
          throw new Error(`expected ${expected} dispatches (packs, products); got ${list.length}`);
        }
        runs.push({ spec, a, b, bufs, list });
      }
      for (const r of [...runs].reverse()) run(gpu, r.list);
      for (const r of runs) run(gpu, r.list);
      for (const r of runs) {
        const got = await gpu.read(r.bufs.c, r.spec.M * r.spec.N * 4);
        assertClose(got, gemmReference(r.spec, r.a, r.b), 1e-5, r.spec.label);
        for (const buf of Object.values(r.bufs)) buf.destroy();
      }
    },
  );
}

cpuPathTest("gemm packs densely stored operands by copies, others by kernels, alike", async () => {
  const gpu = await getGpu();
  const rng = new Rng(17);
  const [M, N, K] = [36, 52, 68];
  const a = randArray(rng, M * K), b = randArray(rng, K * N), e = randArray(rng, N);
  // Which operands a copy packs: the texture path packs both as stored; the broadcast path packs
  // along K, so only an operand stored [rows, K] (A not transposed, B transposed) is a copy.
  const cases = [
    { path: "texture", transA: true, transB: false, copies: [true, true] },
    { path: "bcast", transA: false, transB: true, copies: [true, true] },
    { path: "bcast", transA: true, transB: false, copies: [false, false] },
    { path: "bcast", transA: false, transB: false, copies: [true, false] },
  ] as const;
  for (const c of cases) {
    const spec: GemmSpec = { label: `copies ${c.path}`, M, N, K, ...c, epilogue: "bias" };
    const what = `${c.path} ${c.transA ? "T" : "N"}${c.transB ? "T" : "N"}`;
    for (const packCopies of [true, false]) {
      const bufs = {
        a: gpu.upload("a", a),
        b: gpu.upload("b", b),
        c: poisoned(gpu, "c", M * N),
        e: gpu.upload("e", e),
      };
      const list = await gemmDispatches(gpu, spec, bufs, { path: c.path, packCopies });
      const got = list.slice(0, 2).map((d) => d.copy !== undefined);
      const want = packCopies ? c.copies : [false, false];
      assert.deepEqual(got, [...want], `${what} packCopies ${packCopies}: which packs are copies`);
      run(gpu, list);
      const out = await gpu.read(bufs.c, M * N * 4);
      assertClose(out, gemmReference(spec, a, b, e), 1e-5, `${what} packCopies ${packCopies}`);
      for (const buf of Object.values(bufs)) buf.destroy();
    }
  }
});

Deno.test("gemm refuses the vec4 path on a shape it cannot take", async () => {
  const gpu = await getGpu();
  const spec: GemmSpec = {
    label: "bad",
    M: 4,
    N: 4,
    K: 5,
    transA: false,
    transB: true,
    epilogue: "none",
  };
  const buf = gpu.buffer("x", 128);
  let threw = false;
  try {
    await gemm(gpu, spec, { a: buf, b: buf, c: buf }, { path: "vec4" });
  } catch {
    threw = true;
  }
  if (!threw) throw new Error("expected an error");
  // Texture tiles whose rows are not a multiple of 4 (or too many column groups) are refused.
  const ok = { ...spec, K: 8 };
  for (const texTile of [{ T_WG: 8, T_R: 6, T_CG: 1 }, { T_WG: 8, T_R: 8, T_CG: 5 }]) {
    await rejects(
      () => gemmDispatches(gpu, ok, { a: buf, b: buf, c: buf }, { path: "texture", texTile }),
      /out of range/,
    );
  }
  buf.destroy();
});

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

for (const path of ["texture", "bcast"] as const) {
  cpuPathTest(
    `gemm ${path} path over split views (leading dimensions, offsets, K parts)`,
    async () => {
      // A binding limit of 2 KiB splits every operand: each part packs views that start mid-buffer
      // with the full matrices' leading dimensions, and parts along K accumulate (into C's values
      // before, for bias_accumulate: the first part adds the bias and C, the later ones add).
      const gpu = await createGpu({ maxStorageBufferBindingSize: 2048 });
      const [M, N, K] = [36, 52, 68];
      for (
        const [name, transA, transB] of [["NN", 0, 0], ["NT", 0, 1], ["TN", 1, 0], ["TT", 1, 1]]
      ) {
        for (const epilogue of ["none", "bias", "bias_accumulate"] as const) {
          const rng = new Rng(M + N + K);
          const spec: GemmSpec = {
            label: `split ${name}`,
            M,
            N,
            K,
            transA: !!transA,
            transB: !!transB,
            epilogue,
          };
          const a = randArray(rng, M * K);
          const b = randArray(rng, K * N);
          const e = randArray(rng, N);
          const cIn = epilogue === "bias_accumulate" ? randArray(rng, M * N) : undefined;
          const bufs = {
            a: gpu.upload("a", a),
            b: gpu.upload("b", b),
            c: cIn ? gpu.upload("c", cIn) : poisoned(gpu, "c", M * N),
            e: gpu.upload("e", e),
          };
          const list = await gemmDispatches(gpu, spec, bufs, { path });
          if (list.length < 30) {
            throw new Error(`expected many parts, got ${list.length} dispatches`);
          }
          assert.equal(flopsOf(list), 2 * M * N * K, "the parts' FLOPs add up to the GEMM's");
          run(gpu, list);
          const got = await gpu.read(bufs.c, M * N * 4);
          assertClose(
            got,
            gemmReference(spec, a, b, e, undefined, cIn),
            1e-5,
            `${spec.label} ${epilogue}`,
          );
          for (const buf of Object.values(bufs)) buf.destroy();
        }
      }
    },
  );
}

Deno.test("gemm Params: encoded by field name as wgsl/gemm.wgsl lays the struct out", async () => {
  // The struct's fields, in order, are the encoder's.
  const struct = /struct Params \{[\s\S]*?\n\}/.exec(gemmWgsl)![0];
  const names = [...struct.matchAll(/^\s+(\w+): u32,/gm)].map((m) => m[1]);
  assert.deepEqual(names, [...PARAMS_FIELDS]);
  // A kernel reads each field by name from an encoded buffer of distinct values.
  const gpu = await getGpu();
  const code = [
    struct,
    "@group(0) @binding(0) var<uniform> p: Params;",
    "@group(0) @binding(1) var<storage, read_write> out: array<u32>;",
    "@compute @workgroup_size(1)",
    "fn main() {",
    ...PARAMS_FIELDS.map((f, i) => `  out[${i}u] = p.${f};`),
    "}",
  ].join("\n");
  const values = Object.fromEntries(
    PARAMS_FIELDS.filter((f) => f !== "pad").map((f, i) => [f, 1000 + 7 * i]),
  );
  const params = gpu.uniform("params", encodeParams(values).buffer);
  const out = poisoned(gpu, "out", PARAMS_FIELDS.length);
  run(gpu, [
    await kernel(gpu, { label: "params", code, buffers: [params, out], groups: [1, 1, 1] }),
  ]);
  const got = await gpu.readU32(out, 4 * PARAMS_FIELDS.length);
  assert.deepEqual([...got], PARAMS_FIELDS.map((f) => values[f] ?? 0));
  params.destroy();
  out.destroy();
});

Deno.test("gemm dispatches carry their cost: products 2·M·N·K FLOPs on every path, packs bytes", async () => {
  const gpu = await getGpu();
  // K = 1028: the broadcast path runs 2 dispatches of 5 stages of 29 texels (the last padded).
  const [M, N, K] = [36, 52, 1028];
  const bufs = {
    a: gpu.buffer("a", 4 * M * K),
    b: gpu.buffer("b", 4 * K * N),
    c: gpu.buffer("c", 4 * M * N),
    e: gpu.buffer("e", 4 * N),
  };
  for (const transA of [false, true]) {
    const spec: GemmSpec = { label: "cost", M, N, K, transA, transB: true, epilogue: "bias" };
    for (const path of ["tiled", "scalar", "vec4", "texture", "bcast"] as const) {
      const what = `${path} ${transA ? "TT" : "NT"}`;
      const list = await gemmDispatches(gpu, spec, bufs, { path });
      assert.ok(list.every((d) => d.cost), `${what}: every dispatch has a cost`);
      assert.equal(flopsOf(list), 2 * M * N * K, `${what}: FLOPs`);
      const products = list.filter((d) => d.label === "cost");
      const packs = list.filter((d) => d.label !== "cost");
      assert.equal(packs.length, ["tiled", "scalar", "vec4"].includes(path) ? 0 : 2, what);
      // A product reads A and B (f32 here) and writes C at least once; its bias is read too.
      const bytes = products.reduce((sum, d) => sum + d.cost!.bytes, 0);
      assert.ok(bytes >= 4 * (M * K + K * N + M * N + N), `${what}: product bytes ${bytes}`);
      // A pack reads its operand and writes it into a texture: twice the operand's bytes at least.
      for (const [i, elems] of [[0, M * K], [1, K * N]]) {
        if (!packs[i]) continue;
        assert.equal(packs[i].cost!.flops, 0, what);
        assert.ok(packs[i].cost!.bytes >= 8 * elems, `${what}: ${packs[i].label} bytes`);
      }
    }
  }
  for (const buf of Object.values(bufs)) buf.destroy();
});
