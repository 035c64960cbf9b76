// The step state: one small storage buffer that GPU kernels update and read, so the host does no
// arithmetic inside the step. Prepended to every family that needs it; the layout is mirrored in
// src/sae/state.ts (STATE_INDEX) and checked by tests/sae/state_test.ts.
struct State {
  step: u32,     // optimizer steps taken, this one included (t, from 1)
  lr: f32,       // learning rate of this step (linear warmup)
  b1t: f32,      // beta1^t, for Adam's bias correction
  b2t: f32,      // beta2^t
  l1_coef: f32,  // λ1 / B: added to dL/df of every active latent (0 in a recon-only phase)
  main_phase: f32, // 1 once the recon-only phase is over (paper §4.4 phase 2), else 0
  _pad1: u32,
  _pad2: u32,
}
