/**
 * `deno task bench:peer-lm`: our GPT-2 forward pass (src/lm/forward.ts, random weights of the
 * GPT-2-small shape: d 768, 12 layers, 12 heads, vocabulary 50257; 8 contexts of 128 tokens,
 * logits at every position) against the same forward in PyTorch eager (bench/peer_lm_torch.py),
 * on the same machine in the same run, alternating one of ours and one of theirs so both see the
 * same load; prints both medians, tokens/s, GFLOP/s (the FLOPs from our dispatches' `cost`, the
 * same work on both sides) against the FMA peak measured between rounds, and the ratio ours /
 * PyTorch's (≤ 1: no slower).
 *
 *   deno task bench:peer-lm                          # 3 rounds, PyTorch on all CPUs
 *   deno task bench:peer-lm --rounds 5 --threads 1
 *   deno task bench:peer-lm --layers 2               # a shorter model, same widths
 *
 * Installs nothing: it looks for a python3 that imports torch and skips with a one-line hint when
 * there is none. The PyTorch process runs without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
 * (bench/torch_peer.ts, shared with `bench:peer`: OpenBLAS picks the machine's own core type and
 * cache size) and prints the BLAS library it loaded and OpenBLAS's core type.
 */
import { Command } from "@commander-js/extra-typings";
import { getGpu } from "../src/gpu/device.ts";
import { GpuLm, LmForward } from "../src/lm/forward.ts";
import { Rng } from "../src/rng.ts";
import { forwardWork, GPT2_SMALL, median, peakMeter, randomGpt2 } from "./lm_models.ts";
import { findTorchPython, pairedSummary, TorchPeer } from "./torch_peer.ts";

/** Starts bench/peer_lm_torch.py (one forward per `run`). */
export function startTorchLm(python: string, args: string[]): Promise<TorchPeer> {
  return TorchPeer.start(python, "peer_lm_torch.py", args);
}

if (import.meta.main) {
  const o = new Command("bench:peer-lm")
    .option("--rounds <n>", "timed rounds, each one forward of ours and one of PyTorch's", "3")
    .option("--batch <n>", "contexts per forward", "8")
    .option("--context <n>", "tokens per context", "128")
    .option("--layers <n>", "transformer blocks (GPT-2 small: 12)", "12")
    .option("--threads <n>", "PyTorch CPU threads (default: all CPUs)")
    .parse(Deno.args, { from: "user" })
    .opts();
  const [rounds, B, S, layers] = [o.rounds, o.batch, o.context, o.layers].map(Number);
  const python = await findTorchPython();
  if (!python) {
    console.log(
      "bench:peer-lm skipped: PyTorch not found (install it with `apt-get install -y " +
        "python3-torch`, or `pip install torch`)",
    );
    Deno.exit(0);
  }
  const gpu = await getGpu();
  const peak = await peakMeter(gpu);
  const model = randomGpt2({ ...GPT2_SMALL, n_layer: layers });
  const cfg = model.config;
  const lm = GpuLm.upload(gpu, model);
  const f = await LmForward.build(lm, { batch: B, seq: S, logits: "all" });
  const rng = new Rng(7);
  const tokens = Array.from({ length: B * S }, () => Math.floor(rng.uniform() * cfg.vocabSize));
  const flops = forwardWork(f.dispatches).flops!;
  const torch = await startTorchLm(python, [
    `--batch=${B}`,
    `--context=${S}`,
    `--d=${cfg.dModel}`,
    `--layers=${layers}`,
    `--heads=${cfg.nHeads}`,
    `--vocab=${cfg.vocabSize}`,
    ...(o.threads ? [`--threads=${o.threads}`] : []),
  ]);
  const ours = async () => {
    const t0 = performance.now();
    f.run(tokens);
    await gpu.sync();
    return (performance.now() - t0) / 1000;
  };
  // Warm-up of both, then rounds alternating which side goes first.
  await ours();
  await torch.run();
  const mine: number[] = [], theirs: number[] = [], peaks: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      mine.push(await ours());
      theirs.push(await torch.run());
    } else {
      theirs.push(await torch.run());
      mine.push(await ours());
    }
    peaks.push((await peak()).gflops);
  }
  await torch.close();
  const fma = median(peaks);
  const row = (who: string, s: number[]) => {
    const m = median(s), g = flops / m / 1e9;
    return `${who.padEnd(46)} ${(m * 1000).toFixed(0).padStart(7)} ms ${
      Math.round(B * S / m).toLocaleString("en-US").padStart(7)
    } tokens/s ${g.toFixed(2).padStart(7)} GFLOP/s (${(100 * g / fma).toFixed(1)}% of FMA peak)` +
      `  [${s.map((v) => (v * 1000).toFixed(0)).join(", ")}]`;
  };
  console.log(
    `GPT-2-small shape (d ${cfg.dModel}, ${layers} layers, ${cfg.nHeads} heads, vocabulary ` +
      `${cfg.vocabSize}), random weights, f32: forward of ${B} × ${S} tokens with logits at ` +
      `every position, ${(flops / 1e9).toFixed(1)} GFLOP; ${rounds} rounds, medians [each round]`,
  );
  console.log(row(`sae (WebGPU: ${gpu.adapterName})`, mine));
  console.log(
    row(`PyTorch ${torch.info.torch_version} eager (CPU, ${torch.info.threads} threads)`, theirs),
  );
  console.log(`PyTorch BLAS: ${torch.info.blas}`);
  console.log(
    `OpenBLAS core: ${torch.info.openblas_core}; OPENBLAS_* in the peer's environment: ${
      JSON.stringify(torch.info.openblas_env)
    }`,
  );
  console.log(
    `FMA peak (faster FMA kernel, median over the rounds): ${fma.toFixed(1)} GFLOP/s; load ` +
      `average ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")} on ` +
      `${navigator.hardwareConcurrency} CPUs`,
  );
  const sum = pairedSummary(mine, theirs);
  console.log(
    `ratio ours / PyTorch: ${sum.ratioOfMedians.toFixed(2)} of the medians, ` +
      `${sum.ratioOfMins.toFixed(2)} of the mins (≤ 1.0: no slower; goal ≤ 1.5 on the CPU ` +
      `adapter); per-round ratios ${sum.roundRatios.min.toFixed(2)}–` +
      `${sum.roundRatios.max.toFixed(2)}`,
  );
}
