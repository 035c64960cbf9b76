import assert from "node:assert/strict";
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { hasSubgroups, withCollectives } from "../../src/kernels/collectives.ts";
import { gemmDispatches, gemmReference } from "../../src/kernels/gemm/mod.ts";
import { allocSparseLists, csrReference } from "../../src/kernels/sparse.ts";
import {
  allocAuxKScratch,
  allocBatchTopKScratch,
  allocTopKLists,
  AUX_INDEX,
  auxGradKernel,
  type AuxKSpec,
  auxLossDispatches,
  auxLossReference,
  auxPlanDispatches,
  batchKeep,
  batchThresholdKernel,
  batchTopKDispatches,
  batchTopKReference,
  deadMaskKernel,
  deadMaskReference,
  rowTopKKernel,
  type RowTopKOptions,
  rowTopKReference,
  type RowTopKSpec,
  SEL_MINPOS,
  THETA_INIT,
  type ThetaRule,
  thetaSpreadKernel,
  thetaUpdateReference,
  topkBackwardReference,
  topkListsToCsrKernel,
} from "../../src/kernels/topk.ts";
import topkSrc from "../../wgsl/topk.wgsl" with { type: "text" };
import { Rng } from "../../src/rng.ts";
import { packState } from "../../src/kernels/common.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";
import { assertOnlyLacksSubgroups } from "../helpers/subgroups.ts";

/** The collectives each kernel test runs with: the fallback, and subgroups where the device has them. */
const MODES = [false, ...(hasSubgroups(await getGpu()) ? [true] : [])];

/** The row selection's forms: a workgroup per row (each collectives mode), an invocation per row. */
const ROW_MODES: RowTopKOptions[] = [
  ...MODES.map((subgroups) => ({ subgroups, lane: false })),
  { lane: true },
];

function rowMode(o: RowTopKOptions): string {
  return o.lane ? " (lane per row)" : o.subgroups ? " (subgroups)" : "";
}

/**
 * pre [B, m] with many ties: values on a grid of `levels` steps in [lo, hi) (levels 0: continuous),
 * and some −0 among the zeros (ranked as +0).
 */
function preacts(rng: Rng, n: number, levels: number, lo = -1, hi = 1): Float32Array {
  return new Float32Array(n).map(() => {
    const u = rng.uniform();
    const v = levels ? lo + (hi - lo) * Math.floor(u * levels) / levels : lo + (hi - lo) * u;
    return v === 0 && rng.uniform() < 0.5 ? -0 : v;
  });
}

