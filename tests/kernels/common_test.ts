import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { kernel, run } from "../../src/gpu/dispatch.ts";
import {
  initialState,
  packState,
  STATE_WORDS,
  type StepState,
  unpackState,
  WG,
  wgslU32,
  withCommon,
} from "../../src/kernels/common.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";
import { assertOnlyLacksSubgroups } from "../helpers/subgroups.ts";
import { hasSubgroups } from "../../src/kernels/collectives.ts";
import decoderSrc from "../../wgsl/decoder.wgsl" with { type: "text" };
import logitsSrc from "../../wgsl/logits.wgsl" with { type: "text" };
import lossSrc from "../../wgsl/loss.wgsl" with { type: "text" };
import metricsSrc from "../../wgsl/metrics.wgsl" with { type: "text" };
import normSrc from "../../wgsl/norm.wgsl" with { type: "text" };
import paperSrc from "../../wgsl/paper.wgsl" with { type: "text" };
import sparseSrc from "../../wgsl/sparse.wgsl" with { type: "text" };

// One workgroup per row of x [rows, 4·n]: every invocation writes the workgroup's sums and maxima
// of its strided share (vec4 and first-lane forms) and the sum of its share's positive count, so a
// lane that got a stale total fails the comparison.
const probe = `
override N: u32 = 1u; // vec4s per row
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>; // [rows, RED_WG, 3]
@compute @workgroup_size(RED_WG)
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  var s = vec4<f32>(0.0);
  var m = vec4<f32>(-3.4e38);
  var c = 0u;
  for (var k = t; k < N; k += RED_WG) {
    let v = x[w.x * N + k];
    s += v;
    m = max(m, v);
    c += u32(v.x > 0.0) + u32(v.y > 0.0) + u32(v.z > 0.0) + u32(v.w > 0.0);
  }
  let o = (w.x * RED_WG + t) * 3u;
  out[o] = wg_sum4(s, t);
  out[o + 1u] = wg_max4(m, t);
  out[o + 2u] = vec4<f32>(wg_sum(s.y, t), wg_max(m.z, t), f32(wg_sum_u32(c, t)), 0.0);
}`;

const hasSg = hasSubgroups(await getGpu());
for (
  const [width, subgroups] of [[undefined, false], [256, false], [undefined, true], [
    256,
    true,
  ]] as const
) {
  Deno.test({
    name:
      `common WGSL: wg_sum4, wg_max4, wg_sum, wg_max, wg_sum_u32 give every lane the totals (RED_WG ${
        width ?? "= WG"
      }${subgroups ? ", subgroups" : ""})`,
    ignore: subgroups && !hasSg,
    fn: async () => {
      assert.equal(WG, 64);
      const red = width ?? WG;
      const gpu = await getGpu();
      const rng = new Rng(3);
      for (const n of [1, 37, 133, 301]) {
        const rows = 5;
        const x = randArray(rng, rows * 4 * n, -2, 3);
        const out = poisoned(gpu, "out", rows * red * 12);
        run(gpu, [
          await kernel(gpu, {
            label: "common probe",
            code: withCommon(probe, subgroups),
            constants: width ? { N: n, RED_WG: width } : { N: n },
            buffers: [gpu.upload("x", x), out],
            groups: [rows, 1, 1],
          }),
        ]);
        const got = await gpu.read(out);
        const want = new Float32Array(rows * red * 12);
        for (let r = 0; r < rows; r++) {
          const s = [0, 0, 0, 0], m = [-Infinity, -Infinity, -Infinity, -Infinity];
          let c = 0;
          for (let k = 0; k < n; k++) {
            for (let j = 0; j < 4; j++) {
              const v = x[(r * n + k) * 4 + j];
              s[j] += v;
              m[j] = Math.max(m[j], v);
              if (v > 0) c++;
            }
          }
          for (let t = 0; t < red; t++) {
            want.set([...s, ...m, s[1], m[2], c, 0], (r * red + t) * 12);
          }
        }
        assertClose(got, want, 1e-5, `n=${n}`);
      }
    },
  });
}

Deno.test({
  name: "common WGSL with subgroup reductions: it and every family using them parse; only the " +
    "capability is missing here",
  ignore: hasSg,
  fn: async () => {
    for (
      const src of [probe, decoderSrc, logitsSrc, lossSrc, metricsSrc, normSrc, paperSrc, sparseSrc]
    ) {
      await assertOnlyLacksSubgroups(withCommon(src, true));
    }
  },
});

Deno.test("wgslU32 reads a WGSL u32 constant and names a missing one", () => {
  assert.equal(wgslU32("const A: u32 = 7u;\nconst HEALTH_WG: u32 = 256u;", "HEALTH_WG"), 256);
  assert.throws(() => wgslU32("const A: u32 = 7u;", "B"), /no 'const B: u32'/);
});

// Reads every field of a State by name and writes it back changed, each by a different rule, into
// a second State: packState must put the fields where the struct has them and unpackState read
// them from there; arrayLength of an array<State> over 3 × STATE_WORDS words checks the size.
const stateProbe = `
@group(0) @binding(0) var<storage, read> a: State;
@group(0) @binding(1) var<storage, read_write> b: State;
@group(0) @binding(2) var<storage, read> many: array<State>;
@group(0) @binding(3) var<storage, read_write> len: array<u32>;
@compute @workgroup_size(1)
fn main() {
  b.step = a.step + 3u;
  b.lr = a.lr * 2.0;
  b.b1t = a.b1t + 1.0;
  b.b2t = a.b2t - 1.0;
  b.l1_coef = a.l1_coef * 4.0;
  b.main_phase = 1.0 - a.main_phase;
  b._pad1 = 0u;
  b._pad2 = 0u;
  len[0] = arrayLength(&many);
}`;

Deno.test("step state: the TypeScript mirror matches struct State field by field", async () => {
  const gpu = await getGpu();
  const st: StepState = { step: 41, lr: 3e-4, b1t: 0.25, b2t: 0.75, l1_coef: 0.125, main_phase: 1 };
  const b = gpu.upload("b", new Uint32Array(STATE_WORDS).fill(0xffffffff));
  const len = gpu.upload("len", new Uint32Array(1).fill(0xffffffff));
  run(gpu, [
    await kernel(gpu, {
      label: "state probe",
      code: withCommon(stateProbe),
      buffers: [gpu.upload("a", packState(st)), b, gpu.buffer("many", 3 * STATE_WORDS * 4), len],
      groups: [1, 1, 1],
    }),
  ]);
  const got = unpackState(await gpu.readU32(b));
  const f = Math.fround;
  assert.deepEqual(got, {
    step: 44,
    lr: f(f(3e-4) * 2),
    b1t: 1.25,
    b2t: -0.25,
    l1_coef: 0.5,
    main_phase: 0,
  });
  assert.equal((await gpu.readU32(len))[0], 3);
  assert.deepEqual(unpackState(packState(initialState())), initialState());
});
