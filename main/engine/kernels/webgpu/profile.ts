/**
 * Measurement helpers for `dsd bench` on WebGPU: the peak of live GPU buffer bytes (tracked at
 * the backend's buffer pool, so it counts every tensor, kernel scratch buffer and uniform
 * block, not only what `tf.profile` sees) and a per-kernel GPU time profile.
 *
 * Kernel times come from WebGPU timestamp queries (`timestamp-query`, offered by Mesa
 * lavapipe and by NVIDIA's Vulkan driver through Dawn): while `tf.profile` runs, every
 * dispatch — TF.js's own programs and the engine's kernels — gets its own compute pass with
 * a begin/end timestamp. The numbers include each pass's fixed cost, so the profile's total
 * is larger than an unprofiled step; use it to rank kernels, not as the step time.
 */
import { tf } from '../../tf'
import type { WebGPUBackendLike } from './runner'

interface Pool {
  acquireBuffer(size: number, usage: number, mapped?: boolean, reuse?: boolean): GPUBuffer
  releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void
  numBytesUsed: number
  numBytesAllocated: number
}

const tracked = new WeakMap<object, { peak: number }>()

/**
 * Start tracking the peak of live GPU buffer bytes on the active WebGPU backend (idempotent)
 * and reset the peak to the current use. Returns a reader: `{ peak, inUse, pooled }` bytes.
 */
export function trackGpuMemory(): () => {
  peakBytes: number
  inUseBytes: number
  pooledBytes: number
} {
  const backend = tf.backend() as unknown as Partial<WebGPUBackendLike>
  const pool = backend.bufferManager as unknown as Pool | undefined
  if (!pool) throw new Error('trackGpuMemory: the active backend is not webgpu')
  let state = tracked.get(pool)
  if (!state) {
    const s = { peak: pool.numBytesUsed }
    state = s
    tracked.set(pool, s)
    const acquire = pool.acquireBuffer.bind(pool)
    pool.acquireBuffer = (size, usage, mapped, reuse) => {
      const b = acquire(size, usage, mapped, reuse)
      if (pool.numBytesUsed > s.peak) s.peak = pool.numBytesUsed
      return b
    }
  }
  state.peak = pool.numBytesUsed
  const st = state
  return () => ({
    peakBytes: st.peak,
    inUseBytes: pool.numBytesUsed,
    pooledBytes: pool.numBytesAllocated,
  })
}

/** One row of a kernel profile. */
export interface ProfileRow {
  name: string
  calls: number
  ms: number
}

export interface KernelProfile {
  /**
   * How kernel times were taken: `timestamp-query` (WebGPU with the feature), `none` (WebGPU
   * without it: times are 0), `backend-clock` (other backends' own per-kernel timer).
   */
  timer: 'timestamp-query' | 'none' | 'backend-clock'
  /** GPU time per TF.js kernel (engine kernels are named `Dsd…`), most expensive first. */
  byKernel: ProfileRow[]
  /** GPU time per dispatch kind (engine dispatches such as `conv3d.dw`, TF.js program names). */
  byDispatch: ProfileRow[]
  /** Sum of all kernel times (ms). */
  totalMs: number
  /** Peak live tensor bytes seen by `tf.profile`. */
  peakTensorBytes: number
}

function add(map: Map<string, ProfileRow>, name: string, ms: number): void {
  const r = map.get(name) ?? { name, calls: 0, ms: 0 }
  r.calls++
  r.ms += ms
  map.set(name, r)
}

const sorted = (m: Map<string, ProfileRow>) =>
  [...m.values()].map((r) => ({ ...r, ms: Number(r.ms.toFixed(3)) })).sort((a, b) => b.ms - a.ms)

/** Run `f` once under `tf.profile` and sum the GPU time per kernel and per dispatch kind. */
export async function profileKernels(f: () => Promise<unknown>): Promise<KernelProfile> {
  const backend = tf.backend() as unknown as Partial<WebGPUBackendLike>
  const timer =
    tf.getBackend() !== 'webgpu'
      ? 'backend-clock'
      : backend.supportTimestampQuery
        ? 'timestamp-query'
        : 'none'
  const info = await tf.profile(async () => {
    await f()
  })
  const byKernel = new Map<string, ProfileRow>()
  const byDispatch = new Map<string, ProfileRow>()
  let totalMs = 0
  for (const k of info.kernels) {
    const ms = Number(await k.kernelTimeMs) || 0
    totalMs += ms
    add(byKernel, k.name, ms)
    // `extraInfo` lists "name: ms" for each dispatch the kernel recorded
    const extra = String((await (k.extraInfo as unknown as Promise<string> | string)) ?? '')
    for (const part of extra.split(', ')) {
      const m = /^(.*): ([\d.eE+-]+)$/.exec(part.trim())
      if (m) add(byDispatch, m[1]!, Number(m[2]))
    }
  }
  return {
    timer,
    byKernel: sorted(byKernel),
    byDispatch: sorted(byDispatch),
    totalMs: Number(totalMs.toFixed(3)),
    peakTensorBytes: info.peakBytes,
  }
}
