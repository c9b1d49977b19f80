/**
 * The quick start (issue 14) in the contract: what it trains (the one definition the Datasets
 * and Training pages' button, the `quickstart` job kind and `dsd demo` share), what starting it
 * takes and what it answers. The recipe itself is RUN_PRESETS.quick (main/contract/runs.ts,
 * measured in docs/quickstart-recipe.md).
 */
import { z } from 'zod'
import { JobInfo } from './jobs'
import type { ModelPreset, Variant } from './runs'
import { id } from './shapes'

/** The bundled sample, a seeded 5-fold split, fold 0, DSD, the `quick` preset. */
export const QUICK_START = {
  /** The name the bundled sample is imported under (main/services/sample.ts). */
  datasetName: 'hippocampus-sample',
  /** Created when missing; an existing split of this name is used as it is. */
  split: { name: 'quick-k5', folds: 5, seed: 0 },
  fold: 0,
  variant: 'DSD' as Variant,
  preset: 'quick' as ModelPreset,
  seed: 0,
  /**
   * No validation inside the run: the job predicts and scores the held-out fold once at the end
   * (the same forward, written as files Review opens), so it is not computed twice.
   */
  validateEvery: 0,
  /** Run-id prefix: the run is `quick-start-DSD-fold0`, then `quick-start-2-DSD-fold0`, … */
  name: 'quick-start',
} as const

export const QuickStartRequest = z
  .object({
    /** Weights and crops seed (default QUICK_START.seed). */
    seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
    /** A shorter run (tests, a first look): epochs and steps per epoch; default the preset's. */
    epochs: z.number().int().min(1).max(1000).optional(),
    stepsPerEpoch: z.number().int().min(1).max(10000).optional(),
  })
  .strict()
export type QuickStartRequest = z.infer<typeof QuickStartRequest>

/** What a finished quick start reports (the `quickstart` job's result). */
export const QuickStartResult = z.object({
  runId: id,
  datasetId: id,
  /** The held-out predictions as a Review prediction set: `run:<runId>/last`. */
  predictionSet: z.string(),
  /** The evaluation table written (runs/<id>/metrics/last-original.json). */
  table: z.string(),
  /** Held-out cases scored. */
  cases: z.number().int(),
  /** Mean over every (case, label) Dice of the held-out cases (`dsd evaluate`'s figure). */
  meanDice: z.number().nullable(),
  /** Label name → mean Dice over the held-out cases. */
  dice: z.record(z.string(), z.number().nullable()),
  /** Wall time of training, and of prediction + evaluation. */
  trainSeconds: z.number(),
  predictSeconds: z.number(),
  backend: z.string(),
})
export type QuickStartResult = z.infer<typeof QuickStartResult>

export const quickStartCommands = {
  /**
   * Start the quick start on the bundled sample: imports it if missing, creates the split if
   * missing and the run, and queues a `quickstart` job (train, then predict and evaluate the
   * held-out fold). Progress and curves arrive as for any training run.
   */
  'quickstart.start': {
    request: QuickStartRequest,
    response: z.object({ runId: id, datasetId: id, job: JobInfo }),
  },
} as const
