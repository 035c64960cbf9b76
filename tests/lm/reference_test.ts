import assert from "node:assert/strict";
import { join } from "node:path";
import { hookPoints } from "../../src/lm/hooks.ts";
import { loadModel } from "../../src/lm/load.ts";
import { linear, normRows, referenceForward, referenceGreedy } from "../../src/lm/reference.ts";
import { assertClose, withTemp } from "../helpers/check.ts";
import {
  randomTensors,
  randomTokens,
  sharedLm,
  STORIES_GREEDY,
  TINY_CONFIGS,
  writeHfDir,
} from "./fixtures.ts";

Deno.test("reference: stories260K greedy from BOS is the README's story; both layouts give the same logits", async () => {
  const lm = sharedLm("stories260K greedy text");
  if (!lm) return;
  const bin = await loadModel(join(lm, "stories260K/stories260K.bin"));
  const hf = await loadModel(join(lm, "stories260K/hf"), { openTokenizer: false });
  const ids = referenceGreedy(bin, [1], 64);
  const text = bin.tokenizer!.decode(ids);
  assert.ok(text.startsWith(STORIES_GREEDY), text);
  const seq = ids.slice(0, 37);
  const a = referenceForward(bin, seq, 1, 37).logits!;
  const b = referenceForward(hf, seq, 1, 37).logits!;
  assertClose(b, a, 1e-5, "hf vs llama2.c logits");
});

Deno.test("reference: hooks agree with each other and with an early stop, per family", async () => {
  await withTemp(async (dir) => {
    for (const family of ["llama", "gpt2", "gemma2"]) {
      const cfg = TINY_CONFIGS[family];
      const m = await loadModel(await writeHfDir(join(dir, family), cfg, randomTensors(cfg, 11)));
      const batch = 2, seq = 9;
      const tokens = randomTokens(batch * seq, m.config.vocabSize, 5);
      const all = hookPoints(m.config);
      const full = referenceForward(m, tokens, batch, seq, { hooks: all });
      assert.equal(Object.keys(full.hooks).length, all.length);
      for (let l = 0; l < m.config.nLayers; l++) {
        const h = (k: string) => full.hooks[`blocks.${l}.${k}`];
        const sum = h("hook_resid_pre").map((v, i) =>
          v + h("hook_attn_out")[i] + h("hook_mlp_out")[i]
        );
        assertClose(h("hook_resid_post"), sum, 1e-6, `${family} resid_post ${l}`);
        if (l + 1 < m.config.nLayers) {
          assert.deepEqual(full.hooks[`blocks.${l + 1}.hook_resid_pre`], h("hook_resid_post"));
        }
      }
      for (
        const name of ["blocks.0.hook_resid_pre", "blocks.1.hook_attn_out", "blocks.1.hook_mlp_out"]
      ) {
        const early = referenceForward(m, tokens, batch, seq, { hooks: [name], stopAtHook: true });
        assert.equal(early.logits, null);
        assert.deepEqual(early.hooks[name], full.hooks[name], `${family} ${name}`);
      }
      // Causal: the first k positions do not see later tokens; each row is its own sequence.
      const k = 4;
      const first = referenceForward(m, tokens.slice(seq, seq + k), 1, k).logits!;
      const V = m.config.vocabSize;
      assertClose(first, full.logits!.slice(seq * V, (seq + k) * V), 1e-6, `${family} causal`);
    }
  });
});

Deno.test("reference: llama with lm_head equal to the embedding matches the tied model", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.llama;
    const t = randomTensors({ ...cfg, tie_word_embeddings: true }, 4);
    const tied = await loadModel(
      await writeHfDir(join(dir, "tied"), { ...cfg, tie_word_embeddings: true }, t),
    );
    const untied = await loadModel(
      await writeHfDir(join(dir, "untied"), cfg, {
        ...t,
        "lm_head.weight": t["model.embed_tokens.weight"],
      }),
    );
    assert.ok(tied.config.tied && !untied.config.tied);
    const tokens = randomTokens(12, 61, 9);
    assert.deepEqual(
      referenceForward(untied, tokens, 1, 12).logits,
      referenceForward(tied, tokens, 1, 12).logits,
    );
  });
});

