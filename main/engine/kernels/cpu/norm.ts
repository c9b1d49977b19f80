/**
 * Instance normalisation (+ LeakyReLU) of channels-last `[B, S, C]` data on the WebAssembly
 * kernels: statistics by fixed chunks of voxels (float32 within a chunk of ≤ 512 voxels,
 * float64 across chunks, summed in chunk order), elementwise passes on every core.
 */
import { PARALLEL_ELEMENTS, withArena, type CpuRuntime, type Ptr } from './runtime'

const OP_NORM_STATS = 10
const OP_NORM_APPLY = 12
const OP_NORM_BSTATS = 13
const OP_NORM_BAPPLY = 14
const CHUNK = 512
/** Channel limit of the kernels' per-chunk accumulators. */
export const NORM_MAX_CHANNELS = 4096

/** Saved statistics of a forward pass (per sample and channel). */
export interface NormStats {
  mean: Float32Array
  rstd: Float32Array
}

interface NormArgs {
  x: Ptr
  dy?: Ptr
  batch: number
  s: number
  c: number
  mean?: Ptr
  rstd?: Ptr
  mg?: Ptr
  mgx?: Ptr
  slope?: Ptr
  partial?: Ptr
  out?: Ptr
}

function runNorm(rt: CpuRuntime, op: number, a: NormArgs): number {
  const chunks = Math.ceil(a.s / CHUNK)
  const ntasks = a.batch * chunks
  rt.run(
    op,
    [
      a.x,
      a.dy ?? 0,
      a.batch,
      a.s,
      a.c,
      CHUNK,
      a.mean ?? 0,
      a.rstd ?? 0,
      a.mg ?? 0,
      a.mgx ?? 0,
      a.slope ?? 0,
      a.partial ?? 0,
      a.out ?? 0,
    ],
    ntasks,
    a.batch * a.s * a.c >= PARALLEL_ELEMENTS,
  )
  return chunks
}

/** Per (b, c): Σ over chunks of partial[b][chunk][half·C + c] / s, in chunk order. */
function combine(
  rt: CpuRuntime,
  partial: Ptr,
  batch: number,
  chunks: number,
  c: number,
  half: 0 | 1,
  s: number,
): Float64Array {
  const P = rt.f64(partial, batch * chunks * 2 * c)
  const out = new Float64Array(batch * c)
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < chunks; k++) {
      const o = (b * chunks + k) * 2 * c + half * c
      for (let ch = 0; ch < c; ch++) out[b * c + ch]! += P[o + ch]!
    }
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / s
  return out
}

/**
 * Mean and biased variance per (sample, channel) from the chunks' sums and squared deviations
 * about each chunk's own mean, merged in chunk order (Chan et al.'s pairwise update).
 */
function meanVar(
  rt: CpuRuntime,
  partial: Ptr,
  batch: number,
  chunks: number,
  c: number,
  s: number,
): { mean: Float64Array; variance: Float64Array } {
  const P = rt.f64(partial, batch * chunks * 2 * c)
  const mean = new Float64Array(batch * c)
  const variance = new Float64Array(batch * c)
  for (let b = 0; b < batch; b++) {
    for (let ch = 0; ch < c; ch++) {
      let n = 0
      let m = 0
      let m2 = 0
      for (let k = 0; k < chunks; k++) {
        const nk = Math.min(CHUNK, s - k * CHUNK)
        const o = (b * chunks + k) * 2 * c
        const sum = P[o + ch]!
        const mk = sum / nk
        // the kernel centred on its float32 chunk mean cm; move that to the exact mean mk
        const cm = Math.fround(sum * Math.fround(1 / nk))
        const m2k = P[o + c + ch]! - nk * (cm - mk) * (cm - mk)
        const total = n + nk
        const delta = mk - m
        m += (delta * nk) / total
        m2 += m2k + (delta * delta * n * nk) / total
        n = total
      }
      mean[b * c + ch] = m
      variance[b * c + ch] = m2 / s
    }
  }
  return { mean, variance }
}

