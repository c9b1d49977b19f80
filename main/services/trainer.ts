/**
 * The training loop of one run. It runs inside a worker thread (main/workers/train-worker.ts)
 * and owns the run folder while it runs.
 *
 * Reproducibility and crash safety:
 * - everything random in epoch e (case order, crop centres, augmentation) comes from a
 *   generator seeded by (seed, e), so an epoch replayed after a crash draws the same numbers;
 * - at the end of every epoch the checkpoint (weights, AdamW moments and step, StepLR epoch,
 *   epoch number, data-order position, best score) is written atomically, then log.jsonl
 *   (deterministic fields only; timings go to timing.jsonl), then state.json;
 * - on start, an existing checkpoint is loaded and the log is cut back to its epoch, so a run
 *   killed at any moment resumes from its last completed epoch and, on the deterministic JS
 *   CPU backend, ends with exactly the weights and log of an uninterrupted run.
 */
import { existsSync } from 'node:fs'
import { cpus } from 'node:os'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { DsdError, isNoSpace, toErrorShape } from '../errors'
import { initBackend } from '../engine/backends'
import { loadCheckpoint, packTrainingState, saveCheckpoint, unpackTrainingState } from '../engine/checkpoint'
import { ablation } from '../engine/loss'
import { createModel, type DsdModel } from '../engine/model'
import { AdamW, StepLR } from '../engine/optimizer'
import { argmaxClasses, slidingWindowInference } from '../engine/sliding-window'
import { tf } from '../engine/tf'
import { trainStep } from '../engine/train-step'
import { AUGMENT_PRESETS, augmentPatch } from '../data/augment'
import { classCount } from '../data/labels'
import { PREPROCESS_PRESETS, type PreparedCase, type PreprocessSettings } from '../data/preprocess'
import { mixSeed, Prng } from '../data/prng'
import { CropSampler } from '../data/sampling'
import type { Vec3 } from '../data/volume'
import { manifestHash } from '../workspace/datasets'
import { CONTROL, type TrainMessage } from '../workers/protocol'
import { appVersion } from '../version'
import { createDatasetService } from './datasets'
import type { EpochLog, RunConfig, RunState } from '../contract/runs'
import { runFiles, type EpochTiming } from '../workspace/run-layout'
import { atomicWriteFile, atomicWriteJson } from '../workspace/atomic'
import { readRunConfig, readRunLog, readRunState, writeRunState } from '../workspace/runs'

export interface TrainOptions {
  workspace: string
  runId: string
  /** control[0]: CONTROL.run | pause | cancel (shared with the job queue). */
  control: Int32Array
  post: (m: TrainMessage) => void
}

/** Training and validation cases of one fold, preprocessed. */
export interface FoldData {
  train: PreparedCase[]
  val: PreparedCase[]
  inChannels: number
  numClasses: number
  datasetHash: string
  splitHash: string
}

/** The preprocessing a run uses (its config names a preset or gives the settings). */
export function runPreprocessing(cfg: RunConfig): PreprocessSettings {
  const p = cfg.preprocessing as { preset?: string } & Partial<PreprocessSettings>
  if (p.preset) {
    const preset = PREPROCESS_PRESETS[p.preset]
    if (!preset) {
      throw new DsdError('RUN_CONFIG_INVALID', `preprocessing preset "${p.preset}" is unknown; use one of ${Object.keys(PREPROCESS_PRESETS).join(', ')}`, {})
    }
    return preset
  }
  return p as PreprocessSettings
}

/** Load and preprocess (through the workspace cache) the cases of the run's fold. */
export async function loadFoldData(workspace: string, cfg: RunConfig, onCase?: (done: number, total: number) => void): Promise<FoldData> {
  const datasets = createDatasetService(workspace)
  const manifest = await datasets.getDataset(cfg.datasetId)
  const { split } = await datasets.getSplit(cfg.datasetId, cfg.split)
  const fold = split.folds[cfg.fold]
  if (!fold) {
    throw new DsdError('RUN_FOLD_MISSING', `split "${cfg.split}" of dataset "${cfg.datasetId}" has ${split.folds.length} folds; fold ${cfg.fold} does not exist (folds are numbered from 0)`, {})
  }
  const settings = runPreprocessing(cfg)
  const ids = [...fold.train, ...fold.val]
  const loaded = new Map<string, PreparedCase>()
  let done = 0
  for (const id of ids) {
    loaded.set(id, await datasets.loadCase(cfg.datasetId, id, settings, manifest))
    onCase?.(++done, ids.length)
  }
  return {
    train: fold.train.map((id) => loaded.get(id)!),
    val: fold.val.map((id) => loaded.get(id)!),
    inChannels: Math.max(1, manifest.channels.length),
    numClasses: classCount(manifest.labelMap),
    datasetHash: manifestHash(manifest),
    splitHash: split.hash,
  }
}

