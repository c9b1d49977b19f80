/**
 * Review commands (read-only): the prediction sets in the workspace, their evaluated metric
 * tables, and what the case viewer needs for one case. Spread into `commands` in ./index.ts.
 *
 * Volumes never travel as JSON: `review.case` answers opaque volume paths
 * (`volume/dataset/<ds>/<case>/image/0`, …) that the renderer fetches over the data channel
 * (`GET /volume/…` in browser mode, `dsd-data://volume/…` in Electron). The main side parses
 * and validates every path again (main/services/volumes.ts); no file path comes from the
 * renderer.
 */
import { z } from 'zod'
import { SafeId } from './ids'
import { JobInfo } from './jobs'

/** Workspace ids (runs, datasets, prediction sets): the one rule of ./ids.ts. */
const Id = SafeId

/**
 * A prediction set: a run's `runs/<runId>/predictions/<set>/` folder (what `dsd predict --run`
 * writes), or an ensemble's `predictions/<name>/` folder at the workspace root.
 */
export const PredictionSetRef = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('run'), runId: Id, set: Id }).strict(),
  z.object({ kind: z.literal('ensemble'), name: Id }).strict(),
])
export type PredictionSetRef = z.infer<typeof PredictionSetRef>

const Nullable = z.number().nullable()

export const MetricsTableInfo = z.object({
  /** Table name (the file name without `.json`), e.g. `last-original`. */
  name: z.string(),
  grid: z.enum(['original', 'preprocessed']),
  createdAt: z.string(),
  cases: z.number().int(),
})
export type MetricsTableInfo = z.infer<typeof MetricsTableInfo>

export const PredictionSetSummary = z.object({
  ref: PredictionSetRef,
  /** Stable key: `run:<runId>/<set>` or `ensemble:<name>`. */
  key: z.string(),
  /** What a person reads, e.g. `hippo-DSD-fold0 · last`. */
  title: z.string(),
  datasetId: z.string().nullable(),
  runIds: z.array(z.string()),
  /** The run's variant (Basic, DSD, …) for a run set. */
  variant: z.string().nullable(),
  fold: z.number().int().nullable(),
  which: z.enum(['last', 'best']).nullable(),
  tta: z.boolean(),
  createdAt: z.string(),
  classes: z.number().int(),
  cases: z.array(z.object({ caseId: z.string(), hasGroundTruth: z.boolean() })),
  /** Evaluated metric tables of this set (newest first); empty until it is evaluated. */
  metrics: z.array(MetricsTableInfo),
})
export type PredictionSetSummary = z.infer<typeof PredictionSetSummary>

export const MetricRow = z.object({
  caseId: z.string(),
  fold: z.union([z.number(), z.string()]).nullable(),
  label: z.number().int(),
  labelName: z.string(),
  dice: Nullable,
  /** Distances in mm. */
  hd95: Nullable,
  assd: Nullable,
  nsd: Nullable,
  emptyPrediction: z.boolean(),
  reason: z.string().nullable(),
  /** Why the row is flagged: an empty prediction, or Dice below the label's median − 2 IQR. */
  outlier: z.enum(['empty-prediction', 'low-dice']).nullable(),
})
export type MetricRow = z.infer<typeof MetricRow>

export const MetricSummary = z.object({
  n: z.number().int(),
  mean: Nullable,
  /** Sample standard deviation (n − 1). */
  std: Nullable,
  median: Nullable,
  q1: Nullable,
  q3: Nullable,
})
export type MetricSummary = z.infer<typeof MetricSummary>

const MetricName = z.enum(['dice', 'hd95', 'assd', 'nsd'])

