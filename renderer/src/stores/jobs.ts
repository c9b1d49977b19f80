import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { JobAction, JobInfo, JobKindName, JobStatus } from '../../../main/contract'
import { ApiError, useApi } from '../api'
import { notifyError } from '../notify'

/** One job as the UI shows it: the main side's JobInfo plus what this window is doing with it. */
export interface JobView extends JobInfo {
  /** A cancel was asked and the job has not ended yet. */
  cancelling: boolean
}

const ENDED: readonly JobStatus[] = ['completed', 'failed', 'cancelled']
export const isEnded = (status: JobStatus) => ENDED.includes(status)

/** Finished jobs kept in the list besides the active ones. */
const KEEP_ENDED = 6

/** The error of a job that did not complete, as an ApiError (for notifications). */
export function jobError(job: JobInfo): ApiError {
  if (job.error) return ApiError.fromShape(job.error)
  return new ApiError(job.status === 'cancelled' ? 'CANCELLED' : 'JOB_FAILED', `${job.label}: ${job.status}.`)
}

/**
 * Every job of the main side (imports, audits, training runs), kept current by `job.state` and
 * `job.progress`, re-read from `jobs.list` whenever the connection (re)opens; plus promises for
 * callers that wait for a job to end. The one store for background work.
 */
export const useJobStore = defineStore('jobs', () => {
  const api = useApi()
  const jobs = ref<JobView[]>([])
  const dismissed = new Set<string>()
  const waiters = new Map<string, Array<(job: JobInfo) => void>>()
  /** The final info of the jobs that ended (kept after they leave the list), newest last. */
  const finals = new Map<string, JobInfo>()

  function find(jobId: string): JobView | undefined {
    return jobs.value.find((j) => j.jobId === jobId)
  }

  function upsert(info: JobInfo): void {
    if (dismissed.has(info.jobId)) return
    // An ended job never runs again: a stale copy (the reply that started it, when its
    // `job.state` events arrived first) must not bring it back, or its waiters would never hear.
    if (!isEnded(info.status) && finals.has(info.jobId)) return
    const known = find(info.jobId)
    if (known) {
      Object.assign(known, info)
      if (isEnded(info.status)) known.cancelling = false
    } else {
      jobs.value.unshift({ ...info, cancelling: false })
    }
    if (isEnded(info.status)) {
      finals.set(info.jobId, { ...info })
      if (finals.size > 500) finals.delete(finals.keys().next().value!)
      for (const resolve of waiters.get(info.jobId) ?? []) resolve(info)
      waiters.delete(info.jobId)
      prune()
    }
  }

  function prune(): void {
    const done = jobs.value.filter((j) => isEnded(j.status))
    const drop = new Set(done.slice(KEEP_ENDED).map((j) => j.jobId))
    if (drop.size) jobs.value = jobs.value.filter((j) => !drop.has(j.jobId))
  }

  api.on('job.state', (info) => upsert(info))
  api.on('job.progress', (p) => {
    const job = find(p.jobId)
    if (!job || isEnded(job.status)) return
    job.done = p.done
    job.total = p.total
    job.message = p.message
  })

  /** Catch up with the main side (events sent while the socket was down are lost). */
  async function sync(): Promise<void> {
    const { jobs: remote } = await api.invoke('jobs.list', {})
    for (const info of [...remote].sort((a, b) => a.createdAt.localeCompare(b.createdAt))) {
      const known = find(info.jobId)
      if (known || !isEnded(info.status) || jobs.value.length < KEEP_ENDED) upsert(info)
    }
  }
  api.onConnectionChange((state) => {
    if (state === 'open') sync().catch(() => {})
  })

  /** Resolves with a job's final info once it has ended (never rejects). */
  function wait(info: JobInfo): Promise<JobInfo> {
    upsert(info)
    const final = finals.get(info.jobId)
    if (final) return Promise.resolve({ ...final })
    return new Promise((resolve) => {
      const list = waiters.get(info.jobId) ?? []
      list.push(resolve)
      waiters.set(info.jobId, list)
    })
  }

  /** Pause, continue or cancel a job; false when the main side did not accept it. */
  async function control(jobId: string, action: JobAction): Promise<boolean> {
    const job = find(jobId)
    if (action === 'cancel' && job) job.cancelling = true
    try {
      const { accepted } = await api.invoke('jobs.control', { jobId, action })
      if (!accepted && job) job.cancelling = false
      return accepted
    } catch (err) {
      if (job) job.cancelling = false
      notifyError(err, `Could not ${action} the job`)
      return false
    }
  }

  /** Removes an ended job from the list (it stays in the main side's history). */
  function dismiss(jobId: string): void {
    const job = find(jobId)
    if (!job || !isEnded(job.status)) return
    dismissed.add(jobId)
    jobs.value = jobs.value.filter((j) => j.jobId !== jobId)
  }

  /** The newest job of a kind on a subject (e.g. a run's training job). */
  function latest(kind: JobKindName, subject: string): JobView | undefined {
    return jobs.value.find((j) => j.kind === kind && j.subject === subject)
  }

  const active = computed(() => jobs.value.filter((j) => !isEnded(j.status)))
  const running = computed(() => jobs.value.filter((j) => j.status === 'running' || j.status === 'paused'))

  return { jobs, active, running, sync, wait, control, dismiss, latest }
})
