/**
 * `sae ablate --preset lm`: the paper's method, the baseline and the other architectures on a real
 * language model (stories260K, ../shared/lm), scored by what the model loses when the SAE replaces
 * its activations (SAEBench's KL-div and CE-loss scores) on held-out text:
 *
 * 1. **Corpus.** Training text sampled from the model itself (`sae lm generate`'s
 *    {@link writeCorpus}); an existing corpus file is reused as it is. The evaluation text
 *    (tinystories-sample.txt) is never trained on.
 * 2. **Activations.** Each layer's hook harvested once into `OUT/acts/<hook>/`
 *    ({@link harvestModel}, resumed when it exists), then every run of that layer reads the files.
 * 3. **Runs.** Each variant over its sparsity knob at each layer ({@link LM_LAYERS} says which
 *    variants a layer gets), and the paper's mechanisms switched off one at a time at one λ1.
 * 4. **Evaluation.** Every finished run without an eval.json gets `sae eval --model --text`'s
 *    evaluation (src/eval/lm.ts, SAEBench's default 10 batches of 16 contexts of 128 tokens) into
 *    its directory; L0, explained variance and both scores are read from it, so every number is
 *    on the held-out text.
 * 5. **Report.** Frontiers read at fixed L0s (log-L0 interpolation, no extrapolation, as the
 *    architectures preset does), each ablation beside the baseline's and the method's frontier at
 *    its own L0, and one chart (lm.md, lm.json, lm.svg), with the run's times and tokens/s.
 *
 * @example
 * ```ts
 * import { lmPlan, lmSweep } from "./lm.ts";
 * console.log(lmSweep(lmPlan(), "runs/ablate-lm").runs.length);
 * ```
 * @module
 */
