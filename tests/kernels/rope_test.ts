import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  ropeDispatches,
  ropeInvFreq,
  ropeReference,
  type RopeSpec,
} from "../../src/kernels/rope.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

const BASE = { batch: 2, seq: 37, nHeads: 3, nKvHeads: 1, headDim: 12 };

Deno.test("ropeInvFreq: 1/θ^(2i/d) in f32", () => {
  const f = ropeInvFreq(10000, 12);
  assert.equal(f.length, 6);
  assert.equal(f[0], 1);
  for (let i = 0; i < 6; i++) {
    assert.ok(Math.abs(f[i] - 10000 ** (-2 * i / 12)) < 1e-6 * f[i]);
  }
});

const CASES: [string, RopeSpec, number][] = [
  ["rotate-half, prefill offsets", { ...BASE, style: "half", positions: "offset" }, 10000],
  ["interleaved, prefill offsets", { ...BASE, style: "interleaved", positions: "offset" }, 10000],
  // Positions up to ~9000 (angles to 9000 rad): checks the range reduction before cos/sin (which
  // GPUs need; lavapipe's cos/sin are accurate there without it).
  ["rotate-half, per-token positions", { ...BASE, style: "half", positions: "token" }, 10000],
  ["interleaved, per-token positions, θ 500000", {
    ...BASE,
    style: "interleaved",
    positions: "token",
  }, 500000],
  [
    "partial rotary (8 of 12)",
    { ...BASE, rotaryDim: 8, style: "half", positions: "offset" },
    10000,
  ],
];

for (const [name, spec, theta] of CASES) {
  Deno.test(`rope: ${name} matches the reference`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(name.length);
    const T = spec.batch * spec.seq, hd = spec.headDim;
    const q = randArray(rng, T * spec.nHeads * hd), k = randArray(rng, T * spec.nKvHeads * hd);
    const pos = spec.positions === "token"
      ? Uint32Array.from({ length: T }, () => Math.floor(rng.uniform() * 9000))
      : Uint32Array.from({ length: spec.batch }, (_, b) => b * 4000);
    const invFreq = ropeInvFreq(theta, spec.rotaryDim ?? hd);
    const bufs = {
      q: gpu.upload("q", q),
      k: gpu.upload("k", k),
      invFreq: gpu.upload("inv_freq", invFreq),
      pos: gpu.upload("pos", pos),
    };
    run(gpu, await ropeDispatches(gpu, spec, bufs));
    const [gq, gk] = await gpu.readMany([{ buf: bufs.q }, { buf: bufs.k }]);
    const ref = ropeReference(spec, q, k, invFreq, pos);
    assertClose(gq, ref.q, 1e-5, "q");
    assertClose(gk, ref.k, 1e-5, "k");
    for (const b of Object.values(bufs)) gpu.destroyBuffer(b);
  });
}

Deno.test("rope: q and k inside one fused QKV buffer; V untouched", async () => {
  const gpu = await getGpu();
  const rng = new Rng(9);
  const { batch, seq, nHeads, nKvHeads, headDim: hd } = BASE;
  const T = batch * seq, W = (nHeads + 2 * nKvHeads) * hd;
  const qkv = randArray(rng, T * W);
  const pos = new Uint32Array([3, 11]);
  const spec: RopeSpec = {
    ...BASE,
    style: "half",
    positions: "offset",
    layout: { ldQ: W, offQ: 0, ldK: W, offK: nHeads * hd },
  };
  const invFreq = ropeInvFreq(10000, hd);
  const buf = gpu.upload("qkv", qkv);
  const bufs = { q: buf, k: buf, invFreq: gpu.upload("f", invFreq), pos: gpu.upload("pos", pos) };
  run(gpu, await ropeDispatches(gpu, spec, bufs));
  const got = await gpu.read(buf);
  const cols = (x: Float32Array, c0: number, n: number) =>
    Float32Array.from({ length: T * n }, (_, i) => x[Math.floor(i / n) * W + c0 + (i % n)]);
  const ref = ropeReference(
    spec,
    cols(qkv, 0, nHeads * hd),
    cols(qkv, nHeads * hd, nKvHeads * hd),
    invFreq,
    pos,
  );
  assertClose(cols(got, 0, nHeads * hd), ref.q, 1e-5, "q");
  assertClose(cols(got, nHeads * hd, nKvHeads * hd), ref.k, 1e-5, "k");
  const v0 = (nHeads + nKvHeads) * hd;
  assert.deepEqual(cols(got, v0, nKvHeads * hd), cols(qkv, v0, nKvHeads * hd), "v");
});
