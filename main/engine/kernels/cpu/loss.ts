/**
 * The DSD loss terms on the WebAssembly kernels: MONAI DiceCE on integer labels and
 * τ²·KL(teacher ‖ student), four voxels per SIMD lane group, forward sums by fixed chunks of
 * voxels (float64 partials added in chunk order) on every core. Same formulas as
 * kernels/loss.ts. Nothing is computed twice: the forward keeps the softmax (Dice) or the
 * student's log-probabilities (KL) for its gradient, and a teacher's log-probabilities and
 * probabilities at temperature τ are computed once and shared by all its students (cached by
 * the teacher tensor's value array, which TF.js never changes).
 */
import { withArena, type CpuRuntime, PARALLEL_ELEMENTS } from './runtime'

const OP_LSM = 19
const OP_DICE_FWD = 20
const OP_DICE_BWD = 21
const OP_KL_FWD = 22
const OP_KL_BWD = 23
const CHUNK = 4096
/** Class limit of the loss kernels. */
export const LOSS_MAX_CLASSES = 256

interface LossArgs {
  x: number
  t?: number
  pt?: number
  lab?: number
  batch: number
  n: number
  k: number
  params?: number
  partial?: number
  out1?: number
  out2?: number
}

function lossJob(rt: CpuRuntime, op: number, a: LossArgs): number {
  const chunks = Math.ceil(a.n / CHUNK)
  const ntasks = a.batch * chunks
  rt.run(
    op,
    [
      a.x,
      a.t ?? 0,
      a.pt ?? 0,
      a.lab ?? 0,
      a.batch,
      a.n,
      a.k,
      CHUNK,
      a.params ?? 0,
      a.partial ?? 0,
      a.out1 ?? 0,
      a.out2 ?? 0,
    ],
    ntasks,
    a.batch * a.n * a.k >= PARALLEL_ELEMENTS / 2,
  )
  return ntasks
}

/** Forward sums of DiceCE per (sample, class) and the softmax the gradient needs. */
export interface DiceForward {
  psum: Float64Array
  inter: Float64Array
  gsum: Float64Array
  ce: number
  /** Softmax of the logits, same layout. */
  probs: Float32Array
}

export function diceForward(
  x: Float32Array,
  labels: Int32Array,
  batch: number,
  k: number,
): DiceForward {
  if (k > LOSS_MAX_CLASSES) throw new Error(`DiceCE: ${k} classes exceed ${LOSS_MAX_CLASSES}`)
  const n = x.length / k / batch
  return withArena((rt) => {
    const chunks = Math.ceil(n / CHUNK)
    const width = 3 * k + 1
    const partial = rt.alloc(batch * chunks * width * 8)
    const probs = rt.alloc(x.length * 4)
    lossJob(rt, OP_DICE_FWD, {
      x: rt.put(x),
      lab: rt.putInt(labels),
      batch,
      n,
      k,
      partial,
      out1: probs,
    })
    const P = rt.f64(partial, batch * chunks * width)
    const out: DiceForward = {
      psum: new Float64Array(batch * k),
      inter: new Float64Array(batch * k),
      gsum: new Float64Array(batch * k),
      ce: 0,
      probs: rt.read(probs, x.length),
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
 * dL/dlogits of DiceCE from the forward's softmax: `cDice · p (g − p·g) + cCe (p·hit −
 * onehot)` with the per-(sample, class) coefficients `a` = (2I + s)/D² and `gd` = 2/D.
 */
export function diceBackward(
  probs: Float32Array,
  labels: Int32Array,
  batch: number,
  k: number,
  cDice: number,
  cCe: number,
  a: Float64Array,
  gd: Float64Array,
): Float32Array {
  const n = probs.length / k / batch
  return withArena((rt) => {
    const params = rt.putF64([cDice, cCe, ...a, ...gd])
    const dx = rt.alloc(probs.length * 4)
    lossJob(rt, OP_DICE_BWD, {
      x: rt.put(probs),
      lab: rt.putInt(labels),
      batch,
      n,
      k,
      params,
      out1: dx,
    })
    return rt.read(dx, probs.length)
  })
}

/** A teacher's log-probabilities and probabilities at one temperature. */
interface TeacherCache {
  invT: number
  logp: Float32Array
  p: Float32Array
}

const teachers = new WeakMap<Float32Array, TeacherCache>()

/** log-softmax(t·invT) and its exp, computed once per teacher value array and temperature. */
function teacherOf(t: Float32Array, k: number, invT: number): TeacherCache {
  const hit = teachers.get(t)
  if (hit && hit.invT === invT) return hit
  const n = t.length / k
  const entry = withArena((rt) => {
    const logp = rt.alloc(t.length * 4)
    const p = rt.alloc(t.length * 4)
    lossJob(rt, OP_LSM, {
      x: rt.put(t),
      batch: 1,
      n,
      k,
      params: rt.putF64([invT, 0]),
      out1: logp,
      out2: p,
    })
    return { invT, logp: rt.read(logp, t.length), p: rt.read(p, t.length) }
  })
  teachers.set(t, entry)
  return entry
}

/** Σ over voxels of KL(softmax(t/τ) ‖ softmax(s/τ)), and what {@link klBackward} needs. */
export interface KlForward {
  sum: number
  /** The student's log-probabilities at τ. */
  logq: Float32Array
  teacher: TeacherCache
}

export function klForward(s: Float32Array, t: Float32Array, k: number, invT: number): KlForward {
  if (k > LOSS_MAX_CLASSES) throw new Error(`KL: ${k} classes exceed ${LOSS_MAX_CLASSES}`)
  const teacher = teacherOf(t, k, invT)
  const n = t.length / k
  return withArena((rt) => {
    const chunks = Math.ceil(n / CHUNK)
    const partial = rt.alloc(chunks * 8)
    const logq = rt.alloc(s.length * 4)
    lossJob(rt, OP_KL_FWD, {
      x: rt.put(s),
      t: rt.put(teacher.logp),
      pt: rt.put(teacher.p),
      batch: 1,
      n,
      k,
      params: rt.putF64([invT, 0]),
      partial,
      out1: logq,
    })
    const P = rt.f64(partial, chunks)
    let sum = 0
    for (let i = 0; i < chunks; i++) sum += P[i]!
    return { sum, logq: rt.read(logq, s.length), teacher }
  })
}

/** Gradients of `c · Σ KL` w.r.t. the student and the teacher logits. */
export function klBackward(
  fwd: KlForward,
  k: number,
  c: number,
): { ds: Float32Array; dt: Float32Array } {
  const { logq, teacher } = fwd
  const n = logq.length / k
  return withArena((rt) => {
    const ds = rt.alloc(logq.length * 4)
    const dt = rt.alloc(logq.length * 4)
    lossJob(rt, OP_KL_BWD, {
      x: rt.put(logq),
      t: rt.put(teacher.logp),
      pt: rt.put(teacher.p),
      batch: 1,
      n,
      k,
      params: rt.putF64([teacher.invT, c]),
      out1: ds,
      out2: dt,
    })
    return { ds: rt.read(ds, logq.length), dt: rt.read(dt, logq.length) }
  })
}
