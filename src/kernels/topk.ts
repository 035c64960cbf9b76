/**
 * Top-k selections (wgsl/topk.wgsl) for the TopK, BatchTopK and AuxK SAEs: a row-wise top-k with
 * index lists, a batch-wide top-(k·B) with its running threshold, and the AuxK pieces. The
 * definitions they follow (SAELens, dictionary_learning) are in docs/architectures.md.
 *
 * Every selection is exact and deterministic: entries rank by value, ties by lowest index, so the
 * plain-TypeScript references below reproduce them bit for bit.
 */
import topkSrc from "../../wgsl/topk.wgsl" with { type: "text" };
import { UserError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { type ComputeDispatch, type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { rowParts } from "../gpu/split.ts";
import { useSubgroups, withCollectives } from "./collectives.ts";
import { WG } from "./common.ts";
import { adapterClass } from "../gpu/adapter.ts";
import type { SparseLists } from "./sparse.ts";

/** Options shared by the builders. */
export interface TopKOptions {
  /** Workgroup collectives with subgroup operations (default: where the device has them). */
  subgroups?: boolean;
}

/** Options of the row-wise selection. */
export interface RowTopKOptions extends TopKOptions {
  label?: string;
  /**
   * One invocation per row instead of one workgroup (default on CPU adapters, where it measured
   * several times faster: docs/architectures.md); the same selection, bit for bit. Rows longer
   * than {@link LANE_MAX_M} take the workgroup form whatever this says.
   */
  lane?: boolean;
}

/**
 * Longest row the one-invocation-per-row selection takes: it loops 5 times over the row, and
 * lavapipe ends an invocation after about 65535 loop iterations in all (measured: rows of 13000
 * came out incomplete).
 */
export const LANE_MAX_M = 8192;

function code(gpu: Gpu, opts: TopKOptions): string {
  return withCollectives(topkSrc, useSubgroups(gpu, opts.subgroups));
}

/** Fixed-length lists of the kept entries of each row: CSR whose rows are all k long. */
export interface TopKLists {
  /** [B, k] u32: row r's kept latents at r·k .., ascending; entries past cnt[r] are 0. */
  idx: GPUBuffer;
  /** [B, k] f32: their values (what f holds there); entries past cnt[r] are 0. */
  val: GPUBuffer;
  /** [B] u32: entries kept in row r (k, or fewer where a mask leaves fewer candidates). */
  cnt: GPUBuffer;
}

/** Buffers of {@link TopKLists} for B rows of k entries. */
export function allocTopKLists(gpu: Gpu, B: number, k: number): TopKLists {
  return {
    idx: gpu.buffer("topk idx", B * k * 4),
    val: gpu.buffer("topk val", B * k * 4),
    cnt: gpu.buffer("topk cnt", B * 4),
  };
}

/** How a row-wise selection ranks and what it keeps (see {@link rowTopKKernel}). */
export interface RowTopKSpec {
  B: number;
  m: number;
  k: number;
  /**
   * Rank ReLU(pre) instead of pre (ties among the non-positive entries then go by index):
   * dictionary_learning's AuxK. Default false: SAELens' TopK and AuxK rank pre itself.
   */
  reluBefore?: boolean;
  /** Keep ReLU(pre) instead of pre (default true: SAELens' TopK; false: SAELens' AuxK). */
  reluAfter?: boolean;
}

/**
 * Row-wise top-k of pre [B, m]: in each row the k largest entries (ties: lowest index) among the
 * candidates (all latents, or those with mask[j] != 0), f [B, m] = their values and 0 elsewhere,
 * and the kept entries as {@link TopKLists}. With the defaults this is SAELens' `TopK`:
 * f = ReLU(TopK_k(pre)) (select, then ReLU the selected values). One workgroup per row, one
 * dispatch per range of rows where pre and f exceed a binding.
 */
export async function rowTopKKernel(
  gpu: Gpu,
  s: RowTopKSpec,
  b: { pre: GPUBuffer; f: GPUBuffer; lists: TopKLists; mask?: GPUBuffer },
  opts: RowTopKOptions = {},
): Promise<ComputeDispatch[]> {
  const lane = (opts.lane ?? adapterClass(gpu) === "cpu") && s.m <= LANE_MAX_M;
  if (!(Number.isInteger(s.k) && s.k >= 1 && s.k <= s.m)) {
    throw new UserError(`top-k needs an integer 1 ≤ k ≤ d_sae = ${s.m}, got k = ${s.k}`);
  }
  const src = code(gpu, opts);
  const out: ComputeDispatch[] = [];
  for (const { r0, r1, views: [pv, fv] } of rowParts(gpu, s.B, s.m, [b.pre, b.f])) {
    out.push(
      await kernel(gpu, {
        label: opts.label ?? "topk rows",
        code: src,
        entry: lane ? "row_select_lane" : "row_select",
        constants: {
          R: r1 - r0,
          M: s.m,
          ROW0: r0,
          PRE_OFF: pv.off,
          F_OFF: fv.off,
          K: s.k,
          HAS_MASK: b.mask ? 1 : 0,
          RELU_BEFORE: s.reluBefore ? 1 : 0,
          RELU_AFTER: (s.reluAfter ?? true) ? 1 : 0,
        },
        buffers: [
          pv.binding,
          fv.binding,
          b.mask ?? gpu.dummy(),
          b.lists.idx,
          b.lists.val,
          b.lists.cnt,
        ],
        groups: lane ? groupsFor(r1 - r0, WG) : groupsFor(r1 - r0),
        // At least: pre read and f written once, the lists written, the mask read per row.
        cost: {
          flops: 0,
          bytes: 4 * (r1 - r0) * (2 * s.m + 2 * s.k + 1 + (b.mask ? s.m : 0)),
        },
      }),
    );
  }
  return out;
}

/**
 * The lists as the sparse path's CSR (src/kernels/sparse.ts): row r's entries at
 * out.rowIdx[r·m ..], out.rowCnt[r] of them; with `positiveOnly` only entries whose value is > 0,
 * which is exactly csrRowsKernel's list of f (the entries dF masks with f > 0), without its pass
 * over f [B, m].
 */
export function topkListsToCsrKernel(
  gpu: Gpu,
  s: { B: number; m: number; k: number },
  lists: TopKLists,
  out: SparseLists,
  positiveOnly: boolean,
  opts: TopKOptions = {},
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label: "topk lists to csr",
    code: code(gpu, opts),
    entry: "lists_expand",
    constants: { R: s.B, M: s.m, K: s.k, POS_ONLY: positiveOnly ? 1 : 0 },
    buffers: [null, null, null, lists.idx, lists.val, lists.cnt, out.rowIdx, out.rowCnt],
    groups: groupsFor(s.B, WG),
    cost: { flops: 0, bytes: 4 * s.B * (4 * s.k + 2) },
  });
}

