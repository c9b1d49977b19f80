/**
 * The job kinds of this app, registered on one JobSystem (main/jobs/system.ts):
 *
 * | kind             | runs                        | queue  | pause | after a restart   |
 * |------------------|-----------------------------|--------|-------|-------------------|
 * | datasets.import  | in-process (DatasetService) | io     | no    | failed, start again |
 * | datasets.audit   | in-process (DatasetService) | io     | no    | failed, start again |
 * | train            | worker thread (train-worker)| device | yes   | queued again, resumes from its checkpoint |
 * | predict          | worker thread (inference-worker) | device | no | failed, start again |
 * | evaluate         | worker thread (inference-worker) | io     | no | failed, start again |
 * | export           | worker thread (inference-worker, export-job.ts) | io | no | failed, start again |
 * | quickstart       | train-worker, then inference-worker (predict, evaluate) (services/quickstart.ts) | device | yes (training) | failed; resume the run |
 *
 * A new kind (export, …): a params schema, a label, a queue, and `run` (in-process, or
 * `runWorker` with a worker entry under main/workers/).
 */
import { basename } from 'node:path'
import { z } from 'zod'
import { commands, type CommandParams } from '../contract'
import { PredictionSetRef } from '../contract/review'
import type { RunState } from '../contract/runs'
import { id } from '../contract/shapes'
import { DsdError } from '../errors'
import { JobSystem, type JobKind } from '../jobs/system'
import { runWorker } from '../jobs/worker'
import type { ExportResult } from '../contract/export'
import { exportKind } from './export-job'
import type { TrainMessage } from '../training/loop'
import type { InferenceMessage, InferenceTask, InferenceWorkerData, TrainWorkerData } from '../workers/protocol'
import { workspaceJobStore } from '../workspace/jobs'
import { runFiles } from '../workspace/run-layout'
import { readRunState, writeRunState } from '../workspace/runs'
import { predictionTarget } from './predict-evaluate'
import { setKey } from './prediction-sets'
import { quickStartKind } from './quickstart'

async function datasetService(workspace: string) {
  const { createDatasetService } = await import('./datasets')
  return createDatasetService(workspace)
}

/** Import a dataset folder (progress: cases). */
export function importKind(workspace: string): JobKind<CommandParams<'datasets.import'>, unknown> {
  return {
    name: 'datasets.import',
    params: commands['datasets.import'].request,
    queue: 'io',
    label: (p) => `Import ${basename(p.path.replace(/[\\/]+$/, '')) || p.path}`,
    run: async (p, ctx) => (await datasetService(workspace)).importForTask(p, ctx),
  }
}

/** The dataset doctor on an imported dataset (progress: cases). */
export function auditKind(workspace: string): JobKind<CommandParams<'datasets.audit'>, unknown> {
  return {
    name: 'datasets.audit',
    params: commands['datasets.audit'].request,
    queue: 'io',
    label: (p) => `Audit ${p.datasetId}`,
    subject: (p) => p.datasetId,
    run: async (p, ctx) => (await datasetService(workspace)).auditForTask(p.datasetId, ctx),
  }
}

export interface TrainKindOptions {
  /** Heap cap of each training worker in MB; default DSD_WORKER_HEAP_MB, else Node's. */
  workerHeapMb?: number
  /**
   * Every message of a run, as it comes: the worker's own, and the states this kind writes when
   * a run is queued, cancelled before it started, or its worker died. The app turns them into
   * run events; the CLI prints them.
   */
  onRunMessage?: (runId: string, message: TrainMessage) => void
}

/**
 * Train (or resume) one run in a worker thread. Progress is in steps over the whole run; a
 * worker that dies leaves the run failed, naming the epoch of its intact checkpoint.
 */
export function trainKind(workspace: string, options: TrainKindOptions = {}): JobKind<{ runId: string }, RunState> {
  const tell = (runId: string, m: TrainMessage) => options.onRunMessage?.(runId, m)
  const setState = async (runId: string, patch: Partial<RunState>) => {
    const state: RunState = { ...(await readRunState(workspace, runId)), ...patch, updatedAt: new Date().toISOString() }
    await writeRunState(workspace, runId, state)
    tell(runId, { type: 'state', state })
    return state
  }
  return {
    name: 'train',
    params: z.object({ runId: id }).strict(),
    queue: 'device',
    pausable: true,
    restartable: true,
    label: (p) => `Train ${p.runId}`,
    subject: (p) => p.runId,
    queued: async ({ runId }) => {
      await setState(runId, { status: 'queued', message: 'queued' })
    },
    cancelledBeforeStart: async ({ runId }) => {
      await setState(runId, { status: 'cancelled', message: 'cancelled before it started' })
    },
    run: async ({ runId }, ctx) => {
      let last: RunState | null = null
      let at = { done: 0, total: 0 }
      const data: Omit<TrainWorkerData, 'control'> = { workspace, runId }
      let final: TrainMessage
      try {
        final = await runWorker<TrainMessage>('train-worker', data, ctx, {
          what: 'the training worker',
          heapMb: options.workerHeapMb,
          isFinal: (m) => m.type === 'done' || m.type === 'error',
          onMessage: (m) => {
            if ('state' in m && m.state) last = m.state
            if (m.type === 'step') {
              at = { done: (m.epoch - 1) * m.steps + m.step, total: m.epochs * m.steps }
              ctx.progress(at.done, at.total, `epoch ${m.epoch} / ${m.epochs} · step ${m.step} / ${m.steps}`)
            } else if (m.type === 'validation') {
              ctx.progress(at.done, at.total, `epoch ${m.epoch} · validating case ${m.done} / ${m.total}`)
            } else if (m.type === 'state' && (m.state.status === 'paused' || m.state.status === 'running')) {
              ctx.paused(m.state.status === 'paused', m.state.message)
            }
            tell(runId, m)
          },
        })
      } catch (err) {
        const e = err as DsdError
        if (e.code !== 'WORKER_DIED' && e.code !== 'OUT_OF_MEMORY') throw err
        const state = await diedState(workspace, runId, last, e.message, ctx.closing)
        tell(runId, { type: 'error', error: { code: e.code, message: state.message, details: {} }, state })
        throw new DsdError(e.code, state.message, { runId })
      }
      if (final.type === 'error') throw new DsdError(final.error.code, final.error.message, final.error.details, final.error.appMessage)
      if (final.type === 'done' && final.state.status === 'cancelled') throw new DsdError('CANCELLED', final.state.message, { runId })
      return (final as { state: RunState }).state
    },
  }
}

