/// <reference types="@webgpu/types" />
/**
 * Runs the engine's own WGSL compute shaders on TensorFlow.js's `webgpu` backend, sharing its
 * device, command encoder, buffer pool and tensor bookkeeping, so the kernels' inputs and
 * outputs are ordinary TF.js tensors and no data leaves the GPU.
 *
 * A kernel is plain WGSL with its shapes baked in as constants (one pipeline per shape;
 * pipelines are cached by source). Binding order: the inputs (`var<storage, read>`) as
 * bindings 0…n−1, then the outputs (`var<storage, read_write>`), then an optional uniform
 * block. Every output element must be written by the kernel (pooled buffers are not zeroed).
 *
 * Dispatches are recorded into the backend's open compute pass, and submitted with TF.js's
 * own batching (`WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE`). While `tf.profile` runs (the backend's
 * `activeTimers` is set) each dispatch gets its own pass with timestamp queries, exactly as
 * the backend does for its programs, so `tf.profile` reports the kernels' GPU time.
 */
import { tf } from '../../tf'

/** The parts of `tfjs-backend-webgpu`'s `WebGPUBackend` that the runner uses. */
export interface WebGPUBackendLike {
  device: GPUDevice
  queue: GPUQueue
  tensorMap: {
    get(dataId: object): {
      resource: GPUBuffer | null
      values: unknown
      dtype: string
      shape: number[]
      refCount: number
    }
    has(dataId: object): boolean
  }
  commandEncoder: GPUCommandEncoder | null
  computePassEncoder: GPUComputePassEncoder | null
  commandQueueOwnedIds: WeakSet<object>
  dispatchCountInPass: number
  uniformPendingDisposal: GPUBuffer[]
  bufferManager: {
    acquireBuffer(size: number, usage: number): GPUBuffer
    releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void
    numBytesUsed: number
    numBytesAllocated: number
  }
  activeTimers: { name: string; query: Promise<number> }[] | null | undefined
  supportTimestampQuery: boolean
  querySet: GPUQuerySet | null
  querySetCount: number
  uploadToGPU(dataId: object): void
  disposeData(dataId: object, force?: boolean): boolean
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo
  ensureCommandEncoderReady(): void
  endComputePassEncoder(): void
  submitQueue(): void
  getQueryTime(): Promise<number>
}

/** The active backend as a WebGPU backend; throws when another backend is active. */
export function webgpuBackend(): WebGPUBackendLike {
  const b = tf.backend() as unknown as Partial<WebGPUBackendLike>
  if (tf.getBackend() !== 'webgpu' || !b.device) {
    throw new Error(`WebGPU kernels need the webgpu backend (active: ${tf.getBackend()})`)
  }
  return b as WebGPUBackendLike
}

/** One compiled kernel: WGSL source, its name (for profiles) and workgroup count. */
export interface KernelCall {
  /** Kernel kind, reported by `tf.profile` / `dsd bench --profile` (e.g. `conv3d.fwd`). */
  name: string
  /** Complete WGSL source (shapes as constants). */
  code: string
  /** Workgroups to dispatch, already within the device's per-dimension limit. */
  dispatch: [number, number, number]
  /** Input tensors (bindings 0…n−1). */
  inputs: tf.TensorInfo[]
  /** Output tensors (bindings n…n+m−1); allocated by {@link newOutput}. */
  outputs: tf.TensorInfo[]
  /** Optional uniform block (binding n+m): 32-bit words. */
  uniforms?: ArrayBuffer
}

type Compiled = { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }
/** device → WGSL source → bind layout (inputs/outputs/uniform) → pipeline */
const pipelines = new WeakMap<GPUDevice, Map<string, Map<string, Compiled>>>()

/** Number of distinct pipelines compiled on the active device (for tests and logs). */
export function pipelineCount(): number {
  const b = tf.backend() as unknown as Partial<WebGPUBackendLike>
  const byCode = b.device ? pipelines.get(b.device) : undefined
  let n = 0
  for (const m of byCode?.values() ?? []) n += m.size
  return n
}

