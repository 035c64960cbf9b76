/**
 * What `--resume` checks before anything is written: that there is a checkpoint to continue
 * from (never training a finished or imported SAE again from step 0), and that the configuration
 * asked for may continue it: keys that define the run (variant, seed, sizes, batch,
 * initialisation, the synthetic data, every variant's own keys) are fixed for its life; the
 * optimiser's and the log's keys may change from the checkpoint's step on, and each change is
 * named; fewer steps than the checkpoint holds are refused.
 *
 * @example
 * ```ts
 * import { resumeChanges } from "./resume.ts";
 * resumeChanges(before, { ...before, steps: 2000, lr: 1e-3 }, 1000, "runs/demo");
 * // ["steps 1500 → 2000", "lr 0.003 → 0.001"]
 * ```
 */
import { join } from "node:path";
import { DEFAULT_CONFIG, isPlainObject, mergeConfig, type TrainConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { pathExists } from "../run/atomic.ts";
import { type Checkpoint, listCheckpoints, loadLatestCheckpoint } from "../run/checkpoint.ts";
import { IMPORTED_CFG_FILE } from "../run/rundir.ts";
import { SAE_FILE } from "./load.ts";

/**
 * Keys a resume may change. The optimiser's and the loss's act from the next step on; the log's,
 * the dead/dense statistics' and the kernels' choices change no weights up to the checkpoint;
 * `steps` may grow; `data` may name other paths to the same files (their content is checked
 * against the checkpoint's data state). Every other key, a variant's included, is fixed.
 */
const CHANGEABLE: ReadonlySet<string> = new Set([
  "steps",
  "lr",
  "warmup_steps",
  "weight_decay",
  "beta1",
  "beta2",
  "adam_eps",
  "l1",
  "recon_loss",
  "recon_only_steps",
  "log_every",
  "checkpoint_every",
  "dead_steps",
  "dense_threshold",
  "skip_bad_rows",
  "gemm_f16",
  "sparse_max_density",
  "sparse_min_flops",
  "data",
]);

/** A config as dotted keys ("synthetic.seed"). */
function flatten(cfg: Record<string, unknown>, prefix = ""): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(cfg)) {
    if (isPlainObject(v)) { for (const [kk, vv] of flatten(v, `${prefix}${k}.`)) out.set(kk, vv); }
    else out.set(prefix + k, v);
  }
  return out;
}

const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

/**
 * The changes from `before` (the config the checkpoint of `step` was trained with) to `after`
 * (the resumed run's), as "key old → new"; a change of a fixed key, or fewer steps than `step`,
 * is a UserError naming each key and what to do instead.
 */
export function resumeChanges(
  before: TrainConfig,
  after: TrainConfig,
  step: number,
  dir: string,
): string[] {
  const a = flatten(before as unknown as Record<string, unknown>);
  const b = flatten(after as unknown as Record<string, unknown>);
  const changed: string[] = [];
  const fixed: string[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (JSON.stringify(a.get(key)) === JSON.stringify(b.get(key))) continue;
    (CHANGEABLE.has(key) ? changed : fixed).push(key);
  }
  if (fixed.length > 0) {
    const now = fixed.map((k) => `${k} ${show(b.get(k))}`).join(", ");
    const then = fixed.map((k) => `${k} ${show(a.get(k))}`).join(", ");
    throw new UserError(
      `cannot resume ${dir} with ${now}: its checkpoint (step ${step}) was trained with ${then}, ` +
        `which stay fixed for a run's life (variant, seed, sizes, batch, initialisation, ` +
        `synthetic data and the variant's keys do); resume without changing them, or start a ` +
        `new run with another --out`,
    );
  }
  if (after.steps < step) {
    throw new UserError(
      `cannot resume ${dir} with steps ${after.steps}: its checkpoint is at step ${step} already; ` +
        `give --steps ${step} or more to continue it, or start a new run with another --out ` +
        `for a ${after.steps}-step SAE`,
    );
  }
  return changed.map((k) => `${k} ${show(a.get(k))} → ${show(b.get(k))}`);
}

/**
 * The config the checkpoint was trained with (saved in its meta), or null for checkpoints that
 * predate that (the caller then compares with config.yaml).
 */
export function checkpointConfig(ckpt: Checkpoint): TrainConfig | null {
  const saved = ckpt.meta.config;
  if (!isPlainObject(saved)) return null;
  try {
    return mergeConfig(DEFAULT_CONFIG, saved);
  } catch {
    return null;
  }
}

/**
 * The checkpoint a resume of `dir` continues from (the newest usable one; each unusable one
 * skipped with a warning), or null when the run stopped before its first checkpoint and holds no
 * finished SAE (nothing is lost by starting it from step 0). Anything else without a usable
 * checkpoint is refused: a finished SAE whose checkpoints are gone or corrupt, and an SAE made
 * by `sae import`, would otherwise be trained over from step 0.
 */
export async function resumePoint(
  dir: string,
  warn: (line: string) => void = (line) => console.error(line),
): Promise<Checkpoint | null> {
  const ckpt = await loadLatestCheckpoint(dir, { warn });
  if (ckpt) {
    if (!ckpt.headerVerified) {
      warn(
        `warning: ${ckpt.path} predates header checksums: its tensors are verified, its step, ` +
          `scale and data state are not`,
      );
    }
    return ckpt;
  }
  const files = (await listCheckpoints(dir)).length;
  const finished = await pathExists(join(dir, SAE_FILE), false);
  if (files === 0 && !finished) return null;
  const retrain =
    `to train it again from step 0, pass --overwrite instead of --resume (${dir} is kept until ` +
    `the new run finishes) or choose another --out`;
  if (await pathExists(join(dir, IMPORTED_CFG_FILE), false)) {
    throw new UserError(
      `cannot resume ${dir}: it holds an SAE made by 'sae import' (its weights may be the only ` +
        `copy) and no checkpoint to continue training from; train a new run with another --out`,
    );
  }
  if (files === 0) {
    throw new UserError(
      `cannot resume ${dir}: it holds a finished SAE (${SAE_FILE}) but no checkpoint in ` +
        `${join(dir, "checkpoints")} (deleted?) to continue from; ${retrain}`,
    );
  }
  throw new UserError(
    `cannot resume ${dir}: none of its ${files} checkpoint${files === 1 ? " is" : "s is"} usable ` +
      `(see the warnings above)${
        finished ? ` and it holds a finished SAE (${SAE_FILE})` : ""
      }; ${retrain}`,
  );
}
