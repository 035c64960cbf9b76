import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import {
  type ComputeDispatch,
  type CopyDispatch,
  type Dispatch,
  run,
} from "../../src/gpu/dispatch.ts";
import { featureStatsReference } from "../../src/kernels/reduce.ts";
import { packState } from "../../src/kernels/common.ts";
import {
  allocSparseLists,
  colStatsKernel,
  cscColsKernel,
  cscReference,
  csrReference,
  csrRowsKernel,
  planDispatches,
  sddmmReference,
  sddmmRowsKernels,
  type SparseShape,
  spmmColsKernel,
  spmmColsReference,
  spmmRowsKernel,
  spmmRowsReference,
} from "../../src/kernels/sparse.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

/** f [B, m] ≥ 0 with about `density` of its entries active (> 0); the rest exactly 0. */
function latents(rng: Rng, B: number, m: number, density: number): Float32Array {
  const f = new Float32Array(B * m);
  for (let i = 0; i < f.length; i++) if (rng.uniform() < density) f[i] = 0.1 + rng.uniform();
  return f;
}

// Awkward sizes (no dimension a multiple of the 64-wide workgroups), one with an all-zero f, one
// fully dense, one with m < 64 (idle invocations in the row scan); m % 4 == 0 and not (the lists
// are built a vec4 at a time when it is).
const cases: [SparseShape, number][] = [
  [{ B: 37, m: 133, d: 20 }, 0.05],
  [{ B: 37, m: 133, d: 20 }, 0.5],
  [{ B: 9, m: 70, d: 260 }, 1],
  [{ B: 5, m: 29, d: 4 }, 0],
  [{ B: 70, m: 300, d: 8 }, 0.02],
  [{ B: 6, m: 40, d: 900 }, 0.3], // 225 vec4s per row: 64 invocations of 4, the last partial
  [{ B: 5, m: 24, d: 2308 }, 0.3], // 577 vec4s: 160 invocations of 4 (paper scale is 2304)
  [{ B: 33, m: 516, d: 12 }, 0.1], // m % 4 == 0: the lists are built from vec4 loads
];

/** The lists of one row/column out of a [n, cap] index buffer and its counts. */
function lists(idx: Uint32Array, cnt: Uint32Array, n: number, cap: number): Uint32Array[] {
  return Array.from({ length: n }, (_, i) => idx.slice(i * cap, i * cap + cnt[i]));
}

