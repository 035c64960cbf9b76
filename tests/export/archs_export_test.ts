/**
 * SAELens export/import of the architectures' runs: topk as `topk` with k in cfg.json, batchtopk
 * and matryoshka as `jumprelu` with θ in every slot (as SAELens saves them), jumprelu with its
 * θ = exp(log θ); `sae import` restores the variant, and the run, the import and `sae eval` encode
 * alike.
 */
import assert from "node:assert/strict";
import { exportSaelens, importSaelens } from "../../src/export/saelens.ts";
import { evaluateRun } from "../../src/eval/evaluate.ts";
import { encodeRows, loadSae } from "../../src/sae/load.ts";
import { train } from "../../src/sae/trainer.ts";
import { Rng } from "../../src/rng.ts";
import { QUIET, tinyRun } from "../helpers/runs.ts";
import type { PartialConfig } from "../../src/config.ts";
import { SaeForward } from "../../src/eval/evaluate.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { assertClose } from "../helpers/check.ts";

function rows(n: number, d: number): Float32Array {
  const rng = new Rng(7);
  return Float32Array.from({ length: n * d }, () => 2 * rng.normal());
}

for (
  const [variant, arch, over] of [
    ["topk", "topk", { k: 3 }],
    ["batchtopk", "jumprelu", { k: 3 }],
    ["matryoshka", "jumprelu", { k: 3, matryoshka_fractions: "0.25,0.75" }],
    ["jumprelu", "jumprelu", { l0_coefficient: 0.1, jumprelu_init_threshold: 0.1 }],
  ] as const
) {
  Deno.test(`saelens: a ${variant} run exports as ${arch} and imports back as ${variant}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: `sae-export-${variant}-` });
    try {
      // normalize_activations: the input scale is folded into the export and undone on import.
      const cfg = tinyRun({
        variant,
        normalize_activations: "expected_average_only_in",
        ...over as PartialConfig,
      });
      await train(cfg, { ...QUIET, outDir: `${dir}/run` });
      const a = await loadSae(`${dir}/run`);
      assert.ok(a.scale !== 1);
      const out = await exportSaelens(`${dir}/run`, `${dir}/sl`, { overwrite: false });
      assert.equal(out.cfg.architecture, arch);
      assert.equal(out.cfg.k, variant === "topk" ? 3 : undefined);
      assert.equal(out.tensors.threshold !== undefined, arch === "jumprelu");
      if (variant === "batchtopk" || variant === "matryoshka") {
        // One θ in every slot, positive once trained (SAELens' rule starts at 0).
        const th = new Float32Array(out.tensors.threshold.data.slice().buffer);
        assert.ok(th[0] > 0 && th.every((t) => t === th[0]), `θ ${th.slice(0, 4)}`);
      }
      const { cfg: back } = await importSaelens(`${dir}/sl`, `${dir}/back`, { overwrite: false });
      assert.equal(back.variant, variant);
      const b = await loadSae(`${dir}/back`);
      assert.equal(b.k ?? null, a.k ?? null);
      const x = rows(64, 16);
      const fa = encodeRows(a, x);
      assertClose(encodeRows(b, x), fa, 1e-5, "import encodes as the run");
      // The GPU's evaluation forward encodes as the host encoder.
      const fwd = await SaeForward.create(await getGpu(), a, 64);
      assertClose(await fwd.encode(x), fa, 1e-4, "SaeForward");
      fwd.destroy();
      const l0 = fa.filter((v) => v > 0).length / 64;
      if (variant === "topk") assert.ok(l0 <= 3, `topk L0 ${l0}`);
      const report = await evaluateRun(`${dir}/run`);
      const { l0: evalL0, explained_variance: ev } = report.core;
      assert.ok(
        evalL0 > 0 && (variant !== "topk" || evalL0 <= 3) && ev > 0,
        `eval ${evalL0} ${ev}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
