/**
 * The DSD loss (dsd-spec.md §3), WebGPU-safe (all elementwise work on `[n, k]` views,
 * float32 one-hot targets, pairwise summation of the terms):
 *
 *   L = DCE(Y) + η·[DCE(D4) + DCE(D3) + DCE(D2) + DCE(D1)]
 *       + α2·τ²·[KL(D1‖D4) + KL(D1‖D3) + KL(D1‖D2)]      (decoder distillation, teacher D1)
 *       + α1·τ²·[KL(E4‖E1) + KL(E4‖E2) + KL(E4‖E3)]      (encoder distillation, teacher E4)
 *
 * DCE is MONAI 0.9 `DiceCELoss(include_background, to_onehot_y, softmax)`: per (sample, class)
 * soft Dice `1 − (2Σpg + 1e-5)/(Σp + Σg + 1e-5)` averaged over b·K, plus the voxel-mean
 * cross-entropy. KL(t‖s) = mean over b·d·h·w of Σ_k softmax(t/τ)·(log softmax(t/τ) −
 * log softmax(s/τ)); the teacher is NOT detached. α1 weighs the ENCODER pairs and α2 the
 * DECODER pairs, as in the spec §8 ablation list and golden/dsd/loss.json
 * (SDD: α1 = 0, α2 = 1 → decoder-only).
 */
import { DsdError } from '../errors'
import { TERM_NAMES, type TermName } from './loss-terms'
import { tf } from './tf'
import { useFused } from './kernels/dispatch'
import { diceCEFused, klDistillFused, labelArray } from './kernels/loss'
// WebGPU: the whole loss in a few fused passes (kernels/webgpu/loss.ts)
import { useWebgpuKernels } from './kernels/webgpu/mode'
import { dsdLossGpu } from './kernels/webgpu/loss'

export { ABLATIONS, ablation, variantName, type AblationName, type LossWeights } from './presets'

/** The nine logit outputs of a DSD training forward pass (spec §1). */
export type DsdOutputName = 'Y' | 'D4' | 'D3' | 'D2' | 'D1' | 'E1' | 'E2' | 'E3' | 'E4'

/** Logits `[b, d, h, w, K]` by output name; only those the variant needs must be present. */
export type DsdOutputs = Partial<Record<DsdOutputName, tf.Tensor>>

export { TERM_NAMES, type TermName } from './loss-terms'

/** Loss weights and temperature. */
export interface DsdLossOptions {
  /** Weight of the 4 decoder Dice-CE terms (η). */
  eta: number
  /** Weight of the 3 encoder KL terms (teacher E4). */
  alpha1: number
  /** Weight of the 3 decoder KL terms (teacher D1). */
  alpha2: number
  /** KL temperature τ (3 in the paper). */
  temperature?: number
  /** Compute and report every term whose outputs are present, even at weight 0. */
  allTerms?: boolean
  /**
   * `tf.keep` the returned term scalars so they survive an enclosing `tf.tidy` /
   * `tf.variableGrads` (the caller then disposes them).
   */
  keepTerms?: boolean
}

/** Which outputs a loss configuration reads. */
export function requiredOutputs(
  o: Pick<DsdLossOptions, 'eta' | 'alpha1' | 'alpha2'>,
): DsdOutputName[] {
  const need = new Set<DsdOutputName>(['Y'])
  if (o.eta !== 0) for (const n of ['D4', 'D3', 'D2', 'D1'] as const) need.add(n)
  if (o.alpha2 !== 0) for (const n of ['D4', 'D3', 'D2', 'D1'] as const) need.add(n)
  if (o.alpha1 !== 0) for (const n of ['E1', 'E2', 'E3', 'E4'] as const) need.add(n)
  return [...need]
}

/** Sum scalars as a balanced tree of 2-input adds (WebGPU caps addN inputs). */
export function pairwiseSum(xs: tf.Scalar[]): tf.Scalar {
  if (xs.length === 0) return tf.scalar(0)
  let level = xs
  while (level.length > 1) {
    const next: tf.Scalar[] = []
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? tf.add(level[i]!, level[i + 1]!) : level[i]!)
    }
    level = next
  }
  return level[0]!
}

/**
 * Float32 one-hot `[n, K]` of int labels (any shape; flattened). Built with `where(labels ==
 * range(K), 1, 0)` rather than `tf.oneHot` or a cast: the WASM backend's OneHot ignores the
 * float32 dtype (it writes int bits), and WebGPU's int→float cast only relabels the int32
 * buffer, which later breaks shaders (the "oneHot reductions" trap in environment.md).
 * Labels outside [0, K) give all-zero rows.
 */
