/**
 * Jobs in the contract: every long operation (import, audit, training, and next prediction,
 * evaluation and export) is a job with one shape, one set of states and one set of events. The
 * job system is main/jobs/system.ts; the kinds of this app are main/services/jobs.ts.
 */
import { z } from 'zod'
import { ErrorShape } from './errors'
import { RunStatus } from './runs'

/** The kinds of job. Adding one: a name here and a JobKind in main/services/jobs.ts. */
export const JobKindName = z.enum(['datasets.import', 'datasets.audit', 'train', 'predict', 'evaluate', 'export', 'quickstart'])
export type JobKindName = z.infer<typeof JobKindName>

/** A job's state: the same words as a run's (a job that ended well is `completed`). */
export const JobStatus = RunStatus
export type JobStatus = z.infer<typeof JobStatus>

/** Statuses of a job that has ended. */
export const JOB_ENDED: readonly JobStatus[] = ['completed', 'failed', 'cancelled']

/** The compute backend a job runs on, and why that one (from the worker's start). */
export const JobBackend = z.object({ name: z.string(), reason: z.string(), device: z.string().optional() })
export type JobBackend = z.infer<typeof JobBackend>

export const JobInfo = z.object({
  jobId: z.string(),
  kind: JobKindName,
  /** What the user started, e.g. "Import Task04_Hippocampus" or "Train hippo-…-DSD-fold0". */
  label: z.string(),
  /** What the job works on (a dataset id, a run id), so a run's job can be found; null if none. */
  subject: z.string().nullable(),
  status: JobStatus,
  /** Whether pause / continue apply (training does; imports and audits do not). */
  pausable: z.boolean(),
  /** Progress: units done of total (cases, steps); total 0 while unknown. */
  done: z.number(),
  total: z.number(),
  /** The latest progress line, or why the job ended. */
  message: z.string(),
  backend: JobBackend.optional(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  /** The job's result once completed (kind-specific: an import summary, an audit report, a run state). */
  result: z.unknown().optional(),
  error: ErrorShape.optional(),
})
export type JobInfo = z.infer<typeof JobInfo>

export const JobRef = z.object({ jobId: z.string() })
export type JobRef = z.infer<typeof JobRef>

/** `job.progress`: at most about 10 a second per job; the end comes as `job.state`. */
export const JobProgress = z.object({
  jobId: z.string(),
  kind: JobKindName,
  done: z.number(),
  total: z.number(),
  message: z.string(),
})
export type JobProgress = z.infer<typeof JobProgress>

/** What `jobs.control` can ask: pause and continue (pausable jobs), cancel (any job not ended). */
export const JobAction = z.enum(['pause', 'continue', 'cancel'])
export type JobAction = z.infer<typeof JobAction>
