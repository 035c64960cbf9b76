import assert from "node:assert/strict";
import { llama2cConfig, parseHfConfig, ropeInvFreq } from "../../src/lm/config.ts";
import { TINY_CONFIGS } from "./fixtures.ts";

Deno.test("config: each family's defaults and specifics", () => {
  const g = parseHfConfig(TINY_CONFIGS.gemma2, "g/config.json");
  assert.deepEqual(
    [g.norm, g.act, g.gated, g.tied, g.sandwichNorms, g.attnSoftcap, g.finalSoftcap],
    ["rms_gemma", "gelu_tanh", true, true, true, 1.5, 2.5],
  );
  assert.deepEqual(g.window, [5, null, 5]);
  assert.equal(g.headDim, 10);
  assert.equal(g.embedScale, 6);
  // Gemma-2's published defaults when the keys are absent.
  const bare = parseHfConfig({
    architectures: ["Gemma2ForCausalLM"],
    hidden_size: 2304,
    intermediate_size: 9216,
    num_hidden_layers: 26,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    vocab_size: 256000,
  }, "gemma-2-2b/config.json");
  assert.deepEqual(
    [bare.headDim, bare.attnScale[0], bare.attnSoftcap, bare.finalSoftcap, bare.window[0]],
    [256, 1 / 16, 50, 30, 4096],
  );
  assert.equal(bare.window[1], null);
  assert.equal(bare.normEps, 1e-6);
  const p = parseHfConfig(TINY_CONFIGS.gpt2, "p/config.json");
  assert.deepEqual([p.norm, p.rope, p.gated, p.tied, p.dMlp, p.attnBias], [
    "layer",
    null,
    false,
    true,
    144,
    true,
  ]);
  const inv = parseHfConfig(
    { ...TINY_CONFIGS.gpt2, scale_attn_by_inverse_layer_idx: true },
    "p/config.json",
  );
  assert.deepEqual(inv.attnScale, [1 / Math.sqrt(12), 1 / Math.sqrt(12) / 2]);
  const l = llama2cConfig(new Int32Array([64, 172, 5, 8, 4, -512, 512]), "x.bin");
  assert.deepEqual([l.tied, l.vocabSize, l.rope!.style, l.normEps], [
    false,
    512,
    "interleaved",
    1e-5,
  ]);
});

Deno.test("config: Llama 3's rope_scaling keeps short wavelengths, divides long ones by the factor", () => {
  const scaling = {
    rope_type: "llama3",
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  };
  const c = parseHfConfig(
    { ...TINY_CONFIGS.llama, head_dim: 128, rope_theta: 500000, rope_scaling: scaling },
    "l3/config.json",
  );
  const base = ropeInvFreq(500000, 128), got = c.rope!.invFreq;
  let kept = 0, divided = 0, between = 0;
  for (let i = 0; i < base.length; i++) {
    const wavelen = 2 * Math.PI / base[i];
    if (wavelen < 8192 / 4) assert.equal(got[i], base[i]), kept++;
    else if (wavelen > 8192) assert.equal(got[i], base[i] / 8), divided++;
    else {
      assert.ok(got[i] < base[i] && got[i] > base[i] / 8);
      between++;
    }
  }
  assert.ok(kept > 0 && divided > 0 && between > 0, `${kept} ${divided} ${between}`);
  assert.throws(
    () => parseHfConfig({ ...TINY_CONFIGS.llama, rope_scaling: { rope_type: "yarn" } }, "y.json"),
    /y\.json: rope_scaling type "yarn" is not supported/,
  );
  assert.throws(
    () => parseHfConfig({ ...TINY_CONFIGS.llama, num_key_value_heads: 2 }, "h.json"),
    /h\.json: 3 attention heads are not a multiple of 2 key\/value heads/,
  );
  assert.throws(
    () => parseHfConfig({ ...TINY_CONFIGS.llama, hidden_act: "relu" }, "a.json"),
    /a\.json: activation "relu" is not supported for llama/,
  );
});
