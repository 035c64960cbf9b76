/**
 * Adapter and device acquisition, buffers, pipelines, bind groups, readbacks and error surfacing:
 * WebGPU objects are made here, except the GEMM texture path's textures (src/kernels/gemm). Command
 * buffers are recorded by src/gpu/dispatch.ts and src/gpu/profile.ts, and by src/sae/session.ts for
 * the training step itself (it clears the accumulators in the step's command buffer, keeps two steps
 * in flight, and replays kernels one by one in error scopes to name a failing one). It counts
 * pipeline and bind-group creations and readbacks so tests can assert that none happen inside the
 * training step.
 */
import { UserError } from "../errors.ts";

/** Counts of expensive runtime operations since the {@link Gpu} was created. */
export interface GpuCounters {
  pipelines: number;
  bindGroups: number;
  readbacks: number;
  submits: number;
  /** Buffers created through this Gpu (readback staging buffers included). */
  buffersCreated: number;
  /** Of those, buffers destroyed through this Gpu; created − destroyed = live. */
  buffersDestroyed: number;
}

/**
 * The device failed: it was lost, or a command was invalid. `kernel` names the kernel (pipeline
 * label) when the driver's message names one.
 */
export class GpuFailure extends Error {
  /** "lost" for a device loss, "validation" for an invalid command, "error" otherwise. */
  readonly kind: "lost" | "validation" | "error";
  /** The kernel the driver's message names, if any. */
  readonly kernel: string | null;
  constructor(kind: "lost" | "validation" | "error", message: string, kernel: string | null) {
    super(message);
    this.name = "GpuFailure";
    this.kind = kind;
    this.kernel = kernel;
  }
}

/** The kernel a wgpu message names ("ComputePipeline with 'encode' label"), or null. */
function kernelInMessage(message: string): string | null {
  const m = /ComputePipeline with '([^']+)' label/.exec(message) ??
    /BindGroup with '([^']+)' label/.exec(message);
  return m ? m[1] : null;
}

/** What WebGPU says an adapter is (GPUAdapterInfo's identifying fields). */
export interface AdapterIdentity {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

/** Options for {@link createGpu}. */
export interface GpuOptions {
  /** Print the adapter's name once to stderr. */
  announce?: boolean;
  /**
   * Request shader-f16 where the adapter has it (default true: the GEMM's tiled path stores f16
   * operands with it; false leaves it off).
   */
  f16?: boolean;
  /** Override the storage-binding limit (tests force tiny limits with this). */
  maxStorageBufferBindingSize?: number;
}

/** A device plus the helpers the kernels use. Create one per process with {@link createGpu}. */
export class Gpu {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** Human-readable adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly adapterName: string;
  /** The adapter's identity as WebGPU reports it (src/gpu/adapter.ts keys caches on it). */
  readonly adapterInfo: AdapterIdentity;
  /** Whether timestamp queries are available. */
  readonly hasTimestamps: boolean;
  /** Whether shader-f16 was enabled. */
  readonly hasF16: boolean;
  /**
   * Largest storage binding in bytes. Buffers may be larger (up to {@link Gpu.maxBufferSize}):
   * kernels that touch such buffers split their dispatches over views (src/gpu/split.ts).
   */
  readonly maxBinding: number;
  /** Largest buffer in bytes. */
  readonly maxBufferSize: number;
  /** Alignment of storage-binding offsets in bytes (minStorageBufferOffsetAlignment). */
  readonly offsetAlign: number;
  /** Operation counters (see {@link GpuCounters}). */
  readonly counters: GpuCounters = {
    pipelines: 0,
    bindGroups: 0,
    readbacks: 0,
    submits: 0,
    buffersCreated: 0,
    buffersDestroyed: 0,
  };
  private failure: GpuFailure | null = null;
  /**
   * Rejecters of the waits in progress (see {@link Gpu.guard}), called on the first failure.
   * A set, not a race against one long-lived promise: every race would leave a reaction on it
   * for good (about 300 bytes a step, measured with tasks/longrun.ts).
   */
  private readonly waiters = new Set<(e: GpuFailure) => void>();
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private dummyBuf: GPUBuffer | null = null;

