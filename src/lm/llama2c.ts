/**
 * llama2.c's legacy checkpoint (`stories260K.bin`): a 7-int32 header (dim, hidden_dim, n_layers,
 * n_heads, n_kv_heads, vocab_size, seq_len; vocab_size > 0 means the classifier is the
 * embedding), then f32 tensors in this order: token_embedding [V, d], rms_att [L, d],
 * wq [L, d, d], wk [L, kv, d], wv [L, kv, d], wo [L, d, d], rms_ffn [L, d], w1 [L, hidden, d],
 * w2 [L, d, hidden], w3 [L, hidden, d], rms_final [d], two legacy RoPE tables (seq_len·hd/2 f32
 * each, skipped), and wcls [V, d] when untied (run.c `memory_map_weights`). Matrices are
 * [out, in] as nn.Linear stores them; w1 is the gate, w3 the up projection, w2 the down one. Its
 * RoPE rotates interleaved pairs (2i, 2i + 1) of each head, so the weights are used as stored.
 */
import { basename } from "node:path";
import { UserError } from "../errors.ts";
import { llama2cConfig, type LmConfig } from "./config.ts";
import type { LayerWeights, LmWeights, WeightStats } from "./weights.ts";

/** The "ak42" magic of llama2.c's versioned export formats (not the legacy one read here). */
const VERSIONED_MAGIC = 0x616b3432;

/** Decodes a legacy llama2.c checkpoint. */
export function decodeLlama2c(
  bytes: Uint8Array,
  file: string,
): { config: LmConfig; weights: LmWeights; stats: WeightStats } {
  if (bytes.byteLength < 28) {
    throw new UserError(
      `${file}: ${bytes.byteLength} bytes is too short for a llama2.c checkpoint`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) === VERSIONED_MAGIC) {
    throw new UserError(
      `${file}: a versioned llama2.c export (magic ak42): re-export it with llama2.c's legacy ` +
        `format (export.py --version 0) or pass a Hugging Face directory`,
    );
  }
  const header = new Int32Array(7).map((_, i) => view.getInt32(4 * i, true));
  const cfg = llama2cConfig(header, file);
  const { dModel: d, dMlp: f, nLayers: L, vocabSize: V, headDim: hd } = cfg;
  const kv = cfg.nKvHeads * hd;
  const ropeTables = 2 * cfg.maxSeq * (hd / 2);
  const sizes = [V * d, L * d, L * d * d, L * kv * d, L * kv * d, L * d * d, L * d, L * f * d];
  sizes.push(L * d * f, L * f * d, d, ropeTables, cfg.tied ? 0 : V * d);
  const need = 28 + 4 * sizes.reduce((a, b) => a + b, 0);
  if (bytes.byteLength !== need) {
    throw new UserError(
      `${file}: ${bytes.byteLength} bytes, but its header [${header.join(", ")}] needs ${need}: ` +
        `the checkpoint is truncated or not a legacy llama2.c file`,
    );
  }
  const all = new Float32Array(bytes.slice(28).buffer);
  let at = 0;
  const next = (n: number) => all.subarray(at, at += n);
  const embed = next(V * d);
  const rmsAtt = next(L * d), wq = next(L * d * d), wk = next(L * kv * d), wv = next(L * kv * d);
  const wo = next(L * d * d), rmsFfn = next(L * d), w1 = next(L * f * d), w2 = next(L * d * f);
  const w3 = next(L * f * d), rmsFinal = next(d);
  next(ropeTables);
  const unembed = cfg.tied ? embed : next(V * d);
  const layer = (a: Float32Array, l: number, n: number) => a.slice(l * n, (l + 1) * n);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < L; l++) {
    layers.push({
      attnNorm: { w: layer(rmsAtt, l, d) },
      mlpNorm: { w: layer(rmsFfn, l, d) },
      wq: layer(wq, l, d * d),
      wk: layer(wk, l, kv * d),
      wv: layer(wv, l, kv * d),
      wo: layer(wo, l, d * d),
      wGate: layer(w1, l, f * d),
      wUp: layer(w3, l, f * d),
      wDown: layer(w2, l, d * f),
    });
  }
  const params = sizes.reduce((a, b) => a + b, 0) - ropeTables;
  return {
    config: cfg,
    weights: { embed, layers, finalNorm: { w: rmsFinal.slice() }, unembed },
    stats: { dtypes: ["F32"], params, tensors: 11 + (cfg.tied ? 0 : 1) },
  };
}

/** Whether `path` names a llama2.c checkpoint (by its extension). */
export function isLlama2cPath(path: string): boolean {
  return basename(path).endsWith(".bin");
}
