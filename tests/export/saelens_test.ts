/**
 * SAELens export/import: our export → import round trip is exact and encodes alike; a SAELens
 * directory written byte by byte here (not by our writer) imports correctly; JumpReLU thresholds
 * (the paper variant's τ) survive the round trip; bad directories fail with one-line errors.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../../src/errors.ts";
import { exportSaelens, importSaelens } from "../../src/export/saelens.ts";
import { main } from "../../src/cli/main.ts";
import { decodeSafetensors, encodeSafetensors, f32Tensor } from "../../src/run/safetensors.ts";
import { encodeRows, loadSae } from "../../src/sae/load.ts";
import { train } from "../../src/sae/trainer.ts";
import { Rng } from "../../src/rng.ts";
import { QUIET, tinyRun } from "../helpers/runs.ts";

function rows(n: number, d: number, seed = 3): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * d }, () => 2 * rng.normal());
}

function sameArray(a: Float32Array, b: Float32Array, what: string) {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

function closeArray(a: Float32Array, b: Float32Array, tol: number, what: string) {
  assert.equal(a.length, b.length, what);
  let scale = 1e-30;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i] - b[i]) <= tol * scale)) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

const io = () => {
  const out = { stdout: "", stderr: "" };
  return {
    out,
    io: { writeOut: (t: string) => (out.stdout += t), writeErr: (t: string) => (out.stderr += t) },
  };
};

Deno.test("saelens: baseline export → import round trip is exact and encodes alike", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-export-" });
  try {
    await train(tinyRun(), { ...QUIET, outDir: `${dir}/run` });
    const cli = io();
    const code = await main(
      ["export", `${dir}/run`, "--format", "saelens", "--out", `${dir}/sl`, "--model-name", "gpt2"],
      cli.io,
    );
    assert.equal(code, 0, cli.out.stderr);
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/sl/cfg.json`));
    assert.equal(cfg.architecture, "standard");
    assert.equal(cfg.d_in, 16);
    assert.equal(cfg.d_sae, 32);
    assert.equal(cfg.dtype, "float32");
    assert.equal(cfg.normalize_activations, "none");
    assert.equal(cfg.apply_b_dec_to_input, true);
    assert.equal(cfg.model_name, "gpt2");
    assert.equal(cfg.metadata.model_name, "gpt2");
    assert.equal(typeof cfg.metadata.sae_lens_version, "string");
    const { tensors } = decodeSafetensors(await Deno.readFile(`${dir}/sl/sae_weights.safetensors`));
    assert.deepEqual(Object.keys(tensors).sort(), ["W_dec", "W_enc", "b_dec", "b_enc"]);
    assert.deepEqual(tensors.W_enc.shape, [16, 32]);
    assert.deepEqual(tensors.W_dec.shape, [32, 16]);
    // Decoder rows unit norm.
    const wd = new Float32Array(tensors.W_dec.data.slice().buffer);
    for (let i = 0; i < 32; i++) {
      let s = 0;
      for (let k = 0; k < 16; k++) s += wd[i * 16 + k] ** 2;
      assert.ok(Math.abs(Math.sqrt(s) - 1) < 1e-5, `row ${i} norm ${Math.sqrt(s)}`);
    }

    assert.equal(await main(["import", `${dir}/sl`, "--out", `${dir}/back`], cli.io), 0);
    const a = await loadSae(`${dir}/run`);
    const b = await loadSae(`${dir}/back`);
    for (const n of ["wEnc", "bEnc", "wDec", "bDec"] as const) {
      sameArray(b.weights[n], a.weights[n], n);
    }
    assert.equal(b.scale, a.scale);
    assert.equal(b.cfg.apply_b_dec_to_input, a.cfg.apply_b_dec_to_input);
    const x = rows(8, 16);
    sameArray(encodeRows(b, x), encodeRows(a, x), "encodeRows");
    assert.equal(b.threshold, null);
    // A second export of the import is byte-identical in its weights.
    await exportSaelens(`${dir}/back`, `${dir}/sl2`, { overwrite: false });
    assert.deepEqual(
      await Deno.readFile(`${dir}/sl2/sae_weights.safetensors`),
      await Deno.readFile(`${dir}/sl/sae_weights.safetensors`),
    );
    const cfg2 = JSON.parse(await Deno.readTextFile(`${dir}/sl2/cfg.json`));
    assert.equal(cfg2.model_name, "gpt2", "the import keeps the model name for the next export");

    // An input scale is folded: raw inputs in, features divided by s, round trip back.
    const { tensors: ours, metadata } = decodeSafetensors(
      await Deno.readFile(`${dir}/run/sae.safetensors`),
    );
    await Deno.mkdir(`${dir}/scaled`);
    await Deno.copyFile(`${dir}/run/config.yaml`, `${dir}/scaled/config.yaml`);
    await Deno.writeFile(
      `${dir}/scaled/sae.safetensors`,
      encodeSafetensors(ours, { ...metadata, scale: "2.5" }),
    );
    const out = await exportSaelens(`${dir}/scaled`, `${dir}/sl3`, { overwrite: false });
    assert.equal(out.cfg.normalize_activations, "none");
    assert.equal(
      (out.cfg.sae_webgpu as Record<string, unknown>).activation_norm_scaling_factor,
      2.5,
    );
    const bEnc = new Float32Array(out.tensors.b_enc.data.slice().buffer);
    closeArray(bEnc, a.weights.bEnc.map((v) => v / 2.5), 1e-6, "b_enc / s");
    await importSaelens(`${dir}/sl3`, `${dir}/back3`, { overwrite: false });
    const c = await loadSae(`${dir}/back3`);
    assert.equal(c.scale, 2.5);
    const s = await loadSae(`${dir}/scaled`);
    closeArray(encodeRows(c, x), encodeRows(s, x), 1e-5, "scaled encodeRows");

    // Existing output is refused without --overwrite, with one line.
    assert.equal(await main(["export", `${dir}/run`, "--out", `${dir}/sl`], cli.io), 2);
    assert.match(cli.out.stderr, /error: --out .*sl exists and is not empty; pass --overwrite/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("saelens: the paper variant exports its final τ as JumpReLU thresholds and back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-export-jump-" });
  try {
    await train(tinyRun({ variant: "paper", tau_base: 0.05 }), { ...QUIET, outDir: `${dir}/run` });
    const out = await exportSaelens(`${dir}/run`, `${dir}/sl`, { overwrite: false });
    assert.equal(out.cfg.architecture, "jumprelu");
    assert.deepEqual(out.tensors.threshold.shape, [32]);
    const a = await loadSae(`${dir}/run`);
    const tau = a.threshold;
    assert.ok(tau && tau.some((t) => t > 0), "τ is positive somewhere");
    sameArray(new Float32Array(out.tensors.threshold.data.slice().buffer), tau!, "threshold");

    const { cfg } = await importSaelens(`${dir}/sl`, `${dir}/back`, { overwrite: false });
    assert.equal(cfg.variant, "paper");
    assert.equal(cfg.adaptive_threshold, true);
    const b = await loadSae(`${dir}/back`);
    sameArray(b.threshold!, tau!, "threshold round trip");
    for (const n of ["wEnc", "bEnc", "wDec", "bDec"] as const) {
      sameArray(b.weights[n], a.weights[n], n);
    }
    const x = rows(16, 16, 5);
    const fa = encodeRows(a, x), fb = encodeRows(b, x);
    sameArray(fb, fa, "JumpReLU encode");
    // The thresholds do something: fewer active latents than plain ReLU.
    const active = (f: Float32Array) => f.filter((v) => v > 0).length;
    assert.ok(active(fa) <= active(encodeRows({ ...a, threshold: null }, x)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A safetensors file assembled from the spec, without our encoder. */
