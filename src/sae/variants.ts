/** Every SAE variant the trainer knows, by the config's `variant` value: adding one is a line here. */
import type { ValuesOf } from "../config_keys.ts";
import { baseline } from "./baseline.ts";
import { batchtopk } from "./batchtopk.ts";
import { jumprelu } from "./jumprelu.ts";
import { matryoshka } from "./matryoshka.ts";
import { paper } from "./paper.ts";
import { topk } from "./topk.ts";
import type { Variant } from "./variant.ts";

/** The registered variants. */
export const VARIANTS = [baseline, paper, topk, batchtopk, jumprelu, matryoshka] as const;

/** A registered variant's name. */
export type VariantName = typeof VARIANTS[number]["name"];

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends
  (i: infer I) => void ? I : never;

/** The config keys every variant owns, as fields of the config. */
export type VariantConfig = UnionToIntersection<ValuesOf<typeof VARIANTS[number]["keys"]>>;

/** The variant named `name` (validated configs name a registered one). */
export function variantOf(name: string): Variant {
  const v = VARIANTS.find((x) => x.name === name);
  if (!v) throw new Error(`no variant named '${name}'`);
  // Its own keys are in every validated config.
  return v as unknown as Variant;
}
