/**
 * The training configuration: one flat-ish object with snake_case keys, the same names in YAML
 * files, in config.yaml of a run directory and (with '-' for '_') as CLI flags. The core keys are
 * declared here; each SAE variant declares its own in its file (src/sae/paper.ts), and the
 * registry (src/sae/variants.ts) brings them in: a new variant adds keys without touching this file.
 */

import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { describeRule, type Rule, satisfies } from "./config_keys.ts";
import {
  CORE_DEFAULTS,
  CORE_RULES,
  type CoreConfig,
  DEFAULT_SYNTHETIC,
  SYNTHETIC_RULES,
  type SyntheticConfig,
} from "./config_core.ts";
import { UserError } from "./errors.ts";
import { type VariantConfig, type VariantName, VARIANTS } from "./sae/variants.ts";

export { type CoreConfig, DEFAULT_SYNTHETIC, type SyntheticConfig } from "./config_core.ts";

/** Every option of a training run: the core keys and every registered variant's keys. */
export type TrainConfig = Omit<CoreConfig, "variant"> & { variant: VariantName } & VariantConfig;

/** The variants' keys (declared in their files) with their defaults and rules, in registry order. */
const VARIANT_KEYS = VARIANTS.flatMap((v) =>
  Object.entries(v.keys).map(([k, spec]) => ({ key: k, spec, variant: v.name }))
);
for (const [i, { key, variant }] of VARIANT_KEYS.entries()) {
  if (
    key in CORE_DEFAULTS || key === "synthetic" || VARIANT_KEYS.findIndex((x) => x.key === key) < i
  ) {
    throw new Error(`config key '${key}' of variant '${variant}' is declared twice`);
  }
}

/**
 * Defaults of every training option, in the order config.yaml lists them: the core keys, each
 * variant's keys, the synthetic generator's section.
 */
export const DEFAULT_CONFIG: TrainConfig = {
  ...CORE_DEFAULTS,
  ...Object.fromEntries(VARIANT_KEYS.map(({ key, spec }) => [key, spec.default])),
  synthetic: DEFAULT_SYNTHETIC,
} as TrainConfig;

// ---------------------------------------------------------------------------------------------
// Validation, loading, merging and overrides. Every check is driven by DEFAULT_CONFIG's keys plus
// one rule per key below, so a new key needs a default and a rule and nothing else.

/** A layer of configuration (a YAML file, --set overrides, flags): any subset of the keys. */
export type PartialConfig =
  & Partial<Omit<TrainConfig, "synthetic">>
  & { synthetic?: Partial<SyntheticConfig> };

/** The rule of every top-level key but `synthetic`: the core's and the variants'. */
const TRAIN_RULES: Record<string, Rule> = {
  variant: { kind: "enum", values: VARIANTS.map((v) => v.name) },
  ...CORE_RULES,
  ...Object.fromEntries(VARIANT_KEYS.map(({ key, spec }) => [key, spec.rule])),
};

/** The rule of a key: its explicit one, or one derived from its default's type. */
function ruleFor(rules: Partial<Record<string, Rule>>, defaults: object, key: string): Rule {
  const explicit = rules[key];
  if (explicit !== undefined) return explicit;
  const d = (defaults as Record<string, unknown>)[key];
  if (typeof d === "boolean") return { kind: "bool" };
  if (typeof d === "string") return { kind: "string" };
  return { kind: "number" };
}

/** Whether `key` has an explicit rule (tests check that every default key has one). */
export function hasExplicitRule(key: string): boolean {
  const [head, rest] = splitFirst(key);
  if (rest === undefined) return head in TRAIN_RULES;
  return head === "synthetic" && rest in SYNTHETIC_RULES;
}

function splitFirst(key: string): [string, string | undefined] {
  const dot = key.indexOf(".");
  return dot < 0 ? [key, undefined] : [key.slice(0, dot), key.slice(dot + 1)];
}

