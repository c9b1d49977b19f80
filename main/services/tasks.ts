/**
 * Long-running work (imports, audits, later training and inference) as tasks: each gets an
 * id, reports progress as `task.progress` events, ends with one `task.finished` event, and
 * can be cancelled through its AbortSignal.
 */
import { randomUUID } from 'node:crypto'
import { toErrorShape } from '../errors'
import type { Bridge } from './bridge'

export interface TaskContext {
  signal: AbortSignal
  progress(done: number, total: number, message?: string): void
}

export class TaskRunner {
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>()

  constructor(private readonly bridge: Bridge) {}

  start<T>(kind: string, work: (ctx: TaskContext) => Promise<T>): string {
    const taskId = randomUUID()
    const controller = new AbortController()
    let last = 0
    const ctx: TaskContext = {
      signal: controller.signal,
      progress: (done, total, message = '') => {
        // At most ~20 events a second, but always the last one.
        const now = Date.now()
        if (done < total && now - last < 50) return
        last = now
        this.bridge.emit('task.progress', { taskId, kind, done, total, message })
      },
    }
    const done = (async () => {
      // Let the caller receive the task id before the first event.
      await new Promise((r) => setImmediate(r))
      try {
        const result = await work(ctx)
        this.bridge.emit('task.finished', {
          taskId,
          kind,
          ok: true,
          cancelled: false,
          result: result ?? null,
        })
      } catch (err) {
        const cancelled = controller.signal.aborted
        this.bridge.emit('task.finished', {
          taskId,
          kind,
          ok: false,
          cancelled,
          error: toErrorShape(err),
        })
      } finally {
        this.running.delete(taskId)
      }
    })()
    this.running.set(taskId, { controller, done })
    return taskId
  }

  cancel(taskId: string): boolean {
    const task = this.running.get(taskId)
    if (!task) return false
    task.controller.abort(new Error('cancelled by the user'))
    return true
  }

  /** Resolves when every running task has ended (for shutdown and tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.running.values()].map((t) => t.done))
  }
}
