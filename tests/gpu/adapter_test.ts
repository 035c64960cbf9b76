import assert from "node:assert/strict";
import {
  ADAPTER_CLASS_ENV,
  type AdapterClass,
  adapterClass,
  forcedAdapterClass,
  isCpuAdapterName,
} from "../../src/gpu/adapter.ts";
import { getGpu } from "../../src/gpu/device.ts";
import type { ComputeDispatch } from "../../src/gpu/dispatch.ts";
import { normalizeKernel } from "../../src/kernels/decoder.ts";
import { singlePath } from "../../src/kernels/gemm/choose.ts";
import { gemmPath, type GemmSpec } from "../../src/kernels/gemm/mod.ts";
import { layoutOf } from "../../src/kernels/gemm/spec.ts";
import { type LossBuffers, residualKernel } from "../../src/kernels/loss.ts";
import { normDispatches } from "../../src/kernels/norm.ts";
import { UserError } from "../../src/errors.ts";

/** Runs `fn` with SAE_ADAPTER_CLASS set to `value` (unset for undefined), restoring it after. */
async function withClass<T>(value: string | undefined, fn: () => Promise<T> | T): Promise<T> {
  const prev = Deno.env.get(ADAPTER_CLASS_ENV);
  if (value === undefined) Deno.env.delete(ADAPTER_CLASS_ENV);
  else Deno.env.set(ADAPTER_CLASS_ENV, value);
  try {
    return await fn();
  } finally {
    if (prev === undefined) Deno.env.delete(ADAPTER_CLASS_ENV);
    else Deno.env.set(ADAPTER_CLASS_ENV, prev);
  }
}

Deno.test("adapter class: detected from the description, forced by SAE_ADAPTER_CLASS", async () => {
  for (const name of ["llvmpipe (LLVM 15.0.6, 256 bits)", "lavapipe", "SwiftShader Device"]) {
    assert.equal(isCpuAdapterName(name), true, name);
  }
  for (const name of ["NVIDIA H100 80GB HBM3", "AMD Radeon RX 7900 XTX", "Apple M2"]) {
    assert.equal(isCpuAdapterName(name), false, name);
  }
  const gpu = await getGpu();
  const detected: AdapterClass = isCpuAdapterName(gpu.adapterName) ? "cpu" : "gpu";
  await withClass(undefined, () => {
    assert.equal(forcedAdapterClass(), null);
    assert.equal(adapterClass(gpu), detected);
  });
  await withClass("", () => assert.equal(adapterClass(gpu), detected));
  for (const cls of ["gpu", "cpu"] as const) {
    await withClass(cls, () => {
      assert.equal(adapterClass(gpu), cls);
      assert.equal(adapterClass({ adapterName: "NVIDIA H100" }), cls);
      assert.equal(adapterClass({ adapterName: "llvmpipe" }), cls);
    });
  }
  await withClass("GPU", () => {
    assert.throws(() => adapterClass(gpu), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /SAE_ADAPTER_CLASS=GPU is not a class: set it to 'gpu' or 'cpu'/);
      return true;
    });
  });
});

Deno.test("adapter class: SAE_ADAPTER_CLASS switches the paths of every family", async () => {
  const gpu = await getGpu();
  const spec = (M: number, N: number, K: number): GemmSpec => ({
    label: "switch",
    M,
    N,
    K,
    transA: false,
    transB: true,
    epilogue: "none",
  });
  const rows = 200, dim = 64;
  const buf = gpu.buffer("switch", 4 * rows * dim * 4);
  const loss: LossBuffers = {
    x: buf,
    xc: buf,
    bDec: buf,
    xhat: buf,
    dxhat: buf,
    xmean: buf,
    rowstats: buf,
  };
  const lossSpec = { batch: rows, dIn: dim, scale: 1, applyBDec: true, squared: true };
  // One workgroup per row (GPUs) or one invocation per row (CPU adapters): the workgroup counts.
  const choices = async () => ({
    gemmSmall: gemmPath(gpu, spec(64, 64, 64)),
    gemmLarge: gemmPath(gpu, spec(1024, 4096, 512)),
    gemmOdd: gemmPath(gpu, spec(37, 53, 71)),
    single: singlePath(gpu, spec(36, 52, 68), layoutOf(spec(36, 52, 68), {}), {}),
    lossGroups: ((await residualKernel(gpu, lossSpec, loss)) as ComputeDispatch).groups[0],
    normGroups: (await normDispatches(gpu, { rows, dim, kind: "rms", eps: 1e-5 }, {
      x: buf,
      weight: buf,
      out: buf,
    }) as ComputeDispatch[])[0].groups[0],
    decoderGroups: (await normalizeKernel(gpu, rows, dim, buf) as ComputeDispatch[])[0].groups[0],
  });
  const asGpu = await withClass("gpu", choices);
  const asCpu = await withClass("cpu", choices);
  assert.deepEqual(
    asGpu,
    {
      gemmSmall: "tiled",
      gemmLarge: "tiled",
      gemmOdd: "tiled",
      single: "tiled",
      lossGroups: rows,
      normGroups: rows,
      decoderGroups: rows,
    },
  );
  assert.deepEqual(
    asCpu,
    {
      gemmSmall: "vec4",
      gemmLarge: "bcast",
      gemmOdd: "scalar",
      single: "vec4",
      lossGroups: Math.ceil(rows / 64),
      normGroups: Math.ceil(rows / 64),
      decoderGroups: Math.ceil(rows / 64),
    },
  );
  buf.destroy();
});