  /** Use {@link createGpu}. */
  constructor(
    device: GPUDevice,
    info: { name: string; f16: boolean; maxBinding: number; identity?: AdapterIdentity },
  ) {
    this.device = device;
    this.adapterName = info.name;
    this.adapterInfo = info.identity ??
      { vendor: "", architecture: "", device: "", description: info.name };
    this.hasF16 = info.f16;
    this.hasTimestamps = device.features.has("timestamp-query");
    this.maxBinding = info.maxBinding;
    this.maxBufferSize = device.limits.maxBufferSize;
    this.offsetAlign = device.limits.minStorageBufferOffsetAlignment;
    device.addEventListener("uncapturederror", (e) => {
      const err = (e as GPUUncapturedErrorEvent).error;
      const msg = err.message.trim().replaceAll(/\s*\n\s*/g, " ");
      const kernel = kernelInMessage(msg);
      const kind = err instanceof GPUValidationError ? "validation" : "error";
      this.fail(
        new GpuFailure(
          kind,
          `GPU ${kind} error${kernel ? ` in kernel '${kernel}'` : ""}: ${msg}`,
          kernel,
        ),
      );
    });
    device.lost.then((info) => {
      this.fail(
        new GpuFailure(
          "lost",
          `GPU device lost (${info.reason}): ${info.message || "no message"}`,
          null,
        ),
      );
    });
  }

  private fail(e: GpuFailure): void {
    if (this.failure) return;
    this.failure = e;
    for (const reject of this.waiters) reject(e);
    this.waiters.clear();
  }

  /** The first failure seen so far, or null. */
  get failureError(): GpuFailure | null {
    return this.failure;
  }

  /** Throws the first device loss or uncaptured validation error seen so far, if any. */
  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * Waits for `p`, or rejects with the device's failure as soon as there is one (a wait on a
   * dead device must not hang the run).
   */
  guard<T>(p: Promise<T>): Promise<T> {
    this.throwIfFailed();
    return new Promise<T>((resolve, reject) => {
      this.waiters.add(reject);
      p.then(resolve, reject).finally(() => this.waiters.delete(reject));
    });
  }

  /** Creates a buffer, counting it (every buffer of this module goes through here). */
  createBuffer(desc: GPUBufferDescriptor): GPUBuffer {
    this.counters.buffersCreated++;
    return this.device.createBuffer(desc);
  }

  /** Destroys a buffer made by this Gpu, counting it. */
  destroyBuffer(buf: GPUBuffer): void {
    this.counters.buffersDestroyed++;
    buf.destroy();
  }

  /** Buffers created and not yet destroyed through this Gpu. */
  get liveBuffers(): number {
    return this.counters.buffersCreated - this.counters.buffersDestroyed;
  }

