/**
 * Sparse latents (wgsl/sparse.wgsl): once few latents fire, the step's products with f and
 * dL/dpre (zero wherever f is) run over the active entries only.
 *
 * | dense GEMM (src/sae/step.ts)         | sparse replacement                         |
 * |--------------------------------------|--------------------------------------------|
 * | decode  x̂ = f·W_dec + b_dec          | spmm_rows over each row's active latents   |
 * | dF      (dx̂·W_decᵀ + λ1/B)·1[f>0]    | sddmm_rows: only the active entries        |
 * | dW_dec  fᵀ·dx̂                        | spmm_cols over each latent's active rows   |
 * | dW_enc  dpreᵀ·xc                     | spmm_cols, same lists (dpre = 0 where f = 0) |
 *
 * The lists (CSR by row, CSC by latent, ascending) are rebuilt from f every step; a `plan`
 * dispatch counts the active entries and writes indirect dispatch arguments that run either the
 * dense GEMMs or the sparse kernels, so the choice costs no readback.
 */
import sparseSrc from "../../wgsl/sparse.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type ComputeDispatch, type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";
import { hasSubgroups } from "./collectives.ts";

/** The family's WGSL, with subgroup reductions where the device has them. */
const code = (gpu: Gpu) => withCommon(sparseSrc, hasSubgroups(gpu));

/** CSR (by row) and CSC (by latent) index lists of the active entries of f [B, m]. */
export interface SparseLists {
  /** [B·m]: row r's active latents at r·m .. r·m + rowCnt[r] − 1, ascending. */
  rowIdx: GPUBuffer;
  rowCnt: GPUBuffer;
  /** [m·B]: latent j's active rows at j·B .. j·B + colCnt[j] − 1, ascending. */
  colIdx: GPUBuffer;
  colCnt: GPUBuffer;
}

/** Shape of the sparse kernels: F is [B, m], the dense operands' rows are d wide. */
export interface SparseShape {
  B: number;
  m: number;
  d: number;
}

/** Whether the sparse kernels can take this shape (rows of Y and O in vec4s, at most 4096 wide). */
export function sparseOk(s: SparseShape): boolean {
  return s.d % 4 === 0 && s.d <= SPARSE_MAX_D;
}

/** Allocates the index lists for f [B, m] (contents written by the list kernels each step). */
export function allocSparseLists(gpu: Gpu, s: SparseShape): SparseLists {
  return {
    rowIdx: gpu.buffer("sparse row idx", s.B * s.m * 4),
    rowCnt: gpu.buffer("sparse row cnt", s.B * 4),
    colIdx: gpu.buffer("sparse col idx", s.m * s.B * 4),
    colCnt: gpu.buffer("sparse col cnt", s.m * 4),
  };
}

/** Widest row the spmm kernels take: 256 invocations with 4 vec4s each. */
const SPARSE_MAX_D = 4 * 4 * 256;

/**
 * Invocations per row of the spmm kernels: the fewest (a multiple of 32, at least 32) that hold
 * the row in at most 4 vec4s each; fewer invocations load each entry's index and coefficient
 * fewer times (d 512: 32 invocations of 4 vec4s).
 */
function spmmLanes(d: number): number {
  return Math.min(256, Math.max(32, Math.ceil(d / 4 / 4 / 32) * 32));
}

function consts(s: SparseShape, extra: Record<string, number> = {}): Record<string, number> {
  const lanes = spmmLanes(s.d);
  return { R: s.B, M: s.m, D4: s.d / 4, SPMM_WG: lanes, CPL: Math.ceil(s.d / 4 / lanes), ...extra };
}

/** CSR lists of f's active (> 0) entries. */
export function csrRowsKernel(
  gpu: Gpu,
  s: SparseShape,
  f: GPUBuffer,
  l: SparseLists,
): Promise<ComputeDispatch> {
  const v4 = s.m % 4 === 0;
  return kernel(gpu, {
    label: "sparse rows",
    code: code(gpu),
    entry: v4 ? "csr_rows4" : "csr_rows",
    constants: consts(s),
    buffers: v4 ? [null, l.rowIdx, l.rowCnt, ...Array(11).fill(null), f] : [f, l.rowIdx, l.rowCnt],
    groups: groupsFor(s.B),
    // Tests and counts, no arithmetic: reads f, writes the counts and an index per active entry.
    cost: { flops: 0, bytes: 4 * (s.B * s.m + s.B), perActive: { flops: 0, bytes: 4 } },
  });
}

/** CSC lists of f's active entries. */
export function cscColsKernel(
  gpu: Gpu,
  s: SparseShape,
  f: GPUBuffer,
  l: SparseLists,
): Promise<ComputeDispatch> {
  // A vec4 variant (4 latents per invocation) measured 1.5-2.5x slower on lavapipe: the
  // per-component branches and counters cost more than the loads saved.
  return kernel(gpu, {
    label: "sparse cols",
    code: code(gpu),
    entry: "csc_cols",
    constants: consts(s),
    buffers: [f, l.colIdx, l.colCnt],
    groups: groupsFor(s.m, WG),
    cost: { flops: 0, bytes: 4 * (s.B * s.m + s.m), perActive: { flops: 0, bytes: 4 } },
  });
}

