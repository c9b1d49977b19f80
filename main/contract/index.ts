/**
 * The one contract between the renderer and the main process.
 *
 * Commands are request → response; events are pushed from main to the renderer. Every payload
 * has a zod schema: the main side validates requests (and, in tests, responses) at the edge of
 * every transport (Electron IPC, HTTP + WebSocket, in-process). The renderer imports only the
 * *types* from this module (`import type`), never the schemas.
 */
import { z } from 'zod'
import { ErrorShape } from './errors'
import { BackendName, id } from './shapes'
import { JobAction, JobInfo, JobProgress, JobRef } from './jobs'
import { EpochLog, RunConfig, RunForm, RunFormDefaults, RunState, RunSummary } from './runs'
import { reviewCommands } from './review'
import { exportCommands } from './export'
import { quickStartCommands } from './quickstart'

export { ErrorShape } from './errors'
export { BackendName } from './shapes'
export * from './jobs'
export * from './runs'
export * from './quickstart'

// ---------------------------------------------------------------------------------------------
// Shared shapes

export const BackendProbe = z.object({
  name: BackendName,
  available: z.boolean(),
  reason: z.string(),
  device: z.string().optional(),
  software: z.boolean().optional(),
  /** WebGPU: half precision, subgroups and subgroup matrices (main/engine/backends.ts GpuFeatures). */
  gpuFeatures: z
    .object({
      shaderF16: z.boolean(),
      subgroups: z.boolean(),
      subgroupSizes: z.tuple([z.number(), z.number()]).optional(),
      subgroupMatrix: z.boolean(),
      subgroupMatrixConfigs: z.array(
        z.object({ componentType: z.string(), resultComponentType: z.string(), M: z.number(), N: z.number(), K: z.number() }),
      ),
      experimental: z.boolean(),
    })
    .optional(),
})
export type BackendProbe = z.infer<typeof BackendProbe>

export const AppInfo = z.object({
  name: z.string(),
  version: z.string(),
  transport: z.enum(['electron', 'browser', 'in-process']),
  platform: z.string(),
  arch: z.string(),
  versions: z.object({
    node: z.string(),
    v8: z.string(),
    electron: z.string().nullable(),
    chrome: z.string().nullable(),
    tfjs: z.string().nullable(),
  }),
  workspace: z.string(),
  backend: z.object({
    name: BackendName.nullable(),
    reason: z.string(),
    device: z.string().optional(),
  }),
  backends: z.array(BackendProbe),
})
export type AppInfo = z.infer<typeof AppInfo>

export const DatasetSummary = z.object({
  id,
  name: z.string(),
  layout: z.string(),
  source: z.string(),
  cases: z.number().int(),
  channels: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
  importedAt: z.string(),
})
export type DatasetSummary = z.infer<typeof DatasetSummary>

export const Finding = z.object({
  caseId: z.string().nullable(),
  severity: z.enum(['error', 'warning', 'info']),
  code: z.string(),
  message: z.string(),
})
export type Finding = z.infer<typeof Finding>

export const AuditReport = z.object({
  datasetId: id,
  cases: z.number().int(),
  findings: z.array(Finding),
  summary: z.array(z.string()),
})
export type AuditReport = z.infer<typeof AuditReport>

export const SplitSummary = z.object({
  name: z.string(),
  folds: z.number().int(),
  seed: z.number().int(),
  preset: z.string().nullable(),
  hash: z.string(),
})
export type SplitSummary = z.infer<typeof SplitSummary>

/** A split's cases fold by fold (the Splits page's fold view), and the runs that use it. */
export const SplitDetail = z.object({
  summary: SplitSummary,
  /** Fold k: the cases it trains on and the cases it validates on. */
  folds: z.array(z.object({ train: z.array(z.string()), val: z.array(z.string()) })),
  /** Held-out test cases (in no fold). */
  test: z.array(z.string()),
  /** Runs (ids) trained on this split: it cannot be deleted while they exist. */
  usedBy: z.array(z.string()),
})
export type SplitDetail = z.infer<typeof SplitDetail>

/** Where a deleted dataset, split or run went: a folder under the workspace's trash/. */
export const Trashed = z.object({ trashedTo: z.string() })
export type Trashed = z.infer<typeof Trashed>

/** The bounds of one number field of a form, read from the contract's schema (forms.limits). */
export const NumberRule = z.object({
  integer: z.boolean(),
  min: z.number().optional(),
  max: z.number().optional(),
  /** The value must be greater than this (e.g. a learning rate > 0). */
  above: z.number().optional(),
  multipleOf: z.number().optional(),
})
export type NumberRule = z.infer<typeof NumberRule>

// ---------------------------------------------------------------------------------------------
// Commands: name → { request, response }

