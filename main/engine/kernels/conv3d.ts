/**
 * Differentiable convolutions on the engine's WebAssembly CPU kernels (kernels/cpu), for the
 * `wasm` backend: each forward and gradient is one call into kernels.wasm on every core, on
 * the tensors' own typed arrays (no im2col matrix, no pad or slice ops).
 *
 *   conv3dFused:   y = conv3d(x, W) (+ b)      dx, dW (, db) by the kernels
 *   convT2Fused:   y = convT(x, W, 2×2×2, s 2) (+ b)
 */
import { tf } from '../tf'
import { values } from './dispatch'
import {
  conv3dFilterGrad,
  conv3dForward,
  conv3dInputGrad,
  convOutLen,
  convT2FilterGrad,
  convT2Forward,
  convT2InputGrad,
  columnSumsWasm,
  type ConvGeometry,
  type ConvT2Geometry,
  type V3,
} from './cpu/conv'

type T5 = tf.Tensor5D

/**
 * `conv3d(x [b, d, h, w, ci], w [kd, kh, kw, ci, co])` (+ `bias [co]`) with stride `s` and
 * per-axis `[front, back]` zero padding; differentiable in `x`, `w` and `bias`.
 */
export function conv3dFused(
  x: T5,
  filter: T5,
  s: V3,
  pads: [V3, V3],
  bias?: tf.Tensor1D | null,
): T5 {
  const [B, D, H, W, CI] = x.shape
  const [KD, KH, KW, FCI, CO] = filter.shape
  if (FCI !== CI) {
    throw new Error(`conv3d: input has ${CI} channels but filter [${filter.shape}] expects ${FCI}`)
  }
  const [front, back] = pads
  const out: V3 = [
    convOutLen(D, KD, s[0], front[0], back[0]),
    convOutLen(H, KH, s[1], front[1], back[1]),
    convOutLen(W, KW, s[2], front[2], back[2]),
  ]
  const g: ConvGeometry = {
    batch: B,
    in: [D, H, W],
    inChannels: CI,
    kernel: [KD, KH, KW],
    outChannels: CO,
    stride: s,
    padFront: front,
    out,
  }
  const xShape = x.shape
  const wShape = filter.shape
  const yShape: [number, number, number, number, number] = [B, ...out, CO]
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    const wv = values(args[1] as tf.Tensor)
    const bv = bias ? values(args[2] as tf.Tensor) : null
    const y = conv3dForward(xv, wv, g, bv)
    return {
      value: tf.tensor5d(y, yShape),
      gradFunc: (dy: tf.Tensor) => {
        const g2 = values(dy)
        const grads: tf.Tensor[] = [
          tf.tensor5d(conv3dInputGrad(g2, wv, g), xShape),
          tf.tensor5d(conv3dFilterGrad(xv, g2, g), wShape),
        ]
        if (bias) grads.push(tf.tensor1d(columnSumsWasm(g2, CO)))
        return grads
      },
    }
  })
  return (bias ? f(x, filter, bias) : f(x, filter)) as T5
}

/**
 * 2×2×2 stride-2 transposed convolution `x [b, d, h, w, ci]` → `[b, 2d, 2h, 2w, co]` with
 * `filter [2, 2, 2, co, ci]` (+ `bias [co]`); differentiable in all inputs.
 */
export function convT2Fused(x: T5, filter: T5, bias?: tf.Tensor1D | null): T5 {
  const [B, D, H, W, CI] = x.shape
  const CO = filter.shape[3]
  if (filter.shape[4] !== CI) {
    throw new Error(
      `convTranspose3dK2S2: input has ${CI} channels but filter [${filter.shape}] expects ${filter.shape[4]}`,
    )
  }
  const g: ConvT2Geometry = { batch: B, in: [D, H, W], inChannels: CI, outChannels: CO }
  const xShape = x.shape
  const wShape = filter.shape
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    const wv = values(args[1] as tf.Tensor)
    const bv = bias ? values(args[2] as tf.Tensor) : null
    const y = convT2Forward(xv, wv, g, bv)
    return {
      value: tf.tensor5d(y, [B, 2 * D, 2 * H, 2 * W, CO]),
      gradFunc: (dy: tf.Tensor) => {
        const g2 = values(dy)
        const grads: tf.Tensor[] = [
          tf.tensor5d(convT2InputGrad(g2, wv, g), xShape),
          tf.tensor5d(convT2FilterGrad(xv, g2, g), wShape),
        ]
        if (bias) grads.push(tf.tensor1d(columnSumsWasm(g2, CO)))
        return grads
      },
    }
  })
  return (bias ? f(x, filter, bias) : f(x, filter)) as T5
}
