/**
 * Ablation sweeps: a base configuration layer plus a list of named runs, each a configuration
 * layer of its own (`overrides`). `defaultSweep()` builds the paper's ablations (§6.2 and the
 * mechanism switches of §4) and two λ1 sweeps for the L0/explained-variance frontiers;
 * `loadSweepFile()` reads a sweep from YAML.
 *
 * @example
 * ```ts
 * import { defaultSweep, resolveSweep } from "./sweep.ts";
 * for (const run of resolveSweep(defaultSweep("cpu"))) console.log(run.name, run.aliases);
 * ```
 */

import {
  DEFAULT_CONFIG,
  isPlainObject,
  mergeConfig,
  type PartialConfig,
  readYamlFile,
  type TrainConfig,
  validateConfig,
  validatePartialConfig,
} from "../config.ts";
import { UserError } from "../errors.ts";
import baselineYaml from "../../configs/baseline.yaml" with { type: "text" };
import paperYaml from "../../configs/paper.yaml" with { type: "text" };
import { parse as parseYaml } from "yaml";

/** One named run of a sweep: the layer it puts over the sweep's base. */
export interface SweepRun {
  name: string;
  overrides: PartialConfig;
}

/** A sweep: every run is DEFAULT_CONFIG < base < the run's overrides. */
export interface Sweep {
  base: PartialConfig;
  runs: SweepRun[];
}

/** A run after merging and deduplication: one training run, possibly under several names. */
export interface ResolvedRun {
  /** The name it trains under (its directory), the first of its names in sweep order. */
  name: string;
  /** Later runs of the sweep whose resolved config is identical (not trained again). */
  aliases: string[];
  /** The run's own layer (of `name`). */
  overrides: PartialConfig;
  /** DEFAULT_CONFIG < base < overrides. */
  cfg: TrainConfig;
}

/** The sizes `defaultSweep` knows. */
export const SCALES = ["cpu", "paper"] as const;
/** A size of the default sweep. */
export type Scale = typeof SCALES[number];

/** Factors of the base λ1 swept for the frontiers. */
const L1_FACTORS = [0.25, 0.5, 1, 2, 4] as const;

/**
 * The paper's baseline at the paper's size: configs/baseline.yaml (each value cited there), without
 * its `variant`, which each run sets. It is every run's base, so the `baseline` run is that file:
 * l2 + λ1·L1 from step 1, as the paper's baseline trained.
 */
export const PAPER_BASE: PartialConfig = (() => {
  const { variant: _, ...base } = validatePartialConfig(
    parseYaml(baselineYaml),
    "configs/baseline.yaml",
  );
  return base;
})();

/**
 * The method's layer over {@link PAPER_BASE}: what configs/paper.yaml sets and configs/baseline.yaml
 * does not (or sets otherwise): `variant: paper`, the recon-only phase (§4.4) and the method's
 * keys. PAPER_BASE < PAPER_METHOD is configs/paper.yaml.
 */
const PAPER_METHOD: PartialConfig = (() => {
  const paper = validatePartialConfig(parseYaml(paperYaml), "configs/paper.yaml");
  const base = validatePartialConfig(parseYaml(baselineYaml), "configs/baseline.yaml");
  const same = (k: string) =>
    canonicalJson(base[k as keyof PartialConfig]) ===
      canonicalJson(paper[k as keyof PartialConfig]);
  return Object.fromEntries(Object.entries(paper).filter(([k]) => !same(k))) as PartialConfig;
})();

/**
 * Sizes for the CPU adapter: each run takes seconds (about 15 s for the baseline on 2 cores with
 * lavapipe), so the default sweep finishes in minutes. The loss, λ1 and the method's settings stay
 * the defaults (squared loss, λ1 0.3: docs/method.md); the synthetic problem is the small one the
 * end-to-end test solves (128 true directions, a small feature hierarchy).
 */
export const CPU_BASE: PartialConfig = {
  d_in: 64,
  d_sae: 256,
  batch: 256,
  steps: 1500,
  warmup_steps: 100,
  init_rows: 1024,
  log_every: 100,
  checkpoint_every: 500,
  synthetic: { n_features: 128, n_parents: 4, children_per_parent: 2, n_groups: 4 },
};

/** The method's layer over {@link CPU_BASE}: the variant and its recon-only phase (§4.4). */
const CPU_METHOD: PartialConfig = { variant: "paper", recon_only_steps: 300 };

