/**
 * The job system: every long operation of the app (import, audit, training; next prediction,
 * evaluation and export) runs as a job of a registered kind. It owns
 *
 * - the queues: `device` kinds (training, prediction) run one at a time, `io` kinds at once;
 * - control: cancel (an AbortSignal for in-process work, and a shared-memory control word that
 *   a worker thread reads between steps), pause and continue for kinds that support them;
 * - progress: `progress` events at most every `progressIntervalMs` per job, the last one never
 *   lost; a `state` event on every change of state;
 * - crash reporting: a kind that throws ends `failed` with the error's `{ code, message }`;
 * - persistence: with a store (main/workspace/jobs.ts), the job list survives a restart — ended
 *   jobs are listed again, and jobs of restartable kinds that had not ended (queued training
 *   runs, or one that was running) are queued again.
 *
 * Adding a kind is a JobKind object (main/services/jobs.ts) and its name in the contract.
 */
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { z } from 'zod'
import { JOB_ENDED, type JobAction, type JobBackend, type JobInfo, type JobKindName, type JobProgress, type JobStatus } from '../contract/jobs'
import { DsdError, toErrorShape } from '../errors'
import { CONTROL } from '../workers/protocol'
import type { JobStore, StoredJob } from '../workspace/jobs'
import { throttle, type Throttle } from './throttle'

export type { JobStore, StoredJob }

/** What a running job gets. */
export interface JobContext {
  readonly jobId: string
  /** Aborted when the job is cancelled (by the user, or because the app closes). */
  readonly signal: AbortSignal
  /** The control word (CONTROL.run | pause | cancel) over shared memory, for worker threads. */
  readonly control: Int32Array
  /** True once the job system is closing: a cancel then means "stopped with the app". */
  readonly closing: boolean
  /** Units done of total, and a line saying what is happening (rate-limited for listeners). */
  progress(done: number, total: number, message?: string): void
  /** A pausable job says it has paused (at a safe point), or runs again. */
  paused(paused: boolean, message?: string): void
  /** The compute backend the job runs on, and why. */
  backend(backend: JobBackend): void
  /** The worker thread running this job: terminated when it does not stop in time on close. */
  attach(worker: { terminate(): Promise<number> }): void
}

/** A kind of job: how to run it and how it behaves in the queue. */
export interface JobKind<P = unknown, R = unknown> {
  readonly name: JobKindName
  /** Validates the parameters (also those read back from the store after a restart). */
  readonly params: z.ZodType<P>
  /** `device`: one at a time (compute-heavy); `io`: starts at once. */
  readonly queue: 'device' | 'io'
  /** Whether pause / continue apply (the job must watch the control word). */
  readonly pausable?: boolean
  /** Queued again after a restart when it had not ended (else it is marked failed). */
  readonly restartable?: boolean
  label(params: P): string
  /** What the job works on (a run id, a dataset id), for finding its jobs. */
  subject?(params: P): string | null
  /** Called when a job is queued (started, or restored after a restart), before it runs. */
  queued?(params: P): Promise<void> | void
  /** Do the work; the result becomes the job's `result`. Throwing ends the job failed (or cancelled). */
  run(params: P, ctx: JobContext): Promise<R>
  /** A queued job was cancelled before it ran. */
  cancelledBeforeStart?(params: P): Promise<void> | void
}

export interface JobSystemOptions {
  store?: JobStore
  /** Ended jobs kept in the list (newest first); default 100. */
  keepEnded?: number
  /** Minimum time between `progress` events of one job; default 100 ms. */
  progressIntervalMs?: number
}

export interface JobSystemEvents {
  state: [info: JobInfo]
  progress: [progress: JobProgress]
  /** The store could not be read or written (the jobs themselves go on). */
  storeError: [error: Error]
}

