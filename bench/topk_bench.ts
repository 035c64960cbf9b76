/**
 * The TopK / BatchTopK / JumpReLU / AuxK kernels against the encoder GEMM of the same shape, per
 * dispatch group: `deno run -A bench/topk_bench.ts` (TOPK_BENCH_SHAPES=large adds B 4096, d_in
 * 2304, d_sae 16384 for a GPU; TOPK_BENCH_REPS, default 9). Median milliseconds over the reps
 * (GPU timestamps where the adapter has them, else host clocks: src/gpu/profile.ts), and the
 * selection's time as a fraction of the encoder GEMM's, the product every variant runs anyway.
 * The row and batch selections run in both forms (a workgroup per row; an invocation per row, the
 * default on CPU adapters for rows up to LANE_MAX_M) and as the adapter's default.
 */
import { getGpu } from "../src/gpu/device.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import { Profiler } from "../src/gpu/profile.ts";
import { gemmDispatches } from "../src/kernels/gemm/mod.ts";
import { jumpReluBackwardKernel, thresholdActKernel } from "../src/kernels/jumprelu.ts";
import {
  allocAuxKScratch,
  allocBatchTopKScratch,
  allocTopKLists,
  auxGradKernel,
  auxLossDispatches,
  batchThresholdKernel,
  batchTopKDispatches,
  deadMaskKernel,
  rowTopKKernel,
} from "../src/kernels/topk.ts";
import { Rng } from "../src/rng.ts";
import { packState } from "../src/kernels/common.ts";

const gpu = await getGpu();
const REPS = Number(Deno.env.get("TOPK_BENCH_REPS") ?? 9);
const shapes = [
  { B: 256, d: 64, m: 512, k: 32 }, // the default run's shape
  { B: 1024, d: 512, m: 4096, k: 64 },
  ...(Deno.env.get("TOPK_BENCH_SHAPES") === "large" ? [{ B: 4096, d: 2304, m: 16384, k: 64 }] : []),
];
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
console.log(`adapter: ${gpu.adapterName}; reps ${REPS}`);

for (const { B, d, m, k } of shapes) {
  const rng = new Rng(1);
  const randBuf = (label: string, n: number, lo: number, hi: number) =>
    gpu.upload(label, new Float32Array(n).map(() => lo + (hi - lo) * rng.uniform()));
  const x = randBuf("x", B * d, -1, 1), wEnc = randBuf("W_enc", m * d, -0.1, 0.1);
  const bEnc = randBuf("b_enc", m, -0.1, 0), pre = gpu.buffer("pre", B * m * 4);
  const f = gpu.buffer("f", B * m * 4), dpre = randBuf("dpre", B * m, -1, 1);
  const wDec = randBuf("W_dec", m * d, -0.1, 0.1);
  const lists = allocTopKLists(gpu, B, k);
  const state = gpu.upload(
    "st",
    packState({ step: 2000, lr: 0, b1t: 1, b2t: 1, l1_coef: 0, main_phase: 0 }),
  );
  const lastFired = gpu.upload("last", new Uint32Array(m).map((_, j) => j % 10 ? 1999 : 0));
  const kAux = Math.min(d / 2, 2048);
  const auxLists = allocTopKLists(gpu, B, kAux);
  const dead = gpu.buffer("dead", m * 4), aux = gpu.buffer("aux", 16);
  const scratch = allocBatchTopKScratch(gpu, B);
  const logTheta = gpu.upload("log theta", new Float32Array(m).fill(Math.log(0.05)));
  const coef = gpu.upload("coef", new Float32Array([1]));
  const groups: [string, Dispatch[]][] = [
    [
      "encode GEMM (pre)",
      await gemmDispatches(gpu, {
        label: "encode",
        M: B,
        N: m,
        K: d,
        transA: false,
        transB: true,
        epilogue: "bias",
      }, { a: x, b: wEnc, c: pre, e: bEnc }),
    ],
    [`row top-k (k ${k})`, await rowTopKKernel(gpu, { B, m, k }, { pre, f, lists })],
    [
      `row top-k (k ${k}), workgroup per row`,
      await rowTopKKernel(gpu, { B, m, k }, { pre, f, lists }, { lane: false }),
    ],
    [
      `row top-k (k ${k}), invocation per row`,
      await rowTopKKernel(gpu, { B, m, k }, { pre, f, lists }, { lane: true }),
    ],
    [
      `batch top-k (k ${k}), workgroup per row`,
      await batchTopKDispatches(gpu, { B, m, k }, { pre, f, scratch }, { lane: false }),
    ],
    [
      `batch top-k (k ${k}), invocation per row`,
      await batchTopKDispatches(gpu, { B, m, k }, { pre, f, scratch }, { lane: true }),
    ],
    [`batch top-k (k ${k})`, [
      ...await batchTopKDispatches(gpu, { B, m, k }, { pre, f, scratch }),
      await batchThresholdKernel(gpu, { kind: "saelens", lr: 0.01 }, {
        scratch,
        theta: { buf: aux, index: 0 },
        state,
      }),
    ]],
    [`AuxK (k_aux ${kAux}; ê product not included)`, [
      await deadMaskKernel(gpu, m, 1000, { lastFired, state, dead, aux }),
      ...await rowTopKKernel(gpu, { B, m, k: kAux, reluAfter: false }, {
        pre,
        f: gpu.buffer("auxf", B * m * 4),
        lists: auxLists,
        mask: dead,
      }),
      ...await auxLossDispatches(gpu, {
        B,
        d,
        kAux,
        coef: 1,
        deadScale: true,
        normalize: false,
      }, {
        x,
        xhat: x,
        recons: x,
        g: gpu.buffer("g", B * d * 4),
        aux,
        scratch: allocAuxKScratch(gpu, B, d),
      }),
      ...await auxGradKernel(gpu, { B, m, d, kAux }, { lists: auxLists, g: x, wDec, dpre }),
    ]],
    [
      "JumpReLU forward",
      await thresholdActKernel(gpu, { B, m }, {
        pre,
        f,
        l0Row: gpu.buffer("l0", B * 4),
        theta: { kind: "log", buf: logTheta },
      }),
    ],
    [
      "JumpReLU backward",
      await jumpReluBackwardKernel(gpu, { B, m, bandwidth: 0.05 }, {
        pre,
        dpre,
        logTheta,
        gLogTheta: gpu.buffer("g log theta", m * 4),
        l0Coef: { buf: coef, index: 0 },
      }),
    ],
  ];
  const all = groups.flatMap(([, l]) => l);
  const prof = new Profiler(gpu, all.length);
  await prof.run(all);
  const times: number[][] = groups.map(() => []);
  for (let rep = 0; rep < REPS; rep++) {
    const ms = await prof.run(all);
    let i = 0;
    groups.forEach(([, l], g) => {
      times[g].push(ms.slice(i, i + l.length).reduce((a, b) => a + b, 0));
      i += l.length;
    });
  }
  const gemm = median(times[0]);
  console.log(`\nB ${B}, d_in ${d}, d_sae ${m} (${prof.method})`);
  groups.forEach(([name, l], g) => {
    const t = median(times[g]);
    console.log(
      `  ${name.padEnd(44)} ${t.toFixed(3).padStart(9)} ms  ${String(l.length).padStart(3)} ` +
        `dispatches  ${(t / gemm).toFixed(2)}× the GEMM`,
    );
  });
}