/** A number as a short name part: 0.07500000000000001 → "0.075". */
export function fmtNumber(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/**
 * The paper's ablations at `scale`: `baseline` (the scale's base, the full loss from step 1);
 * `method` (the variant with its recon-only phase); λ_ortho ∈ {0, 0.01,
 * 0.05, 0.1}; EMA decay γ ∈ {0.99, 0.999}; τ_base ∈ {0.1, 0.3, 0.5}; each mechanism switched off
 * alone (`no_threshold`, `no_ortho`, `no_ortho_importance`, `no_importance_lr`); and λ1 ×
 * {0.25, 0.5, 1, 2, 4} for the baseline (`baseline_l1=X`) and the method (`method_l1=X`).
 * Runs that resolve to the same config (e.g. `method` and `lambda_ortho=0.1`) train once: see
 * {@link resolveSweep}.
 */
export function defaultSweep(scale: Scale): Sweep {
  const base = scale === "paper" ? PAPER_BASE : CPU_BASE;
  const l1 = base.l1 ?? DEFAULT_CONFIG.l1;
  const baseline: PartialConfig = { variant: "baseline" };
  const method: PartialConfig = scale === "paper" ? PAPER_METHOD : CPU_METHOD;
  const runs: SweepRun[] = [
    { name: "baseline", overrides: baseline },
    { name: "method", overrides: method },
  ];
  const m = (name: string, layer: PartialConfig) =>
    runs.push({ name, overrides: { ...method, ...layer } });
  for (const v of [0, 0.01, 0.05, 0.1]) m(`lambda_ortho=${v}`, { lambda_ortho: v });
  for (const v of [0.99, 0.999]) m(`ema_decay=${v}`, { ema_decay: v });
  for (const v of [0.1, 0.3, 0.5]) m(`tau_base=${v}`, { tau_base: v });
  m("no_threshold", { adaptive_threshold: false });
  m("no_ortho", { lambda_ortho: 0 });
  m("no_ortho_importance", { ortho_importance: false });
  m("no_importance_lr", { importance_lr: 0 });
  for (const f of L1_FACTORS) {
    const v = Number((l1 * f).toPrecision(6));
    runs.push({ name: `baseline_l1=${fmtNumber(v)}`, overrides: { ...baseline, l1: v } });
  }
  for (const f of L1_FACTORS) {
    const v = Number((l1 * f).toPrecision(6));
    m(`method_l1=${fmtNumber(v)}`, { l1: v });
  }
  return { base, runs };
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.=+-]*$/;

/** Checks a run name: it becomes a directory name. */
function checkRunName(name: string, source: string): void {
  if (!NAME_RE.test(name) || name.length > 100) {
    throw new UserError(
      `run name '${name}' in ${source} is not usable as a directory name ` +
        `(letters, digits and _ . = + -, starting with a letter or digit, at most 100)`,
    );
  }
}

/** JSON with object keys sorted, so equal configs give equal strings. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/**
 * Validates every layer (errors name the run), merges DEFAULT_CONFIG < base < overrides and
 * merges runs whose resolved configs are identical into the first of them (the others become
 * its aliases). Order follows the sweep.
 */
export function resolveSweep(sweep: Sweep, source = "the sweep"): ResolvedRun[] {
  const base = validatePartialConfig(sweep.base, `${source}: base`);
  if (sweep.runs.length === 0) throw new UserError(`${source} has no runs`);
  const seen = new Set<string>();
  const byConfig = new Map<string, ResolvedRun>();
  const out: ResolvedRun[] = [];
  for (const run of sweep.runs) {
    checkRunName(run.name, source);
    if (seen.has(run.name)) throw new UserError(`run '${run.name}' appears twice in ${source}`);
    seen.add(run.name);
    const where = `${source}: run '${run.name}'`;
    const overrides = validatePartialConfig(run.overrides, where);
    const cfg = validateConfig(mergeConfig(base, overrides), where);
    const key = canonicalJson(cfg);
    const same = byConfig.get(key);
    if (same) {
      same.aliases.push(run.name);
      continue;
    }
    const resolved: ResolvedRun = { name: run.name, aliases: [], overrides, cfg };
    byConfig.set(key, resolved);
    out.push(resolved);
  }
  return out;
}

/** Flattens a layer to `key=value` pairs (`synthetic.n_features=128`), in the layer's order. */
export function flattenLayer(layer: PartialConfig): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(layer)) {
    if (v === undefined) continue;
    if (isPlainObject(v)) {
      for (const [sk, sv] of Object.entries(v)) if (sv !== undefined) out.push([`${k}.${sk}`, sv]);
    } else out.push([k, v]);
  }
  return out;
}

/** "variant=paper lambda_ortho=0.01" (empty string for no overrides). */
export function describeOverrides(layer: PartialConfig): string {
  return flattenLayer(layer).map(([k, v]) => `${k}=${v}`).join(" ");
}

/**
 * Reads a sweep from YAML:
 *
 * ```yaml
 * base: { d_in: 64, d_sae: 256, steps: 1500 }   # any config keys (optional)
 * runs:                                         # name: overrides (an empty value: none)
 *   baseline: { variant: baseline }
 *   method: { variant: paper }
 * ```
 *
 * Structural problems and bad keys or values stop with a one-line UserError naming the file and,
 * where it applies, the run.
 */
export async function loadSweepFile(path: string): Promise<Sweep> {
  return parseSweep(await readYamlFile(path, "sweep file"), path);
}

/** Checks the structure of a parsed sweep document (see {@link loadSweepFile}). */
function parseSweep(doc: unknown, source: string): Sweep {
  if (!isPlainObject(doc)) {
    throw new UserError(
      `${source} must be a mapping with 'runs' (and optionally 'base'), got ${
        doc === null || doc === undefined ? "an empty file" : Array.isArray(doc) ? "a list" : "a " +
          typeof doc
      }`,
    );
  }
  for (const key of Object.keys(doc)) {
    if (key !== "base" && key !== "runs") {
      throw new UserError(`unknown key '${key}' in ${source} (a sweep has only 'base' and 'runs')`);
    }
  }
  const rawBase = doc.base ?? {};
  if (!isPlainObject(rawBase)) {
    throw new UserError(`'base' in ${source} must be a mapping of config keys to values`);
  }
  const base = validatePartialConfig(rawBase, `${source}: base`);
  const rawRuns = doc.runs;
  if (!isPlainObject(rawRuns) || Object.keys(rawRuns).length === 0) {
    throw new UserError(
      `'runs' in ${source} must be a non-empty mapping of run names to config overrides ` +
        `(e.g. runs: { baseline: { variant: baseline } })`,
    );
  }
  const runs: SweepRun[] = [];
  for (const [name, raw] of Object.entries(rawRuns)) {
    checkRunName(name, source);
    const layer = raw ?? {};
    if (!isPlainObject(layer)) {
      throw new UserError(
        `run '${name}' in ${source} must be a mapping of config keys to values (or empty)`,
      );
    }
    runs.push({ name, overrides: validatePartialConfig(layer, `${source}: run '${name}'`) });
  }
  return { base, runs };
}
