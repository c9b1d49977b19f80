/**
 * Prediction: load one or more trained checkpoints, preprocess each case exactly as training
 * does (the same `preprocessVolumes` settings and label map, through the dataset cache for
 * workspace cases), run sliding-window inference (mean of the softmax over checkpoints for an
 * ensemble), take the argmax, map the label map back onto the original image grid with the data
 * team's inverse mapping (`invertLabelMap`) and write it as NIfTI with the source affine
 * (atomically). Works on cases of a workspace dataset or on arbitrary image files.
 *
 * Output folder (default `runs/<runId>/predictions/<name>/` for one run):
 *   <caseId>.nii.gz                 class indices on the original image grid (uint8)
 *   preprocessed/<caseId>.nii.gz    the same prediction on the preprocessed grid (for
 *                                   evaluation on that grid, as the paper does)
 *   predictions.json                what was predicted with what (see {@link PredictionsManifest})
 *
 * The steps, one module each under main/services/inference/: resolve the models (`models.ts`:
 * runs, checkpoints, in-memory models, the shared preprocessing) → resolve the cases
 * (`cases.ts`) → predict one case (`predict.ts`) → write it and the manifest (`write.ts`).
 */
import { join } from 'node:path'
import { DsdError } from '../errors'
import { prepareCase, resolveCases } from './inference/cases'
import { resolveModels, resolveSource } from './inference/models'
import { predictPrepared } from './inference/predict'
import type { PredictedCase, PredictOptions, PredictProgress, PredictResult } from './inference/types'
import { outputFolder, writeCase, writePredictionsManifest } from './inference/write'

export type {
  CheckpointSpec,
  FileCase,
  InMemoryModel,
  LoadedModel,
  PredictedCase,
  PredictionsManifest,
  PredictOptions,
  PredictProgress,
  PredictResult,
} from './inference/types'
export { loadModelFromCheckpoint, resolveCheckpointFile, toPreprocessSettings } from './inference/models'
export { predictPrepared, preparedVolume, type PredictPreparedOptions } from './inference/predict'
export { readPredictionsManifest, writeLabelNifti } from './inference/write'

function cancelled(done: number, total: number): DsdError {
  return new DsdError(
    'CANCELLED',
    `prediction cancelled after ${done} of ${total} cases; the finished cases are written`,
    { done, total },
  )
}

/**
 * Predict many cases with one run, an ensemble of runs (folds) or explicit checkpoints, and
 * write the predictions as NIfTI on each case's original grid (see the module comment).
 */
export async function predictCases(opts: PredictOptions): Promise<PredictResult> {
  const which = opts.which ?? 'last'
  const src = await resolveSource(opts)
  const { jobs, fold } = await resolveCases(opts, src)
  const outDir = outputFolder(opts, src, which)
  // Sliding-window settings: the options, else the first run's config.
  const inf = src.runs[0]?.inference
  const settings = {
    overlap: opts.overlap ?? inf?.overlap ?? 0.25,
    blend: opts.blend ?? inf?.blend ?? 'constant',
    tta: opts.tta ?? inf?.mirror ?? false,
    swBatch: opts.swBatch ?? 1,
  }
  const { models, classes, inChannels, dispose } = await resolveModels(opts, src, which)
  try {
    const done: PredictedCase[] = []
    const run = { runIds: opts.runIds ?? [], fold, which: (opts.runIds ?? []).length ? which : null }
    const write = () => writePredictionsManifest(outDir, src, run, models, settings, classes, done)
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]
      if (opts.signal?.aborted) throw cancelled(i, jobs.length)
      const t0 = Date.now()
      const progress = (p: Omit<PredictProgress, 'caseIndex' | 'cases' | 'caseId'>) =>
        opts.onProgress?.({ caseIndex: i, cases: jobs.length, caseId: job.id, ...p })
      progress({ stage: 'load' })
      const prepared = await prepareCase(job, src)
      if (prepared.channels !== inChannels) {
        throw new DsdError(
          'INFER_CHANNEL_MISMATCH',
          `${job.images[0]}: case "${job.id}" has ${prepared.channels} channel(s) but the model was trained on ${inChannels}; give one image per training channel`,
          { caseId: job.id },
        )
      }
      const res = await predictPrepared(
        prepared,
        models.map((m) => ({ predictor: m.predictor, roi: m.patch })),
        {
          ...settings,
          signal: opts.signal,
          onProgress: (model, w) => progress({ stage: 'infer', model, models: models.length, window: w }),
        },
      )
      progress({ stage: 'write' })
      done.push(await writeCase(outDir, job, prepared, res, opts.savePreprocessed ?? true, () => (Date.now() - t0) / 1000))
      await write()
      progress({ stage: 'done' })
    }
    const manifest = await write()
    return { outDir, manifestFile: join(outDir, 'predictions.json'), manifest }
  } finally {
    dispose()
  }
}