// --- Plain-TypeScript references ---------------------------------------------------------------

/** f32 of `x` with −0 as +0 (the kernels rank them as equal). */
function canon(x: number): number {
  return x === 0 ? 0 : x;
}

/** Indices of `cand` in the kernels' rank order: value descending, then index ascending. */
function ranked(cand: number[], value: (j: number) => number): number[] {
  return cand.sort((a, b) => {
    const va = canon(value(a)), vb = canon(value(b));
    return va !== vb ? vb - va : a - b;
  });
}

/** Reference of {@link rowTopKKernel}: f and the lists, as the kernel writes them. */
export function rowTopKReference(
  pre: Float32Array,
  s: RowTopKSpec,
  mask?: Uint32Array,
): { f: Float32Array; idx: Uint32Array; val: Float32Array; cnt: Uint32Array } {
  const { B, m, k } = s;
  const reluAfter = s.reluAfter ?? true;
  const f = new Float32Array(B * m);
  const idx = new Uint32Array(B * k), val = new Float32Array(B * k), cnt = new Uint32Array(B);
  const relu = (v: number) => Math.max(v, 0);
  for (let r = 0; r < B; r++) {
    const row = (j: number) => pre[r * m + j];
    const cand: number[] = [];
    for (let j = 0; j < m; j++) if (!mask || mask[j] !== 0) cand.push(j);
    const kept = ranked(cand, (j) => s.reluBefore ? relu(row(j)) : row(j)).slice(0, k);
    kept.sort((a, b) => a - b);
    cnt[r] = kept.length;
    kept.forEach((j, e) => {
      const v = s.reluBefore || reluAfter ? relu(row(j)) : row(j);
      f[r * m + j] = v;
      idx[r * k + e] = j;
      val[r * k + e] = v;
    });
  }
  return { f, idx, val, cnt };
}

