/**
 * One DSD training step: forward (only the outputs the loss variant reads), loss, gradients
 * with `tf.variableGrads`, one AdamW update. Every intermediate tensor is disposed; the loss
 * terms come back as plain numbers. With a {@link LossScaler} (half-precision kernels) the
 * loss is scaled before the backward pass, the gradients unscaled before AdamW, and a step
 * with non-finite gradients is skipped (loss-scale.ts).
 */
import { DsdError } from '../errors'
import { tf } from './tf'
import {
  ablation,
  dsdLoss,
  requiredOutputs,
  TERM_NAMES,
  type DsdLossOptions,
  type TermName,
} from './loss'
import type { AdamW } from './optimizer'
import type { LossScaler } from './loss-scale'
import type { DsdModel } from './model'
import { useFused } from './kernels/dispatch'
import {
  checkTrainingMemory,
  isAllocationFailure,
  outOfMemoryError,
  type MemoryModel,
} from './kernels/cpu/memory'

/** What the memory estimate reads of a model (the summary is computed once per model). */
const memoryModels = new WeakMap<DsdModel, MemoryModel>()
function memoryModel(model: DsdModel): MemoryModel {
  let m = memoryModels.get(model)
  if (!m) {
    const c = model.countParams()
    m = { config: model.config, rows: model.summary(), params: c.backbone + c.dsd }
    memoryModels.set(model, m)
  }
  return m
}

/** Loss settings: explicit weights, or a variant name (`Basic`, `DS`, `SDD`, `SDE`, `DSD`). */
export type TrainLossOptions = string | Omit<DsdLossOptions, 'keepTerms'>

/** What {@link trainStep} reports. */
export interface TrainStepResult {
  /** The weighted total loss that was minimised. */
  loss: number
  /** Every computed term, unweighted (KL terms already × τ²), by golden/dsd/loss.json name. */
  terms: Partial<Record<TermName, number>>
  /** Number of variables that received a gradient (and were updated; 0 when skipped). */
  updated: number
  /** With a loss scaler: the scale this step used, and whether it was skipped (non-finite gradients). */
  lossScale?: number
  skipped?: boolean
}

/** Resolve a variant name or options to loss options. */
export function lossOptionsOf(options: TrainLossOptions): DsdLossOptions {
  return typeof options === 'string' ? ablation(options) : { ...options }
}

/**
 * One training step of `model` on a batch `x` `[b, d, h, w, C]` with integer `labels`
 * `[b, d, h, w]` (or `[…, 1]`). The caller keeps ownership of `x` and `labels`.
 *
 * Only the variables the loss reaches get a gradient and an update (for `Basic` the DSD
 * modules are untouched, as in the reference, where the plain network has none). A
 * non-finite loss throws `DsdError('TRAIN_NONFINITE')` before any weight is changed.
 *
 * `scaler` (given when the kernels run at half precision): the backward pass differentiates
 * `loss · scale`; when every gradient is finite they are divided by the scale and applied,
 * otherwise the step is skipped (weights and AdamW state unchanged) and the scale halved.
 * Without it the step is exactly the unscaled one.
 */
export async function trainStep(
  model: DsdModel,
  optimizer: AdamW,
  x: tf.Tensor5D,
  labels: tf.Tensor,
  lossOptions: TrainLossOptions = 'DSD',
  scaler?: LossScaler | null,
): Promise<TrainStepResult> {
  const opts = lossOptionsOf(lossOptions)
  const outputs = requiredOutputs(opts)
  // global TF.js variable name → model-local name
  const localName = new Map<string, string>()
  const varList: tf.Variable[] = []
  for (const [name, v] of Object.entries(model.variables)) {
    localName.set(v.name, name)
    varList.push(v)
  }
  let terms: Partial<Record<TermName, tf.Scalar>> = {}
  // the unscaled total (with a scaler the differentiated value is loss · scale, which may overflow)
  const held: { total?: tf.Scalar } = {}
  // ---- CPU kernels: a step that cannot fit this machine fails with a clear error
  const cpu = useFused()
  const mem = cpu ? memoryModel(model) : null
  if (mem) checkTrainingMemory(mem, x.shape[0])
  let value: tf.Scalar
  let grads: tf.NamedTensorMap
  try {
    ;({ value, grads } = tf.variableGrads(() => {
      const out = model.forward(x, { training: true, outputs })
      const res = dsdLoss(out, labels, { ...opts, keepTerms: true })
      terms = res.terms
      if (!scaler) return res.total
      held.total = tf.keep(res.total)
      return scaler.scaleLoss(res.total)
    }, varList))
  } catch (err) {
    tf.dispose(Object.values(terms) as tf.Tensor[])
    held.total?.dispose()
    if (mem && isAllocationFailure(err)) throw outOfMemoryError(err, mem, x.shape[0])
    throw err
  }
  // ---- end CPU kernels
  try {
    const scale = scaler?.scale ?? 1
    const loss = (await (held.total ?? value).data())[0]!
    const termValues: Partial<Record<TermName, number>> = {}
    for (const name of TERM_NAMES) {
      const t = terms[name]
      if (t) termValues[name] = (await t.data())[0]!
    }
    if (!Number.isFinite(loss)) {
      throw new DsdError(
        'TRAIN_NONFINITE',
        `training step: the loss is ${loss} (terms ${JSON.stringify(termValues)}); the weights were not updated. Lower the learning rate or check the input for NaN/Inf values`,
        { loss, terms: termValues },
      )
    }
    const local: Record<string, tf.Tensor> = {}
    for (const [global, g] of Object.entries(grads)) local[localName.get(global) ?? global] = g
    if (!scaler) {
      optimizer.applyGradients(local, model.variables)
      return { loss, terms: termValues, updated: Object.keys(local).length }
    }
    const applied = await scaler.applyGradients(optimizer, local, model.variables)
    if (!applied) return { loss, terms: termValues, updated: 0, lossScale: scale, skipped: true }
    return { loss, terms: termValues, updated: Object.keys(local).length, lossScale: scale, skipped: false }
  } finally {
    value.dispose()
    held.total?.dispose()
    tf.dispose(Object.values(grads))
    tf.dispose(Object.values(terms) as tf.Tensor[])
  }
}
