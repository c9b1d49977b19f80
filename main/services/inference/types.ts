/** The types of prediction: its options, its models and cases, and `predictions.json`. */
import type { LabelMap } from '../../data/labels'
import type { PreprocessSettings } from '../../data/preprocess'
import type { Mat4, Vec3 } from '../../data/volume'
import type { DsdModel, ModelConfig, ResolvedModelConfig } from '../../engine/model'
import type { BlendMode, Predictor, SlidingWindowProgress } from '../../engine/sliding-window'

/** A checkpoint to load: a file, or a folder holding one checkpoint file. */
export interface CheckpointSpec {
  path: string
  /** Model config; default: the checkpoint's metadata, else the run's config.json. */
  model?: ModelConfig
  /** Preprocessing used in training; needed for file inputs when there is no run. */
  preprocessing?: PreprocessSettings
  /** Label map of the training dataset (class names and stored values). */
  labelMap?: LabelMap
}

/** A case given as files (not from a workspace dataset). */
export interface FileCase {
  id: string
  /** One file per channel (NIfTI), or one DICOM series folder. */
  images: string[]
  /** Optional ground truth (kept in the manifest for evaluation). */
  label?: string | null
}

/** Progress of {@link predictCases}. */
export interface PredictProgress {
  caseIndex: number
  cases: number
  caseId: string
  stage: 'load' | 'infer' | 'write' | 'done'
  /** Model index within the ensemble (stage 'infer'). */
  model?: number
  models?: number
  window?: SlidingWindowProgress
}

/** Options of {@link predictCases}. */
export interface PredictOptions {
  /** Workspace root (needed for runIds and dataset cases). */
  workspace?: string
  /** Runs whose checkpoint(s) to use; several = an ensemble (mean of the softmax). */
  runIds?: string[]
  /** Which run checkpoint: 'last' (default) or 'best'. */
  which?: 'last' | 'best'
  /** Explicit checkpoints (files or folders), instead of or in addition to runIds. */
  checkpoints?: (string | CheckpointSpec)[]
  /** Models already in memory (e.g. the one being trained); not disposed by predictCases. */
  models?: InMemoryModel[]
  /** Case IDs of the dataset, or file cases. Default (one run): the run's validation fold. */
  cases?: (string | FileCase)[]
  /** Dataset of the case IDs; default: the first run's dataset. */
  datasetId?: string
  /** Output folder; default `runs/<runId>/predictions/<name>` for a single run. */
  outDir?: string
  /** Sub-folder name under the run's predictions/ (default: `which`). */
  name?: string
  /** Mirror test-time augmentation (8 flips); default: the run's inference.mirror, else false. */
  tta?: boolean
  /** Default: the run's inference.overlap, else 0.25. */
  overlap?: number
  /** Default: the run's inference.blend, else 'constant'. */
  blend?: BlendMode
  swBatch?: number
  /** Also write the prediction on the preprocessed grid (default true). */
  savePreprocessed?: boolean
  onProgress?: (p: PredictProgress) => void
  signal?: AbortSignal
}

/** A model given as a predictor (in memory), with what prediction needs to know about it. */
export interface InMemoryModel {
  label: string
  predictor: Predictor
  /** Window (training patch) [d, h, w]. */
  patch: [number, number, number]
  numClasses: number
  inChannels: number
  /** Preprocessing it was trained with (needed without a run). */
  preprocessing?: PreprocessSettings
  labelMap?: LabelMap
}

/** One loaded model of an ensemble. */
export interface LoadedModel {
  label: string
  runId: string | null
  checkpoint: string
  checkpointSha256: string
  epoch: number | null
  config: ResolvedModelConfig
  model: DsdModel
  predictor: Predictor
}

/** One predicted case in {@link PredictionsManifest}. */
export interface PredictedCase {
  caseId: string
  /** Prediction file, relative to the output folder. */
  file: string
  preprocessedFile: string | null
  /** Where the image came from. */
  images: string[]
  /** Ground-truth file, when known. */
  label: string | null
  /** Source kind (a DICOM series can be exported as DICOM SEG). */
  sourceFormat: 'nifti' | 'dicom'
  shape: Vec3
  affine: Mat4
  preprocessedShape: Vec3
  seconds: number
}

/** `predictions.json`: everything needed to evaluate or export the predictions later. */
export interface PredictionsManifest {
  format: 'dsd-predictions'
  version: 1
  createdAt: string
  datasetId: string | null
  runIds: string[]
  /** Fold of the run (single run), for evaluation tables. */
  fold: number | null
  which: 'last' | 'best' | null
  models: {
    label: string
    runId: string | null
    /** Checkpoint file and its sha256 (null for an in-memory model). */
    checkpoint: string | null
    sha256: string | null
    epoch: number | null
    /** The model config (null for an in-memory model). */
    config: ResolvedModelConfig | null
    patch: [number, number, number]
    numClasses: number
  }[]
  settings: { overlap: number; blend: BlendMode; tta: boolean; swBatch: number }
  preprocessing: PreprocessSettings
  preprocessingHash: string
  labelMap: LabelMap
  classes: number
  cases: PredictedCase[]
}

/** What {@link predictCases} returns. */
export interface PredictResult {
  outDir: string
  manifestFile: string
  manifest: PredictionsManifest
}

/** A model of the ensemble, loaded from a checkpoint or given in memory: what the manifest
 * records of it, plus what running it needs. */
export type ModelEntry = PredictionsManifest['models'][number] & {
  inChannels: number
  predictor: Predictor
}

/** A case to predict: from the workspace dataset, or given as files. */
export interface CaseJob {
  id: string
  kind: 'dataset' | 'files'
  images: string[]
  label: string | null
  sourceFormat: 'nifti' | 'dicom'
}
