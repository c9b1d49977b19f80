/**
 * Fused instance normalisation (+ optional LeakyReLU) of channels-last `[b, d, h, w, c]`
 * volumes: one pass for the statistics, one for the output; the backward is the closed form
 *
 *   dx = r · (g − mean(g) − x̂ · mean(g · x̂)),   g = dy · (x̂ > 0 ? 1 : slope)
 *
 * per sample and channel (r = 1/√(var + eps), x̂ the normalised input). Statistics are
 * accumulated in float64, so results equal the tf-op version to float32 rounding.
 */
import { tf } from '../tf'
import { useWasmKernels, values } from './dispatch'
import {
  addLeakyForward,
  instanceNormBackward,
  instanceNormForward,
  leakyForward,
  leakyGrad,
  NORM_MAX_CHANNELS,
} from './cpu/norm'

type T5 = tf.Tensor5D

/**
 * Instance norm (no affine, biased variance) followed by LeakyReLU with `slope` when
 * `slope` is a number (`null`: no activation). Differentiable; CPU/WASM only (typed arrays).
 */
export function instanceNormActFused(x: T5, eps: number, slope: number | null): T5 {
  const [b, d, h, w, c] = x.shape
  const s = d * h * w
  if (useWasmKernels() && c <= NORM_MAX_CHANNELS) return instanceNormActWasm(x, eps, slope)
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    const xhat = new Float32Array(xv.length)
    const rstd = new Float64Array(b * c)
    const out = slope === null ? xhat : new Float32Array(xv.length)
    const sum = new Float64Array(c)
    const sq = new Float64Array(c)
    for (let bi = 0; bi < b; bi++) {
      const base = bi * s * c
      sum.fill(0)
      for (let i = 0; i < s; i++) {
        const o = base + i * c
        for (let ch = 0; ch < c; ch++) sum[ch]! += xv[o + ch]!
      }
      for (let ch = 0; ch < c; ch++) sum[ch] = sum[ch]! / s
      sq.fill(0)
      for (let i = 0; i < s; i++) {
        const o = base + i * c
        for (let ch = 0; ch < c; ch++) {
          const v = xv[o + ch]! - sum[ch]!
          sq[ch]! += v * v
        }
      }
      for (let ch = 0; ch < c; ch++) rstd[bi * c + ch] = 1 / Math.sqrt(sq[ch]! / s + eps)
      const r = rstd.subarray(bi * c, bi * c + c)
      for (let i = 0; i < s; i++) {
        const o = base + i * c
        for (let ch = 0; ch < c; ch++) xhat[o + ch] = (xv[o + ch]! - sum[ch]!) * r[ch]!
      }
      if (slope !== null) {
        for (let i = base, e = base + s * c; i < e; i++) {
          const v = xhat[i]!
          out[i] = v > 0 ? v : v * slope
        }
      }
    }
    return {
      value: tf.tensor5d(out, [b, d, h, w, c]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy)
        const dx = new Float32Array(g.length)
        const mg = new Float64Array(c)
        const mgx = new Float64Array(c)
        for (let bi = 0; bi < b; bi++) {
          const base = bi * s * c
          mg.fill(0)
          mgx.fill(0)
          for (let i = 0; i < s; i++) {
            const o = base + i * c
            for (let ch = 0; ch < c; ch++) {
              const xh = xhat[o + ch]!
              let gv = g[o + ch]!
              if (slope !== null && !(xh > 0)) gv *= slope
              dx[o + ch] = gv
              mg[ch]! += gv
              mgx[ch]! += gv * xh
            }
          }
          for (let ch = 0; ch < c; ch++) {
            mg[ch] = mg[ch]! / s
            mgx[ch] = mgx[ch]! / s
          }
          for (let i = 0; i < s; i++) {
            const o = base + i * c
            for (let ch = 0; ch < c; ch++) {
              dx[o + ch] = rstd[bi * c + ch]! * (dx[o + ch]! - mg[ch]! - xhat[o + ch]! * mgx[ch]!)
            }
          }
        }
        return [tf.tensor5d(dx, [b, d, h, w, c])]
      },
    }
  })
  return f(x) as T5
}

/** {@link instanceNormActFused} on the WebAssembly kernels (kernels/cpu/norm.ts), every core. */
function instanceNormActWasm(x: T5, eps: number, slope: number | null): T5 {
  const [b, d, h, w, c] = x.shape
  const s = d * h * w
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    const { y, stats } = instanceNormForward(xv, b, s, c, eps, slope)
    return {
      value: tf.tensor5d(y, [b, d, h, w, c]),
      gradFunc: (dy: tf.Tensor) => [
        tf.tensor5d(instanceNormBackward(xv, values(dy), stats, b, s, c, slope), [b, d, h, w, c]),
      ],
    }
  })
  return f(x) as T5
}

/**
 * LeakyReLU of any tensor in one typed-array pass (forward and backward); CPU/WASM only.
 * The gradient at 0 uses `slope`, as `tf.leakyRelu`'s does.
 */
export function leakyReluFused<R extends tf.Tensor>(x: R, slope: number): R {
  const shape = x.shape
  if (useWasmKernels() && slope >= 0) {
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const y = leakyForward(values(args[0] as tf.Tensor), slope)
      return {
        value: tf.tensor(y, shape),
        gradFunc: (dy: tf.Tensor) => [tf.tensor(leakyGrad(y, values(dy), slope), shape)],
      }
    })
    return f(x) as R
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    return {
      value: tf.tensor(leakyJs(xv, slope), shape),
      gradFunc: (dy: tf.Tensor) => [tf.tensor(leakyGradJs(xv, values(dy), slope), shape)],
    }
  })
  return f(x) as R
}

/** LeakyReLU of `pre` in JavaScript (the fallback of the wasm kernel). */
function leakyJs(pre: Float32Array, slope: number): Float32Array {
  const y = new Float32Array(pre.length)
  for (let i = 0; i < pre.length; i++) {
    const v = pre[i]!
    y[i] = v > 0 ? v : v * slope
  }
  return y
}

/** The gradient of LeakyReLU at `pre` (the slope at 0) in JavaScript. */
function leakyGradJs(pre: Float32Array, g: Float32Array, slope: number): Float32Array {
  const dx = new Float32Array(g.length)
  for (let i = 0; i < g.length; i++) dx[i] = pre[i]! > 0 ? g[i]! : g[i]! * slope
  return dx
}

/**
 * Residual join `leakyRelu(a + b)` in one pass (forward and backward); CPU/WASM only.
 */
export function addLeakyReluFused<R extends tf.Tensor>(a: R, bT: tf.Tensor, slope: number): R {
  const shape = a.shape
  if (useWasmKernels() && slope >= 0) {
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const y = addLeakyForward(values(args[0] as tf.Tensor), values(args[1] as tf.Tensor), slope)
      return {
        value: tf.tensor(y, shape),
        gradFunc: (dy: tf.Tensor) => {
          const dx = tf.tensor(leakyGrad(y, values(dy), slope), shape)
          return [dx, tf.clone(dx)]
        },
      }
    })
    return f(a, bT) as R
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const av = values(args[0] as tf.Tensor)
    const bv = values(args[1] as tf.Tensor)
    const sum = new Float32Array(av.length)
    for (let i = 0; i < av.length; i++) sum[i] = av[i]! + bv[i]!
    return {
      value: tf.tensor(leakyJs(sum, slope), shape),
      gradFunc: (dy: tf.Tensor) => {
        const dx = tf.tensor(leakyGradJs(sum, values(dy), slope), shape)
        return [dx, tf.clone(dx)]
      },
    }
  })
  return f(a, bT) as R
}
