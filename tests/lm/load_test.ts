import assert from "node:assert/strict";
import { join } from "node:path";
import { type HubClient, loadModel, resolveModel } from "../../src/lm/load.ts";
import { hookPoints, parseHook, stopPoint } from "../../src/lm/hooks.ts";
import { f32Tensor, tensorToF32 } from "../../src/run/safetensors.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";
import { convertTensor, randomTensors, sharedLm, TINY_CONFIGS, writeHfDir } from "./fixtures.ts";

Deno.test("load: stories260K as llama2.c .bin and as a Hugging Face directory", async () => {
  const lm = sharedLm("loading stories260K");
  if (!lm) return;
  const bin = await loadModel(join(lm, "stories260K/stories260K.bin"));
  const hf = await loadModel(join(lm, "stories260K/hf"), {
    tokenizer: join(lm, "stories260K/tok512.bin"),
  });
  for (const m of [bin, hf]) {
    const c = m.config;
    assert.deepEqual(
      [c.family, c.dModel, c.dMlp, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.maxSeq],
      ["llama", 64, 172, 5, 8, 4, 512, 512],
    );
    assert.ok(c.tied && c.normEps === 1e-5 && c.rope!.theta === 10000);
    assert.equal(m.stats.params, 260032);
    assert.equal(m.tokenizer!.name, "llama2c:tok512.bin");
  }
  // The checkpoint's own RoPE layout, and HF's after the conversion's q/k row permutation.
  assert.equal(bin.config.rope!.style, "interleaved");
  assert.equal(hf.config.rope!.style, "half");
  assert.deepEqual(hf.weights.embed, bin.weights.embed);
  assert.deepEqual(hf.weights.layers[3].wv, bin.weights.layers[3].wv);
  assert.notDeepEqual(hf.weights.layers[3].wq, bin.weights.layers[3].wq);
  assert.equal(bin.source.tokenizerFile, join(lm, "stories260K/tok512.bin"));
});

Deno.test("load: the shared GPT-2 directory (transformer.-prefixed names, Conv1D weights)", async () => {
  const lm = sharedLm("loading tiny-gpt2-random");
  if (!lm) return;
  const m = await loadModel(join(lm, "tiny-gpt2-random"), { openTokenizer: false });
  const c = m.config;
  assert.deepEqual([c.family, c.dModel, c.nLayers, c.nHeads, c.dMlp, c.vocabSize, c.maxSeq], [
    "gpt2",
    2,
    2,
    2,
    8,
    50257,
    1024,
  ]);
  assert.equal(m.source.tokenizerFile, join(lm, "tiny-gpt2-random/tokenizer.json"));
  // wte + wpe + 2 layers of (ln_1 4, c_attn 12 + 6, c_proj 4 + 2, ln_2 4, c_fc 16 + 8,
  // c_proj 16 + 2) + ln_f
  assert.equal(m.stats.params, 50257 * 2 + 1024 * 2 + 2 * 74 + 4);
  // c_attn [in 2, out 6] is split into q, k, v and transposed to [out, in].
  const st = (await import("../../src/run/safetensors.ts")).decodeSafetensors(
    await Deno.readFile(join(lm, "tiny-gpt2-random/model.safetensors")),
  );
  const cAttn = tensorToF32(st.tensors["transformer.h.1.attn.c_attn.weight"]);
  const wk = m.weights.layers[1].wk; // [2 out, 2 in]
  for (let o = 0; o < 2; o++) {
    for (let i = 0; i < 2; i++) assert.equal(wk[o * 2 + i], cAttn[i * 6 + 2 + o]);
  }
});

