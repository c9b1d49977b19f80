/**
 * The one contract between the renderer and the main process.
 *
 * Commands are request → response; events are pushed from main to the renderer. Every payload
 * has a zod schema: the main side validates requests (and, in tests, responses) at the edge of
 * every transport (Electron IPC, HTTP + WebSocket, in-process). The renderer imports only the
 * *types* from this module (`import type`), never the schemas.
 */
import { z } from 'zod'
import { SafeId } from './ids'
import { reviewCommands } from './review'

export type { ErrorShape } from './errors'

// ---------------------------------------------------------------------------------------------
// Shared shapes

const id = SafeId

export const BackendName = z.enum(['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu'])
export type BackendName = z.infer<typeof BackendName>

export const BackendProbe = z.object({
  name: BackendName,
  available: z.boolean(),
  reason: z.string(),
  device: z.string().optional(),
  software: z.boolean().optional(),
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

export const TaskRef = z.object({ taskId: z.string() })

export const TaskInfo = z.object({
  taskId: z.string(),
  kind: z.string(),
  status: z.enum(['running', 'done', 'failed', 'cancelled']),
  done: z.number(),
  total: z.number(),
  message: z.string(),
  result: z.unknown().optional(),
  error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) }).optional(),
})
export type TaskInfo = z.infer<typeof TaskInfo>
export type TaskRef = z.infer<typeof TaskRef>

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

export const RunStatus = z.enum(['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'])

export const RunStateShape = z.object({
  status: RunStatus,
  epoch: z.number().int(),
  epochs: z.number().int(),
  bestEpoch: z.number().int().nullable(),
  bestMeanDice: z.number().nullable(),
  message: z.string(),
  updatedAt: z.string(),
})
export type RunStateShape = z.infer<typeof RunStateShape>

export const RunSummary = z.object({
  id: z.string(),
  datasetId: z.string(),
  split: z.string(),
  fold: z.number().int(),
  variant: z.string(),
  backbone: z.string(),
  preset: z.string(),
  state: RunStateShape,
})
export type RunSummary = z.infer<typeof RunSummary>

export const EpochLogShape = z.object({
  epoch: z.number().int(),
  lr: z.number(),
  loss: z.record(z.string(), z.number()),
  steps: z.number().int(),
  valDice: z.record(z.string(), z.number().nullable()).optional(),
  valMeanDice: z.number().optional(),
})
export type EpochLogShape = z.infer<typeof EpochLogShape>

const Variant = z.enum(['Basic', 'DS', 'SDD', 'SDE', 'DSD', 'custom'])
/** Loss weights of the 'custom' variant: η (deep supervision), α1 (encoder KL), α2 (decoder KL). */
const LossWeights = z
  .object({ eta: z.number().min(0).max(100), alpha1: z.number().min(0).max(100), alpha2: z.number().min(0).max(100) })
  .strict()

/** The run form: one run, or every chosen fold × every chosen variant. */
export const RunForm = z
  .object({
    datasetId: id,
    split: id,
    folds: z.array(z.number().int().min(0)).min(1).max(50),
    variants: z.array(Variant).min(1),
    name: id.optional(),
    backbone: z.enum(['dynunet', 'unetr']).default('dynunet'),
    preset: z.string().min(1).max(50).default('small'),
    patch: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]).default([32, 32, 32]),
    batch: z.number().int().min(1).max(64).default(2),
    epochs: z.number().int().min(1).max(100000).default(50),
    stepsPerEpoch: z.number().int().min(1).optional(),
    lr: z.number().positive().default(1e-3),
    weightDecay: z.number().min(0).default(1e-5),
    temperature: z.number().positive().default(3),
    seed: z.number().int().min(0).default(100),
    backend: z.enum(['auto', 'tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu']).default('auto'),
    validateEvery: z.number().int().min(0).default(1),
    preprocess: z.enum(['mri', 'mmwhs', 'brats']).default('mri'),
    augment: z.enum(['mmwhs', 'brats', 'none']).default('mmwhs'),
    /** Required with the 'custom' variant, ignored by the named ones (their weights are fixed). */
    weights: LossWeights.optional(),
  })
  .strict()
  .refine((f) => !f.variants.includes('custom') || f.weights !== undefined, {
    message: "the 'custom' variant needs weights { eta, alpha1, alpha2 }",
    path: ['weights'],
  })
export type RunForm = z.input<typeof RunForm>

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
  /** Starts an import (a task); progress arrives as `task.progress`, the end as `task.finished`. */
  'datasets.import': {
    request: z
      .object({
        path: z.string().min(1).max(4096),
        layout: z.enum(['auto', 'msd', 'nnunet', 'pairs']).default('auto'),
        name: z.string().max(200).optional(),
      })
      .strict(),
    response: TaskRef,
  },
  'datasets.audit': {
    request: z.object({ datasetId: id }).strict(),
    response: TaskRef,
  },
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
  'runs.list': {
    request: z.object({}).strict(),
    response: z.object({ runs: z.array(RunSummary), running: z.string().nullable(), queued: z.array(z.string()) }),
  },
  'runs.get': {
    request: z.object({ runId: id }).strict(),
    response: z.object({ summary: RunSummary, config: z.record(z.string(), z.unknown()), log: z.array(EpochLogShape) }),
  },
  /** Create the runs of a form and queue them (one at a time per device). */
  'runs.create': {
    request: RunForm,
    response: z.object({ runIds: z.array(z.string()) }),
  },
  /** Pause, continue, or cancel a running run; `start` queues a stopped run again (resumes from its checkpoint). */
  'runs.control': {
    request: z.object({ runId: id, action: z.enum(['pause', 'continue', 'cancel', 'start']) }).strict(),
    response: z.object({ accepted: z.boolean() }),
  },
  /** Running and recently finished tasks (so a reloaded page or a reconnected socket catches up). */
  'tasks.list': {
    request: z.object({}).strict(),
    response: z.object({ tasks: z.array(TaskInfo) }),
  },
  'tasks.cancel': {
    request: TaskRef.strict(),
    response: z.object({ cancelled: z.boolean() }),
  },
  ...reviewCommands,
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
  'task.progress': z.object({
    taskId: z.string(),
    kind: z.string(),
    done: z.number(),
    total: z.number(),
    message: z.string(),
  }),
  'task.finished': z.object({
    taskId: z.string(),
    kind: z.string(),
    ok: z.boolean(),
    cancelled: z.boolean(),
    result: z.unknown().optional(),
    error: z
      .object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) })
      .optional(),
  }),
  'run.step': z.object({
    runId: z.string(),
    epoch: z.number().int(),
    step: z.number().int(),
    steps: z.number().int(),
    loss: z.record(z.string(), z.number()),
    lr: z.number(),
    voxelsPerSecond: z.number(),
    etaSeconds: z.number(),
  }),
  'run.epoch': z.object({ runId: z.string(), log: EpochLogShape, seconds: z.number(), state: RunStateShape }),
  'run.state': z.object({ runId: z.string(), state: RunStateShape, error: z.string().optional() }),
} as const

export type Events = typeof events
export type EventName = keyof Events
export type EventPayload<E extends EventName> = z.output<Events[E]>

/** What every transport returns for a command: a value or the contract's error shape. */
export type Result<T> =
  | { ok: true; value: T }
  | { ok: false; error: { code: string; message: string; details: Record<string, unknown> } }

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
