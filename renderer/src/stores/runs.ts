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
import { useJobStore } from './jobs'

export type RunStep = EventPayload<'run.step'>

const TERMINAL = new Set(['completed', 'failed', 'cancelled'])

/**
 * Training runs as the workspace holds them: the list with each run's state, the epoch logs of
 * the runs whose curves were opened, and the latest step of running ones. Running a run is a
 * job: the job store (stores/jobs.ts) holds the queue and pauses, continues and cancels.
 */
export const useRunStore = defineStore('runs', () => {
  const api = useApi()
  const jobs = useJobStore()
  const runs = ref<RunSummary[]>([])
  const loaded = ref(false)
  const loading = ref(false)
  /** Epoch logs of the runs whose curves were opened (filled by runs.get, then run.epoch). */
  const logs = ref<Record<string, EpochLog[]>>({})
  /** The latest step of each running run. */
  const steps = ref<Record<string, RunStep>>({})

  async function refresh(): Promise<void> {
    loading.value = true
    try {
      runs.value = (await api.invoke('runs.list', {})).runs
      loaded.value = true
    } finally {
      loading.value = false
    }
  }

  function setState(runId: string, state: RunState): void {
    const run = runs.value.find((r) => r.id === runId)
    if (run) run.state = state
    else refresh().catch(() => {})
    if (TERMINAL.has(state.status)) delete steps.value[runId]
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

  /** Creates the runs of a form (folds × variants) and queues them; returns their ids. */
  async function create(form: CommandRequest<'runs.create'>): Promise<string[]> {
    const r = await api.invoke('runs.create', form)
    for (const job of r.jobs) void jobs.wait(job)
    await refresh()
    return r.runIds
  }

  /** Queues a stopped run again; it continues from its last checkpoint. */
  async function resume(runId: string): Promise<void> {
    const { job } = await api.invoke('runs.resume', { runId })
    void jobs.wait(job)
    await refresh()
  }

  /**
   * Predict a run's validation cases (its `last` checkpoint) and evaluate them: a `predict` job,
   * then an `evaluate` job the main side queues once it completes. Returns the set's key.
   */
  async function predict(runId: string): Promise<string> {
    const { job, key } = await api.invoke('predictions.predict', { runIds: [runId], evaluate: true })
    void jobs.wait(job)
    return key
  }

  /**
   * Predict with an ensemble of runs (the mean of their softmax; `predictions.predict` with
   * several runs) and evaluate the set. Returns the set's key (`ensemble:<name>`).
   */
  async function predictEnsemble(req: CommandRequest<'predictions.predict'>): Promise<string> {
    const { job, key } = await api.invoke('predictions.predict', req)
    void jobs.wait(job)
    return key
  }

  /**
   * Cancels a run: its training job, or a run left "queued" with no job to run it (the main
   * side marks it cancelled). Returns the run's state.
   */
  async function cancel(runId: string): Promise<RunState> {
    const { state } = await api.invoke('runs.cancel', { runId })
    setState(runId, state)
    return state
  }

  /** Deletes a run (its folder moves to the workspace's trash); returns where it went. */
  async function remove(runId: string): Promise<string> {
    const { trashedTo } = await api.invoke('runs.delete', { runId })
    runs.value = runs.value.filter((r) => r.id !== runId)
    delete logs.value[runId]
    delete steps.value[runId]
    return trashedTo
  }

  /** The job that trains a run (a `train` job, or the quick start's), if this window knows it. */
  function jobOf(runId: string) {
    return jobs.latest('train', runId) ?? jobs.latest('quickstart', runId)
  }

  return { runs, loaded, loading, logs, steps, refresh, loadLog, create, resume, predict, predictEnsemble, cancel, remove, jobOf }
})
