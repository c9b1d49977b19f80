/**
 * Fused DSD loss terms for the CPU/WASM backends: one typed-array pass per term for the
 * forward (softmax, Dice and CE sums / both tempered softmaxes and the KL) and one for the
 * gradient w.r.t. the logits. Sums are accumulated in float64.
 *
 * DiceCE (MONAI 0.9, softmax, one-hot, background included, smooth s = 1e-5), N = b·n voxels:
 *   L = mean_{b,k}(1 − (2I + s)/(P + G + s)) − (1/N) Σ g·log p
 *   ∂L/∂p = −(2g/D − (2I + s)/D²)/(bK) with D = P + G + s, then through the softmax;
 *   the CE part gives (p·Σg − g)/N.
 * KL (τ² · voxel mean of Σ_k p_t (log p_t − log q), p_t = softmax(t/τ), q = softmax(s/τ)):
 *   ∂/∂s = τ²/N · (1/τ) · (q − p_t)
 *   ∂/∂t = τ²/N · (1/τ) · p_t (log p_t − log q − f),  f = the voxel's KL.
 */
import { tf } from '../tf'
import { useWasmKernels, values } from './dispatch'
import { diceBackward, diceForward, klBackward, klForward, LOSS_MAX_CLASSES } from './cpu/loss'

const SMOOTH = 1e-5

/** Integer class labels as an Int32Array (truncating floats, as a cast to int32 does). */
export function labelArray(labels: tf.Tensor): Int32Array {
  const v = labels.dataSync()
  if (v instanceof Int32Array) return v
  const out = new Int32Array(v.length)
  for (let i = 0; i < v.length; i++) out[i] = Math.trunc(Number(v[i]))
  return out
}

/** Log-softmax of row `o..o+k` of `x` (scaled by `scale`) into `out` (float64 math). */
function logSoftmaxRow(
  x: Float32Array,
  o: number,
  k: number,
  scale: number,
  out: Float64Array,
): void {
  let m = -Infinity
  for (let j = 0; j < k; j++) {
    const v = Math.fround(x[o + j]! * scale)
    out[j] = v
    if (v > m) m = v
  }
  let se = 0
  for (let j = 0; j < k; j++) se += Math.exp(out[j]! - m)
  const lse = m + Math.log(se)
  for (let j = 0; j < k; j++) out[j] = out[j]! - lse
}

/**
 * KL(teacher ‖ student) of voxel row `o` at temperature 1/invT: fills `lt`, `lq` with the
 * teacher's and the student's log-softmax (the gradient reuses them) and returns the sum.
 */
function klRow(
  tv: Float32Array,
  sv: Float32Array,
  o: number,
  k: number,
  invT: number,
  lt: Float64Array,
  lq: Float64Array,
): number {
  logSoftmaxRow(tv, o, k, invT, lt)
  logSoftmaxRow(sv, o, k, invT, lq)
  let kl = 0
  for (let j = 0; j < k; j++) kl += Math.exp(lt[j]!) * (lt[j]! - lq[j]!)
  return kl
}

/**
 * MONAI DiceCELoss of `logits [b, ..., K]` against integer `labels` (b·n entries, same voxel
 * order); labels outside [0, K) count as all-zero targets. Differentiable w.r.t. the logits.
 */
export function diceCEFused(logits: tf.Tensor, labels: Int32Array): tf.Scalar {
  const b = logits.shape[0]!
  const k = logits.shape[logits.rank - 1]!
  const shape = logits.shape
  if (useWasmKernels() && k <= LOSS_MAX_CLASSES) return diceCEWasm(logits, labels)
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    const total = xv.length / k
    const n = total / b
    const p = new Float32Array(xv.length)
    const inter = new Float64Array(b * k)
    const psum = new Float64Array(b * k)
    const gsum = new Float64Array(b * k)
    const row = new Float64Array(k)
    let ce = 0
    for (let bi = 0; bi < b; bi++) {
      const sk = bi * k
      for (let i = 0; i < n; i++) {
        const v = bi * n + i
        const o = v * k
        logSoftmaxRow(xv, o, k, 1, row)
        const lab = labels[v]!
        for (let j = 0; j < k; j++) {
          const pj = Math.exp(row[j]!)
          p[o + j] = pj
          psum[sk + j]! += pj
        }
        if (lab >= 0 && lab < k) {
          inter[sk + lab]! += p[o + lab]!
          gsum[sk + lab]! += 1
          ce -= row[lab]!
        }
      }
    }
    let dice = 0
    const denom = new Float64Array(b * k)
    for (let i = 0; i < b * k; i++) {
      denom[i] = psum[i]! + gsum[i]! + SMOOTH
      dice += 1 - (2 * inter[i]! + SMOOTH) / denom[i]!
    }
    const loss = dice / (b * k) + ce / total
    return {
      value: tf.scalar(loss),
      gradFunc: (dy: tf.Tensor) => {
        const up = dy.dataSync()[0]!
        const dx = new Float32Array(xv.length)
        const cDice = up / (b * k)
        const cCe = up / total
        // ∂dice/∂p without the target term: (2I + s)/D² per (sample, class)
        const a = new Float64Array(b * k)
        const gd = new Float64Array(b * k)
        for (let i = 0; i < b * k; i++) {
          a[i] = (2 * inter[i]! + SMOOTH) / (denom[i]! * denom[i]!)
          gd[i] = 2 / denom[i]!
        }
        const gp = new Float64Array(k)
        for (let bi = 0; bi < b; bi++) {
          const sk = bi * k
          for (let i = 0; i < n; i++) {
            const v = bi * n + i
            const o = v * k
            const lab = labels[v]!
            const hit = lab >= 0 && lab < k
            let dot = 0
            for (let j = 0; j < k; j++) {
              let g = a[sk + j]!
              if (hit && j === lab) g -= gd[sk + j]!
              gp[j] = g
              dot += p[o + j]! * g
            }
            const gs = hit ? 1 : 0
            for (let j = 0; j < k; j++) {
              const pj = p[o + j]!
              const ceg = pj * gs - (hit && j === lab ? 1 : 0)
              dx[o + j] = cDice * pj * (gp[j]! - dot) + cCe * ceg
            }
          }
        }
        return [tf.tensor(dx, shape)]
      },
    }
  })
  return f(logits) as tf.Scalar
}

