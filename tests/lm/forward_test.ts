import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../../src/gpu/device.ts";
import { GpuLm, LmForward } from "../../src/lm/forward.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { spliceOutDispatches, spliceOutReference } from "../../src/kernels/splice.ts";
import { HOOK_KINDS, hookPoints } from "../../src/lm/hooks.ts";
import { type LmModel, loadModel } from "../../src/lm/load.ts";
import { referenceForward } from "../../src/lm/reference.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray, rejectsUserError, withTemp } from "../helpers/check.ts";
import { randomTensors, randomTokens, sharedLm, TINY_CONFIGS, writeHfDir } from "./fixtures.ts";

/**
 * Runs the GPU forward on [batch, seq] tokens; compares logits and every hook with the reference,
 * then the logits of the pass without hooks (where the GEMMs add the branches to the residual
 * stream and apply GPT-2's gelu_new in their epilogues).
 */
async function compareAll(m: LmModel, batch: number, seq: number, what: string) {
  const gpu = await getGpu();
  const lm = GpuLm.upload(gpu, m);
  const hooks = hookPoints(m.config);
  const f = await LmForward.build(lm, { batch, seq, hooks });
  const tokens = randomTokens(batch * seq, m.config.vocabSize, 17);
  f.run(tokens);
  const want = referenceForward(m, tokens, batch, seq, { hooks });
  const V = m.config.vocabSize, d = m.config.dModel;
  assertClose(await gpu.read(f.logits!, batch * seq * V * 4), want.logits!, 1e-4, `${what} logits`);
  for (const h of hooks) {
    assertClose(
      await gpu.read(f.hooks[h], batch * seq * d * 4),
      want.hooks[h],
      1e-4,
      `${what} ${h}`,
    );
  }
  f.destroy();
  const bare = await LmForward.build(lm, { batch, seq });
  bare.run(tokens);
  const got = await gpu.read(bare.logits!, batch * seq * V * 4);
  assertClose(got, want.logits!, 1e-4, `${what} logits without hooks`);
  // The fusion took place: per block, GPT-2 drops its gelu_new and both residual adds, Llama its
  // two adds; Gemma-2's post-normed branches keep theirs (its norms accumulate into x instead).
  const unfused = await LmForward.build(lm, { batch, seq, fuse: false });
  const perBlock = { gpt2: 3, llama: 2, gemma2: 0 }[m.config.family];
  assert.equal(
    unfused.dispatches.length - bare.dispatches.length,
    perBlock * m.config.nLayers,
    `${what}: kernels the epilogues replace`,
  );
  unfused.destroy();
  bare.destroy();
  lm.destroy();
}

for (
  const [family, variant, patch] of [
    ["llama", "GQA, untied", {}],
    ["llama", "tied, biases", { tie_word_embeddings: true, attention_bias: true, mlp_bias: true }],
    ["gpt2", "transformer. prefix", {}],
    ["gpt2", "no prefix", { noPrefix: true }],
    ["gemma2", "soft-caps, window 5 on even layers", {}],
  ] as const
) {
  Deno.test(`GPU forward ${family} (${variant}): logits and every hook match the reference`, async () => {
    await withTemp(async (dir) => {
      const { noPrefix, ...rest } = { noPrefix: false, ...patch };
      const cfg = { ...TINY_CONFIGS[family], ...rest };
      const tensors = randomTensors(cfg, 31, { gpt2Prefix: !noPrefix });
      const m = await loadModel(await writeHfDir(join(dir, "m"), cfg, tensors));
      await compareAll(m, 2, 37, `${family} ${variant}`);
    });
  });
}

Deno.test("GPU decode: a prefill then one token at a time over a shared KV cache gives the full pass's logits", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.llama;
    const m = await loadModel(await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 5)));
    const gpu = await getGpu();
    const lm = GpuLm.upload(gpu, m);
    const batch = 3, n = 13, k = 6, V = m.config.vocabSize;
    const tokens = randomTokens(batch * n, V, 2);
    const want = referenceForward(m, tokens, batch, n).logits!;
    const prefill = await LmForward.build(lm, { batch, seq: k, cacheLen: n });
    const decode = await LmForward.build(lm, {
      batch,
      seq: 1,
      cacheLen: n,
      caches: prefill.caches,
    });
    const row = (b: number, s: number) => tokens[b * n + s];
    prefill.run(Array.from({ length: batch * k }, (_, i) => row(Math.floor(i / k), i % k)));
    const pre = await gpu.read(prefill.logits!, batch * k * V * 4);
    for (let b = 0; b < batch; b++) {
      assertClose(
        pre.subarray(b * k * V, (b + 1) * k * V),
        want.subarray(b * n * V, (b * n + k) * V),
        1e-4,
        `prefill row ${b}`,
      );
    }
    for (let s = k; s < n; s++) {
      decode.run(Array.from({ length: batch }, (_, b) => row(b, s)), Array(batch).fill(s));
      const got = await gpu.read(decode.logits!, batch * V * 4);
      for (let b = 0; b < batch; b++) {
        const at = (b * n + s) * V;
        assertClose(got.subarray(b * V, (b + 1) * V), want.subarray(at, at + V), 1e-4, `step ${s}`);
      }
    }
    // Rows at different positions in one step: row b runs b steps behind row 0.
    for (let i = 0; i < n + batch - 1; i++) {
      const pos = Array.from({ length: batch }, (_, b) => Math.min(n - 1, Math.max(0, i - b)));
      decode.run(pos.map((p, b) => row(b, p)), pos);
      const got = await gpu.read(decode.logits!, batch * V * 4);
      for (let b = 0; b < batch; b++) {
        const at = (b * n + pos[b]) * V;
        assertClose(got.subarray(b * V, (b + 1) * V), want.subarray(at, at + V), 1e-4, `lag ${b}`);
      }
    }
    decode.destroy();
    prefill.destroy();
    lm.destroy();
  });
});