export const MetricsTable = z.object({
  ref: PredictionSetRef,
  table: z.string(),
  grid: z.enum(['original', 'preprocessed']),
  createdAt: z.string(),
  nsdTolerance: z.number(),
  labels: z.array(z.object({ value: z.number().int(), name: z.string() })),
  folds: z.array(z.union([z.number(), z.string()])),
  rows: z.array(MetricRow),
  /** Per label (`"1"`, `"2"`, …, and `"all"` over every case × label cell) and metric. */
  summary: z.record(z.string(), z.record(MetricName, MetricSummary)),
  /** The outlier rule per label: Dice below `lowDice` = median − 2 × (q3 − q1). */
  thresholds: z.array(
    z.object({ label: z.number().int(), median: Nullable, iqr: Nullable, lowDice: Nullable }),
  ),
  skipped: z.array(z.object({ caseId: z.string(), reason: z.string() })),
})
export type MetricsTable = z.infer<typeof MetricsTable>

export const ReviewCase = z.object({
  ref: PredictionSetRef,
  caseId: z.string(),
  datasetId: z.string().nullable(),
  /** Foreground classes with the dataset's names and a display colour (RGB 0–255). */
  labels: z.array(
    z.object({ value: z.number().int(), name: z.string(), color: z.tuple([z.number(), z.number(), z.number()]) }),
  ),
  /** Image channel names (one per volume in `volumes.images`). */
  channels: z.array(z.string()),
  /** 'CT' when the channel is CT (Hounsfield presets apply), else 'MR' / 'other'. */
  modality: z.array(z.enum(['CT', 'MR', 'other'])),
  /** Opaque data-channel paths; fetch them through the transport. */
  volumes: z.object({
    images: z.array(z.string()),
    groundTruth: z.string().nullable(),
    prediction: z.string(),
  }),
  /** The case's neighbours in the set (for next / previous without the table). */
  index: z.number().int(),
  count: z.number().int(),
})
export type ReviewCase = z.infer<typeof ReviewCase>

/**
 * `predictions.predict`: what to predict with what. One run predicts into its
 * `runs/<runId>/predictions/<name>/` set (default name: the checkpoint, `last` or `best`) and,
 * by default, the validation cases of its fold; several runs are an ensemble (mean of the
 * softmax) predicted into `predictions/<name>/` at the workspace root, by default on the
 * split's test cases. The same function as `dsd predict` runs it (main/services/inference.ts).
 */
export const PredictRequest = z
  .object({
    runIds: z.array(Id).min(1).max(50),
    which: z.enum(['last', 'best']).default('last'),
    /** Mirror test-time augmentation (8 flips); default: the run's setting. */
    tta: z.boolean().optional(),
    /** Case ids of the runs' dataset; default: the run's validation fold (an ensemble: the split's test set). */
    cases: z.array(z.string().min(1).max(256)).min(1).max(100_000).optional(),
    /** The set's name (default: `which` for one run, `<runs>-<which>` for an ensemble). */
    name: Id.optional(),
    /** Queue an evaluate job on the set once the prediction has completed (default true). */
    evaluate: z.boolean().default(true),
  })
  .strict()
export type PredictRequest = z.infer<typeof PredictRequest>

/** A metric table of a set (default: the newest on the original grid). */
const TableRef = z.object({ ref: PredictionSetRef, table: Id.optional() }).strict()

const Paired = z.object({
  n: z.number().int(),
  meanA: Nullable,
  meanB: Nullable,
  meanDelta: Nullable,
  medianDelta: Nullable,
  stdDelta: Nullable,
  /** Two-sided Wilcoxon signed-rank p-value of the deltas; null without pairs. */
  pValue: Nullable,
  /** Per case: a, b and Δ = b − a. */
  cases: z.array(z.object({ caseId: z.string(), a: z.number(), b: z.number(), delta: z.number() })),
  excluded: z.array(z.object({ caseId: z.string(), reason: z.string() })),
})

/** `metrics.compare`: two sets' tables paired by case (what `dsd evaluate --a --b` computes). */
export const SetComparison = z.object({
  a: z.object({ ref: PredictionSetRef, table: z.string() }),
  b: z.object({ ref: PredictionSetRef, table: z.string() }),
  grid: z.enum(['original', 'preprocessed']),
  metrics: z.array(MetricName),
  /** Label value (`"1"`, …, and `"mean"`: each case's mean over the labels) → metric → pairs. */
  labels: z.record(z.string(), z.record(z.string(), Paired)),
  labelNames: z.record(z.string(), z.string()),
})
export type SetComparison = z.infer<typeof SetComparison>