interface Job {
  info: JobInfo
  kind: JobKind
  params: unknown
  controller: AbortController
  control: Int32Array
  worker?: { terminate(): Promise<number> }
  progress: Throttle<JobProgress>
  /** Resolves when the job has ended (or, when the app closes, stopped to run again later). */
  ended: Promise<JobInfo>
  settled: boolean
  end: (info: JobInfo) => void
}

const ended = (status: JobStatus) => JOB_ENDED.includes(status)

export class JobSystem extends EventEmitter<JobSystemEvents> {
  private readonly kinds = new Map<JobKindName, JobKind<never, unknown>>()
  /** Every known job, oldest first. */
  private readonly jobs = new Map<string, Job>()
  private readonly deviceQueue: Job[] = []
  private deviceActive: Job | null = null
  private closing = false
  private saving: Promise<void> = Promise.resolve()

  constructor(private readonly options: JobSystemOptions = {}) {
    super()
  }

  register<P, R>(kind: JobKind<P, R>): this {
    this.kinds.set(kind.name, kind as unknown as JobKind<never, unknown>)
    return this
  }

  /**
   * Read the stored job list: ended jobs are listed again; jobs that had not ended are queued
   * again (restartable kinds) or marked failed. Call once, before the first `start`.
   */
  async restore(): Promise<void> {
    if (!this.options.store) return
    let stored: StoredJob[]
    try {
      stored = await this.options.store.load()
    } catch (err) {
      this.emit('storeError', err as Error)
      return
    }
    for (const s of stored) {
      const kind = this.kinds.get(s.info.kind)
      if (!kind) continue
      const job = this.makeJob(kind, s.params, { ...s.info })
      this.jobs.set(job.info.jobId, job)
      if (ended(job.info.status)) {
        job.end(job.info)
        continue
      }
      const params = kind.params.safeParse(s.params)
      if (kind.restartable && params.success) {
        job.params = params.data
        Object.assign(job.info, { status: 'queued', message: 'queued again after a restart', startedAt: null })
        this.enqueue(job)
      } else {
        this.finish(job, 'failed', {
          error: { code: 'INTERRUPTED', message: 'interrupted: the app stopped while this job ran; start it again', details: {} },
        })
      }
    }
    this.persist()
  }