  /**
   * Creates a storage buffer of `bytes` (rounded up to 4), checking the buffer-size limit (a
   * buffer over the binding limit is fine: its kernels bind views of it, src/gpu/split.ts).
   */
  buffer(label: string, bytes: number, extraUsage = 0): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 4) * 4);
    if (size > this.maxBufferSize) {
      throw new UserError(
        `buffer '${label}' needs ${fmtBytes(size)}, over this adapter's buffer-size limit of ` +
          `${fmtBytes(this.maxBufferSize)}: reduce d_sae, d_in or batch`,
      );
    }
    return this.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST |
        extraUsage,
    });
  }

  /** Creates a storage buffer holding `data`. */
  upload(label: string, data: Float32Array | Uint32Array | Int32Array): GPUBuffer {
    const buf = this.buffer(label, data.byteLength);
    this.write(buf, data);
    return buf;
  }

  /** Writes `data` into `buf` at byte `offset`. */
  write(buf: GPUBuffer, data: Float32Array | Uint32Array | Int32Array, offset = 0): void {
    this.device.queue.writeBuffer(
      buf,
      offset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** A uniform buffer holding `words` u32/f32 values (packed as given). */
  uniform(label: string, data: ArrayBuffer): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    const buf = this.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.device.queue.writeBuffer(buf, 0, data);
    return buf;
  }

  /** A 2-D texture that kernels write as storage and copies fill (`width` x `height` texels). */
  storageTexture(
    label: string,
    width: number,
    height: number,
    format: GPUTextureFormat,
  ): GPUTexture {
    return this.device.createTexture({
      label,
      size: [width, height],
      format,
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
    });
  }

  /** A 16-byte buffer to fill binding slots a kernel variant does not read. */
  dummy(): GPUBuffer {
    this.dummyBuf ??= this.buffer("dummy", 16);
    return this.dummyBuf;
  }

  /**
   * The compute pipeline of `code`'s `entryPoint` with `constants`, created once per Gpu: later
   * calls with the same source, entry point and constants share it (GEMMs of one shape, such as
   * the orthogonality term's blocks and the parts of a split GEMM). Throws naming `label` when the
   * WGSL does not compile or the pipeline is invalid. {@link GpuCounters.pipelines} counts the
   * pipelines actually created.
   */
  pipeline(
    label: string,
    code: string,
    constants: Record<string, number> = {},
    entryPoint = "main",
  ): Promise<GPUComputePipeline> {
    const key = `${entryPoint} ${JSON.stringify(constants)}\n${code}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.createPipeline(label, code, constants, entryPoint);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  private async createPipeline(
    label: string,
    code: string,
    constants: Record<string, number>,
    entryPoint: string,
  ): Promise<GPUComputePipeline> {
    let module = this.modules.get(code);
    if (!module) {
      module = this.device.createShaderModule({ label, code });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === "error");
      if (errors.length) {
        throw new Error(`WGSL for '${label}' failed to compile: ${errors[0].message.trim()}`);
      }
      this.modules.set(code, module);
    }
    this.device.pushErrorScope("validation");
    const pipeline = this.device.createComputePipeline({
      label,
      layout: "auto",
      compute: { module, entryPoint, constants },
    });
    const err = await this.device.popErrorScope();
    if (err) throw new Error(`pipeline '${label}' is invalid: ${err.message.trim()}`);
    this.counters.pipelines++;
    return pipeline;
  }

  /**
   * Creates a bind group binding `resources[i]` (a buffer, a byte range of one, or a texture) to
   * slot i of group 0; `null` leaves a slot out (an entry point of a multi-kernel file uses only
   * some of the file's bindings).
   */
  bindGroup(
    pipeline: GPUComputePipeline,
    resources: (GPUBuffer | GPUBufferBinding | GPUTexture | null)[],
    label?: string,
  ): GPUBindGroup {
    this.counters.bindGroups++;
    const entries: GPUBindGroupEntry[] = [];
    resources.forEach((b, binding) => {
      if (!b) return;
      if (b instanceof GPUTexture) {
        entries.push({ binding, resource: b.createView() });
        return;
      }
      const res = b instanceof GPUBuffer ? { buffer: b } : b;
      const size = res.size ?? res.buffer.size - (res.offset ?? 0);
      if (size > this.maxBinding && (res.buffer.usage & GPUBufferUsage.STORAGE)) {
        // A kernel builder that binds a whole large buffer instead of splitting (a bug, not input).
        throw new Error(
          `kernel '${label ?? "?"}' binds ${fmtBytes(size)} of '${res.buffer.label}' at slot ` +
            `${binding}, over the storage-binding limit of ${fmtBytes(this.maxBinding)}`,
        );
      }
      entries.push({ binding, resource: res });
    });
    return this.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  }

  /** Submits command buffers, counting submissions. */
  submit(cmds: GPUCommandBuffer[]): void {
    this.counters.submits++;
    this.device.queue.submit(cmds);
  }

  /**
   * Copies several buffers to the host in one submission and one map; returns one Float32Array per
   * request. Throws if the device failed.
   */
  async readMany(reqs: { buf: GPUBuffer; bytes?: number }[]): Promise<Float32Array[]> {
    this.throwIfFailed();
    const sizes = reqs.map((r) => Math.ceil((r.bytes ?? r.buf.size) / 4) * 4);
    const offsets: number[] = [];
    let total = 0;
    for (const s of sizes) {
      offsets.push(total);
      total += s;
    }
    const staging = this.createBuffer({
      label: "readback",
      size: Math.max(16, total),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.device.createCommandEncoder();
    reqs.forEach((r, i) => enc.copyBufferToBuffer(r.buf, 0, staging, offsets[i], sizes[i]));
    this.submit([enc.finish()]);
    this.counters.readbacks++;
    try {
      await this.guard(staging.mapAsync(GPUMapMode.READ));
    } catch (e) {
      this.destroyBuffer(staging);
      this.throwIfFailed();
      throw e;
    }
    const all = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    this.destroyBuffer(staging);
    this.throwIfFailed();
    return sizes.map((s, i) => all.subarray(offsets[i] / 4, (offsets[i] + s) / 4));
  }

  /** Reads one buffer back as f32. */
  async read(buf: GPUBuffer, bytes?: number): Promise<Float32Array> {
    return (await this.readMany([{ buf, bytes }]))[0];
  }

  /** Reads one buffer back as u32. */
  async readU32(buf: GPUBuffer, bytes?: number): Promise<Uint32Array> {
    const f = await this.read(buf, bytes);
    return new Uint32Array(f.buffer, f.byteOffset, f.length);
  }

  /** Waits for all submitted work, then throws any device failure. */
  async sync(): Promise<void> {
    await this.guard(this.device.queue.onSubmittedWorkDone());
    this.throwIfFailed();
  }

  /** Releases the device. */
  destroy(): void {
    this.device.destroy();
  }
}

let shared: Promise<Gpu> | null = null;

/**
 * Returns the process-wide GPU (created on first call). Tests and the CLI share one device: Deno
 * holds one adapter per process, and device creation costs time on the CPU adapter.
 */
export function getGpu(opts: GpuOptions = {}): Promise<Gpu> {
  shared ??= createGpu(opts);
  return shared;
}

/**
 * Requests an adapter and a device with the adapter's larger limits.
 * @throws UserError when no adapter exists, naming what to install.
 */
export async function createGpu(opts: GpuOptions = {}): Promise<Gpu> {
  // Mesa's drivers print a warning and may fail without it; it only needs to be a writable dir.
  if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  if (!("gpu" in navigator) || !navigator.gpu) {
    throw new UserError("this Deno has no WebGPU (navigator.gpu is missing): use Deno ≥ 2.0");
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new UserError(
      "no WebGPU adapter found: install a GPU driver, or for the CPU adapter run " +
        "'apt-get install -y mesa-vulkan-drivers' (as root)",
    );
  }
  const al = adapter.limits;
  const wanted: Record<string, number> = {
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxBufferSize: al.maxBufferSize,
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: al.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: al.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupsPerDimension: al.maxComputeWorkgroupsPerDimension,
  };
  const features: GPUFeatureName[] = [];
  if (adapter.features.has("timestamp-query")) features.push("timestamp-query");
  // Kernels built with subgroup collectives (src/kernels/collectives.ts) need it on the device.
  if (adapter.features.has("subgroups")) features.push("subgroups");
  const f16 = opts.f16 !== false && adapter.features.has("shader-f16");
  if (f16) features.push("shader-f16");
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: wanted,
  });
  const info = adapter.info;
  const name = info.description || `${info.vendor} ${info.architecture} ${info.device}`.trim();
  if (opts.announce) console.error(`adapter: ${name}${info.isFallbackAdapter ? " (CPU)" : ""}`);
  const maxBinding = Math.min(
    opts.maxStorageBufferBindingSize ?? Infinity,
    device.limits.maxStorageBufferBindingSize,
  );
  const identity = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
  };
  return new Gpu(device, { name, f16, maxBinding, identity });
}

function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} B`;
}
