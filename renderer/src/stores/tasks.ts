import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { EventPayload } from '../../../main/contract'
import { useApi } from '../api'
import { notifyError } from '../notify'

export type TaskStatus = 'running' | 'succeeded' | 'failed' | 'cancelled'
export type TaskFinished = EventPayload<'task.finished'>

/** One background task as the UI shows it. */
export interface TaskView {
  taskId: string
  kind: string
  /** What the user started, e.g. "Import /data/Task04". */
  label: string
  done: number
  total: number
  message: string
  status: TaskStatus
  cancelling: boolean
  error?: TaskFinished['error']
  startedAt: number
}

const KEEP_FINISHED = 4

/**
 * Every task the main side reports (`task.progress` / `task.finished`), whether or not this
 * window started it, plus promises for callers that wait for one to end.
 */
export const useTaskStore = defineStore('tasks', () => {
  const api = useApi()
  const tasks = ref<TaskView[]>([])
  const finished = new Map<string, TaskFinished>()
  const waiters = new Map<string, Array<(f: TaskFinished) => void>>()

  function find(taskId: string): TaskView | undefined {
    return tasks.value.find((t) => t.taskId === taskId)
  }

  function ensure(taskId: string, kind: string): TaskView {
    let task = find(taskId)
    if (!task) {
      tasks.value.unshift({
        taskId,
        kind,
        label: kind,
        done: 0,
        total: 0,
        message: '',
        status: 'running',
        cancelling: false,
        startedAt: Date.now(),
      })
      task = tasks.value[0]
    }
    return task
  }

  function prune(): void {
    const done = tasks.value.filter((t) => t.status !== 'running')
    for (const old of done.slice(KEEP_FINISHED)) dismiss(old.taskId)
  }

  api.on('task.progress', (p) => {
    const task = ensure(p.taskId, p.kind)
    if (task.status !== 'running') return
    task.done = p.done
    task.total = p.total
    task.message = p.message
  })

  api.on('task.finished', (p) => settle(p))

  /** Apply a task's end (from the event, or from `tasks.list` after a missed event). */
  function settle(p: TaskFinished): void {
    const task = ensure(p.taskId, p.kind)
    task.status = p.cancelled ? 'cancelled' : p.ok ? 'succeeded' : 'failed'
    task.cancelling = false
    task.error = p.error
    if (p.ok && task.total > 0) task.done = task.total
    if (p.error) task.message = p.error.message
    else if (p.cancelled) task.message = 'Cancelled'
    finished.set(p.taskId, p)
    for (const resolve of waiters.get(p.taskId) ?? []) resolve(p)
    waiters.delete(p.taskId)
    prune()
  }

  /**
   * Catch up with the main side: events sent while the socket was down (or before a reload)
   * are lost, so the task list is re-read whenever the connection (re)opens.
   */
  async function sync(): Promise<void> {
    const { tasks: remote } = await api.invoke('tasks.list', {})
    for (const t of remote) {
      const known = find(t.taskId)
      if (t.status === 'running') {
        const task = ensure(t.taskId, t.kind)
        Object.assign(task, { done: t.done, total: t.total, message: t.message })
      } else if (known && known.status === 'running') {
        settle({
          taskId: t.taskId,
          kind: t.kind,
          ok: t.status === 'done',
          cancelled: t.status === 'cancelled',
          result: t.result,
          error: t.error,
        })
      }
    }
  }
  api.onConnectionChange((state) => {
    if (state === 'open') sync().catch(() => {})
  })

  /** Names a task this window started and resolves when it ends (never rejects). */
  function track(taskId: string, kind: string, label: string): Promise<TaskFinished> {
    const task = ensure(taskId, kind)
    task.label = label
    const already = finished.get(taskId)
    if (already) return Promise.resolve(already)
    return new Promise((resolve) => {
      const list = waiters.get(taskId) ?? []
      list.push(resolve)
      waiters.set(taskId, list)
    })
  }

  /** Asks the main side to cancel; the task ends with `task.finished` (cancelled). */
  async function cancel(taskId: string): Promise<void> {
    const task = find(taskId)
    if (task) task.cancelling = true
    try {
      const { cancelled } = await api.invoke('tasks.cancel', { taskId })
      if (!cancelled && task && task.status === 'running') task.cancelling = false
    } catch (err) {
      if (task) task.cancelling = false
      notifyError(err, 'Could not cancel the task')
    }
  }

  /** Removes a finished task from the list. */
  function dismiss(taskId: string): void {
    tasks.value = tasks.value.filter((t) => t.taskId !== taskId || t.status === 'running')
    finished.delete(taskId)
  }

  const running = computed(() => tasks.value.filter((t) => t.status === 'running'))

  return { tasks, running, track, cancel, dismiss }
})
