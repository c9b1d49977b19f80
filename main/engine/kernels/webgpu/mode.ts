/**
 * When the engine's WGSL kernels replace TF.js's stock WebGPU kernels, and which convolution
 * variant runs.
 *
 * - On the `webgpu` backend the engine's kernels are on by default. `DSD_KERNELS=stock` in the
 *   environment selects TensorFlow.js's own kernels (for before/after comparisons);
 *   {@link setWebgpuKernels} overrides both in code (tests, benchmarks).
 * - Convolution variant: `direct` (register tiles, no workgroup memory: the fast one on CPU
 *   adapters such as Mesa lavapipe) or `tiled` (workgroup-memory tiles: discrete GPUs). The
 *   adapter decides unless `DSD_WEBGPU_CONV=direct|tiled` or {@link setConvVariant} says.
 */
import { tf } from '../../tf'

let forced: boolean | null = null
let forcedVariant: ConvVariant | null = null

export type ConvVariant = 'direct' | 'tiled'

function env(name: string): string | undefined {
  return typeof process !== 'undefined' ? process.env?.[name] : undefined
}

/** True when `DSD_KERNELS=stock` asks for TensorFlow.js's own kernels. */
export function stockRequested(): boolean {
  const v = env('DSD_KERNELS')?.trim().toLowerCase()
  return v === 'stock' || v === 'tf' || v === 'off'
}

/** True when the active backend is `webgpu` and the engine's WGSL kernels are enabled. */
export function useWebgpuKernels(): boolean {
  if (tf.getBackend() !== 'webgpu') return false
  if (forced !== null) return forced
  return !stockRequested()
}

/** Force the WGSL kernels on/off, or back to the default (`null`). Returns the previous setting. */
export function setWebgpuKernels(on: boolean | null): boolean | null {
  const prev = forced
  forced = on
  return prev
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|softpipe|warp/i

/** True when the active WebGPU device runs on the CPU (lavapipe, SwiftShader, WARP). */
export function softwareAdapter(): boolean {
  const dev = (tf.backend() as unknown as { device?: { adapterInfo?: Record<string, unknown> } })
    .device
  const info = dev?.adapterInfo
  if (!info) return false
  const text = [info.vendor, info.architecture, info.device, info.description].join(' ')
  return SOFTWARE.test(text)
}

/** The convolution kernels to use on the active device. */
export function convVariant(): ConvVariant {
  if (forcedVariant) return forcedVariant
  const v = env('DSD_WEBGPU_CONV')?.trim().toLowerCase()
  if (v === 'direct' || v === 'tiled') return v
  return softwareAdapter() ? 'direct' : 'tiled'
}

/** Force a convolution variant (`null`: back to the default). Returns the previous setting. */
export function setConvVariant(v: ConvVariant | null): ConvVariant | null {
  const prev = forcedVariant
  forcedVariant = v
  return prev
}

/**
 * Arithmetic precision of the engine's WGSL kernels: `f32` (the default and the reference) or
 * `f16` (operands rounded to half precision where the device offers `shader-f16`, f32
 * accumulation; the training loop then applies dynamic loss scaling). `DSD_PRECISION=f16`
 * in the environment or {@link setWebgpuPrecision} selects it; it falls back to `f32` on a
 * device without `shader-f16`.
 */
export type WebgpuPrecision = 'f32' | 'f16'

let forcedPrecision: WebgpuPrecision | null = null

/** The precision asked for (by code, else `DSD_PRECISION`), before checking the device. */
export function requestedPrecision(): WebgpuPrecision {
  if (forcedPrecision) return forcedPrecision
  const v = env('DSD_PRECISION')?.trim().toLowerCase()
  return v === 'f16' || v === 'fp16' || v === 'half' ? 'f16' : 'f32'
}

/** The features of the active WebGPU device (empty off WebGPU). */
export function deviceFeatures(): ReadonlySet<string> {
  if (tf.getBackend() !== 'webgpu') return new Set()
  const dev = (tf.backend() as unknown as { device?: { features?: ReadonlySet<string> } }).device
  return dev?.features ?? new Set()
}

/** The precision the WGSL kernels run at on the active device. */
export function webgpuPrecision(): WebgpuPrecision {
  return requestedPrecision() === 'f16' && deviceFeatures().has('shader-f16') ? 'f16' : 'f32'
}

/** Force a precision (`null`: back to `DSD_PRECISION`/the default). Returns the previous one. */
export function setWebgpuPrecision(p: WebgpuPrecision | null): WebgpuPrecision | null {
  const prev = forcedPrecision
  forcedPrecision = p
  return prev
}

/** The precision asked for, the one the kernels run at, and why they differ. */
export interface PrecisionStatus {
  requested: WebgpuPrecision
  effective: WebgpuPrecision
  /** Why `effective` falls back to f32 (absent when it is what was asked). */
  reason?: string
}

/** {@link requestedPrecision} against what the active backend and device can do. */
export function precisionStatus(): PrecisionStatus {
  const requested = requestedPrecision()
  if (requested === 'f32') return { requested, effective: 'f32' }
  const fallback = (reason: string): PrecisionStatus => ({ requested, effective: 'f32', reason })
  const backend = tf.getBackend()
  if (backend !== 'webgpu') {
    return fallback(`the ${backend} backend computes in float32; f16 needs the webgpu backend`)
  }
  if (!useWebgpuKernels()) {
    return fallback("TensorFlow.js's stock kernels (DSD_KERNELS=stock) compute in float32")
  }
  if (!deviceFeatures().has('shader-f16')) {
    return fallback('this WebGPU device does not offer shader-f16')
  }
  return { requested, effective: 'f16' }
}
