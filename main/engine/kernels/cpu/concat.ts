/**
 * Concatenation along the last (channel) axis and its gradient (the split back), as row
 * copies in WebAssembly on every core. TF.js's own gradient of `concat` is a `slice` per
 * input, which on the CPU backend takes a generic per-element path for column slices, and a
 * JavaScript element loop costs ~10× a wasm copy here.
 */
import { tf } from '../../tf'
import { values } from '../dispatch'
import { withArena, type CpuRuntime, type Ptr, PARALLEL_ELEMENTS } from './runtime'

const OP_COPY = 34
const ROWS_PER_TASK = 4096

/** Copy `rows` rows of width `w` from `src` (row stride ws, offset os) to `dst` (wd, od), all in the arena. */
function copyRowsJob(
  rt: CpuRuntime,
  src: Ptr,
  dst: Ptr,
  rows: number,
  w: number,
  ws: number,
  os: number,
  wd: number,
  od: number,
) {
  return {
    job: rt.job(OP_COPY, [src, dst, rows, w, ws, os, wd, od, ROWS_PER_TASK]),
    ntasks: Math.ceil(rows / ROWS_PER_TASK),
  }
}

/** `[rows, Σw]` from row-major parts `[rows, w_i]`. */
function concatRows(parts: Float32Array[], widths: number[], rows: number): Float32Array {
  const total = widths.reduce((a, b) => a + b, 0)
  return withArena((rt) => {
    const dst = rt.alloc(rows * total * 4)
    let off = 0
    const jobs = parts.map((v, i) => {
      const job = copyRowsJob(rt, rt.put(v), dst, rows, widths[i]!, widths[i]!, 0, total, off)
      off += widths[i]!
      return job
    })
    rt.runMany(jobs, rows * total >= PARALLEL_ELEMENTS)
    return rt.read(dst, rows * total)
  })
}

/** The parts `[rows, w_i]` of a row-major `[rows, Σw]` array. */
function splitRows(g: Float32Array, widths: number[], rows: number): Float32Array[] {
  const total = widths.reduce((a, b) => a + b, 0)
  return withArena((rt) => {
    const src = rt.put(g)
    let off = 0
    const dsts = widths.map((w) => rt.alloc(rows * w * 4))
    const jobs = widths.map((w, i) => {
      const job = copyRowsJob(rt, src, dsts[i]!, rows, w, total, off, w, 0)
      off += w
      return job
    })
    rt.runMany(jobs, rows * total >= PARALLEL_ELEMENTS)
    return dsts.map((d, i) => rt.read(d, rows * widths[i]!))
  })
}

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
    const parts = xs.map((_, i) => values(args[i] as tf.Tensor))
    return {
      value: tf.tensor(concatRows(parts, widths, rows), [...lead, total]),
      gradFunc: (dy: tf.Tensor) =>
        splitRows(values(dy), widths, rows).map((g, i) => tf.tensor(g, [...lead, widths[i]!])),
    }
  })
  return f(...xs)
}
