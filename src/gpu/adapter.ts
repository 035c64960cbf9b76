/**
 * The class of the adapter, the one fact every kernel family's choice of path keys on: a CPU
 * (software) adapter such as Mesa's llvmpipe/lavapipe or SwiftShader, or a GPU. The GEMM's path
 * and tile (src/kernels/gemm/choose.ts), the one-invocation-per-row kernels of the loss, decoder,
 * norm and attention families, and the benches all ask {@link adapterClass}, never the adapter's
 * name.
 *
 * `SAE_ADAPTER_CLASS=gpu` makes every such choice act as on a discrete GPU whatever the adapter
 * is, so the GPU paths run (and are tested) on the CPU adapter; `cpu` does the reverse; unset or
 * empty, the class is detected from the adapter's description.
 *
 * @example
 * ```ts ignore
 * const lane = adapterClass(gpu) === "cpu"; // one invocation per row on CPU adapters
 * ```
 */
import { UserError } from "../errors.ts";

/** A CPU (software) adapter or a GPU. */
export type AdapterClass = "cpu" | "gpu";

/** The environment variable that forces the class. */
export const ADAPTER_CLASS_ENV = "SAE_ADAPTER_CLASS";

/**
 * Whether an adapter description names a CPU (software) WebGPU adapter. A fact about the driver
 * (src/gpu/profile.ts keys its workaround for lavapipe's timestamps on it); path choices use
 * {@link adapterClass}, which the environment can override.
 */
export function isCpuAdapterName(name: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(name);
}

/**
 * The class forced by SAE_ADAPTER_CLASS, or null when unset or empty (also where the process may
 * not read the environment).
 * @throws UserError on any other value.
 */
export function forcedAdapterClass(): AdapterClass | null {
  let v: string | undefined;
  try {
    v = Deno.env.get(ADAPTER_CLASS_ENV);
  } catch {
    return null; // no --allow-env: nothing was forced
  }
  if (v === undefined || v === "") return null;
  if (v === "gpu" || v === "cpu") return v;
  throw new UserError(
    `${ADAPTER_CLASS_ENV}=${v} is not a class: set it to 'gpu' or 'cpu', or unset it to detect`,
  );
}

/**
 * The class every path choice keys on: SAE_ADAPTER_CLASS where set, else detected from the
 * adapter's description. Read at each call (choices are made when dispatches are built, never
 * inside a step), so a test can switch it.
 */
export function adapterClass(gpu: { readonly adapterName: string }): AdapterClass {
  return forcedAdapterClass() ?? (isCpuAdapterName(gpu.adapterName) ? "cpu" : "gpu");
}