/** A worker that died without a final message: record a clear failed (or stopped) state. */
async function diedState(workspace: string, runId: string, last: RunState | null, why: string, closing: boolean): Promise<RunState> {
  const state = last ?? (await readRunState(workspace, runId).catch(() => null))
  // The newest checkpoint may be one epoch ahead of the state (died between the two writes).
  let epoch = state?.epoch ?? 0
  try {
    const { readCheckpointHeader } = await import('../engine/checkpoint')
    const meta = readCheckpointHeader(runFiles(workspace, runId).lastCheckpoint).metadata as { epoch?: number }
    if (typeof meta?.epoch === 'number') epoch = meta.epoch
  } catch {
    // no checkpoint yet, or unreadable: resume will say so
  }
  const next: RunState = {
    status: closing ? 'cancelled' : 'failed',
    epoch,
    epochs: state?.epochs ?? 0,
    bestEpoch: state?.bestEpoch ?? null,
    bestMeanDice: state?.bestMeanDice ?? null,
    message: `${closing ? 'stopped when the app closed' : why}. The last checkpoint (epoch ${epoch}) is intact: resume the run (Resume in the app's runs table, or \`dsd resume ${runId}\`).`,
    updatedAt: new Date().toISOString(),
  }
  await writeRunState(workspace, runId, next).catch(() => undefined)
  return next
}

/** Run one inference task in the inference worker; its result, or its error as a DsdError. */
async function inferenceJob(workspace: string, task: InferenceTask, ctx: Parameters<JobKind['run']>[1], heapMb?: number): Promise<unknown> {
  const data: Omit<InferenceWorkerData, 'control'> = { workspace, ...task }
  const final = await runWorker<InferenceMessage>('inference-worker', data, ctx, {
    what: { predict: 'the prediction worker', evaluate: 'the evaluation worker', export: 'the export worker' }[task.task],
    heapMb,
    isFinal: (m) => m.type === 'done' || m.type === 'error',
  })
  if (final.type === 'error') throw new DsdError(final.error.code, final.error.message, final.error.details, final.error.appMessage)
  return (final as { result: unknown }).result
}

/**
 * Predict with one run or an ensemble (`predictCases` in the inference worker); progress in
 * cases (with the sliding-window position), cancel between windows (finished cases stay
 * written). Its subject is the set's key (`run:<id>/<name>`), as is its evaluate job's.
 */
export function predictKind(workspace: string, options: { workerHeapMb?: number } = {}): JobKind<CommandParams<'predictions.predict'>, unknown> {
  return {
    name: 'predict',
    params: commands['predictions.predict'].request,
    queue: 'device',
    label: (p) => (p.runIds.length === 1 ? `Predict ${p.runIds[0]} (${p.which})` : `Predict an ensemble of ${p.runIds.length} runs (${p.which})`),
    subject: (p) => predictionTarget(workspace, p).key,
    run: (p, ctx) => inferenceJob(workspace, { task: 'predict', request: p }, ctx, options.workerHeapMb),
  }
}

/** Score a prediction set against its ground truth and write its metric table (`evaluateSet`). */
export function evaluateKind(workspace: string, options: { workerHeapMb?: number } = {}): JobKind<{ ref: PredictionSetRef }, unknown> {
  return {
    name: 'evaluate',
    params: z.object({ ref: PredictionSetRef }).strict(),
    queue: 'io',
    label: (p) => `Evaluate ${setKey(p.ref)}`,
    subject: (p) => setKey(p.ref),
    run: (p, ctx) => inferenceJob(workspace, { task: 'evaluate', ref: p.ref }, ctx, options.workerHeapMb),
  }
}

export interface AppJobsOptions extends TrainKindOptions {
  /** Keep the job list in `<workspace>/jobs.json` across restarts (the app does; the CLI does not). */
  persist?: boolean
  /** Minimum time between `progress` events of one job (default 100 ms). */
  progressIntervalMs?: number
}

/** The job system of a workspace with every kind of this app registered. */
export function createJobSystem(workspace: string, options: AppJobsOptions = {}): JobSystem {
  const train = trainKind(workspace, options)
  return new JobSystem({
    store: options.persist ? workspaceJobStore(workspace) : undefined,
    progressIntervalMs: options.progressIntervalMs,
  })
    .register(importKind(workspace))
    .register(auditKind(workspace))
    .register(train)
    .register(predictKind(workspace, options))
    .register(evaluateKind(workspace, options))
    .register(exportKind((request, ctx) => inferenceJob(workspace, { task: 'export', request }, ctx, options.workerHeapMb) as Promise<ExportResult>))
    .register(quickStartKind(workspace, train, (task, ctx) => inferenceJob(workspace, task, ctx, options.workerHeapMb)))
}
