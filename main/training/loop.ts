/**
 * The training loop of one run. It runs inside a worker thread (main/workers/train-worker.ts,
 * started by the `train` job kind) and owns the run folder while it runs. It reports through
 * `post` (TrainMessage) and is steered through `control` (pause and cancel, read between steps
 * and between validation windows).
 *
 * Reproducible and crash-safe: each epoch draws from its own generator (batches.ts), and each
 * epoch ends with an atomic checkpoint, the log and the state (run-record.ts), so a run killed at
 * any moment resumes from its last completed epoch and, on the deterministic JS CPU backend,
 * ends with exactly the weights and log of an uninterrupted run.
 */
import type { ErrorShape } from '../contract/errors'
import type { EpochLog, RunConfig, RunState } from '../contract/runs'
import { initBackend } from '../engine/backends'
import { precisionStatus, setWebgpuPrecision, type PrecisionStatus } from '../engine/kernels/webgpu/mode'
import { LossScaler } from '../engine/loss-scale'
import { createModel, type DsdModel } from '../engine/model'
import { AdamW } from '../engine/optimizer'
import { trainStep } from '../engine/train-step'
import { DsdError, isNoSpace, toErrorShape } from '../errors'
import { checkRunSplit } from '../workspace/cases'
import { runFiles, type EpochTiming } from '../workspace/run-layout'
import { readRunConfig, readRunState, writeRunState } from '../workspace/runs'
import { caseOrder, cropSamplers, epochRng, makeBatch } from './batches'
import { loadFoldData } from './fold-data'
import { checkVariantWeights } from './run-config'
import { recordStart, resumeRun, saveEpoch } from './run-record'
import { endEpoch, setStepLr } from './schedule'
import { validate } from './validate'

/** What the loop reports; `done` (completed or cancelled) or `error` comes last. */
export type TrainMessage =
  | { type: 'progress'; done: number; total: number; message: string }
  | { type: 'started'; backend: { name: string; reason: string; device?: string }; resumedFrom: number; precision: PrecisionStatus }
  | { type: 'step'; epoch: number; epochs: number; step: number; steps: number; loss: Record<string, number>; lr: number; voxelsPerSecond: number; etaSeconds: number }
  | { type: 'validation'; epoch: number; done: number; total: number }
  | { type: 'epoch'; log: EpochLog; timing: EpochTiming; state: RunState }
  | { type: 'state'; state: RunState }
  | { type: 'done'; state: RunState }
  | { type: 'error'; error: ErrorShape; state: RunState | null }

/** How the job that runs the loop steers it. */
export interface TrainControl {
  /** What is asked now: go on, pause at the next step, or stop. */
  requested(): 'run' | 'pause' | 'cancel'
  /** Block the thread while a pause is asked, for at most `ms`. */
  waitWhilePaused(ms: number): void
}

export interface TrainOptions {
  workspace: string
  runId: string
  control: TrainControl
  post: (m: TrainMessage) => void
}

/** Classify an error from a training step into a clear message. */
function explain(err: unknown, cfg: RunConfig | null, epoch: number, runId: string): { code: string; message: string; appMessage?: string } {
  const e = err as { code?: string; message?: string; appMessage?: string }
  const msg = e.message ?? String(err)
  const resume = `The last checkpoint (epoch ${epoch}) is intact: fix the cause and resume the run (Resume in the app's runs table, or \`dsd resume ${runId}\`).`
  const cause = explainCause(e, msg, cfg, runId, resume)
  // The app's words: the cause's own app message, and Resume in the runs table.
  const appResume = `The last checkpoint (epoch ${epoch}) is intact: fix the cause and press Resume in the runs table.`
  const appCause = e.appMessage ? explainCause(e, e.appMessage, cfg, runId, appResume) : explainCause(e, msg, cfg, runId, appResume)
  return { ...cause, appMessage: appCause.message }
}

