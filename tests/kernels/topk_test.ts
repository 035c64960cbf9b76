import assert from "node:assert/strict";
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { hasSubgroups, withCollectives } from "../../src/kernels/collectives.ts";
import { allocSparseLists, csrReference } from "../../src/kernels/sparse.ts";
import {
  allocTopKLists,
  rowTopKKernel,
  rowTopKReference,
  type RowTopKSpec,
  topkListsToCsrKernel,
} from "../../src/kernels/topk.ts";
import topkSrc from "../../wgsl/topk.wgsl" with { type: "text" };
import { Rng } from "../../src/rng.ts";
import { poisoned } from "../helpers/check.ts";
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
