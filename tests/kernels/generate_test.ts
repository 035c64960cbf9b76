import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  advanceDispatches,
  advanceReference,
  type AdvanceSpec,
  CUT_FLAG,
  splitDocuments,
} from "../../src/kernels/generate.ts";
import { Rng } from "../../src/rng.ts";

Deno.test("generate advance: history, restarts at EOS/BOS and at a full context match the reference over steps", async () => {
  const gpu = await getGpu();
  const rng = new Rng(3);
  // 67 rows (over one workgroup), a context of 5 so rows fill it, ids 0..9 with BOS 1, EOS 2.
  const spec: AdvanceSpec = { batch: 67, steps: 11, maxSeq: 5, bos: 1, eos: 2 };
  const B = spec.batch;
  const ref = {
    next: new Uint32Array(B),
    ids: new Uint32Array(B).fill(1),
    pos: Uint32Array.from({ length: B }, () => Math.floor(rng.uniform() * 5)),
    hist: new Uint32Array(B * spec.steps).fill(0xdead),
    count: new Uint32Array(B),
    params: new Uint32Array([7, 40]),
  };
  const bufs = {
    next: gpu.upload("next", ref.next),
    ids: gpu.upload("ids", ref.ids),
    pos: gpu.upload("pos", ref.pos),
    hist: gpu.upload("hist", ref.hist),
    count: gpu.upload("count", ref.count),
    params: gpu.upload("params", ref.params),
  };
  const list = await advanceDispatches(gpu, spec, bufs);
  // 13 steps: more than the 11 history slots, so the last two are not recorded.
  for (let s = 0; s < 13; s++) {
    for (let b = 0; b < B; b++) ref.next[b] = Math.floor(rng.uniform() * 10);
    gpu.write(bufs.next, ref.next);
    run(gpu, list);
    advanceReference(spec, ref);
  }
  for (const k of ["ids", "pos", "hist", "count", "params"] as const) {
    assert.deepEqual(await gpu.readU32(bufs[k], ref[k].byteLength), ref[k], k);
  }
  assert.ok(ref.hist.some((h) => h & CUT_FLAG), "some context filled up");
  assert.ok(ref.hist.some((h) => h === 2), "some document ended");
  assert.deepEqual(Array.from(ref.params), [7, 53], "the sampler's step advanced once per step");
  for (const b of Object.values(bufs)) gpu.destroyBuffer(b);
});

Deno.test("generate splitDocuments: documents end at EOS/BOS or a cut (the ending token dropped), across rounds", () => {
  const spec: AdvanceSpec = { batch: 2, steps: 4, maxSeq: 9, bos: 1, eos: 2 };
  const open: number[][] = [[7], []];
  const hist = new Uint32Array([5, 2, 6, 0, 8, (9 | CUT_FLAG) >>> 0, 4, 1]);
  const done = splitDocuments(spec, hist, new Uint32Array([3, 4]), open);
  assert.deepEqual(done, [[7, 5], [8], [4]]);
  assert.deepEqual(open, [[6], []]);
});
