/**
 * Run a job in a worker thread: the worker gets the job's control word (pause / cancel without
 * a message round trip, so a long synchronous step never blocks them), its messages go to the
 * kind, `progress` and `started` messages update the job, and a worker that dies without its
 * final message (crash, out of memory, terminated) becomes a WORKER_DIED / OUT_OF_MEMORY error
 * whose message says why and what to do.
 */
import type { WorkerOptions } from 'node:worker_threads'
import { DsdError } from '../errors'
import type { JobWorkerMessage, WorkerName } from '../workers/protocol'
import { spawnWorker } from '../workers/spawn'
import type { JobContext } from './system'

export interface WorkerJobOptions<M> {
  /** Every message the worker posts (after `progress` / `started` have updated the job). */
  onMessage?: (message: M) => void
  /** Whether a message is the worker's last (its result or its reported failure). */
  isFinal: (message: M) => boolean
  /** Heap cap of the worker in MB (V8 old generation); default DSD_WORKER_HEAP_MB, else Node's. */
  heapMb?: number
  /** What the worker is, for messages ("the training worker"). */
  what: string
}

/** The heap cap from the option or DSD_WORKER_HEAP_MB (undefined: Node's default). */
export function workerHeapMb(option?: number): number | undefined {
  const env = Number(process.env.DSD_WORKER_HEAP_MB)
  return option ?? (env > 0 ? env : undefined)
}

/**
 * Start worker `name` with `data` (plus `control`, the job's control word) and resolve once it
 * has posted its final message and exited. Rejects when it dies before that.
 */
export function runWorker<M extends { type: string }>(
  name: WorkerName,
  data: object,
  ctx: JobContext,
  options: WorkerJobOptions<M>,
): Promise<M> {
  const heapMb = workerHeapMb(options.heapMb)
  return new Promise<M>((resolve, reject) => {
    const workerOptions: WorkerOptions = {
      workerData: { ...data, control: ctx.control.buffer },
      ...(heapMb ? { resourceLimits: { maxOldGenerationSizeMb: heapMb } } : {}),
    }
    const worker = spawnWorker(name, workerOptions)
    ctx.attach(worker)
    let final: M | null = null
    let crash: DsdError | null = null
    worker.on('message', (m: M) => {
      const common = m as unknown as JobWorkerMessage
      if (common.type === 'progress') ctx.progress(common.done, common.total, common.message)
      else if (common.type === 'started') ctx.backend(common.backend)
      if (options.isFinal(m)) final = m
      options.onMessage?.(m)
    })
    worker.on('error', (err) => {
      // 'error' comes before 'exit': its reason is the one to report.
      crash =
        (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new DsdError(
              'OUT_OF_MEMORY',
              `${options.what} ran out of memory (${err.message}${heapMb ? `; heap limit ${heapMb} MB, DSD_WORKER_HEAP_MB` : ''}): use a smaller patch, batch or preset, or allow more memory`,
              {},
            )
          : new DsdError('WORKER_DIED', `${options.what} crashed: ${err.message}`, {})
    })
    worker.on('exit', (code) => {
      if (final) return resolve(final)
      reject(crash ?? new DsdError('WORKER_DIED', `${options.what} exited unexpectedly (code ${code})`, {}))
    })
  })
}
