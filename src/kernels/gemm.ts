/**
 * The GEMM family (wgsl/gemm.wgsl): C[M,N] = epilogue(op(A)·op(B)) in the layouts the SAE step needs.
 *
 * | use in the step        | layout | A            | B              | epilogue   |
 * |------------------------|--------|--------------|----------------|------------|
 * | pre = x·W_encᵀ + b_enc | NT     | x [B,d]      | W_enc [m,d]    | bias_relu  |
 * | x̂ = f·W_dec + b_dec    | NN     | f [B,m]      | W_dec [m,d]    | bias       |
 * | dF = dX̂·W_decᵀ         | NT     | dX̂ [B,d]     | W_dec [m,d]    | relu_grad  |
 * | dW_dec = fᵀ·dX̂         | TN     | f [B,m]      | dX̂ [B,d]       | none       |
 * | dW_enc = dpreᵀ·x       | TN     | dpre [B,m]   | x [B,d]        | none       |
 */
import gemmSrc from "../../wgsl/gemm.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { cdiv, type Dispatch, MAX_GROUPS } from "../gpu/dispatch.ts";
import { fits, type Operand, view, viewElems } from "../gpu/split.ts";

/** What follows the matrix product. */
export type Epilogue =
  | "none"
  | "bias"
  | "bias_relu"
  | "relu_grad"
  | "bias_threshold"
  | "ortho_coef"
  | "accumulate";

const EPILOGUE_CODE: Record<Epilogue, number> = {
  none: 0,
  bias: 1,
  bias_relu: 2,
  relu_grad: 3,
  bias_threshold: 4,
  ortho_coef: 5,
  accumulate: 6,
};

/**
 * Tile shapes: the one place they are set.
 *
 * `vec4` (entry point `main_v4`) is the fast path on GPUs: no workgroup memory, each invocation
 * keeps an (4·RG)x(4·CG) block of C in registers and loads both operands as vec4 along their
 * contiguous dimension. It needs K % 4 == 0, M % 4 == 0 when A is transposed, N % 4 == 0 when B is
 * not (see {@link vec4Ok}); every SAE size qualifies. Other sizes use `scalar` (entry point `main`,
 * a 64x64x16 shared-memory tile with any M, N, K).
 *
 * `texture` (entry point `main_tex`, unrolled for its tile by {@link texEntry}) is the fast path on
 * CPU adapters, for the same shapes: both operands are first packed (entry point `pack`, one
 * dispatch per operand) into rgba32float storage textures and read from there. On
 * llvmpipe/lavapipe every storage-buffer load whose address differs per invocation is a per-lane
 * loop (8 scalar loads per component, each with a bounds check and a branch) and bounds the
 * kernel; a read-only storage-texture load is a branch-free gather of whole texels, ~2.5x cheaper.
 * Each workgroup computes T_R rows (the same for all its invocations) by T_WG·4·T_CG columns, and
 * each invocation loads all fragments of a K step before its FMAs: 3.5-4x the vec4 path's
 * GFLOP/s there. Workgroup memory gains nothing (its loads are the same per-lane loops).
 * Measured on lavapipe (bench/RESULTS.md).
 *
 * Adapters: CPU adapters (llvmpipe, lavapipe, SwiftShader, or `isFallbackAdapter`) get `texture`
 * ({@link gemmDispatches}; {@link gemm}, one dispatch, gets `cpu`); other adapters get `gpu`, an
 * untuned guess (16x16 invocations, 128x128 tile) left for the H100 tuning issue.
 */
export const GEMM_TILE = {
  /** Fallback for sizes vec4 cannot take. BM = WG_Y·TM, BN = WG_X·4. */
  scalar: { WG_X: 16, WG_Y: 16, TM: 4, BK: 16 },
  /** Texture path (CPU adapters). BM = T_R, BN = T_WG·4·T_CG. */
  texture: { T_WG: 64, T_R: 16, T_CG: 2 },
  /** vec4 buffer path on a CPU adapter (single-dispatch {@link gemm}). */
  cpu: { V_WG_X: 8, V_WG_Y: 8, V_RG: 2, V_CG: 2 },
  /** vec4 fast path on other adapters (untuned). */
  gpu: { V_WG_X: 16, V_WG_Y: 16, V_RG: 2, V_CG: 2 },
} as const;
/**
 * The default texture tile of a GEMM: GEMM_TILE.texture, with 24 rows per workgroup for the NT
 * layout (the encoder, dF, the Gram blocks: 74-78 vs 70-72 GFLOP/s at 1024x4096x512 on lavapipe;
 * TN and NN are no faster or slower with it), and fewer invocations per workgroup when N is
 * narrower than one workgroup's 512 columns (N = 128: 16, not 64 with 48 idle).
 */
