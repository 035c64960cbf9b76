/**
 * The final metrics of a training run (metrics.json, and the table `sae train` prints): the trained
 * SAE's forward pass on {@link FINAL_EVAL_BATCHES} fresh batches of the run's own stream (rows it
 * never trained on), accumulated on the GPU by the same metrics kernel as the training log
 * (metrics.jsonl), so the two read alike; on synthetic data, ground-truth recovery too. `sae eval`
 * (./evaluate.ts) measures SAEBench's definitions over more rows: docs/metrics.md.
 */
import type { ActivationSource } from "../data/source.ts";
import { SyntheticSource } from "../data/synthetic.ts";
import { run } from "../gpu/dispatch.ts";
import { METRIC_WORDS, summarize } from "../kernels/metrics.ts";
import type { Session } from "../sae/session.ts";
import { groundTruthRecovery } from "./groundtruth.ts";

/** Batches of the final evaluation. */
const FINAL_EVAL_BATCHES = 8;

/** metrics.json: the final metrics of a run. */
export interface FinalMetrics extends Record<string, number> {
  /** Mean squared error per element. */
  mse: number;
  /** 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ each batch's mean (as metrics.jsonl). */
  explained_variance: number;
  l0: number;
  l1: number;
  /** Mean ‖x − x̂‖₂. */
  l2: number;
  /**
   * The reconstruction term + λ1·L1 (the loss the last step optimised, without the update, so
   * without the paper variant's orthogonality term, which the training step adds).
   */
  loss: number;
  /** Latents that have not fired for dead_steps steps (training steps and these batches). */
  dead_fraction: number;
  /** Mean fraction of latents firing on more than dense_threshold of a batch's rows. */
  dense_fraction: number;
  /** Rows evaluated. */
  eval_rows: number;
}

/**
 * Runs the session's forward pass (no update) on the next FINAL_EVAL_BATCHES batches of `src` and
 * returns the final metrics; on synthetic data adds `mmcs`, `recovered_at_0_9` and
 * `true_features`.
 */
export async function finalMetrics(session: Session, src: ActivationSource): Promise<FinalMetrics> {
  const { gpu, cfg } = session;
  const acc = gpu.buffer("eval metrics", METRIC_WORDS * 4);
  const forward = await session.forward(acc);
  const batch = new Float32Array(cfg.batch * cfg.d_in);
  for (let i = 0; i < FINAL_EVAL_BATCHES; i++) {
    await src.nextBatch(batch);
    gpu.write(session.bufs.x, batch);
    run(gpu, forward);
  }
  const m = summarize(await gpu.read(acc, METRIC_WORDS * 4));
  gpu.destroyBuffer(acc);
  const out: FinalMetrics = {
    mse: m.mse,
    explained_variance: m.explained_variance,
    l0: m.l0,
    l1: m.l1,
    l2: m.l2,
    loss: m.loss,
    dead_fraction: m.dead_fraction,
    dense_fraction: m.dense_fraction,
    eval_rows: FINAL_EVAL_BATCHES * cfg.batch,
  };
  if (src instanceof SyntheticSource) {
    const w = await session.readWeights();
    const rec = await groundTruthRecovery(gpu, src.truth.dictionary, w.wDec, cfg.d_in);
    out.mmcs = rec.mmcs;
    out.recovered_at_0_9 = rec.recovered;
    out.true_features = src.truth.dictionary.length / cfg.d_in;
  }
  return out;
}

/**
 * How many rows a run reads, and whether its final evaluation is on rows it did not train on: a
 * source that repeats after `totalRows` rows (activation files) holds too few rows to hold any out
 * once the initialisation sample, the training batches and the evaluation batches need more.
 * Returns null when the evaluation rows are held out, else the note to print.
 */
export function reusedRowsNote(
  src: ActivationSource,
  cfg: { init_rows: number; steps: number; batch: number },
): string | null {
  const total = src.totalRows;
  const read = cfg.init_rows + (cfg.steps + FINAL_EVAL_BATCHES) * cfg.batch;
  if (total === undefined || read <= total) return null;
  return `the data holds ${total} rows and the run reads ${read} (init_rows, ${cfg.steps} ` +
    `steps and ${FINAL_EVAL_BATCHES} evaluation batches of ${cfg.batch}): too few rows to hold ` +
    `any out, so the final metrics are on rows it trained on (sae eval --data OTHER_FILES ` +
    `measures held-out rows)`;
}

/**
 * The final metrics as an aligned table (what `sae train` prints at the end); `heldOut` false says
 * the rows evaluated were trained on (see {@link reusedRowsNote}).
 */
export function formatReport(
  metrics: Record<string, number>,
  outDir: string,
  heldOut = true,
): string {
  const rows: [string, string][] = [
    ["MSE (per element)", metrics.mse.toPrecision(4)],
    ["explained variance", metrics.explained_variance.toFixed(4)],
    ["L0 (active latents/row)", metrics.l0.toFixed(2)],
    ["L1 (mean ‖f‖₁)", metrics.l1.toPrecision(4)],
    ["dead latents", `${(100 * metrics.dead_fraction).toFixed(1)}%`],
    ["dense latents", `${(100 * metrics.dense_fraction).toFixed(1)}%`],
  ];
  if (metrics.mmcs !== undefined) {
    rows.push(["ground truth: MMCS", metrics.mmcs.toFixed(4)]);
    rows.push([
      "ground truth: recovered (cos > 0.9)",
      `${(100 * metrics.recovered_at_0_9).toFixed(1)}% of ${metrics.true_features}`,
    ]);
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  return [
    `final metrics (${metrics.eval_rows} ${
      heldOut ? "held-out rows" : "rows, not held out: the data has too few rows"
    }) — ${outDir}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`),
  ].join("\n");
}