export const commands = {
  /** Versions, compute backend in use and why, the backend ladder, the workspace path. */
  'app.info': { request: z.object({}).strict(), response: AppInfo },
  /** Round-trip check; the main side also pushes an `app.pong` event with the same text. */
  'app.ping': {
    request: z.object({ message: z.string().max(1000) }).strict(),
    response: z.object({ message: z.string(), receivedAt: z.string() }),
  },
  'datasets.list': {
    request: z.object({}).strict(),
    response: z.object({ datasets: z.array(DatasetSummary) }),
  },
  /** Starts an import job; progress arrives as `job.progress`, changes of state (and the end) as `job.state`. */
  'datasets.import': {
    request: z
      .object({
        path: z.string().min(1).max(4096),
        layout: z.enum(['auto', 'msd', 'nnunet', 'pairs']).default('auto'),
        name: z.string().max(200).optional(),
      })
      .strict(),
    response: z.object({ job: JobInfo }),
  },
  /** Starts an audit job (the dataset doctor); the report is the job's result. */
  'datasets.audit': {
    request: z.object({ datasetId: id }).strict(),
    response: z.object({ job: JobInfo }),
  },
  /** Move a dataset's workspace folder to the trash (refused while runs use it; the source files stay). */
  'datasets.delete': { request: z.object({ datasetId: id }).strict(), response: Trashed },
  'splits.list': {
    request: z.object({ datasetId: id }).strict(),
    response: z.object({ splits: z.array(SplitSummary) }),
  },
  'splits.create': {
    request: z
      .object({
        datasetId: id,
        folds: z.number().int().min(2).max(50).default(5),
        seed: z.number().int().min(0).max(2 ** 31 - 1).default(0),
        preset: z.enum(['mmwhs', 'brats']).optional(),
        name: z.string().max(100).optional(),
      })
      .strict(),
    response: SplitSummary,
  },
  /** A split's folds (train and validation cases), test cases, and the runs that use it. */
  'splits.get': { request: z.object({ datasetId: id, name: id }).strict(), response: SplitDetail },
  /** Move a split file to the trash (refused while runs use it: their validation cases come from it). */
  'splits.delete': { request: z.object({ datasetId: id, name: id }).strict(), response: Trashed },
  'runs.list': {
    request: z.object({}).strict(),
    response: z.object({ runs: z.array(RunSummary) }),
  },
  'runs.get': {
    request: z.object({ runId: id }).strict(),
    response: z.object({ summary: RunSummary, config: RunConfig, log: z.array(EpochLog) }),
  },
  /** The run form's defaults and presets (the Training page starts from these). */
  'runs.defaults': { request: z.object({}).strict(), response: RunFormDefaults },
  /** Create the runs of a form and queue their training jobs (one at a time per device). */
  'runs.create': {
    request: RunForm,
    response: z.object({ runIds: z.array(z.string()), jobs: z.array(JobInfo) }),
  },
  /** Queue a stopped (cancelled or failed) run again; it continues from its last checkpoint. */
  'runs.resume': {
    request: z.object({ runId: id }).strict(),
    response: z.object({ job: JobInfo }),
  },
  /**
   * Cancel a run: its queued, running or paused training job, or — a run left "queued" or
   * "running" with no job (the app or `dsd train` stopped before it ran) — mark it cancelled.
   */
  'runs.cancel': { request: z.object({ runId: id }).strict(), response: z.object({ state: RunState }) },
  /** Move a run folder to the trash; refused while its training job runs (cancel it first). */
  'runs.delete': { request: z.object({ runId: id }).strict(), response: Trashed },
  /** The bounds of every number field of the app's forms (from the request schemas). */
  'forms.limits': {
    request: z.object({}).strict(),
    response: z.object({ forms: z.record(z.string(), z.record(z.string(), NumberRule)) }),
  },
  /** Every job: queued, running, paused and the recent ended ones (a reloaded page catches up). */
  'jobs.list': {
    request: z.object({}).strict(),
    response: z.object({ jobs: z.array(JobInfo) }),
  },
  /** Pause or continue a pausable job (at its next safe point), or cancel any job not ended. */
  'jobs.control': {
    request: JobRef.extend({ action: JobAction }).strict(),
    response: z.object({ accepted: z.boolean() }),
  },
  ...reviewCommands,
  ...exportCommands,
  ...quickStartCommands,
} as const

export type Commands = typeof commands
export type CommandName = keyof Commands
/** What a caller passes (defaults may be omitted). */
export type CommandRequest<N extends CommandName> = z.input<Commands[N]['request']>
/** What a handler receives (defaults applied). */
export type CommandParams<N extends CommandName> = z.output<Commands[N]['request']>
export type CommandResponse<N extends CommandName> = z.output<Commands[N]['response']>

// ---------------------------------------------------------------------------------------------
// Events: name → payload

export const events = {
  'app.pong': z.object({ message: z.string() }),
  /** A job was queued, started, paused, continued, learnt its backend, or ended. */
  'job.state': JobInfo,
  /** A job's progress, at most about 10 a second per job. */
  'job.progress': JobProgress,
  /** The latest training step of a run, at most about 4 a second per run (and each epoch's last). */
  'run.step': z.object({
    runId: z.string(),
    epoch: z.number().int(),
    epochs: z.number().int(),
    step: z.number().int(),
    steps: z.number().int(),
    loss: z.record(z.string(), z.number()),
    lr: z.number(),
    voxelsPerSecond: z.number(),
    etaSeconds: z.number(),
  }),
  'run.epoch': z.object({ runId: z.string(), log: EpochLog, seconds: z.number(), state: RunState }),
  'run.state': z.object({ runId: z.string(), state: RunState, error: z.string().optional() }),
} as const

export type Events = typeof events
export type EventName = keyof Events
export type EventPayload<E extends EventName> = z.output<Events[E]>

/** What every transport returns for a command: a value or the contract's error shape. */
export type Result<T> =
  | { ok: true; value: T }
  | { ok: false; error: ErrorShape }

/** The API the renderer sees, whatever the transport. */
export interface DsdApi {
  invoke<N extends CommandName>(name: N, request: CommandRequest<N>): Promise<CommandResponse<N>>
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void
}

export const commandNames = Object.keys(commands) as CommandName[]
export const eventNames = Object.keys(events) as EventName[]

/** Electron IPC channel names (the preload allow-lists exactly these). */
export const IPC_INVOKE_CHANNEL = 'dsd:invoke'
export const IPC_EVENT_CHANNEL = 'dsd:event'
/** Privileged scheme for large binary data (volumes) in Electron. */
export const DATA_SCHEME = 'dsd-data'
