/**
 * `deno task bench:peer`: our baseline training step against the same step in PyTorch eager
 * (bench/peer_torch.py: same shapes, f32, forward + backward + decoder projection + AdamW +
 * renormalisation), alternating in one run: each round runs `--steps` of ours back to back (as
 * `sae train` runs them) and `--steps` of PyTorch's, which side goes first alternating, so both
 * see the same load. Prints min and median seconds per step over the rounds for each side, the
 * ratio ours / PyTorch's of both (≤ 1 means we are no slower), and how stable the ratio is: the
 * per-round ratios' range and the ratio over the even and the odd rounds alone (on a shared
 * 2-core machine the two halves differed by 5-25% at 15 rounds: bench/RESULTS.md).
 *
 *   deno task bench:peer                                   # B=1024, d_in=512, d_sae=4096, CPU
 *   deno task bench:peer --rounds 25                       # more rounds: a steadier median
 *   deno task bench:peer --batch 256 --d-in 64 --d-sae 512
 *   deno task bench:peer --device cuda                     # PyTorch on the GPU (where it has CUDA)
 *   deno task bench:peer --threads 1                       # PyTorch's threads (default: all CPUs)
 *   deno task bench:peer --density 0.01                    # ~41 of 4096 latents active per row
 *
 * Installs nothing: it looks for a python3 that imports torch (`python3`, then /usr/bin/python3)
 * and skips with a one-line hint when there is none. The peer runs without OPENBLAS_CORETYPE and
 * OPENBLAS_L2_SIZE (bench/torch_peer.ts: `torchEnv`), so OpenBLAS picks the machine's own kernels;
 * the BLAS library PyTorch loaded and OpenBLAS's core type are printed with the times (Debian's
 * python3-torch calls whatever libblas.so.3 the alternatives system provides: reference BLAS
 * unless OpenBLAS is installed).
 */
import { Command } from "@commander-js/extra-typings";
import { DEFAULT_CONFIG, mergeConfig } from "../src/config.ts";
import { getGpu } from "../src/gpu/device.ts";
import { initWeights } from "../src/sae/model.ts";
import { Session } from "../src/sae/session.ts";
import { findTorchPython, pairedSummary, type PeerInfo, TorchPeer } from "./torch_peer.ts";

/** What bench/peer_torch.py says about itself. */
export interface TorchStepInfo extends PeerInfo {
  device: string;
  batch: number;
  d_in: number;
  d_sae: number;
}

/** Starts bench/peer_torch.py (one SAE step per `run`; `l0` for the active latents per row). */
export function startTorchStep(python: string, args: string[]): Promise<TorchPeer<TorchStepInfo>> {
  return TorchPeer.start<TorchStepInfo>(python, "peer_torch.py", args);
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

if (import.meta.main) {
  const o = new Command("bench:peer")
    .option("--batch <n>", "rows per step", "1024")
    .option("--d-in <n>", "activation width", "512")
    .option("--d-sae <n>", "latents", "4096")
    .option("--rounds <n>", "timed rounds, each --steps of ours and --steps of PyTorch's", "15")
    .option("--steps <n>", "steps per side per round (ours back to back, as training runs)", "3")
    .option("--warmup <n>", "untimed steps before the rounds (both sides)", "2")
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
  const [B, d, m, rounds, steps, warmup] = [o.batch, o.dIn, o.dSae, o.rounds, o.steps, o.warmup]
    .map(Number);
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
  const torch = await startTorchStep(python, [
    `--batch=${B}`,
    `--d-in=${d}`,
    `--d-sae=${m}`,
    `--warmup=${warmup}`,
    ...(o.threads ? [`--threads=${o.threads}`] : []),
    `--device=${o.device}`,
    `--loss=${cfg.recon_loss}`,
    `--l1=${cfg.l1}`,
    `--lr=${cfg.lr}`,
    `--weight-decay=${cfg.weight_decay}`,
    ...(o.density !== undefined ? [`--density=${o.density}`] : []),
  ]);
  // Seconds per step of one round: ours `steps` back to back (two in flight, as `sae train`),
  // waited for at the end; PyTorch's `steps` steps, each synchronous, summed.
  const oursRound = async () => {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await session.step(x);
    await session.sync();
    return (performance.now() - t0) / 1000 / steps;
  };
  const theirsRound = async () => {
    let s = 0;
    for (let i = 0; i < steps; i++) s += await torch.run();
    return s / steps;
  };
  const ours: number[] = [], theirs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      ours.push(await oursRound());
      theirs.push(await theirsRound());
    } else {
      theirs.push(await theirsRound());
      ours.push(await oursRound());
    }
  }
  const theirL0 = (await torch.request<{ l0: number }>("l0")).l0;
  await torch.close();
  const ourMetrics = (await session.readMetrics()).metrics;
  const sum = pairedSummary(ours, theirs);
  const gflop = 6 * B * d * m / 1e9;
  const ms = (s: number) => (s * 1000).toFixed(1);
  const row = (who: string, v: { min: number; median: number }, all: number[]) =>
    `${who.padEnd(48)} ${ms(v.min).padStart(8)} ${ms(v.median).padStart(8)} ms/step ${
      (gflop / v.median).toFixed(2).padStart(7)
    } GFLOP/s  [${all.map(ms).join(", ")}]`;
  const t = torch.info;
  console.log(
    `baseline step, B=${B} d_in=${d} d_sae=${m}, f32; ${rounds} rounds of ${steps} steps per ` +
      `side, alternating; per side min and median over the rounds [each round]`,
  );
  console.log(`${"".padEnd(48)} ${"min".padStart(8)} ${"median".padStart(8)}`);
  console.log(row(`sae (WebGPU: ${gpu.adapterName})`, sum.ours, ours));
  console.log(
    row(`PyTorch ${t.torch_version} (${t.device}, ${t.threads} threads)`, sum.theirs, theirs),
  );
  console.log(`PyTorch BLAS: ${t.blas}`);
  console.log(
    `OpenBLAS core: ${t.openblas_core}; OPENBLAS_* in the peer's environment: ${
      JSON.stringify(t.openblas_env)
    }`,
  );
  console.log(
    `active latents per row: ours ${ourMetrics.l0.toFixed(1)} (sparse kernels on ${
      (100 * ourMetrics.sparse_fraction).toFixed(0)
    }% of the steps, sparse_max_density ${cfg.sparse_max_density}), PyTorch ${
      theirL0.toFixed(1)
    } (dense)`,
  );
  console.log(
    `ratio ours / PyTorch: ${sum.ratioOfMedians.toFixed(2)} of the medians, ${
      sum.ratioOfMins.toFixed(2)
    } of the mins (≤ 1.0: no slower)`,
  );
  console.log(
    `stability: per-round ratios ${sum.roundRatios.min.toFixed(2)}–${
      sum.roundRatios.max.toFixed(2)
    } (median ${sum.roundRatios.median.toFixed(2)}); ratio of medians over the even / odd ` +
      `rounds alone ${sum.halves[0].toFixed(2)} / ${sum.halves[1].toFixed(2)}`,
  );
  console.log(
    `load average (1/5/15 min, ${navigator.hardwareConcurrency} CPUs): ${
      Deno.loadavg().map((l) => l.toFixed(2)).join(" ")
    }`,
  );
}