Deno.test("GPU forward stories260K: both layouts give the reference's logits and each other's (1e-4)", async () => {
  const lm0 = sharedLm("stories260K GPU forward");
  if (!lm0) return;
  const gpu = await getGpu();
  const bin = await loadModel(join(lm0, "stories260K/stories260K.bin"));
  const hf = await loadModel(join(lm0, "stories260K/hf"), { openTokenizer: false });
  const text = await Deno.readTextFile(join(lm0, "text/tinystories-sample.txt"));
  const ids = [1, ...bin.tokenizer!.encode(text.slice(0, 400))].slice(0, 37);
  const tokens = [...ids, ...ids.slice(0, 30), ...Array(7).fill(ids[5])];
  const logits: Float32Array[] = [];
  for (const m of [bin, hf]) {
    const lm = GpuLm.upload(gpu, m);
    const f = await LmForward.build(lm, { batch: 2, seq: 37 });
    f.run(tokens);
    logits.push(await gpu.read(f.logits!, 2 * 37 * 512 * 4));
    f.destroy();
    lm.destroy();
  }
  assertClose(logits[1], logits[0], 1e-4, "hf vs llama2.c on the GPU");
  assertClose(logits[0], referenceForward(bin, tokens, 2, 37).logits!, 1e-4, "GPU vs reference");
});

Deno.test("GPU forward: stopping at a hook runs fewer kernels and gives the same activations", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.gemma2;
    const m = await loadModel(await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 2)));
    const gpu = await getGpu();
    const lm = GpuLm.upload(gpu, m);
    const tokens = randomTokens(2 * 11, 61, 4);
    const full = await LmForward.build(lm, { batch: 2, seq: 11, hooks: hookPoints(m.config) });
    full.run(tokens);
    let last = full.dispatches.length;
    for (
      const hook of ["blocks.2.hook_resid_pre", "blocks.1.hook_mlp_out", "blocks.1.hook_attn_out"]
    ) {
      const f = await LmForward.build(lm, { batch: 2, seq: 11, hooks: [hook], stopAtHook: true });
      assert.equal(f.logits, null);
      assert.ok(f.dispatches.length < last, `${hook}: ${f.dispatches.length} kernels`);
      last = f.dispatches.length;
      f.run(tokens);
      const n = 2 * 11 * 36 * 4;
      assertClose(await gpu.read(f.hooks[hook], n), await gpu.read(full.hooks[hook], n), 0, hook);
      f.destroy();
    }
    full.destroy();
    lm.destroy();
  });
});

Deno.test("GPU forward: a context longer than the model's is a one-line UserError", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.gpt2;
    const m = await loadModel(await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 2)));
    const lm = GpuLm.upload(await getGpu(), m);
    await rejectsUserError(
      () => LmForward.build(lm, { batch: 1, seq: 65 }),
      /a context of 65 tokens is longer than the model's 64 \(.*config\.json\): pass --context 64 or less/,
    );
    lm.destroy();
  });
});

for (const family of ["llama", "gpt2", "gemma2"] as const) {
  Deno.test(`GPU forward ${family} with a splice: each hook kind is replaced where the pass reaches it, as in the reference`, async () => {
    await withTemp(async (dir) => {
      const cfg = TINY_CONFIGS[family];
      const m = await loadModel(await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 9)));
      const gpu = await getGpu();
      const lm = GpuLm.upload(gpu, m);
      const batch = 2, seq = 7, T = batch * seq, d = m.config.dModel, V = m.config.vocabSize;
      const rng = new Rng(3);
      const tokens = randomTokens(T, V, 6);
      const clean = referenceForward(m, tokens, batch, seq).logits!;
      for (const kind of HOOK_KINDS) {
        const hook = `blocks.1.${kind}`;
        // The replacement: x̂ / 0.5 on the kept rows, the activation elsewhere.
        const xhat = randArray(rng, T * d, -2, 2);
        const keep = Uint32Array.from({ length: T }, (_, t) => (t % 3 === 0 ? 0 : 1));
        const bufs = { xhat: gpu.upload("xhat", xhat), keep: gpu.upload("keep", keep) };
        const spec = { rows: T, dim: d, scale: 0.5 };
        const f = await LmForward.build(lm, {
          batch,
          seq,
          hooks: [hook],
          splice: { hook, build: (act) => spliceOutDispatches(gpu, spec, { act, ...bufs }) },
        });
        const want = referenceForward(m, tokens, batch, seq, {
          hooks: [hook],
          splice: {
            hook,
            apply: (act) => act.set(spliceOutReference(spec, act, xhat, keep)),
          },
        });
        const moved = want.logits!.reduce((mx, v, i) => Math.max(mx, Math.abs(v - clean[i])), 0);
        assert.ok(moved > 1e-2, `${hook}: the splice changes the logits (by ${moved})`);
        f.run(tokens);
        assertClose(await gpu.read(f.logits!, T * V * 4), want.logits!, 1e-4, `${hook} logits`);
        assertClose(await gpu.read(f.hooks[hook], T * d * 4), want.hooks[hook], 1e-4, hook);
        // Without the splice's dispatches the same buffers give the clean pass.
        run(gpu, f.passWith([]));
        assertClose(await gpu.read(f.logits!, T * V * 4), clean, 1e-4, `${hook} clean`);
        f.destroy();
        for (const b of Object.values(bufs)) gpu.destroyBuffer(b);
      }
      lm.destroy();
    });
  });
}