/** Per-class Dice of a predicted class map against the ground truth (null: class absent from both). */
export function diceByClass(pred: Uint8Array, gt: Uint8Array, numClasses: number): (number | null)[] {
  const inter = new Float64Array(numClasses)
  const p = new Float64Array(numClasses)
  const g = new Float64Array(numClasses)
  for (let i = 0; i < gt.length; i++) {
    p[pred[i]]++
    g[gt[i]]++
    if (pred[i] === gt[i]) inter[gt[i]]++
  }
  const out: (number | null)[] = []
  for (let k = 0; k < numClasses; k++) out.push(g[k] === 0 ? null : (2 * inter[k]) / (p[k] + g[k]))
  return out
}

function shuffle(n: number, rng: Prng): number[] {
  const order = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return order
}

/** One training batch: `batch` crops of one case, augmented, as tensors [b, d, h, w, c] / [b, d, h, w]. */
function makeBatch(sampler: CropSampler, cfg: RunConfig, rng: Prng, channels: number): { x: tf.Tensor5D; y: tf.Tensor4D } {
  const [d, h, w] = cfg.model.patch
  const n = d * h * w
  const xs = new Float32Array(cfg.batch * n * channels)
  const ys = new Int32Array(cfg.batch * n)
  const aug = AUGMENT_PRESETS[cfg.augment]
  const patches = sampler.draw(rng)
  for (let b = 0; b < cfg.batch; b++) {
    const { sample } = augmentPatch(patches[b], aug, rng)
    if (sample.shape[0] !== w || sample.shape[1] !== h || sample.shape[2] !== d) {
      throw new DsdError('PATCH_SHAPE', `augmented patch is ${sample.shape.join('×')} (x×y×z), expected ${w}×${h}×${d}`, {})
    }
    xs.set(sample.image, b * n * channels)
    ys.set(sample.label!, b * n)
  }
  return { x: tf.tensor5d(xs, [cfg.batch, d, h, w, channels]), y: tf.tensor4d(ys, [cfg.batch, d, h, w], 'int32') }
}