export function oneHotFloat(labels: tf.Tensor, classes: number): tf.Tensor2D {
  const flat = tf.reshape(labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32'), [-1, 1])
  const n = flat.shape[0]!
  const range = tf.reshape(tf.range(0, classes, 1, 'int32'), [1, classes])
  const hit = tf.equal(flat, range)
  return tf.where(
    hit,
    tf.ones([n, classes], 'float32'),
    tf.zeros([n, classes], 'float32'),
  ) as tf.Tensor2D
}

/**
 * MONAI DiceCELoss (softmax, one-hot target, background included, smooth 1e-5, per-sample
 * Dice averaged over b·K, plus voxel-mean CE). `logits [b, ..., K]`, `target` float one-hot
 * `[b·n, K]` in the same voxel order.
 */
export function diceCE(logits: tf.Tensor, target: tf.Tensor2D): tf.Scalar {
  const b = logits.shape[0]!
  const k = logits.shape[logits.rank - 1]!
  const x2 = tf.reshape(logits, [-1, k]) as tf.Tensor2D
  const n = x2.shape[0] / b
  const logp = tf.logSoftmax(x2, -1)
  const p = tf.exp(logp)
  // Dice per (sample, class)
  const inter = tf.sum(tf.reshape(tf.mul(p, target), [b, n, k]), 1)
  const psum = tf.sum(tf.reshape(p, [b, n, k]), 1)
  const gsum = tf.sum(tf.reshape(target, [b, n, k]), 1)
  const smooth = tf.scalar(1e-5)
  const dice = tf.sub(
    tf.scalar(1),
    tf.div(tf.add(tf.mul(inter, tf.scalar(2)), smooth), tf.add(tf.add(psum, gsum), smooth)),
  )
  const diceMean = tf.mean(dice)
  // Cross-entropy averaged over b·n voxels
  const ce = tf.neg(tf.mean(tf.sum(tf.mul(target, logp), 1)))
  return tf.add(diceMean, ce) as tf.Scalar
}

/**
 * τ²·KL(teacher ‖ student) with temperature τ: voxel mean of the class-summed pointwise KL.
 * Gradients flow into both arguments.
 */
export function klDistill(student: tf.Tensor, teacher: tf.Tensor, temperature: number): tf.Scalar {
  if (useFused()) return klDistillFused(student, teacher, temperature)
  return klDistillTf(student, teacher, temperature)
}

/** {@link klDistill} as a chain of tf ops (the WebGPU path and the tests' reference). */
export function klDistillTf(
  student: tf.Tensor,
  teacher: tf.Tensor,
  temperature: number,
): tf.Scalar {
  const k = teacher.shape[teacher.rank - 1]!
  const invT = tf.scalar(1 / temperature)
  const logPt = tf.logSoftmax(tf.mul(tf.reshape(teacher, [-1, k]), invT), -1)
  const logQ = tf.logSoftmax(tf.mul(tf.reshape(student, [-1, k]), invT), -1)
  const pt = tf.exp(logPt)
  const kl = tf.mean(tf.sum(tf.mul(pt, tf.sub(logPt, logQ)), 1))
  return tf.mul(kl, tf.scalar(temperature * temperature)) as tf.Scalar
}

/** Result of {@link dsdLoss}: the weighted total and the unweighted terms (KL already × τ²). */
export interface DsdLossResult {
  total: tf.Scalar
  terms: Partial<Record<TermName, tf.Scalar>>
}

/**
 * The DSD loss. `outputs` holds `[b, d, h, w, K]` logits, `labels` int class indices
 * `[b, d, h, w]` (or `[b, d, h, w, 1]`). Terms with weight 0 are skipped (so Basic needs only
 * `Y`) unless `allTerms` is set. Call inside `tf.variableGrads(() => dsdLoss(..).total)`.
 */
export function dsdLoss(
  outputs: DsdOutputs,
  labels: tf.Tensor,
  options: DsdLossOptions,
): DsdLossResult {
  const { eta, alpha1, alpha2 } = options
  const temperature = options.temperature ?? 3
  const allTerms = options.allTerms ?? false
  const Y = outputs.Y
  if (!Y) throw new DsdError('LOSS_OUTPUT', 'dsdLoss: the main output Y is missing', {})
  if (Y.rank < 2) throw new DsdError('LOSS_OUTPUT', `dsdLoss: Y has shape [${Y.shape}]`, {})
  const k = Y.shape[Y.rank - 1]!
  const voxelShape = Y.shape.slice(0, -1)
  const labelShape =
    labels.rank === Y.rank && labels.shape[labels.rank - 1] === 1
      ? labels.shape.slice(0, -1)
      : labels.shape
  if (labelShape.join() !== voxelShape.join()) {
    throw new DsdError(
      'LOSS_SHAPE',
      `dsdLoss: labels [${labels.shape}] do not match the logits [${Y.shape}] (expected [${voxelShape}])`,
      { labels: labels.shape, logits: Y.shape },
    )
  }
  const get = (name: DsdOutputName, why: string): tf.Tensor | undefined => {
    const t = outputs[name]
    if (!t) {
      if (allTerms) return undefined
      throw new DsdError(
        'LOSS_OUTPUT',
        `dsdLoss: output ${name} is missing but ${why} (η=${eta}, α1=${alpha1}, α2=${alpha2})`,
        { name },
      )
    }
    if (t.shape.join() !== Y.shape.join()) {
      throw new DsdError(
        'LOSS_SHAPE',
        `dsdLoss: output ${name} has shape [${t.shape}] but Y has [${Y.shape}]; all outputs must be at the patch resolution`,
        { name, shape: t.shape, Y: Y.shape },
      )
    }
    return t
  }

  if (useWebgpuKernels()) {
    // --- WebGPU kernels: same term selection and checks as below, one fused op ---
    const want = (w: number) => w !== 0 || allTerms
    const flags: boolean[] = []
    const weights: number[] = []
    const inputs: DsdOutputs = { Y }
    const add = (name: TermName, on: boolean, weight: number, ...ts: (tf.Tensor | undefined)[]) => {
      const ok = on && ts.every((t) => t)
      flags.push(ok)
      weights.push(ok ? weight : 0)
    }
    add('dce_Y', true, 1, Y)
    for (const name of ['D4', 'D3', 'D2', 'D1'] as const) {
      const t = eta !== 0 ? get(name, 'η > 0') : want(eta) ? outputs[name] : undefined
      if (t) inputs[name] = t
      add(`dce_${name}`, want(eta), eta, t)
    }
    const pairs = (
      weight: number,
      teacherName: 'D1' | 'E4',
      students: readonly ('D4' | 'D3' | 'D2' | 'E1' | 'E2' | 'E3')[],
      prefix: 'kl_dec_' | 'kl_enc_',
    ) => {
      const why =
        teacherName === 'D1' ? 'α2 > 0 (decoder distillation)' : 'α1 > 0 (encoder distillation)'
      const teacher = !want(weight)
        ? undefined
        : weight !== 0
          ? get(teacherName, why)
          : outputs[teacherName]
      for (const s of students) {
        const student = !teacher ? undefined : weight !== 0 ? get(s, why) : outputs[s]
        if (teacher && student) {
          inputs[teacherName] = teacher
          inputs[s] = student
        }
        add(`${prefix}${s}` as TermName, want(weight), weight, teacher, student)
      }
    }
    pairs(alpha2, 'D1', ['D4', 'D3', 'D2'], 'kl_dec_')
    pairs(alpha1, 'E4', ['E1', 'E2', 'E3'], 'kl_enc_')
    const vec = dsdLossGpu(inputs, labels, flags, weights, temperature)
    const total = tf.reshape(tf.slice(vec, [0], [1]), []) as tf.Scalar
    const terms: Partial<Record<TermName, tf.Scalar>> = {}
    TERM_NAMES.forEach((name, i) => {
      if (flags[i]) terms[name] = tf.reshape(tf.slice(vec, [1 + i], [1]), []) as tf.Scalar
    })
    if (options.keepTerms) for (const t of Object.values(terms)) tf.keep(t)
    return { total, terms }
  }
  // CPU/WASM: fused Dice-CE on the integer labels; elsewhere a float one-hot target
  const fused = useFused()
  const labelInts = fused ? labelArray(labels) : null
  const target = fused ? null : oneHotFloat(labels, k)
  const dce = (t: tf.Tensor): tf.Scalar =>
    labelInts ? diceCEFused(t, labelInts) : diceCE(t, target!)
  const terms: Partial<Record<TermName, tf.Scalar>> = {}
  const weighted: tf.Scalar[] = []
  const want = (w: number) => w !== 0 || allTerms

  terms.dce_Y = dce(Y)
  weighted.push(terms.dce_Y)

  if (want(eta)) {
    for (const name of ['D4', 'D3', 'D2', 'D1'] as const) {
      const t = eta !== 0 ? get(name, 'η > 0') : outputs[name]
      if (!t) continue
      const term = dce(t)
      terms[`dce_${name}`] = term
      if (eta !== 0) weighted.push(eta === 1 ? term : tf.mul(term, tf.scalar(eta)))
    }
  }
  const distill = (
    weight: number,
    teacherName: 'D1' | 'E4',
    students: readonly ('D4' | 'D3' | 'D2' | 'E1' | 'E2' | 'E3')[],
    prefix: 'kl_dec_' | 'kl_enc_',
  ) => {
    if (!want(weight)) return
    const why =
      teacherName === 'D1' ? 'α2 > 0 (decoder distillation)' : 'α1 > 0 (encoder distillation)'
    const teacher = weight !== 0 ? get(teacherName, why) : outputs[teacherName]
    if (!teacher) return
    for (const s of students) {
      const student = weight !== 0 ? get(s, why) : outputs[s]
      if (!student) continue
      const term = klDistill(student, teacher, temperature)
      terms[`${prefix}${s}` as TermName] = term
      if (weight !== 0) weighted.push(weight === 1 ? term : tf.mul(term, tf.scalar(weight)))
    }
  }
  distill(alpha2, 'D1', ['D4', 'D3', 'D2'], 'kl_dec_')
  distill(alpha1, 'E4', ['E1', 'E2', 'E3'], 'kl_enc_')

  const total = pairwiseSum(weighted)
  if (options.keepTerms) for (const t of Object.values(terms)) tf.keep(t)
  return { total, terms }
}
