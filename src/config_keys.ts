/**
 * How a config key is declared: its default and the rule its values must satisfy. The core keys
 * (src/config.ts) and each SAE variant's own keys (src/sae/<variant>.ts) use the same rules, so
 * validation, `--set` and the "did you mean" hint treat them alike.
 *
 * @example
 * ```ts
 * const keys = {
 *   ema_decay: key(0.999, DECAY), // γ of the EMA (Eq. 1)
 *   tau_variance_sign: oneOf(["decrease", "increase"], "decrease"),
 * };
 * ```
 */

/** What a key accepts. */
export type Rule =
  | { kind: "int"; min: number; max?: number }
  | { kind: "number"; min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean }
  | { kind: "bool" }
  /** A string; non-empty unless `empty` (a key whose "" means "not recorded"). */
  | { kind: "string"; empty?: boolean }
  | { kind: "enum"; values: readonly string[] };

/** A key's default and rule. */
export interface KeySpec<T> {
  default: T;
  rule: Rule;
}

/** Keys by name. */
export type KeySpecs = Record<string, KeySpec<unknown>>;

/** The key specs of the fields of `C` (a variant declares its keys as `KeySpecsOf<ItsConfig>`). */
export type KeySpecsOf<C> = { [K in keyof C]-?: KeySpec<C[K]> };

/** The config fields that `specs` declares, typed by their defaults (JSDoc carries over). */
export type ValuesOf<S extends KeySpecs> = { -readonly [K in keyof S]: S[K]["default"] };

/** A number or boolean key. */
export function key(value: number, rule: Rule): KeySpec<number>;
export function key(value: boolean, rule: Rule): KeySpec<boolean>;
export function key(value: number | boolean, rule: Rule): KeySpec<number | boolean> {
  return { default: value, rule };
}

/** A key whose value is one of `values`. */
export function oneOf<const V extends readonly string[]>(
  values: V,
  value: V[number],
): KeySpec<V[number]> {
  return { default: value, rule: { kind: "enum", values } };
}

/** A number in [0, 1]. */
export const PROBABILITY: Rule = { kind: "number", min: 0, max: 1 };
/** A number ≥ 0. */
export const NON_NEGATIVE: Rule = { kind: "number", min: 0 };
/** A number > 0. */
export const POSITIVE: Rule = { kind: "number", min: 0, exclusiveMin: true };
/** A number in [0, 1): a decay or an Adam β. */
export const DECAY: Rule = { kind: "number", min: 0, max: 1, exclusiveMax: true };
/** Booleans. */
export const BOOL: Rule = { kind: "bool" };

/** "an integer in [1, 65535]", "a number > 0", "one of 'l2', 'squared'". */
export function describeRule(rule: Rule): string {
  switch (rule.kind) {
    case "bool":
      return "true or false";
    case "string":
      return rule.empty ? "a string" : "a non-empty string";
    case "enum":
      return `one of ${rule.values.map((v) => `'${v}'`).join(", ")}`;
    case "int":
    case "number": {
      const noun = rule.kind === "int" ? "an integer" : "a number";
      const min = rule.min;
      const max = rule.max;
      const exMin = rule.kind === "number" && rule.exclusiveMin === true;
      const exMax = rule.kind === "number" && rule.exclusiveMax === true;
      if (min !== undefined && max !== undefined) {
        return `${noun} in ${exMin ? "(" : "["}${min}, ${max}${exMax ? ")" : "]"}`;
      }
      if (min !== undefined) return `${noun} ${exMin ? ">" : ">="} ${min}`;
      if (max !== undefined) return `${noun} ${exMax ? "<" : "<="} ${max}`;
      return `a finite ${rule.kind === "int" ? "integer" : "number"}`;
    }
  }
}

/** Whether `v` satisfies `rule`. */
export function satisfies(rule: Rule, v: unknown): boolean {
  switch (rule.kind) {
    case "bool":
      return typeof v === "boolean";
    case "string":
      return typeof v === "string" && (rule.empty === true || v.length > 0);
    case "enum":
      return typeof v === "string" && rule.values.includes(v);
    case "int":
    case "number": {
      if (typeof v !== "number" || !Number.isFinite(v)) return false;
      if (rule.kind === "int" && !Number.isSafeInteger(v)) return false;
      const exMin = rule.kind === "number" && rule.exclusiveMin === true;
      const exMax = rule.kind === "number" && rule.exclusiveMax === true;
      if (rule.min !== undefined && (exMin ? v <= rule.min : v < rule.min)) return false;
      if (rule.max !== undefined && (exMax ? v >= rule.max : v > rule.max)) return false;
      return true;
    }
  }
}
