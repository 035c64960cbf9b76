import assert from "node:assert/strict";
import { startTorchLm } from "../../bench/peer_lm.ts";
import { findTorchPython } from "../../bench/torch_peer.ts";

const python = await findTorchPython();

Deno.test({
  name: "bench/peer_lm_torch.py: a tiny GPT-2 forward per 'run', OPENBLAS_* unset, BLAS named",
  ignore: python === null,
  fn: async () => {
    const prev = Deno.env.get("OPENBLAS_L2_SIZE");
    Deno.env.set("OPENBLAS_L2_SIZE", "512");
    try {
      const t = await startTorchLm(python!, [
        "--batch=2",
        "--context=9",
        "--d=24",
        "--layers=2",
        "--heads=3",
        "--vocab=50",
      ]);
      assert.deepEqual(t.info.openblas_env, {});
      assert.equal(typeof t.info.blas, "string");
      assert.equal(typeof t.info.openblas_core, "string");
      assert.ok(t.info.threads >= 1);
      for (let i = 0; i < 2; i++) {
        const s = await t.run();
        assert.ok(s > 0 && Number.isFinite(s));
      }
      await t.close();
    } finally {
      if (prev === undefined) Deno.env.delete("OPENBLAS_L2_SIZE");
      else Deno.env.set("OPENBLAS_L2_SIZE", prev);
    }
  },
});
