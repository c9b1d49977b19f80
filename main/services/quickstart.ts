/**
 * The quick start (issue 14): train the `quick` preset on the bundled hippocampus sample, then
 * predict the held-out fold and score it. One pipeline for the app's "Quick start" button and
 * `dsd demo`:
 *
 * 1. `prepareQuickStart` (in-process, fast): the sample (imported if missing), the split
 *    QUICK_START.split (created if missing) and a new run folder from the quick preset;
 * 2. the `quickstart` job (`quickStartKind`, device queue): trains the run in the training
 *    worker (the `train` kind's own run, so pause, cancel, progress and the live curves work as
 *    for any run), then predicts and evaluates the held-out cases (`predictHeldout`, in-process
 *    with the inference and evaluation services, as `dsd predict` and `dsd evaluate` run them),
 *    writing runs/<id>/predictions/last and runs/<id>/metrics/last-original.* exactly as
 *    `dsd predict --run` and `dsd evaluate --run` do.
 */
import { existsSync } from 'node:fs'
import { z } from 'zod'
import { QUICK_START, QuickStartRequest, type QuickStartResult } from '../contract/quickstart'
import type { RunState } from '../contract/runs'
import { id } from '../contract/shapes'
import { DsdError } from '../errors'
import type { JobContext, JobKind } from '../jobs/system'
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

/** What predicting and scoring the held-out cases gives: the table written and its Dice figures. */
export interface HeldoutResult {
  predictionSet: string
  table: string
  cases: number
  meanDice: number | null
  dice: Record<string, number | null>
  seconds: number
  backend: string
}

/**
 * Predict the held-out (validation-fold) cases of a run with its last checkpoint and score them
 * on the original grid; writes what `dsd predict --run` and `dsd evaluate --run` write.
 * `signal` cancels between windows and between cases.
 */
export async function predictHeldout(
  workspace: string,
  runId: string,
  opts: { progress: (done: number, total: number, message: string) => void; signal?: AbortSignal },
): Promise<HeldoutResult> {
  const t0 = performance.now()
  const { initBackend } = await import('../engine/backends')
  const { readRunConfig } = await import('../workspace/runs')
  const { predictCases } = await import('./inference')
  const { evaluateRun, writeTable } = await import('./evaluation')
  const backend = await initBackend((await readRunConfig(workspace, runId)).backend)
  await predictCases({
    workspace,
    runIds: [runId],
    which: 'last',
    signal: opts.signal,
    onProgress: (p) => {
      const w = p.window ? ` · window ${p.window.done} / ${p.window.total}` : ''
      opts.progress(p.caseIndex, p.cases, `predicting held-out case ${p.caseIndex + 1} / ${p.cases} (${p.caseId})${w}`)
    },
  })
  const table = await evaluateRun(workspace, runId, {
    predictions: 'last',
    name: HELDOUT_TABLE,
    signal: opts.signal,
    onProgress: (done, total, caseId) => {
      opts.progress(done, total, `scoring held-out case ${done} / ${total} (${caseId})`)
    },
  })
  const files = await writeTable(table, runFiles(workspace, runId).metrics, HELDOUT_TABLE)
  const dice: Record<string, number | null> = {}
  for (const [label, s] of Object.entries(table.summary.labels)) dice[table.labels[label] ?? `class ${label}`] = s.dice.mean
  return {
    predictionSet: `run:${runId}/last`,
    table: files.find((f) => f.endsWith('.json'))!,
    cases: new Set(table.rows.map((r) => r.caseId)).size,
    meanDice: table.summary.overall.dice.mean,
    dice,
    seconds: (performance.now() - t0) / 1000,
    backend: backend.name,
  }
}

/**
 * The `quickstart` job kind: train the prepared run (the `train` kind's run, in its worker),
 * then predict and evaluate its held-out cases (in-process).
 */
export function quickStartKind(
  workspace: string,
  train: JobKind<{ runId: string }, RunState>,
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
      const state = await train.run({ runId }, ctx)
      if (state.status !== 'completed') throw new DsdError('QUICKSTART_NOT_TRAINED', `${runId} ended ${state.status}: ${state.message}`, { runId })
      const trainSeconds = (performance.now() - t0) / 1000
      ctx.progress(0, 0, 'predicting the held-out cases')
      const r = await predictHeldout(workspace, runId, { progress: (d, t, m) => ctx.progress(d, t, m), signal: ctx.signal })
      ctx.backend({ name: r.backend, reason: 'prediction of the held-out cases' })
      const { datasetId } = await import('../workspace/runs').then((m) => m.readRunConfig(workspace, runId))
      return {
        runId,
        datasetId,
        predictionSet: r.predictionSet,
        table: r.table,
        cases: r.cases,
        meanDice: r.meanDice,
        dice: r.dice,
        trainSeconds,
        predictSeconds: r.seconds,
        backend: r.backend,
      }
    },
  }
}
