/**
 * Where the language-model kernels (embed, rope, attention) take each token's position from
 * (wgsl/positions.wgsl, prepended to their sources). Activations are row-major [T, width] with
 * T = batch·seq tokens, token t = b·seq + s.
 */
import positionsSrc from "../../wgsl/positions.wgsl" with { type: "text" };

/**
 * How the `pos` buffer (u32) gives positions:
 * - `"offset"`: pos is [batch], the position of each sequence's first token (0 in a prefill, p in
 *   an incremental decoding step); token (b, s) is at pos[b] + s.
 * - `"token"`: pos is [batch·seq], each token's position.
 */
export type PositionMode = "offset" | "token";

/** A family's WGSL with wgsl/positions.wgsl in front (after withCommon's part if both are used). */
export function withPositions(src: string): string {
  return positionsSrc + "\n" + src;
}

/** The override constants of wgsl/positions.wgsl. */
export function positionConstants(mode: PositionMode, seq: number): Record<string, number> {
  return { POS_PER_TOKEN: mode === "token" ? 1 : 0, SEQ: seq };
}

/** Reference: the position of each of the batch·seq tokens. */
export function tokenPositions(
  mode: PositionMode,
  batch: number,
  seq: number,
  pos: Uint32Array,
): Uint32Array {
  const out = new Uint32Array(batch * seq);
  for (let t = 0; t < batch * seq; t++) {
    out[t] = mode === "token" ? pos[t] : pos[Math.floor(t / seq)] + (t % seq);
  }
  return out;
}