Deno.test("reference: gemma2's sliding window, soft-caps and embedding scale, derived independently", async () => {
  await withTemp(async (dir) => {
    // Window 1 on the (even) layer 0: each position attends to itself only, so attention's
    // output is its own value vector: hook_attn_out = post_norm(v·Woᵀ), GQA-expanded.
    const cfg = { ...TINY_CONFIGS.gemma2, sliding_window: 1 };
    const m = await loadModel(await writeHfDir(join(dir, "g"), cfg, randomTensors(cfg, 21)));
    const c = m.config, L = m.weights.layers[0];
    assert.deepEqual(c.window, [1, null, 1]);
    assert.equal(c.embedScale, 6);
    assert.equal(c.attnScale[0], 12 ** -0.5);
    const T = 7;
    const tokens = randomTokens(T, c.vocabSize, 3);
    const r = referenceForward(m, tokens, 1, T, {
      hooks: ["blocks.0.hook_resid_pre", "blocks.0.hook_attn_out"],
    });
    const x = r.hooks["blocks.0.hook_resid_pre"];
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < c.dModel; i++) {
        assert.ok(
          Math.abs(x[t * c.dModel + i] - 6 * m.weights.embed[tokens[t] * c.dModel + i]) < 1e-5,
        );
      }
    }
    const h = normRows(c, x, L.attnNorm, T);
    const v = linear(h, L.wv, undefined, T, c.dModel, c.headDim); // one KV head
    const vAll = new Float32Array(T * c.nHeads * c.headDim);
    for (let t = 0; t < T; t++) {
      for (let hh = 0; hh < c.nHeads; hh++) {
        vAll.set(v.subarray(t * c.headDim, (t + 1) * c.headDim), (t * c.nHeads + hh) * c.headDim);
      }
    }
    const want = normRows(
      c,
      linear(vAll, L.wo, undefined, T, c.nHeads * c.headDim, c.dModel),
      L.postAttnNorm!,
      T,
    );
    assertClose(r.hooks["blocks.0.hook_attn_out"], want, 1e-5, "window-1 attention");
    // The final soft-cap bounds every logit by 2.5; without it they exceed it.
    const logits = referenceForward(m, tokens, 1, T).logits!;
    const uncapped = referenceForward({ ...m, config: { ...c, finalSoftcap: null } }, tokens, 1, T)
      .logits!;
    assert.ok(logits.every((l) => Math.abs(l) < 2.5));
    assert.ok(uncapped.some((l) => Math.abs(l) > 2.5));
    for (let i = 0; i < logits.length; i++) {
      assert.ok(Math.abs(logits[i] - 2.5 * Math.tanh(uncapped[i] / 2.5)) < 1e-5);
    }
  });
});

Deno.test("reference: a one-layer sliding-window model ignores tokens beyond the window", async () => {
  await withTemp(async (dir) => {
    const cfg = { ...TINY_CONFIGS.gemma2, num_hidden_layers: 1, sliding_window: 3 };
    const m = await loadModel(await writeHfDir(join(dir, "g"), cfg, randomTensors(cfg, 8)));
    const a = randomTokens(10, 61, 1);
    const b = [...a];
    b[2] = (b[2] + 1) % 61; // seen by positions 2, 3, 4 only
    const V = 61;
    const la = referenceForward(m, a, 1, 10).logits!, lb = referenceForward(m, b, 1, 10).logits!;
    assert.deepEqual(la.slice(5 * V), lb.slice(5 * V));
    assert.notDeepEqual(la.slice(4 * V, 5 * V), lb.slice(4 * V, 5 * V));
    // Without the window position 9 sees token 2.
    const global = { ...m, config: { ...m.config, window: [null] } };
    const ga = referenceForward(global, a, 1, 10).logits!,
      gb = referenceForward(global, b, 1, 10).logits!;
    assert.notDeepEqual(ga.slice(9 * V), gb.slice(9 * V));
  });
});
