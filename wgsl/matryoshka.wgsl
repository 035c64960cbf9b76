// Matryoshka BatchTopK's nested reconstructions (src/kernels/matryoshka.ts builds these; the variant
// is src/sae/matryoshka.ts). Levels p = 0..G−1 of widths w_0 < ... < w_{G−1} = d_sae; level p
// reconstructs x from the latents i < w_p, x̂_p = f[:, :w_p]·W_dec[:w_p] + b_dec, and the loss sums
// the levels' reconstruction terms. The step's own residual gives level G−1's dL/dx̂; the inner
// levels p < G−1 (LEVELS of them) are here.
//
//   prefix_residual  per row: D_p = dL_p/dx̂_p = c_p·(x̂_p − x) for each inner level, c_p = 2/B
//                    (squared loss) or 1/(B‖x̂_p − x‖) (l2); dxhat += Σ_p D_p, so dxhat holds the
//                    gradient every level sends to b_dec and to the latents of group 0; and
//                    neg_t[j] = −Σ_{p ≤ j} D_p, what the latents of group j + 1 (w_j ≤ i < w_{j+1},
//                    absent from levels 0..j) must not receive of it
//   mask_grad        dpre ← dpre·1[f > 0]: TopK's and BatchTopK's autograd on the raw dL/df

override B: u32 = 1u;       // rows
override D: u32 = 4u;       // d_in
override LEVELS: u32 = 1u;  // inner levels (G − 1)
override SQUARED: bool = true;
override N: u32 = 1u;       // mask_grad: entries of f and dpre

@group(0) @binding(0) var<storage, read> x: array<f32>;             // [B, D] the step's input
@group(0) @binding(1) var<storage, read> xhat_p: array<f32>;        // [LEVELS, B, D] x̂_p
@group(0) @binding(2) var<storage, read_write> neg_t: array<f32>;   // [LEVELS, B, D]
@group(0) @binding(3) var<storage, read_write> dxhat: array<f32>;   // [B, D] dL/dx̂, summed
@group(0) @binding(4) var<storage, read> f: array<f32>;             // [N] latents
@group(0) @binding(5) var<storage, read_write> dpre: array<f32>;    // [N] dL/df in, dL/dpre out

// One invocation per row.
@compute @workgroup_size(WG)
fn prefix_residual(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let r = g.x + g.y * nw.x * WG;
  if (r >= B) { return; }
  for (var p = 0u; p < LEVELS; p++) {
    let base = p * B * D + r * D;
    var c = 2.0 / f32(B);
    if (!SQUARED) {
      var ss = 0.0;
      for (var k = 0u; k < D; k++) {
        let e = xhat_p[base + k] - x[r * D + k];
        ss += e * e;
      }
      c = select(0.0, 1.0 / (f32(B) * sqrt(ss)), ss > 0.0);
    }
    for (var k = 0u; k < D; k++) {
      let dp = c * (xhat_p[base + k] - x[r * D + k]);
      let prev = select(0.0, neg_t[base - B * D + k], p > 0u);
      neg_t[base + k] = prev - dp;
    }
  }
  for (var k = 0u; k < D; k++) {
    dxhat[r * D + k] -= neg_t[(LEVELS - 1u) * B * D + r * D + k];
  }
}

// One invocation per entry.
@compute @workgroup_size(WG)
fn mask_grad(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= N) { return; }
  dpre[i] = select(0.0, dpre[i], f[i] > 0.0);
}
