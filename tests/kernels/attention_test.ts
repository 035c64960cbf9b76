import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../../src/gpu/device.ts";
import { type ComputeDispatch, run } from "../../src/gpu/dispatch.ts";
import {
  attentionDispatches,
  attentionReference,
  type AttentionSpec,
  bcOk,
  kvWriteDispatches,
  kvWriteReference,
  laneOk,
} from "../../src/kernels/attention.ts";
import { tokenPositions } from "../../src/kernels/positions.ts";
import { ropeDispatches, ropeInvFreq } from "../../src/kernels/rope.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

const BASE = { batch: 2, nHeads: 3, nKvHeads: 1, headDim: 12, scale: 1 / Math.sqrt(12) };

/**
 * Writes the new keys and values at their positions into caches whose rows before `filled[b]`
 * hold earlier random keys and values and whose other rows are NaN (so a kernel that reads a key
 * it must not see fails), runs attention and compares both with the references.
 */
async function check(
  name: string,
  spec: AttentionSpec,
  pos: Uint32Array,
  filled: number[],
  fused = false,
) {
  const gpu = await getGpu();
  const rng = new Rng(name.length * 7 + spec.seq);
  const { batch, seq, maxSeq, nHeads, nKvHeads, headDim: hd } = spec;
  const T = batch * seq, kvw = nKvHeads * hd;
  const q = randArray(rng, T * nHeads * hd, -3, 3);
  const k = randArray(rng, T * kvw, -3, 3);
  const v = randArray(rng, T * kvw);
  const kCache = new Float32Array(batch * maxSeq * kvw).fill(NaN);
  const vCache = kCache.slice();
  for (let b = 0; b < batch; b++) {
    const n = filled[b] * kvw, o = b * maxSeq * kvw;
    kCache.set(randArray(rng, n, -3, 3), o);
    vCache.set(randArray(rng, n), o);
  }
  let spec2 = spec;
  let qBuf: GPUBuffer, kBuf: GPUBuffer, vBuf: GPUBuffer;
  if (fused) {
    // One QKV buffer [T, (nHeads + 2·nKv)·hd], as a fused projection writes it.
    const W = nHeads * hd + 2 * kvw;
    const qkv = new Float32Array(T * W);
    for (let t = 0; t < T; t++) {
      qkv.set(q.subarray(t * nHeads * hd, (t + 1) * nHeads * hd), t * W);
      qkv.set(k.subarray(t * kvw, (t + 1) * kvw), t * W + nHeads * hd);
      qkv.set(v.subarray(t * kvw, (t + 1) * kvw), t * W + nHeads * hd + kvw);
    }
    spec2 = {
      ...spec,
      layout: { ldQ: W, ldK: W, ldV: W, offQ: 0, offK: nHeads * hd, offV: nHeads * hd + kvw },
    };
    qBuf = kBuf = vBuf = gpu.upload("qkv", qkv);
  } else {
    [qBuf, kBuf, vBuf] = [gpu.upload("q", q), gpu.upload("k", k), gpu.upload("v", v)];
  }
  const bufs = {
    q: qBuf,
    k: kBuf,
    v: vBuf,
    kCache: gpu.upload("k cache", kCache),
    vCache: gpu.upload("v cache", vCache),
    pos: gpu.upload("pos", pos),
  };
  const write = await kvWriteDispatches(gpu, spec2, bufs);
  run(gpu, write);
  const [gk, gv] = await gpu.readMany([{ buf: bufs.kCache }, { buf: bufs.vCache }]);
  const caches = kvWriteReference(spec, k, v, kCache, vCache, pos);
  // The caches: NaN where nothing was written, the same bits elsewhere.
  assert.deepEqual(gk.subarray(0, kCache.length), caches.kCache, `${name}: k cache`);
  assert.deepEqual(gv.subarray(0, vCache.length), caches.vCache, `${name}: v cache`);
  const want = attentionReference(spec, q, caches.kCache, caches.vCache, pos);
  // Every kernel the shape allows: the tiled one, one invocation per query row, the broadcast one.
  const forms = [
    { form: "tiled", lane: false, bc: false },
    ...laneOk(spec2) ? [{ form: "lane", lane: true, bc: false }] : [],
    ...bcOk(spec2) ? [{ form: "broadcast", bc: true }] : [],
  ];
  for (const { form, ...choice } of forms) {
    const out = poisoned(gpu, "out", T * nHeads * hd);
    const ds = await attentionDispatches(gpu, { ...spec2, ...choice }, { ...bufs, out });
    for (const d of [...write, ...ds]) assert.ok((d as ComputeDispatch).cost!.bytes > 0);
    run(gpu, ds);
    assertClose(await gpu.read(out), want, 1e-5, `${name} (${form}): out`);
    gpu.destroyBuffer(out);
  }
  for (const b of new Set(Object.values(bufs))) gpu.destroyBuffer(b);
}

