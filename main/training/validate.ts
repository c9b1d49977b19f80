/** Validation of a run's model on its validation cases: sliding window, argmax, Dice per class. */
import type { RunConfig } from '../contract/runs'
import type { PreparedCase } from '../data/preprocess'
import type { DsdModel } from '../engine/model'
import { argmaxClasses, slidingWindowInference } from '../engine/sliding-window'
import type { tf } from '../engine/tf'
import { DsdError } from '../errors'
import { diceByClass } from '../metrics/dice'

export interface ValidationResult {
  /** Foreground class value → mean Dice over the cases where it occurs (null: in none). */
  perClass: Record<string, number | null>
  /** Mean of the foreground classes' Dice (0 when none occurs). */
  mean: number
}

/**
 * Mean per-class validation Dice over `cases`. `cancelled` is asked between sliding windows
 * (validating a large case can take minutes); `onCase` after each case.
 */
export async function validate(
  model: DsdModel,
  cases: PreparedCase[],
  cfg: RunConfig,
  numClasses: number,
  cancelled: () => boolean,
  onCase: (done: number) => void,
): Promise<ValidationResult> {
  const abort = new AbortController()
  const checkCancel = () => {
    if (cancelled()) abort.abort(new DsdError('CANCELLED', 'cancelled by the user', {}))
  }
  const sums = new Float64Array(numClasses)
  const counts = new Float64Array(numClasses)
  const predictor = (x: tf.Tensor5D) => model.forward(x, { training: false }).Y
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]
    const [nx, ny, nz] = c.shape
    const res = await slidingWindowInference(
      { data: c.image, shape: [nz, ny, nx], channels: c.channels },
      cfg.model.patch,
      predictor,
      { overlap: cfg.inference.overlap, blend: cfg.inference.blend, mirror: false, swBatch: 4, output: 'logits', signal: abort.signal, onProgress: checkCancel },
    )
    const pred = argmaxClasses(res.data, res.classes)
    diceByClass(pred, c.label!, numClasses).forEach((v, k) => {
      if (v !== null) {
        sums[k] += v
        counts[k] += 1
      }
    })
    onCase(i + 1)
  }
  const perClass: Record<string, number | null> = {}
  const fg: number[] = []
  for (let k = 1; k < numClasses; k++) {
    perClass[String(k)] = counts[k] ? sums[k] / counts[k] : null
    if (counts[k]) fg.push(sums[k] / counts[k])
  }
  const mean = fg.length ? fg.reduce((a, b) => a + b, 0) / fg.length : 0
  return { perClass, mean }
}
