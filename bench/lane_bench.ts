/**
 * Whether the one-invocation-per-row ("lane") kernels CPU adapters take still pay: each family
 * that chooses its form by the adapter class (src/gpu/adapter.ts), timed in both forms in
 * alternation at the shapes CPU runs use. `deno run -A bench/lane_bench.ts` (LANE_BENCH_REPS,
 * default 9): median milliseconds over the reps of each form and their ratio (GPU timestamps
 * where the adapter has working ones, else host clocks: src/gpu/profile.ts). The top-k
 * selections' two forms are in bench/topk_bench.ts.
 */
import { getGpu } from "../src/gpu/device.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import { Profiler } from "../src/gpu/profile.ts";
import { attentionDispatches, type AttentionSpec } from "../src/kernels/attention.ts";
import { normalizeKernel, projectGradKernel } from "../src/kernels/decoder.ts";
import { residualKernel } from "../src/kernels/loss.ts";
import { normDispatches } from "../src/kernels/norm.ts";
import { orthoGradDispatches } from "../src/kernels/paper.ts";
import { ADAPTER_CLASS_ENV } from "../src/gpu/adapter.ts";
import { Rng } from "../src/rng.ts";

const gpu = await getGpu();
const REPS = Number(Deno.env.get("LANE_BENCH_REPS") ?? 9);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const rng = new Rng(3);
const rand = (label: string, n: number) =>
  gpu.upload(label, new Float32Array(n).map(() => rng.uniform() - 0.5));

/** The "ortho apply" dispatches of the orthogonality term as built for adapter class `cls`. */
async function orthoApply(m: number, d: number, cls: "cpu" | "gpu"): Promise<Dispatch[]> {
  const prev = Deno.env.get(ADAPTER_CLASS_ENV);
  Deno.env.set(ADAPTER_CLASS_ENV, cls);
  try {
    const b = {
      wDec: rand("W_dec", m * d),
      gDec: rand("dW_dec", m * d),
      weight: rand("weight", m),
      pscal: rand("pscal", 4),
      acc: gpu.buffer("acc", 256),
    };
    return (await orthoGradDispatches(gpu, m, d, b)).filter((x) => x.label === "ortho apply");
  } finally {
    if (prev === undefined) Deno.env.delete(ADAPTER_CLASS_ENV);
    else Deno.env.set(ADAPTER_CLASS_ENV, prev);
  }
}

/** [name, lane form, workgroup-per-row form] for each family at one shape. */
type Pair = [string, Dispatch[], Dispatch[]];

async function saePairs(B: number, d: number, m: number): Promise<Pair[]> {
  const x = rand("x", B * d), xhat = rand("xhat", B * d), xmean = rand("xmean", d);
  const loss = {
    x,
    xc: x,
    bDec: xmean,
    xhat,
    dxhat: gpu.buffer("dxhat", B * d * 4),
    xmean,
    rowstats: gpu.buffer("rowstats", B * 3 * 4),
  };
  const ls = { batch: B, dIn: d, scale: 1, applyBDec: true, squared: true };
  const w = rand("W_dec", m * d), g = rand("dW_dec", m * d);
  return [
    [
      `residual [${B}, ${d}]`,
      [await residualKernel(gpu, ls, loss, true)],
      [await residualKernel(gpu, ls, loss, false)],
    ],
    [
      `decoder grad projection [${m}, ${d}]`,
      await projectGradKernel(gpu, m, d, w, g, true),
      await projectGradKernel(gpu, m, d, w, g, false),
    ],
    [
      `decoder normalize [${m}, ${d}]`,
      await normalizeKernel(gpu, m, d, w, true),
      await normalizeKernel(gpu, m, d, w, false),
    ],
    [`ortho apply [${m}, ${d}]`, await orthoApply(m, d, "cpu"), await orthoApply(m, d, "gpu")],
  ];
}

/** stories260K's norm and attention (dim 64, 8 heads on 4 KV heads of 8) at `batch` × `seq`. */
async function lmPairs(batch: number, seq: number): Promise<Pair[]> {
  const T = batch * seq, dim = 64, nHeads = 8, nKv = 4, hd = 8;
  const nb = { x: rand("x", T * dim), weight: rand("w", dim), out: gpu.buffer("o", T * dim * 4) };
  const spec: AttentionSpec = {
    batch,
    seq,
    maxSeq: seq,
    nHeads,
    nKvHeads: nKv,
    headDim: hd,
    scale: 1 / Math.sqrt(hd),
    positions: "offset",
  };
  const ab = {
    q: rand("q", T * nHeads * hd),
    kCache: rand("k", T * nKv * hd),
    vCache: rand("v", T * nKv * hd),
    pos: gpu.upload("pos", new Uint32Array(batch)),
    out: gpu.buffer("out", T * nHeads * hd * 4),
  };
  const norm = (lane: boolean) =>
    normDispatches(gpu, { rows: T, dim, kind: "rms", eps: 1e-5, lane }, nb);
  return [
    [`rms norm [${T}, ${dim}]`, await norm(true), await norm(false)],
    [
      `attention ${batch} × ${seq} (8 heads on 4, head_dim 8)`,
      await attentionDispatches(gpu, { ...spec, lane: true }, ab),
      await attentionDispatches(gpu, { ...spec, lane: false }, ab),
    ],
  ];
}

console.log(`adapter: ${gpu.adapterName}; reps ${REPS}; median ms, lane / workgroup per row`);
for (
  const [title, pairs] of [
    ["SAE, CPU default (B 256, d_in 64, d_sae 512)", await saePairs(256, 64, 512)],
    ["SAE, B 1024, d_in 512, d_sae 4096", await saePairs(1024, 512, 4096)],
    ["stories260K, 8 contexts of 128 tokens", await lmPairs(8, 128)],
    ["stories260K, 32 contexts of 256 tokens", await lmPairs(32, 256)],
  ] as const
) {
  const all = pairs.flatMap(([, a, b]) => [...a, ...b]);
  const prof = new Profiler(gpu, all.length);
  await prof.run(all);
  const times = pairs.map(() => [[] as number[], [] as number[]]);
  for (let rep = 0; rep < REPS; rep++) {
    const ms = await prof.run(all);
    let i = 0;
    pairs.forEach(([, a, b], p) => {
      for (const [side, list] of [[0, a], [1, b]] as const) {
        times[p][side].push(ms.slice(i, i + list.length).reduce((s, v) => s + v, 0));
        i += list.length;
      }
    });
  }
  console.log(`\n${title} (${prof.method})`);
  pairs.forEach(([name], p) => {
    const [lane, row] = times[p].map(median);
    console.log(
      `  ${name.padEnd(48)} ${lane.toFixed(3).padStart(8)} ${row.toFixed(3).padStart(8)} ms  ` +
        `lane ${(row / lane).toFixed(1)}× faster`,
    );
  });
}