// --- BatchTopK ---------------------------------------------------------------------------------

/** Scratch of the batch-wide selection: its state and histogram, and per-row tie counts. */
export interface BatchTopKScratch {
  /** [8 + 256] u32: the select's state words and the summed histogram (wgsl/topk.wgsl SEL_*). */
  sel: GPUBuffer;
  /** [2B] u32: ties at the boundary per row, then each row's share of them. */
  ties: GPUBuffer;
}

/** Word of the smallest positive kept value's bits in {@link BatchTopKScratch.sel}. */
export const SEL_MINPOS = 7;

/** The scratch for a batch of B rows. */
export function allocBatchTopKScratch(gpu: Gpu, B: number): BatchTopKScratch {
  return {
    sel: gpu.buffer("batchtopk sel", (8 + 256) * 4),
    ties: gpu.buffer("batchtopk ties", 8 * B),
  };
}

/** Entries BatchTopK keeps over a batch: SAELens' `int(k · num_samples)`. */
export function batchKeep(k: number, B: number): number {
  return Math.floor(k * B);
}

/**
 * BatchTopK (Bussmann et al. 2024; SAELens `BatchTopK`): f = the floor(k·B) largest entries of
 * ReLU(pre) [B, m] over the whole batch, 0 elsewhere (ties: lowest flat index r·m + j), by a radix
 * select whose histograms are summed over rows (never a sort); records the smallest positive kept
 * value for {@link batchThresholdKernel}. 12 dispatches; the per-row ones (4 histogram passes, tie
 * counts, keep) repeat per range of rows where pre and f exceed a binding.
 */
export async function batchTopKDispatches(
  gpu: Gpu,
  s: { B: number; m: number; k: number },
  b: { pre: GPUBuffer; f: GPUBuffer; scratch: BatchTopKScratch },
  opts: RowTopKOptions = {},
): Promise<ComputeDispatch[]> {
  // The per-row passes one invocation per row, as the row selection's `lane` (CPU adapters).
  const lane = (opts.lane ?? adapterClass(gpu) === "cpu") && s.m <= LANE_MAX_M;
  const KB = batchKeep(s.k, s.B);
  if (!(KB >= 1) || s.B * s.m >= 2 ** 32) {
    throw new UserError(
      `BatchTopK keeps floor(k·batch) = ${KB} of ${s.B}·${s.m} entries: choose k with ` +
        `k·batch ≥ 1 (and batch·d_sae < 2^32)`,
    );
  }
  const src = code(gpu, opts);
  const base = { M: s.m, KB, B_ROWS: s.B, RELU_BEFORE: 1 };
  const sel = b.scratch.sel, ties = b.scratch.ties;
  const parts = rowParts(gpu, s.B, s.m, [b.pre, b.f]);
  const one = (label: string, entry: string, extra: Record<string, number> = {}) =>
    kernel(gpu, {
      label,
      code: src,
      entry,
      constants: { ...base, R: s.B, ...extra },
      buffers: [...Array(8).fill(null), sel, entry === "bt_quota" ? ties : null],
      groups: [1, 1, 1],
      cost: { flops: 0, bytes: 4 * (264 + (entry === "bt_quota" ? 2 * s.B : 0)) },
    });
  const perRow = (label: string, entry: string, withF: boolean, extra: Record<string, number>) =>
    Promise.all(parts.map(({ r0, r1, views: [pv, fv] }) =>
      kernel(gpu, {
        label,
        code: src,
        entry: lane ? `${entry}_lane` : entry,
        constants: { ...base, R: r1 - r0, ROW0: r0, PRE_OFF: pv.off, F_OFF: fv.off, ...extra },
        buffers: [
          pv.binding,
          withF ? fv.binding : null,
          entry === "bt_keep" && !lane ? gpu.dummy() : null,
          ...Array(5).fill(null),
          sel,
          entry === "bt_hist" ? null : ties,
        ],
        groups: lane ? groupsFor(r1 - r0, WG) : groupsFor(r1 - r0),
        cost: { flops: 0, bytes: 4 * (r1 - r0) * s.m * (withF ? 2 : 1) },
      })
    ));
  const out: ComputeDispatch[] = [await one("batchtopk init", "bt_init")];
  for (let pass = 0; pass < 4; pass++) {
    out.push(...await perRow(`batchtopk hist ${pass}`, "bt_hist", false, { PASS: pass }));
    out.push(await one(`batchtopk pick ${pass}`, "bt_pick", { PASS: pass }));
  }
  out.push(...await perRow("batchtopk ties", "bt_ties", false, {}));
  out.push(await one("batchtopk shares", "bt_quota"));
  out.push(...await perRow("batchtopk keep", "bt_keep", true, {}));
  return out;
}