  /** Queue a job of a registered kind; resolves at once with its info (status queued). */
  start(kindName: JobKindName, params: unknown): JobInfo {
    if (this.closing) throw new DsdError('JOBS_CLOSED', 'The app is closing; no new jobs are started.', {})
    const kind = this.kinds.get(kindName)
    if (!kind) throw new DsdError('JOB_KIND_UNKNOWN', `No job kind "${kindName}" is registered.`, { kind: kindName })
    const parsed = kind.params.safeParse(params)
    if (!parsed.success) {
      throw new DsdError('VALIDATION', `Invalid parameters for a ${kindName} job: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(params)'}: ${i.message}`).join('; ')}`, { kind: kindName })
    }
    const now = new Date().toISOString()
    const job = this.makeJob(kind, parsed.data, {
      jobId: randomUUID(),
      kind: kindName,
      label: kind.label(parsed.data as never),
      subject: kind.subject?.(parsed.data as never) ?? null,
      status: 'queued',
      pausable: kind.pausable ?? false,
      done: 0,
      total: 0,
      message: 'queued',
      createdAt: now,
      startedAt: null,
      endedAt: null,
    })
    this.jobs.set(job.info.jobId, job)
    this.enqueue(job)
    this.prune()
    this.changed(job)
    return { ...job.info }
  }

  /** Every job (queued, running, paused, and the newest ended ones), oldest first. */
  list(): JobInfo[] {
    return [...this.jobs.values()].map((j) => ({ ...j.info }))
  }

  get(jobId: string): JobInfo | undefined {
    const job = this.jobs.get(jobId)
    return job && { ...job.info }
  }

  /** The newest job of a kind on a subject (e.g. the training job of a run). */
  latest(kind: JobKindName, subject: string): JobInfo | undefined {
    const all = [...this.jobs.values()].filter((j) => j.info.kind === kind && j.info.subject === subject)
    return all.length ? { ...all[all.length - 1].info } : undefined
  }

  /** Resolves with the job's final info once it has ended. */
  wait(jobId: string): Promise<JobInfo> {
    const job = this.jobs.get(jobId)
    if (!job) return Promise.reject(new DsdError('JOB_NOT_FOUND', `No job ${jobId}.`, { jobId }))
    return job.ended
  }

  /**
   * Pause, continue or cancel. False when the action does not apply to the job's state (or the
   * kind cannot pause). Pause and continue take effect when the job reaches a safe point; the
   * `state` event says when.
   */
  control(jobId: string, action: JobAction): boolean {
    const job = this.jobs.get(jobId)
    if (!job || ended(job.info.status)) return false
    if (action === 'cancel') {
      const queuedAt = this.deviceQueue.indexOf(job)
      if (queuedAt >= 0) {
        this.deviceQueue.splice(queuedAt, 1)
        void this.cancelQueued(job, 'cancelled before it started')
        return true
      }
      if (job.info.status === 'queued' && job.kind.queue === 'io') {
        job.controller.abort(new DsdError('CANCELLED', 'cancelled by the user', {}))
        return true
      }
      this.signal(job, CONTROL.cancel)
      job.controller.abort(new DsdError('CANCELLED', 'cancelled by the user', {}))
      return true
    }
    if (!job.info.pausable || job.info.status === 'queued') return false
    if (action === 'pause') return job.info.status === 'running' && this.signal(job, CONTROL.pause)
    return this.signal(job, CONTROL.run)
  }

  /** Stop a job's worker thread at once (what `close` does after its grace period). */
  async terminate(jobId: string): Promise<boolean> {
    const worker = this.jobs.get(jobId)?.worker
    if (!worker) return false
    await worker.terminate()
    return true
  }

  /** Resolves when no job is queued or running. */
  async idle(): Promise<void> {
    for (;;) {
      const open = [...this.jobs.values()].filter((j) => !j.settled)
      if (!open.length) return
      await Promise.all(open.map((j) => j.ended))
    }
  }

  /**
   * Shut down: running jobs are cancelled (a worker that has not stopped after `graceMs` is
   * terminated); queued and stopped jobs of restartable kinds are stored as queued, so they run
   * when the app starts again.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true
    for (const job of this.deviceQueue.splice(0)) {
      if (job.kind.restartable) {
        job.info.message = 'queued; runs when the app starts again'
        job.end({ ...job.info })
      } else void this.cancelQueued(job, 'cancelled: the app closed')
    }
    const active = [...this.jobs.values()].filter((j) => !ended(j.info.status) && j.info.status !== 'queued')
    for (const job of active) {
      this.signal(job, CONTROL.cancel)
      job.controller.abort(new DsdError('CANCELLED', 'the app is closing', {}))
    }
    const timer = setTimeout(() => {
      for (const job of active) void job.worker?.terminate()
    }, graceMs)
    await Promise.all(active.map((j) => j.ended))
    clearTimeout(timer)
    this.persist()
    await this.saving
  }

  // -------------------------------------------------------------------------------------------

  private makeJob(kind: JobKind<never, unknown>, params: unknown, info: JobInfo): Job {
    let resolve!: (info: JobInfo) => void
    const endedPromise = new Promise<JobInfo>((r) => (resolve = r))
    const job: Job = {
      info,
      kind: kind as JobKind,
      params,
      controller: new AbortController(),
      control: new Int32Array(new SharedArrayBuffer(4)),
      progress: throttle(this.options.progressIntervalMs ?? 100, (p) => this.emit('progress', p)),
      ended: endedPromise,
      settled: false,
      end: (final) => {
        job.settled = true
        resolve(final)
      },
    }
    return job
  }

  private enqueue(job: Job): void {
    void Promise.resolve(job.kind.queued?.(job.params as never)).catch(() => undefined)
    if (job.kind.queue === 'io') {
      // Let the caller receive the job id before the first event.
      setImmediate(() => void this.execute(job))
      return
    }
    this.deviceQueue.push(job)
    setImmediate(() => this.pump())
  }

  private pump(): void {
    if (this.deviceActive || this.closing) return
    const job = this.deviceQueue.shift()
    if (!job) return
    this.deviceActive = job
    void this.execute(job).finally(() => {
      this.deviceActive = null
      this.pump()
    })
  }

  private signal(job: Job, value: number): boolean {
    Atomics.store(job.control, 0, value)
    Atomics.notify(job.control, 0)
    return true
  }

  private async cancelQueued(job: Job, message: string): Promise<void> {
    try {
      await job.kind.cancelledBeforeStart?.(job.params as never)
    } finally {
      this.finish(job, 'cancelled', { message })
    }
  }

  private async execute(job: Job): Promise<void> {
    if (ended(job.info.status)) return
    if (job.controller.signal.aborted) return this.finish(job, 'cancelled', { message: 'cancelled before it started' })
    Object.assign(job.info, { status: 'running', startedAt: new Date().toISOString(), message: 'running' })
    this.changed(job)
    const isClosing = () => this.closing
    const ctx: JobContext = {
      jobId: job.info.jobId,
      signal: job.controller.signal,
      control: job.control,
      get closing() {
        return isClosing()
      },
      progress: (done, total, message = '') => {
        Object.assign(job.info, { done, total, message })
        job.progress.push({ jobId: job.info.jobId, kind: job.info.kind, done, total, message })
      },
      paused: (paused, message) => {
        const status = paused ? 'paused' : 'running'
        if (ended(job.info.status) || job.info.status === status) return
        job.info.status = status
        if (message) job.info.message = message
        this.changed(job)
      },
      backend: (backend) => {
        job.info.backend = backend
        this.changed(job)
      },
      attach: (worker) => {
        job.worker = worker
      },
    }
    try {
      const result = await job.kind.run(job.params as never, ctx)
      this.finish(job, 'completed', { result })
    } catch (err) {
      const shape = toErrorShape(err)
      const cancelled = job.controller.signal.aborted || shape.code === 'CANCELLED'
      if (cancelled && this.closing && job.kind.restartable) {
        // Stopped with the app: it runs again at the next start (from its checkpoint).
        Object.assign(job.info, { status: 'queued', message: 'stopped when the app closed; continues when it starts again' })
        job.progress.cancel()
        this.changed(job)
        job.end({ ...job.info })
        return
      }
      this.finish(job, cancelled ? 'cancelled' : 'failed', { error: shape })
    } finally {
      job.worker = undefined
    }
  }

  private finish(job: Job, status: JobStatus, end: { result?: unknown; error?: JobInfo['error']; message?: string }): void {
    job.progress.cancel()
    const info = job.info
    info.status = status
    info.endedAt = new Date().toISOString()
    if (status === 'completed' && info.total > 0) info.done = info.total
    if (end.result !== undefined) info.result = end.result
    if (end.error) info.error = end.error
    info.message = end.message ?? end.error?.message ?? (status === 'completed' ? 'completed' : info.message)
    this.changed(job)
    job.end({ ...info })
  }

  /** A state change: tell listeners, store the list. */
  private changed(job: Job): void {
    this.emit('state', { ...job.info })
    this.persist()
  }

  private prune(): void {
    const keep = this.options.keepEnded ?? 100
    const done = [...this.jobs.values()].filter((j) => ended(j.info.status))
    for (const old of done.slice(0, Math.max(0, done.length - keep))) this.jobs.delete(old.info.jobId)
  }

  private persist(): void {
    const store = this.options.store
    if (!store) return
    const snapshot: StoredJob[] = [...this.jobs.values()].map((j) => {
      const { result: _result, ...info } = j.info
      return { info: { ...info }, params: j.params }
    })
    this.saving = this.saving
      .then(() => store.save(snapshot))
      .catch((err) => {
        this.emit('storeError', err as Error)
      })
  }
}