/** A value as the user would have written it: 'abc' quoted, numbers and objects as JSON. */
function showValue(v: unknown): string {
  if (typeof v === "string") return `'${v}'`;
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Whether `v` is a mapping (a plain object, as YAML and JSON parse one). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Levenshtein distance (small strings only: config keys). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** Every key as a dotted path: "lr", ..., "synthetic.n_features", ... */
export function configKeys(): string[] {
  const keys: string[] = [];
  for (const [k, v] of Object.entries(DEFAULT_CONFIG)) {
    if (k === "synthetic") {
      for (const s of Object.keys(v as SyntheticConfig)) keys.push(`synthetic.${s}`);
    } else keys.push(k);
  }
  return keys;
}

/** The known key closest to `key` (dotted paths; "n_features" finds "synthetic.n_features"). */
function closestKey(key: string): string {
  let best = "";
  let bestD = Infinity;
  for (const candidate of configKeys()) {
    const leaf = candidate.slice(candidate.lastIndexOf(".") + 1);
    const d = Math.min(editDistance(key, candidate), editDistance(key, leaf) + 0.5);
    if (d < bestD) {
      bestD = d;
      best = candidate;
    }
  }
  return best;
}

function checkSection(
  obj: Record<string, unknown>,
  defaults: object,
  rules: Partial<Record<string, Rule>>,
  prefix: string,
  source: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const path = prefix + key;
    if (!Object.hasOwn(defaults, key)) {
      throw new UserError(
        `unknown config key '${path}' in ${source} (did you mean '${closestKey(path)}'?)`,
      );
    }
    if (prefix === "" && key === "synthetic") {
      if (!isPlainObject(value)) {
        throw new UserError(
          `invalid value ${showValue(value)} for 'synthetic' in ${source} ` +
            `(expected a mapping of synthetic.* keys)`,
        );
      }
      out[key] = checkSection(value, DEFAULT_SYNTHETIC, SYNTHETIC_RULES, "synthetic.", source);
      continue;
    }
    const rule = ruleFor(rules, defaults, key);
    if (!satisfies(rule, value)) {
      throw new UserError(
        `invalid value ${showValue(value)} for '${path}' in ${source} (expected ${
          describeRule(rule)
        })`,
      );
    }
    out[key] = value;
  }
  return out;
}

/**
 * Checks one configuration layer: every key known, every value of the right type and range.
 * Throws a one-line UserError naming the key, the value, `source` and what is allowed.
 *
 * @example
 * ```ts
 * validatePartialConfig({ lr: 1e-3, synthetic: { n_features: 512 } }, "--set"); // ok
 * validatePartialConfig({ d_sea: 1 }, "x.yaml"); // unknown config key 'd_sea' in x.yaml (did you mean 'd_sae'?)
 * ```
 */
export function validatePartialConfig(obj: unknown, source: string): PartialConfig {
  if (!isPlainObject(obj)) {
    throw new UserError(
      `${source} must be a mapping of config keys to values, got ${
        Array.isArray(obj) ? "a list" : showValue(obj)
      }`,
    );
  }
  return checkSection(obj, DEFAULT_CONFIG, TRAIN_RULES, "", source) as PartialConfig;
}

/**
 * Validates `obj` (see {@link validatePartialConfig}) and fills every missing key from
 * DEFAULT_CONFIG. The result shares nothing with DEFAULT_CONFIG or `obj`.
 *
 * @example
 * ```ts
 * const cfg = validateConfig({ steps: 10 }, "test"); // cfg.lr === DEFAULT_CONFIG.lr
 * ```
 */
export function validateConfig(obj: unknown, source: string): TrainConfig {
  return mergeConfig(DEFAULT_CONFIG, validatePartialConfig(obj, source));
}

/**
 * Reads a YAML config file and validates its keys and values (missing keys stay missing: merge it
 * over DEFAULT_CONFIG). An empty file is an empty layer.
 */
export async function loadConfigFile(path: string): Promise<PartialConfig> {
  const parsed = await readYamlFile(path, "config file");
  if (parsed === null || parsed === undefined) return {};
  return validatePartialConfig(parsed, path);
}

/**
 * Reads and parses a YAML file; a missing file, a directory or a syntax error becomes a one-line
 * UserError (`what` names the kind of file, e.g. "sweep file"; syntax errors give file:line:col).
 */
export async function readYamlFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new UserError(`${what} not found: ${path}`);
    if (err instanceof Deno.errors.IsADirectory) {
      throw new UserError(`${what} ${path} is a directory; pass a .yaml file`);
    }
    throw err;
  }
  try {
    return parseYaml(text);
  } catch (err) {
    const e = err as { linePos?: { line: number; col: number }[]; message?: string };
    const pos = e.linePos?.[0];
    const where = pos ? `${path}:${pos.line}:${pos.col}` : path;
    // The yaml package appends " at line L, column C:" and a code frame; keep the first clause.
    const reason = String(e.message ?? err).split("\n")[0].replace(
      / at line \d+, column \d+:?$/,
      "",
    );
    throw new UserError(`${where}: YAML syntax error: ${reason}`);
  }
}

/**
 * Deep-merges configuration layers left to right: later layers win, nested sections merge key by
 * key, `undefined` values are skipped. Returns a fresh object; the inputs are not modified.
 *
 * @example
 * ```ts
 * mergeConfig(DEFAULT_CONFIG, { synthetic: { n_features: 512 } }).synthetic.mean_l0; // 6
 * ```
 */
