/**
 * Runs as the app manages them (beside training.ts, which creates them): cancel a run — its
 * training job, or a run left "queued" with no job to run it — and delete a run (its folder
 * moves to the workspace's trash). Used by the `runs.cancel` and `runs.delete` handlers.
 */
import { JOB_ENDED, type JobInfo } from '../contract/jobs'
import type { RunState } from '../contract/runs'
import { DsdError } from '../errors'
import type { JobSystem } from '../jobs/system'
import { readRunConfig, readRunState, trashRun, writeRunState } from '../workspace/runs'

/**
 * A run whose state says running with no job of this app is trained by another process (`dsd
 * train`) while its state is younger than this; older, the process is taken to be gone.
 */
export const RUN_STALE_MS = 10 * 60 * 1000

const active = (j: JobInfo) => !JOB_ENDED.includes(j.status)

/** This app's jobs on a run that have not ended (training, and any other kind on it). */
function liveJobs(jobs: JobSystem, runId: string): JobInfo[] {
  return jobs.list().filter((j) => j.subject === runId && active(j))
}

/** Refuse when a process other than this app seems to be training the run. */
function refuseIfTrainedElsewhere(runId: string, state: RunState, action: string): void {
  if (state.status !== 'running' && state.status !== 'paused') return
  const age = Date.now() - Date.parse(state.updatedAt)
  if (!(age < RUN_STALE_MS)) return
  const minutes = Math.ceil((RUN_STALE_MS - age) / 60000)
  throw new DsdError(
    'RUN_BUSY_ELSEWHERE',
    `Run ${runId} is ${state.status} in another process (its state was updated ${Math.round(age / 1000)} s ago, and no job of this app runs it); stop that process (\`dsd train\`) first. If none is running, ${action} it in ${minutes} min.`,
    { runId, updatedAt: state.updatedAt },
    `Run ${runId} is ${state.status} in another process (its state was updated ${Math.round(age / 1000)} s ago, and this app has no job for it); stop that process first. If none is running, ${action} it in ${minutes} min.`,
  )
}

/**
 * Cancel a run: its queued, running or paused training job (a running one stops at its next
 * step), or — a run left "queued" (or "running") with no job, because the app or `dsd train`
 * stopped before it ran — mark it cancelled. Returns the run's state (after the cancel for a
 * queued job or a run without one; a running job reports its end with `run.state`).
 */
export async function cancelRun(workspace: string, jobs: JobSystem, runId: string): Promise<{ state: RunState; changed: boolean }> {
  await readRunConfig(workspace, runId) // RUN_NOT_FOUND
  const state = await readRunState(workspace, runId)
  const train = liveJobs(jobs, runId).find((j) => j.kind === 'train')
  if (train) {
    jobs.control(train.jobId, 'cancel')
    if (train.status === 'queued') await jobs.wait(train.jobId)
    return { state: await readRunState(workspace, runId), changed: true }
  }
  if (JOB_ENDED.includes(state.status)) {
    throw new DsdError('RUN_ENDED', `Run ${runId} has already ended (${state.status}); there is nothing to cancel.`, { runId, status: state.status })
  }
  refuseIfTrainedElsewhere(runId, state, 'cancel')
  const next: RunState = {
    ...state,
    status: 'cancelled',
    message: `cancelled: no job was running it (it was ${state.status} when the app or \`dsd train\` stopped)`,
    updatedAt: new Date().toISOString(),
  }
  await writeRunState(workspace, runId, next)
  return { state: next, changed: true }
}

/**
 * Delete a run: its folder (config, checkpoints, logs, predictions, metrics) moves to
 * `trash/runs/`. A queued training job is cancelled first; a running or paused one refuses
 * (RUN_BUSY: cancel it first), and so does a run trained by another process.
 */
export async function deleteRun(workspace: string, jobs: JobSystem, runId: string): Promise<{ trashedTo: string }> {
  for (const j of liveJobs(jobs, runId)) {
    if (j.kind === 'train' && j.status === 'queued') {
      jobs.control(j.jobId, 'cancel')
      await jobs.wait(j.jobId)
      continue
    }
    throw new DsdError(
      'RUN_BUSY',
      `Run ${runId} has a ${j.status} job (${j.label}); cancel it and wait for it to stop, then delete the run.`,
      { runId, jobId: j.jobId, status: j.status },
    )
  }
  const state = await readRunState(workspace, runId).catch(() => null) // a damaged run can still be deleted
  if (state) refuseIfTrainedElsewhere(runId, state, 'delete')
  return { trashedTo: await trashRun(workspace, runId) }
}
