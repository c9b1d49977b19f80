/**
 * 3D convolution for the WASM backend as patches × filter on XNNPACK's matrix multiply
 * (≈ 5× faster than the WASM Conv3D kernel, and it replaces the forward-convolution gradient
 * workaround for WASM's broken Conv3DBackprop* kernels):
 *
 *   y = im2col(x) · W,   dW = im2col(x)ᵀ · dy,   dx = col2im(dy · Wᵀ)
 *
 * Patches are built in JS with explicit zero padding (no PadV2 / Slice kernels) and rebuilt
 * in the backward instead of being kept. The patch gradient is scattered back in float64.
 * On the JS CPU backend TF.js's matMul is no faster than its own Conv3D, so the engine keeps
 * `tf.conv3d` there (direct typed-array loops measured slower as well).
 */
import { tf } from '../tf'
import { values } from './dispatch'

type T5 = tf.Tensor5D
type V3 = [number, number, number]

/** Output size per axis for input `n`, kernel `k`, stride `s`, front pad `p` and back pad `q`. */
function outLen(n: number, k: number, s: number, p: number, q: number): number {
  return Math.floor((n + p + q - k) / s) + 1
}

/**
 * `conv3d(x [b, d, h, w, ci], w [kd, kh, kw, ci, co])` with stride `s` and per-axis
 * `[front, back]` zero padding; differentiable in `x` and `w`.
 */
export function conv3dFused(x: T5, filter: T5, s: V3, pads: [V3, V3]): T5 {
  const [B, D, H, W, CI] = x.shape
  const [KD, KH, KW, , CO] = filter.shape
  const [front, back] = pads
  const OD = outLen(D, KD, s[0], front[0], back[0])
  const OH = outLen(H, KH, s[1], front[1], back[1])
  const OW = outLen(W, KW, s[2], front[2], back[2])
  const [SD, SH, SW] = s
  const [PD, PH, PW] = front
  const xShape = x.shape
  const wShape = filter.shape

  const K = KD * KH * KW * CI
  const M = B * OD * OH * OW

  /** Zero-padded patches `[M, K]` (row m = output voxel, column = (kd, kh, kw, ci)). */
  const im2col = (xv: Float32Array): Float32Array => {
    const cols = new Float32Array(M * K)
    let m = 0
    for (let b = 0; b < B; b++) {
      for (let od = 0; od < OD; od++) {
        for (let oh = 0; oh < OH; oh++) {
          for (let ow = 0; ow < OW; ow++, m++) {
            let c = m * K
            for (let kd = 0; kd < KD; kd++) {
              const id = od * SD - PD + kd
              for (let kh = 0; kh < KH; kh++) {
                const ih = oh * SH - PH + kh
                for (let kw = 0; kw < KW; kw++, c += CI) {
                  const iw = ow * SW - PW + kw
                  if (id < 0 || id >= D || ih < 0 || ih >= H || iw < 0 || iw >= W) continue
                  const xo = (((b * D + id) * H + ih) * W + iw) * CI
                  for (let ci = 0; ci < CI; ci++) cols[c + ci] = xv[xo + ci]!
                }
              }
            }
          }
        }
      }
    }
    return cols
  }

  /** Scatter-add `[M, K]` patch gradients back onto the input grid (float64). */
  const col2im = (dcols: Float32Array): Float32Array => {
    const dx = new Float64Array(B * D * H * W * CI)
    let m = 0
    for (let b = 0; b < B; b++) {
      for (let od = 0; od < OD; od++) {
        for (let oh = 0; oh < OH; oh++) {
          for (let ow = 0; ow < OW; ow++, m++) {
            let c = m * K
            for (let kd = 0; kd < KD; kd++) {
              const id = od * SD - PD + kd
              for (let kh = 0; kh < KH; kh++) {
                const ih = oh * SH - PH + kh
                for (let kw = 0; kw < KW; kw++, c += CI) {
                  const iw = ow * SW - PW + kw
                  if (id < 0 || id >= D || ih < 0 || ih >= H || iw < 0 || iw >= W) continue
                  const xo = (((b * D + id) * H + ih) * W + iw) * CI
                  for (let ci = 0; ci < CI; ci++) dx[xo + ci]! += dcols[c + ci]!
                }
              }
            }
          }
        }
      }
    }
    return Float32Array.from(dx)
  }

  // WASM: patches × filter on XNNPACK's matrix multiply
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    const w2 = tf.reshape(args[1] as tf.Tensor, [K, CO]) as tf.Tensor2D
    const y = tf.tidy(() =>
      tf.reshape(tf.matMul(tf.tensor2d(im2col(xv), [M, K]), w2), [B, OD, OH, OW, CO]),
    )
    return {
      value: y as T5,
      gradFunc: (dy: tf.Tensor) =>
        tf.tidy(() => {
          const g = tf.reshape(dy, [M, CO]) as tf.Tensor2D
          const cols = tf.tensor2d(im2col(xv), [M, K])
          const dw = tf.reshape(tf.matMul(cols, g, true, false), wShape)
          const dcols = tf.matMul(g, tf.transpose(w2))
          const dx = tf.tensor5d(col2im(values(dcols)), xShape)
          return [dx, dw]
        }),
    }
  })
  return f(x, filter) as T5
}
