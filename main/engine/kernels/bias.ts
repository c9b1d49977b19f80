/**
 * Fused per-channel bias add for channels-last tensors: `x [n, c] + b [c]` in one loop, the
 * bias gradient as column sums (float64 accumulation). CPU/WASM only.
 */
import { tf } from '../tf'
import { values } from './dispatch'

/** `x2 [n, c] + b [c]` broadcast over rows; differentiable in both. */
export function addRowVectorFused(x2: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D {
  const [n, c] = x2.shape
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    const bv = values(args[1] as tf.Tensor)
    const y = new Float32Array(xv.length)
    for (let i = 0; i < n; i++) {
      const o = i * c
      for (let ch = 0; ch < c; ch++) y[o + ch] = xv[o + ch]! + bv[ch]!
    }
    return {
      value: tf.tensor2d(y, [n, c]),
      gradFunc: (dy: tf.Tensor2D) => [tf.clone(dy), tf.tensor1d(columnSums(values(dy), n, c))],
    }
  })
  return f(x2, bias) as tf.Tensor2D
}

/** Column sums of a row-major `[n, c]` array (float64 accumulation). */
export function columnSums(v: Float32Array, n: number, c: number): Float32Array {
  const acc = new Float64Array(c)
  for (let i = 0; i < n; i++) {
    const o = i * c
    for (let ch = 0; ch < c; ch++) acc[ch]! += v[o + ch]!
  }
  return Float32Array.from(acc)
}
