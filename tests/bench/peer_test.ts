import assert from "node:assert/strict";
import { startTorchStep } from "../../bench/peer.ts";
import { findTorchPython, pairedSummary } from "../../bench/torch_peer.ts";
import { withEnv } from "../helpers/check.ts";

Deno.test("bench:peer finds no PyTorch among missing interpreters (the skip path)", async () => {
  assert.equal(await findTorchPython(["/nonexistent/python3", "no-such-python-xyz"]), null);
});

Deno.test("pairedSummary: min, median, both ratios, per-round ratios and the two halves", () => {
  const ours = [0.5, 0.3, 0.4, 0.9, 0.35];
  const theirs = [0.2, 0.1, 0.25, 0.2, 0.1];
  const s = pairedSummary(ours, theirs);
  assert.deepEqual(s.ours, { min: 0.3, median: 0.4 });
  assert.deepEqual(s.theirs, { min: 0.1, median: 0.2 });
  assert.ok(Math.abs(s.ratioOfMins - 3) < 1e-12);
  assert.ok(Math.abs(s.ratioOfMedians - 2) < 1e-12);
  // per round: 2.5, 3, 1.6, 4.5, 3.5
  const r = s.roundRatios;
  assert.ok([r.median - 3, r.min - 1.6, r.max - 4.5].every((e) => Math.abs(e) < 1e-12));
  // even rounds 0, 2, 4: ours [0.5, 0.4, 0.35] → 0.4, theirs [0.2, 0.25, 0.1] → 0.2; odd 1, 3:
  // ours [0.3, 0.9] → 0.9 (upper median), theirs [0.1, 0.2] → 0.2
  assert.ok(Math.abs(s.halves[0] - 2) < 1e-12 && Math.abs(s.halves[1] - 4.5) < 1e-12);
});

const python = await findTorchPython();

Deno.test({
  name: "bench/peer_torch.py: a tiny SAE step per 'run', L0 on request, OPENBLAS_* unset",
  ignore: python === null,
  fn: async () => {
    await withEnv("OPENBLAS_CORETYPE", "Haswell", async () => {
      const t = await startTorchStep(python!, [
        "--batch=8",
        "--d-in=8",
        "--d-sae=16",
        "--warmup=1",
      ]);
      assert.deepEqual([t.info.batch, t.info.d_in, t.info.d_sae], [8, 8, 16]);
      assert.deepEqual(t.info.openblas_env, {});
      assert.equal(typeof t.info.blas, "string");
      assert.equal(typeof t.info.openblas_core, "string");
      assert.ok(t.info.threads >= 1);
      for (let i = 0; i < 2; i++) {
        const s = await t.run();
        assert.ok(s > 0 && Number.isFinite(s));
      }
      const { l0 } = await t.request<{ l0: number }>("l0");
      assert.ok(l0 >= 0 && l0 <= 16);
      await t.close();
    });
  },
});
