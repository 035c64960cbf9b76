/**
 * `sae export RUN --format saelens --out DIR`: writes the run's SAE as a directory SAELens
 * (`SAE.load_from_disk`) and SAEBench load as is: cfg.json and sae_weights.safetensors. How the
 * layout maps onto ours (transposed W_enc, JumpReLU thresholds, folded input scale): see
 * src/export/saelens.ts.
 *
 * @example
 * ```sh
 * deno task sae export runs/demo --format saelens --out exports/demo --model-name gpt2 \
 *   --hook-name blocks.8.hook_resid_pre --hook-layer 8
 * ```
 */

import { Command, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import { UserError } from "../errors.ts";
import { exportSaelens, type ModelInfo } from "../export/saelens.ts";

function int(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new UserError(`${flag} must be an integer >= 0, got '${raw}'`);
  }
  return v;
}

/** The `export` command's options (no action attached). */
function makeExportCommand() {
  return new Command("export")
    .description(
      "write a run's SAE in another library's layout (SAELens: cfg.json + sae_weights.safetensors)",
    )
    .argument("<run>", "run directory (holds config.yaml and sae.safetensors)")
    .addOption(
      new Option("--format <format>", "output layout (default: saelens)").choices(
        ["saelens"] as const,
      ),
    )
    .option("--out <dir>", "directory to write (default: RUN/saelens)")
    .option("--overwrite", "replace --out if it is a SAELens directory already (default: off)")
    .option(
      "--model-name <name>",
      "cfg.json model_name (default: the run's model_name, else 'synthetic' for synthetic " +
        "data or 'unknown')",
    )
    .option(
      "--hook-name <name>",
      "cfg.json hook_name (default: the run's hook_name, else blocks.0.hook_resid_post)",
    )
    .option("--hook-layer <n>", "cfg.json hook_layer (default: the hook_name's block, else 0)")
    .option("--context-size <n>", "cfg.json context_size (default: the run's context_size, 128)")
    .option(
      "--dataset-path <path>",
      "cfg.json dataset_path (default: the run's dataset_path, else its data)",
    );
}

/** `sae export`, ready to register on the program. */
export function exportCommand() {
  return makeExportCommand().action(async (run, flags) => {
    const out = flags.out ?? join(run, "saelens");
    const model: Partial<ModelInfo> = {};
    if (flags.modelName !== undefined) model.model_name = flags.modelName;
    if (flags.hookName !== undefined) model.hook_name = flags.hookName;
    const layer = int("--hook-layer", flags.hookLayer);
    if (layer !== undefined) model.hook_layer = layer;
    const ctx = int("--context-size", flags.contextSize);
    if (ctx !== undefined) model.context_size = ctx;
    if (flags.datasetPath !== undefined) model.dataset_path = flags.datasetPath;
    const { cfg } = await exportSaelens(run, out, { overwrite: flags.overwrite === true, model });
    console.log(
      `wrote ${out} (SAELens, architecture ${cfg.architecture}, d_in ${cfg.d_in}, ` +
        `d_sae ${cfg.d_sae})`,
    );
  });
}
