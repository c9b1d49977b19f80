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
