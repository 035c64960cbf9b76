/**
 * `sae harvest`: a model's activations at one hook over a text, written as `.npy` shards that
 * `sae train --data DIR` reads as they are. Thin over src/lm/harvest.ts (shards, manifest,
 * resume) and src/lm/hook_rows.ts (the forward pass on the GPU up to the hook, BOS rows dropped
 * there): this file loads the model and its tokenizer, checks the hook, context and text against
 * them before anything is written, and fills the manifest's model fields.
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
import { Interrupted, UserError } from "../errors.ts";
import { listenForSignals } from "../run/signals.ts";
import { getGpu } from "../gpu/device.ts";
import { GpuLm } from "../lm/forward.ts";
import { harvest, sha256File } from "../lm/harvest.ts";
import { HookRows } from "../lm/hook_rows.ts";
import { parseHook } from "../lm/hooks.ts";
import { loadModel, modelFingerprint, modelName } from "../lm/load.ts";
import { endOfTextMarkers, inspectText } from "../lm/text.ts";
import { defaultShardRows, HARVEST_DEFAULTS, parseHarvestFlags } from "./harvest_options.ts";

/** The `harvest` command's options (no action attached). */
export function makeHarvestCommand() {
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
  const m = await loadModel(plan.model, { tokenizer: plan.tokenizer ?? undefined });
  const cfg = m.config;
  const tok = m.tokenizer;
  if (!tok || !m.source.tokenizerFile) {
    throw new UserError(
      `${m.source.path} has no tokenizer beside it: pass --tokenizer (tokenizer.json or tok.bin)`,
    );
  }
  parseHook(plan.hook, cfg);
  if (plan.context > cfg.maxSeq) {
    throw new UserError(
      `--context ${plan.context} is longer than the model's ${cfg.maxSeq} tokens (${cfg.source}): ` +
        `pass --context ${cfg.maxSeq} or less`,
    );
  }
  const sources = await inspectText(plan.text, { markers: endOfTextMarkers(tok) });
  const [fingerprint, tokenizerSha256] = await Promise.all([
    modelFingerprint(m.source),
    sha256File(m.source.tokenizerFile),
  ]);
  const d = cfg.dModel;
  const lm = GpuLm.upload(await getGpu({ announce: true }), m);
  try {
    const rows = await HookRows.build(lm, {
      hook: plan.hook,
      context: plan.context,
      batch: plan.batch,
    });
    // Ctrl-C / SIGTERM finish the shard in flight's cleanup and leave every finished shard.
    const abort = new AbortController();
    const signals = listenForSignals(() => abort.abort());
    try {
      const t0 = performance.now();
      const { manifest, written, interrupted } = await harvest({
        contexts: {
          sources,
          tokenizer: tok,
          context: plan.context,
          shuffleSeed: plan.shuffleSeed ?? undefined,
          tokenizerSha256,
        },
        activations: (tokens) => rows.read(tokens),
        d,
        tokens: plan.tokens,
        shardRows: plan.shardRows ?? defaultShardRows(d, plan.dtype),
        dtype: plan.dtype,
        outDir: plan.outDir,
        manifest: {
          model: {
            path: plan.model,
            name: modelName(m.source),
            format: m.source.format,
            family: cfg.family,
            d_model: d,
            n_layers: cfg.nLayers,
            vocab_size: cfg.vocabSize,
            context_length: cfg.maxSeq,
            fingerprint: fingerprint.sha256,
            files: fingerprint.files,
          },
          hook: plan.hook,
          tokenizer: { name: tok.name, sha256: tokenizerSha256 },
        },
        resume: plan.resume,
        batchContexts: plan.batch,
        progress: plan.progress,
        signal: abort.signal,
      });
      if (interrupted) {
        throw new Interrupted(
          signals.state.received ?? "SIGINT",
          `harvest interrupted after ${manifest.shards.length} complete shard(s) in ` +
            `${plan.outDir}; continue with the same command and --resume`,
        );
      }
      const s = (performance.now() - t0) / 1000;
      const done = written > 0
        ? `; ${written} shard${written === 1 ? "" : "s"} written in ${s.toFixed(1)} s`
        : "";
      console.log(
        `${plan.outDir}: ${manifest.tokens} activation rows [${d}] ${manifest.dtype} at ` +
          `${plan.hook} from ${manifest.contexts} contexts of ${plan.context} tokens in ` +
          `${manifest.shards.length} shard${manifest.shards.length === 1 ? "" : "s"}${done}; ` +
          `train on them with: deno task sae train --data ${plan.outDir}`,
      );
    } finally {
      signals.remove();
      rows.destroy();
    }
  } finally {
    lm.destroy();
  }
}

/** `sae harvest`, ready to register on the program. */
export function harvestCommand() {
  return makeHarvestCommand().action(harvestAction);
}