/** y = act(instanceNorm(x)) for x `[batch, s, c]`; `slope` null: no activation. */
export function instanceNormForward(
  x: Float32Array,
  batch: number,
  s: number,
  c: number,
  eps: number,
  slope: number | null,
): { y: Float32Array; stats: NormStats } {
  if (c > NORM_MAX_CHANNELS)
    throw new Error(`instance norm: ${c} channels exceed ${NORM_MAX_CHANNELS}`)
  return withArena((rt) => {
    const xp = rt.put(x)
    const chunks = Math.ceil(s / CHUNK)
    const partial = rt.alloc(batch * chunks * 2 * c * 8)
    runNorm(rt, OP_NORM_STATS, { x: xp, batch, s, c, partial })
    const mv = meanVar(rt, partial, batch, chunks, c, s)
    const mean = Float32Array.from(mv.mean)
    const rstd = new Float32Array(batch * c)
    for (let i = 0; i < rstd.length; i++) rstd[i] = 1 / Math.sqrt(mv.variance[i]! + eps)
    const meanP = rt.put(mean)
    const rstdP = rt.put(rstd)
    const slopeP = slope === null ? 0 : rt.put(Float32Array.of(slope))
    const out = rt.alloc(x.length * 4)
    runNorm(rt, OP_NORM_APPLY, { x: xp, batch, s, c, mean: meanP, rstd: rstdP, slope: slopeP, out })
    return { y: rt.read(out, x.length), stats: { mean, rstd } }
  })
}

/** dx of {@link instanceNormForward} given x, dy and the forward's statistics. */
export function instanceNormBackward(
  x: Float32Array,
  dy: Float32Array,
  stats: NormStats,
  batch: number,
  s: number,
  c: number,
  slope: number | null,
): Float32Array {
  return withArena((rt) => {
    const xp = rt.put(x)
    const dyp = rt.put(dy)
    const meanP = rt.put(stats.mean)
    const rstdP = rt.put(stats.rstd)
    const slopeP = slope === null ? 0 : rt.put(Float32Array.of(slope))
    const chunks = Math.ceil(s / CHUNK)
    const partial = rt.alloc(batch * chunks * 2 * c * 8)
    const base = { x: xp, dy: dyp, batch, s, c, mean: meanP, rstd: rstdP, slope: slopeP }
    runNorm(rt, OP_NORM_BSTATS, { ...base, partial })
    const mg = rt.put(Float32Array.from(combine(rt, partial, batch, chunks, c, 0, s)))
    const mgx = rt.put(Float32Array.from(combine(rt, partial, batch, chunks, c, 1, s)))
    const out = rt.alloc(x.length * 4)
    runNorm(rt, OP_NORM_BAPPLY, { ...base, mg, mgx, out })
    return rt.read(out, x.length)
  })
}

const OP_LEAKY = 30
const OP_ADD_LEAKY = 31
const OP_LEAKY_GRAD = 32
const ELEM_CHUNK = 1 << 16

function f32bits(v: number): number {
  return new Int32Array(Float32Array.of(v).buffer)[0]!
}

function elem(op: number, a: Float32Array, b: Float32Array | null, slope: number): Float32Array {
  return withArena((rt) => {
    const n = a.length
    const ap = rt.put(a)
    const bp = b ? rt.put(b) : 0
    const out = rt.alloc(n * 4)
    rt.run(
      op,
      [ap, bp, out, n, ELEM_CHUNK, f32bits(slope)],
      Math.ceil(n / ELEM_CHUNK),
      n >= PARALLEL_ELEMENTS,
    )
    return rt.read(out, n)
  })
}

/** LeakyReLU(x) with `slope` ≥ 0. */
export function leakyForward(x: Float32Array, slope: number): Float32Array {
  return elem(OP_LEAKY, x, null, slope)
}

/** LeakyReLU(a + b) with `slope` ≥ 0 (the residual join). */
export function addLeakyForward(a: Float32Array, b: Float32Array, slope: number): Float32Array {
  return elem(OP_ADD_LEAKY, a, b, slope)
}

/** Gradient of a LeakyReLU (`slope` ≥ 0) from its output `y`: g where y > 0, else g·slope. */
export function leakyGrad(y: Float32Array, g: Float32Array, slope: number): Float32Array {
  return elem(OP_LEAKY_GRAD, y, g, slope)
}