function handSafetensors(tensors: [string, number[], number[]][]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const [name, shape, values] of tensors) {
    header[name] = { dtype: "F32", shape, data_offsets: [off, off + 4 * values.length] };
    off += 4 * values.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + off);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, json.length, true);
  view.setUint32(4, 0, true);
  bytes.set(json, 8);
  let p = 8 + json.length;
  for (const [, , values] of tensors) {
    for (const v of values) {
      view.setFloat32(p, v, true);
      p += 4;
    }
  }
  return bytes;
}

Deno.test("saelens: a directory written by hand from the spec imports correctly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-import-" });
  try {
    // d_in 3, d_sae 2: W_enc [3, 2] (row k: input k), W_dec [2, 3].
    const wEnc = [1, 2, 3, 4, 5, 6];
    const wDec = [1, 0, 0, 0, 0.6, 0.8];
    await Deno.mkdir(`${dir}/sl`);
    await Deno.writeTextFile(
      `${dir}/sl/cfg.json`,
      `{"architecture": "jumprelu", "d_in": 3, "d_sae": 2, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": false, "normalize_activations": "none",
        "metadata": {"model_name": "gemma-2-2b", "hook_name": "blocks.12.hook_resid_post",
          "sae_lens_version": "6.5.0"}}`,
    );
    await Deno.writeFile(
      `${dir}/sl/sae_weights.safetensors`,
      handSafetensors([
        ["W_enc", [3, 2], wEnc],
        ["W_dec", [2, 3], wDec],
        ["b_enc", [2], [0.5, -0.5]],
        ["b_dec", [3], [0.1, 0.2, 0.3]],
        ["threshold", [2], [1, 100]],
      ]),
    );
    const cli = io();
    assert.equal(
      await main(["import", `${dir}/sl`, "--out", `${dir}/run`], cli.io),
      0,
      cli.out.stderr,
    );
    const sae = await loadSae(`${dir}/run`);
    assert.equal(sae.cfg.d_in, 3);
    assert.equal(sae.cfg.d_sae, 2);
    assert.equal(sae.cfg.apply_b_dec_to_input, false);
    assert.equal(sae.scale, 1);
    // The model and hook are recorded as config keys of the same names (sae eval --model checks
    // them); what cfg.json does not say keeps its default.
    assert.equal(sae.cfg.model_name, "gemma-2-2b");
    assert.equal(sae.cfg.hook_name, "blocks.12.hook_resid_post");
    assert.equal(sae.cfg.context_size, 128);
    assert.equal(sae.cfg.prepend_bos, true);
    assert.equal(sae.cfg.dataset_path, "");
    // Ours is [d_sae, d_in]: latent i's row is column i of SAELens' W_enc.
    assert.deepEqual([...sae.weights.wEnc], [1, 3, 5, 2, 4, 6]);
    assert.deepEqual([...sae.weights.wDec], [...Float32Array.from(wDec)]);
    assert.deepEqual([...sae.weights.bEnc], [0.5, -0.5]);
    assert.deepEqual([...sae.weights.bDec], [...Float32Array.from([0.1, 0.2, 0.3])]);
    assert.deepEqual([...sae.threshold!], [1, 100]);
    // x = [1, 1, 1]: pre = [1+3+5+0.5, 2+4+6-0.5] = [9.5, 11.5]; latent 1 is under its threshold.
    assert.deepEqual([...encodeRows(sae, new Float32Array([1, 1, 1]))], [9.5, 0]);
    // Export it again: identical tensors, the model name kept.
    const out = await exportSaelens(`${dir}/run`, `${dir}/sl2`, { overwrite: false });
    assert.equal(out.cfg.model_name, "gemma-2-2b");
    assert.equal(out.cfg.hook_name, "blocks.12.hook_resid_post");
    assert.equal(out.cfg.hook_layer, 12);
    assert.deepEqual([...new Float32Array(out.tensors.W_enc.data.slice().buffer)], wEnc);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("saelens: missing files, bad JSON and shape mismatches are one-line errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-import-bad-" });
  const expectError = async (re: RegExp) => {
    await assert.rejects(
      () => importSaelens(`${dir}/sl`, `${dir}/run-${Math.random()}`, { overwrite: false }),
      (err: unknown) => {
        assert.ok(err instanceof UserError, String(err));
        assert.match(err.message, re);
        assert.ok(!err.message.includes("\n"));
        return true;
      },
    );
  };
  try {
    await Deno.mkdir(`${dir}/sl`);
    await expectError(/cfg\.json not found/);
    await Deno.writeTextFile(`${dir}/sl/cfg.json`, "{d_in: 3");
    await expectError(/cfg\.json is not valid JSON/);
    await Deno.writeTextFile(`${dir}/sl/cfg.json`, `{"d_in": 3}`);
    await expectError(/'d_sae' must be a positive integer/);
    await Deno.writeTextFile(
      `${dir}/sl/cfg.json`,
      `{"d_in": 3, "d_sae": 2, "architecture": "gated"}`,
    );
    await expectError(/architecture "gated" is not supported/);
    await Deno.writeTextFile(
      `${dir}/sl/cfg.json`,
      `{"d_in": 3, "d_sae": 2, "architecture": "topk"}`,
    );
    await expectError(/'k' must be a positive integer/);
    await Deno.writeTextFile(`${dir}/sl/cfg.json`, `{"d_in": 3, "d_sae": 2}`);
    await expectError(/sae_weights\.safetensors not found/);
    await Deno.writeFile(`${dir}/sl/sae_weights.safetensors`, new Uint8Array([1, 2, 3]));
    await expectError(/invalid safetensors file/);
    const ok = (_name: string, shape: number[]) =>
      f32Tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
    await Deno.writeFile(
      `${dir}/sl/sae_weights.safetensors`,
      encodeSafetensors({
        W_enc: ok("W_enc", [2, 3]),
        W_dec: ok("W_dec", [2, 3]),
        b_enc: ok("b_enc", [2]),
        b_dec: ok("b_dec", [3]),
      }),
    );
    await expectError(/'W_enc' has shape \[2,3\] .* need \[3,2\] \(SAELens stores W_enc as/);
    await Deno.writeFile(
      `${dir}/sl/sae_weights.safetensors`,
      encodeSafetensors({ W_enc: ok("W_enc", [3, 2]), b_enc: ok("b_enc", [2]) }),
    );
    await expectError(/tensor 'W_dec' is missing/);
    await Deno.writeTextFile(
      `${dir}/sl/cfg.json`,
      `{"d_in": 3, "d_sae": 2, "normalize_activations": "expected_average_only_in"}`,
    );
    await expectError(/pass --scale X/);
    const cli = io();
    assert.equal(await main(["import", `${dir}/sl`, "--out", join(dir, "r")], cli.io), 2);
    assert.match(cli.out.stderr, /^error: .*pass --scale X\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