export function texTileFor(
  spec: Pick<GemmSpec, "N" | "transA" | "transB">,
): { T_WG: number; T_R: number; T_CG: number } {
  const t = GEMM_TILE.texture;
  const lanes = Math.ceil(spec.N / (4 * t.T_CG) / 8) * 8;
  const T_R = spec.transB && !spec.transA ? 24 : t.T_R;
  return { ...t, T_R, T_WG: Math.max(8, Math.min(t.T_WG, lanes)) };
}

/**
 * Smallest GEMM (2·M·N·K FLOPs) that takes the texture path by default: below it the two packing
 * dispatches cost more than they save (GPU timestamps on lavapipe: 0.3 MFLOP 0.08 ms vec4 vs
 * 0.13 ms texture; ~4 MFLOP a tie; 17 MFLOP, the CPU default step's GEMMs, 1.3-1.6x faster).
 */
export const TEXTURE_MIN_FLOPS = 2 ** 23;

/** Columns per thread of the scalar fallback: fixed at 4 (one vec4 accumulator per row). */
const TN = 4;

/** Whether `name` is a CPU (software) WebGPU adapter. */
export function isCpuAdapter(name: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(name);
}

/**
 * Whether the vec4 path can run this shape (its vec4 dimensions are multiples of 4, and so are
 * the leading dimensions and offsets of A and B when given).
 */
export function vec4Ok(
  spec: Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB">,
  layout: Partial<GemmLayout> = {},
): boolean {
  const l = [layout.lda, layout.ldb, layout.offA, layout.offB].filter((v) => v !== undefined);
  return spec.K % 4 === 0 && (!spec.transA || spec.M % 4 === 0) &&
    (spec.transB || spec.N % 4 === 0) && l.every((v) => v! % 4 === 0);
}

/**
 * Where the operands of one GEMM live in their bindings (elements): leading dimensions of the
 * stored matrices, their start offsets, and the global column of column 0 (for per-column
 * vectors). Defaults: tightly packed, offset 0.
 */
export interface GemmLayout {
  lda: number;
  ldb: number;
  ldc: number;
  offA: number;
  offB: number;
  offC: number;
  eoff: number;
}

function defaultLayout(spec: GemmSpec): GemmLayout {
  return {
    lda: spec.transA ? spec.M : spec.K,
    ldb: spec.transB ? spec.K : spec.N,
    ldc: spec.N,
    offA: 0,
    offB: 0,
    offC: 0,
    eoff: 0,
  };
}

/** A GEMM kernel path (see {@link GEMM_TILE}). */
export type GemmPath = "texture" | "vec4" | "scalar";

/** Options of {@link gemm} and {@link gemmDispatches}, mostly for tests and benchmarks. */
export interface GemmOptions {
  /**
   * Force a path: "vec4" and "texture" throw if the shape cannot take them, "texture" also in
   * {@link gemm} (it needs the packing dispatches). Default: texture on CPU adapters in
   * {@link gemmDispatches}, else vec4, when the shape allows; else scalar.
   */
  path?: GemmPath;
  /** vec4 tile shape; default from the adapter (see {@link GEMM_TILE}). */
  tile?: { V_WG_X: number; V_WG_Y: number; V_RG: 1 | 2; V_CG: 1 | 2 };
  /** Texture-path tile shape (T_R a multiple of 4 up to 32, T_CG 1-4; default GEMM_TILE.texture). */
  texTile?: { T_WG: number; T_R: number; T_CG: number };
  /** Texture path: texels per row of the packed textures (a power of two; default 8192). */
  texWidth?: number;
  /**
   * Store the packed operands as f16 (rgba16float textures; products and sums stay f32): halves
   * the operand bytes at ~1e-3 relative rounding per operand. Takes the texture path on any
   * adapter wherever the shape allows (no shader-f16 needed: the texture converts on load).
   */
  f16?: boolean;
  /** Operand layout inside the bindings (default: tightly packed from offset 0). */
  layout?: Partial<GemmLayout>;
  /** Reuse this pipeline (made by an earlier call with the same spec, path and epilogue). */
  pipeline?: GPUComputePipeline;
}

