/**
 * The job queue: runs are executed one at a time per device, each in its own worker thread
 * (never on the main thread). It relays the worker's progress, and turns a worker that dies
 * (crash, out of memory, killed) into a clear failed state; the run's last checkpoint stays
 * intact and `resume` continues from it.
 */
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { DsdError } from '../errors'
import { CONTROL, type TrainWorkerData, type WorkerMessage } from '../workers/protocol'
import { spawnWorker } from '../workers/spawn'
import type { RunState } from '../contract/runs'
import { runFiles } from '../workspace/run-layout'
import { writeRunState } from '../workspace/runs'

export interface JobEvents {
  message: [runId: string, message: WorkerMessage]
}

interface Active {
  runId: string
  control: Int32Array
  done: Promise<RunState>
  worker?: import('node:worker_threads').Worker
}

export class JobQueue extends EventEmitter<JobEvents> {
  private readonly queue: { runId: string; resolve: (s: RunState) => void; reject: (e: unknown) => void }[] = []
  private active: Active | null = null
  private closing = false

  /** Heap cap of each training worker in MB (V8 old generation); undefined = Node's default. */
  private readonly workerHeapMb: number | undefined

  constructor(
    private readonly workspace: string,
    options: { workerHeapMb?: number } = {},
  ) {
    super()
    const env = Number(process.env.DSD_WORKER_HEAP_MB)
    this.workerHeapMb = options.workerHeapMb ?? (env > 0 ? env : undefined)
  }

  /** Queue a run (new or resumed); resolves with its final state. */
  enqueue(runId: string): Promise<RunState> {
    if (this.active?.runId === runId || this.queue.some((j) => j.runId === runId)) {
      throw new DsdError('RUN_BUSY', `Run ${runId} is already queued or running.`, { runId })
    }
    return new Promise<RunState>((resolve, reject) => {
      this.queue.push({ runId, resolve, reject })
      void this.pump()
    })
  }

  get running(): string | null {
    return this.active?.runId ?? null
  }

  get queued(): string[] {
    return this.queue.map((j) => j.runId)
  }

  pause(runId: string): boolean {
    return this.signal(runId, CONTROL.pause)
  }

  resume(runId: string): boolean {
    return this.signal(runId, CONTROL.run)
  }

  cancel(runId: string): boolean {
    const i = this.queue.findIndex((j) => j.runId === runId)
    if (i >= 0) {
      const [job] = this.queue.splice(i, 1)
      void this.finishQueued(job.runId).then(job.resolve, job.reject)
      return true
    }
    return this.signal(runId, CONTROL.cancel)
  }

  private async finishQueued(runId: string): Promise<RunState> {
    const state = JSON.parse(await readFile(runFiles(this.workspace, runId).state, 'utf8')) as RunState
    const next: RunState = { ...state, status: 'cancelled', message: 'cancelled before it started', updatedAt: new Date().toISOString() }
    await writeRunState(this.workspace, runId, next)
    return next
  }

  private signal(runId: string, value: number): boolean {
    if (this.active?.runId !== runId) return false
    Atomics.store(this.active.control, 0, value)
    Atomics.notify(this.active.control, 0)
    return true
  }

  /**
   * Shut down: cancel everything; a worker that has not stopped after `graceMs` is
   * terminated (its last checkpoint is complete on disk; `resume` continues from it).
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true
    for (const id of [...this.queued, this.running]) if (id) this.cancel(id)
    const active = this.active
    if (!active) return
    const timer = setTimeout(() => void active.worker?.terminate(), graceMs)
    await active.done.catch(() => undefined)
    clearTimeout(timer)
  }

  /** Wait for everything queued and running. */
  async idle(): Promise<void> {
    while (this.active || this.queue.length) {
      await this.active?.done.catch(() => undefined)
      await new Promise((r) => setImmediate(r))
    }
  }

  private async pump(): Promise<void> {
    if (this.active || this.queue.length === 0) return
    const job = this.queue.shift()!
    const sab = new SharedArrayBuffer(4)
    const control = new Int32Array(sab)
    this.active = { runId: job.runId, control, done: Promise.resolve(null as unknown as RunState) }
    const done = this.execute(job.runId, sab)
    this.active.done = done
    try {
      job.resolve(await done)
    } catch (err) {
      job.reject(err)
    } finally {
      this.active = null
      void this.pump()
    }
  }

  private execute(runId: string, control: SharedArrayBuffer): Promise<RunState> {
    return new Promise<RunState>((resolve) => {
      const data: TrainWorkerData = { workspace: this.workspace, runId, control }
      const worker = spawnWorker('train-worker', {
        workerData: data,
        ...(this.workerHeapMb ? { resourceLimits: { maxOldGenerationSizeMb: this.workerHeapMb } } : {}),
      })
      if (this.active?.runId === runId) this.active.worker = worker
      let final: RunState | null = null
      let lastState: RunState | null = null
      let crashed: Promise<RunState> | null = null
      worker.on('message', (msg: WorkerMessage) => {
        if ('state' in msg && msg.state) lastState = msg.state
        if (msg.type === 'done' || msg.type === 'error') final = msg.state
        this.emit('message', runId, msg)
      })
      worker.on('error', (err) => {
        const why =
          (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? `the training worker ran out of memory (${err.message}${this.workerHeapMb ? `; heap limit ${this.workerHeapMb} MB, DSD_WORKER_HEAP_MB` : ''}): use a smaller patch, batch or preset, or allow more memory`
            : `the training worker crashed: ${err.message}`
        crashed = this.died(runId, lastState, why)
      })
      worker.on('exit', (code) => {
        if (final) return resolve(final)
        // 'error' comes before 'exit': its state is the one to report.
        void (crashed ?? this.died(runId, lastState, `the training worker exited unexpectedly (code ${code})`)).then(resolve)
      })
    })
  }

  /** A worker that died without a final message: record a clear failed state. */
  private async died(runId: string, last: RunState | null, why: string): Promise<RunState> {
    let state = last
    if (!state) {
      try {
        state = JSON.parse(await readFile(runFiles(this.workspace, runId).state, 'utf8')) as RunState
      } catch {
        state = null
      }
    }
    // The newest checkpoint may be one epoch ahead of the state (died between the two writes).
    let epoch = state?.epoch ?? 0
    try {
      const { readCheckpointHeader } = await import('../engine/checkpoint')
      const meta = readCheckpointHeader(runFiles(this.workspace, runId).lastCheckpoint).metadata as { epoch?: number }
      if (typeof meta?.epoch === 'number') epoch = meta.epoch
    } catch {
      // no checkpoint yet, or unreadable: resume will say so
    }
    const next: RunState = {
      status: this.closing ? 'cancelled' : 'failed',
      epoch,
      epochs: state?.epochs ?? 0,
      bestEpoch: state?.bestEpoch ?? null,
      bestMeanDice: state?.bestMeanDice ?? null,
      message: `${this.closing ? 'stopped when the app closed' : why}. The last checkpoint (epoch ${epoch}) is intact: resume with \`dsd resume ${runId}\`.`,
      updatedAt: new Date().toISOString(),
    }
    await writeRunState(this.workspace, runId, next).catch(() => undefined)
    this.emit('message', runId, { type: 'error', error: { code: 'WORKER_DIED', message: next.message, details: {} }, state: next })
    return next
  }
}
