/**
 * The training service: turns a run form (one run, or all folds × a set of variants) into run
 * folders and queues them on the job queue. Used by the CLI and (through the contract) the UI.
 */
import { toSafeId } from '../contract/ids'
import { DsdError } from '../errors'
import { ablation } from '../engine/loss'
import { JobQueue } from './jobs'
import { createDatasetService } from './datasets'
import { createRun } from '../workspace/runs'
import type { RunConfig, Variant } from '../workspace/run-layout'

/** A run form: everything of a RunConfig except the id/fold/variant, plus the batch axes. */
export interface RunForm extends Omit<RunConfig, 'id' | 'fold' | 'variant'> {
  /** Folds to train (0-based); default all folds of the split. */
  folds?: number[]
  variants: Variant[]
  /** Run-id prefix; default `<dataset>-<backbone>-<preset>`. */
  name?: string
}

/** The paper's recipe (spec §4) as defaults, scaled by the caller where needed. */
export const RUN_DEFAULTS = {
  model: { backbone: 'dynunet', preset: 'small', patch: [32, 32, 32] },
  loss: { eta: 1, alpha1: 1, alpha2: 1, temperature: 3 },
  batch: 2,
  epochs: 300,
  optimizer: { lr: 1e-3, weightDecay: 1e-5 },
  seed: 100,
  backend: 'auto',
  validateEvery: 1,
  inference: { overlap: 0.25, blend: 'constant', mirror: false },
  preprocessing: { preset: 'mri' },
  augment: 'mmwhs',
} as const

export function runId(prefix: string, variant: Variant, fold: number): string {
  return toSafeId(`${prefix}-${variant}-fold${fold}`)
}

/** Create the run folders of a form (refuses existing ids). Returns them in queue order. */
export async function createRuns(workspace: string, form: RunForm): Promise<RunConfig[]> {
  const datasets = createDatasetService(workspace)
  await datasets.assertReadable(form.datasetId) // DATASET_UNREADABLE_CASES names them
  const { split } = await datasets.getSplit(form.datasetId, form.split)
  const folds = form.folds ?? split.folds.map((_, i) => i)
  for (const f of folds) {
    if (!Number.isInteger(f) || f < 0 || f >= split.folds.length) {
      throw new DsdError('RUN_FOLD_MISSING', `split "${form.split}" has folds 0–${split.folds.length - 1}; fold ${f} does not exist`, {})
    }
  }
  if (form.variants.length === 0) throw new DsdError('RUN_CONFIG_INVALID', 'choose at least one variant (Basic, DS, SDD, SDE, DSD)', {})
  const prefix = form.name ?? `${form.datasetId}-${form.model.backbone}-${form.model.preset}`
  const { folds: _f, variants, name: _n, ...base } = form
  const out: RunConfig[] = []
  // Folds outermost, so a comparison of variants on fold 0 is complete first.
  for (const fold of folds) {
    for (const variant of variants) {
      // Named variants record the weights they train with; only 'custom' takes the form's.
      const loss = variant === 'custom' ? base.loss : { ...ablation(variant), temperature: base.loss.temperature }
      out.push(await createRun(workspace, { ...base, loss, id: runId(prefix, variant, fold), fold, variant }))
    }
  }
  return out
}

export { JobQueue }
