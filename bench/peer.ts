/**
 * `deno task bench:peer`: our baseline training step against the same step in PyTorch eager
 * (bench/peer_torch.py: same shapes, f32, forward + backward + decoder projection + AdamW +
 * renormalisation), in one run, and the ratio ours / PyTorch's (≤ 1 means we are no slower).
 *
 *   deno task bench:peer                                  # B=1024, d_in=512, d_sae=4096, CPU
 *   deno task bench:peer --batch 256 --d-in 64 --d-sae 512
 *   deno task bench:peer --device cuda                    # PyTorch on the GPU (where it has CUDA)
 *   deno task bench:peer --steps 9 --warmup 3 --threads 1 # threads: PyTorch's (default: all CPUs)
 *   deno task bench:peer --density 0.01                   # ~41 of 4096 latents active per row
 *
 * Installs nothing: it looks for a python3 that imports torch (`python3`, then /usr/bin/python3)
 * and skips with a one-line hint when there is none. Debian's python3-torch calls whatever
 * libblas.so.3 the alternatives system provides (reference BLAS unless OpenBLAS is installed),
 * so the BLAS library PyTorch loaded is printed with its time, and OpenBLAS's core type. The
 * peer runs without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE ({@link torchEnv}).
 */
import { Command } from "@commander-js/extra-typings";
import { fileURLToPath } from "node:url";
import { DEFAULT_CONFIG, mergeConfig } from "../src/config.ts";
import { getGpu } from "../src/gpu/device.ts";
import { initWeights } from "../src/sae/model.ts";
import { Session } from "../src/sae/session.ts";

/** What bench/peer_torch.py prints. */
export interface TorchResult {
  torch_version: string;
  /** Mean active latents per row after the timed steps. */
  l0: number;
  device: string;
  threads: number;
  blas: string;
  /** OpenBLAS's core type and build, or "not OpenBLAS". */
  openblas_core: string;
  batch: number;
  d_in: number;
  d_sae: number;
  steps: number;
  median_s: number;
  step_s: number[];
}

