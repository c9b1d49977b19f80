/**
 * Messages between the job system (main thread) and job workers. Every job worker gets its
 * job's control word and may post `progress` and `started` (main/jobs/worker.ts updates the job
 * from them); each kind adds its own messages (the training worker posts the training loop's
 * TrainMessage).
 */
import type { ErrorShape } from '../contract/errors'
import type { ExportParams } from '../contract/export'
import type { PredictionSetRef, PredictRequest } from '../contract/review'

export type { TrainMessage } from '../training/loop'

/** The worker entries under main/workers/ (`<name>.ts`, bundled as `<name>.mjs`). */
export type WorkerName = 'train-worker' | 'inference-worker'

/** Values of control[0] (an Int32Array over a SharedArrayBuffer shared with the worker). */
export const CONTROL = { run: 0, pause: 1, cancel: 2 } as const

/** What every job worker gets as workerData besides its own fields. */
export interface JobWorkerData {
  /** Int32Array(1) over a SharedArrayBuffer: see CONTROL. */
  control: SharedArrayBuffer
}

/** Messages every job worker may post. */
export type JobWorkerMessage =
  | { type: 'progress'; done: number; total: number; message: string }
  | { type: 'started'; backend: { name: string; reason: string; device?: string } }

export interface TrainWorkerData extends JobWorkerData {
  workspace: string
  runId: string
}

/**
 * The inference worker's task: a prediction request, a set to evaluate
 * (main/services/predict-evaluate.ts), or an export (main/services/export-job.ts).
 */
export type InferenceTask =
  | { task: 'predict'; request: PredictRequest }
  | { task: 'evaluate'; ref: PredictionSetRef }
  | { task: 'export'; request: ExportParams }

export type InferenceWorkerData = JobWorkerData & InferenceTask & { workspace: string }

/** What the inference worker posts besides `progress` / `started`: its result or its error, last. */
export type InferenceMessage =
  | JobWorkerMessage
  | { type: 'done'; result: unknown }
  | { type: 'error'; error: ErrorShape }