Deno.test("load: sharded, f16 and bf16 files give the weights of the single f32 file (rounded)", async () => {
  await withTemp(async (dir) => {
    for (const family of ["llama", "gpt2", "gemma2"]) {
      const cfg = TINY_CONFIGS[family];
      const tensors = randomTensors(cfg, 7);
      const single = await loadModel(await writeHfDir(join(dir, family), cfg, tensors));
      const sharded = await loadModel(
        await writeHfDir(join(dir, `${family}-sh`), cfg, tensors, { shards: 3 }),
      );
      assert.deepEqual(sharded.weights, single.weights, family);
      assert.equal(sharded.source.weightFiles.length, 3);
      for (const dtype of ["F16", "BF16"] as const) {
        const m = await loadModel(
          await writeHfDir(join(dir, `${family}-${dtype}`), cfg, tensors, { dtype }),
        );
        assert.deepEqual(m.stats.dtypes, [dtype]);
        const name = family === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight";
        assert.deepEqual(m.weights.embed, tensorToF32(convertTensor(tensors[name], dtype)));
        const rel = Math.abs(m.weights.embed[5] - single.weights.embed[5]) /
          Math.abs(single.weights.embed[5]);
        assert.ok(rel < (dtype === "F16" ? 1e-3 : 8e-3) && rel > 0, `${family} ${dtype} ${rel}`);
      }
    }
    // GPT-2 names with and without `transformer.` load the same weights.
    const g = TINY_CONFIGS.gpt2;
    const a = await loadModel(await writeHfDir(join(dir, "g1"), g, randomTensors(g, 3)));
    const b = await loadModel(
      await writeHfDir(join(dir, "g2"), g, randomTensors(g, 3, { gpt2Prefix: false })),
    );
    assert.deepEqual(a.weights, b.weights);
  });
});

Deno.test("load: bad model input is a one-line UserError naming the file and the fix", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.llama;
    const tensors = randomTensors(cfg, 1);
    await writeHfDir(join(dir, "mistral"), {
      ...cfg,
      architectures: ["MistralForCausalLM"],
      model_type: "mistral",
    }, tensors);
    await rejectsUserError(
      () => loadModel(join(dir, "mistral")),
      /mistral\/config\.json: architecture MistralForCausalLM is not supported: use a LlamaForCausalLM, GPT2LMHeadModel, Gemma2ForCausalLM model/,
    );
    const missing = { ...tensors };
    delete missing["model.layers.1.mlp.up_proj.weight"];
    await writeHfDir(join(dir, "missing"), cfg, missing);
    await rejectsUserError(
      () => loadModel(join(dir, "missing")),
      /missing\/model\.safetensors: tensor 'model\.layers\.1\.mlp\.up_proj\.weight' is missing/,
    );
    const shaped = {
      ...tensors,
      "model.layers.0.self_attn.k_proj.weight": f32Tensor([24, 36], new Float32Array(24 * 36)),
    };
    await writeHfDir(join(dir, "shaped"), cfg, shaped);
    await rejectsUserError(
      () => loadModel(join(dir, "shaped")),
      /shaped\/model\.safetensors: tensor 'model\.layers\.0\.self_attn\.k_proj\.weight' is \[24,36\], expected \[12,36\]/,
    );
    await Deno.mkdir(join(dir, "empty"));
    await rejectsUserError(() => loadModel(join(dir, "empty")), /empty: no config\.json/);
    await Deno.writeTextFile(join(dir, "empty/config.json"), JSON.stringify(cfg));
    await rejectsUserError(
      () => loadModel(join(dir, "empty")),
      /empty: no model\.safetensors or model\.safetensors\.index\.json/,
    );
    await rejectsUserError(() => loadModel(join(dir, "nope")), /nope: no such file or directory/);
    // A truncated llama2.c checkpoint.
    const header = new Int32Array([8, 12, 1, 2, 2, 10, 4]);
    await Deno.writeFile(join(dir, "t.bin"), new Uint8Array(header.buffer));
    await rejectsUserError(
      () => loadModel(join(dir, "t.bin")),
      /t\.bin: 28 bytes, but its header \[8, 12, 1, 2, 2, 10, 4\] needs \d+/,
    );
    // The model's tokenizer must match its vocabulary.
    const lm = sharedLm("tokenizer mismatch on load");
    if (lm) {
      await writeHfDir(join(dir, "ok"), cfg, tensors);
      await rejectsUserError(
        () => loadModel(join(dir, "ok"), { tokenizer: join(lm, "stories260K/tok512.bin") }),
        /tok512\.bin: the tokenizer has 512 tokens but the model's vocabulary .* has 61/,
      );
    }
  });
});

