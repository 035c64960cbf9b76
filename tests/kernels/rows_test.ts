import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { copyRowsDispatches, copyRowsReference } from "../../src/kernels/rows.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

Deno.test("copy rows: plain and BOS-dropping copies match the reference", async () => {
  const gpu = await getGpu();
  const rng = new Rng(5);
  for (const [batch, seq, dim, skip] of [[3, 37, 36, 0], [3, 37, 36, 1], [5, 2, 7, 1]]) {
    const x = randArray(rng, batch * seq * dim);
    const n = batch * (seq - skip) * dim;
    const bufs = { x: gpu.upload("x", x), out: poisoned(gpu, "out", n) };
    run(gpu, await copyRowsDispatches(gpu, { batch, seq, dim, skip }, bufs));
    const want = copyRowsReference({ batch, seq, dim, skip }, x);
    assertClose(await gpu.read(bufs.out, n * 4), want, 0, `${batch}x${seq}x${dim} skip ${skip}`);
    gpu.destroyBuffer(bufs.x);
    gpu.destroyBuffer(bufs.out);
  }
});
