/**
 * The quick start (issue 14): train the `quick` preset on the bundled hippocampus sample, then
 * predict the held-out fold and score it. One pipeline for the app's "Quick start" button and
 * `dsd demo`:
 *
 * 1. `prepareQuickStart` (in-process, fast): the sample (imported if missing), the split
 *    QUICK_START.split (created if missing) and a new run folder from the quick preset;
 * 2. the `quickstart` job (`quickStartKind`, device queue): trains the run in the training
 *    worker (the `train` kind's own run, so pause, cancel, progress and the live curves work as
 *    for any run), then predicts and evaluates the held-out cases in the inference worker (the
 *    `predict` and `evaluate` kinds' tasks), writing runs/<id>/predictions/last and
 *    runs/<id>/metrics/last-original.* exactly as `dsd predict --run` and `dsd evaluate --run` do.
 */
import { existsSync } from 'node:fs'
import { z } from 'zod'
import { QUICK_START, QuickStartRequest, type QuickStartResult } from '../contract/quickstart'
import type { RunState } from '../contract/runs'
import { id } from '../contract/shapes'
import { DsdError } from '../errors'
import type { JobContext, JobKind } from '../jobs/system'
import type { InferenceTask } from '../workers/protocol'
import { runId as runIdOf } from '../training/run-config'
import { runFiles } from '../workspace/run-layout'
import { createDatasetService } from './datasets'
import { ensureSampleDataset } from './sample'
import { createRuns } from './training'

/** The evaluation table the quick start writes (the name `dsd evaluate --run` gives it). */
export const HELDOUT_TABLE = 'last-original'

/**
 * Make the quick start's run: the sample (imported if missing), its split (created if missing)
 * and a run folder with a free id. Returns the run and dataset ids.
 */
export async function prepareQuickStart(
  workspace: string,
  request: QuickStartRequest = {},
  log: (line: string) => void = () => undefined,
): Promise<{ runId: string; datasetId: string }> {
  const req = QuickStartRequest.parse(request)
  const sample = await ensureSampleDataset(workspace)
  if (!sample) {
    throw new DsdError(
      'SAMPLE_MISSING',
      'The bundled sample (resources/sample/hippocampus/dataset.json) is not in this installation; reinstall DSD Studio, or train your own dataset from the Training page.',
      {},
    )
  }
  const { datasetId } = sample
  if (sample.imported) log(`imported the bundled sample as "${datasetId}"`)
  const datasets = createDatasetService(workspace)
  const { name, folds, seed } = QUICK_START.split
  if (!(await datasets.listSplits(datasetId)).some((s) => s.name === name)) {
    await datasets.createSplit(datasetId, { name, folds, seed })
    log(`created split "${name}" (${folds} folds, seed ${seed})`)
  }
  let prefix: string = QUICK_START.name
  for (let n = 2; existsSync(runFiles(workspace, runIdOf(prefix, QUICK_START.variant, QUICK_START.fold)).dir); n++) {
    prefix = `${QUICK_START.name}-${n}`
  }
  const [cfg] = await createRuns(workspace, {
    datasetId,
    split: name,
    folds: [QUICK_START.fold],
    variants: [QUICK_START.variant],
    preset: QUICK_START.preset,
    seed: req.seed ?? QUICK_START.seed,
    name: prefix,
    validateEvery: QUICK_START.validateEvery,
    ...(req.epochs ? { epochs: req.epochs } : {}),
    ...(req.stepsPerEpoch ? { stepsPerEpoch: req.stepsPerEpoch } : {}),
  })
  return { runId: cfg.id, datasetId }
}

/** An inference task run in the inference worker (jobs.ts `inferenceJob`): its result. */
export type RunInference = (task: InferenceTask, ctx: JobContext) => Promise<unknown>

/**
 * The Dice figures of a run's held-out table (written by the `evaluate` task): per label (by
 * name) and over every (case, label) cell.
 */
export async function heldoutDice(file: string): Promise<{ cases: number; meanDice: number | null; dice: Record<string, number | null> }> {
  const { readTable } = await import('./evaluation')
  const t = await readTable(file)
  const dice: Record<string, number | null> = {}
  for (const [label, s] of Object.entries(t.summary.labels)) dice[t.labels[label] ?? `class ${label}`] = s.dice.mean
  return { cases: new Set(t.rows.map((r) => r.caseId)).size, meanDice: t.summary.overall.dice.mean, dice }
}

/**
 * The `quickstart` job kind: train the prepared run (the `train` kind's run, in its worker),
 * then predict its held-out (validation-fold) cases with the last checkpoint and evaluate them on
 * the original grid, in the inference worker (`infer`: the `predict` and `evaluate` kinds' own
 * tasks), so the app's server stays responsive.
 */
export function quickStartKind(
  workspace: string,
  train: JobKind<{ runId: string }, RunState>,
  infer: RunInference,
): JobKind<{ runId: string }, QuickStartResult> {
  return {
    name: 'quickstart',
    params: z.object({ runId: id }).strict(),
    queue: 'device',
    pausable: true,
    label: (p) => `Quick start ${p.runId}`,
    subject: (p) => p.runId,
    queued: (p) => train.queued?.(p),
    cancelledBeforeStart: (p) => train.cancelledBeforeStart?.(p),
    run: async ({ runId }, ctx: JobContext) => {
      const t0 = performance.now()
      // The job's context, noting the backend the workers report as they start.
      let backend = 'unknown'
      const noting: JobContext = Object.assign(Object.create(ctx) as JobContext, {
        backend: (b: Parameters<JobContext['backend']>[0]) => {
          backend = b.name
          ctx.backend(b)
        },
      })
      const state = await train.run({ runId }, noting)
      if (state.status !== 'completed') throw new DsdError('QUICKSTART_NOT_TRAINED', `${runId} ended ${state.status}: ${state.message}`, { runId })
      const trainSeconds = (performance.now() - t0) / 1000
      const t1 = performance.now()
      ctx.progress(0, 0, 'predicting the held-out cases')
      await infer({ task: 'predict', request: { runIds: [runId], which: 'last', evaluate: false } }, noting)
      const ref = { kind: 'run' as const, runId, set: 'last' }
      const evaluated = (await infer({ task: 'evaluate', ref }, noting)) as { files: string[] }
      const table = evaluated.files.find((f) => f.endsWith(`${HELDOUT_TABLE}.json`))
      if (!table) throw new DsdError('QUICKSTART_NO_TABLE', `the evaluation of ${runId} wrote no ${HELDOUT_TABLE}.json`, { runId })
      const r = await heldoutDice(table)
      const { readRunConfig } = await import('../workspace/runs')
      const { datasetId } = await readRunConfig(workspace, runId)
      return {
        runId,
        datasetId,
        predictionSet: `run:${runId}/last`,
        table,
        cases: r.cases,
        meanDice: r.meanDice,
        dice: r.dice,
        trainSeconds,
        predictSeconds: (performance.now() - t1) / 1000,
        backend,
      }
    },
  }
}