/** Shape and layout of one GEMM. */
export interface GemmSpec {
  label: string;
  M: number;
  N: number;
  K: number;
  /** A is stored [K,M] instead of [M,K]. */
  transA: boolean;
  /** B is stored [N,K] instead of [K,N]. */
  transB: boolean;
  epilogue: Epilogue;
  /** For "relu_grad": index into the scalars buffer S of the value added before masking. */
  scalarIdx?: number;
  /** For "ortho_coef": global row index of this GEMM's first row (A may be a row chunk). */
  row0?: number;
}

export type { Operand };

/**
 * Buffers of one GEMM; `e` is the bias [N], mask [M,N] or importance vector, `s` the step
 * scalars or thresholds (see the epilogues in wgsl/gemm.wgsl).
 */
export interface GemmBuffers {
  a: Operand;
  b: Operand;
  c: Operand;
  e?: Operand;
  s?: Operand;
}

/** Rows and columns of the stored matrix of operand `role` ("a": A, "b": B). */
function storedShape(spec: GemmSpec, role: "a" | "b"): [number, number] {
  if (role === "a") return spec.transA ? [spec.K, spec.M] : [spec.M, spec.K];
  return spec.transB ? [spec.N, spec.K] : [spec.K, spec.N];
}

/** Texels per row of the packed textures (a power of two within the device's limit). */
function texWidth(gpu: Gpu, opts: GemmOptions): number {
  const w = opts.texWidth ?? Math.min(8192, gpu.device.limits.maxTextureDimension2D);
  if (!Number.isInteger(Math.log2(w))) throw new Error(`texWidth ${w} is not a power of two`);
  return w;
}

/** Whether both operands of this vec4-able GEMM fit a packed texture of width `w`. */
function textureOk(gpu: Gpu, spec: GemmSpec, w: number): boolean {
  return (["a", "b"] as const).every((role) => {
    const [r, c] = storedShape(spec, role);
    return Math.ceil(r * c / 4 / w) <= gpu.device.limits.maxTextureDimension2D;
  });
}

/**
 * Packed copies of the operands live in scratch textures, one per operand role and width per Gpu,
 * shared by every GEMM: each GEMM's dispatch list packs its operands right before its product,
 * so any order of whole GEMMs is safe. A GEMM needing more texels than the current one gets a
 * larger texture (twice the rows); earlier GEMMs keep the old one through their bind groups.
 */
const scratch = new WeakMap<Gpu, Map<string, GPUTexture>>();

/** Texel format of the packed operands. */
type TexFormat = "rgba32float" | "rgba16float";

/**
 * The `main_tex` entry point for blocks of `rg` x `cg` 4x4 tiles per invocation, unrolled (see
 * wgsl/gemm.wgsl): every fragment of a K step loaded first, then the FMAs.
 */