/** Mean per-class validation Dice over the validation cases (sliding window, argmax). */
async function validate(model: DsdModel, cases: PreparedCase[], cfg: RunConfig, numClasses: number, control: Int32Array, onCase: (done: number) => void) {
  // Cancel is honoured between windows too: validation of a large case can take minutes.
  const abort = new AbortController()
  const checkCancel = () => {
    if (Atomics.load(control, 0) === CONTROL.cancel) abort.abort(new DsdError('CANCELLED', 'cancelled by the user', {}))
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

function libraryVersions(): Record<string, string> {
  return { tfjs: tf.version_core, node: process.versions.node, v8: process.versions.v8 }
}

/** Classify an error from a training step into a clear message. */
function explain(err: unknown, cfg: RunConfig, epoch: number, runId: string): { code: string; message: string } {
  const e = err as { code?: string; message?: string }
  const msg = e.message ?? String(err)
  const resume = `The last checkpoint (epoch ${epoch}) is intact: fix the cause and run \`dsd resume ${runId}\`.`
  if (e.code === 'DISK_FULL' || isNoSpace(e.code)) {
    return { code: 'DISK_FULL', message: `No space left to save ${runId}: ${msg}. ${resume}` }
  }
  if (/out of memory|OOM|Array buffer allocation failed|Invalid typed array length|allocation/i.test(msg)) {
    return { code: 'OUT_OF_MEMORY', message: `Out of memory at patch ${cfg.model.patch.join('×')} × batch ${cfg.batch} (${msg}). Use a smaller patch, batch or preset. ${resume}` }
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
  const setState = async (patch: Partial<RunState>) => {
    state = { ...state, ...patch, updatedAt: new Date().toISOString() }
    await writeRunState(workspace, runId, state)
    return state
  }
  try {
    cfg = await readRunConfig(workspace, runId)
    // The run trains with exactly the weights its config records (main/training/run-config.ts
    // writes a named variant's fixed weights there). A config that contradicts its variant name
    // is refused rather than trained under a misleading name.
    if (cfg.variant !== 'custom') {
      const fixed = ablation(cfg.variant)
      if (fixed.eta !== cfg.loss.eta || fixed.alpha1 !== cfg.loss.alpha1 || fixed.alpha2 !== cfg.loss.alpha2) {
        throw new DsdError(
          'RUN_CONFIG_INVALID',
          `${files.config}: variant ${cfg.variant} trains with η=${fixed.eta}, α1=${fixed.alpha1}, α2=${fixed.alpha2} but loss records η=${cfg.loss.eta}, α1=${cfg.loss.alpha1}, α2=${cfg.loss.alpha2}; set loss to the variant's weights, or variant to "custom"`,
          { file: files.config },
        )
      }
    }
    const backend = await initBackend(cfg.backend)
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
    let scheduler = new StepLR(cfg.optimizer.lr, cfg.schedule.stepSize > 0 ? cfg.schedule.stepSize : Infinity, cfg.schedule.gamma)
    let startEpoch = 0
    let fromCheckpoint: { log?: EpochLog; timing?: EpochTiming } = {}
    let best = { epoch: null as number | null, dice: null as number | null }

    // Resume from the last checkpoint, if any.
    if (existsSync(files.lastCheckpoint)) {
      const loaded = unpackTrainingState(loadCheckpoint(files.lastCheckpoint))
      for (const [name, v] of Object.entries(model.variables)) {
        const t = loaded.weights[name]
        if (!t) throw new DsdError('CHECKPOINT_MISMATCH', `${files.lastCheckpoint}: weight "${name}" is missing; the checkpoint belongs to another model`, {})
        v.assign(t)
      }
      for (const t of Object.values(loaded.weights)) t.dispose()
      if (loaded.optimizer) optimizer.importState(loaded.optimizer)
      if (loaded.scheduler) scheduler = StepLR.fromState(loaded.scheduler)
      optimizer.lr = scheduler.lrAt()
      const meta = loaded.metadata as { epoch: number; best: typeof best; log?: EpochLog; timing?: EpochTiming }
      startEpoch = meta.epoch
      checkpointEpoch = startEpoch
      best = meta.best
      fromCheckpoint = { log: meta.log, timing: meta.timing }
    }
    // The log holds exactly the completed epochs. The checkpoint carries its epoch's lines, so a
    // run stopped between the checkpoint and the log write (power loss, full disk) loses none.
    const log = (await readRunLog(workspace, runId)).filter((l) => l.epoch <= startEpoch)
    if (fromCheckpoint.log && !log.some((l) => l.epoch === startEpoch)) log.push(fromCheckpoint.log)
    const timing = existsSync(files.timing)
      ? (await readFile(files.timing, 'utf8')).split('\n').filter((l) => l && (JSON.parse(l) as EpochTiming).epoch <= startEpoch)
      : []
    if (fromCheckpoint.timing && !timing.some((l) => (JSON.parse(l) as EpochTiming).epoch === startEpoch)) {
      timing.push(JSON.stringify(fromCheckpoint.timing))
    }
    await atomicWriteFile(files.log, log.map((l) => JSON.stringify(l) + '\n').join(''))

    // The manifest: written once, with a record of every (re)start.
    const manifest = existsSync(files.manifest) ? (JSON.parse(await readFile(files.manifest, 'utf8')) as Record<string, unknown>) : null
    const start = { at: new Date().toISOString(), fromEpoch: startEpoch, backend: backend.name, device: backend.device ?? null, reason: backend.reason }
    await atomicWriteJson(files.manifest, {
      ...(manifest ?? {
        app: { name: 'DSD Studio', version: appVersion() },
        libraries: libraryVersions(),
        platform: { os: process.platform, arch: process.arch, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length },
        seeds: { weights: cfg.seed, data: cfg.seed, scheme: 'epoch e draws from Prng(mixSeed(seed, "epoch", e))' },
        dataset: { id: cfg.datasetId, hash: data.datasetHash, train: data.train.map((c) => c.id), val: data.val.map((c) => c.id) },
        split: { name: cfg.split, fold: cfg.fold, hash: data.splitHash },
        model: { ...model.config, params: model.countParams() },
        config: cfg,
        createdAt: start.at,
      }),
      starts: [...((manifest?.starts as unknown[]) ?? []), start],
    })
    post({ type: 'started', backend, resumedFrom: startEpoch })
    post({ type: 'state', state: await setState({ status: 'running', epoch: startEpoch, epochs: cfg.epochs, message: startEpoch ? `resumed from epoch ${startEpoch}` : 'running' }) })

    const weights = cfg.loss
    const patchXYZ: Vec3 = [cfg.model.patch[2], cfg.model.patch[1], cfg.model.patch[0]]
    const samplers = data.train.map(
      (c) => new CropSampler({ shape: c.shape, channels: c.channels, image: c.image, label: c.label }, { patch: patchXYZ, numSamples: cfg!.batch, pos: 1, neg: 0, imageThreshold: 0 }),
    )
    const steps = cfg.stepsPerEpoch ?? data.train.length
    const voxelsPerStep = cfg.batch * cfg.model.patch[0] * cfg.model.patch[1] * cfg.model.patch[2]

    for (let epoch = startEpoch + 1; epoch <= cfg.epochs; epoch++) {
      const t0 = performance.now()
      const rng = new Prng(mixSeed(cfg.seed, 'epoch', epoch))
      const order = shuffle(data.train.length, rng)
      const sums: Record<string, number> = {}
      const lr = optimizer.lr
      for (let s = 0; s < steps; s++) {
        // Pause and cancel are honoured between steps.
        if (Atomics.load(control, 0) === CONTROL.pause) {
          post({ type: 'state', state: await setState({ status: 'paused', message: `paused in epoch ${epoch}` }) })
          while (Atomics.load(control, 0) === CONTROL.pause) Atomics.wait(control, 0, CONTROL.pause, 1000)
          post({ type: 'state', state: await setState({ status: 'running', message: 'running' }) })
        }
        if (Atomics.load(control, 0) === CONTROL.cancel) throw new DsdError('CANCELLED', 'cancelled by the user', {})
        const sampler = samplers[order[s % order.length]]
        const { x, y } = makeBatch(sampler, cfg, rng, data.inChannels)
        let terms: Record<string, number>
        try {
          const r = await trainStep(model, optimizer, x, y, weights)
          terms = { total: r.loss, ...(r.terms as Record<string, number>) }
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
          lr,
          voxelsPerSecond: ((s + 1) * voxelsPerStep) / elapsed,
          etaSeconds: (elapsed / (s + 1)) * ((cfg.epochs - epoch + 1) * steps - (s + 1)),
        })
      }
      scheduler.stepEpoch(optimizer)
      const entry: EpochLog = { epoch, lr, loss: Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / steps])), steps }
      if (cfg.validateEvery > 0 && data.val.length > 0 && (epoch % cfg.validateEvery === 0 || epoch === cfg.epochs)) {
        const v = await validate(model, data.val, cfg, data.numClasses, control, (done) => post({ type: 'validation', epoch, done, total: data.val.length }))
        entry.valDice = v.perClass
        entry.valMeanDice = v.mean
      }
      const seconds = (performance.now() - t0) / 1000
      const isBest = entry.valMeanDice !== undefined && (best.dice === null || entry.valMeanDice > best.dice)
      if (isBest) best = { epoch, dice: entry.valMeanDice! }

      // Checkpoint first (atomic, with this epoch's log lines), then the log, then the state:
      // whatever is on disk is consistent.
      const epochTiming: EpochTiming = { epoch, seconds, voxelsPerSecond: (steps * voxelsPerStep) / seconds, backend: backend.name }
      const packed = packTrainingState({
        weights: model.variables,
        optimizer: optimizer.exportState(),
        scheduler: scheduler.state(),
        metadata: { runId, epoch, dataOrderPosition: 0, best, config: cfg, model: model.config, log: entry, timing: epochTiming },
      })
      await mkdir(dirname(files.lastCheckpoint), { recursive: true })
      try {
        // best.ckpt before last.ckpt: last.ckpt's metadata names the best epoch, so that file
        // must exist before last.ckpt says so (a failed write leaves the previous epoch whole).
        const paths = isBest ? [files.bestCheckpoint, files.lastCheckpoint] : [files.lastCheckpoint]
        await saveCheckpoint(paths, packed.tensors, packed.metadata)
      } finally {
        for (const [k, t] of Object.entries(packed.tensors)) if (k.startsWith('optimizer/')) t.dispose()
      }
      checkpointEpoch = epoch
      log.push(entry)
      await atomicWriteFile(files.log, log.map((l) => JSON.stringify(l) + '\n').join(''))
      timing.push(JSON.stringify(epochTiming))
      await atomicWriteFile(files.timing, timing.join('\n') + '\n')
      const next = await setState({ epoch, bestEpoch: best.epoch, bestMeanDice: best.dice, message: `epoch ${epoch}/${cfg.epochs}` })
      post({ type: 'epoch', log: entry, timing: epochTiming, state: next })
    }
    const done = await setState({ status: 'completed', message: `completed ${cfg.epochs} epochs` })
    post({ type: 'done', state: done })
    return done
  } catch (err) {
    const { code, message } = explain(err, cfg ?? ({ model: { patch: [0, 0, 0] }, batch: 0 } as unknown as RunConfig), checkpointEpoch, runId)
    const status = code === 'CANCELLED' ? 'cancelled' : 'failed'
    const final = await setState({ status, message, epoch: checkpointEpoch }).catch(() => ({ ...state, status, message }) as RunState)
    post({ type: status === 'cancelled' ? 'done' : 'error', ...(status === 'cancelled' ? {} : { error: { ...toErrorShape(err), code, message } }), state: final } as TrainMessage)
    return final
  } finally {
    model?.dispose()
    optimizer?.dispose()
  }
}
