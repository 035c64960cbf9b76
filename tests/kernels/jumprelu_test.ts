import assert from "node:assert/strict";
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { hasSubgroups, withCollectives } from "../../src/kernels/collectives.ts";
import {
  jumpReluBackwardKernel,
  jumpReluTrainingReference,
  l0LossKernel,
  thetaExpKernel,
  thresholdActKernel,
  thresholdActReference,
} from "../../src/kernels/jumprelu.ts";
import jumpreluSrc from "../../wgsl/jumprelu.wgsl" with { type: "text" };
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";
import { assertOnlyLacksSubgroups } from "../helpers/subgroups.ts";

/** The collectives each kernel test runs with: the fallback, and subgroups where the device has them. */
const MODES = [false, ...(hasSubgroups(await getGpu()) ? [true] : [])];

/**
 * log θ [m] with θ in [0.05, 0.5), and pre [B, m] of which 40% lie within ε of their latent's θ
 * (both sides, inside and outside the rectangle's half-width ε/2), the rest farther away. No value
 * lies within 1% of ε of θ or of a rectangle edge, so f32 rounding (the GPU's exp, (x − θ)/ε)
 * cannot move an entry across one.
 */
function jumpData(rng: Rng, B: number, m: number, eps: number) {
  const logTheta = new Float32Array(m).map(() => Math.log(0.05 + 0.45 * rng.uniform()));
  const theta = Array.from(logTheta, Math.exp);
  const pre = new Float32Array(B * m);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < m; i++) {
      let x: number;
      if (rng.uniform() < 0.4) {
        let v: number;
        do v = 2 * rng.uniform() - 1; while (
          Math.abs(v) < 0.01 || Math.abs(Math.abs(v) - 0.5) < 0.01
        );
        x = theta[i] + eps * v;
      } else {
        do x = 2 * rng.uniform() - 1; while (Math.abs(x - theta[i]) < eps);
      }
      pre[b * m + i] = x;
    }
  }
  return { logTheta, theta, pre };
}

/** Exact equality of f32 arrays (NaN, e.g. an unwritten poisoned entry, never equal). */
function assertSame(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) throw new Error(`${what}: at ${i} got ${got[i]}, want ${want[i]}`);
  }
}

/** Runs the forward, the backward and the L0 loss; what they wrote, read back. */
async function runJumpRelu(
  gpu: Gpu,
  s: { B: number; m: number; bandwidth: number },
  d: ReturnType<typeof jumpData>,
  dLdf: Float32Array,
  l0Coef: number,
  subgroups = false,
) {
  const preB = gpu.upload("pre", d.pre), logTheta = gpu.upload("log theta", d.logTheta);
  const f = poisoned(gpu, "f", s.B * s.m), dpre = gpu.upload("dpre", dLdf);
  const l0Row = gpu.upload("l0 row", new Uint32Array(s.B).fill(0xdeadbeef));
  const gLog = poisoned(gpu, "g log theta", s.m);
  const coef = gpu.upload("coef", new Float32Array([9, l0Coef]));
  const out = poisoned(gpu, "out", 4);
  const c = { buf: coef, index: 1 };
  const list = [
    ...await thresholdActKernel(gpu, s, {
      pre: preB,
      f,
      l0Row,
      theta: { kind: "log", buf: logTheta },
    }, { subgroups }),
    ...await jumpReluBackwardKernel(gpu, s, {
      pre: preB,
      dpre,
      logTheta,
      gLogTheta: gLog,
      l0Coef: c,
    }, { subgroups }),
    await l0LossKernel(gpu, s.B, { l0Row, l0Coef: c, out: { buf: out, index: 1 } }, { subgroups }),
  ];
  run(gpu, list);
  const [gf, gl, gd, gg, go] = await gpu.readMany([
    { buf: f },
    { buf: l0Row },
    { buf: dpre },
    { buf: gLog },
    { buf: out },
  ]);
  for (const x of [preB, logTheta, f, dpre, l0Row, gLog, coef, out]) x.destroy();
  return {
    f: gf,
    l0Row: new Uint32Array(gl.buffer, gl.byteOffset, gl.length),
    dpre: gd,
    gLogTheta: gg,
    out: go,
    dispatches: list.length,
  };
}

function assertMatches(
  got: Awaited<ReturnType<typeof runJumpRelu>>,
  s: { B: number; m: number; bandwidth: number },
  d: ReturnType<typeof jumpData>,
  dLdf: Float32Array,
  l0Coef: number,
  name: string,
) {
  const want = jumpReluTrainingReference(d.pre, d.logTheta, s, l0Coef, dLdf);
  assertSame(got.f, want.f, `${name} f`);
  assert.deepEqual([...got.l0Row.slice(0, s.B)], [...want.l0Row], `${name} L0 per row`);
  assertSame(got.dpre, want.dpre, `${name} dL/dpre`);
  assertClose(got.gLogTheta, want.gLogTheta, 1e-5, `${name} dL/dlog θ`);
  const meanL0 = want.l0Row.reduce((a, n) => a + n, 0) / s.B;
  assertClose([got.out[1], got.out[2]], [want.l0Loss, meanL0], 1e-6, `${name} L0 loss`);
  assert.ok(Number.isNaN(got.out[0]) && Number.isNaN(got.out[3]), "only its two slots written");
}