/** Exact equality of f32 arrays (−0 equals +0; NaN, e.g. an unwritten poisoned entry, never). */
function assertSame(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  assert.ok(got.length >= want.length, `${what}: ${got.length} values, want ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) throw new Error(`${what}: at ${i} got ${got[i]}, want ${want[i]}`);
  }
}

/** Poisoned lists: every index, value and count must be written. */
function poisonLists(gpu: Gpu, B: number, k: number) {
  const l = allocTopKLists(gpu, B, k);
  gpu.write(l.idx, new Uint32Array(B * k).fill(0xdeadbeef));
  gpu.write(l.val, new Float32Array(B * k).fill(NaN));
  gpu.write(l.cnt, new Uint32Array(B).fill(0xdeadbeef));
  return l;
}

async function runRowTopK(
  gpu: Gpu,
  s: RowTopKSpec,
  pre: Float32Array,
  mask?: Uint32Array,
  opts: RowTopKOptions = { lane: false },
) {
  const preB = gpu.upload("pre", pre);
  const f = poisoned(gpu, "f", s.B * s.m);
  const lists = poisonLists(gpu, s.B, s.k);
  const maskB = mask ? gpu.upload("mask", mask) : undefined;
  run(gpu, await rowTopKKernel(gpu, s, { pre: preB, f, lists, mask: maskB }, opts));
  const [gf, gi, gv, gc] = await gpu.readMany([
    { buf: f },
    { buf: lists.idx },
    { buf: lists.val },
    { buf: lists.cnt },
  ]);
  const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (const x of [preB, f, lists.idx, lists.val, lists.cnt, maskB]) x?.destroy();
  return { f: gf, idx: u32(gi), val: gv, cnt: u32(gc) };
}

function assertRowTopK(
  got: Awaited<ReturnType<typeof runRowTopK>>,
  pre: Float32Array,
  s: RowTopKSpec,
  name: string,
  mask?: Uint32Array,
) {
  const want = rowTopKReference(pre, s, mask);
  assertSame(got.f, want.f, `${name} f`);
  assert.deepEqual([...got.cnt.slice(0, s.B)], [...want.cnt], `${name} counts`);
  assert.deepEqual([...got.idx.slice(0, s.B * s.k)], [...want.idx], `${name} indices`);
  assertSame(got.val, want.val, `${name} values`);
}

// Awkward sizes (m not a multiple of 4 or of the workgroup), heavy ties, k = 1, k = m, rows with
// fewer than k positive entries, k at its limit, one row wider than 2^16 / WG iterations per lane.
const rowCases: [RowTopKSpec, number, string][] = [
  [{ B: 7, m: 133, k: 5 }, 6, "ties on a 6-level grid"],
  [{ B: 9, m: 70, k: 1 }, 3, "k = 1 with ties"],
  [{ B: 5, m: 29, k: 29 }, 4, "k = m: keep all"],
  [{ B: 6, m: 101, k: 40 }, 0, "mostly negative rows (fewer than k positive)"],
  [{ B: 3, m: 1000, k: 512 }, 10, "k = 512"],
  [{ B: 2, m: 2500, k: 2048 }, 40, "k = 2048"],
  [{ B: 3, m: 20011, k: 7 }, 0, "a row of 20011 (313 entries per lane)"],
  [{ B: 70, m: 300, k: 17 }, 0, "70 rows, continuous values"],
  [{ B: 2, m: 5003, k: 33 }, 2, "two values only: the boundary cuts a bin of thousands of ties"],
];

for (
  const [[s, levels, what], mode] of rowCases.flatMap((c) => ROW_MODES.map((m) => [c, m] as const))
) {
  const name = `B=${s.B} m=${s.m} k=${s.k}: ${what}${rowMode(mode)}`;
  Deno.test(`topk rows match the reference: ${name}`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(s.B * 1009 + s.m);
    const hi = what.startsWith("mostly negative") ? 0.1 : 1;
    const pre = preacts(rng, s.B * s.m, levels, -1, hi);
    const got = await runRowTopK(gpu, s, pre, undefined, mode);
    assertRowTopK(got, pre, s, name);
    if (what.startsWith("mostly negative")) {
      // Kept entries that are not positive are listed with value 0 (SAELens ReLUs the selected).
      assert.ok(got.val.slice(0, s.B * s.k).some((v) => v === 0), "some kept values are 0");
    }
  });
}

Deno.test("topk rows: ReLU before ranking (dictionary_learning's AuxK) and raw kept values (SAELens' AuxK)", async () => {
  const gpu = await getGpu();
  const rng = new Rng(77);
  for (const opt of [{ reluBefore: true }, { reluAfter: false }]) {
    const s: RowTopKSpec = { B: 11, m: 90, k: 12, ...opt };
    const pre = preacts(rng, s.B * s.m, 5, -1, 0.3);
    for (const mode of ROW_MODES) {
      const name = JSON.stringify(opt) + rowMode(mode);
      assertRowTopK(await runRowTopK(gpu, s, pre, undefined, mode), pre, s, name);
    }
  }
});

Deno.test("topk rows with a mask: only candidates kept; fewer candidates than k; none", async () => {
  const gpu = await getGpu();
  const rng = new Rng(5);
  const s: RowTopKSpec = { B: 13, m: 150, k: 20, reluAfter: false };
  const pre = preacts(rng, s.B * s.m, 7);
  for (const nCand of [60, 9, 0]) {
    const mask = new Uint32Array(s.m);
    for (let c = 0; c < nCand;) {
      const j = rng.nextU32() % s.m;
      if (!mask[j]) (mask[j] = 1 + (rng.nextU32() % 3), c++);
    }
    for (const mode of ROW_MODES) {
      const got = await runRowTopK(gpu, s, pre, mask, mode);
      assertRowTopK(got, pre, s, `${nCand} candidates${rowMode(mode)}`, mask);
      assert.ok([...got.cnt.slice(0, s.B)].every((c) => c === Math.min(s.k, nCand)));
    }
  }
});

Deno.test("topk rows split over row ranges (binding limit of a few KiB) match the whole-buffer run", async () => {
  const gpu = await createGpu({ maxStorageBufferBindingSize: 4096 });
  const s: RowTopKSpec = { B: 23, m: 131, k: 9 }; // 12 KiB of pre: 3 parts of 7 rows
  const pre = preacts(new Rng(8), s.B * s.m, 5);
  const preB = gpu.upload("pre", pre);
  const f = poisoned(gpu, "f", s.B * s.m);
  const lists = poisonLists(gpu, s.B, s.k);
  for (const lane of [false, true]) {
    gpu.write(f, new Float32Array(s.B * s.m).fill(NaN));
    const parts = await rowTopKKernel(gpu, s, { pre: preB, f, lists }, { lane });
    assert.ok(parts.length >= 3, `${parts.length} parts`);
    run(gpu, parts);
    const [gf, gi, gv, gc] = await gpu.readMany([
      { buf: f },
      { buf: lists.idx },
      { buf: lists.val },
      { buf: lists.cnt },
    ]);
    const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
    assertRowTopK({ f: gf, idx: u32(gi), val: gv, cnt: u32(gc) }, pre, s, `split, lane ${lane}`);
  }
  gpu.destroy();
});

Deno.test("topk lists as the sparse path's CSR: positive entries equal csrRowsKernel's lists of f", async () => {
  const gpu = await getGpu();
  const s = { B: 12, m: 77, k: 10 };
  const pre = preacts(new Rng(3), s.B * s.m, 6, -1, 0.4);
  const preB = gpu.upload("pre", pre);
  const f = poisoned(gpu, "f", s.B * s.m);
  const lists = poisonLists(gpu, s.B, s.k);
  const csr = allocSparseLists(gpu, { ...s, d: 4 });
  const all = allocSparseLists(gpu, { ...s, d: 4 });
  for (const c of [csr, all]) gpu.write(c.rowCnt, new Uint32Array(s.B).fill(0xdeadbeef));
  run(gpu, [
    ...await rowTopKKernel(gpu, s, { pre: preB, f, lists }),
    await topkListsToCsrKernel(gpu, s, lists, csr, true),
    await topkListsToCsrKernel(gpu, s, lists, all, false),
  ]);
  const want = rowTopKReference(pre, s);
  const rows = async (c: typeof csr) => {
    const [idx, cnt] = await Promise.all([gpu.readU32(c.rowIdx), gpu.readU32(c.rowCnt)]);
    return Array.from({ length: s.B }, (_, r) => [...idx.slice(r * s.m, r * s.m + cnt[r])]);
  };
  assert.deepEqual(await rows(csr), csrReference(want.f, s.B, s.m).map((r) => [...r]));
  const allRows = await rows(all);
  for (let r = 0; r < s.B; r++) {
    assert.deepEqual(allRows[r], [...want.idx.slice(r * s.k, (r + 1) * s.k)], `row ${r}`);
  }
  assert.ok(allRows.some((r, i) => r.length > csrReference(want.f, s.B, s.m)[i].length));
});

Deno.test("topk WGSL with subgroup collectives parses; only the capability is missing here", async () => {
  if (MODES.includes(true)) return; // it runs in the tests above instead
  await assertOnlyLacksSubgroups(withCollectives(topkSrc, true));
});

/** Runs BatchTopK on `pre`; f and the smallest positive kept value (null: none) as read back. */
async function runBatchTopK(
  gpu: Gpu,
  s: { B: number; m: number; k: number },
  pre: Float32Array,
  opts: RowTopKOptions = { lane: false },
) {
  const preB = gpu.upload("pre", pre);
  const f = poisoned(gpu, "f", s.B * s.m);
  const scratch = allocBatchTopKScratch(gpu, s.B);
  gpu.write(scratch.sel, new Uint32Array(264).fill(0xdeadbeef)); // bt_init must reset it
  const list = await batchTopKDispatches(gpu, s, { pre: preB, f, scratch }, opts);
  run(gpu, list);
  const [gf, sel] = await gpu.readMany([{ buf: f }, { buf: scratch.sel }]);
  const bits = new Uint32Array(sel.buffer, sel.byteOffset, sel.length)[SEL_MINPOS];
  for (const x of [preB, f, scratch.sel, scratch.ties]) x.destroy();
  return { f: gf, minPositive: bits === 0xffffffff ? null : sel[SEL_MINPOS], parts: list.length };
}

// floor(k·B) over the whole batch: ties straddling rows (a row with a partial share), KB = 1,
// KB = B·m, fewer positive entries than KB (zeros kept, by index), a fractional k.
const batchCases: [{ B: number; m: number; k: number }, number, number, string][] = [
  [{ B: 9, m: 133, k: 3.5 }, 6, 1, "ties straddling rows, k = 3.5"],
  [{ B: 5, m: 70, k: 0.2 }, 0, 1, "KB = 1"],
  [{ B: 4, m: 29, k: 29 }, 4, 1, "KB = B·m: keep all"],
  [{ B: 8, m: 101, k: 30 }, 0, 0.05, "fewer positive entries than KB"],
  [{ B: 40, m: 257, k: 12 }, 3, 1, "three values: thousands of ties at one value"],
  [{ B: 70, m: 300, k: 7 }, 0, 1, "70 rows, continuous"],
];

for (
  const [[s, levels, hi, what], mode] of batchCases.flatMap((c) =>
    ROW_MODES.map((m) => [c, m] as const)
  )
) {
  const name = `B=${s.B} m=${s.m} k=${s.k}: ${what}${rowMode(mode)}`;
  Deno.test(`batchtopk matches the reference: ${name}`, async () => {
    const gpu = await getGpu();
    const pre = preacts(new Rng(s.B * 31 + s.m), s.B * s.m, levels, -1, hi);
    const got = await runBatchTopK(gpu, s, pre, mode);
    const want = batchTopKReference(pre, s);
    assertSame(got.f, want.f, `${name} f`);
    assert.equal(got.minPositive, want.minPositive, `${name} smallest positive kept`);
    const nz = want.f.filter((v) => v > 0).length;
    assert.ok(nz <= batchKeep(s.k, s.B), "at most floor(k·B) positive");
  });
}

Deno.test("batchtopk split over row ranges matches the reference", async () => {
  const gpu = await createGpu({ maxStorageBufferBindingSize: 4096 });
  const s = { B: 23, m: 131, k: 4.25 };
  const pre = preacts(new Rng(9), s.B * s.m, 5);
  for (const lane of [false, true]) {
    const got = await runBatchTopK(gpu, s, pre, { lane });
    assert.ok(got.parts > 12 + 6, `${got.parts} dispatches: the row kernels are split`);
    const want = batchTopKReference(pre, s);
    assertSame(got.f, want.f, `split f, lane ${lane}`);
    assert.equal(got.minPositive, want.minPositive);
  }
  gpu.destroy();
});

Deno.test("batchtopk threshold: SAELens' and dictionary_learning's updates over several steps", async () => {
  const gpu = await getGpu();
  const s = { B: 6, m: 50, k: 3 };
  const rules: ThetaRule[] = [
    { kind: "saelens", lr: 0.01 },
    { kind: "saelens", lr: 0.3 },
    { kind: "dictionary_learning", beta: 0.9, startStep: 2 },
  ];
  const rng = new Rng(12);
  for (const rule of rules) {
    const preB = gpu.buffer("pre", s.B * s.m * 4), f = gpu.buffer("f", s.B * s.m * 4);
    const scratch = allocBatchTopKScratch(gpu, s.B);
    const theta = gpu.upload("theta", new Float32Array([7, THETA_INIT[rule.kind], 7]));
    const state = gpu.buffer("state", 32);
    const list = [
      ...await batchTopKDispatches(gpu, s, { pre: preB, f, scratch }),
      await batchThresholdKernel(gpu, rule, { scratch, theta: { buf: theta, index: 1 }, state }),
    ];
    let want = THETA_INIT[rule.kind];
    for (let step = 1; step <= 7; step++) {
      // Step 5 keeps nothing positive: SAELens skips it, dictionary_learning folds in a 0.
      const pre = preacts(rng, s.B * s.m, 0, step === 5 ? -1 : -0.5, step === 5 ? -0.1 : 1);
      gpu.write(preB, pre);
      gpu.write(state, packState({ step, lr: 0, b1t: 1, b2t: 1, l1_coef: 0, main_phase: 0 }));
      run(gpu, list);
      want = thetaUpdateReference(rule, want, batchTopKReference(pre, s).minPositive, step);
      const got = await gpu.read(theta);
      assertClose([got[1]], [want], 1e-6, `${rule.kind} step ${step}`);
      assert.deepEqual([got[0], got[2]], [7, 7], "neighbouring words untouched");
    }
    assert.notEqual(want, THETA_INIT[rule.kind], "θ moved");
    for (const x of [preB, f, scratch.sel, scratch.ties, theta, state]) x.destroy();
  }
});

Deno.test("auxk dead mask: st.step − last fired ≥ dead steps, and the count", async () => {
  const gpu = await getGpu();
  const m = 301, step = 500, deadSteps = 40;
  const rng = new Rng(4);
  const lastFired = new Uint32Array(m).map(() =>
    rng.nextU32() % 2 ? step - (rng.nextU32() % 80) : 0
  );
  const dead = gpu.upload("dead", new Uint32Array(m).fill(7));
  const aux = poisoned(gpu, "aux", 4);
  const state = gpu.upload(
    "st",
    packState({ step, lr: 0, b1t: 1, b2t: 1, l1_coef: 0, main_phase: 0 }),
  );
  run(gpu, [
    await deadMaskKernel(gpu, m, deadSteps, {
      lastFired: gpu.upload("last", lastFired),
      state,
      dead,
      aux,
    }),
  ]);
  const want = deadMaskReference(lastFired, step, deadSteps);
  assert.deepEqual([...await gpu.readU32(dead)], [...want.dead]);
  assert.equal((await gpu.read(aux))[AUX_INDEX.numDead], want.numDead);
  assert.ok(want.numDead > 0 && want.numDead < m);
});

/**
 * The AuxK loss of a batch as a function of pre, the selection held fixed (the loss is smooth in the
 * selected pre-activations): SAELens' calculate_topk_aux_loss / dictionary_learning's
 * get_auxiliary_loss written out in f64, for finite differences.
 */
function auxLossOfPre(
  s: AuxKSpec,
  pre: Float64Array,
  sel: { idx: Uint32Array; cnt: Uint32Array },
  m: number,
  wDec: Float32Array,
  e: Float64Array,
  scale: number,
  denom: number,
  reluBefore: boolean,
): number {
  let l2 = 0;
  for (let r = 0; r < s.B; r++) {
    const rec = new Float64Array(s.d);
    for (let q = 0; q < sel.cnt[r]; q++) {
      const j = sel.idx[r * s.kAux + q];
      const v = reluBefore ? Math.max(pre[r * m + j], 0) : pre[r * m + j];
      for (let c = 0; c < s.d; c++) rec[c] += v * wDec[j * s.d + c];
    }
    for (let c = 0; c < s.d; c++) l2 += (rec[c] - e[r * s.d + c]) ** 2 / s.B;
  }
  return s.coef * scale * l2 / denom;
}

const auxCases: [string, Omit<AuxKSpec, "B" | "d" | "kAux">, boolean, number][] = [
  ["SAELens (coef 1, dead scale)", { coef: 1, deadScale: true, normalize: false }, false, 6],
  ["SAELens with few dead (scale < 1)", { coef: 1, deadScale: true, normalize: false }, false, 4],
  [
    "dictionary_learning (1/32, normalised, ReLU first)",
    { coef: 1 / 32, deadScale: false, normalize: true },
    true,
    30,
  ],
  [
    "no dead latents: loss and gradient 0",
    { coef: 1, deadScale: true, normalize: false },
    false,
    0,
  ],
];

for (const [what, opt, reluBefore, nDead] of auxCases) {
  Deno.test(`auxk loss, dL/dê and dL/dpre match the reference and finite differences: ${what}`, async () => {
    const gpu = await getGpu();
    const B = 13, m = 150, kAux = 10;
    const d = reluBefore ? 22 : 24; // both the float and the vec4 dot products
    const s: AuxKSpec = { B, d, kAux, ...opt };
    const rng = new Rng(nDead * 7 + 1);
    const pre = preacts(rng, B * m, 0, -1, reluBefore ? 0.5 : 1);
    const x = randArray(rng, B * d), xhat = randArray(rng, B * d, -0.5, 0.5);
    const wDec = randArray(rng, m * d, -0.3, 0.3);
    const dpre0 = randArray(rng, B * m);
    // Latents 0 .. nDead−1 dead (lastFired 0 at step 100, deadSteps 50), the rest fired at 99.
    const lastFired = new Uint32Array(m).map((_, j) => j < nDead ? 0 : 99);
    const state = gpu.upload(
      "st",
      packState({ step: 100, lr: 0, b1t: 1, b2t: 1, l1_coef: 0, main_phase: 0 }),
    );
    const deadB = gpu.buffer("dead", m * 4), aux = poisoned(gpu, "aux", 4);
    const preB = gpu.upload("pre", pre), auxf = poisoned(gpu, "auxf", B * m);
    const lists = poisonLists(gpu, B, kAux);
    const sel: RowTopKSpec = { B, m, k: kAux, reluBefore, reluAfter: false };
    run(gpu, [
      await deadMaskKernel(gpu, m, 50, {
        lastFired: gpu.upload("lf", lastFired),
        state,
        dead: deadB,
        aux,
      }),
      ...await rowTopKKernel(gpu, sel, { pre: preB, f: auxf, lists, mask: deadB }),
    ]);
    const mask = lastFired.map((t) => t === 0 ? 1 : 0);
    const want = rowTopKReference(pre, sel, mask);
    assertSame(await gpu.read(auxf), want.f, "auxf");
    // ê = auxf·W_dec: the variant's product (GEMM or spmm); here on the host.
    const recons = new Float32Array(B * d);
    for (let r = 0; r < B; r++) {
      for (let j = 0; j < m; j++) {
        const v = want.f[r * m + j];
        if (v !== 0) { for (let c = 0; c < d; c++) recons[r * d + c] += v * wDec[j * d + c]; }
      }
    }
    const g = poisoned(gpu, "g", B * d);
    const dpre = gpu.upload("dpre", dpre0);
    const xB = gpu.upload("x", x), xhatB = gpu.upload("xhat", xhat);
    run(gpu, [
      ...await auxLossDispatches(gpu, s, {
        x: xB,
        xhat: xhatB,
        recons: gpu.upload("recons", recons),
        g,
        aux,
        scratch: allocAuxKScratch(gpu, B, d),
      }),
      ...await auxGradKernel(gpu, { B, m, d, kAux, reluBefore }, {
        lists,
        g,
        wDec: gpu.upload("wdec", wDec),
        dpre,
      }),
    ]);
    const [gg, ga, gd] = await gpu.readMany([{ buf: g }, { buf: aux }, { buf: dpre }]);
    const ref = auxLossReference(s, x, xhat, recons, nDead);
    assertClose([ga[AUX_INDEX.loss]], [ref.loss], 1e-5, "loss");
    assertClose([ga[AUX_INDEX.scale], ga[AUX_INDEX.denom]], [ref.scale, ref.denom], 1e-6, "scale");
    assertClose(gg, ref.g, 1e-5, "dL/dê");
    if (nDead === 0) {
      assert.equal(ga[AUX_INDEX.loss], 0);
      assertSame(gd, dpre0, "dpre untouched");
      return;
    }
    assert.ok(ref.loss > 0);
    if (nDead < kAux) assert.ok(ref.scale < 1, "the dead scale applies");
    // dL/dpre: what aux_grad added, against central differences of the loss in pre.
    const e = Float64Array.from(x, (v, i) => v - xhat[i]);
    const p64 = Float64Array.from(pre);
    const L = (p: Float64Array) =>
      auxLossOfPre(s, p, want, m, wDec, e, ref.scale, ref.denom, reluBefore);
    const fds: number[] = [], gots: number[] = [];
    for (let i = 0; i < B * m; i += 7) {
      const h = 1e-4;
      const up = p64.slice(), dn = p64.slice();
      up[i] += h;
      dn[i] -= h;
      fds.push((L(up) - L(dn)) / (2 * h));
      gots.push(gd[i] - dpre0[i]);
    }
    assertClose(gots, fds, 1e-3, "dL/dpre against finite differences");
    const checked = fds.filter((v) => v !== 0).length;
    assert.ok(checked > 3, `${checked} selected entries checked`);
  });
}

Deno.test("topk backward: the dF GEMM's relu_grad epilogue on topk's f is SAELens' TopK autograd", async () => {
  const gpu = await getGpu();
  const s: RowTopKSpec = { B: 10, m: 90, k: 12 };
  const d = 16;
  const rng = new Rng(21);
  const pre = preacts(rng, s.B * s.m, 8, -1, 0.2); // some rows keep non-positive entries
  const dxhat = randArray(rng, s.B * d), wDec = randArray(rng, s.m * d);
  const preB = gpu.upload("pre", pre), f = poisoned(gpu, "f", s.B * s.m);
  const dpre = poisoned(gpu, "dpre", s.B * s.m);
  run(gpu, [
    ...await rowTopKKernel(gpu, s, { pre: preB, f, lists: allocTopKLists(gpu, s.B, s.k) }),
    ...await gemmDispatches(
      gpu,
      {
        label: "dF",
        M: s.B,
        N: s.m,
        K: d,
        transA: false,
        transB: true,
        epilogue: "relu_grad",
        scalarIdx: 0,
      },
      {
        a: gpu.upload("dxhat", dxhat),
        b: gpu.upload("wdec", wDec),
        c: dpre,
        e: f,
        s: gpu.upload("s", new Float32Array(4)),
      },
    ),
  ]);
  const dLdf = gemmReference(
    { label: "dL/df", M: s.B, N: s.m, K: d, transA: false, transB: true, epilogue: "none" },
    dxhat,
    wDec,
  );
  const want = topkBackwardReference(pre, s, dLdf);
  assertClose(await gpu.read(dpre), want, 1e-5, "dL/dpre");
  assert.ok(
    want.some((v, i) =>
      v === 0 && dLdf[i] !== 0 && pre[i] <= 0 && rowTopKReference(pre, s).f[i] === 0
    ),
  );
});

Deno.test("batchtopk threshold spread: θ's slot copied to every latent's slot", async () => {
  const gpu = await getGpu();
  for (const [m, index] of [[77, 0], [70000, 69999]]) {
    const init = randArray(new Rng(m), m);
    const buf = gpu.upload("theta", init);
    run(gpu, [await thetaSpreadKernel(gpu, m, { buf, index })]);
    const got = await gpu.read(buf, m * 4);
    assertSame(got, new Float32Array(m).fill(init[index]), `m ${m}`);
  }
});

Deno.test("auxk plan: the planned dispatches' counts as built with dead latents, zero without", async () => {
  const gpu = await getGpu();
  const s: RowTopKSpec = { B: 70, m: 33, k: 4 };
  const pre = preacts(new Rng(12), s.B * s.m, 0);
  const preB = gpu.upload("pre", pre);
  const f = poisoned(gpu, "f", s.B * s.m);
  const lists = poisonLists(gpu, s.B, s.k);
  const sel = await rowTopKKernel(gpu, s, { pre: preB, f, lists });
  for (const numDead of [0, 3]) {
    const aux = gpu.upload("aux", new Float32Array([0, 0, numDead, 0]));
    gpu.write(f, new Float32Array(s.B * s.m).fill(NaN));
    const { plan, planned } = await auxPlanDispatches(gpu, aux, sel);
    assert.ok(planned.every((d) => !d.copy && d.indirect !== undefined));
    run(gpu, [plan, ...planned]);
    const got = await gpu.read(f);
    if (numDead === 0) assert.ok(got.every((v) => Number.isNaN(v)), "skipped: f untouched");
    else assertSame(got, rowTopKReference(pre, s).f, "ran: f written");
  }
});