for (const [s, density] of cases) {
  const name = `B=${s.B} m=${s.m} d=${s.d} density ${density}`;

  Deno.test(`sparse lists (CSR, CSC) match the reference: ${name}`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(s.B * 31 + s.m);
    const f = latents(rng, s.B, s.m, density);
    const fb = gpu.upload("f", f);
    const l = allocSparseLists(gpu, s);
    // Poison the lists: every index and count must be written or unused.
    for (const b of [l.rowIdx, l.rowCnt, l.colIdx, l.colCnt]) {
      gpu.write(b, new Uint32Array(b.size / 4).fill(0xffffffff));
    }
    run(gpu, [await csrRowsKernel(gpu, s, fb, l), await cscColsKernel(gpu, s, fb, l)]);
    const [ri, rc, ci, cc] = await Promise.all(
      [l.rowIdx, l.rowCnt, l.colIdx, l.colCnt].map((b) => gpu.readU32(b)),
    );
    assert.deepEqual(lists(ri, rc, s.B, s.m), csrReference(f, s.B, s.m));
    assert.deepEqual(lists(ci, cc, s.m, s.B), cscReference(f, s.B, s.m));
    for (const b of [fb, l.rowIdx, l.rowCnt, l.colIdx, l.colCnt]) b.destroy();
  });

  Deno.test(`sparse products (spmm rows/cols, sddmm) match the reference: ${name}`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(s.B * 7 + s.d);
    const f = latents(rng, s.B, s.m, density);
    // dpre-like: arbitrary values on f's support, zero elsewhere.
    const F = randArray(rng, s.B * s.m).map((v, i) => f[i] > 0 ? v : 0);
    const wDec = randArray(rng, s.m * s.d);
    const bias = randArray(rng, s.d);
    const dx = randArray(rng, s.B * s.d);
    const st = new Float32Array([0.25, -0.125, 3]);
    const fb = gpu.upload("f", f), Fb = gpu.upload("F", F), wb = gpu.upload("w", wDec);
    const bb = gpu.upload("bias", bias), xb = gpu.upload("dx", dx), sb = gpu.upload("s", st);
    const l = allocSparseLists(gpu, s);
    const xhat = poisoned(gpu, "xhat", s.B * s.d);
    const dW = poisoned(gpu, "dW", s.m * s.d);
    const dpre = poisoned(gpu, "dpre", s.B * s.m);
    run(gpu, [
      await csrRowsKernel(gpu, s, fb, l),
      await cscColsKernel(gpu, s, fb, l),
      await spmmRowsKernel(gpu, "decode", s, { f: fb, lists: l, y: wb, bias: bb, out: xhat }),
      await spmmColsKernel(gpu, "dW", s, { F: Fb, lists: l, y: xb, out: dW }),
      ...await sddmmRowsKernels(gpu, "dF", s, 1, { lists: l, x: xb, y: wb, s: sb, out: dpre }),
    ]);
    const [gx, gw, gd] = await gpu.readMany([{ buf: xhat }, { buf: dW }, { buf: dpre }]);
    assertClose(gx, spmmRowsReference(s, f, wDec, bias), 1e-5, `${name} spmm rows`);
    assertClose(gw, spmmColsReference(s, f, F, dx), 1e-5, `${name} spmm cols`);
    const want = sddmmReference(s, f, dx, wDec, st[1]);
    assertClose(gd, want, 1e-5, `${name} sddmm`);
    // Inactive entries are exactly 0 (not just small): dW_enc's lists skip them.
    for (let i = 0; i < want.length; i++) if (!(f[i] > 0)) assert.equal(gd[i], 0);
    for (const b of [fb, Fb, wb, bb, xb, sb, xhat, dW, dpre]) b.destroy();
  });
}

Deno.test("sparse column statistics (fires, Σf, db_enc, last fired) match the dense ones", async () => {
  const gpu = await getGpu();
  const s = { B: 45, m: 131, d: 4 };
  const rng = new Rng(21);
  const f = latents(rng, s.B, s.m, 0.03);
  const dpre = randArray(rng, s.B * s.m).map((v, i) => f[i] > 0 ? v : 0);
  const l = allocSparseLists(gpu, s);
  const fb = gpu.upload("f", f), db = gpu.upload("dpre", dpre);
  const stats = poisoned(gpu, "stats", 2 * s.m), dbEnc = poisoned(gpu, "db_enc", s.m);
  const last = gpu.upload("last", new Uint32Array(s.m).fill(3));
  const state = gpu.upload(
    "st",
    packState({ step: 9, lr: 0, b1t: 1, b2t: 1, l1_coef: 0, main_phase: 0 }),
  );
  run(gpu, [
    await cscColsKernel(gpu, s, fb, l),
    await colStatsKernel(gpu, s, {
      f: fb,
      dpre: db,
      lists: l,
      stats,
      dbEnc,
      lastFired: last,
      state,
    }),
  ]);
  const [gs, gd] = await gpu.readMany([{ buf: stats }, { buf: dbEnc }]);
  const ref = featureStatsReference(f, s.B, s.m);
  assertClose(gs, ref, 1e-5, "stats");
  const colSum = new Float32Array(s.m);
  for (let r = 0; r < s.B; r++) for (let j = 0; j < s.m; j++) colSum[j] += dpre[r * s.m + j];
  assertClose(gd, colSum, 1e-5, "db_enc");
  const lf = await gpu.readU32(last);
  let never = 0;
  for (let j = 0; j < s.m; j++) {
    assert.equal(lf[j], ref[2 * j] > 0 ? 9 : 3, `last fired ${j}`);
    if (ref[2 * j] === 0) never++;
  }
  assert.ok(never > 0 && never < s.m, "some latents fire, some do not");
});