export function mergeConfig(base: TrainConfig, ...overrides: PartialConfig[]): TrainConfig;
export function mergeConfig(base: PartialConfig, ...overrides: PartialConfig[]): PartialConfig;
export function mergeConfig(base: PartialConfig, ...overrides: PartialConfig[]): PartialConfig {
  let out = deepMerge({}, base);
  for (const layer of overrides) out = deepMerge(out, layer);
  return out as PartialConfig;
}

function deepMerge(a: Record<string, unknown>, b: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    if (isPlainObject(v)) out[k] = deepMerge(isPlainObject(prev) ? prev : {}, v);
    else out[k] = Array.isArray(v) ? structuredClone(v) : v;
  }
  return out;
}

/** One `--set KEY=VALUE`: the dotted key split into a path and the value typed by its look. */
export interface Override {
  /** ["synthetic", "n_features"] */
  path: string[];
  /** 512 (numbers and true/false are parsed; anything else stays a string). */
  value: string | number | boolean;
  /** The text after '=', for keys whose type is string ("--set data=123"). */
  raw: string;
}

const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** "512" → 512, "3e-4" → 0.0003, "true" → true, "'12'" → "12", anything else as is. */
export function parseScalar(raw: string): string | number | boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  if (NUMBER_RE.test(raw)) return Number(raw);
  const quoted = /^(["'])(.*)\1$/s.exec(raw);
  if (quoted) return quoted[2];
  return raw;
}

/**
 * Parses `KEY=VALUE` where KEY is a config key or a dotted path into a section (dashes count as
 * underscores). Whether the key exists and the value fits is checked by validation.
 *
 * @example
 * ```ts
 * parseOverride("synthetic.n_features=512"); // { path: ["synthetic", "n_features"], value: 512, raw: "512" }
 * ```
 */
export function parseOverride(text: string): Override {
  const eq = text.indexOf("=");
  if (eq < 0) {
    throw new UserError(`--set expects KEY=VALUE (e.g. synthetic.n_features=512), got '${text}'`);
  }
  const key = text.slice(0, eq).trim().replaceAll("-", "_");
  const path = key.split(".");
  if (path.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) {
    throw new UserError(
      `--set '${text}': '${key}' is not a config key (use names like lr or synthetic.n_features)`,
    );
  }
  const raw = text.slice(eq + 1);
  return { path, value: parseScalar(raw), raw };
}

/** One `--set KEY=VALUE` as a validated configuration layer. */
export function setFlagLayer(text: string): PartialConfig {
  return validatePartialConfig(overridesToPartial([parseOverride(text)]), `--set ${text}`);
}

/**
 * Turns overrides into one configuration layer. A key whose default is a string gets the raw
 * text, so `--set data=123` means the file "123".
 */
export function overridesToPartial(overrides: Override[]): PartialConfig {
  const out: Record<string, unknown> = {};
  for (const { path, value, raw } of overrides) {
    let node = out;
    let defaults: unknown = DEFAULT_CONFIG;
    for (const p of path.slice(0, -1)) {
      if (!isPlainObject(node[p])) node[p] = {};
      node = node[p] as Record<string, unknown>;
      defaults = isPlainObject(defaults) ? defaults[p] : undefined;
    }
    const leaf = path[path.length - 1];
    const isString = isPlainObject(defaults) && typeof defaults[leaf] === "string";
    node[leaf] = isString ? raw : value;
  }
  return out as PartialConfig;
}

/** The config as YAML, keys in DEFAULT_CONFIG's order (config.yaml of a run directory). */
export function configToYaml(cfg: TrainConfig): string {
  const ordered: Record<string, unknown> = {};
  for (const k of Object.keys(DEFAULT_CONFIG)) {
    if (k === "synthetic") continue;
    ordered[k] = cfg[k as keyof TrainConfig];
  }
  const synthetic: Record<string, unknown> = {};
  for (const k of Object.keys(DEFAULT_SYNTHETIC)) {
    synthetic[k] = cfg.synthetic[k as keyof SyntheticConfig];
  }
  // Keys the defaults do not know (none after validation) would be dropped silently: keep them.
  for (const [k, v] of Object.entries(cfg.synthetic)) if (!(k in synthetic)) synthetic[k] = v;
  ordered.synthetic = synthetic;
  return "# The full configuration of this run, written by `sae train`.\n" +
    "# `sae train --resume <this directory>` reads it back.\n" + stringifyYaml(ordered);
}