/**
 * How the running threshold θ follows the smallest positive kept value v of each step:
 * - SAELens `BatchTopKTrainingSAE.update_topk_threshold`: θ₀ = 0; θ ← (1 − lr)·θ + lr·v when the
 *   batch kept a positive value, else unchanged; `topk_threshold_lr` = 0.01 by default.
 * - dictionary_learning `BatchTopKTrainer.update_threshold`: θ₀ = −1; from `threshold_start_step`
 *   on (their step > start, i.e. st.step > start + 1 here, st.step counting from 1):
 *   θ ← v if θ < 0, else β·θ + (1 − β)·v, with v = 0 when nothing positive was kept; β = 0.999,
 *   start 1000 by default.
 */
export type ThetaRule =
  | { kind: "saelens"; lr: number }
  | { kind: "dictionary_learning"; beta: number; startStep: number };

/** θ before the first step under each rule. */
export const THETA_INIT: Record<ThetaRule["kind"], number> = {
  saelens: 0,
  dictionary_learning: -1,
};

/**
 * The running threshold's update after {@link batchTopKDispatches}: theta.buf[theta.index] (f32;
 * SAELens keeps it in f64, which differs by a few ulp of θ at lr 0.01) by `rule`. At inference and
 * in export θ replaces the batch rule: f = ReLU(pre)·1[pre > θ] (src/kernels/jumprelu.ts,
 * thresholdActKernel with a global θ), as SAELens exports BatchTopK as JumpReLU.
 */
export function batchThresholdKernel(
  gpu: Gpu,
  rule: ThetaRule,
  b: { scratch: BatchTopKScratch; theta: { buf: GPUBuffer; index: number }; state: GPUBuffer },
  opts: TopKOptions = {},
): Promise<ComputeDispatch> {
  const sae = rule.kind === "saelens";
  return kernel(gpu, {
    label: "batchtopk threshold",
    code: code(gpu, opts),
    entry: "bt_theta",
    constants: {
      THETA_KEEP: sae ? 1 - rule.lr : rule.beta,
      THETA_RATE: sae ? rule.lr : 1 - rule.beta,
      THETA_SKIP_EMPTY: sae ? 1 : 0,
      THETA_INIT_NEG: sae ? 0 : 1,
      THETA_AFTER: sae ? 0 : rule.startStep + 1,
      THETA_IDX: b.theta.index,
    },
    buffers: [...Array(8).fill(null), b.scratch.sel, null, b.theta.buf, b.state],
    groups: [1, 1, 1],
    cost: { flops: 3, bytes: 16 },
  });
}

/**
 * theta[i] = theta[index] for every i < m: the running threshold of {@link batchThresholdKernel}
 * in every latent's slot, as the per-latent thresholds the inference encoder reads (the step's
 * thresholds epilogue, SAELens' exported JumpReLU `threshold`).
 */
export function thetaSpreadKernel(
  gpu: Gpu,
  m: number,
  theta: { buf: GPUBuffer; index: number },
  opts: TopKOptions = {},
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label: "batchtopk threshold spread",
    code: code(gpu, opts),
    entry: "theta_spread",
    constants: { R: m, THETA_IDX: theta.index },
    buffers: [...Array(10).fill(null), theta.buf],
    groups: groupsFor(m, WG),
    cost: { flops: 0, bytes: 8 * m },
  });
}

/**
 * Reference of {@link batchTopKDispatches}: f, and the smallest positive kept value (null when
 * none was kept).
 */
export function batchTopKReference(
  pre: Float32Array,
  s: { B: number; m: number; k: number },
): { f: Float32Array; minPositive: number | null } {
  const n = s.B * s.m;
  const relu = (i: number) => Math.max(pre[i], 0);
  const kept = ranked(Array.from({ length: n }, (_, i) => i), relu).slice(0, batchKeep(s.k, s.B));
  const f = new Float32Array(n);
  let minPositive: number | null = null;
  for (const i of kept) {
    f[i] = relu(i);
    if (f[i] > 0 && (minPositive === null || f[i] < minPositive)) minPositive = f[i];
  }
  return { f, minPositive };
}

