/**
 * How strong the orthogonality term is against reconstruction in a trained run, per reading of its
 * reduction (docs/method.md, `ortho_reduction`): on one fresh batch of the run's evaluation stream,
 * with its final weights and EMA frequencies, the Frobenius norms of the reconstruction gradient
 * on W_dec and of the orthogonality gradient (Eqs. 4-5, α held constant, importance weights from
 * this batch), each with its component along the decoder rows removed as the step removes it.
 * Under Adam only their ratio matters (the L1 term does not reach W_dec). Prints, per reading, the
 * ratio at λ_ortho = 0.01 and 0.1, and the statistics the ratio scales with (docs/results.md).
 *
 *   deno run -A tasks/ortho_balance.ts runs/ablate-ortho-scale/lambda_ortho=0 [more runs]
 *
 * Plain TypeScript (the reference's f64 arithmetic): seconds at d_in = d_sae = 256, batch 1024.
 */
import { openEvalSource } from "../src/eval/evaluate.ts";
import { loadSae } from "../src/sae/load.ts";
import { loadLatestCheckpoint } from "../src/run/checkpoint.ts";
import { extraTensor } from "../src/sae/snapshot.ts";
import { referenceForward, referenceGradients } from "../src/sae/reference.ts";
import { orthoGradReference, type OrthoReduction } from "../src/kernels/paper.ts";

/** ‖G − diag(G·Wᵀ) W‖_F over the rows of G [m, d] (W's rows unit norm). */
function tangentNorm(g: Float32Array, w: Float32Array, m: number, d: number): number {
  let ss = 0;
  for (let i = 0; i < m; i++) {
    let dot = 0;
    for (let k = 0; k < d; k++) dot += g[i * d + k] * w[i * d + k];
    for (let k = 0; k < d; k++) ss += (g[i * d + k] - dot * w[i * d + k]) ** 2;
  }
  return Math.sqrt(ss);
}

for (const dir of Deno.args) {
  const sae = await loadSae(dir);
  const cfg = sae.cfg;
  const m = cfg.d_sae, d = cfg.d_in, B = cfg.batch;
  const { source } = await openEvalSource(cfg);
  const x = new Float32Array(B * d); // x: [B, d_in] f32
  await source.nextBatch(x);
  if (sae.scale !== 1) { for (let i = 0; i < x.length; i++) x[i] *= sae.scale; }
  const tau = sae.threshold ?? undefined;
  const fw = referenceForward(cfg, sae.weights, x, cfg.l1, tau);
  const stats = { fires: new Float64Array(m), gnorm: new Float64Array(m) };
  const g = referenceGradients(cfg, sae.weights, x, cfg.l1, tau, stats);
  // Eq. 3 with the run's EMA frequency where it has one (else this batch's firing rate).
  const ckpt = await loadLatestCheckpoint(dir);
  const ema = ckpt ? extraTensor(ckpt.tensors, "ema_freq") : null;
  const freq = ema ?? Float64Array.from(stats.fires, (v) => v / B);
  let fmax = 0;
  for (let i = 0; i < m; i++) fmax = Math.max(fmax, freq[i]);
  const s = new Float64Array(m).map((_, i) => fmax > 0 ? stats.gnorm[i] * freq[i] / fmax : 0);
  let smax = 0, s2 = 0, active = 0, sumF = 0;
  for (let i = 0; i < m; i++) {
    smax = Math.max(smax, s[i]);
    s2 += s[i] * s[i];
  }
  for (let i = 0; i < fw.f.length; i++) {
    if (fw.f[i] > 0) {
      active++;
      sumF += fw.f[i];
    }
  }
  const eps = "ortho_eps" in cfg ? cfg.ortho_eps : 1e-6;
  // S0 for λ R = 1: 4/s_max² (Eq. 5's normaliser, the 4 of the α-fixed gradient).
  const unit = orthoGradReference(sae.weights.wDec, s, 4 / (smax * smax), eps, m, d);
  const recon = tangentNorm(g.wDec, sae.weights.wDec, m, d);
  const ortho = tangentNorm(unit, sae.weights.wDec, m, d);
  const R: Record<OrthoReduction, number> = {
    sum: 1,
    mean: 1 / (m * (m - 1)),
    per_latent: 1 / m,
    recon: fw.recon / m,
  };
  console.log(
    `${dir}: m ${m}, d ${d}, B ${B}, L_recon ${fw.recon.toFixed(4)}, L0 ${
      (active / B).toFixed(2)
    }, mean active f ${(sumF / Math.max(active, 1)).toFixed(3)}, rms(s/s_max) ${
      Math.sqrt(s2 / m) / smax
    }`,
  );
  console.log(
    `  ‖P∇_W_dec L_recon‖ ${recon.toPrecision(4)}, ‖P∇_W_dec Σα c²‖ (λR = 1) ${
      ortho.toPrecision(4)
    }; ortho/recon at λ_ortho 0.01, 0.1:`,
  );
  for (const [name, r] of Object.entries(R)) {
    const at = (lambda: number) => (lambda * r * ortho / recon).toPrecision(3);
    console.log(`    ${name.padEnd(10)} R ${r.toPrecision(3).padEnd(9)} ${at(0.01)}, ${at(0.1)}`);
  }
}
