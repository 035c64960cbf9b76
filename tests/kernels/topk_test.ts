import assert from "node:assert/strict";
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { hasSubgroups, withCollectives } from "../../src/kernels/collectives.ts";
import { allocSparseLists, csrReference } from "../../src/kernels/sparse.ts";
import {
  allocBatchTopKScratch,
  allocTopKLists,
  batchKeep,
  batchThresholdKernel,
  batchTopKDispatches,
  batchTopKReference,
  rowTopKKernel,
  rowTopKReference,
  type RowTopKSpec,
  SEL_MINPOS,
  THETA_INIT,
  type ThetaRule,
  thetaUpdateReference,
  topkListsToCsrKernel,
} from "../../src/kernels/topk.ts";
import topkSrc from "../../wgsl/topk.wgsl" with { type: "text" };
import { Rng } from "../../src/rng.ts";
import { packState } from "../../src/sae/state.ts";
import { assertClose, poisoned } from "../helpers/check.ts";
import { assertOnlyLacksSubgroups } from "../helpers/subgroups.ts";

/** The collectives each kernel test runs with: the fallback, and subgroups where the device has them. */
const MODES = [false, ...(hasSubgroups(await getGpu()) ? [true] : [])];

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
  subgroups = false,
) {
  const preB = gpu.upload("pre", pre);
  const f = poisoned(gpu, "f", s.B * s.m);
  const lists = poisonLists(gpu, s.B, s.k);
  const maskB = mask ? gpu.upload("mask", mask) : undefined;
  run(gpu, await rowTopKKernel(gpu, s, { pre: preB, f, lists, mask: maskB }, { subgroups }));
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
  [{ B: 70, m: 300, k: 17 }, 0, "70 rows, continuous values"],
  [{ B: 2, m: 5003, k: 33 }, 2, "two values only: the boundary cuts a bin of thousands of ties"],
];

for (
  const [[s, levels, what], subgroups] of rowCases.flatMap((c) => MODES.map((m) => [c, m] as const))
) {
  const name = `B=${s.B} m=${s.m} k=${s.k}: ${what}${subgroups ? " (subgroups)" : ""}`;
  Deno.test(`topk rows match the reference: ${name}`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(s.B * 1009 + s.m);
    const hi = what.startsWith("mostly negative") ? 0.1 : 1;
    const pre = preacts(rng, s.B * s.m, levels, -1, hi);
    const got = await runRowTopK(gpu, s, pre, undefined, subgroups);
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
    assertRowTopK(await runRowTopK(gpu, s, pre), pre, s, JSON.stringify(opt));
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
    const got = await runRowTopK(gpu, s, pre, mask);
    assertRowTopK(got, pre, s, `${nCand} candidates`, mask);
    assert.ok([...got.cnt.slice(0, s.B)].every((c) => c === Math.min(s.k, nCand)));
  }
});

Deno.test("topk rows split over row ranges (binding limit of a few KiB) match the whole-buffer run", async () => {
  const gpu = await createGpu({ maxStorageBufferBindingSize: 4096 });
  const s: RowTopKSpec = { B: 23, m: 131, k: 9 }; // 12 KiB of pre: 3 parts of 7 rows
  const pre = preacts(new Rng(8), s.B * s.m, 5);
  const preB = gpu.upload("pre", pre);
  const f = poisoned(gpu, "f", s.B * s.m);
  const lists = poisonLists(gpu, s.B, s.k);
  const parts = await rowTopKKernel(gpu, s, { pre: preB, f, lists });
  assert.ok(parts.length >= 3, `${parts.length} parts`);
  run(gpu, parts);
  const [gf, gi, gv, gc] = await gpu.readMany([
    { buf: f },
    { buf: lists.idx },
    { buf: lists.val },
    { buf: lists.cnt },
  ]);
  const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  assertRowTopK({ f: gf, idx: u32(gi), val: gv, cnt: u32(gc) }, pre, s, "split");
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
  subgroups = false,
) {
  const preB = gpu.upload("pre", pre);
  const f = poisoned(gpu, "f", s.B * s.m);
  const scratch = allocBatchTopKScratch(gpu, s.B);
  gpu.write(scratch.sel, new Uint32Array(264).fill(0xdeadbeef)); // bt_init must reset it
  const list = await batchTopKDispatches(gpu, s, { pre: preB, f, scratch }, { subgroups });
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
  const [[s, levels, hi, what], subgroups] of batchCases.flatMap((c) =>
    MODES.map((m) => [c, m] as const)
  )
) {
  const name = `B=${s.B} m=${s.m} k=${s.k}: ${what}${subgroups ? " (subgroups)" : ""}`;
  Deno.test(`batchtopk matches the reference: ${name}`, async () => {
    const gpu = await getGpu();
    const pre = preacts(new Rng(s.B * 31 + s.m), s.B * s.m, levels, -1, hi);
    const got = await runBatchTopK(gpu, s, pre, subgroups);
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
  const got = await runBatchTopK(gpu, s, pre);
  assert.ok(got.parts > 12 + 6, `${got.parts} dispatches: the row kernels are split`);
  const want = batchTopKReference(pre, s);
  assertSame(got.f, want.f, "split f");
  assert.equal(got.minPositive, want.minPositive);
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
