/**
 * Long-running work (imports, audits, later training and inference) as tasks: each gets an
 * id, reports progress as `task.progress` events, ends with one `task.finished` event, and
 * can be cancelled through its AbortSignal.
 */
import { randomUUID } from 'node:crypto'
import type { TaskInfo } from '../contract'
import { toErrorShape } from '../errors'
import type { Bridge } from './bridge'

export interface TaskContext {
  signal: AbortSignal
  progress(done: number, total: number, message?: string): void
}

export class TaskRunner {
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>()
  /** Every task's latest status; finished ones are kept (the newest 50) for late listeners. */
  private readonly infos = new Map<string, TaskInfo>()

  constructor(private readonly bridge: Bridge) {}

  start<T>(kind: string, work: (ctx: TaskContext) => Promise<T>): string {
    const taskId = randomUUID()
    const controller = new AbortController()
    let last = 0
    const info: TaskInfo = { taskId, kind, status: 'running', done: 0, total: 0, message: '' }
    this.infos.set(taskId, info)
    const ctx: TaskContext = {
      signal: controller.signal,
      progress: (done, total, message = '') => {
        // At most ~20 events a second, but always the last one.
        Object.assign(info, { done, total, message })
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
        Object.assign(info, { status: 'done', result: result ?? null })
        this.bridge.emit('task.finished', {
          taskId,
          kind,
          ok: true,
          cancelled: false,
          result: result ?? null,
        })
      } catch (err) {
        const cancelled = controller.signal.aborted
        Object.assign(info, { status: cancelled ? 'cancelled' : 'failed', error: toErrorShape(err) })
        this.bridge.emit('task.finished', {
          taskId,
          kind,
          ok: false,
          cancelled,
          error: toErrorShape(err),
        })
      } finally {
        this.running.delete(taskId)
        const finished = [...this.infos.values()].filter((t) => t.status !== 'running')
        for (const old of finished.slice(0, Math.max(0, finished.length - 50))) this.infos.delete(old.taskId)
      }
    })()
    this.running.set(taskId, { controller, done })
    return taskId
  }

  /** Running and recently finished tasks, oldest first. */
  list(): TaskInfo[] {
    return [...this.infos.values()].map((t) => ({ ...t }))
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
