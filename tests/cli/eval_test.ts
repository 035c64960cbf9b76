/** `sae eval`: writes eval.json into the run, one-line errors, defaults in --help. */
import assert from "node:assert/strict";
import { main } from "../../src/cli/main.ts";
import { makeEvalCommand } from "../../src/cli/eval.ts";
import { DEFAULT_CONFIG, mergeConfig } from "../../src/config.ts";
import type { EvalReport } from "../../src/eval/schema.ts";
import { train } from "../../src/sae/trainer.ts";
import { captureIo } from "../helpers/cli.ts";

Deno.test("sae eval: writes RUN/eval.json; --out elsewhere; errors are one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = `${dir}/run`;
    const cfg = mergeConfig(DEFAULT_CONFIG, {
      d_in: 16,
      d_sae: 32,
      batch: 32,
      steps: 20,
      warmup_steps: 5,
      log_every: 10,
      checkpoint_every: 0,
      init_rows: 128,
      synthetic: {
        n_features: 24,
        n_groups: 1,
        group_size: 2,
        n_parents: 2,
        children_per_parent: 2,
      },
    });
    await train(cfg, {
      outDir: run,
      resume: false,
      overwrite: false,
      progress: false,
      report: false,
    });

    const io = captureIo();
    assert.equal(
      await main(["eval", run, "--recon-batches", "2", "--sparsity-batches", "3"], io),
      0,
    );
    const report = JSON.parse(await Deno.readTextFile(`${run}/eval.json`)) as EvalReport;
    assert.equal(report.core.recon_rows, 64);
    assert.equal(report.core.sparsity_rows, 96);
    assert.ok(report.ground_truth);
    assert.deepEqual(report.core.kl_div_score, {
      available: false,
      reason: (report.core.kl_div_score as { reason: string }).reason,
    });

    // --sae and --batch; --out elsewhere.
    const out = `${dir}/other.json`;
    assert.equal(
      await main(
        ["eval", "--sae", run, "--batch", "16", "--sparsity-batches", "1", "--out", out],
        io,
      ),
      0,
    );
    const other = JSON.parse(await Deno.readTextFile(out)) as EvalReport;
    assert.equal(other.core.sparsity_rows, 16);

    // A directory that is not a run: status 2 and one line.
    const bad = captureIo();
    assert.equal(await main(["eval", dir], bad), 2);
    assert.equal(bad.err.join("").trim().split("\n").length, 1);
    assert.match(bad.err.join(""), /^error: .* is not a run directory \(no config\.yaml there\)/);
    const missing = captureIo();
    assert.equal(await main(["eval", `${dir}/nope`], missing), 2);
    assert.match(missing.err.join(""), /not a run directory/);

    const flag = captureIo();
    assert.equal(await main(["eval", run, "--recon-batches", "0"], flag), 2);
    assert.match(
      flag.err.join(""),
      /^error: --recon-batches must be a positive integer \(got '0'\)\n$/,
    );
    const none = captureIo();
    assert.equal(await main(["eval"], none), 2);
    assert.match(none.err.join(""), /no run directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sae eval --help: every option shows its default", () => {
  const cmd = makeEvalCommand();
  for (const opt of cmd.options) {
    if (opt.long === "--help") continue;
    assert.match(opt.description, /\(default: [^)]+/, `${opt.long} shows no default`);
  }
  const desc = (long: string) => cmd.options.find((o) => o.long === long)!.description;
  assert.match(desc("--recon-batches"), /SAEBench uses 200 \(default: 8; with --model 10,/);
  assert.match(desc("--batch"), /with --model, contexts per batch \(default: 16\)/);
  assert.match(desc("--context"), /\(default: 128\)/);
  assert.match(desc("--sparsity-batches"), /SAEBench uses 2000 \(default: 32\)/);
});