function explainCause(e: { code?: string }, msg: string, cfg: RunConfig | null, runId: string, resume: string): { code: string; message: string } {
  if (e.code === 'DISK_FULL' || isNoSpace(e.code)) {
    return { code: 'DISK_FULL', message: `No space left to save ${runId}: ${msg}. ${resume}` }
  }
  if (/out of memory|OOM|Array buffer allocation failed|Invalid typed array length|allocation/i.test(msg)) {
    const at = cfg ? ` at patch ${cfg.model.patch.join('×')} × batch ${cfg.batch}` : ''
    return { code: 'OUT_OF_MEMORY', message: `Out of memory${at} (${msg}). Use a smaller patch, batch or preset. ${resume}` }
  }
  if (e.code === 'CANCELLED') return { code: 'CANCELLED', message: `Cancelled. ${resume}` }
  return { code: e.code ?? 'TRAINING_FAILED', message: `${msg}. ${resume}` }
}

/** Train (or resume) one run to its end, or until cancelled. Never throws: errors end as a failed state. */
export async function trainRun(opts: TrainOptions): Promise<RunState> {
  const { workspace, runId, control, post } = opts
  const files = runFiles(workspace, runId)
  let state: RunState = await readRunState(workspace, runId)
  /** The epoch of the newest checkpoint on disk (what a resume continues from). */
  let checkpointEpoch = state.epoch
  let cfg: RunConfig | null = null
  let model: DsdModel | null = null
  let optimizer: AdamW | null = null
  const prevPrecision = setWebgpuPrecision(null)
  const setState = async (patch: Partial<RunState>) => {
    state = { ...state, ...patch, updatedAt: new Date().toISOString() }
    await writeRunState(workspace, runId, state)
    return state
  }
  try {
    cfg = await readRunConfig(workspace, runId)
    checkVariantWeights(cfg, files.config)
    // The split must still hold the partition the run was created (and trained) on.
    await checkRunSplit(workspace, cfg)
    const backend = await initBackend(cfg.backend)
    // the run's precision (its config, not DSD_PRECISION); f16 trains with dynamic loss scaling
    setWebgpuPrecision(cfg.precision ?? 'f32')
    const precision = precisionStatus()
    const scaler = precision.effective === 'f16' ? new LossScaler() : null
    const data = await loadFoldData(workspace, cfg, (done, total) => post({ type: 'progress', done, total, message: `preparing case ${done} / ${total}` }))
    if (data.train.length === 0) throw new DsdError('RUN_NO_TRAINING_CASES', `fold ${cfg.fold} of split "${cfg.split}" has no training cases`, {})
    model = createModel({
      backbone: cfg.model.backbone,
      preset: cfg.model.preset,
      inChannels: data.inChannels,
      numClasses: data.numClasses,
      patch: cfg.model.patch,
      seed: cfg.seed,
      ...(cfg.model.filters ? { filters: cfg.model.filters } : {}),
    })
    optimizer = new AdamW({ lr: cfg.optimizer.lr, weightDecay: cfg.optimizer.weightDecay })
    const steps = cfg.stepsPerEpoch ?? data.train.length
    const resume = await resumeRun(workspace, runId, files, cfg, model, optimizer, steps, scaler)
    const { scheduler } = resume
    let best = resume.best
    checkpointEpoch = resume.epoch
    await recordStart(files, cfg, data, model, backend, resume.epoch, precision)
    post({ type: 'started', backend, resumedFrom: resume.epoch, precision })
    post({ type: 'state', state: await setState({ status: 'running', epoch: resume.epoch, epochs: cfg.epochs, message: resume.epoch ? `resumed from epoch ${resume.epoch}` : 'running' }) })

    const samplers = cropSamplers(data.train, cfg)
    const voxelsPerStep = cfg.batch * cfg.model.patch[0] * cfg.model.patch[1] * cfg.model.patch[2]
    for (let epoch = resume.epoch + 1; epoch <= cfg.epochs; epoch++) {
      const t0 = performance.now()
      const rng = epochRng(cfg.seed, epoch)
      const order = caseOrder(data.train.length, rng)
      const sums: Record<string, number> = {}
      let skipped = 0
      // The epoch's log records its first rate; a poly schedule changes it every step.
      const lr = setStepLr(scheduler, optimizer, epoch, 0, steps)
      for (let s = 0; s < steps; s++) {
        // Pause and cancel are honoured between steps.
        if (control.requested() === 'pause') {
          post({ type: 'state', state: await setState({ status: 'paused', message: `paused in epoch ${epoch}` }) })
          while (control.requested() === 'pause') control.waitWhilePaused(1000)
          post({ type: 'state', state: await setState({ status: 'running', message: 'running' }) })
        }
        if (control.requested() === 'cancel') throw new DsdError('CANCELLED', 'cancelled by the user', {})
        const stepLr = setStepLr(scheduler, optimizer, epoch, s, steps)
        const { x, y } = makeBatch(samplers[order[s % order.length]], cfg, rng, data.inChannels)
        let terms: Record<string, number>
        try {
          const r = await trainStep(model, optimizer, x, y, cfg.loss, scaler)
          terms = { total: r.loss, ...(r.terms as Record<string, number>) }
          if (r.skipped) skipped++
        } finally {
          x.dispose()
          y.dispose()
        }
        for (const [k, v] of Object.entries(terms)) sums[k] = (sums[k] ?? 0) + v
        const elapsed = (performance.now() - t0) / 1000
        post({
          type: 'step',
          epoch,
          epochs: cfg.epochs,
          step: s + 1,
          steps,
          loss: terms,
          lr: stepLr,
          voxelsPerSecond: ((s + 1) * voxelsPerStep) / elapsed,
          etaSeconds: (elapsed / (s + 1)) * ((cfg.epochs - epoch + 1) * steps - (s + 1)),
        })
      }
      endEpoch(scheduler, optimizer, epoch, steps)
      const entry: EpochLog = { epoch, lr, loss: Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / steps])), steps }
      if (scaler) Object.assign(entry, { skippedSteps: skipped, lossScale: scaler.scale })
      if (cfg.validateEvery > 0 && data.val.length > 0 && (epoch % cfg.validateEvery === 0 || epoch === cfg.epochs)) {
        const v = await validate(model, data.val, cfg, data.numClasses, () => control.requested() === 'cancel', (done) =>
          post({ type: 'validation', epoch, done, total: data.val.length }),
        )
        entry.valDice = v.perClass
        entry.valMeanDice = v.mean
      }
      const seconds = (performance.now() - t0) / 1000
      const isBest = entry.valMeanDice !== undefined && (best.dice === null || entry.valMeanDice > best.dice)
      if (isBest) best = { epoch, dice: entry.valMeanDice! }
      const timing: EpochTiming = { epoch, seconds, voxelsPerSecond: (steps * voxelsPerStep) / seconds, backend: backend.name }
      await saveEpoch(files, { runId, cfg, model, optimizer, scheduler, best, isBest, entry, timing, lossScale: scaler?.state() }, resume)
      checkpointEpoch = epoch
      const next = await setState({ epoch, bestEpoch: best.epoch, bestMeanDice: best.dice, message: `epoch ${epoch}/${cfg.epochs}` })
      post({ type: 'epoch', log: entry, timing, state: next })
    }
    const done = await setState({ status: 'completed', message: `completed ${cfg.epochs} epochs` })
    post({ type: 'done', state: done })
    return done
  } catch (err) {
    const { code, message, appMessage } = explain(err, cfg, checkpointEpoch, runId)
    const status = code === 'CANCELLED' ? 'cancelled' : 'failed'
    const final = await setState({ status, message, epoch: checkpointEpoch }).catch(() => ({ ...state, status, message }) as RunState)
    if (status === 'cancelled') post({ type: 'done', state: final })
    else post({ type: 'error', error: { ...toErrorShape(err), code, message, ...(appMessage ? { appMessage } : {}) }, state: final })
    return final
  } finally {
    model?.dispose()
    optimizer?.dispose()
    setWebgpuPrecision(prevPrecision)
  }
}