/** Reference of {@link batchThresholdKernel}: θ after a step at `step` (from 1) that kept `v`. */
export function thetaUpdateReference(
  rule: ThetaRule,
  theta: number,
  v: number | null,
  step: number,
): number {
  if (rule.kind === "saelens") return v === null ? theta : (1 - rule.lr) * theta + rule.lr * v;
  if (step <= rule.startStep + 1) return theta;
  const x = v ?? 0;
  return theta < 0 ? x : rule.beta * theta + (1 - rule.beta) * x;
}

// --- AuxK --------------------------------------------------------------------------------------

/** Slots of the AuxK scalars buffer (f32 [4]). */
export const AUX_INDEX = { loss: 0, scale: 1, numDead: 2, denom: 3 } as const;

/**
 * The dead-latent mask of AuxK: dead[j] = 1 where st.step − lastFired[j] ≥ deadSteps (the
 * project's dead-latent rule, wgsl/metrics.wgsl), and the count to aux[AUX_INDEX.numDead]. Run it
 * before the step's statistics update lastFired. SAELens' `n_forward_passes_since_fired >
 * dead_feature_window`, its counter taken before the step, is this rule with deadSteps = window + 2.
 */
export function deadMaskKernel(
  gpu: Gpu,
  m: number,
  deadSteps: number,
  b: { lastFired: GPUBuffer; state: GPUBuffer; dead: GPUBuffer; aux: GPUBuffer },
  opts: TopKOptions = {},
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label: "auxk dead mask",
    code: code(gpu, opts),
    entry: "dead_mask",
    constants: { M: m, DEAD_STEPS: deadSteps },
    buffers: [...Array(11).fill(null), b.state, b.lastFired, b.dead, b.aux],
    groups: [1, 1, 1],
    cost: { flops: 0, bytes: 8 * m },
  });
}

/**
 * The AuxK loss's definition. SAELens (`TopKTrainingSAE.calculate_topk_aux_loss`, default):
 * coef = `aux_loss_coefficient` (1.0 by default), scaled by min(num_dead / k_aux, 1), no
 * normalisation. dictionary_learning (`BatchTopKTrainer.get_auxiliary_loss`): coef = `auxk_alpha`
 * (1/32), no dead scale, divided by the residual's batch variance Σ_d Var_b(e) (OpenAI's
 * normalisation). Both: k_aux = d_in / 2 (cut to the dead count), loss = coef·(that)·mean_b
 * ‖ê − e‖², ê = auxf·W_dec without b_dec, e = x − x̂ held constant.
 */
export interface AuxKSpec {
  B: number;
  d: number;
  kAux: number;
  coef: number;
  deadScale: boolean;
  normalize: boolean;
}

/** Scratch of the AuxK loss: row sums, and the per-column variances where normalised. */
export interface AuxKScratch {
  /** [B] f32: Σ_d (ê − e)² per row. */
  rowLoss: GPUBuffer;
  /** [d] f32: Σ_b (e − ē)² per column (normalize only). */
  colVar: GPUBuffer;
}

/** The scratch for B rows of d. */
export function allocAuxKScratch(gpu: Gpu, B: number, d: number): AuxKScratch {
  return { rowLoss: gpu.buffer("auxk row loss", B * 4), colVar: gpu.buffer("auxk col var", d * 4) };
}

/**
 * The AuxK loss's value and its gradient with respect to the dead latents' reconstruction ê:
 * given x and x̂ [B, d] (the step's input and reconstruction, e = x − x̂) and ê = auxf·W_dec [B, d]
 * (the variant's product), g [B, d] = dL_aux/dê and aux[AUX_INDEX.loss] = L_aux, with the scale
 * and denominator in their slots. The count of dead latents comes from {@link deadMaskKernel}.
 */
