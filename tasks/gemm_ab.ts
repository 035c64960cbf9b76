/**
 * `deno task bench:gemm-ab`: two or more GEMM paths on the step's GEMMs, timed in alternation in
 * one process, whole dispatch lists (packing included) from submit to done on the host clock.
 * On a shared machine whose speed drifts by tens of percent between runs, alternating rounds
 * within one process is what makes a 10% difference visible; the minimum over rounds is the
 * least disturbed one, the median the typical one.
 *
 *   deno task bench:gemm-ab                               # bcast vs texture, B=1024 d=512 m=4096
 *   deno task bench:gemm-ab --paths bcast,texture,vec4 --rounds 10
 *   deno task bench:gemm-ab --shape 2048,2304,2304        # the paper's shape
 *   deno task bench:gemm-ab --paths bcast --bc-tile 512,12,64,256   # other broadcast-path tiles
 *
 * Each time includes the ~11 ms it takes lavapipe to report a submission done, so GEMMs much
 * under ~100 ms read slow on every path alike unless `--reps` runs each several times per
 * submission (`--shape 256,64,512 --reps 20`: the CPU default shape).
 *
 * Mesa's on-disk shader cache is off in this process (MESA_SHADER_CACHE_DISABLE, unless set):
 * lavapipe 22.3 ran one broadcast tile (`--bc-tile 512,20,16,256`) 25x slower when its code came
 * from the cache than when compiled afresh (1.6 against 36-44 GFLOP/s), so an A/B of tiles
 * compiles every variant itself (bench/RESULTS.md).
 */
import { Command } from "@commander-js/extra-typings";
import { getGpu } from "../src/gpu/device.ts";
import { run } from "../src/gpu/dispatch.ts";
import {
  type Epilogue,
  gemmDispatches,
  type GemmPath,
  type GemmSpec,
} from "../src/kernels/gemm/mod.ts";

const PATHS: GemmPath[] = ["tiled", "bcast", "texture", "vec4", "scalar"];

const opts = new Command("gemm-ab")
  .description("GEMM paths on the SAE step's GEMMs, timed in alternation in one process")
  .option("--shape <B,d,m>", "batch, d_in, d_sae", "1024,512,4096")
  .option("--paths <list>", `comma-separated, of ${PATHS.join(", ")}`, "bcast,texture")
  .option("--rounds <n>", "alternating rounds", "8")
  .option("--reps <n>", "runs of a GEMM per timed submission (amortizes the ~11 ms latency)", "1")
  .option(
    "--bc-tile <T,R,KC4,U>",
    "broadcast-path tile limits (default GEMM_TILE.bcast, src/kernels/gemm/tiles.ts)",
  )
  .parse(Deno.args, { from: "user" })
  .opts();

const [B, d, m] = opts.shape.split(",").map(Number);
if (![B, d, m].every((v) => Number.isInteger(v) && v > 0)) {
  throw new Error(`--shape ${opts.shape}: give three positive integers B,d,m, e.g. 1024,512,4096`);
}
const paths = opts.paths.split(",") as GemmPath[];
const bad = paths.find((p) => !PATHS.includes(p));
if (bad) throw new Error(`--paths: unknown path ${bad}; use ${PATHS.join(", ")}`);
const rounds = Number(opts.rounds);
const reps = Number(opts.reps);
let bcTile: { T: number; R: number; KC4: number; U: number } | undefined;
if (opts.bcTile) {
  const v = opts.bcTile.split(",").map(Number);
  if (v.length !== 4 || !v.every((x) => Number.isInteger(x) && x > 0)) {
    throw new Error(
      `--bc-tile ${opts.bcTile}: give four positive integers T,R,KC4,U, e.g. 512,20,32,256`,
    );
  }
  const [T, R, KC4, U] = v;
  bcTile = { T, R, KC4, U };
}

// Read by Mesa when the adapter is created, below.
if (Deno.env.get("MESA_SHADER_CACHE_DISABLE") === undefined) {
  Deno.env.set("MESA_SHADER_CACHE_DISABLE", "true");
}
const gpu = await getGpu();
const gemm = (
  label: string,
  M: number,
  N: number,
  K: number,
  tA: boolean,
  tB: boolean,
  ep: Epilogue,
): GemmSpec => ({ label, M, N, K, transA: tA, transB: tB, epilogue: ep });
const cases = [
  gemm("encode (NT)", B, m, d, false, true, "bias_relu"),
  gemm("decode (NN)", B, d, m, false, false, "bias"),
  gemm("dW (TN)", m, d, B, true, false, "none"),
];
console.log(
  `adapter: ${gpu.adapterName}; ${rounds} rounds of ${reps} run(s); GFLOP/s min / median`,
);
const rand = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5;
  return a;
};
for (const spec of cases) {
  const { M, N, K } = spec;
  const bufs = {
    a: gpu.upload("a", rand(M * K)),
    b: gpu.upload("b", rand(N * K)),
    c: gpu.buffer("c", M * N * 4),
    e: gpu.upload("e", rand(N)),
  };
  const lists = [];
  for (const path of paths) {
    const list = await gemmDispatches(gpu, spec, bufs, { path, bcTile });
    run(gpu, list);
    await gpu.sync();
    // FLOPs from the costs the dispatches carry (the same on every path: 2·M·N·K).
    const mflop = list.reduce((sum, d) => sum + (d.cost?.flops ?? 0), 0) / 1e6;
    lists.push({ path, list, mflop, ms: [] as number[] });
  }
  for (let r = 0; r < rounds; r++) {
    for (const l of lists) {
      const t0 = performance.now();
      run(gpu, Array(reps).fill(l.list).flat());
      await gpu.sync();
      l.ms.push((performance.now() - t0) / reps);
    }
  }
  const cols = lists.map((l) => {
    const ms = [...l.ms].sort((a, b) => a - b);
    const g = (t: number) => (l.mflop / t).toFixed(1);
    return `${l.path} ${g(ms[0])} / ${g(ms[ms.length >> 1])}`;
  });
  console.log(`${spec.label} ${M}x${N}x${K}: ${cols.join("  |  ")}`);
  for (const b of Object.values(bufs)) b.destroy();
}
