/**
 * When the engine uses its fused typed-array kernels instead of chains of tf ops.
 *
 * The fused kernels read their inputs with `dataSync()` and compute forward and backward in
 * plain loops, which is far faster than TF.js's broadcasting elementwise kernels on the JS
 * CPU and WASM backends. On WebGPU (and tfjs-node) a synchronous read would stall the device,
 * so there the engine keeps the tf-op versions.
 *
 * `DSD_FUSED=0` in the environment turns the fused kernels off (for before/after comparisons);
 * {@link setFusedKernels} overrides both for tests.
 */
import { tf } from '../tf'

let forced: boolean | null = null

function envDisabled(): boolean {
  const env = typeof process !== 'undefined' ? process.env?.DSD_FUSED : undefined
  return env === '0' || env === 'false' || env === 'off'
}

const DISABLED = envDisabled()

/** Backends on which the fused typed-array kernels run. */
export const FUSED_BACKENDS: readonly string[] = ['cpu', 'wasm']

/** True when the active backend should use the fused typed-array kernels. */
export function useFused(): boolean {
  if (forced !== null) return forced && FUSED_BACKENDS.includes(tf.getBackend())
  return !DISABLED && FUSED_BACKENDS.includes(tf.getBackend())
}

/**
 * True when the engine's WebAssembly kernels (kernels/cpu) run the convolutions: on the `wasm`
 * backend (TF.js CPU tensors + kernels.wasm), unless the fused kernels are switched off.
 */
export function useWasmKernels(): boolean {
  return useFused() && tf.getBackend() === 'wasm'
}

/**
 * Force the fused kernels on (`true`, still only on cpu/wasm), off (`false`) or back to the
 * default (`null`). Returns the previous setting. For tests and benchmarks.
 */
export function setFusedKernels(on: boolean | null): boolean | null {
  const prev = forced
  forced = on
  return prev
}

/** Float32 values of `t` (the backing array on the cpu and wasm backends: never write to it). */
export function values(t: tf.Tensor): Float32Array {
  const v = t.dataSync()
  return v instanceof Float32Array ? v : Float32Array.from(v)
}
