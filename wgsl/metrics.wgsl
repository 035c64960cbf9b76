// Folds one step's row and latent statistics into the metric accumulators: one workgroup of RED_WG
// invocations (src/kernels/metrics.ts: METRICS_WG). Accumulator layout: METRIC_INDEX there.
override B: u32 = 64u;            // rows
override M: u32 = 64u;            // latents
override D: u32 = 64u;            // d_in
override SQUARED: bool = false;   // reconstruction term is ‖r‖² instead of ‖r‖
override DEAD_STEPS: u32 = 1000u;
override DENSE: f32 = 0.1;

@group(0) @binding(0) var<storage, read> rowstats: array<f32>;   // [B, 3]: ‖r‖, ‖r‖², ‖x−x̄‖²
@group(0) @binding(1) var<storage, read> fstats: array<f32>;     // [M, 2]: fires, Σf
@group(0) @binding(2) var<storage, read> last_fired: array<u32>; // [M]
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;  // accumulators
@group(0) @binding(4) var<storage, read> st: State;

// 0 finite, 1 infinite, 2 NaN: read from the bits (a compiler may assume floats are finite, so
// `x != x` could be folded away; integer tests on the bit pattern cannot).
fn badness(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  if ((bits & 0x7f800000u) != 0x7f800000u) { return 0.0; }
  return select(1.0, 2.0, (bits & 0x007fffffu) != 0u);
}

@compute @workgroup_size(RED_WG)
fn main(@builtin(local_invocation_index) t: u32) {
  var rs = vec4<f32>(0.0);
  for (var b = t; b < B; b += RED_WG) {
    rs += vec4<f32>(rowstats[3u * b], rowstats[3u * b + 1u], rowstats[3u * b + 2u], 0.0);
  }
  let r = wg_sum4(rs, t);
  var fs = vec4<f32>(0.0);
  for (var i = t; i < M; i += RED_WG) {
    let fires = fstats[2u * i];
    let dead = st.step - last_fired[i] >= DEAD_STEPS;
    fs += vec4<f32>(fires, fstats[2u * i + 1u], select(0.0, 1.0, dead),
                    select(0.0, 1.0, fires > DENSE * f32(B)));
  }
  let f = wg_sum4(fs, t);
  if (t == 0u) {
    let nb = f32(B);
    let recon = select(r.x, r.y, SQUARED) / nb;
    let l1 = f.y / nb;
    acc[0] += 1.0;                       // steps accumulated
    acc[1] += recon + st.l1_coef * nb * l1; // loss optimized this step (λ1 = 0 in a recon-only phase)
    acc[2] += r.x / nb;                  // mean ‖x − x̂‖₂
    acc[3] += r.y / (nb * f32(D));       // MSE per element
    acc[4] += l1;                        // mean ‖f‖₁
    acc[5] += f.x / nb;                  // mean L0
    acc[6] += r.y;                       // Σ‖x − x̂‖² (explained variance numerator)
    acc[7] += r.z;                       // Σ‖x − x̄‖² (explained variance denominator)
    acc[8] = f.z / f32(M);               // dead fraction now
    acc[9] += f.w / f32(M);              // dense fraction (per-step firing rate > DENSE)
    // Health flags (0 finite, 1 infinite, 2 NaN), kept until the accumulators are cleared; word 12
    // is set by wgsl/health.wgsl (parameters after the update).
    let recon_bad = max(badness(r.x), badness(r.y));
    let l1_bad = badness(f.y);
    let input_bad = badness(r.z);
    if (max(recon_bad, max(l1_bad, input_bad)) > 0.0) {
      if (acc[13] == 0.0) { acc[13] = f32(st.step); } // first step with a bad term
      acc[10] = max(acc[10], recon_bad);  // reconstruction term Σ‖r‖, Σ‖r‖²
      acc[11] = max(acc[11], l1_bad);     // sparsity term Σf
      acc[14] = max(acc[14], input_bad);  // the batch itself: Σ‖x − x̄‖²
    }
  }
}