export function texEntry(rg: number, cg: number): string {
  const R = [...Array(rg).keys()], C = [...Array(cg).keys()];
  const L = [
    "@compute @workgroup_size(T_WG, 1, 1)",
    "fn main_tex(",
    "  @builtin(workgroup_id) wid: vec3<u32>,",
    "  @builtin(local_invocation_id) lid: vec3<u32>,",
    ") {",
    "  let K4 = p.K / 4u;",
    "  let lastRB = max(p.M / 4u, 1u) - 1u;",
    "  let lastCB = max(p.N / 4u, 1u) - 1u;",
    `  let rb = wid.y * ${rg}u;`,
    `  let cb = (wid.x * T_WG + lid.x) * ${cg}u;`,
    ...R.map((i) =>
      `  let ro${i} = rowTexels((rb + ${i}u) * 4u, p.M - 1u, K4);` +
      ` let rc${i} = min(rb + ${i}u, lastRB);`
    ),
    ...C.map((j) =>
      `  let co${j} = rowTexels((cb + ${j}u) * 4u, p.N - 1u, K4);` +
      ` let cc${j} = min(cb + ${j}u, lastCB);`
    ),
    ...R.flatMap((i) => C.map((j) => `  var acc${i}_${j} = mat4x4<f32>();`)),
    "  for (var k4 = 0u; k4 < K4; k4++) {",
    ...C.map((j) => `    let b${j} = fragBt(co${j}, cc${j}, k4);`),
    ...R.map((i) => `    let a${i} = fragAt(ro${i}, rc${i}, k4);`),
    ...R.flatMap((i) => C.map((j) => `    acc${i}_${j} = mac(acc${i}_${j}, a${i}, b${j});`)),
    "  }",
    ...R.flatMap((i) =>
      C.map((j) => `  storeBlock((rb + ${i}u) * 4u, (cb + ${j}u) * 4u, acc${i}_${j});`)
    ),
    "}",
  ];
  return L.join("\n") + "\n";
}

/**
 * The GEMM source for the texture path: packed textures declared in `fmt`, `main_tex` unrolled
 * for `tile` (text specializations).
 */
function texSource(fmt: TexFormat, tile?: { T_R: number; T_CG: number }): string {
  const src = fmt === "rgba32float" ? gemmSrc : gemmSrc.replaceAll("rgba32float", fmt);
  return tile ? src + texEntry(tile.T_R / 4, tile.T_CG) : src;
}

function scratchTexture(
  gpu: Gpu,
  role: "a" | "b",
  w: number,
  texels: number,
  fmt: TexFormat,
): GPUTexture {
  let byKey = scratch.get(gpu);
  if (!byKey) scratch.set(gpu, byKey = new Map());
  const key = `${role} ${w} ${fmt}`;
  const rows = Math.max(1, Math.ceil(texels / w));
  const cur = byKey.get(key);
  if (cur && cur.height >= rows) return cur;
  const max = gpu.device.limits.maxTextureDimension2D;
  const height = Math.min(max, Math.max(rows, 2 * (cur?.height ?? 0)));
  const tex = gpu.device.createTexture({
    label: `gemm packed ${role}`,
    size: [w, height],
    format: fmt,
    usage: GPUTextureUsage.STORAGE_BINDING,
  });
  byKey.set(key, tex);
  return tex;
}

const packPipelines = new WeakMap<Gpu, Map<string, Promise<GPUComputePipeline>>>();

function packPipeline(gpu: Gpu, w: number, fmt: TexFormat): Promise<GPUComputePipeline> {
  let byW = packPipelines.get(gpu);
  if (!byW) packPipelines.set(gpu, byW = new Map());
  let p = byW.get(`${w} ${fmt}`);
  if (!p) {
    p = gpu.pipeline("gemm pack", texSource(fmt), { TEX_W: w }, "pack");
    byW.set(`${w} ${fmt}`, p);
  }
  return p;
}

/** A bind group of buffer operands and texture views (Gpu.bindGroup binds buffers only). */
function bindMixed(
  gpu: Gpu,
  pipeline: GPUComputePipeline,
  entries: [number, Operand | GPUTexture][],
  label: string,
): GPUBindGroup {
  gpu.counters.bindGroups++;
  return gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: entries.map(([binding, r]) => ({
      binding,
      resource: r instanceof GPUTexture
        ? r.createView()
        : r instanceof GPUBuffer
        ? { buffer: r }
        : r,
    })),
  });
}

