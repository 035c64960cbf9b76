import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  spliceOutDispatches,
  spliceOutReference,
  zeroDispatches,
} from "../../src/kernels/splice.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

Deno.test("splice out: kept rows get x̂ / scale, the others keep their activation", async () => {
  const gpu = await getGpu();
  const rng = new Rng(11);
  for (const [rows, dim, scale] of [[37, 36, 1], [74, 5, 0.37], [3, 130, 2]]) {
    const act = randArray(rng, rows * dim, -3, 3);
    const xhat = randArray(rng, rows * dim, -3, 3);
    const keep = Uint32Array.from({ length: rows }, () => (rng.uniform() < 0.7 ? 1 : 0));
    keep[0] = 0;
    keep[1] = 1;
    const bufs = {
      act: gpu.upload("act", act),
      xhat: gpu.upload("xhat", xhat),
      keep: gpu.upload("keep", keep),
    };
    run(gpu, await spliceOutDispatches(gpu, { rows, dim, scale }, bufs));
    const got = await gpu.read(bufs.act, rows * dim * 4);
    const want = spliceOutReference({ rows, dim, scale }, act, xhat, keep);
    assertClose(got, want, 1e-6, `${rows}x${dim} scale ${scale}`);
    // Rows not kept are untouched bit for bit.
    assert.deepEqual(got.subarray(0, dim), act.subarray(0, dim));
    for (const b of Object.values(bufs)) gpu.destroyBuffer(b);
  }
});

Deno.test("zero ablation: every element becomes 0", async () => {
  const gpu = await getGpu();
  const rows = 37, dim = 36;
  const act = gpu.upload("act", new Float32Array(rows * dim).fill(NaN));
  run(gpu, await zeroDispatches(gpu, { rows, dim }, { act }));
  assert.ok((await gpu.read(act, rows * dim * 4)).every((v) => v === 0));
  gpu.destroyBuffer(act);
});
