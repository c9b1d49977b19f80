/**
 * What the training loop keeps in the run folder (main/workspace/run-layout.ts), and how it reads
 * it back to resume:
 *
 * - at the end of every epoch the checkpoint (weights, AdamW moments and step, scheduler state, the
 *   loss scale of an f16 run, the epoch, the best score, and this epoch's log and timing lines)
 *   is written atomically, then
 *   log.jsonl (deterministic fields only), then timing.jsonl — whatever is on disk is consistent;
 * - on start, the last checkpoint is loaded and the log cut back to its epoch; the checkpoint's
 *   own lines restore a log write that never happened (power loss, full disk);
 * - manifest.json is written once, with one entry per (re)start (backend, device, why).
 *
 * A checkpoint holds no generator state: each epoch draws from its own generator seeded by
 * (seed, epoch) (main/training/batches.ts), so the epoch number is all a resume needs.
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { dirname } from 'node:path'
import type { EpochLog, RunConfig } from '../contract/runs'
import { loadCheckpoint, packTrainingState, saveCheckpoint, unpackTrainingState } from '../engine/checkpoint'
import type { DsdModel } from '../engine/model'
import type { AdamW } from '../engine/optimizer'
import type { LossScaler, LossScaleState } from '../engine/loss-scale'
import type { PrecisionStatus } from '../engine/kernels/webgpu/mode'
import { tf } from '../engine/tf'
import { DsdError } from '../errors'
import { appVersion } from '../version'
import { atomicWriteFile, atomicWriteJson } from '../workspace/atomic'
import type { EpochTiming, runFiles } from '../workspace/run-layout'
import { readRunLog } from '../workspace/runs'
import type { FoldData } from './fold-data'
import { createScheduler, restoreScheduler, type RunScheduler } from './schedule'

type RunFiles = ReturnType<typeof runFiles>

/** The best validation score so far. */
export interface Best {
  epoch: number | null
  dice: number | null
}

/** Where a run continues from. */
export interface Resume {
  /** The last completed epoch (0: none). */
  epoch: number
  best: Best
  scheduler: RunScheduler
  /** log.jsonl's lines up to `epoch`, and timing.jsonl's (as written). */
  log: EpochLog[]
  timing: string[]
}

const timingEpoch = (line: string) => (JSON.parse(line) as EpochTiming).epoch

/**
 * Load the last checkpoint (if any) into `model`, `optimizer`, the scheduler and the loss
 * `scaler` (f16 runs), and cut log.jsonl back to its epoch (rewritten, with the checkpoint's
 * line when the log lacks it).
 */
export async function resumeRun(
  workspace: string,
  runId: string,
  files: RunFiles,
  cfg: RunConfig,
  model: DsdModel,
  optimizer: AdamW,
  stepsPerEpoch: number,
  scaler?: LossScaler | null,
): Promise<Resume> {
  let scheduler = createScheduler(cfg, stepsPerEpoch)
  let epoch = 0
  let best: Best = { epoch: null, dice: null }
  let saved: { log?: EpochLog; timing?: EpochTiming } = {}
  if (existsSync(files.lastCheckpoint)) {
    const loaded = unpackTrainingState(loadCheckpoint(files.lastCheckpoint))
    for (const [name, v] of Object.entries(model.variables)) {
      const t = loaded.weights[name]
      if (!t) throw new DsdError('CHECKPOINT_MISMATCH', `${files.lastCheckpoint}: weight "${name}" is missing; the checkpoint belongs to another model`, {})
      v.assign(t)
    }
    for (const t of Object.values(loaded.weights)) t.dispose()
    if (loaded.optimizer) optimizer.importState(loaded.optimizer)
    if (loaded.scheduler) scheduler = restoreScheduler(loaded.scheduler, cfg, files.lastCheckpoint)
    optimizer.lr = scheduler.lrAt()
    const meta = loaded.metadata as { epoch: number; best: Best; log?: EpochLog; timing?: EpochTiming; lossScale?: LossScaleState }
    // a checkpoint of an f32 epoch (or of a run before loss scaling) starts at the initial scale
    if (scaler && meta.lossScale) scaler.restore(meta.lossScale, files.lastCheckpoint)
    epoch = meta.epoch
    best = meta.best
    saved = { log: meta.log, timing: meta.timing }
  }
  const log = (await readRunLog(workspace, runId)).filter((l) => l.epoch <= epoch)
  if (saved.log && !log.some((l) => l.epoch === epoch)) log.push(saved.log)
  const timing = existsSync(files.timing) ? (await readFile(files.timing, 'utf8')).split('\n').filter((l) => l && timingEpoch(l) <= epoch) : []
  if (saved.timing && !timing.some((l) => timingEpoch(l) === epoch)) timing.push(JSON.stringify(saved.timing))
  await atomicWriteFile(files.log, log.map((l) => JSON.stringify(l) + '\n').join(''))
  return { epoch, best, scheduler, log, timing }
}