import { join } from "node:path";
import type { PartialConfig, TrainConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { evaluateLmRun } from "../eval/lm.ts";
import type { EvalReport } from "../eval/schema.ts";
import type { Gpu } from "../gpu/device.ts";
import { writeCorpus } from "../lm/corpus.ts";
import { harvestModel } from "../lm/harvest_model.ts";
import { atomicWrite, pathExists } from "../run/atomic.ts";
import {
  ARCH_VARIANTS,
  type ArchVariant,
  EVAL_JSON,
  interpolateAtL0,
  type Knob,
  type KnobKey,
  readJson,
} from "./architectures.ts";
import { architecturesSvg, type ArchMark } from "./plots.ts";
import { fmtNumber, type ResolvedRun, type Sweep } from "./sweep.ts";
import { METRICS_JSON } from "./table.ts";

/** One hooked layer of the study and what is trained there. */
export interface LmLayer {
  /** Short name: the run names' first part. */
  name: string;
  hook: string;
  /** The variants swept over their knobs here. */
  variants: readonly ArchVariant[];
  /** Whether the paper's ablations run here. */
  ablations: boolean;
}

/** One ablation of the paper's method: a layer over the method's runs. */
export interface LmAblation {
  name: string;
  /** What it switches off, in words. */
  what: string;
  layer: PartialConfig;
}

/** Everything the study depends on; {@link lmPlan} fills in the defaults. */
export interface LmPlan {
  /** The model (llama2.c `.bin`, Hugging Face directory or repo id). */
  model: string;
  /** Tokenizer file (default: the one beside the model). */
  tokenizer?: string;
  /** Held-out evaluation text, never trained on. */
  evalText: string[];
  /** The training corpus: reused when it exists, else sampled from the model. */
  corpus: string;
  /** Tokens to sample when the corpus is absent (and the sampling's settings). */
  corpusTokens: number;
  corpusSeed: number;
  corpusBatch: number;
  /** Tokens per context, BOS included, for harvest and evaluation. */
  context: number;
  /** Activation rows harvested per layer. */
  harvestTokens: number;
  /** Contexts per forward pass of the harvest. */
  harvestBatch: number;
  layers: readonly LmLayer[];
  knobs: Record<ArchVariant, Knob>;
  ablations: readonly LmAblation[];
  /** The method's λ1 the ablations run at (one of its knob's values, so `paper` is a run). */
  ablationL1: number;
  /** What every run shares (d_in must be the hook's width). */
  base: PartialConfig;
  /** Evaluation batches (SAEBench's n_eval_reconstruction_batches) and contexts per batch. */
  evalBatches: number;
  evalBatch: number;
  /** The L0s the frontiers are compared at. */
  targets: number[];
}

/** stories260K's checkpoint, relative to the project root (../shared/lm/README.md). */
const LM_MODEL = "../shared/lm/stories260K/stories260K.bin";
/** The held-out evaluation text (TinyStories, the model's own domain). */
const LM_EVAL_TEXT = "../shared/lm/text/tinystories-sample.txt";

/**
 * Layer 2 (of 5) gets every variant and the ablations; layer 4 the baseline, the method and TopK
 * only, which keeps the preset within the CPU budget.
 */
export const LM_LAYERS: readonly LmLayer[] = [
  { name: "L2", hook: "blocks.2.hook_resid_pre", variants: ARCH_VARIANTS, ablations: true },
  {
    name: "L4",
    hook: "blocks.4.hook_resid_pre",
    variants: ["baseline", "paper", "topk"],
    ablations: false,
  },
];

/**
 * Four values per knob; k is L0 by construction. λ1 ∈ {0.5, 1, 2, 4} gives L0 ≈ 4-84 at 1000 steps
 * (λ1 8 left L0 < 1.1 with negative scores). The baseline and the method share λ1 values, so the
 * table also shows what the same λ1 does to each. The method keeps its recon-only first phase
 * (§4.4). JumpReLU starts its thresholds at 0.5, not the architectures preset's 0.1: log θ moves
 * about lr a step under Adam, so from 0.1 the thresholds cannot rise far enough in 1000 steps and
 * L0 stops near 10 whatever λ0 (pilot runs, training L0 at step 1000: λ0 2, 8, 32 → 12.4, 10.6,
 * 10.3); from 0.5, λ0 0.03-16 spans L0 ≈ 5.6-30 (docs/results.md).
 */
export const LM_KNOBS: Record<ArchVariant, Knob> = {
  baseline: { key: "l1", values: [0.5, 1, 2, 4], extra: {} },
  paper: { key: "l1", values: [0.5, 1, 2, 4], extra: { recon_only_steps: 300 } },
  topk: { key: "k", values: [4, 8, 16, 32], extra: {} },
  batchtopk: { key: "k", values: [4, 8, 16, 32], extra: {} },
  jumprelu: {
    key: "l0_coefficient",
    values: [0.03, 0.3, 2, 16],
    extra: { jumprelu_init_threshold: 0.5 },
  },
  matryoshka: { key: "k", values: [4, 8, 16, 32], extra: {} },
};

/** The paper's mechanisms switched off one at a time (as the synthetic ablation does). */
export const LM_ABLATIONS: readonly LmAblation[] = [
  { name: "no_threshold", what: "adaptive_threshold false", layer: { adaptive_threshold: false } },
  { name: "static_threshold", what: "β = 0: τ ≡ τ_base", layer: { tau_beta: 0 } },
  { name: "no_ortho", what: "λ_ortho = 0", layer: { lambda_ortho: 0 } },
  { name: "no_importance_lr", what: "ρ = 0", layer: { importance_lr: 0 } },
  {
    name: "threshold_only",
    what: "λ_ortho = 0, ρ = 0",
    layer: { lambda_ortho: 0, importance_lr: 0 },
  },
];

/**
 * What every run shares: the CPU sweep's optimiser, d_sae 512 (8× the width), inputs normalised to
 * mean norm √d_in (what `auto` picks for files, stated so it is in config.yaml), and 1000 steps of
 * 256 rows (256k of the 1M harvested rows a layer): with 41 runs, each evaluated on the model, that
 * keeps the preset near half an hour on 2 shared CPU cores. The L1 variants are far from converged
 * there (at 3000 steps their L0 halves and their KL-div score rises by 0.02-0.09; TopK's by 0.01).
 */
const LM_BASE: PartialConfig = {
  d_in: 64,
  d_sae: 512,
  batch: 256,
  steps: 1000,
  warmup_steps: 100,
  log_every: 100,
  checkpoint_every: 500,
  normalize_activations: "expected_average_only_in",
};

/** The preset's plan: the defaults above, with `o` over them. */
export function lmPlan(o: Partial<LmPlan> = {}): LmPlan {
  return {
    model: LM_MODEL,
    evalText: [LM_EVAL_TEXT],
    corpus: "runs/lm-corpus.jsonl",
    corpusTokens: 2_000_000,
    corpusSeed: 1,
    corpusBatch: 64,
    context: 128,
    harvestTokens: 1_000_000,
    harvestBatch: 16,
    layers: LM_LAYERS,
    knobs: LM_KNOBS,
    ablations: LM_ABLATIONS,
    ablationL1: 2,
    base: LM_BASE,
    evalBatches: 10,
    evalBatch: 16,
    targets: [8, 16, 24],
    ...o,
  };
}

/** Where a layer's harvest goes inside the preset's directory. */
export function actsDir(outDir: string, hook: string): string {
  return join(outDir, "acts", hook);
}

/** A run's name: `<layer>.<variant>.<knob>=<value>`, or `<layer>.ablate.<name>`. */
function lmRunName(layer: string, variant: string, key: string, value: number): string {
  return `${layer}.${variant}.${key}=${fmtNumber(value)}`;
}

/** The preset's runs as a sweep; each run reads its layer's harvest in `outDir`. */
export function lmSweep(plan: LmPlan, outDir: string): Sweep {
  const runs: Sweep["runs"] = [];
  for (const layer of plan.layers) {
    const data = actsDir(outDir, layer.hook);
    for (const variant of layer.variants) {
      const knob = plan.knobs[variant];
      for (const value of knob.values) {
        runs.push({
          name: lmRunName(layer.name, variant, knob.key, value),
          overrides: { data, ...knob.extra, variant, [knob.key]: value },
        });
      }
    }
    if (!layer.ablations) continue;
    const method: PartialConfig = {
      data,
      ...plan.knobs.paper.extra,
      variant: "paper",
      l1: plan.ablationL1,
    };
    for (const a of plan.ablations) {
      runs.push({ name: `${layer.name}.ablate.${a.name}`, overrides: { ...method, ...a.layer } });
    }
  }
  return { base: plan.base, runs };
}

// --- Corpus and harvests -----------------------------------------------------------------------

/** How long each stage took, kept across invocations in `OUT/lm-times.json`. */
export interface LmTimes {
  corpus?: { seconds: number; tokens: number; decoded_per_s: number };
  /** Per hook: the harvest's seconds and tokens through the model (BOS included). */
  harvest: Record<string, { seconds: number; model_tokens: number; rows: number }>;
  /** Per run: seconds of train() and rows trained on (steps × batch). */
  train: Record<string, { seconds: number; rows: number }>;
  /** Per run: seconds of the evaluation and tokens through the model (3 passes). */
  eval: Record<string, { seconds: number; model_tokens: number }>;
}

const TIMES_JSON = "lm-times.json";

/** The times recorded so far in `outDir` (empty when none). */
export async function readTimes(outDir: string): Promise<LmTimes> {
  const t = await readJson(join(outDir, TIMES_JSON)) as Partial<LmTimes> | null;
  return { harvest: {}, train: {}, eval: {}, ...t };
}

async function writeTimes(outDir: string, t: LmTimes): Promise<void> {
  await atomicWrite(join(outDir, TIMES_JSON), JSON.stringify(t, null, 2) + "\n");
}

/**
 * Before the runs: the model and evaluation text must exist; the corpus is sampled if absent; each
 * layer is harvested (or its harvest resumed, which checks it was made from the same model, text
 * and sizes). Times go into lm-times.json.
 */
export async function prepareLm(
  plan: LmPlan,
  outDir: string,
  opts: { gpu?: Gpu; log?: (line: string) => void } = {},
): Promise<LmTimes> {
  const log = opts.log ?? ((line: string) => console.error(line));
  for (const [path, what] of [[plan.model, "model"], ...plan.evalText.map((t) => [t, "text"])]) {
    if (!(await pathExists(path))) {
      throw new UserError(
        `the lm preset's ${what} ${path} is missing (../shared/lm holds stories260K and its ` +
          `held-out text): run from the project root of a checkout that has ../shared/lm`,
      );
    }
  }
  await Deno.mkdir(outDir, { recursive: true });
  const times = await readTimes(outDir);
  if (!(await pathExists(plan.corpus))) {
    log(`sampling ${plan.corpusTokens} tokens of corpus from ${plan.model} → ${plan.corpus}`);
    const c = await writeCorpus({
      model: plan.model,
      tokenizer: plan.tokenizer,
      tokens: plan.corpusTokens,
      temperature: 1,
      seed: plan.corpusSeed,
      batch: plan.corpusBatch,
      out: plan.corpus,
      flag: "--corpus",
      gpu: opts.gpu,
    });
    times.corpus = { seconds: c.seconds, tokens: c.tokens, decoded_per_s: c.decodedPerSecond };
    await writeTimes(outDir, times);
  } else log(`corpus: ${plan.corpus} (exists, reused)`);
  const width = plan.base.d_in;
  for (const layer of plan.layers) {
    const r = await harvestModel({
      model: plan.model,
      tokenizer: plan.tokenizer ?? null,
      hook: layer.hook,
      text: [plan.corpus],
      context: plan.context,
      tokens: plan.harvestTokens,
      outDir: actsDir(outDir, layer.hook),
      dtype: "f32",
      shardRows: null,
      batch: plan.harvestBatch,
      shuffleSeed: null,
      resume: true,
      progress: false,
    }, { gpu: opts.gpu, log });
    if (width !== undefined && r.manifest.d !== width) {
      throw new UserError(
        `${layer.hook} of ${plan.model} is ${r.manifest.d} wide but the preset's d_in is ` +
          `${width}: pass --set d_in=${r.manifest.d}`,
      );
    }
    if (r.written > 0) {
      times.harvest[layer.hook] = {
        seconds: r.seconds,
        model_tokens: r.modelTokens,
        rows: r.manifest.tokens,
      };
      await writeTimes(outDir, times);
      log(
        `harvested ${layer.hook}: ${r.manifest.tokens} rows in ${r.seconds.toFixed(0)} s ` +
          `(${Math.round(r.modelTokens / r.seconds)} tokens/s through the model)`,
      );
    } else log(`harvest of ${layer.hook}: complete, reused`);
  }
  return times;
}

// --- Evaluation and the report -----------------------------------------------------------------

/** One evaluated run: the held-out metrics the comparison reads. */
export interface LmPoint {
  run: string;
  layer: string;
  variant: string;
  /** The ablation's name, or null for a knob run. */
  ablation: string | null;
  knob: KnobKey;
  value: number;
  /** On the held-out text's tokens (eval.json's core metrics). */
  l0: number;
  explained_variance: number;
  kl_div_score: number;
  ce_loss_score: number;
  /** Mean next-token CE with the SAE spliced in, and clean, nats. */
  ce_loss_with_sae: number;
  ce_loss_without_sae: number;
  dead_fraction: number;
}

/** The metrics compared at matched L0, in table order. */
export const LM_FIELDS = ["kl_div_score", "ce_loss_score", "explained_variance"] as const;
/** One of {@link LM_FIELDS}. */
export type LmField = typeof LM_FIELDS[number];

const LM_HEADERS: Record<LmField, string> = {
  kl_div_score: "KL-div score",
  ce_loss_score: "CE-loss score",
  explained_variance: "EV",
};

function knobOf(plan: LmPlan, cfg: TrainConfig): { knob: KnobKey; value: number } {
  const knob = plan.knobs[cfg.variant as ArchVariant]?.key ?? "l1";
  return { knob, value: cfg[knob] };
}

/** The evaluated runs' points (runs without eval.json's `lm` are left out). */
async function lmPoints(
  plan: LmPlan,
  runs: ResolvedRun[],
  outDir: string,
): Promise<LmPoint[]> {
  const out: LmPoint[] = [];
  for (const run of runs) {
    const ev = await readJson(join(outDir, run.name, EVAL_JSON)) as EvalReport | null;
    if (!ev?.lm) continue;
    const [layer, kind, rest] = run.name.split(".");
    out.push({
      run: run.name,
      layer,
      variant: run.cfg.variant,
      ablation: kind === "ablate" ? rest : null,
      ...knobOf(plan, run.cfg),
      l0: ev.core.l0,
      explained_variance: ev.core.explained_variance,
      kl_div_score: ev.lm.kl_div_score,
      ce_loss_score: ev.lm.ce_loss_score,
      ce_loss_with_sae: ev.lm.ce_loss_with_sae,
      ce_loss_without_sae: ev.lm.ce_loss_without_sae,
      dead_fraction: ev.core.dead_fraction,
    });
  }
  return out;
}

/** One variant's row at one L0: its knob there and each field, interpolated (null: not reached). */
export interface LmMatchedRow {
  variant: string;
  knob: KnobKey;
  value: number | null;
  metrics: Record<LmField, number | null>;
}

/** The frontier of `variant` at `layer` (knob runs only, ablations excluded). */
function frontier(points: LmPoint[], layer: string, variant: string): LmPoint[] {
  return points.filter((p) => p.layer === layer && p.variant === variant && p.ablation === null);
}

/** Every variant of `layer` read off its frontier at L0 `target`. */
export function lmMatched(points: LmPoint[], layer: string, target: number): LmMatchedRow[] {
  const rows: LmMatchedRow[] = [];
  for (const variant of ARCH_VARIANTS) {
    const front = frontier(points, layer, variant);
    if (front.length === 0) continue;
    rows.push({
      variant,
      knob: front[0].knob,
      value: interpolateAtL0(front, target, (p) => p.value, true),
      metrics: Object.fromEntries(
        LM_FIELDS.map((f) => [f, interpolateAtL0(front, target, (p) => p[f])]),
      ) as Record<LmField, number | null>,
    });
  }
  return rows;
}

/** An ablation beside the baseline's and the method's frontiers at its own L0. */
export interface LmAblationRow {
  point: LmPoint;
  what: string;
  baseline: Record<LmField, number | null>;
  paper: Record<LmField, number | null>;
}

/** The ablation rows of `layer`, the method at the ablations' λ1 first. */
export function lmAblationRows(plan: LmPlan, points: LmPoint[], layer: string): LmAblationRow[] {
  const at = (variant: string, l0: number) =>
    Object.fromEntries(
      LM_FIELDS.map((f) => [f, interpolateAtL0(frontier(points, layer, variant), l0, (p) => p[f])]),
    ) as Record<LmField, number | null>;
  const method = points.find((p) =>
    p.layer === layer && p.variant === "paper" && p.ablation === null &&
    p.value === plan.ablationL1
  );
  const rows: LmAblationRow[] = [];
  const add = (p: LmPoint, what: string) =>
    rows.push({ point: p, what, baseline: at("baseline", p.l0), paper: at("paper", p.l0) });
  if (method) add(method, `the method, λ1 ${fmtNumber(plan.ablationL1)}`);
  for (const a of plan.ablations) {
    const p = points.find((q) => q.layer === layer && q.ablation === a.name);
    if (p) add(p, a.what);
  }
  return rows;
}

function f3(v: number | null): string {
  return v === null ? "—" : v.toFixed(3);
}

/** lm.md. */
function lmMarkdown(plan: LmPlan, points: LmPoint[], times: LmTimes): string {
  const out = [
    "# The paper on a real language model",
    "",
    `Model ${plan.model}; training text ${plan.corpus} (sampled from the model); evaluation ` +
    `text ${plan.evalText.join(", ")} (held out), ${plan.evalBatches} batches of ` +
    `${plan.evalBatch} contexts of ${plan.context} tokens, BOS/EOS kept as they are. L0, EV and ` +
    "the KL-div and CE-loss scores (SAEBench) are on those tokens. Matched-L0 values are read " +
    "off each variant's frontier, linear in log L0 between the two runs that bracket it (—: " +
    "not reached).",
    "",
  ];
  for (const layer of plan.layers) {
    const hook = layer.hook;
    out.push(`## ${layer.name}: ${hook}`, "");
    for (const target of plan.targets) {
      const rows = lmMatched(points, layer.name, target);
      if (rows.length === 0) continue;
      out.push(`L0 = ${fmtNumber(target)}:`, "");
      out.push(
        `| variant | knob at this L0 | ${LM_FIELDS.map((f) => LM_HEADERS[f]).join(" | ")} |`,
      );
      out.push(`| --- | ---: | ${LM_FIELDS.map(() => "---:").join(" | ")} |`);
      for (const r of rows) {
        const knob = r.value === null
          ? "—"
          : `${r.knob} ${fmtNumber(Number(r.value.toPrecision(3)))}`;
        out.push(
          `| ${r.variant} | ${knob} | ${LM_FIELDS.map((f) => f3(r.metrics[f])).join(" | ")} |`,
        );
      }
      out.push("");
    }
    if (!layer.ablations) continue;
    const abl = lmAblationRows(plan, points, layer.name);
    if (abl.length === 0) continue;
    out.push(
      `Ablations of the method (λ1 ${
        fmtNumber(plan.ablationL1)
      }), each beside the baseline's and ` +
        "the method's frontiers at its own L0 (KL / CE score / EV):",
      "",
      "| run | change | L0 | KL-div score | CE-loss score | EV | baseline at this L0 | method at this L0 |",
      "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    );
    const triple = (m: Record<LmField, number | null>) =>
      LM_FIELDS.map((f) => f3(m[f])).join(" / ");
    for (const r of abl) {
      const p = r.point;
      out.push(
        `| ${p.run} | ${r.what} | ${p.l0.toFixed(2)} | ${f3(p.kl_div_score)} | ${
          f3(p.ce_loss_score)
        } | ${f3(p.explained_variance)} | ${triple(r.baseline)} | ${triple(r.paper)} |`,
      );
    }
    out.push("");
  }
  out.push(
    "## Every run",
    "",
    "| run | L0 | KL-div score | CE-loss score | CE with SAE / clean | EV | dead |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const p of points) {
    out.push(
      `| ${p.run} | ${p.l0.toFixed(2)} | ${f3(p.kl_div_score)} | ${f3(p.ce_loss_score)} | ${
        p.ce_loss_with_sae.toFixed(3)
      } / ${p.ce_loss_without_sae.toFixed(3)} | ${f3(p.explained_variance)} | ${
        (100 * p.dead_fraction).toFixed(1)
      }% |`,
    );
  }
  out.push("", "## Time", "", ...timesLines(times), "");
  return out.join("\n") + "\n";
}

/** Totals and rates of the recorded times, one line each. */
function timesLines(t: LmTimes): string[] {
  const lines: string[] = [];
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  if (t.corpus) {
    lines.push(
      `- corpus: ${t.corpus.tokens} tokens sampled in ${t.corpus.seconds.toFixed(0)} s ` +
        `(${Math.round(t.corpus.decoded_per_s)} tokens/s decoded)`,
    );
  }
  for (const [hook, h] of Object.entries(t.harvest)) {
    lines.push(
      `- harvest ${hook}: ${h.rows} rows in ${h.seconds.toFixed(0)} s, ` +
        `${Math.round(h.model_tokens / h.seconds)} tokens/s through the model`,
    );
  }
  const tr = Object.values(t.train);
  if (tr.length > 0) {
    const s = sum(tr.map((x) => x.seconds)), rows = sum(tr.map((x) => x.rows));
    lines.push(
      `- training: ${tr.length} runs in ${s.toFixed(0)} s (${(s / tr.length).toFixed(1)} s a ` +
        `run, set-up and final metrics included), ${Math.round(rows / s)} activation rows/s`,
    );
  }
  const ev = Object.values(t.eval);
  if (ev.length > 0) {
    const s = sum(ev.map((x) => x.seconds)), tok = sum(ev.map((x) => x.model_tokens));
    lines.push(
      `- evaluation: ${ev.length} runs in ${s.toFixed(0)} s, ${Math.round(tok / s)} tokens/s ` +
        `through the model (3 passes: clean, spliced, zero-ablated)`,
    );
  }
  return lines;
}

/** What {@link finishLm} wrote. */
export interface LmResult {
  points: LmPoint[];
  times: LmTimes;
  files: string[];
}

/**
 * After the runs: records their training times (`trained`: seconds per run name, from this
 * invocation) and forgets those of runs not in `runs`, evaluates every finished run that has no eval.json with the language model, then
 * writes lm.md, lm.json and lm.svg into `outDir`.
 */
export async function finishLm(
  plan: LmPlan,
  runs: ResolvedRun[],
  outDir: string,
  opts: { trained?: Record<string, number>; gpu?: Gpu; log?: (line: string) => void } = {},
): Promise<LmResult> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const times = await readTimes(outDir);
  // Times of runs the plan no longer has (a knob value changed) would skew the totals.
  const names = new Set(runs.map((r) => r.name));
  for (const recorded of [times.train, times.eval]) {
    for (const name of Object.keys(recorded)) if (!names.has(name)) delete recorded[name];
  }
  for (const [name, seconds] of Object.entries(opts.trained ?? {})) {
    const cfg = runs.find((r) => r.name === name)?.cfg;
    if (cfg) times.train[name] = { seconds, rows: cfg.steps * cfg.batch };
  }
  await writeTimes(outDir, times);
  for (const run of runs) {
    const dir = join(outDir, run.name);
    if (await readJson(join(dir, METRICS_JSON)) === null) continue;
    if ((await readJson(join(dir, EVAL_JSON)) as EvalReport | null)?.lm) continue;
    const t0 = performance.now();
    const report = await evaluateLmRun(dir, {
      model: plan.model,
      tokenizer: plan.tokenizer,
      text: plan.evalText,
      batches: plan.evalBatches,
      batch: plan.evalBatch,
      context: plan.context,
      out: join(dir, EVAL_JSON),
      gpu: opts.gpu,
    });
    const seconds = (performance.now() - t0) / 1000;
    const lm = report.lm!;
    times.eval[run.name] = {
      seconds,
      model_tokens: 3 * lm.batches * lm.batch_size_prompts * lm.context_size,
    };
    await writeTimes(outDir, times);
    log(
      `evaluated ${run.name} in ${seconds.toFixed(1)} s: L0 ${report.core.l0.toFixed(2)} | KL ` +
        `score ${lm.kl_div_score.toFixed(3)} | CE score ${lm.ce_loss_score.toFixed(3)}`,
    );
  }
  const points = await lmPoints(plan, runs, outDir);
  const marks: ArchMark[] = points.filter((p) => p.ablation === null).flatMap((p) =>
    LM_FIELDS.map((f) => ({
      data: `${p.layer} (${plan.layers.find((l) => l.name === p.layer)?.hook ?? ""})`,
      variant: p.variant,
      metric: LM_HEADERS[f],
      l0: p.l0,
      value: p[f],
      run: p.run,
    }))
  );
  const files: [string, string][] = [
    ["lm.md", lmMarkdown(plan, points, times)],
    [
      "lm.json",
      JSON.stringify(
        {
          plan,
          points,
          matched: plan.layers.map((l) => ({
            layer: l.name,
            hook: l.hook,
            tables: plan.targets.map((target) => ({
              target,
              rows: lmMatched(points, l.name, target),
            })),
            ablations: l.ablations ? lmAblationRows(plan, points, l.name) : [],
          })),
          times,
        },
        null,
        2,
      ) + "\n",
    ],
    [
      "lm.svg",
      await architecturesSvg(marks, {
        title: "Sparsity frontiers on stories260K (held-out text)",
        metrics: LM_FIELDS.map((f) => LM_HEADERS[f]),
        columnTitle: "layer",
      }),
    ],
  ];
  const paths: string[] = [];
  for (const [name, text] of files) {
    const path = join(outDir, name);
    await atomicWrite(path, text);
    paths.push(path);
  }
  return { points, times, files: paths };
}
