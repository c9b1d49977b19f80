/**
 * The job list on disk, `<workspace>/jobs.json`: what ran, what failed and what is still queued,
 * so a restarted app lists them and runs the queued ones (main/jobs/system.ts). Written
 * atomically on every change of a job's state (not on progress).
 */
import { existsSync } from 'node:fs'
import { rename } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { JobInfo } from '../contract/jobs'
import { DsdError } from '../errors'
import { atomicWriteJson, readJsonFile } from './atomic'

/** A job as the store keeps it (its result stays in memory). */
export interface StoredJob {
  info: Omit<JobInfo, 'result'>
  params: unknown
}

/** Where the job system keeps its list between restarts. */
export interface JobStore {
  load(): Promise<StoredJob[]>
  save(jobs: StoredJob[]): Promise<void>
}

const JOBS_VERSION = 1

const JobsFile = z.object({
  version: z.literal(JOBS_VERSION),
  jobs: z.array(z.object({ info: JobInfo.omit({ result: true }), params: z.unknown() })),
})

export const jobsFile = (workspace: string) => join(workspace, 'jobs.json')

/**
 * The store of a workspace. A damaged jobs.json is not used: `load` moves it aside to
 * `jobs.json.damaged-<time>` (kept for inspection) and throws JOBS_FILE_DAMAGED naming both files.
 */
export function workspaceJobStore(workspace: string): JobStore {
  const file = jobsFile(workspace)
  return {
    async load(): Promise<StoredJob[]> {
      if (!existsSync(file)) return []
      let problem: string
      try {
        const parsed = JobsFile.safeParse(await readJsonFile(file, 'JOBS_FILE_MISSING'))
        if (parsed.success) return parsed.data.jobs as StoredJob[]
        problem = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')
      } catch (err) {
        problem = (err as Error).message
      }
      const aside = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`
      await rename(file, aside)
      throw new DsdError('JOBS_FILE_DAMAGED', `${file}: the job list is damaged (${problem}); it was moved to ${aside} and the app starts with an empty job list (runs and datasets are not affected).`, { file, aside })
    },
    async save(jobs: StoredJob[]): Promise<void> {
      await atomicWriteJson(file, { version: JOBS_VERSION, jobs })
    },
  }
}
