import { defineStore } from 'pinia'
import { ref } from 'vue'
import type {
  CommandRequest,
  EpochLog,
  EventPayload,
  RunState,
  RunSummary,
} from '../../../main/contract'
import { ApiError, useApi } from '../api'
import { notifyError } from '../notify'

export type RunAction = CommandRequest<'runs.control'>['action']
export type RunStep = EventPayload<'run.step'>

const TERMINAL = new Set(['completed', 'failed', 'cancelled'])

/** Training runs: the list, the queue, per-epoch logs and live step progress. */
export const useRunStore = defineStore('runs', () => {
  const api = useApi()
  const runs = ref<RunSummary[]>([])
  const running = ref<string | null>(null)
  const queued = ref<string[]>([])
  const loaded = ref(false)
  const loading = ref(false)
  /** Epoch logs of the runs whose curves were opened (filled by runs.get, then run.epoch). */
  const logs = ref<Record<string, EpochLog[]>>({})
  /** The latest step of each running run. */
  const steps = ref<Record<string, RunStep>>({})

  async function refresh(): Promise<void> {
    loading.value = true
    try {
      const r = await api.invoke('runs.list', {})
      runs.value = r.runs
      running.value = r.running
      queued.value = r.queued
      loaded.value = true
    } finally {
      loading.value = false
    }
  }

  function setState(runId: string, state: RunState): void {
    const run = runs.value.find((r) => r.id === runId)
    if (run) run.state = state
    else refresh().catch(() => {})
    if (TERMINAL.has(state.status)) {
      delete steps.value[runId]
      refresh().catch(() => {})
    }
  }

  /** Loads a run's epoch log (for its learning curve). */
  async function loadLog(runId: string): Promise<EpochLog[]> {
    const r = await api.invoke('runs.get', { runId })
    logs.value[runId] = r.log
    setState(runId, r.summary.state)
    return r.log
  }

  api.on('run.state', (p) => {
    setState(p.runId, p.state)
    if (p.error) notifyError(new ApiError('RUN_FAILED', p.error), `Run ${p.runId} failed`)
  })
  api.on('run.epoch', (p) => {
    setState(p.runId, p.state)
    const log = logs.value[p.runId]
    if (log && !log.some((e) => e.epoch === p.log.epoch)) log.push(p.log)
  })
  api.on('run.step', (p) => {
    steps.value[p.runId] = p
  })
  // Events may have been missed while the socket was down.
  api.onConnectionChange((state) => {
    if (state === 'open' && loaded.value) refresh().catch(() => {})
  })

  /** Creates and queues the runs of a form (folds × variants); returns their ids. */
  async function create(form: CommandRequest<'runs.create'>): Promise<string[]> {
    const { runIds } = await api.invoke('runs.create', form)
    await refresh()
    return runIds
  }

  /** Pause, continue, cancel or (re)start a run; false when the queue refused. */
  async function control(runId: string, action: RunAction): Promise<boolean> {
    const { accepted } = await api.invoke('runs.control', { runId, action })
    await refresh()
    return accepted
  }

  return { runs, running, queued, loaded, loading, logs, steps, refresh, loadLog, create, control }
})
