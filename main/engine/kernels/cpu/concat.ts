/**
 * Concatenation along the last (channel) axis in one typed-array pass, with a gradient that
 * splits the rows back in one pass. TF.js's own gradient of `concat` is a `slice` per input,
 * which on the CPU backend takes a generic per-element path for column slices (it was the
 * largest single cost of a small-network step on the `wasm` backend).
 */
import { tf } from '../../tf'
import { values } from '../dispatch'

/** `concat(xs, -1)` for tensors that share every axis but the last; differentiable. */
export function concatLastFused(xs: tf.Tensor[]): tf.Tensor {
  const lead = xs[0]!.shape.slice(0, -1)
  const widths = xs.map((x) => x.shape[x.rank - 1]!)
  const total = widths.reduce((a, b) => a + b, 0)
  const rows = lead.reduce((a, b) => a * b, 1)
  for (const x of xs) {
    if (x.rank !== lead.length + 1 || x.shape.slice(0, -1).some((v, i) => v !== lead[i])) {
      throw new Error(`concatLast: shapes differ: ${xs.map((t) => `[${t.shape}]`).join(' vs ')}`)
    }
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const out = new Float32Array(rows * total)
    let off = 0
    for (let i = 0; i < xs.length; i++) {
      const v = values(args[i] as tf.Tensor)
      const c = widths[i]!
      for (let r = 0, src = 0, dst = off; r < rows; r++, dst += total) {
        for (let ch = 0; ch < c; ch++, src++) out[dst + ch] = v[src]!
      }
      off += c
    }
    return {
      value: tf.tensor(out, [...lead, total]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy)
        const grads: tf.Tensor[] = []
        let o = 0
        for (const c of widths) {
          const part = new Float32Array(rows * c)
          for (let r = 0, dst = 0, src = o; r < rows; r++, src += total) {
            for (let ch = 0; ch < c; ch++, dst++) part[dst] = g[src + ch]!
          }
          grads.push(tf.tensor(part, [...lead, c]))
          o += c
        }
        return grads
      },
    }
  })
  return f(...xs)
}
