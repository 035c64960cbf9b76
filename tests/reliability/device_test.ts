/**
 * Item 4 of the reliability issue: a device lost or a command rejected mid-run ends the run with
 * a one-line error (naming the kernel where it can be found), within seconds, with no checkpoint
 * from the failed device. Each test trains on its own device, so the shared one stays healthy.
 */
import assert from "node:assert/strict";
import { createGpu } from "../../src/gpu/device.ts";
import { listCheckpoints, loadLatestCheckpoint } from "../../src/run/checkpoint.ts";
import type { Session } from "../../src/sae/session.ts";
import { TrainingDeviceFailure } from "../../src/errors.ts";
import { train, type TrainOptions } from "../../src/sae/trainer.ts";
import { QUIET, TINY } from "./helpers.ts";

/** Runs TINY with `fault` at step 25 (a checkpoint exists at 20); rejects within `ms`. */
async function faultAt25(fault: (s: Session) => void, ms = 15_000) {
  const dir = await Deno.makeTempDir({ prefix: "sae-device-" });
  const gpu = await createGpu();
  const opts: TrainOptions = {
    ...QUIET,
    outDir: `${dir}/run`,
    gpu,
    onStep: (step, s) => {
      if (step === 25) fault(s);
    },
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`train() still pending after ${ms} ms`)), ms);
  });
  const err = await Promise.race([train(TINY, opts).then(() => null, (e) => e), deadline]);
  clearTimeout(timer);
  const ckpts = (await listCheckpoints(`${dir}/run`)).map((c) => c.step);
  const loads = (await loadLatestCheckpoint(`${dir}/run`))?.step;
  gpu.destroy();
  await Deno.remove(dir, { recursive: true });
  return { err, ckpts, loads };
}

Deno.test("device.destroy() mid-run rejects promptly with a one-line device-lost error", async () => {
  const { err, ckpts, loads } = await faultAt25((s) => s.gpu.destroy());
  assert.ok(err instanceof TrainingDeviceFailure, String(err));
  assert.match(
    err.message,
    /^GPU device lost \(destroyed\): .* \(during steps 21–2\d\); nothing is saved from a failed device; the last checkpoint step-00000020 is kept: resume with: deno task sae train --resume .*$/,
  );
  assert.ok(!err.message.includes("\n"));
  assert.deepEqual(ckpts, [20]);
  assert.equal(loads, 20);
});

Deno.test("a validation error mid-run names the kernel that was rejected", async () => {
  // Destroying a working buffer makes the next step's submission invalid; 'decode' writes x̂
  // and is the first kernel of the step that binds it.
  const { err, ckpts } = await faultAt25((s) => s.bufs.xhat.destroy());
  assert.ok(err instanceof TrainingDeviceFailure, String(err));
  assert.equal(err.kernel, "decode");
  assert.match(err.message, /^GPU validation error in kernel 'decode': .*'xhat'.* \(during steps/);
  assert.deepEqual(ckpts, [20]);
});
