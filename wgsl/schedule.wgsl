// Advances the step state (wgsl/common.wgsl) by one step (one invocation).
override LR: f32 = 3e-4;
override WARMUP_STEPS: f32 = 1000.0;
override BETA1: f32 = 0.9;
override BETA2: f32 = 0.999;
override L1_COEF: f32 = 0.0;       // λ1 / B
override RECON_ONLY_STEPS: u32 = 0u; // steps with the L1 term off (the paper's warmup phase)

@group(0) @binding(0) var<storage, read_write> st: State;

@compute @workgroup_size(1)
fn main() {
  let t = st.step + 1u;
  st.step = t;
  st.lr = LR * min(1.0, f32(t) / max(WARMUP_STEPS, 1.0));
  st.b1t = st.b1t * BETA1;
  st.b2t = st.b2t * BETA2;
  st.l1_coef = select(0.0, L1_COEF, t > RECON_ONLY_STEPS);
  st.main_phase = select(0.0, 1.0, t > RECON_ONLY_STEPS);
}
