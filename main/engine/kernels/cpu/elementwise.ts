/**
 * Faster TF.js CPU kernels for the `wasm` backend's elementwise binary ops (Add, Sub,
 * Multiply, RealDiv) on float32: a plain loop when both shapes are equal or one side is a
 * single value. TF.js's CPU version indexes a scalar operand through its generic broadcast
 * path (an index-to-coordinates conversion and array allocations per element), which made
 * AdamW's `m·β1`-style updates one of the larger costs of a small-network step. Results are
 * the same float32 values (each op is computed in double and rounded, as the CPU kernels do);
 * every other case falls through to the CPU kernel.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu'
import { tf } from '../../tf'

type F = Float32Array
interface Loops {
  same(a: F, b: F, o: F): void
  left(a: F, s: number, o: F): void
  right(s: number, b: F, o: F): void
}

// One loop per op and operand kind (a shared loop taking the op as a callback would not inline).
const LOOPS: Record<string, Loops> = {
  Add: {
    same: (a, b, o) => {
      for (let i = 0; i < o.length; i++) o[i] = a[i]! + b[i]!
    },
    left: (a, s, o) => {
      for (let i = 0; i < o.length; i++) o[i] = a[i]! + s
    },
    right: (s, b, o) => {
      for (let i = 0; i < o.length; i++) o[i] = s + b[i]!
    },
  },
  Sub: {
    same: (a, b, o) => {
      for (let i = 0; i < o.length; i++) o[i] = a[i]! - b[i]!
    },
    left: (a, s, o) => {
      for (let i = 0; i < o.length; i++) o[i] = a[i]! - s
    },
    right: (s, b, o) => {
      for (let i = 0; i < o.length; i++) o[i] = s - b[i]!
    },
  },
  Multiply: {
    same: (a, b, o) => {
      for (let i = 0; i < o.length; i++) o[i] = a[i]! * b[i]!
    },
    left: (a, s, o) => {
      for (let i = 0; i < o.length; i++) o[i] = a[i]! * s
    },
    right: (s, b, o) => {
      for (let i = 0; i < o.length; i++) o[i] = s * b[i]!
    },
  },
  RealDiv: {
    same: (a, b, o) => {
      for (let i = 0; i < o.length; i++) o[i] = a[i]! / b[i]!
    },
    left: (a, s, o) => {
      for (let i = 0; i < o.length; i++) o[i] = a[i]! / s
    },
    right: (s, b, o) => {
      for (let i = 0; i < o.length; i++) o[i] = s / b[i]!
    },
  },
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i])
}

function fastBinary(loops: Loops, fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo }
    if (a.dtype === 'float32' && b.dtype === 'float32') {
      const backend = args.backend as MathBackendCPU
      const av = backend.data.get(a.dataId).values as F
      const bv = backend.data.get(b.dataId).values as F
      if (sameShape(a.shape, b.shape)) {
        const out = new Float32Array(av.length)
        loops.same(av, bv, out)
        return backend.makeTensorInfo(a.shape, 'float32', out)
      }
      if (bv.length === 1 && b.shape.length <= a.shape.length) {
        const out = new Float32Array(av.length)
        loops.left(av, bv[0]!, out)
        return backend.makeTensorInfo(a.shape, 'float32', out)
      }
      if (av.length === 1 && a.shape.length <= b.shape.length) {
        const out = new Float32Array(bv.length)
        loops.right(av[0]!, bv, out)
        return backend.makeTensorInfo(b.shape, 'float32', out)
      }
    }
    return fallback(args)
  }
}

/** Register the fast binary kernels for `backendName` (after the CPU kernels were copied to it). */
export function registerFastElementwise(backendName: string): void {
  for (const [name, loops] of Object.entries(LOOPS)) {
    const cpu = tf.getKernel(name, 'cpu')
    if (!cpu) continue
    tf.unregisterKernel(name, backendName)
    tf.registerKernel({
      kernelName: name,
      backendName,
      kernelFunc: fastBinary(loops, cpu.kernelFunc),
    })
  }
}