Deno.test("sparse plan: runs the sparse kernels up to the density limit, the dense ones above", async () => {
  const gpu = await getGpu();
  const s = { B: 10, m: 20, d: 4 };
  const rng = new Rng(5);
  for (const [density, maxDensity, sparse] of [[0.1, 0.3, true], [0.6, 0.3, false]] as const) {
    const f = latents(rng, s.B, s.m, density);
    const active = f.filter((v) => v > 0).length;
    assert.equal(active <= Math.floor(maxDensity * s.B * s.m), sparse, `${active} active`);
    const fb = gpu.upload("f", f);
    const l = allocSparseLists(gpu, s);
    // Stand-ins for the two paths: each writes its own output (a "dense" and a "sparse" CSR
    // count of f), so what ran shows in which output left its poison.
    const outD = allocSparseLists(gpu, s), outS = allocSparseLists(gpu, s);
    for (const o of [outD, outS]) gpu.write(o.rowCnt, new Uint32Array(s.B).fill(7777));
    const dense: ComputeDispatch[] = [await csrRowsKernel(gpu, s, fb, outD)];
    const sp: ComputeDispatch[] = [await csrRowsKernel(gpu, s, fb, outS)];
    const acc = gpu.upload("acc", new Float32Array([5, 6]));
    const p = await planDispatches(gpu, s, l, maxDensity, dense, sp, { acc, index: 1 });
    run(gpu, [await csrRowsKernel(gpu, s, fb, l), p.plan, ...p.dense, ...p.sparse]);
    const args = await gpu.readU32((p.dense[0] as ComputeDispatch).indirect!.buffer);
    const groups = [...dense[0].groups, ...sp[0].groups];
    assert.deepEqual(
      [...args],
      groups.map((g, i) => (i < 3) === !sparse ? g : 0),
      `args for density ${density}`,
    );
    const [cd, cs] = await Promise.all([gpu.readU32(outD.rowCnt), gpu.readU32(outS.rowCnt)]);
    const ran = sparse ? cs : cd, skipped = sparse ? cd : cs;
    assert.equal(ran.reduce((a, b) => a + b, 0), active);
    assert.ok(skipped.every((v) => v === 7777), "the path not taken must not run");
    assert.deepEqual([...(await gpu.read(acc)).slice(0, 2)], [5, sparse ? 7 : 6], "counted");
  }
});

Deno.test("sparse plan: a copy among the planned items runs whichever path is taken", async () => {
  const gpu = await getGpu();
  const s = { B: 10, m: 20, d: 4 };
  const f = latents(new Rng(8), s.B, s.m, 0.1);
  const fb = gpu.upload("f", f);
  const l = allocSparseLists(gpu, s), outD = allocSparseLists(gpu, s);
  gpu.write(outD.rowCnt, new Uint32Array(s.B).fill(7777));
  const src = gpu.upload("copy src", new Float32Array(64).map((_, i) => i + 0.5));
  const tex = gpu.device.createTexture({
    size: [16, 1],
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST | GPUTextureUsage.COPY_SRC,
  });
  const copy: CopyDispatch = {
    label: "pack copy",
    copy: [{ src: { buffer: src, bytesPerRow: 256 }, dst: { texture: tex }, size: [16, 1] }],
  };
  const dense: Dispatch[] = [copy, await csrRowsKernel(gpu, s, fb, outD)];
  const acc = gpu.upload("acc", new Float32Array([0, 0]));
  const p = await planDispatches(gpu, s, l, 0.3, dense, [], { acc, index: 1 });
  assert.equal(p.dense[0], copy, "the copy is passed through as it is");
  assert.ok((p.dense[1] as ComputeDispatch).indirect, "the kernel is dispatched indirectly");
  run(gpu, [await csrRowsKernel(gpu, s, fb, l), p.plan, ...p.dense]);
  // Density 0.1 ≤ 0.3: sparse taken, so the dense kernel is skipped but the copy ran.
  assert.ok((await gpu.readU32(outD.rowCnt)).every((v) => v === 7777), "dense kernel skipped");
  const back = gpu.buffer("copy back", 256);
  const enc = gpu.device.createCommandEncoder();
  enc.copyTextureToBuffer({ texture: tex }, { buffer: back, bytesPerRow: 256 }, [16, 1]);
  gpu.submit([enc.finish()]);
  assert.deepEqual([...await gpu.read(back)], [...await gpu.read(src)], "the copy ran");
});