for (
  const [bandwidth, subgroups] of [0.05, 0.001].flatMap((e) => MODES.map((m) => [e, m] as const))
) {
  const name = `ε = ${bandwidth}${subgroups ? " (subgroups)" : ""}`;
  Deno.test(`jumprelu forward, L0 loss and straight-through gradients match SAELens' autograd: ${name}`, async () => {
    const gpu = await getGpu();
    const s = { B: 37, m: 70, bandwidth };
    const rng = new Rng(bandwidth * 1e4);
    const d = jumpData(rng, s.B, s.m, bandwidth);
    const dLdf = randArray(rng, s.B * s.m);
    const got = await runJumpRelu(gpu, s, d, dLdf, 2.5, subgroups);
    assertMatches(got, s, d, dLdf, 2.5, name);
    // The rectangle sees entries below θ too (not kept, yet they move θ), and some latents none.
    const inWindow = (below: boolean) =>
      d.pre.some((x, k) => {
        const z = (x - d.theta[k % s.m]) / bandwidth;
        return Math.abs(z) < 0.5 && (z < 0) === below;
      });
    assert.ok(inWindow(true) && inWindow(false), "entries in the window on both sides of θ");
  });
}

Deno.test("jumprelu: the reference's STE is the derivative of the rectangle-smoothed step (independent check)", () => {
  // H_ε(z) = clamp(z/ε + 1/2, 0, 1) has dH_ε(x − θ)/dθ = −(1/ε)·rect((x − θ)/ε): Step.backward's
  // estimate. With θ₀ held fixed as the factor of H (JumpReLU's pseudo-derivative uses θ, not x,
  // inside the window), d/dθ [Σ_b g_b·θ₀·H_ε(x_b − θ)] at θ₀ is JumpReLU.backward's. Central
  // differences in log θ of their sum must give the reference's dL/dlog θ.
  const s = { B: 50, m: 12, bandwidth: 0.02 };
  const rng = new Rng(31);
  const d = jumpData(rng, s.B, s.m, s.bandwidth);
  const dLdf = randArray(rng, s.B * s.m);
  const l0Coef = 0.7;
  const want = jumpReluTrainingReference(d.pre, d.logTheta, s, l0Coef, dLdf).gLogTheta;
  const H = (z: number) => Math.min(Math.max(z / s.bandwidth + 0.5, 0), 1);
  for (let i = 0; i < s.m; i++) {
    const theta0 = Math.exp(d.logTheta[i]);
    const T = (logTheta: number) => {
      let t = 0;
      for (let b = 0; b < s.B; b++) {
        const h = H(d.pre[b * s.m + i] - Math.exp(logTheta));
        t += dLdf[b * s.m + i] * theta0 * h + (l0Coef / s.B) * h;
      }
      return t;
    };
    const h = 1e-7;
    const fd = (T(d.logTheta[i] + h) - T(d.logTheta[i] - h)) / (2 * h);
    assertClose([fd], [want[i]], 1e-5, `latent ${i}`);
  }
  assert.ok(want.every((v) => v !== 0), "every latent has entries in its window");
});

Deno.test("jumprelu split over row ranges (binding limit of a few KiB): parts add up", async () => {
  const gpu = await createGpu({ maxStorageBufferBindingSize: 4096 });
  const s = { B: 23, m: 131, bandwidth: 0.05 };
  const rng = new Rng(77);
  const d = jumpData(rng, s.B, s.m, s.bandwidth);
  const dLdf = randArray(rng, s.B * s.m);
  const got = await runJumpRelu(gpu, s, d, dLdf, 1);
  assert.ok(got.dispatches >= 7, `${got.dispatches} dispatches: forward and backward split`);
  assertMatches(got, s, d, dLdf, 1, "split");
  gpu.destroy();
});

Deno.test("threshold activation at inference: per-latent θ as stored, and one global θ (BatchTopK)", async () => {
  const gpu = await getGpu();
  const B = 19, m = 83;
  const rng = new Rng(6);
  const pre = randArray(rng, B * m);
  const raw = randArray(rng, m, -0.2, 0.6); // negative thresholds too: f is still ReLU'd
  for (
    const theta of [
      { kind: "raw" as const, vals: raw },
      ...[-1, 0, 0.3].map((t) => ({ kind: "global" as const, vals: new Float32Array(m).fill(t) })),
    ]
  ) {
    const f = poisoned(gpu, "f", B * m);
    const l0Row = gpu.upload("l0", new Uint32Array(B).fill(0xdeadbeef));
    const buf = theta.kind === "raw"
      ? gpu.upload("theta", raw)
      : gpu.upload("theta", new Float32Array([5, 5, theta.vals[0]]));
    const src = theta.kind === "raw"
      ? { kind: "raw" as const, buf }
      : { kind: "global" as const, buf, index: 2 };
    run(
      gpu,
      await thresholdActKernel(gpu, { B, m }, {
        pre: gpu.upload("pre", pre),
        f,
        l0Row,
        theta: src,
      }),
    );
    const want = thresholdActReference(pre, theta.vals, B, m);
    assertSame(await gpu.read(f), want.f, `${theta.kind} ${theta.vals[0]} f`);
    assert.deepEqual([...await gpu.readU32(l0Row)].slice(0, B), [...want.l0Row]);
  }
});

Deno.test("jumprelu WGSL with subgroup collectives parses; only the capability is missing here", async () => {
  if (MODES.includes(true)) return; // it runs in the tests above instead
  await assertOnlyLacksSubgroups(withCollectives(jumpreluSrc, true));
});

Deno.test("jumprelu threshold: θ = exp(log θ) for every latent", async () => {
  const gpu = await getGpu();
  const m = 301;
  const logTheta = randArray(new Rng(9), m, -6, 1);
  const theta = poisoned(gpu, "theta", m);
  run(gpu, [await thetaExpKernel(gpu, m, { logTheta: gpu.upload("log theta", logTheta), theta })]);
  assertClose(await gpu.read(theta, m * 4), Array.from(logTheta, Math.exp), 1e-5, "θ");
});
