/**
 * `sae eval`: evaluates a finished run on rows it did not train on and writes `DIR/eval.json`
 * (src/eval/schema.ts) atomically, then prints the metrics as a table.
 *
 * @example
 * ```sh
 * deno task eval runs/demo
 * deno task sae eval --sae runs/demo --data 'heldout/*.npy' --recon-batches 200 --sparsity-batches 2000
 * ```
 */
import { Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { UserError } from "../errors.ts";
import { absorptionEvaluator } from "../eval/absorption.ts";
import { scrEvaluator } from "../eval/scr.ts";
import {
  DEFAULT_RECON_BATCHES,
  DEFAULT_SPARSITY_BATCHES,
  EVAL_SEED_OFFSET,
  evaluateRun,
  formatEvalReport,
} from "../eval/evaluate.ts";

/** A positive integer flag value, or a one-line UserError naming the flag. */
function intFlag(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isInteger(v) || v < 1) {
    throw new UserError(`${flag} must be a positive integer (got '${raw}')`);
  }
  return v;
}

/** The `eval` command's options (no action attached). */
export function makeEvalCommand() {
  return new Command("eval")
    .description(
      "evaluate a trained SAE (core metrics as SAEBench defines them; ground-truth recovery on " +
        "synthetic data) and write eval.json into its run directory",
    )
    .argument("[run]", "run directory written by 'sae train' (or pass --sae)")
    .option("--sae <dir>", "run directory, same as the positional argument (default: none)")
    .option(
      "--data <path>",
      `"synthetic" or a path/glob of activation files (default: the run's data; synthetic data ` +
        `uses a fresh stream, seed + ${EVAL_SEED_OFFSET}, with the same ground truth)`,
    )
    .option(
      "--recon-batches <n>",
      `batches for the reconstruction metrics; SAEBench uses 200 (default: ${DEFAULT_RECON_BATCHES})`,
    )
    .option(
      "--sparsity-batches <n>",
      `batches for L0, L1, dead/dense fractions, density and ground-truth precision/recall; ` +
        `SAEBench uses 2000 (default: ${DEFAULT_SPARSITY_BATCHES})`,
    )
    .option("--batch <n>", "rows per batch (default: the run's batch)")
    .option("--out <file>", "where to write the report (default: <run>/eval.json)");
}

/** `sae eval`, ready to register on the program. */
export function evalCommand() {
  return makeEvalCommand().action(async (run, flags) => {
    if (run !== undefined && flags.sae !== undefined && run !== flags.sae) {
      throw new UserError(
        `two run directories given ('${run}' and --sae '${flags.sae}'); pass one`,
      );
    }
    const dir = run ?? flags.sae;
    if (dir === undefined) {
      throw new UserError("no run directory: pass one, e.g. 'sae eval runs/demo'");
    }
    const report = await evaluateRun(dir, {
      data: flags.data,
      reconBatches: intFlag(flags.reconBatches, "--recon-batches"),
      sparsityBatches: intFlag(flags.sparsityBatches, "--sparsity-batches"),
      batch: intFlag(flags.batch, "--batch"),
      out: flags.out ?? join(dir, "eval.json"),
      // Absorption and SCR need the synthetic ground truth; on activation files they add nothing.
      extra: [absorptionEvaluator, scrEvaluator],
    });
    console.log(formatEvalReport(report));
    console.log(`wrote ${flags.out ?? join(dir, "eval.json")}`);
  });
}
