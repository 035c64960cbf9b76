/**
 * `sae eval`: evaluates a finished run on rows it did not train on and writes `DIR/eval.json`
 * (src/eval/schema.ts) atomically, then prints the metrics as a table. With `--model` and `--text`
 * it runs the language model with the SAE spliced in at its hook (src/eval/lm.ts): SAEBench's KL
 * and CE scores, and the core metrics on the same tokens.
 *
 * @example
 * ```sh
 * deno task eval runs/demo
 * deno task sae eval --sae runs/demo --data 'heldout/*.npy' --recon-batches 200 --sparsity-batches 2000
 * deno task eval runs/lm --model ../shared/lm/stories260K/stories260K.bin \
 *   --text ../shared/lm/text/tinystories-sample.txt
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
import { evaluateLmRun, LM_EVAL_DEFAULTS } from "../eval/lm.ts";

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
      `batches for the reconstruction metrics (with --model: for KL, CE and the core metrics); ` +
        `SAEBench uses 200 (default: ${DEFAULT_RECON_BATCHES}; with --model ` +
        `${LM_EVAL_DEFAULTS.batches}, SAEBench's default)`,
    )
    .option(
      "--sparsity-batches <n>",
      `batches for L0, L1, dead/dense fractions, density and ground-truth precision/recall ` +
        `(not with --model); SAEBench uses 2000 (default: ${DEFAULT_SPARSITY_BATCHES})`,
    )
    .option(
      "--batch <n>",
      `rows per batch (default: the run's batch); with --model, contexts per batch ` +
        `(default: ${LM_EVAL_DEFAULTS.batch})`,
    )
    .option(
      "--model <dir|file.bin|owner/name>",
      "a language model (Hugging Face directory, llama2.c checkpoint or repo id): splice the SAE " +
        "in at its hook and report SAEBench's KL and CE scores (default: none)",
    )
    .option(
      "--text <files...>",
      "evaluation text for --model: .txt, .jsonl or .parquet files (default: none; required " +
        "with --model)",
    )
    .option("--tokenizer <file>", "tokenizer for --model (default: the one beside the model)")
    .option("--hook <name>", "hook to splice the SAE in at (default: the run's hook_name)")
    .option(
      "--context <n>",
      `tokens per context with --model, BOS included (default: ${LM_EVAL_DEFAULTS.context})`,
    )
    .option(
      "--reconstruct-special-tokens",
      "with --model, replace BOS/EOS positions by the reconstruction too (default: they keep " +
        "their activation, as SAEBench's runs with --exclude_special_tokens_from_reconstruction)",
    )
    .option(
      "--allow-model-mismatch",
      "evaluate although the run's model_name names another model (the same weights under " +
        "another name) (default: off)",
    )
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
    const out = flags.out ?? join(dir, "eval.json");
    if (flags.model !== undefined) {
      if (flags.data !== undefined) {
        throw new UserError("--data and --model exclude each other: --model reads --text");
      }
      if (flags.sparsityBatches !== undefined) {
        throw new UserError(
          "--sparsity-batches does not apply with --model: the core metrics use the " +
            "--recon-batches tokens",
        );
      }
      if (!flags.text?.length) throw new UserError("--model needs --text FILE...");
      const tty = Deno.stderr.isTerminal();
      const report = await evaluateLmRun(dir, {
        model: flags.model,
        text: flags.text,
        tokenizer: flags.tokenizer,
        hook: flags.hook,
        batches: intFlag(flags.reconBatches, "--recon-batches"),
        batch: intFlag(flags.batch, "--batch"),
        context: intFlag(flags.context, "--context"),
        reconstructSpecialTokens: flags.reconstructSpecialTokens === true,
        allowModelMismatch: flags.allowModelMismatch === true,
        out,
        onBatch: (done, of) => {
          if (tty) Deno.stderr.writeSync(new TextEncoder().encode(`\rbatch ${done}/${of}`));
        },
      });
      if (tty) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
      console.log(formatEvalReport(report));
      console.log(`wrote ${out}`);
      return;
    }
    for (
      const [v, flag] of [
        [flags.text, "--text"],
        [flags.tokenizer, "--tokenizer"],
        [flags.hook, "--hook"],
        [flags.context, "--context"],
        [flags.reconstructSpecialTokens, "--reconstruct-special-tokens"],
        [flags.allowModelMismatch, "--allow-model-mismatch"],
      ] as const
    ) {
      if (v !== undefined) throw new UserError(`${flag} applies only with --model DIR`);
    }
    const report = await evaluateRun(dir, {
      data: flags.data,
      reconBatches: intFlag(flags.reconBatches, "--recon-batches"),
      sparsityBatches: intFlag(flags.sparsityBatches, "--sparsity-batches"),
      batch: intFlag(flags.batch, "--batch"),
      out,
      // Absorption and SCR need the synthetic ground truth; on activation files they add nothing.
      extra: [absorptionEvaluator, scrEvaluator],
    });
    console.log(formatEvalReport(report));
    console.log(`wrote ${out}`);
  });
}
