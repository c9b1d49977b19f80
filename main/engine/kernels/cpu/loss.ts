/**
 * The DSD loss terms on the WebAssembly kernels: MONAI DiceCE on integer labels and
 * τ²·KL(teacher ‖ student), forward sums by fixed chunks of voxels (float64 partials added in
 * chunk order) and gradients per voxel on every core. Same formulas as kernels/loss.ts.
 */
import { withArena, type CpuRuntime } from './runtime'

const OP_DICE_FWD = 20
const OP_DICE_BWD = 21
const OP_KL_FWD = 22
const OP_KL_BWD = 23
const CHUNK = 4096
/** Class limit of the loss kernels. */
export const LOSS_MAX_CLASSES = 256

function lossJob(
  rt: CpuRuntime,
  op: number,
  a: {
    x: number
    t?: number
    lab?: number
    batch: number
    n: number
    k: number
    params?: number
    partial?: number
    dx?: number
    dt?: number
  },
): number {
  const chunks = Math.ceil(a.n / CHUNK)
  const ntasks = a.batch * chunks
  rt.run(
    op,
    [
      a.x,
      a.t ?? 0,
      a.lab ?? 0,
      a.batch,
      a.n,
      a.k,
      CHUNK,
      a.params ?? 0,
      a.partial ?? 0,
      a.dx ?? 0,
      a.dt ?? 0,
    ],
    ntasks,
    a.batch * a.n * a.k >= 1 << 13,
  )
  return ntasks
}

/** Forward sums of DiceCE per (sample, class): Σp, Σp·g, Σg, and Σ −log p_label. */
export interface DiceSums {
  psum: Float64Array
  inter: Float64Array
  gsum: Float64Array
  ce: number
}

export function diceForward(
  x: Float32Array,
  labels: Int32Array,
  batch: number,
  k: number,
): DiceSums {
  if (k > LOSS_MAX_CLASSES) throw new Error(`DiceCE: ${k} classes exceed ${LOSS_MAX_CLASSES}`)
  const n = x.length / k / batch
  return withArena((rt) => {
    const chunks = Math.ceil(n / CHUNK)
    const width = 3 * k + 1
    const partial = rt.alloc(batch * chunks * width * 8)
    lossJob(rt, OP_DICE_FWD, { x: rt.put(x), lab: rt.putInt(labels), batch, n, k, partial })
    const P = rt.f64(partial, batch * chunks * width)
    const out: DiceSums = {
      psum: new Float64Array(batch * k),
      inter: new Float64Array(batch * k),
      gsum: new Float64Array(batch * k),
      ce: 0,
    }
    for (let b = 0; b < batch; b++) {
      for (let c = 0; c < chunks; c++) {
        const o = (b * chunks + c) * width
        for (let j = 0; j < k; j++) {
          out.psum[b * k + j]! += P[o + j]!
          out.inter[b * k + j]! += P[o + k + j]!
          out.gsum[b * k + j]! += P[o + 2 * k + j]!
        }
        out.ce += P[o + 3 * k]!
      }
    }
    return out
  })
}

/**
 * dL/dx of DiceCE: `cDice · p (g − p·g) + cCe (p·hit − onehot)` with the per-(sample, class)
 * coefficients `a` = (2I + s)/D² and `gd` = 2/D.
 */
export function diceBackward(
  x: Float32Array,
  labels: Int32Array,
  batch: number,
  k: number,
  cDice: number,
  cCe: number,
  a: Float64Array,
  gd: Float64Array,
): Float32Array {
  const n = x.length / k / batch
  return withArena((rt) => {
    const params = rt.putF64([cDice, cCe, ...a, ...gd])
    const dx = rt.alloc(x.length * 4)
    lossJob(rt, OP_DICE_BWD, { x: rt.put(x), lab: rt.putInt(labels), batch, n, k, params, dx })
    return rt.read(dx, x.length)
  })
}

/** Σ over voxels of KL(softmax(t/τ) ‖ softmax(s/τ)) (not yet averaged or × τ²). */
export function klForward(s: Float32Array, t: Float32Array, k: number, invT: number): number {
  if (k > LOSS_MAX_CLASSES) throw new Error(`KL: ${k} classes exceed ${LOSS_MAX_CLASSES}`)
  const n = t.length / k
  return withArena((rt) => {
    const chunks = Math.ceil(n / CHUNK)
    const partial = rt.alloc(chunks * 8)
    const params = rt.putF64([invT, 0])
    lossJob(rt, OP_KL_FWD, { x: rt.put(s), t: rt.put(t), batch: 1, n, k, params, partial })
    const P = rt.f64(partial, chunks)
    let sum = 0
    for (let i = 0; i < chunks; i++) sum += P[i]!
    return sum
  })
}

/** Gradients of `c · Σ KL` w.r.t. the student and the teacher logits. */
export function klBackward(
  s: Float32Array,
  t: Float32Array,
  k: number,
  invT: number,
  c: number,
): { ds: Float32Array; dt: Float32Array } {
  const n = t.length / k
  return withArena((rt) => {
    const params = rt.putF64([invT, c])
    const dx = rt.alloc(s.length * 4)
    const dt = rt.alloc(t.length * 4)
    lossJob(rt, OP_KL_BWD, { x: rt.put(s), t: rt.put(t), batch: 1, n, k, params, dx, dt })
    return { ds: rt.read(dx, s.length), dt: rt.read(dt, t.length) }
  })
}