/** The dispatch packing operand `role` of a GEMM into `tex` (see `pack` in wgsl/gemm.wgsl). */
async function packDispatch(
  gpu: Gpu,
  spec: GemmSpec,
  role: "a" | "b",
  src: Operand,
  ld: number,
  off: number,
  tex: GPUTexture,
  w: number,
  fmt: TexFormat,
): Promise<Dispatch> {
  const [rows, cols] = storedShape(spec, role);
  const c4 = cols / 4;
  const pipeline = await packPipeline(gpu, w, fmt);
  const params = gpu.uniform(
    `gemm ${spec.label} pack ${role} params`,
    new Uint32Array([rows, c4, 0, 0, ld, 0, 0, off, 0, 0, 0, 0]).buffer,
  );
  const label = `${spec.label} pack ${role.toUpperCase()}`;
  return {
    label,
    pipeline,
    bindGroup: bindMixed(gpu, pipeline, [[0, src], [5, params], [8, tex]], label),
    groups: [cdiv(c4, 64), Math.min(rows, MAX_GROUPS), cdiv(rows, MAX_GROUPS)],
  };
}

/**
 * Creates the pipeline and bind group of one GEMM on the vec4 or scalar path; run it with the
 * returned dispatch. The step uses {@link gemmDispatches} (texture path on CPU adapters).
 */
export async function gemm(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  opts: GemmOptions = {},
): Promise<Dispatch> {
  if (opts.path === "texture") {
    throw new Error(`gemm ${spec.label}: the texture path needs gemmDispatches`);
  }
  const list = await gemmList(gpu, spec, bufs, opts, "vec4");
  return list[0];
}

/** One GEMM's dispatches on the chosen (or default) path: [pack A, pack B,] product. */
async function gemmList(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  opts: GemmOptions,
  fast: "texture" | "vec4",
): Promise<Dispatch[]> {
  const layout = { ...defaultLayout(spec), ...opts.layout };
  const ok = vec4Ok(spec, layout);
  const w = texWidth(gpu, opts);
  const path = opts.path ??
    (!ok ? "scalar" : (opts.f16 || fast === "texture" && gemmFlops(spec) >= TEXTURE_MIN_FLOPS) &&
        textureOk(gpu, spec, w)
      ? "texture"
      : "vec4");
  const fmt: TexFormat = opts.f16 ? "rgba16float" : "rgba32float";
  if (path !== "scalar" && !ok) {
    throw new Error(
      `gemm ${spec.label}: ${spec.M}x${spec.N}x${spec.K} cannot take the ${path} path`,
    );
  }
  if (path === "texture" && !textureOk(gpu, spec, w)) {
    throw new Error(`gemm ${spec.label}: operands too large for a ${w}-texel-wide texture`);
  }
  const common = {
    TRANS_A: spec.transA ? 1 : 0,
    TRANS_B: spec.transB ? 1 : 0,
    EPILOGUE: EPILOGUE_CODE[spec.epilogue],
    SCALAR_IDX: spec.scalarIdx ?? 0,
  };
  let pipeline: GPUComputePipeline;
  let groups: [number, number, number];
  if (path === "scalar") {
    const t = GEMM_TILE.scalar;
    pipeline = opts.pipeline ??
      await gpu.pipeline(`gemm ${spec.label}`, gemmSrc, { ...common, ...t }, "main");
    groups = [cdiv(spec.N, t.WG_X * TN), cdiv(spec.M, t.WG_Y * t.TM), 1];
  } else if (path === "texture") {
    const t = opts.texTile ?? texTileFor(spec);
    if (t.T_R % 4 !== 0 || t.T_R < 4 || t.T_R > 32 || t.T_CG < 1 || t.T_CG > 4) {
      throw new Error(`gemm ${spec.label}: texture tile ${JSON.stringify(t)} out of range`);
    }
    pipeline = opts.pipeline ??
      await gpu.pipeline(
        `gemm ${spec.label}`,
        texSource(fmt, t),
        { ...common, T_WG: t.T_WG, TEX_W: w },
        "main_tex",
      );
    groups = [cdiv(spec.N, t.T_WG * 4 * t.T_CG), cdiv(spec.M, t.T_R), 1];
  } else {
    const t = opts.tile ?? (isCpuAdapter(gpu.adapterName) ? GEMM_TILE.cpu : GEMM_TILE.gpu);
    pipeline = opts.pipeline ??
      await gpu.pipeline(`gemm ${spec.label}`, gemmSrc, { ...common, ...t }, "main_v4");
    groups = [cdiv(spec.N, t.V_WG_X * 4 * t.V_CG), cdiv(spec.M, t.V_WG_Y * 4 * t.V_RG), 1];
  }
  const params = gpu.uniform(
    `gemm ${spec.label} params`,
    new Uint32Array([
      spec.M,
      spec.N,
      spec.K,
      spec.row0 ?? 0,
      layout.lda,
      layout.ldb,
      layout.ldc,
      layout.offA,
      layout.offB,
      layout.offC,
      layout.eoff,
      0,
    ]).buffer,
  );
  const e = bufs.e ?? gpu.dummy();
  const s = bufs.s ?? gpu.dummy();
  if (path !== "texture") {
    const bindGroup = gpu.bindGroup(pipeline, [bufs.a, bufs.b, bufs.c, e, s, params], spec.label);
    return [{ label: spec.label, pipeline, bindGroup, groups }];
  }
  const [ra, ca] = storedShape(spec, "a");
  const [rb, cb] = storedShape(spec, "b");
  const ta = scratchTexture(gpu, "a", w, ra * ca / 4, fmt);
  const tb = scratchTexture(gpu, "b", w, rb * cb / 4, fmt);
  const bindGroup = bindMixed(
    gpu,
    pipeline,
    [[2, bufs.c], [3, e], [4, s], [5, params], [6, ta], [7, tb]],
    spec.label,
  );
  return [
    await packDispatch(gpu, spec, "a", bufs.a, layout.lda, layout.offA, ta, w, fmt),
    await packDispatch(gpu, spec, "b", bufs.b, layout.ldb, layout.offB, tb, w, fmt),
    { label: spec.label, pipeline, bindGroup, groups },
  ];
}

