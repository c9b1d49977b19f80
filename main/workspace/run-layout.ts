/**
 * A run = dataset + split + fold + model + DSD variant + optimisation settings + seed +
 * backend. Runs are self-describing folders in the workspace, so `dsd train` can run headless
 * on a server and the folder be copied back:
 *
 *   runs/<runId>/
 *     config.json          RunConfig (what was asked)
 *     manifest.json        RunManifest (app/library versions, backend and device, seeds,
 *                          dataset and split hashes, the resolved config)
 *     state.json           RunState (queued | running | paused | completed | failed | cancelled)
 *     log.jsonl            one EpochLog per line, rewritten atomically every epoch
 *     timing.jsonl         one EpochTiming per line (wall clock; not part of the log)
 *     checkpoints/last.ckpt  engine checkpoint (main/engine/checkpoint.ts format) (weights, optimizer, schedule, RNG, epoch)
 *     checkpoints/best.ckpt  the epoch with the best mean validation Dice
 *     predictions/<fold-or-name>/<caseId>.nii.gz   masks on the original image grid
 *     metrics/<name>.csv|json                       per-case metrics
 *     report.html
 */
import { join } from 'node:path'

export type Variant = 'Basic' | 'DS' | 'SDD' | 'SDE' | 'DSD' | 'custom'

export interface RunConfig {
  /** Folder name under runs/ (letters, digits, '.', '_', '-'). */
  id: string
  datasetId: string
  /** Split file name under datasets/<id>/splits/ (without .json). */
  split: string
  /** 0-based fold index. */
  fold: number
  model: {
    backbone: 'dynunet' | 'unetr'
    preset: string
    /** [d, h, w] training patch (multiple of 16). */
    patch: [number, number, number]
    /** DynUNet channels per level (5 entries), overriding the preset. */
    filters?: number[]
  }
  variant: Variant
  /** Loss weights; derived from `variant` unless it is 'custom'. */
  loss: { eta: number; alpha1: number; alpha2: number; temperature: number }
  /** Patches per step (RandCropByPosNegLabel num_samples from one volume). */
  batch: number
  epochs: number
  /** Steps per epoch; default: one pass over the training volumes. */
  stepsPerEpoch?: number
  optimizer: { lr: number; weightDecay: number }
  /** StepLR, stepped once per epoch; stepSize 0 = constant LR. */
  schedule: { stepSize: number; gamma: number }
  seed: number
  backend: 'auto' | 'tfjs-node-gpu' | 'webgpu' | 'tfjs-node' | 'wasm' | 'cpu'
  /** Validate every N epochs (sliding window on the validation fold). */
  validateEvery: number
  /** Sliding-window settings used for validation and prediction. */
  inference: { overlap: number; blend: 'constant' | 'gaussian'; mirror: boolean }
  /**
   * Preprocessing: `{ preset: 'mri' | 'mmwhs' | 'brats' }` or full PreprocessSettings (see
   * main/data/preprocess.ts); hashed for the cache key.
   */
  preprocessing: Record<string, unknown>
  /** Augmentation preset of main/data/augment.ts ('mmwhs', 'brats', 'none'). */
  augment: 'mmwhs' | 'brats' | 'none'
}

export interface EpochLog {
  epoch: number
  lr: number
  /** Mean of every loss term over the epoch's steps, plus `total`. */
  loss: Record<string, number>
  steps: number
  /** Per-class validation Dice (class value → Dice) when validated this epoch. */
  valDice?: Record<string, number | null>
  valMeanDice?: number
}

/** Wall-clock figures of one epoch (timing.jsonl; kept out of log.jsonl, which is deterministic). */
export interface EpochTiming {
  epoch: number
  seconds: number
  voxelsPerSecond: number
  backend: string
}

export type RunStatus = 'queued' | 'running' | 'paused' | 'completed' | 'failed' | 'cancelled'

export interface RunState {
  status: RunStatus
  /** Last completed epoch (0 = none). */
  epoch: number
  epochs: number
  bestEpoch: number | null
  bestMeanDice: number | null
  message: string
  updatedAt: string
}

export const runDir = (workspace: string, runId: string) => join(workspace, 'runs', runId)
export const runFiles = (workspace: string, runId: string) => {
  const dir = runDir(workspace, runId)
  return {
    dir,
    config: join(dir, 'config.json'),
    manifest: join(dir, 'manifest.json'),
    state: join(dir, 'state.json'),
    log: join(dir, 'log.jsonl'),
    timing: join(dir, 'timing.jsonl'),
    lastCheckpoint: join(dir, 'checkpoints', 'last.ckpt'),
    bestCheckpoint: join(dir, 'checkpoints', 'best.ckpt'),
    predictions: join(dir, 'predictions'),
    metrics: join(dir, 'metrics'),
    report: join(dir, 'report.html'),
  }
}
