/**
 * The live source (src/lm/live.ts) on a tiny random llama: its batches equal a host simulation
 * built from the reference forward pass, the packing and the mixing reference, on the device and
 * read back alike; a source restored from another's state and tensors continues with the same
 * batches; bad settings fail with one line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mergeConfig, type TrainConfig } from "../../src/config.ts";
import { getGpu, type Gpu } from "../../src/gpu/device.ts";
import { MixingReference } from "../../src/kernels/mixing.ts";
import { ContextStream } from "../../src/lm/contexts.ts";
import { LiveSource } from "../../src/lm/live.ts";
import { loadModel } from "../../src/lm/load.ts";
import { referenceForward } from "../../src/lm/reference.ts";
import { endOfTextMarkers, inspectText } from "../../src/lm/text.ts";
import { assertClose, rejectsUserError, withTemp } from "../helpers/check.ts";
import { LIVE_HOOK, liveFixture, randomText } from "./live_fixture.ts";

async function attached(cfg: TrainConfig, gpu: Gpu): Promise<LiveSource> {
  const src = await LiveSource.open(cfg);
  await src.attach(gpu);
  return src;
}

/** The next batch of `rows` rows: from the device into `x` and read back, or read back directly. */
async function take(src: LiveSource, gpu: Gpu, rows: number, onDevice: boolean) {
  if (!onDevice) {
    const out = new Float32Array(rows * src.dIn);
    await src.nextBatch(out);
    return out;
  }
  const x = gpu.buffer("x", rows * src.dIn * 4);
  gpu.write(x, new Float32Array(rows * src.dIn).fill(NaN));
  await src.nextBatchOnDevice(x, rows);
  const got = await gpu.read(x);
  gpu.destroyBuffer(x);
  return got;
}

Deno.test("live source: batches equal the reference forward pass through the packing and the mixing buffer", async () => {
  await withTemp(async (dir) => {
    // ~400 tokens of text: about 26 contexts, so 30 batches of 24 rows read it twice over.
    const fx = await liveFixture(dir, 400);
    const gpu = await getGpu();
    const src = await attached(fx.cfg, gpu);
    const model = await loadModel(fx.model, { tokenizer: fx.tokenizer });
    const tok = model.tokenizer!;
    const stream = ContextStream.open({
      sources: await inspectText([fx.text], { markers: endOfTextMarkers(tok) }),
      tokenizer: tok,
      context: 16,
      loop: true,
    });
    const { lm_batch: lb, buffer_contexts: bc, batch } = fx.cfg;
    // 30 batches of 24 rows are 12 rounds of 60: the first fill (4 chunks), 11 refills (2 each).
    const chunks: Float32Array[] = [];
    for (let i = 0; i < 4 + 11 * 2; i++) {
      const b = (await stream.next(lb))!;
      const r = referenceForward(model, b.tokens, lb, 16, { hooks: [LIVE_HOOK], stopAtHook: true });
      chunks.push(r.hooks[LIVE_HOOK]);
    }
    const ref = new MixingReference(
      { rows: bc * 15, dim: 36, seed: fx.cfg.seed },
      { contexts: lb, seq: 16 },
      () => chunks.shift()!,
    );
    for (let b = 0; b < 30; b++) {
      const onDevice = b % 3 !== 1;
      const got = await take(src, gpu, batch, onDevice);
      assertClose(got, ref.take(batch), 2e-4, `batch ${b} (${onDevice ? "device" : "host"})`);
    }
    assert.equal(chunks.length, 0, "the reference used fewer fills");
    assert.ok(src.state().text!.next!.epoch >= 1, "the text was not read more than once");
    await src.close();
  });
});

Deno.test("live source: restored from a state and its tensors, it continues with the same batches", async () => {
  await withTemp(async (dir) => {
    const fx = await liveFixture(dir, 3000);
    const gpu = await getGpu();
    const a = await attached(fx.cfg, gpu);
    // Stop at different points of a round (7 × 24 rows: mid-round, chunks packed ahead).
    for (let b = 0; b < 7; b++) await take(a, gpu, 24, true);
    const state = JSON.parse(JSON.stringify(a.state()));
    const tensors = await a.checkpointTensors();
    const b = await attached(fx.cfg, gpu);
    b.restore(state, tensors);
    for (let i = 0; i < 12; i++) {
      const onDevice = i % 2 === 0;
      const [x, y] = [await take(a, gpu, 24, onDevice), await take(b, gpu, 24, onDevice)];
      assert.deepEqual(y, x, `batch ${i} after the restore`);
    }
    // A source with other settings refuses the state.
    const c = await attached(mergeConfig(fx.cfg, { seed: 7 }), gpu);
    assert.throws(() => c.restore(state, tensors), /cannot resume: the run used seed 42 but now 7/);
    const d = await attached(fx.cfg, gpu);
    assert.throws(() => d.restore(state, {}), /lacks the mixing buffer/);
    for (const s of [a, b, c, d]) await s.close();
  });
});

Deno.test("live source: bad settings and inputs stop with one line", async () => {
  await withTemp(async (dir) => {
    const fx = await liveFixture(dir, 3000);
    const gpu = await getGpu();
    const bad = (over: Partial<TrainConfig>) => LiveSource.open(mergeConfig(fx.cfg, over));
    await rejectsUserError(
      () => bad({ hook_name: "blocks.7.hook_resid_pre" }),
      /hook 'blocks\.7\.hook_resid_pre' does not exist .*valid hooks are blocks\.L\.\{hook_resid_pre,hook_attn_out,hook_mlp_out,hook_resid_post\} for L in 0\.\.1/,
    );
    await rejectsUserError(
      () => bad({ d_in: 32 }),
      /d_in is 32 but blocks\.1\.hook_resid_pre of m is 36 wide: leave --d-in out or pass --d-in 36/,
    );
    const small = join(dir, "tok50.bin");
    const { tinyTokenizer } = await import("../eval/lm_helpers.ts");
    await Deno.writeFile(small, tinyTokenizer(50));
    await rejectsUserError(
      () => bad({ tokenizer: small }),
      /the tokenizer has 50 tokens but the model's vocabulary .* has 61/,
    );
    await rejectsUserError(() => bad({ buffer_contexts: 6 }), /multiple of 2 × --lm-batch 2/);
    await rejectsUserError(() => bad({ batch: 61 }), /more than half the mixing buffer/);
    await rejectsUserError(() => bad({ context_size: 65 }), /longer than the model's 64/);
    await rejectsUserError(() => bad({ prepend_bos: false }), /prepend_bos false/);
    // Text shorter than one context, and shorter than the buffer: at the first batch.
    const tiny = join(dir, "tiny.txt");
    await Deno.writeTextFile(tiny, "a b c.");
    const one = await attached(mergeConfig(fx.cfg, { dataset_path: tiny }), gpu);
    await rejectsUserError(() => take(one, gpu, 24, true), /shorter than one context of 16/);
    await one.close();
    const short = join(dir, "short.txt");
    await Deno.writeTextFile(short, randomText(60, 2));
    const few = await attached(mergeConfig(fx.cfg, { dataset_path: short }), gpu);
    await rejectsUserError(
      () => take(few, gpu, 24, true),
      /holds fewer than the 8 contexts of 16 tokens the mixing buffer holds/,
    );
    await few.close();
  });
});