export const reviewCommands = {
  /**
   * Queue a `predict` job (device queue: one at a time, like training; progress in cases,
   * cancel between sliding windows) and, with `evaluate`, an `evaluate` job once it completes.
   * Refused at once (not as a failed job) when a run has no such checkpoint or its split changed.
   */
  'predictions.predict': {
    request: PredictRequest,
    response: z.object({ job: JobInfo, ref: PredictionSetRef, key: z.string() }),
  },
  /** Queue an `evaluate` job: the set's per-case metric table, written where `dsd evaluate` writes it. */
  'metrics.evaluate': {
    request: z.object({ ref: PredictionSetRef }).strict(),
    response: z.object({ job: JobInfo }),
  },
  /** Pair two sets' metric tables by case: per-case Δ (b − a) of each metric, means, Wilcoxon p. */
  'metrics.compare': {
    request: z.object({ a: TableRef, b: TableRef, metrics: z.array(MetricName).min(1).optional() }).strict(),
    response: SetComparison,
  },
  /** Every prediction set in the workspace (runs and ensembles) with its cases and tables. */
  'predictions.list': {
    request: z.object({}).strict(),
    response: z.object({
      sets: z.array(PredictionSetSummary),
      /** Folders that look like prediction sets but cannot be read, with the reason. */
      problems: z.array(z.object({ where: z.string(), message: z.string() })),
    }),
  },
  /** A set's per-case, per-label metrics as `dsd evaluate` wrote them, with outlier flags. */
  'metrics.get': {
    request: z.object({ ref: PredictionSetRef, table: Id.optional() }).strict(),
    response: MetricsTable,
  },
  /** What the viewer needs for one case of a set. */
  'review.case': {
    request: z.object({ ref: PredictionSetRef, caseId: z.string().min(1).max(256) }).strict(),
    response: ReviewCase,
  },
} as const

/**
 * The data channel's volume format (`GET /volume/<path>` / `dsd-data://volume/<path>`):
 * bytes 0–3 `DSDV`, bytes 4–7 the header length H (uint32, little-endian), then H bytes of
 * UTF-8 JSON (this header, padded with spaces so the voxels start at a multiple of 8), then
 * the voxels, little-endian, i fastest, then j, then k (no reordering: NIfTI order). Geometry
 * is in LPS, as Cornerstone3D wants it.
 */
export interface ViewerVolumeHeader {
  format: 'dsd-volume'
  version: 1
  kind: 'image' | 'label' | 'prediction'
  /**
   * [nx, ny, nz] of the voxels sent. Label maps and predictions are cropped to the box of their
   * non-zero voxels plus a margin (`offset` into the full grid `gridDims`); images are whole.
   */
  dims: [number, number, number]
  /** Index of voxel (0, 0, 0) of this block in the full grid (zeros for a whole volume). */
  offset: [number, number, number]
  /** [nx, ny, nz] of the full grid. */
  gridDims: [number, number, number]
  /** mm along i, j, k */
  spacing: [number, number, number]
  /** World (LPS, mm) position of voxel (0, 0, 0) of this block. */
  origin: [number, number, number]
  /** Unit vectors of i, j and k in LPS, 9 numbers (always right-handed: a left-handed file's k is reversed). */
  direction: number[]
  /** Types Cornerstone3D accepts; labels and predictions are class indices (uint8). */
  dtype: 'uint8' | 'int16' | 'uint16' | 'float32'
  min: number
  max: number
  /** 1st and 99th percentile of the voxel values (images; the "MRI auto" window). */
  p1: number
  p99: number
  channel: number
  channels: number
  /** The file's name (no folders), for captions. */
  source: string
}
