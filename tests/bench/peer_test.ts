import assert from "node:assert/strict";
import { findTorchPython, runTorchStep } from "../../bench/peer.ts";

Deno.test("bench:peer finds no PyTorch among missing interpreters (the skip path)", async () => {
  assert.equal(await findTorchPython(["/nonexistent/python3", "no-such-python-xyz"]), null);
});

const python = await findTorchPython();

Deno.test({
  name: "bench/peer_torch.py runs the step at a tiny shape and reports a time",
  ignore: python === null,
  fn: async () => {
    const r = await runTorchStep(python!, [
      "--batch=8",
      "--d-in=8",
      "--d-sae=16",
      "--steps=2",
      "--warmup=1",
    ]);
    assert.deepEqual([r.batch, r.d_in, r.d_sae, r.steps], [8, 8, 16, 2]);
    assert.equal(r.step_s.length, 2);
    assert.ok(r.median_s > 0 && Number.isFinite(r.median_s));
    assert.ok(r.threads >= 1);
    assert.equal(typeof r.blas, "string");
  },
});