export async function auxLossDispatches(
  gpu: Gpu,
  s: AuxKSpec,
  b: {
    x: GPUBuffer;
    xhat: GPUBuffer;
    recons: GPUBuffer;
    g: GPUBuffer;
    aux: GPUBuffer;
    scratch: AuxKScratch;
  },
  opts: TopKOptions = {},
): Promise<ComputeDispatch[]> {
  const src = code(gpu, opts);
  const constants = {
    R: s.B,
    D: s.d,
    AUX_COEF: s.coef,
    K_AUX: s.kAux,
    DEAD_SCALE: s.deadScale ? 1 : 0,
    NORMALIZE: s.normalize ? 1 : 0,
  };
  // Slots 14-20 of wgsl/topk.wgsl: aux, x, xhat, colss, recons, g_aux, row_loss.
  const colVar = b.scratch.colVar;
  const at14 = (rest: (GPUBuffer | null)[]) => [...Array(14).fill(null), ...rest];
  const out: ComputeDispatch[] = [];
  if (s.normalize) {
    out.push(
      await kernel(gpu, {
        label: "auxk residual variance",
        code: src,
        entry: "aux_var",
        constants,
        buffers: at14([null, b.x, b.xhat, colVar]),
        groups: groupsFor(s.d, WG),
        cost: { flops: 5 * s.B * s.d, bytes: 8 * s.B * s.d },
      }),
    );
  }
  out.push(
    await kernel(gpu, {
      label: "auxk rows",
      code: src,
      entry: "aux_rows",
      constants,
      buffers: at14([b.aux, b.x, b.xhat, colVar, b.recons, b.g, b.scratch.rowLoss]),
      groups: groupsFor(s.B),
      cost: { flops: 5 * s.B * s.d, bytes: 4 * s.B * (4 * s.d + 1) },
    }),
    await kernel(gpu, {
      label: "auxk loss",
      code: src,
      entry: "aux_total",
      constants,
      buffers: at14([b.aux, null, null, colVar, null, null, b.scratch.rowLoss]),
      groups: [1, 1, 1],
      cost: { flops: s.B, bytes: 4 * (s.B + s.d) },
    }),
  );
  return out;
}

/**
 * dpre [B, m] += the AuxK loss's gradient: for row r's listed dead latents j (the AuxK selection's
 * {@link TopKLists}), g_r·W_dec[j] (times 1[value > 0] where the selection ranked ReLU(pre),
 * dictionary_learning). Run after the step's dF wrote dpre; each row's latents are distinct, so
 * the adds do not race. W_dec [m, d] must fit one binding (as for the sparse kernels).
 */
export async function auxGradKernel(
  gpu: Gpu,
  s: { B: number; m: number; d: number; kAux: number; reluBefore?: boolean },
  b: { lists: TopKLists; g: GPUBuffer; wDec: GPUBuffer; dpre: GPUBuffer },
  opts: TopKOptions = {},
): Promise<ComputeDispatch[]> {
  if (s.m * s.d * 4 > gpu.maxBinding) {
    throw new Error(`auxk grad: W_dec (${s.m}×${s.d} f32) exceeds the storage-binding limit`);
  }
  const src = code(gpu, opts);
  // Rows of g and W_dec as vec4s where d allows (the sparse sddmm's reads).
  const v4 = s.d % 4 === 0;
  const out: ComputeDispatch[] = [];
  for (const { r0, r1, views: [dv] } of rowParts(gpu, s.B, s.m, [b.dpre])) {
    out.push(
      await kernel(gpu, {
        label: "auxk dpre",
        code: src,
        entry: v4 ? "aux_grad4" : "aux_grad",
        constants: {
          R: r1 - r0,
          M: s.m,
          ROW0: r0,
          DP_OFF: dv.off,
          K: s.kAux,
          D: s.d,
          RELU_BEFORE: s.reluBefore ? 1 : 0,
        },
        buffers: [
          ...[null, null, null, b.lists.idx, b.lists.val, b.lists.cnt],
          ...Array(13).fill(null),
          ...(v4 ? [null, null, null, dv.binding, b.g, b.wDec] : [b.g, null, b.wDec, dv.binding]),
        ],
        groups: groupsFor(r1 - r0),
        cost: {
          flops: 2 * (r1 - r0) * s.kAux * s.d,
          bytes: 4 * (r1 - r0) * (s.d + s.kAux * (s.d + 4)),
        },
      }),
    );
  }
  return out;
}

/**
 * `dispatches` (AuxK's selection, products and gradients) made conditional on dead latents: a plan
 * dispatch, to run after {@link deadMaskKernel}, writes their workgroup counts as built where
 * aux[AUX_INDEX.numDead] > 0 and zeros otherwise, and the returned copies read their counts from
 * it. Without dead latents AuxK's loss and gradient are 0, so skipping them changes nothing.
 * Copy items (a GEMM's operand packing) run either way.
 */
