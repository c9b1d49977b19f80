import { defineStore } from 'pinia'
import { ref } from 'vue'
import type {
  AuditReport,
  CommandRequest,
  DatasetSummary,
  Finding,
  JobInfo,
} from '../../../main/contract'
import { ApiError, toApiError, useApi } from '../api'
import { jobError, useJobStore } from './jobs'

/** The state of one dataset's latest audit. */
export interface AuditState {
  jobId: string | null
  status: 'running' | 'completed' | 'failed'
  report: AuditReport | null
  error: ApiError | null
}

/** Reads an audit job's result defensively (job results cross as `unknown`). */
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

/** What an import job reports when it ends (job results cross as `unknown`). */
export interface ImportOutcome {
  datasetId: string
  imported: number
  skipped: number
  problems: Finding[]
  /** Cases whose files cannot be read (runs on the dataset are refused until they are fixed). */
  unreadable: { caseId: string; file: string; code: string; message: string }[]
}

/** Reads an import job's result defensively; null when it has an unexpected shape. */
export function asImportOutcome(result: unknown): ImportOutcome | null {
  if (!result || typeof result !== 'object') return null
  const r = result as Partial<ImportOutcome>
  if (typeof r.datasetId !== 'string') return null
  return {
    datasetId: r.datasetId,
    imported: typeof r.imported === 'number' ? r.imported : 0,
    skipped: typeof r.skipped === 'number' ? r.skipped : 0,
    problems: Array.isArray(r.problems) ? r.problems : [],
    unreadable: Array.isArray(r.unreadable) ? r.unreadable : [],
  }
}

/** Datasets in the workspace, imports and audits. */
export const useDatasetStore = defineStore('datasets', () => {
  const api = useApi()
  const jobs = useJobStore()
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
   * Starts an import and returns its job id at once; `done` settles when the job ends (the list
   * is refreshed first). Rejects `done` with the job's error.
   */
  async function importDataset(
    request: CommandRequest<'datasets.import'>,
  ): Promise<{ jobId: string; done: Promise<JobInfo> }> {
    const { job } = await api.invoke('datasets.import', request)
    const done = jobs.wait(job).then(async (end) => {
      await refresh().catch(() => {})
      if (end.status !== 'completed') throw jobError(end)
      return end
    })
    return { jobId: job.jobId, done }
  }

  /** Runs an audit; the report lands in `audits[datasetId]`. */
  async function audit(datasetId: string): Promise<AuditState> {
    audits.value[datasetId] = { jobId: null, status: 'running', report: null, error: null }
    try {
      const { job } = await api.invoke('datasets.audit', { datasetId })
      audits.value[datasetId].jobId = job.jobId
      const end = await jobs.wait(job)
      if (end.status !== 'completed') throw jobError(end)
      const report = asAuditReport(end.result)
      if (!report) {
        throw new ApiError('BAD_RESULT', `The audit of ${datasetId} finished without a report.`)
      }
      audits.value[datasetId] = { jobId: job.jobId, status: 'completed', report, error: null }
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

  /** Deletes a dataset (its workspace folder moves to the trash); returns where it went. */
  async function remove(datasetId: string): Promise<string> {
    const { trashedTo } = await api.invoke('datasets.delete', { datasetId })
    delete audits.value[datasetId]
    await refresh().catch(() => {})
    return trashedTo
  }

  return { datasets, loaded, loading, audits, refresh, importDataset, audit, remove }
})