function pipelineFor(
  device: GPUDevice,
  code: string,
  name: string,
  nIn: number,
  nOut: number,
  uniform: boolean,
): Compiled {
  let cache = pipelines.get(device)
  if (!cache) {
    cache = new Map()
    pipelines.set(device, cache)
    device.addEventListener('uncapturederror', (e) => {
      const msg = String((e as unknown as { error?: { message?: string } }).error?.message ?? e)
      // follow-on errors of an invalid pipeline repeat on every use; the cause is reported
      // by the pipeline's own error scope
      if (/invalid due to a previous error/.test(msg)) return
      compileErrors.push(`WebGPU error: ${msg.split('\n').slice(0, 6).join(' ')}`)
    })
  }
  const key = `${nIn}/${nOut}/${uniform ? 1 : 0}`
  let byLayout = cache.get(code)
  if (!byLayout) {
    byLayout = new Map()
    cache.set(code, byLayout)
  }
  let p = byLayout.get(key)
  if (!p) {
    // explicit layout: a binding the shader does not read stays valid
    const entries: GPUBindGroupLayoutEntry[] = []
    for (let i = 0; i < nIn + nOut; i++) {
      entries.push({
        binding: i,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: i < nIn ? 'read-only-storage' : 'storage' },
      })
    }
    if (uniform) {
      entries.push({
        binding: nIn + nOut,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: 'uniform' },
      })
    }
    device.pushErrorScope('validation')
    const layout = device.createBindGroupLayout({ entries })
    const module = device.createShaderModule({ code })
    const pipeline = device.createComputePipeline({
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    })
    p = { pipeline, layout }
    byLayout.set(key, p)
    const pending = device.popErrorScope().then((e) => {
      if (e) compileErrors.unshift(`${name}: ${e.message.split('\n').slice(0, 8).join(' ')}`)
    })
    pendingChecks.push(pending)
  }
  return p
}

const compileErrors: string[] = []
let pendingChecks: Promise<void>[] = []

function throwCompileErrors(): void {
  if (compileErrors.length) {
    const msg = compileErrors.splice(0).join('; ')
    throw new Error(`WebGPU kernel failed (a bug in the engine's kernels): ${msg}`)
  }
}

/**
 * Wait for the shader validation of every pipeline created so far and throw if one failed.
 * (Dawn reports WGSL errors asynchronously; a later {@link run} also throws them.)
 */
export async function checkKernelCompilation(): Promise<void> {
  const all = pendingChecks
  pendingChecks = []
  await Promise.all(all)
  throwCompileErrors()
}