/**
 * The GEMM as one dispatch when every operand fits a storage binding (the same dispatch as
 * {@link gemm}), else as parts over views of the operands (src/gpu/split.ts): blocks of rows of
 * C and of the inner dimension such that each stored operand's touched span fits one binding.
 * Every stored matrix is row-major, so a block touches a contiguous span of it once the block's
 * rows are bounded; parts along K accumulate (allowed for the "none", "bias" and "accumulate"
 * epilogues, the bias added by the first part). `e` of "relu_grad" is laid out like C.
 */
export async function gemmDispatches(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  opts: GemmOptions = {},
): Promise<Dispatch[]> {
  // Only the operands the epilogue reads are bound (E and S fill unused slots with a dummy).
  const ep = spec.epilogue;
  bufs = {
    ...bufs,
    e: ["none", "accumulate"].includes(ep) ? undefined : bufs.e,
    s: ["relu_grad", "bias_threshold", "ortho_coef"].includes(ep) ? bufs.s : undefined,
  };
  const small = [bufs.a, bufs.b, bufs.c, bufs.e, bufs.s].every((o) => !o || fits(gpu, o));
  const fast = isCpuAdapter(gpu.adapterName) || opts.f16 ? "texture" : "vec4";
  if (small) return await gemmList(gpu, spec, bufs, opts, fast);
  const { M, N, K } = spec;
  type Dim = "M" | "N" | "K";
  const mats: { rows: Dim; cols: Dim; ld: number }[] = [
    spec.transA ? { rows: "K", cols: "M", ld: M } : { rows: "M", cols: "K", ld: K },
    spec.transB ? { rows: "N", cols: "K", ld: K } : { rows: "K", cols: "N", ld: N },
    { rows: "M", cols: "N", ld: N },
  ];
  const blk: Record<Dim, number> = { M, N, K };
  const L = viewElems(gpu);
  for (let changed = true; changed;) {
    changed = false;
    for (const mt of mats) {
      const c = blk[mt.cols];
      if ((blk[mt.rows] - 1) * mt.ld + c <= L) continue;
      const rows = Math.floor(Math.floor((L - c) / mt.ld + 1) / 4) * 4;
      if (rows < 4) {
        throw new Error(`gemm ${spec.label}: 4 rows of ${mt.ld} f32 exceed the binding limit`);
      }
      blk[mt.rows] = rows;
      changed = true;
    }
  }
  const kSplit = blk.K < K;
  if (kSplit && !["none", "bias", "accumulate"].includes(spec.epilogue)) {
    throw new Error(`gemm ${spec.label}: epilogue ${spec.epilogue} cannot be split along K`);
  }
  const pipelines = new Map<string, GPUComputePipeline>();
  const out: Dispatch[] = [];
  for (let m0 = 0; m0 < M; m0 += blk.M) {
    const bm = Math.min(blk.M, M - m0);
    for (let n0 = 0; n0 < N; n0 += blk.N) {
      const bn = Math.min(blk.N, N - n0);
      for (let k0 = 0; k0 < K; k0 += blk.K) {
        const bk = Math.min(blk.K, K - k0);
        const at = { M: m0, N: n0, K: k0 };
        const size = { M: bm, N: bn, K: bk };
        const views = [bufs.a, bufs.b, bufs.c].map((op, i) => {
          const mt = mats[i];
          const start = at[mt.rows] * mt.ld + at[mt.cols];
          return view(gpu, op, start, (size[mt.rows] - 1) * mt.ld + size[mt.cols]);
        });
        let e: Operand | undefined = bufs.e;
        if (spec.epilogue === "relu_grad") {
          const ev = view(gpu, bufs.e!, m0 * N + n0, (bm - 1) * N + bn);
          if (ev.off !== views[2].off) throw new Error(`gemm ${spec.label}: E and C misaligned`);
          e = ev.binding;
        }
        const epilogue = k0 === 0 ? spec.epilogue : "accumulate";
        const sub: GemmSpec = {
          ...spec,
          M: bm,
          N: bn,
          K: bk,
          epilogue,
          row0: (spec.row0 ?? 0) + m0,
        };
        const layout: GemmLayout = {
          lda: mats[0].ld,
          ldb: mats[1].ld,
          ldc: N,
          offA: views[0].off,
          offB: views[1].off,
          offC: views[2].off,
          eoff: (opts.layout?.eoff ?? 0) + n0,
        };
        const path = opts.path ??
          (!vec4Ok(sub, layout) ? "scalar" : (isCpuAdapter(gpu.adapterName) || opts.f16) &&
              textureOk(gpu, sub, texWidth(gpu, opts))
            ? "texture"
            : "vec4");
        const key = `${path} ${epilogue}`;
        const ds = await gemmList(
          gpu,
          sub,
          {
            a: views[0].binding,
            b: views[1].binding,
            c: views[2].binding,
            e,
            s: bufs.s,
          },
          { ...opts, path, layout, pipeline: pipelines.get(key) },
          "texture",
        );
        pipelines.set(key, ds.at(-1)!.pipeline);
        out.push(...ds);
      }
    }
  }
  return out;
}