/** Record a (re)start in manifest.json (written in full the first time). */
export async function recordStart(
  files: RunFiles,
  cfg: RunConfig,
  data: FoldData,
  model: DsdModel,
  backend: { name: string; reason: string; device?: string },
  fromEpoch: number,
  precision?: PrecisionStatus,
): Promise<void> {
  const manifest = existsSync(files.manifest) ? (JSON.parse(await readFile(files.manifest, 'utf8')) as Record<string, unknown>) : null
  const start = {
    at: new Date().toISOString(),
    fromEpoch,
    backend: backend.name,
    device: backend.device ?? null,
    reason: backend.reason,
    // f16 runs: what was asked, what ran, and why it fell back
    ...(precision && precision.requested !== 'f32' ? { precision } : {}),
  }
  await atomicWriteJson(files.manifest, {
    ...(manifest ?? {
      app: { name: 'DSD Studio', version: appVersion() },
      libraries: { tfjs: tf.version_core, node: process.versions.node, v8: process.versions.v8 },
      platform: { os: process.platform, arch: process.arch, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length },
      seeds: { weights: cfg.seed, data: cfg.seed, scheme: 'epoch e draws from Rng.seeded(mixSeed(seed, "epoch", e))' },
      dataset: { id: cfg.datasetId, hash: data.datasetHash, train: data.train.map((c) => c.id), val: data.val.map((c) => c.id) },
      split: { name: cfg.split, fold: cfg.fold, hash: data.splitHash },
      model: { ...model.config, params: model.countParams() },
      config: cfg,
      createdAt: start.at,
    }),
    starts: [...((manifest?.starts as unknown[]) ?? []), start],
  })
}

/** Everything one finished epoch writes. */
export interface EpochRecord {
  runId: string
  cfg: RunConfig
  model: DsdModel
  optimizer: AdamW
  scheduler: RunScheduler
  best: Best
  /** This epoch's validation was the best so far: also write best.ckpt. */
  isBest: boolean
  entry: EpochLog
  timing: EpochTiming
  /** The loss scaler's state (f16 runs). */
  lossScale?: LossScaleState
}

/** Write the epoch's checkpoint(s), then log.jsonl, then timing.jsonl (`resume` grows by a line each). */
export async function saveEpoch(files: RunFiles, r: EpochRecord, resume: Pick<Resume, 'log' | 'timing'>): Promise<void> {
  const packed = packTrainingState({
    weights: r.model.variables,
    optimizer: r.optimizer.exportState(),
    scheduler: r.scheduler.state(),
    metadata: {
      runId: r.runId,
      epoch: r.entry.epoch,
      best: r.best,
      config: r.cfg,
      model: r.model.config,
      log: r.entry,
      timing: r.timing,
      ...(r.lossScale ? { lossScale: r.lossScale } : {}),
    },
  })
  await mkdir(dirname(files.lastCheckpoint), { recursive: true })
  try {
    // best.ckpt before last.ckpt: last.ckpt's metadata names the best epoch, so that file must
    // exist before last.ckpt says so (a failed write leaves the previous epoch whole).
    await saveCheckpoint(r.isBest ? [files.bestCheckpoint, files.lastCheckpoint] : [files.lastCheckpoint], packed.tensors, packed.metadata)
  } finally {
    for (const [k, t] of Object.entries(packed.tensors)) if (k.startsWith('optimizer/')) t.dispose()
  }
  resume.log.push(r.entry)
  await atomicWriteFile(files.log, resume.log.map((l) => JSON.stringify(l) + '\n').join(''))
  resume.timing.push(JSON.stringify(r.timing))
  await atomicWriteFile(files.timing, resume.timing.join('\n') + '\n')
}
