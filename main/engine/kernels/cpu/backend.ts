/**
 * The engine's `wasm` backend: TF.js's CPU backend (tensors are JavaScript typed arrays, so
 * the model is not confined to one 4 GB WebAssembly heap) registered under the name `wasm`,
 * with the engine's WebAssembly SIMD kernels (kernels.c, on every core) doing the heavy
 * work: convolutions and their gradients, transposed convolutions, instance norm, the DSD
 * loss terms (see ops.ts and kernels/dispatch.ts). Every other op runs TF.js's CPU kernels.
 *
 * This replaces `@tensorflow/tfjs-backend-wasm`, whose tensors all live in its single wasm32
 * heap (the reference network at 2 × 64³ fails with "offset is out of bounds"), whose threads
 * are off under Node, and whose convolutions are far slower than its matrix multiply.
 */
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu'
import { tf } from '../../tf'
import { registerFastElementwise } from './elementwise'
import { cpuRuntime } from './runtime'

/** The TF.js registry name of the backend. */
export const WASM_BACKEND = 'wasm'

class DsdWasmBackend extends MathBackendCPU {
  constructor() {
    super()
    // no "install tfjs-node" banner: the backend ladder reports the choice
    ;(this as unknown as { firstUse: boolean }).firstUse = false
  }
}

/**
 * Register the backend (once per thread) and start the kernel runtime. Returns a device
 * description; throws when WebAssembly threads or SIMD are not available here.
 */
export function registerWasmBackend(): string {
  const rt = cpuRuntime() // compiles kernels.wasm: fails here if SIMD/threads are missing
  if (!tf.findBackendFactory(WASM_BACKEND)) {
    const kernels = tf.getKernelsForBackend('cpu')
    if (kernels.length === 0) throw new Error('the TF.js CPU kernels are not registered')
    tf.registerBackend(WASM_BACKEND, () => new DsdWasmBackend(), 0)
    for (const k of kernels) tf.registerKernel({ ...k, backendName: WASM_BACKEND })
    registerFastElementwise(WASM_BACKEND)
  }
  return `WebAssembly SIMD, ${rt.threads} thread${rt.threads === 1 ? '' : 's'} (DSD kernels)`
}
