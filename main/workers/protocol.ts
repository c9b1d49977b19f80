/** Messages between the job queue (main thread) and a training worker. */
import type { ErrorShape } from '../contract/errors'
import type { EpochLog, RunState } from '../contract/runs'
import type { EpochTiming } from '../workspace/run-layout'

export interface TrainWorkerData {
  workspace: string
  runId: string
  /** Int32Array(1) over a SharedArrayBuffer: see CONTROL. */
  control: SharedArrayBuffer
}

/** Values of control[0]. */
export const CONTROL = { run: 0, pause: 1, cancel: 2 } as const

export type WorkerMessage =
  | { type: 'started'; backend: { name: string; reason: string; device?: string }; resumedFrom: number }
  | { type: 'step'; epoch: number; step: number; steps: number; loss: Record<string, number>; lr: number; voxelsPerSecond: number; etaSeconds: number }
  | { type: 'validation'; epoch: number; done: number; total: number }
  | { type: 'epoch'; log: EpochLog; timing: EpochTiming; state: RunState }
  | { type: 'state'; state: RunState }
  | { type: 'done'; state: RunState }
  | { type: 'error'; error: ErrorShape; state: RunState | null }
