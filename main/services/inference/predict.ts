/** Predict one preprocessed case with one model or an ensemble (mean of the softmax, argmax). */
import { invertLabelMap, type PreparedCase } from '../../data/preprocess'
import type { Volume } from '../../data/volume'
import {
  argmaxClasses,
  slidingWindowInference,
  type BlendMode,
  type Predictor,
  type SlidingWindowProgress,
} from '../../engine/sliding-window'
import { DsdError } from '../../errors'

/** Options of {@link predictPrepared}. */
export interface PredictPreparedOptions {
  overlap?: number
  blend?: BlendMode
  tta?: boolean
  swBatch?: number
  onProgress?: (model: number, p: SlidingWindowProgress) => void
  signal?: AbortSignal
}

/** The models' input: a prepared case as a channels-last `[d, h, w, c]` volume (d = nz). */
export function preparedVolume(p: Pick<PreparedCase, 'image' | 'shape' | 'channels'>) {
  return {
    data: p.image,
    shape: [p.shape[2], p.shape[1], p.shape[0]] as [number, number, number],
    channels: p.channels,
  }
}

/**
 * Predict one preprocessed case with one or more models (each `{ predictor, roi }`; ROI =
 * the model's training patch `[d, h, w]`): sliding window per model, mean of the softmax
 * over models, argmax. Returns the class map on the preprocessed grid (i fastest, like
 * `PreparedCase.label`) and the same map on the original image grid.
 */
export async function predictPrepared(
  prepared: PreparedCase,
  models: { predictor: Predictor; roi: [number, number, number] }[],
  opts: PredictPreparedOptions = {},
): Promise<{ preprocessed: Uint8Array; original: Volume; classes: number }> {
  if (models.length === 0)
    throw new DsdError('INFER_NO_MODEL', 'prediction needs at least one model')
  const vol = preparedVolume(prepared)
  let mean: Float32Array | null = null
  let K = 0
  for (let m = 0; m < models.length; m++) {
    const res = await slidingWindowInference(vol, models[m].roi, models[m].predictor, {
      overlap: opts.overlap,
      blend: opts.blend,
      mirror: opts.tta,
      swBatch: opts.swBatch,
      output: 'probabilities',
      signal: opts.signal,
      onProgress: opts.onProgress ? (p) => opts.onProgress!(m, p) : undefined,
    })
    if (!mean) {
      mean = res.data
      K = res.classes
    } else {
      if (res.classes !== K) {
        throw new DsdError(
          'INFER_CLASS_MISMATCH',
          `ensemble: model ${m + 1} predicts ${res.classes} classes but model 1 predicts ${K}; ensemble models trained on the same label map`,
          {},
        )
      }
      for (let i = 0; i < mean.length; i++) mean[i] += res.data[i]
    }
  }
  // The mean's argmax equals the sum's argmax: no division needed.
  const pre = argmaxClasses(mean!, K)
  const original = invertLabelMap(pre, prepared)
  return { preprocessed: pre, original, classes: K }
}
