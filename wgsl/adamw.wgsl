// AdamW (decoupled weight decay, as torch.optim.AdamW), one invocation per parameter.
// Reads lr and the bias-correction powers of this step from the step state (wgsl/common.wgsl).
override N: u32 = 64u;
override BETA1: f32 = 0.9;
override BETA2: f32 = 0.999;
override EPS: f32 = 1e-8;
override WEIGHT_DECAY: f32 = 0.01;
// Elements per latent for a per-latent learning-rate factor (W rows: d_in, b_enc: 1); 0: none.
override ROW_LEN: u32 = 0u;
// A part of a parameter larger than one binding (src/gpu/split.ts): p, g, m, v start at element
// OFF of their bindings, and element i of the part is element I0 + i of the parameter.
override OFF: u32 = 0u;
override I0: u32 = 0u;

@group(0) @binding(0) var<storage, read_write> p: array<f32>;  // parameter [N]
@group(0) @binding(1) var<storage, read> g: array<f32>;        // gradient [N]
@group(0) @binding(2) var<storage, read_write> m: array<f32>;  // first moment [N]
@group(0) @binding(3) var<storage, read_write> v: array<f32>;  // second moment [N]
@group(0) @binding(4) var<storage, read> st: State;
@group(0) @binding(5) var<storage, read> lr_scale: array<f32>; // [latents] (ROW_LEN > 0)

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = gid.x + gid.y * nw.x * WG;
  if (i >= N) { return; }
  let j = OFF + i;
  let gi = g[j];
  let mi = BETA1 * m[j] + (1.0 - BETA1) * gi;
  let vi = BETA2 * v[j] + (1.0 - BETA2) * gi * gi;
  m[j] = mi;
  v[j] = vi;
  let mhat = mi / (1.0 - st.b1t);
  let vhat = vi / (1.0 - st.b2t);
  var lr = st.lr;
  if (ROW_LEN > 0u) { lr = lr * lr_scale[(I0 + i) / ROW_LEN]; }
  let pi = p[j] * (1.0 - lr * WEIGHT_DECAY);
  p[j] = pi - lr * mhat / (sqrt(vhat) + EPS);
}

// main4: the same update four elements per invocation (N, OFF and I0 multiples of 4): on
// llvmpipe every storage access is a per-lane loop, so vec4 accesses quarter their count.
@group(0) @binding(0) var<storage, read_write> p4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> g4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = gid.x + gid.y * nw.x * WG; // vec4 index within this part
  if (i >= N / 4u) { return; }
  let j = OFF / 4u + i;
  let gi = g4[j];
  let mi = BETA1 * m4[j] + (1.0 - BETA1) * gi;
  let vi = BETA2 * v4[j] + (1.0 - BETA2) * gi * gi;
  m4[j] = mi;
  v4[j] = vi;
  let mhat = mi / (1.0 - st.b1t);
  let vhat = vi / (1.0 - st.b2t);
  var lr = vec4<f32>(st.lr);
  if (ROW_LEN > 0u) {
    let e = I0 + 4u * i;
    lr *= vec4<f32>(lr_scale[e / ROW_LEN], lr_scale[(e + 1u) / ROW_LEN],
                    lr_scale[(e + 2u) / ROW_LEN], lr_scale[(e + 3u) / ROW_LEN]);
  }
  let pi = p4[j] * (1.0 - lr * WEIGHT_DECAY);
  p4[j] = pi - lr * mhat / (sqrt(vhat) + EPS);
}