Deno.test("attention: prefill of 37 tokens, 3 query heads on 1 KV head, default and odd tiles", async () => {
  const spec: AttentionSpec = { ...BASE, seq: 37, maxSeq: 41, positions: "offset" };
  const pos = new Uint32Array([0, 0]);
  await check("prefill", spec, pos, [0, 0]);
  await check("prefill, tile 5x7", { ...spec, tile: { rows: 5, keys: 7 } }, pos, [0, 0]);
  await check("prefill, tile 1x1", { ...spec, tile: { rows: 1, keys: 1 } }, pos, [0, 0]);
});

Deno.test("attention: head_dim 10 (tiled kernel only, also on CPU adapters)", async () => {
  const spec: AttentionSpec = { ...BASE, headDim: 10, seq: 37, maxSeq: 37, positions: "offset" };
  assert.equal(laneOk(spec), false);
  await check("head_dim 10", spec, new Uint32Array([0, 0]), [0, 0]);
});

Deno.test("attention: grouped (4 heads on 2) and multi-head (3 on 3), fused QKV layout", async () => {
  const pos = new Uint32Array([0, 0]);
  for (const [nHeads, nKvHeads] of [[4, 2], [3, 3]]) {
    const spec: AttentionSpec = {
      ...BASE,
      nHeads,
      nKvHeads,
      seq: 37,
      maxSeq: 37,
      positions: "offset",
    };
    await check(`${nHeads}/${nKvHeads} heads`, spec, pos, [0, 0]);
    await check(`${nHeads}/${nKvHeads} heads fused`, { ...spec, tile: { rows: 3, keys: 5 } }, pos, [
      0,
      0,
    ], true);
  }
});

Deno.test("attention: soft-capping (cap 5) and a sliding window of 8", async () => {
  const base: AttentionSpec = {
    ...BASE,
    nHeads: 4,
    nKvHeads: 2,
    seq: 37,
    maxSeq: 40,
    positions: "offset",
  };
  const pos = new Uint32Array([0, 0]);
  await check("softcap", { ...base, softcap: 5 }, pos, [0, 0]);
  await check("window", { ...base, window: 8, tile: { rows: 6, keys: 5 } }, pos, [0, 0]);
  await check("softcap + window", { ...base, softcap: 5, window: 8 }, pos, [0, 0]);
  await check("window 1", { ...base, window: 1 }, pos, [0, 0]);
});

Deno.test("attention: incremental decoding, one new token per sequence at different positions", async () => {
  const spec: AttentionSpec = { ...BASE, seq: 1, maxSeq: 41, positions: "offset" };
  // Sequence 0 at position 20 (keys 0..19 cached), sequence 1 at the last row of the cache.
  const pos = new Uint32Array([20, 40]);
  await check("decode", spec, pos, [20, 40]);
  await check("decode, window 8", { ...spec, window: 8, softcap: 5 }, pos, [20, 40]);
  await check("decode, gqa", { ...spec, nHeads: 6, nKvHeads: 2, tile: { rows: 2, keys: 3 } }, pos, [
    20,
    40,
  ]);
});

Deno.test("attention: a chunk after a cached prefix with per-token positions equals the offset form", async () => {
  const spec: AttentionSpec = { ...BASE, seq: 17, maxSeq: 41, positions: "token" };
  const pos = tokenPositions("offset", 2, 17, new Uint32Array([20, 24]));
  await check("chunked prefill", spec, pos, [20, 24]);
  await check(
    "chunked prefill, offsets",
    { ...spec, positions: "offset" },
    new Uint32Array([20, 24]),
    [20, 24],
  );
});

/** One placeholder buffer bound as every attention buffer: for calls that must be refused. */
function placeholders(gpu: Gpu) {
  const b = gpu.dummy();
  return { b, bufs: { q: b, kCache: b, vCache: b, pos: b, out: b } };
}

Deno.test("attention: mismatched heads, more tokens than cache rows, a cache over the binding limit are refused", async () => {
  const gpu = await getGpu();
  const { b, bufs } = placeholders(gpu);
  const spec: AttentionSpec = {
    ...BASE,
    nHeads: 3,
    nKvHeads: 2,
    seq: 1,
    maxSeq: 4,
    positions: "offset",
  };
  await assert.rejects(() => attentionDispatches(gpu, spec, bufs), /do not divide/);
  const long = { ...spec, nKvHeads: 1, seq: 5 };
  await assert.rejects(() => kvWriteDispatches(gpu, long, { ...bufs, k: b, v: b }), /exceed/);
  const big = { ...spec, nKvHeads: 1, maxSeq: gpu.maxBinding / 8 };
  await assert.rejects(() => attentionDispatches(gpu, big, bufs), /binding limit.*lower the batch/);
});

