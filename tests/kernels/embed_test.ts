import assert from "node:assert/strict";
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  embedDispatches,
  embedReference,
  type EmbedSpec,
  type WeightDtype,
} from "../../src/kernels/embed.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

/** E stored as `dtype` (packed two halves per u32 for f16/bf16) and the values it holds. */
function storeTable(
  data: Float32Array,
  dtype: WeightDtype,
): { words: Uint32Array; values: Float32Array } {
  if (dtype === "f32") return { words: new Uint32Array(data.buffer.slice(0)), values: data };
  const halves = new Uint16Array(data.length + (data.length % 2));
  let values: Float32Array;
  if (dtype === "f16") {
    const h = new Float16Array(data);
    halves.set(new Uint16Array(h.buffer));
    values = Float32Array.from(h);
  } else {
    const bits = new Uint32Array(data.buffer.slice(0));
    for (let i = 0; i < data.length; i++) halves[i] = bits[i] >>> 16;
    values = new Float32Array(
      new Uint32Array(Array.from(halves.subarray(0, data.length), (h) => h << 16)).buffer,
    );
  }
  return { words: new Uint32Array(halves.buffer), values };
}

async function check(gpu: Gpu, spec: EmbedSpec, seed: number, minParts = 1) {
  const rng = new Rng(seed);
  const { batch, seq, vocab, dModel: D } = spec;
  const T = batch * seq;
  const ids = new Uint32Array(T);
  for (let t = 0; t < T; t++) ids[t] = Math.floor(rng.uniform() * vocab);
  ids[0] = vocab - 1;
  ids[T - 1] = 0;
  ids[3] = vocab + 7; // out of range: a zero row (plus positions)
  const { words, values } = storeTable(randArray(rng, vocab * D, -2, 2), spec.dtype ?? "f32");
  const nCtx = seq + 2 * batch;
  const wpe = randArray(rng, nCtx * D);
  const lp = spec.learnedPositions;
  const pos = lp === "token"
    ? Uint32Array.from({ length: T }, () => Math.floor(rng.uniform() * nCtx))
    : Uint32Array.from({ length: batch }, (_, b) => 2 * b + 1);
  const bufs = {
    ids: gpu.upload("ids", ids),
    table: gpu.upload("E", words),
    out: poisoned(gpu, "out", T * D),
    wpe: lp ? gpu.upload("wpe", wpe) : undefined,
    pos: lp ? gpu.upload("pos", pos) : undefined,
  };
  const ds = await embedDispatches(gpu, spec, bufs);
  assert.ok(ds.length >= minParts, `${ds.length} dispatches, want ≥ ${minParts}`);
  run(gpu, ds);
  const got = await gpu.read(bufs.out, T * D * 4);
  assertClose(got, embedReference(spec, ids, values, wpe, pos), 1e-6, "embedding");
  for (const b of Object.values(bufs)) if (b) gpu.destroyBuffer(b);
}

Deno.test("embed: gather with Gemma's scale matches the reference (ids ≥ vocab give zero rows)", async () => {
  await check(await getGpu(), { batch: 2, seq: 37, vocab: 50, dModel: 36, scale: 6 }, 1);
});

Deno.test("embed: learned positions, per-sequence offsets and per-token positions", async () => {
  const gpu = await getGpu();
  const base = { batch: 2, seq: 37, vocab: 61, dModel: 36 };
  await check(gpu, { ...base, learnedPositions: "offset" }, 2);
  await check(gpu, { ...base, learnedPositions: "token" }, 3);
});

Deno.test("embed: f16 and bf16 storage, odd d_model", async () => {
  const gpu = await getGpu();
  for (const dtype of ["f16", "bf16"] as const) {
    await check(gpu, { batch: 3, seq: 5, vocab: 41, dModel: 37, dtype, scale: 1.5 }, 4);
  }
});

Deno.test("embed: E over the storage-binding limit is split into row ranges", async () => {
  // 2 KiB bindings: E [97, 37] f32 is 14 KiB, so 8+ parts; halves start mid-word in odd rows.
  const gpu = await createGpu({ maxStorageBufferBindingSize: 2048 });
  const base = { batch: 2, seq: 6, vocab: 97, dModel: 37 };
  await check(gpu, base, 5, 8);
  await check(gpu, { ...base, dtype: "f16", learnedPositions: "offset" }, 6, 4);
  await check(gpu, { ...base, dtype: "bf16", scale: 0.5 }, 7, 4);
  gpu.destroy();
});