/** The first of `candidates` that runs and imports torch, or null. */
export async function findTorchPython(
  candidates = ["python3", "/usr/bin/python3"],
): Promise<string | null> {
  for (const py of candidates) {
    try {
      const out = await new Deno.Command(py, {
        args: ["-c", "import torch"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return py;
    } catch {
      // not installed: try the next one
    }
  }
  return null;
}

/**
 * The environment of a PyTorch peer: ours without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which
 * would pin OpenBLAS to a core type and cache size other than the machine's (pass it with
 * `clearEnv: true`).
 */
export function torchEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

/** Runs bench/peer_torch.py with `args` under `python`; throws with its stderr on failure. */
export async function runTorchStep(python: string, args: string[]): Promise<TorchResult> {
  const script = fileURLToPath(new URL("./peer_torch.py", import.meta.url));
  const out = await new Deno.Command(python, {
    args: [script, ...args],
    stderr: "piped",
    env: torchEnv(),
    clearEnv: true,
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`peer_torch.py failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return JSON.parse(text.split("\n").at(-1)!);
}

/**
 * b_enc with each latent's bias at minus the (1 − density) quantile of its pre-activations on
 * x [B, d] (W_enc [m, d]), so each fires on about `density` of the rows; as peer_torch.py does.
 */
export function densityBias(
  x: Float32Array,
  wEnc: Float32Array,
  B: number,
  d: number,
  m: number,
  density: number,
): Float32Array<ArrayBuffer> {
  // From the first 512 rows at most (the quantile of a sample; PyTorch's side uses them all).
  const n = Math.min(B, 512);
  const out = new Float32Array(m);
  const col = new Float64Array(n);
  for (let j = 0; j < m; j++) {
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[r * d + k] * wEnc[j * d + k];
      col[r] = s;
    }
    col.sort();
    // Linear interpolation between order statistics, as torch.quantile.
    const pos = (1 - density) * (n - 1), lo = Math.floor(pos), hi = Math.min(lo + 1, n - 1);
    out[j] = -(col[lo] + (pos - lo) * (col[hi] - col[lo]));
  }
  return out;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

if (import.meta.main) {
  const o = new Command("bench:peer")
    .option("--batch <n>", "rows per step", "1024")
    .option("--d-in <n>", "activation width", "512")
    .option("--d-sae <n>", "latents", "4096")
    .option("--steps <n>", "timed steps (PyTorch: median of each alone)", "5")
    .option("--warmup <n>", "untimed steps before the timed ones (both sides)", "2")
    .option("--threads <n>", "PyTorch CPU threads (default: all CPUs)")
    .option("--device <d>", "PyTorch device", "cpu")
    .option("--sparse <p>", "our sparse_max_density (default: the config default)")
    .option(
      "--lr <x>",
      "learning rate of both sides (default: the config's; 1e-9 with --density, which keeps the " +
        "density where it was set: a step's work does not depend on lr)",
    )
    .option(
      "--density <p>",
      "start with b_enc set so each latent fires on about this fraction of the rows (both sides)",
    )
    .parse(Deno.args, { from: "user" })
    .opts();
  const [B, d, m, steps, warmup] = [o.batch, o.dIn, o.dSae, o.steps, o.warmup].map(Number);
  const python = await findTorchPython();
  if (!python) {
    console.log(
      "bench:peer skipped: PyTorch not found (install it with `apt-get install -y python3-torch`, " +
        "or `pip install torch`)",
    );
    Deno.exit(0);
  }
  const cfg = mergeConfig(DEFAULT_CONFIG, {
    variant: "baseline",
    batch: B,
    d_in: d,
    d_sae: m,
    ...(o.sparse ? { sparse_max_density: Number(o.sparse) } : {}),
    ...(o.lr ? { lr: Number(o.lr) } : o.density !== undefined ? { lr: 1e-9 } : {}),
  });
  const gpu = await getGpu();
  const x = new Float32Array(B * d).map((_, i) => Math.sin(i));
  const w = initWeights(d, m, 1, new Float32Array(d));
  if (o.density !== undefined) w.bEnc = densityBias(x, w.wEnc, B, d, m, Number(o.density));
  const session = await Session.create(gpu, cfg, w, 1);
  for (let i = 0; i < warmup; i++) await session.step(x);
  await session.sync();
  // Ours two ways: each step alone (submit, wait: adds the queue's submission latency, ~11 ms
  // on lavapipe) and `steps` steps back to back as `sae train` runs them (two in flight); the
  // ratio uses the latter, PyTorch eager on the CPU being synchronous anyway.
  const ours: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await session.step(x);
    await session.sync();
    ours.push((performance.now() - t0) / 1000);
  }
  const tp0 = performance.now();
  for (let i = 0; i < steps; i++) await session.step(x);
  await session.sync();
  const pipelined = (performance.now() - tp0) / 1000 / steps;
  const torch = await runTorchStep(python, [
    `--batch=${B}`,
    `--d-in=${d}`,
    `--d-sae=${m}`,
    `--steps=${steps}`,
    `--warmup=${warmup}`,
    ...(o.threads ? [`--threads=${o.threads}`] : []),
    `--device=${o.device}`,
    `--loss=${cfg.recon_loss}`,
    `--l1=${cfg.l1}`,
    `--lr=${cfg.lr}`,
    `--weight-decay=${cfg.weight_decay}`,
    ...(o.density !== undefined ? [`--density=${o.density}`] : []),
  ]);
  const ourMetrics = (await session.readMetrics()).metrics;
  const oursS = pipelined;
  const gflop = 6 * B * d * m / 1e9;
  const row = (who: string, s: number) =>
    `${who.padEnd(44)} ${(s * 1000).toFixed(1).padStart(9)} ms/step ${
      (gflop / s).toFixed(2).padStart(7)
    } GFLOP/s`;
  console.log(`baseline step, B=${B} d_in=${d} d_sae=${m}, f32, ${steps} steps`);
  console.log(row(`sae (WebGPU: ${gpu.adapterName}), back to back`, oursS));
  console.log(row(`sae, each step waited for (median)`, median(ours)));
  console.log(
    row(
      `PyTorch ${torch.torch_version} (${torch.device}, ${torch.threads} threads)`,
      torch.median_s,
    ),
  );
  console.log(`PyTorch BLAS: ${torch.blas}; OpenBLAS core: ${torch.openblas_core}`);
  console.log(
    `active latents per row: ours ${ourMetrics.l0.toFixed(1)} (sparse kernels on ${
      (100 * ourMetrics.sparse_fraction).toFixed(0)
    }% of the steps, sparse_max_density ${cfg.sparse_max_density}), PyTorch ${
      torch.l0.toFixed(1)
    } (dense)`,
  );
  console.log(`ratio ours / PyTorch: ${(oursS / torch.median_s).toFixed(2)} (≤ 1.0: no slower)`);
  const spread = (v: number[]) =>
    `${(Math.min(...v) * 1000).toFixed(1)}–${(Math.max(...v) * 1000).toFixed(1)} ms`;
  console.log(`per-step range: ours ${spread(ours)}, PyTorch ${spread(torch.step_s)}`);
  console.log(
    `load average (1/5/15 min, ${navigator.hardwareConcurrency} CPUs): ${
      Deno.loadavg().map((l) => l.toFixed(2)).join(" ")
    }`,
  );
}