/** out [B, d] = f·Y + bias over each row's active latents (Y [m, d], bias [d]). */
export function spmmRowsKernel(
  gpu: Gpu,
  label: string,
  s: SparseShape,
  b: { f: GPUBuffer; lists: SparseLists; y: GPUBuffer; bias: GPUBuffer; out: GPUBuffer },
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label,
    code: code(gpu),
    entry: "spmm_rows",
    constants: consts(s),
    buffers: [b.f, null, null, b.lists.rowIdx, b.lists.rowCnt, b.y, b.out, b.bias],
    groups: groupsFor(s.B),
    // A multiply-add per active entry and output column, then the bias; reads Y and the bias
    // once, each active entry's index and value, writes out.
    cost: {
      flops: s.B * s.d,
      bytes: 4 * (s.m * s.d + s.d + s.B * s.d + s.B),
      perActive: { flops: 2 * s.d, bytes: 8 },
    },
  });
}

/** out [m, d] = Fᵀ·Y over each latent's active rows (F [B, m] zero off f's support, Y [B, d]). */
export function spmmColsKernel(
  gpu: Gpu,
  label: string,
  s: SparseShape,
  b: { F: GPUBuffer; lists: SparseLists; y: GPUBuffer; out: GPUBuffer },
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label,
    code: code(gpu),
    entry: "spmm_cols",
    constants: consts(s),
    buffers: [b.F, null, null, b.lists.colIdx, b.lists.colCnt, b.y, b.out],
    groups: groupsFor(s.m),
    // A multiply-add per active entry and output column; reads Y once, each active entry's index
    // and value, writes out.
    cost: {
      flops: 0,
      bytes: 4 * (s.B * s.d + s.m * s.d + s.m),
      perActive: { flops: 2 * s.d, bytes: 8 },
    },
  });
}

/**
 * out [B, m] = (X·Yᵀ + S[scalarIdx]) on the active entries of each row, 0 elsewhere (X [B, d],
 * Y [m, d]): two dispatches, a vec4 clear of `out` and the products.
 */
export async function sddmmRowsKernels(
  gpu: Gpu,
  label: string,
  s: SparseShape,
  scalarIdx: number,
  b: { lists: SparseLists; x: GPUBuffer; y: GPUBuffer; s: GPUBuffer; out: GPUBuffer },
): Promise<ComputeDispatch[]> {
  const slots: (GPUBuffer | null)[] = [null, null, null, b.lists.rowIdx, b.lists.rowCnt, b.y];
  const n4 = Math.floor(s.B * s.m / 4); // sddmm_rows clears the remaining floats
  return [
    await kernel(gpu, {
      label: `${label} clear`,
      code: code(gpu),
      entry: "zero4",
      constants: { D4: n4 },
      buffers: [...Array(6).fill(null), b.out],
      groups: groupsFor(n4, WG),
      cost: { flops: 0, bytes: 16 * n4 },
    }),
    await kernel(gpu, {
      label,
      code: code(gpu),
      entry: "sddmm_rows",
      constants: consts(s, { SCALAR_IDX: scalarIdx }),
      buffers: [...slots, null, null, b.s, b.x, b.out],
      groups: groupsFor(s.B),
      // Per active entry a length-d dot product, its four partial sums and the scalar added;
      // reads X and Y once, each entry's index, writes its value.
      cost: {
        flops: 0,
        bytes: 4 * (s.B * s.d + s.m * s.d + s.B + 1),
        perActive: { flops: 2 * s.d + 4, bytes: 8 },
      },
    }),
  ];
}

/**
 * Per latent over its CSC list: stats [m, 2] = (fires, Σ f), dbEnc [m] = Σ dL/dpre, and
 * lastFired[j] = the step's number where it fired (the dense step's feature statistics and
 * db_enc column sums, from the active rows only).
 */
export function colStatsKernel(
  gpu: Gpu,
  s: SparseShape,
  b: {
    f: GPUBuffer;
    dpre: GPUBuffer;
    lists: SparseLists;
    stats: GPUBuffer;
    dbEnc: GPUBuffer;
    lastFired: GPUBuffer;
    state: GPUBuffer;
  },
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label: "sparse stats + db_enc",
    code: code(gpu),
    entry: "col_stats",
    constants: consts(s),
    buffers: [
      ...[b.f, null, null, b.lists.colIdx, b.lists.colCnt],
      ...Array(10).fill(null),
      ...[b.dpre, b.stats, b.dbEnc, b.lastFired, b.state],
    ],
    groups: groupsFor(s.m, WG),
    // Two sums per active entry (reading its index, f and dL/dpre); per latent reads its count,
    // writes (fires, Σf), dL/db_enc and the last-fired step.
    cost: { flops: 0, bytes: 4 * 5 * s.m, perActive: { flops: 2, bytes: 12 } },
  });
}