/** A new output tensor of `shape` (float32 unless given), backed by a pooled GPU buffer. */
export function newOutput(
  backend: WebGPUBackendLike,
  shape: number[],
  dtype: tf.DataType = 'float32',
): tf.TensorInfo {
  const info = backend.makeTensorInfo(shape, dtype)
  if (sizeOf(shape) > 0) backend.uploadToGPU(info.dataId)
  return info
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

function bufferOf(backend: WebGPUBackendLike, t: tf.TensorInfo): GPUBuffer {
  backend.uploadToGPU(t.dataId)
  const r = backend.tensorMap.get(t.dataId).resource
  if (!r || !(r instanceof GPUBuffer)) {
    throw new Error(`WebGPU kernel: tensor [${t.shape}] has no GPU buffer`)
  }
  const limit = backend.device.limits.maxStorageBufferBindingSize
  if (r.size > limit) {
    throw new Error(
      `WebGPU kernel: a ${t.dtype} tensor [${t.shape}] (${r.size} bytes) exceeds this adapter's storage binding limit of ${limit} bytes; use a smaller patch or batch`,
    )
  }
  return r
}

/** Record one dispatch of `call` on the backend's command stream. */
export function run(backend: WebGPUBackendLike, call: KernelCall): void {
  throwCompileErrors()
  const device = backend.device
  const { pipeline, layout } = pipelineFor(
    device,
    call.code,
    call.name,
    call.inputs.length,
    call.outputs.length,
    !!call.uniforms,
  )
  const entries: GPUBindGroupEntry[] = []
  let binding = 0
  for (const t of [...call.inputs, ...call.outputs]) {
    entries.push({ binding: binding++, resource: { buffer: bufferOf(backend, t) } })
    backend.commandQueueOwnedIds.add(t.dataId)
  }
  if (call.uniforms) {
    const size = Math.max(16, Math.ceil(call.uniforms.byteLength / 16) * 16)
    const ubuf = backend.bufferManager.acquireBuffer(
      size,
      GPUBufferUsage.COPY_DST | GPUBufferUsage.UNIFORM,
    )
    backend.queue.writeBuffer(ubuf, 0, call.uniforms, 0, call.uniforms.byteLength)
    backend.uniformPendingDisposal.push(ubuf)
    entries.push({ binding: binding++, resource: { buffer: ubuf } })
  }
  const bindGroup = device.createBindGroup({ layout, entries })
  const timed = backend.activeTimers != null
  backend.ensureCommandEncoderReady()
  if (timed && backend.supportTimestampQuery) {
    backend.endComputePassEncoder()
    if (backend.querySet == null) {
      backend.querySet = device.createQuerySet({ type: 'timestamp', count: backend.querySetCount })
    }
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({
      timestampWrites: {
        querySet: backend.querySet,
        beginningOfPassWriteIndex: 0,
        endOfPassWriteIndex: 1,
      },
    })
  } else if (!backend.computePassEncoder) {
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({})
  }
  const pass = backend.computePassEncoder!
  pass.setPipeline(pipeline)
  pass.setBindGroup(0, bindGroup)
  pass.dispatchWorkgroups(call.dispatch[0], call.dispatch[1], call.dispatch[2])
  backend.dispatchCountInPass++
  if (timed) {
    backend.endComputePassEncoder()
    backend.activeTimers!.push({ name: call.name, query: backend.getQueryTime() })
  } else if (
    (tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number) <= backend.dispatchCountInPass
  ) {
    backend.endComputePassEncoder()
    backend.submitQueue()
  }
}

/** Largest workgroup count per dispatch dimension (WebGPU's default and usual limit). */
export const MAX_GROUPS = 65535

/**
 * Fold `groups` workgroups into a 2-D dispatch within {@link MAX_GROUPS} per dimension. The
 * kernel recovers the linear index with {@link WG_LINEAR} (and must skip indices ≥ groups).
 */
export function fold(groups: number, z = 1): [number, number, number] {
  if (groups <= MAX_GROUPS) return [Math.max(1, groups), 1, z]
  const y = Math.ceil(groups / MAX_GROUPS)
  if (y > MAX_GROUPS)
    throw new Error(`WebGPU kernel: ${groups} workgroups exceed the dispatch limit`)
  return [MAX_GROUPS, y, z]
}

/** WGSL expression of the linear workgroup index of a {@link fold}ed dispatch. */
export const WG_LINEAR = '(wid.x + wid.y * nwg.x)'

/** Standard builtin parameters for `main` (use with {@link WG_LINEAR}). */
export const MAIN_ARGS =
  '@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32'

/** WGSL declarations of the bindings: inputs, outputs, optional uniform struct. */
export function bindings(
  inputs: { name: string; type?: string }[],
  outputs: { name: string; type?: string }[],
  uniform?: string,
): string {
  const lines: string[] = []
  let i = 0
  for (const v of inputs) {
    lines.push(
      `@group(0) @binding(${i++}) var<storage, read> ${v.name}: array<${v.type ?? 'f32'}>;`,
    )
  }
  for (const v of outputs) {
    lines.push(
      `@group(0) @binding(${i++}) var<storage, read_write> ${v.name}: array<${v.type ?? 'f32'}>;`,
    )
  }
  if (uniform) {
    lines.push(`struct Params { ${uniform} }`)
    lines.push(`@group(0) @binding(${i++}) var<uniform> params: Params;`)
  }
  return lines.join('\n')
}

/**
 * A uniform block of named i32 scalars plus an optional `tab: array<vec4<i32>, n>` table.
 * Shapes go to kernels through uniforms rather than WGSL constants: constant trip counts make
 * LLVM (lavapipe) unroll nested loops and spend tens of seconds per pipeline, and uniforms
 * let one pipeline serve every layer shape.
 */
export class Params {
  /**
   * @param names i32 members
   * @param tabRows rows of the optional `tab: array<vec4<i32>, tabRows>` table
   * @param floats f32 members (after the i32 ones)
   */
  constructor(
    readonly names: readonly string[],
    readonly tabRows = 0,
    readonly floats: readonly string[] = [],
  ) {}

  private get scalars(): number {
    return Math.ceil((this.names.length + this.floats.length) / 4) * 4
  }

  /** WGSL struct members. */
  members(): string {
    const m = [...this.names.map((n) => `${n}: i32,`), ...this.floats.map((n) => `${n}: f32,`)]
    for (let i = this.names.length + this.floats.length; i < this.scalars; i++)
      m.push(`_pad${i}: i32,`)
    if (this.tabRows) m.push(`tab: array<vec4<i32>, ${this.tabRows}>,`)
    return m.join(' ')
  }

  /** `let name = params.name;` for every scalar. */
  lets(): string {
    return [...this.names, ...this.floats].map((n) => `let ${n} = params.${n};`).join(' ')
  }

  pack(values: Record<string, number>, tab?: number[]): ArrayBuffer {
    const buf = new ArrayBuffer((this.scalars + this.tabRows * 4) * 4)
    const ints = new Int32Array(buf)
    const fl = new Float32Array(buf)
    this.names.forEach((n, i) => {
      const v = values[n]
      if (v === undefined || !Number.isInteger(v) || Math.abs(v) > 0x7fffffff) {
        throw new Error(`WebGPU kernel parameter ${n} = ${v} is not an i32`)
      }
      ints[i] = v
    })
    this.floats.forEach((n, i) => {
      const v = values[n]
      if (v === undefined || !Number.isFinite(v)) {
        throw new Error(`WebGPU kernel parameter ${n} = ${v} is not a finite f32`)
      }
      fl[this.names.length + i] = v
    })
    if (tab) {
      if (tab.length > this.tabRows * 4) throw new Error('WebGPU kernel: parameter table too long')
      ints.set(tab, this.scalars)
    }
    return buf
  }
}

const codeCache = new Map<string, string>()

/**
 * The WGSL of a kernel template, generated once per `key` (kernel kind and template
 * parameters). Returning the same string object keeps the per-dispatch pipeline lookup cheap.
 */
export function memo(key: string, build: () => string): string {
  let c = codeCache.get(key)
  if (c === undefined) {
    c = build()
    codeCache.set(key, c)
  }
  return c
}

/** A WGSL unsigned literal. */
export function u(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new Error(`WebGPU kernel: ${n} is not a u32 constant`)
  }
  return `${n}u`
}

/** A WGSL f32 literal. */
export function f(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`WebGPU kernel: ${n} is not a finite f32 constant`)
  const s = String(Math.fround(n))
  return /[.eE]/.test(s) ? s : `${s}.0`
}

/** Lines `f(i)` for i in 0…n−1 (unrolled code generation). */
export function rep(n: number, fn: (i: number) => string, sep = '\n'): string {
  return Array.from({ length: n }, (_, i) => fn(i)).join(sep)
}

/** Wrap an output tensor info as a tracked TF.js tensor. */
export function toTensor<T extends tf.Tensor = tf.Tensor>(info: tf.TensorInfo): T {
  return tf.engine().makeTensorFromTensorInfo(info) as T
}
