/**
 * `sae harvest`: a model's activations at one hook over a text, written as `.npy` shards that
 * `sae train --data DIR` reads as they are. Thin over src/lm/harvest_model.ts (the model, its
 * tokenizer and the checks made before anything is written), src/lm/harvest.ts (shards,
 * manifest, resume) and src/lm/hook_rows.ts (the forward pass on the GPU up to the hook): this
 * file parses the flags, stops gracefully on a signal and prints the result.
 *
 * @example
 * ```sh
 * deno task sae harvest --model ../shared/lm/stories260K/stories260K.bin \
 *   --hook blocks.2.hook_resid_pre --text ../shared/lm/text/tinystories-sample.txt \
 *   --context 128 --tokens 20k --out acts/
 * deno task sae train --data acts/ --d-sae 512 --steps 200
 * ```
 */
import { Command } from "@commander-js/extra-typings";
import { Interrupted } from "../errors.ts";
import { listenForSignals } from "../run/signals.ts";
import { harvestModel } from "../lm/harvest_model.ts";
import { HARVEST_DEFAULTS, parseHarvestFlags } from "./harvest_options.ts";

/** The `harvest` command's options (no action attached). */
function makeHarvestCommand() {
  return new Command("harvest")
    .description(
      "run a language model over text on the GPU and write one hook's activations as .npy " +
        "shards (acts-N.npy, with the token ids in tokens-N.npy) and manifest.json, for " +
        "sae train --data DIR",
    )
    .option(
      "--model <dir|file.bin|owner/name>",
      "Hugging Face model directory, llama2.c checkpoint, or Hugging Face repo id (required)",
    )
    .option(
      "--hook <name>",
      "hook point, e.g. blocks.2.hook_resid_pre (required; sae lm info lists them)",
    )
    .option(
      "--text <files...>",
      ".txt (documents separated by blank lines or the end-of-text marker), .jsonl with a " +
        '"text" field, or .parquet with a "text" column; read in the order given (required)',
    )
    .option("--out <dir>", "directory for the shards and manifest.json (required)")
    .option(
      "--tokenizer <file>",
      "tokenizer file (default: tokenizer.json in the model directory, or tok<vocab>.bin beside " +
        "a llama2.c checkpoint)",
    )
    .option(
      "--context <n>",
      `tokens per context, BOS included (default: ${HARVEST_DEFAULTS.context})`,
    )
    .option(
      "--tokens <n>",
      "activation rows to write, e.g. 2M, 500k (rounded up to whole contexts; default: 2M)",
    )
    .option("--dtype <t>", "f32 or f16 (default: f32)")
    .option("--shard-rows <n>", "most rows per shard (default: 256 MiB of activations)")
    .option(
      "--batch <n>",
      `contexts per forward pass (default: ${HARVEST_DEFAULTS.batch})`,
    )
    .option(
      "--shuffle-seed <n>",
      "read the text files in an order drawn from this seed (default: the order given)",
    )
    .option(
      "--resume",
      "continue the harvest in --out after its last complete shard (same settings and text)",
    )
    .option("--no-progress", "hide the progress bar (default: shown when stderr is a terminal)");
}

type HarvestCliFlags = ReturnType<ReturnType<typeof makeHarvestCommand>["opts"]>;

async function harvestAction(flags: HarvestCliFlags): Promise<void> {
  const plan = parseHarvestFlags({
    ...flags,
    // Commander's --no-progress gives `progress: true` when absent: only false is meaningful.
    progress: flags.progress === false ? false : undefined,
  });
  // Ctrl-C / SIGTERM finish the shard in flight's cleanup and leave every finished shard.
  const abort = new AbortController();
  const signals = listenForSignals(() => abort.abort());
  try {
    const { manifest, written, interrupted, seconds, modelTokens } = await harvestModel(plan, {
      signal: abort.signal,
    });
    if (interrupted) {
      throw new Interrupted(
        signals.state.received ?? "SIGINT",
        `harvest interrupted after ${manifest.shards.length} complete shard(s) in ` +
          `${plan.outDir}; continue with the same command and --resume`,
      );
    }
    const done = written > 0
      ? `; ${written} shard${written === 1 ? "" : "s"} written in ${seconds.toFixed(1)} s ` +
        `(${Math.round(modelTokens / seconds)} tokens/s through the model)`
      : "";
    console.log(
      `${plan.outDir}: ${manifest.tokens} activation rows [${manifest.d}] ${manifest.dtype} at ` +
        `${plan.hook} from ${manifest.contexts} contexts of ${plan.context} tokens in ` +
        `${manifest.shards.length} shard${manifest.shards.length === 1 ? "" : "s"}${done}; ` +
        `train on them with: deno task sae train --data ${plan.outDir}`,
    );
  } finally {
    signals.remove();
  }
}

/** `sae harvest`, ready to register on the program. */
export function harvestCommand() {
  return makeHarvestCommand().action(harvestAction);
}
