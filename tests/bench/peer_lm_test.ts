import assert from "node:assert/strict";
import { startTorchLm } from "../../bench/peer_lm.ts";
import { findTorchPython } from "../../bench/torch_peer.ts";
import { withEnv } from "../helpers/check.ts";

const python = await findTorchPython();

Deno.test({
  name: "bench/peer_lm_torch.py: a tiny GPT-2 forward per 'run', OPENBLAS_* unset, BLAS named",
  ignore: python === null,
  fn: async () => {
    await withEnv("OPENBLAS_L2_SIZE", "512", async () => {
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
    });
  },
});
