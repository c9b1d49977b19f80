import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { AuditReport, CommandRequest, DatasetSummary, Finding } from '../../../main/contract'
import { ApiError, toApiError, useApi } from '../api'
import { useTaskStore, type TaskFinished } from './tasks'

/** The state of one dataset's latest audit. */
export interface AuditState {
  taskId: string | null
  status: 'running' | 'done' | 'failed'
  report: AuditReport | null
  error: ApiError | null
}

/** Reads an audit task's result defensively (task results cross as `unknown`). */
export function asAuditReport(result: unknown): AuditReport | null {
  if (!result || typeof result !== 'object') return null
  const r = result as Partial<AuditReport>
  if (typeof r.datasetId !== 'string' || !Array.isArray(r.findings)) return null
  return {
    datasetId: r.datasetId,
    cases: typeof r.cases === 'number' ? r.cases : 0,
    findings: r.findings,
    summary: Array.isArray(r.summary) ? r.summary : [],
  }
}

/** What an import task reports when it ends (task results cross as `unknown`). */
export interface ImportOutcome {
  datasetId: string
  imported: number
  skipped: number
  problems: Finding[]
}

/** Reads an import task's result defensively; null when it has an unexpected shape. */
export function asImportOutcome(result: unknown): ImportOutcome | null {
  if (!result || typeof result !== 'object') return null
  const r = result as Partial<ImportOutcome>
  if (typeof r.datasetId !== 'string') return null
  return {
    datasetId: r.datasetId,
    imported: typeof r.imported === 'number' ? r.imported : 0,
    skipped: typeof r.skipped === 'number' ? r.skipped : 0,
    problems: Array.isArray(r.problems) ? r.problems : [],
  }
}

function finishedError(f: TaskFinished, what: string): ApiError {
  if (f.error) return new ApiError(f.error.code, f.error.message, f.error.details)
  return new ApiError(
    f.cancelled ? 'CANCELLED' : 'TASK_FAILED',
    `${what} ${f.cancelled ? 'was cancelled' : 'failed'}.`,
  )
}

/** Datasets in the workspace, imports and audits. */
export const useDatasetStore = defineStore('datasets', () => {
  const api = useApi()
  const tasks = useTaskStore()
  const datasets = ref<DatasetSummary[]>([])
  const loaded = ref(false)
  const loading = ref(false)
  const audits = ref<Record<string, AuditState>>({})
  // Events may have been missed while the socket was down: re-read the list on reconnect.
  api.onConnectionChange((state) => {
    if (state === 'open' && loaded.value) refresh().catch(() => {})
  })

  async function refresh(): Promise<void> {
    loading.value = true
    try {
      datasets.value = (await api.invoke('datasets.list', {})).datasets
      loaded.value = true
    } finally {
      loading.value = false
    }
  }

  /**
   * Starts an import and returns its task id at once; `done` settles when the task ends
   * (the list is refreshed first). Rejects `done` with the task's error.
   */
  async function importDataset(
    request: CommandRequest<'datasets.import'>,
  ): Promise<{ taskId: string; done: Promise<TaskFinished> }> {
    const { taskId } = await api.invoke('datasets.import', request)
    const folder =
      request.path
        .replace(/[\\/]+$/, '')
        .split(/[\\/]/)
        .pop() || request.path
    const done = tasks.track(taskId, 'datasets.import', `Import ${folder}`).then(async (f) => {
      await refresh().catch(() => {})
      if (!f.ok) throw finishedError(f, `Import of ${request.path}`)
      return f
    })
    return { taskId, done }
  }

  /** Runs an audit; the report lands in `audits[datasetId]`. */
  async function audit(datasetId: string): Promise<AuditState> {
    const state: AuditState = { taskId: null, status: 'running', report: null, error: null }
    audits.value[datasetId] = state
    try {
      const { taskId } = await api.invoke('datasets.audit', { datasetId })
      audits.value[datasetId].taskId = taskId
      const f = await tasks.track(taskId, 'datasets.audit', `Audit ${datasetId}`)
      if (!f.ok) throw finishedError(f, `The audit of ${datasetId}`)
      const report = asAuditReport(f.result)
      if (!report) {
        throw new ApiError('BAD_RESULT', `The audit of ${datasetId} finished without a report.`)
      }
      audits.value[datasetId] = { taskId, status: 'done', report, error: null }
    } catch (err) {
      audits.value[datasetId] = {
        ...audits.value[datasetId],
        status: 'failed',
        error: toApiError(err),
      }
      throw audits.value[datasetId].error
    }
    return audits.value[datasetId]
  }

  return { datasets, loaded, loading, audits, refresh, importDataset, audit }
})
