import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../../src/gpu/device.ts";
import { advanceReference, type AdvanceSpec, splitDocuments } from "../../src/kernels/generate.ts";
import { sampleReference } from "../../src/kernels/sample.ts";
import { GpuLm } from "../../src/lm/forward.ts";
import { generate } from "../../src/lm/generate.ts";
import { type LmModel, loadModel } from "../../src/lm/load.ts";
import { referenceForward } from "../../src/lm/reference.ts";
import { withTemp } from "../helpers/check.ts";
import { randomTensors, sharedLm, STORIES_GREEDY, TINY_CONFIGS, writeHfDir } from "./fixtures.ts";

/**
 * generate() simulated on the host: the reference forward of each row's prefix, the sampler's
 * reference with the same (seed, step, row) draws, the same bookkeeping and document order.
 */
function simulate(
  m: LmModel,
  o: { batch: number; tokens: number; temperature: number; seed: number; context: number },
  steps: number,
): number[][] {
  const cfg = m.config, V = cfg.vocabSize;
  const spec: AdvanceSpec = {
    batch: o.batch,
    steps,
    maxSeq: o.context,
    bos: cfg.bos!,
    eos: cfg.eos!,
  };
  const prefix: number[][] = Array.from({ length: o.batch }, () => [cfg.bos!]);
  const s = {
    next: new Uint32Array(o.batch),
    ids: new Uint32Array(o.batch).fill(cfg.bos!),
    pos: new Uint32Array(o.batch),
    hist: new Uint32Array(o.batch * steps),
    count: new Uint32Array(o.batch),
  };
  const open: number[][] = Array.from({ length: o.batch }, () => []);
  const docs: number[][] = [];
  let tokens = 0, step = 0;
  while (tokens < o.tokens) {
    s.count.fill(0);
    for (let i = 0; i < steps; i++, step++) {
      for (let b = 0; b < o.batch; b++) {
        const p = prefix[b];
        const logits = referenceForward(m, p, 1, p.length).logits!.slice((p.length - 1) * V);
        const spec1 = { rows: 1, vocab: V, temperature: o.temperature };
        // The kernel draws with the row's index in the batch.
        const pick = o.temperature > 0
          ? sampleReferenceRow(spec1, logits, o.seed, step, b)
          : sampleReference(spec1, logits)[0].token;
        s.next[b] = pick;
      }
      advanceReference(spec, s);
      for (let b = 0; b < o.batch; b++) {
        if (s.pos[b] === 0) prefix[b] = [cfg.bos!];
        else prefix[b].push(s.ids[b]);
      }
    }
    for (const d of splitDocuments(spec, s.hist, s.count, open)) {
      if (tokens >= o.tokens) break;
      docs.push(d);
      tokens += d.length;
    }
  }
  return docs;
}

/** sampleReference for row `row` of a batch (its draw depends on the row index). */
function sampleReferenceRow(
  spec: { rows: number; vocab: number; temperature: number },
  logits: Float32Array,
  seed: number,
  step: number,
  row: number,
): number {
  const rows = new Float32Array((row + 1) * spec.vocab);
  rows.set(logits, row * spec.vocab);
  return sampleReference({ ...spec, rows: row + 1 }, rows, seed, step)[row].token;
}

Deno.test("generate: greedy and seeded sampling on a tiny llama match the host simulation; same seed, same text", async () => {
  await withTemp(async (dir) => {
    const cfg = { ...TINY_CONFIGS.llama, vocab_size: 23 };
    // Weights whose greedy story from BOS ends with EOS after 5 tokens (3, 20, 20, 20, 20).
    const m = await loadModel(await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 8)));
    const gpu = await getGpu();
    const lm = GpuLm.upload(gpu, m);
    try {
      for (const temperature of [0, 1.3]) {
        const o = { batch: 3, tokens: 40, temperature, seed: 11, context: 9 };
        const got = await generate(lm, { ...o, stepsPerRound: 5 });
        const want = simulate(m, o, 5);
        assert.deepEqual(got.documents, want, `temperature ${temperature}`);
        if (temperature === 0) assert.deepEqual(got.documents[0], [3, 20, 20, 20, 20]);
        assert.ok(got.tokens >= 40 && got.tokens === want.flat().length);
        assert.ok(got.documents.every((d) => d.length <= 8 && !d.includes(1) && !d.includes(2)));
        if (temperature > 0) assert.ok(got.documents.some((d) => d.length === 8), "a cut");
        if (temperature > 0) {
          const again = await generate(lm, { ...o, stepsPerRound: 5 });
          assert.deepEqual(again.documents, got.documents);
          const other = await generate(lm, { ...o, seed: 12, stepsPerRound: 5 });
          assert.notDeepEqual(other.documents, got.documents);
        }
      }
    } finally {
      lm.destroy();
    }
  });
});

Deno.test("generate: stories260K greedy from BOS on the GPU is the README's story, in both layouts", async () => {
  const lm0 = sharedLm("stories260K greedy generation");
  if (!lm0) return;
  const gpu = await getGpu();
  const bin = await loadModel(join(lm0, "stories260K/stories260K.bin"));
  const hf = await loadModel(join(lm0, "stories260K/hf"), { openTokenizer: false });
  for (const m of [bin, hf]) {
    const lm = GpuLm.upload(gpu, m);
    // A context of 72 cuts the story after 71 tokens, past the known text.
    const g = await generate(lm, { batch: 2, tokens: 1, temperature: 0, seed: 0, context: 72 });
    lm.destroy();
    const text = bin.tokenizer!.decode(g.documents[0]);
    assert.ok(text.startsWith(STORIES_GREEDY), text);
  }
});
