/**
 * `sae tune`: times the tiled GEMM's candidate tiles on this adapter for every GEMM a training
 * session of the config builds (and any `--shape`), and caches the fastest per adapter, driver and
 * shape class (src/kernels/gemm/cache.ts), where every later session reads them. On a CPU adapter
 * the GEMMs take other paths and nothing is timed unless SAE_ADAPTER_CLASS=gpu.
 *
 * @example
 * ```sh
 * deno task tune --config configs/paper.yaml                    # the paper's step
 * deno task tune --config configs/paper.yaml --set d_sae=16384  # a wider dictionary
 * deno task tune --no-session --shape 512x288x288:NT            # one GEMM (e.g. an LM's linear)
 * ```
 */

import { Command } from "@commander-js/extra-typings";
import {
  DEFAULT_CONFIG,
  loadConfigFile,
  mergeConfig,
  overridesToPartial,
  parseOverride,
} from "../config.ts";
import { UserError } from "../errors.ts";
import { adapterClass } from "../gpu/adapter.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { sameTile, tileCachePath } from "../kernels/gemm/cache.ts";
import type { GemmSpec } from "../kernels/gemm/spec.ts";
import { resolveTiledTile, setTuning, tuneResults } from "../kernels/gemm/tune.ts";
import { initWeights } from "../sae/model.ts";
import { Session } from "../sae/session.ts";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A `--shape` value: MxNxK:LAYOUT, LAYOUT one of NN, NT, TN, TT (A then B; T: stored transposed). */
export function parseShape(text: string): Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB"> {
  const m = /^(\d+)x(\d+)x(\d+):([NT])([NT])$/.exec(text.trim());
  if (!m || [m[1], m[2], m[3]].some((v) => Number(v) < 1)) {
    throw new UserError(
      `--shape '${text}' is not MxNxK:LAYOUT: write e.g. 512x288x288:NT (sizes ≥ 1, layout NN, NT, TN or TT)`,
    );
  }
  return { M: +m[1], N: +m[2], K: +m[3], transA: m[4] === "T", transB: m[5] === "T" };
}

/** The `tune` command. */
export function tuneCommand() {
  return new Command("tune")
    .description(
      "time the tiled GEMM's candidate tiles on this adapter for a config's step (and any " +
        "--shape) and cache the fastest per shape class, for every later session",
    )
    .option("--config <file>", "YAML config whose step's GEMMs are timed (default: built-in)")
    .option("--set <key=value>", "set a config key, as for train; repeatable", collect)
    .option(
      "--shape <MxNxK:LAYOUT>",
      "also time this GEMM, e.g. 512x288x288:NT; repeatable",
      collect,
    )
    .option("--no-session", "time only the --shape GEMMs, not a session's step")
    .option("--f16", "time --shape GEMMs with f16 operand storage (default: f32)")
    .option("--missing", "time only the shape classes the cache lacks (default: all met)")
    .action(async (flags) => {
      const shapes = (flags.shape ?? []).map(parseShape);
      const gpu = await getGpu({ announce: true });
      if (adapterClass(gpu) === "cpu") {
        console.error(
          "this CPU adapter runs no tiled GEMMs: nothing to time (SAE_ADAPTER_CLASS=gpu times them " +
            "anyway)",
        );
        return;
      }
      setTuning(gpu, flags.missing ? "missing" : "all");
      try {
        await timeAll(gpu, flags, shapes);
      } finally {
        setTuning(gpu, null);
      }
    });
}

/** Times the session's GEMMs and the shapes, and prints each class's rates. */
async function timeAll(
  gpu: Gpu,
  flags: { config?: string; set?: string[]; session: boolean; f16?: boolean },
  shapes: Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB">[],
): Promise<void> {
  const t0 = performance.now();
  if (flags.session) {
    let cfg = DEFAULT_CONFIG;
    if (flags.config) cfg = mergeConfig(cfg, await loadConfigFile(flags.config));
    cfg = mergeConfig(cfg, overridesToPartial((flags.set ?? []).map(parseOverride)));
    const w = initWeights(cfg.d_in, cfg.d_sae, cfg.seed, new Float32Array(cfg.d_in));
    console.error(
      `timing the GEMMs of a ${cfg.variant} step: batch ${cfg.batch}, d_in ${cfg.d_in}, ` +
        `d_sae ${cfg.d_sae}`,
    );
    await Session.create(gpu, cfg, w, 1);
  }
  for (const s of shapes) {
    // As a session's GEMM: timed unless already in this run (or, with --missing, cached).
    const label = `tune ${s.M}x${s.N}x${s.K}`;
    await resolveTiledTile(gpu, { ...s, label, epilogue: "none" }, { f16: flags.f16 });
  }
  const results = tuneResults(gpu);
  for (const r of results) {
    console.log(`${r.shape} (timed at ${r.spec.M}x${r.spec.N}x${r.spec.K}):`);
    for (const { tile, gflops } of [...r.rates].sort((a, b) => b.gflops - a.gflops)) {
      const t = `${tile.BM}x${tile.BN}x${tile.BK} ${tile.TM}x${tile.TN}`;
      const mark = sameTile(tile, r.best) ? "  <- chosen" : "";
      console.log(`  ${t.padEnd(16)} ${gflops.toFixed(1).padStart(9)} GFLOP/s${mark}`);
    }
  }
  console.error(
    `${results.length} shape classes timed in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
      (results.length ? `; cached in ${tileCachePath()}` : ""),
  );
}
