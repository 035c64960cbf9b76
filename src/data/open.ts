/** Opening the activation source a config names. */
import type { TrainConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { LIVE_DATA, LiveSource } from "../lm/live.ts";
import { FileSource } from "./files.ts";
import { ShuffleBuffer } from "./shuffle.ts";
import type { ActivationSource } from "./source.ts";
import { SyntheticSource } from "./synthetic.ts";

/** The most bytes the shuffle buffer over activation files holds (also its checkpoint cost). */
const SHUFFLE_MAX_BYTES = 8 << 20;

/** Rows of the shuffle buffer over files: 64 batches, at most 8 MiB of f32, at most the data. */
export function shuffleCapacity(batch: number, dIn: number, totalRows: number): number {
  const byMemory = Math.floor(SHUFFLE_MAX_BYTES / (4 * dIn));
  return Math.max(1, Math.min(64 * batch, byMemory, totalRows));
}

/**
 * Opens the activation source named by `cfg.data`: "synthetic" is the generator; "live" the
 * language model `cfg.model` (src/lm/live.ts; on the device once attached); anything else
 * is a path, directory or glob of .npy / .safetensors shards (`#NAME` after a .safetensors pattern
 * picks the tensor), streamed through a shuffle buffer of bounded size seeded from cfg.seed.
 * Every shard's header and row width is checked here, before training starts.
 */
export async function openSource(cfg: TrainConfig): Promise<ActivationSource> {
  if (cfg.data === LIVE_DATA) return await LiveSource.open(cfg);
  if (cfg.model !== "") {
    throw new UserError(
      `model is set but data is '${cfg.data}': a run trains on activation files or on a live ` +
        `model; set data ${LIVE_DATA} to train on the model, or model "" for the files`,
    );
  }
  if (cfg.data === "synthetic") return new SyntheticSource(cfg.synthetic, cfg.d_in);
  const files = await FileSource.open(cfg.data, cfg.d_in, { skipBadRows: cfg.skip_bad_rows });
  return new ShuffleBuffer(
    files,
    shuffleCapacity(cfg.batch, files.dIn, files.totalRows),
    cfg.seed,
  );
}