/** {@link diceCEFused} on the WebAssembly kernels (kernels/cpu/loss.ts), every core. */
function diceCEWasm(logits: tf.Tensor, labels: Int32Array): tf.Scalar {
  const b = logits.shape[0]!
  const k = logits.shape[logits.rank - 1]!
  const shape = logits.shape
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xv = values(args[0] as tf.Tensor)
    const total = xv.length / k
    const { psum, inter, gsum, ce, probs } = diceForward(xv, labels, b, k)
    let dice = 0
    const denom = new Float64Array(b * k)
    for (let i = 0; i < b * k; i++) {
      denom[i] = psum[i]! + gsum[i]! + SMOOTH
      dice += 1 - (2 * inter[i]! + SMOOTH) / denom[i]!
    }
    return {
      value: tf.scalar(dice / (b * k) + ce / total),
      gradFunc: (dy: tf.Tensor) => {
        const up = dy.dataSync()[0]!
        const a = new Float64Array(b * k)
        const gd = new Float64Array(b * k)
        for (let i = 0; i < b * k; i++) {
          a[i] = (2 * inter[i]! + SMOOTH) / (denom[i]! * denom[i]!)
          gd[i] = 2 / denom[i]!
        }
        const dx = diceBackward(probs, labels, b, k, up / (b * k), up / total, a, gd)
        return [tf.tensor(dx, shape)]
      },
    }
  })
  return f(logits) as tf.Scalar
}

/**
 * τ²·KL(teacher ‖ student) with temperature τ, voxel mean of the class sum; gradients flow
 * into both the student and the teacher.
 */
export function klDistillFused(
  student: tf.Tensor,
  teacher: tf.Tensor,
  temperature: number,
): tf.Scalar {
  const k = teacher.shape[teacher.rank - 1]!
  const invT = Math.fround(1 / temperature)
  const t2 = Math.fround(temperature * temperature)
  const sShape = student.shape
  const tShape = teacher.shape
  if (useWasmKernels() && k <= LOSS_MAX_CLASSES) {
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const sv = values(args[0] as tf.Tensor)
      const tv = values(args[1] as tf.Tensor)
      const total = tv.length / k
      const fwd = klForward(sv, tv, k, invT)
      const loss = (fwd.sum / total) * t2
      return {
        value: tf.scalar(loss),
        gradFunc: (dy: tf.Tensor) => {
          const c = (dy.dataSync()[0]! * t2 * invT) / total
          const { ds, dt } = klBackward(fwd, k, c)
          return [tf.tensor(ds, sShape), tf.tensor(dt, tShape)]
        },
      }
    })
    return f(student, teacher) as tf.Scalar
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const sv = values(args[0] as tf.Tensor)
    const tv = values(args[1] as tf.Tensor)
    const total = tv.length / k
    const lt = new Float64Array(k)
    const lq = new Float64Array(k)
    let sum = 0
    for (let v = 0; v < total; v++) {
      const o = v * k
      sum += klRow(tv, sv, o, k, invT, lt, lq)
    }
    const loss = (sum / total) * t2
    return {
      value: tf.scalar(loss),
      gradFunc: (dy: tf.Tensor) => {
        const up = dy.dataSync()[0]!
        const c = (up * t2 * invT) / total
        const ds = new Float32Array(sv.length)
        const dt = new Float32Array(tv.length)
        for (let v = 0; v < total; v++) {
          const o = v * k
          const kl = klRow(tv, sv, o, k, invT, lt, lq)
          for (let j = 0; j < k; j++) {
            const pt = Math.exp(lt[j]!)
            ds[o + j] = c * (Math.exp(lq[j]!) - pt)
            dt[o + j] = c * pt * (lt[j]! - lq[j]! - kl)
          }
        }
        return [tf.tensor(ds, sShape), tf.tensor(dt, tShape)]
      },
    }
  })
  return f(student, teacher) as tf.Scalar
}
