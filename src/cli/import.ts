/**
 * `sae import DIR --out runs/<name>`: converts a SAELens directory (cfg.json +
 * sae_weights.safetensors; standard or jumprelu) into a run directory that loadSae reads.
 *
 * @example
 * ```sh
 * deno task sae import exports/demo --out runs/demo-imported
 * ```
 */

import { Command } from "@commander-js/extra-typings";
import { basename, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { importSaelens } from "../export/saelens.ts";

/** The `import` command's options (no action attached). */
function makeImportCommand() {
  return new Command("import")
    .description(
      "convert a SAELens directory (cfg.json + sae_weights.safetensors) into a run directory",
    )
    .argument("<dir>", "SAELens directory")
    .option("--out <dir>", "run directory to write (default: runs/<basename of DIR>)")
    .option("--overwrite", "replace an existing run directory (default: off)")
    .option(
      "--scale <x>",
      "input scale of an expected_average_only_in SAE whose factor is not folded into its " +
        "weights (default: none; required for such an SAE)",
    );
}

/** `sae import`, ready to register on the program. */
export function importCommand() {
  return makeImportCommand().action(async (dir, flags) => {
    let scale: number | undefined;
    if (flags.scale !== undefined) {
      scale = Number(flags.scale);
      if (!Number.isFinite(scale) || scale <= 0) {
        throw new UserError(`--scale must be a number > 0, got '${flags.scale}'`);
      }
    }
    const out = flags.out ?? `runs/${basename(resolve(dir))}`;
    const { sae } = await importSaelens(dir, out, { overwrite: flags.overwrite === true, scale });
    console.log(
      `wrote ${out} (from SAELens ${sae.architecture}, d_in ${sae.d_in}, d_sae ${sae.d_sae})`,
    );
  });
}
