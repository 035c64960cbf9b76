/**
 * Hook points: where in the forward pass activations are read, named as TransformerLens names
 * them (HookedTransformer's `blocks.L.hook_*`) so SAELens users recognise them. Each is a
 * [tokens, d_model] tensor; for block L of every family:
 *
 * - `blocks.L.hook_resid_pre`: the residual stream entering block L. Block 0's is the token
 *   embedding (× √d_model for gemma2; + the position embedding for gpt2). Hugging Face's
 *   `hidden_states[L]` (output_hidden_states=True) is this tensor for L < n_layers.
 * - `blocks.L.hook_attn_out`: what attention adds to the residual stream: the output projection
 *   (with its bias for gpt2); for gemma2 after post_attention_layernorm, as TransformerLens hooks
 *   it after its ln1_post.
 * - `blocks.L.hook_mlp_out`: what the MLP adds: the down projection (with bias for gpt2); for
 *   gemma2 after post_feedforward_layernorm (TransformerLens' ln2_post).
 * - `blocks.L.hook_resid_post`: hook_resid_pre + hook_attn_out + hook_mlp_out, which is
 *   `blocks.(L+1).hook_resid_pre`. The last block's is before the final norm; Hugging Face's last
 *   `hidden_states` entry is after it (model.norm / ln_f applied), so it is none of these.
 */
import { UserError } from "../errors.ts";
import type { LmConfig } from "./config.ts";

/** The hook kinds of a block, in the order the forward pass reaches them. */
export const HOOK_KINDS = [
  "hook_resid_pre",
  "hook_attn_out",
  "hook_mlp_out",
  "hook_resid_post",
] as const;

/** One kind of hook point of a block. */
export type HookKind = typeof HOOK_KINDS[number];

/** A parsed hook name. */
export interface HookPoint {
  name: string;
  layer: number;
  kind: HookKind;
}

/** Every hook name of a model, block by block. */
export function hookPoints(cfg: Pick<LmConfig, "nLayers">): string[] {
  const out: string[] = [];
  for (let l = 0; l < cfg.nLayers; l++) for (const k of HOOK_KINDS) out.push(`blocks.${l}.${k}`);
  return out;
}

/** The valid hook names of a model, in one short line. */
export function hookSummary(cfg: Pick<LmConfig, "nLayers">): string {
  return `blocks.L.{${HOOK_KINDS.join(",")}} for L in 0..${cfg.nLayers - 1}`;
}

/** Parses a hook name; a UserError lists the valid ones. */
export function parseHook(name: string, cfg: Pick<LmConfig, "nLayers" | "source">): HookPoint {
  const m = /^blocks\.(\d+)\.(\w+)$/.exec(name);
  const layer = m ? Number(m[1]) : -1;
  const kind = m?.[2] as HookKind;
  if (!m || !HOOK_KINDS.includes(kind) || layer >= cfg.nLayers) {
    throw new UserError(
      `hook '${name}' does not exist in ${cfg.source}: valid hooks are ${hookSummary(cfg)}`,
    );
  }
  return { name, layer, kind };
}

/**
 * How far a forward pass must run to record `hooks`: through block `layer`, and within it only
 * through attention when `attnOnly` (layer −1: the embedding alone, for block 0's resid_pre).
 */
export function stopPoint(points: HookPoint[]): { layer: number; attnOnly: boolean } {
  let layer = -1, attnOnly = false;
  for (const p of points) {
    const l = p.kind === "hook_resid_pre" ? p.layer - 1 : p.layer;
    const a = p.kind === "hook_attn_out";
    if (l > layer) {
      layer = l;
      attnOnly = a;
    } else if (l === layer && !a) attnOnly = false;
  }
  return { layer, attnOnly: layer >= 0 && attnOnly };
}