/** Floating-point operations of one GEMM (2·M·N·K). */
export function gemmFlops(spec: Pick<GemmSpec, "M" | "N" | "K">): number {
  return 2 * spec.M * spec.N * spec.K;
}

/** Plain-TypeScript reference of {@link gemm} (f64 accumulation). */
export function gemmReference(
  spec: GemmSpec,
  a: Float32Array,
  b: Float32Array,
  e?: Float32Array,
  s?: Float32Array,
  cIn?: Float32Array,
): Float32Array {
  const { M, N, K } = spec;
  const c = cIn ? cIn.slice() : new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const av = spec.transA ? a[k * M + m] : a[m * K + k];
        const bv = spec.transB ? b[n * K + k] : b[k * N + n];
        acc += av * bv;
      }
      switch (spec.epilogue) {
        case "bias":
          acc += e![n];
          break;
        case "bias_relu":
          acc = Math.max(acc + e![n], 0);
          break;
        case "relu_grad":
          acc = e![m * N + n] > 0 ? acc + s![spec.scalarIdx ?? 0] : 0;
          break;
        case "bias_threshold":
          acc += e![n];
          if (!(acc > Math.max(s![n], 0))) acc = 0;
          break;
        case "ortho_coef": {
          const i = (spec.row0 ?? 0) + m;
          acc = i === n ? 0 : s![0] * e![i] * e![n] * acc / (Math.abs(acc) + s![1]);
          break;
        }
        case "accumulate":
          acc += c[m * N + n];
          break;
      }
      c[m * N + n] = acc;
    }
  }
  return c;
}