export async function auxPlanDispatches(
  gpu: Gpu,
  aux: GPUBuffer,
  dispatches: readonly Dispatch[],
  opts: TopKOptions = {},
): Promise<{ plan: ComputeDispatch; planned: Dispatch[] }> {
  const compute = dispatches.filter((d): d is ComputeDispatch => !d.copy);
  const n = compute.length;
  const table = new Uint32Array(3 * n);
  compute.forEach((d, i) => table.set(d.groups, 3 * i));
  const args = gpu.buffer("auxk plan args", 12 * n, GPUBufferUsage.INDIRECT);
  const plan = await kernel(gpu, {
    label: "auxk plan",
    code: code(gpu, opts),
    entry: "aux_plan",
    constants: { N_ARGS: n },
    buffers: [
      ...Array(14).fill(null),
      aux,
      ...Array(10).fill(null),
      gpu.upload("auxk plan table", table),
      args,
    ],
    groups: groupsFor(n, WG),
    cost: { flops: 0, bytes: 4 * (1 + 6 * n) },
  });
  let next = 0;
  const planned = dispatches.map((d): Dispatch =>
    d.copy ? d : { ...d, indirect: { buffer: args, offset: 12 * next++ } }
  );
  return { plan, planned };
}

/** Reference of {@link deadMaskKernel}. */
export function deadMaskReference(
  lastFired: Uint32Array,
  step: number,
  deadSteps: number,
): { dead: Uint32Array; numDead: number } {
  const dead = lastFired.map((t) => ((step - t) >>> 0) >= deadSteps ? 1 : 0);
  return { dead, numDead: dead.reduce((a, v) => a + v, 0) };
}

/**
 * Reference of {@link auxLossDispatches}, written as SAELens' `calculate_topk_aux_loss` and
 * dictionary_learning's `get_auxiliary_loss` compute it (f64): the loss and g = dL_aux/dê.
 */
export function auxLossReference(
  s: AuxKSpec,
  x: Float32Array,
  xhat: Float32Array,
  recons: Float32Array,
  numDead: number,
): { loss: number; g: Float64Array; scale: number; denom: number } {
  const { B, d } = s;
  const e = x.map((v, i) => v - xhat[i]);
  const scale = numDead === 0 ? 0 : s.deadScale ? Math.min(numDead / s.kAux, 1) : 1;
  let denom = 1;
  if (s.normalize) {
    denom = 0;
    for (let c = 0; c < d; c++) {
      let mu = 0;
      for (let b = 0; b < B; b++) mu += e[b * d + c] / B;
      for (let b = 0; b < B; b++) denom += (e[b * d + c] - mu) ** 2 / B;
    }
  }
  let l2 = 0;
  const g = new Float64Array(B * d);
  for (let i = 0; i < B * d; i++) {
    const diff = recons[i] - e[i];
    l2 += diff * diff / B;
    g[i] = denom > 0 ? 2 * s.coef * scale * diff / (B * denom) : 0;
  }
  return { loss: denom > 0 ? s.coef * scale * l2 / denom : 0, g, scale, denom };
}

/**
 * dL/dpre of SAELens' `TopK` (torch.topk, ReLU of the values, scatter into zeros) by autograd's
 * rules, given dL/df [B, m]: the selected entries pass dL/df times ReLU'(value) = 1[value > 0],
 * the rest get 0. That is dL/df·1[f > 0] for the f of {@link rowTopKKernel}, which the step's dF
 * GEMM epilogue "relu_grad" (mask f > 0) and the sparse sddmm already compute: TopK needs no
 * backward kernel of its own. BatchTopK's (ReLU, then top-k, then scatter) is the same mask.
 */
export function topkBackwardReference(
  pre: Float32Array,
  s: RowTopKSpec,
  dLdf: Float32Array,
): Float32Array {
  const { idx, cnt } = rowTopKReference(pre, s);
  const out = new Float32Array(s.B * s.m);
  for (let r = 0; r < s.B; r++) {
    for (let e = 0; e < cnt[r]; e++) {
      const i = r * s.m + idx[r * s.k + e];
      if (pre[i] > 0) out[i] = dLdf[i];
    }
  }
  return out;
}
