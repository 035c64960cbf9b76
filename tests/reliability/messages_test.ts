/**
 * Issue 17, item 9: messages that say what is wrong. Finite values whose squares overflow f32 are
 * named as such (not "infinite data") with normalize_activations as the fix; identical rows are
 * "no variance"; a file too small to hold rows out says so; sizes beyond the adapter's limits
 * are refused before any weights are drawn; an imported SAE holding NaN is refused naming the
 * tensor; a read-only run directory's message fits --resume.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mergeConfig } from "../../src/config.ts";
import type { ActivationSource } from "../../src/data/source.ts";
import { TrainingDiverged, UserError } from "../../src/errors.ts";
import { formatReport } from "../../src/eval/final.ts";
import { importSaelens } from "../../src/export/saelens.ts";
import { encodeSafetensors, f32Tensor } from "../../src/run/safetensors.ts";
import { train } from "../../src/sae/trainer.ts";
import {
  assertOneLineError,
  captureStderr,
  cli,
  QUIET,
  TINY,
  TINY_ARGS,
  writeNpy,
  writeRowsNpy,
} from "./helpers.ts";

Deno.test("finite values of 1e20 are named as an f32 overflow, with normalize_activations as the fix", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-msg-huge-" });
  const data = join(dir, "huge.npy");
  await writeRowsNpy(data, 4000, 16, { gain: 1e20 });
  // Unscaled on purpose: normalize_activations' default (auto) would scale files into range.
  const cfg = mergeConfig(TINY, { data, steps: 20, normalize_activations: "none" });
  const err = await train(cfg, { ...QUIET, outDir: join(dir, "run") }).then(() => null, (e) => e);
  assert.ok(err instanceof UserError, String(err));
  assert.match(
    err.message,
    /the data's rows reach a norm of [\d.]+e\+2\d: a batch's squared norms .* overflow f32 .*finite; set normalize_activations: expected_average_only_in/,
  );
  assert.ok(!(await Deno.stat(join(dir, "run")).catch(() => null)), "nothing written");
  // The fix works: the scale brings the rows into range.
  const ok = await train(mergeConfig(cfg, { normalize_activations: "expected_average_only_in" }), {
    ...QUIET,
    outDir: join(dir, "scaled"),
  });
  assert.ok(Number.isFinite(ok.metrics.explained_variance));

  // Huge rows arriving later (after the initialisation sample) are named by the step's flags.
  const late = await train(mergeConfig(TINY, { steps: 20 }), {
    ...QUIET,
    outDir: join(dir, "late"),
    wrapSource: (src): ActivationSource => {
      let batches = 0;
      return {
        ...src,
        dIn: src.dIn,
        description: src.description,
        nextBatch: async (x) => {
          await src.nextBatch(x);
          // The initialisation draws 64 batches of 32; then step 7's rows are scaled up.
          if (++batches > 70) { for (let i = 0; i < x.length; i++) x[i] *= 3e19; }
        },
        state: () => src.state(),
        restore: (s) => src.restore(s),
      };
    },
  }).then(() => null, (e) => e);
  assert.ok(late instanceof TrainingDiverged, String(late));
  assert.match(
    late.message,
    /^the training data's squared norms overflowed f32 between steps 0 and 10 \(first at step 7; input batch: values above about 1e19.*finite but their squares are not\).*set normalize_activations: expected_average_only_in/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("identical rows: 'the data has no variance', not a meaningless explained variance", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-msg-const-" });
  const data = join(dir, "const.npy");
  await writeNpy(data, new Float32Array(3000 * 16).fill(0.25), 16);
  const { code, err } = await cli([
    "train",
    ...TINY_ARGS,
    "--data",
    data,
    "--steps",
    "20",
    "--out",
    join(dir, "run"),
  ]);
  assert.equal(code, 2, err);
  assertOneLineError(err, /the data has no variance: the 2048 rows sampled .* are all identical/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a 10-row file with batch 64 says there are too few rows to hold any out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-msg-few-" });
  const data = join(dir, "ten.npy");
  await writeRowsNpy(data, 10, 16);
  const cfg = mergeConfig(TINY, { data, batch: 64, steps: 20, init_rows: 10 });
  const { lines, result, error } = await captureStderr(() =>
    train(cfg, { ...QUIET, outDir: join(dir, "run") })
  );
  assert.equal(error, undefined, String(error));
  assert.ok(
    lines.some((l) =>
      /^note: the data holds 10 rows and the run reads 1802 .*too few rows to hold any out, so the final metrics are on rows it trained on/
        .test(l)
    ),
    lines.join(" | "),
  );
  assert.match(
    formatReport(result!.metrics, "R", false),
    /^final metrics \(512 rows, not held out: the data has too few rows\) — R/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--d-sae 20000000 is refused against the adapter's limits before weights are drawn", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-msg-big-" });
  const t0 = performance.now();
  const { code, err } = await cli([
    "train",
    "--d-sae",
    "20000000",
    "--steps",
    "10",
    "--no-progress",
    "--out",
    join(dir, "run"),
  ]);
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(code, 2, err);
  assertOneLineError(
    err,
    /d_sae × d_in = 20000000 × 64 f32 \(4882\.8 MiB\) exceeds this adapter's buffer-size limit of .*: lower d_sae/,
  );
  // Drawing 1.28e9 initial weights took 87 s; the check needs none (a generous bound, 2 cores).
  assert.ok(seconds < 30, `${seconds.toFixed(1)} s`);
  assert.ok(!(await Deno.stat(join(dir, "run")).catch(() => null)), "nothing written");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an SAELens SAE holding NaN is refused on import, naming the tensor", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-msg-nan-" });
  const src = join(dir, "saelens");
  await Deno.mkdir(src);
  const d = 4, m = 6;
  const wDec = new Float32Array(m * d).fill(0.5);
  wDec[2 * d + 3] = NaN;
  await Deno.writeTextFile(
    join(src, "cfg.json"),
    JSON.stringify({ architecture: "standard", d_in: d, d_sae: m }),
  );
  await Deno.writeFile(
    join(src, "sae_weights.safetensors"),
    encodeSafetensors({
      W_enc: f32Tensor([d, m], new Float32Array(d * m).fill(0.1)),
      W_dec: f32Tensor([m, d], wDec),
      b_enc: f32Tensor([m], new Float32Array(m)),
      b_dec: f32Tensor([d], new Float32Array(d)),
    }),
  );
  const err = await importSaelens(src, join(dir, "run"), { overwrite: false }).then(
    () => null,
    (e) => e,
  );
  assert.ok(err instanceof UserError, String(err));
  assert.match(
    err.message,
    /sae_weights\.safetensors: tensor 'W_dec' holds NaN at index 11 \(row 2, column 3\): the SAE is damaged or diverged; refusing to import it/,
  );
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["saelens"], "nothing written");
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name:
    "a read-only run directory: the --resume message says to make it writable, not another --out",
  // chmod does not stop root (passed when run as uid 65534).
  ignore: Deno.build.os === "windows" || Deno.uid() === 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sae-msg-ro-" });
    const run = join(dir, "run");
    const cfg = mergeConfig(TINY, { steps: 20 });
    await train(cfg, { ...QUIET, outDir: run });
    await Deno.chmod(run, 0o555);
    try {
      const { code, err } = await cli(["train", "--resume", run, "--steps", "40", "--no-progress"]);
      assert.equal(code, 2, err);
      assertOneLineError(
        err,
        /cannot write run directory .*run: .*denied.*; make .*run writable, then resume with: deno task sae train --resume/i,
      );
      assert.ok(!err.includes("choose a writable --out"), err);
    } finally {
      await Deno.chmod(run, 0o755);
    }
    await Deno.remove(dir, { recursive: true });
  },
});