Deno.test("attention: the broadcast kernel's limits (prefills, offset positions, unrolled size)", async () => {
  const gpu = await getGpu();
  const { bufs } = placeholders(gpu);
  const gpt2: AttentionSpec = {
    ...BASE,
    nHeads: 12,
    nKvHeads: 12,
    headDim: 64,
    seq: 128,
    maxSeq: 128,
    positions: "offset",
  };
  assert.equal(bcOk(gpt2), true);
  assert.equal(bcOk({ ...gpt2, maxSeq: 256 }), true); // 256 × 64: the largest unrolled
  assert.equal(bcOk({ ...gpt2, maxSeq: 256, headDim: 128 }), false); // 12 s to compile
  assert.equal(bcOk({ ...gpt2, maxSeq: 512 }), false);
  assert.equal(bcOk({ ...gpt2, seq: 1 }), false); // a decoding step
  assert.equal(bcOk({ ...gpt2, positions: "token" }), false);
  const forced = { ...gpt2, seq: 1, bc: true };
  await assert.rejects(() => attentionDispatches(gpu, forced, bufs), /broadcast kernel needs/);
});

Deno.test("attention: 37 decoding steps (RoPE, KV write, attention) reproduce the prefill", async () => {
  const gpu = await getGpu();
  const rng = new Rng(77);
  const spec: AttentionSpec = {
    ...BASE,
    nHeads: 4,
    nKvHeads: 2,
    seq: 37,
    maxSeq: 37,
    positions: "offset",
    softcap: 5,
    window: 11,
  };
  const { batch, seq, nHeads, nKvHeads, headDim: hd } = spec;
  const T = batch * seq, qw = nHeads * hd, kvw = nKvHeads * hd;
  const q = randArray(rng, T * qw, -2, 2), k = randArray(rng, T * kvw, -2, 2);
  const v = randArray(rng, T * kvw);
  const rope = {
    batch,
    nHeads,
    nKvHeads,
    headDim: hd,
    style: "half" as const,
    positions: "offset" as const,
  };
  const invFreq = gpu.upload("inv_freq", ropeInvFreq(10000, hd));
  const caches = () => ({
    kCache: gpu.buffer("k cache", batch * seq * kvw * 4),
    vCache: gpu.buffer("v cache", batch * seq * kvw * 4),
  });
  // Prefill: all 37 tokens of both sequences at once.
  const pre = {
    q: gpu.upload("q", q),
    k: gpu.upload("k", k),
    v: gpu.upload("v", v),
    pos: gpu.upload("pos", new Uint32Array(batch)),
    out: poisoned(gpu, "out", T * qw),
    invFreq,
    ...caches(),
  };
  run(gpu, [
    ...await ropeDispatches(gpu, { ...rope, seq }, pre),
    ...await kvWriteDispatches(gpu, spec, pre),
    ...await attentionDispatches(gpu, spec, pre),
  ]);
  const want = await gpu.read(pre.out, T * qw * 4);
  // Decoding: one token per sequence per step, the same dispatches every step, the position
  // buffer written between steps.
  const dec = {
    q: gpu.buffer("q1", batch * qw * 4),
    k: gpu.buffer("k1", batch * kvw * 4),
    v: gpu.buffer("v1", batch * kvw * 4),
    pos: gpu.buffer("pos1", batch * 4),
    out: gpu.buffer("out1", batch * qw * 4),
    invFreq,
    ...caches(),
  };
  const step = [
    ...await ropeDispatches(gpu, { ...rope, seq: 1 }, dec),
    ...await kvWriteDispatches(gpu, { ...spec, seq: 1 }, dec),
    ...await attentionDispatches(gpu, { ...spec, seq: 1 }, dec),
  ];
  const got = new Float32Array(T * qw);
  const rows = (x: Float32Array, w: number, s: number) =>
    Float32Array.from(
      { length: batch * w },
      (_, i) => x[(Math.floor(i / w) * seq + s) * w + (i % w)],
    );
  for (let s = 0; s < seq; s++) {
    gpu.write(dec.q, rows(q, qw, s));
    gpu.write(dec.k, rows(k, kvw, s));
    gpu.write(dec.v, rows(v, kvw, s));
    gpu.write(dec.pos, new Uint32Array(batch).fill(s));
    run(gpu, step);
    const o = await gpu.read(dec.out, batch * qw * 4);
    for (let b = 0; b < batch; b++) got.set(o.subarray(b * qw, (b + 1) * qw), (b * seq + s) * qw);
  }
  assertClose(got, want, 1e-5, "decode vs prefill");
  for (const b of new Set([...Object.values(pre), ...Object.values(dec)])) gpu.destroyBuffer(b);
});
