/**
 * A harvest of one model's hook (`sae harvest`, and each layer of `sae ablate --preset lm`): loads
 * the model and its tokenizer, checks the hook, the context and the text against them before
 * anything is written, runs {@link harvest} with the forward pass up to the hook on the GPU
 * ({@link HookRows}), and fills the manifest's model fields (path, name, sizes, fingerprint).
 *
 * @example
 * ```ts
 * import { harvestModel } from "./harvest_model.ts";
 * const r = await harvestModel({
 *   model: "../shared/lm/stories260K/stories260K.bin", tokenizer: null,
 *   hook: "blocks.2.hook_resid_pre", text: ["corpus.jsonl"], context: 128, tokens: 1_000_000,
 *   outDir: "acts/", dtype: "f32", shardRows: null, batch: 16, shuffleSeed: null,
 *   resume: true, progress: false,
 * });
 * console.log(r.manifest.tokens, r.modelTokensPerSecond);
 * ```
 * @module
 */
import { UserError } from "../errors.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { GpuLm } from "./forward.ts";
import { defaultShardRows, harvest, type HarvestResult, sha256File } from "./harvest.ts";
import { HookRows } from "./hook_rows.ts";
import { parseHook } from "./hooks.ts";
import { loadModel, modelFingerprint, modelName } from "./load.ts";
import { endOfTextMarkers, inspectText } from "./text.ts";

/** What to harvest, checked (src/cli/harvest_options.ts makes one from the flags). */
export interface ModelHarvestPlan {
  model: string;
  tokenizer: string | null;
  hook: string;
  text: string[];
  context: number;
  tokens: number;
  outDir: string;
  dtype: "f32" | "f16";
  /** null: sized from d once the model is loaded ({@link defaultShardRows}). */
  shardRows: number | null;
  batch: number;
  shuffleSeed: number | null;
  resume: boolean;
  progress: boolean;
}

/** What {@link harvestModel} did: {@link harvest}'s result and how fast the model ran. */
export interface ModelHarvestResult extends HarvestResult {
  /** Seconds of this call's harvest (shards written; 0 when a resume found it complete). */
  seconds: number;
  /** Tokens through the model in this call (BOS included: contexts × context). */
  modelTokens: number;
}

/** Runs the harvest `plan` asks for; see the module. */
export async function harvestModel(
  plan: ModelHarvestPlan,
  opts: { signal?: AbortSignal; gpu?: Gpu; log?: (line: string) => void } = {},
): Promise<ModelHarvestResult> {
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
  const lm = GpuLm.upload(opts.gpu ?? await getGpu({ announce: true }), m);
  try {
    const rows = await HookRows.build(lm, {
      hook: plan.hook,
      context: plan.context,
      batch: plan.batch,
    });
    try {
      const t0 = performance.now();
      let contexts = 0;
      const result = await harvest({
        contexts: {
          sources,
          tokenizer: tok,
          context: plan.context,
          shuffleSeed: plan.shuffleSeed ?? undefined,
          tokenizerSha256,
        },
        activations: (tokens) => {
          contexts += tokens.length / plan.context;
          return rows.read(tokens);
        },
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
        signal: opts.signal,
        log: opts.log,
      });
      return {
        ...result,
        seconds: result.written > 0 ? (performance.now() - t0) / 1000 : 0,
        modelTokens: contexts * plan.context,
      };
    } finally {
      rows.destroy();
    }
  } finally {
    lm.destroy();
  }
}
