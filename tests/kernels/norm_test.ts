import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { normDispatches, normReference, type NormSpec } from "../../src/kernels/norm.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

// d 36 (fewer columns than lanes; the vec4 lane kernel), 37 and 203 (more, not a multiple of
// the workgroup); rows with an offset mean, so LayerNorm's centring matters.
for (const kind of ["rms", "rms_gemma", "layer"] as const) {
  for (const lane of [false, true]) {
    Deno.test(`norm ${kind} (${lane ? "invocation" : "workgroup"} per row) matches the reference`, async () => {
      const gpu = await getGpu();
      const rng = new Rng(kind.length * 10 + (lane ? 1 : 0));
      for (
        const [rows, dim, accumulate] of [[74, 36, false], [19, 203, true], [5, 37, false], [
          9,
          68,
          true,
        ]] as const
      ) {
        const spec: NormSpec = { rows, dim, kind, eps: 1e-5, accumulate, lane };
        const x = randArray(rng, rows * dim, -1.5, 2.5);
        const w = randArray(rng, dim, -1, 1);
        const b = randArray(rng, dim, -1, 1);
        const before = randArray(rng, rows * dim, -1, 1);
        const bufs = {
          x: gpu.upload("x", x),
          weight: gpu.upload("w", w),
          bias: kind === "layer" ? gpu.upload("b", b) : undefined,
          out: accumulate ? gpu.upload("out", before) : poisoned(gpu, "out", rows * dim),
        };
        run(gpu, await normDispatches(gpu, spec, bufs));
        const got = await gpu.read(bufs.out, rows * dim * 4);
        assertClose(got, normReference(spec, x, w, b, before), 1e-5, `${rows}x${dim}`);
        for (const buf of Object.values(bufs)) if (buf) gpu.destroyBuffer(buf);
      }
    });
  }
}