/**
 * The plan: a dispatch that counts f's active entries (from the CSR counts) and picks the sparse
 * kernels when they are at most `maxDensity`·B·m, else the dense ones; and copies of `dense` and
 * `sparse` whose compute dispatches read their workgroup counts from the arguments it writes
 * (zero for the path not taken). Copy items (a GEMM's operand packing) cannot be dispatched
 * indirectly and run whichever path is taken: they only fill the GEMMs' scratch textures, which
 * every GEMM packs afresh before its product. It adds 1 to `count.acc[count.index]` on a step
 * that runs sparse.
 */
export async function planDispatches(
  gpu: Gpu,
  s: SparseShape,
  lists: SparseLists,
  maxDensity: number,
  dense: readonly Dispatch[],
  sparse: readonly Dispatch[],
  count: { acc: GPUBuffer; index: number },
): Promise<{ plan: ComputeDispatch; dense: Dispatch[]; sparse: Dispatch[] }> {
  const items = [...dense, ...sparse];
  const planned = items.flatMap((d, i) => d.copy ? [] : [{ d, sparse: i >= dense.length }]);
  const n = planned.length;
  const table = new Uint32Array(4 * n);
  planned.forEach((p, i) => {
    table.set(p.d.groups, 3 * i);
    table[3 * n + i] = p.sparse ? 1 : 0;
  });
  const tableBuf = gpu.upload("sparse plan table", table);
  const args = gpu.buffer("sparse plan args", 3 * n * 4, GPUBufferUsage.INDIRECT);
  const plan = await kernel(gpu, {
    label: "sparse plan",
    code: code(gpu),
    entry: "plan",
    constants: consts(s, {
      N_ARGS: n,
      MAX_NNZ: Math.floor(maxDensity * s.B * s.m),
      ACC_IDX: count.index,
    }),
    buffers: [
      ...[null, null, null, null, lists.rowCnt],
      ...Array(6).fill(null),
      ...[tableBuf, args, count.acc],
    ],
    groups: [1, 1, 1],
    // Sums the row counts; reads the table (3 counts and a mode per dispatch), writes the
    // arguments, adds to one accumulator.
    cost: { flops: s.B, bytes: 4 * (s.B + 7 * n + 2) },
  });
  let next = 0;
  const ind = items.map((d): Dispatch =>
    d.copy ? d : { ...d, indirect: { buffer: args, offset: 12 * next++ } }
  );
  return { plan, dense: ind.slice(0, dense.length), sparse: ind.slice(dense.length) };
}

// --- Plain-TypeScript references ---------------------------------------------------------------

/** CSR of the active (> 0) entries of f [B, m]. */
export function csrReference(f: Float32Array, B: number, m: number): Uint32Array[] {
  const rows: Uint32Array[] = [];
  for (let r = 0; r < B; r++) {
    const js: number[] = [];
    for (let j = 0; j < m; j++) if (f[r * m + j] > 0) js.push(j);
    rows.push(Uint32Array.from(js));
  }
  return rows;
}

/** CSC of the active entries of f [B, m]. */
export function cscReference(f: Float32Array, B: number, m: number): Uint32Array[] {
  const cols: Uint32Array[] = [];
  for (let j = 0; j < m; j++) {
    const rs: number[] = [];
    for (let r = 0; r < B; r++) if (f[r * m + j] > 0) rs.push(r);
    cols.push(Uint32Array.from(rs));
  }
  return cols;
}

/** f·Y + bias over f's active entries (f64 sums). */
export function spmmRowsReference(
  s: SparseShape,
  f: Float32Array,
  y: Float32Array,
  bias: Float32Array,
): Float32Array {
  const out = new Float32Array(s.B * s.d);
  for (let r = 0; r < s.B; r++) {
    for (let n = 0; n < s.d; n++) {
      let acc = 0;
      for (let j = 0; j < s.m; j++) {
        if (f[r * s.m + j] > 0) acc += f[r * s.m + j] * y[j * s.d + n];
      }
      out[r * s.d + n] = acc + bias[n];
    }
  }
  return out;
}

/** Fᵀ·Y over the rows where f is active (F zero elsewhere gives the same as dense). */
export function spmmColsReference(
  s: SparseShape,
  f: Float32Array,
  F: Float32Array,
  y: Float32Array,
): Float32Array {
  const out = new Float32Array(s.m * s.d);
  for (let j = 0; j < s.m; j++) {
    for (let n = 0; n < s.d; n++) {
      let acc = 0;
      for (let r = 0; r < s.B; r++) {
        if (f[r * s.m + j] > 0) acc += F[r * s.m + j] * y[r * s.d + n];
      }
      out[j * s.d + n] = acc;
    }
  }
  return out;
}

/** (X·Yᵀ + c) where f is active, 0 elsewhere. */
export function sddmmReference(
  s: SparseShape,
  f: Float32Array,
  x: Float32Array,
  y: Float32Array,
  c: number,
): Float32Array {
  const out = new Float32Array(s.B * s.m);
  for (let r = 0; r < s.B; r++) {
    for (let j = 0; j < s.m; j++) {
      if (!(f[r * s.m + j] > 0)) continue;
      let acc = 0;
      for (let n = 0; n < s.d; n++) acc += x[r * s.d + n] * y[j * s.d + n];
      out[r * s.m + j] = acc + c;
    }
  }
  return out;
}