Deno.test("load: a repo id downloads through the hub client; offline it says so in one line", async () => {
  await withTemp(async (dir) => {
    const cfg = TINY_CONFIGS.gpt2;
    const repoDir = await writeHfDir(join(dir, "snap"), cfg, randomTensors(cfg, 2), { shards: 2 });
    const asked: string[] = [];
    const local: HubClient = {
      file(_repo, path) {
        asked.push(path);
        const p = join(repoDir, path);
        try {
          Deno.statSync(p);
          return Promise.resolve(p);
        } catch {
          return Promise.resolve(null);
        }
      },
    };
    const m = await loadModel("someone/tiny-gpt2", { hub: local });
    assert.equal(m.config.family, "gpt2");
    assert.equal(m.source.path, repoDir);
    assert.ok(asked.includes("model-00002-of-00002.safetensors"), asked.join(","));
    const offline: HubClient = {
      file: () => Promise.reject(new TypeError("error sending request: dns error")),
    };
    await rejectsUserError(
      () => resolveModel("openai-community/gpt2", { hub: offline }),
      /cannot download 'openai-community\/gpt2' from the Hugging Face Hub: offline \(error sending request: dns error\): download it elsewhere and pass its directory with --model DIR/,
    );
  });
});

Deno.test("hooks: names, parsing (unknown names list the valid ones) and where a forward may stop", () => {
  const cfg = { nLayers: 3, source: "m/config.json" };
  assert.equal(hookPoints(cfg).length, 12);
  assert.deepEqual(parseHook("blocks.2.hook_mlp_out", cfg), {
    name: "blocks.2.hook_mlp_out",
    layer: 2,
    kind: "hook_mlp_out",
  });
  for (const bad of ["blocks.3.hook_resid_pre", "blocks.0.hook_resid_mid", "hook_embed"]) {
    assert.throws(
      () => parseHook(bad, cfg),
      /does not exist in m\/config\.json: valid hooks are blocks\.L\.\{hook_resid_pre,hook_attn_out,hook_mlp_out,hook_resid_post\} for L in 0\.\.2/,
    );
  }
  const p = (n: string) => parseHook(n, cfg);
  assert.deepEqual(stopPoint([p("blocks.0.hook_resid_pre")]), { layer: -1, attnOnly: false });
  assert.deepEqual(stopPoint([p("blocks.2.hook_resid_pre")]), { layer: 1, attnOnly: false });
  assert.deepEqual(stopPoint([p("blocks.1.hook_attn_out")]), { layer: 1, attnOnly: true });
  assert.deepEqual(
    stopPoint([p("blocks.1.hook_attn_out"), p("blocks.1.hook_resid_post")]),
    { layer: 1, attnOnly: false },
  );
  assert.deepEqual(
    stopPoint([p("blocks.0.hook_mlp_out"), p("blocks.1.hook_attn_out")]),
    { layer: 1, attnOnly: true },
  );
});

Deno.test("safetensors fixture: f16 rounding is round-to-nearest-even", () => {
  const t = f32Tensor([4], new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, -2.5e-6, 0.1]));
  const back = tensorToF32(convertTensor(t, "F16"));
  assert.deepEqual(Array.from(back.slice(0, 2)), [1, 1 + 2 ** -9]);
  assert.ok(Math.abs(back[2] + 2.5e-6) < 2 ** -25 && Math.abs(back[3] - 0.1) < 1e-4);
});
