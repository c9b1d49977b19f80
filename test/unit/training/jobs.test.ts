/**
 * Training jobs with real worker threads: a worker that dies mid-run (terminated from outside,
 * as a crash or the OS would) leaves a clear failed state naming the intact checkpoint; one over
 * a real V8 heap cap fails with the reason and the fix; pause / continue / cancel reach a running
 * worker through the shared control word; and queued training runs survive a restart of the app
 * (the job list is in the workspace): the one that was running continues from its checkpoint.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import type { EventPayload, JobInfo } from '../../../main/contract'
import { createApp } from '../../../main/services/app'
import { createDatasetService } from '../../../main/services/datasets'
import { createJobSystem } from '../../../main/services/jobs'
import { createRuns } from '../../../main/services/training'
import type { TrainMessage } from '../../../main/training/loop'
import { readRunState } from '../../../main/workspace/runs'
import { ROOT, tmpDir } from '../../helpers/shared'

const workspace = tmpDir('jobs-ws')

/** A tiny Basic run (16³ patches, 4-8 filters, 2 steps per epoch) on the JS CPU backend. */
async function makeRun(name: string, epochs: number, folds = [0]): Promise<string[]> {
  const configs = await createRuns(workspace, {
    datasetId: 'hippocampus-sample',
    split: 'k10',
    folds,
    variants: ['Basic'],
    name,
    patch: [16, 16, 16],
    filters: [4, 4, 8, 8, 8],
    epochs,
    stepsPerEpoch: 2,
    stepSize: 1,
    backend: 'cpu',
    validateEvery: 0,
  })
  return configs.map((c) => c.id)
}

/** The job system of the app with a listener on every run message. */
function system(options: { workerHeapMb?: number } = {}) {
  const listeners = new Set<(runId: string, m: TrainMessage) => void>()
  const jobs = createJobSystem(workspace, { ...options, onRunMessage: (id, m) => listeners.forEach((l) => l(id, m)) })
  const waitFor = (pred: (m: TrainMessage) => boolean) =>
    new Promise<TrainMessage>((resolve) => {
      const on = (_id: string, m: TrainMessage) => {
        if (pred(m)) {
          listeners.delete(on)
          resolve(m)
        }
      }
      listeners.add(on)
    })
  return { jobs, waitFor }
}

describe('training jobs in worker threads', () => {
  beforeAll(async () => {
    const datasets = createDatasetService(workspace)
    await datasets.importDataset(join(ROOT, 'resources/sample/hippocampus'))
    await datasets.createSplit('hippocampus-sample', { folds: 10, seed: 0, name: 'k10' })
  })

  it('a worker that dies mid-run ends the run as failed, naming the intact checkpoint', { timeout: 600_000 }, async () => {
    const [id] = await makeRun('dies', 5)
    const { jobs, waitFor } = system()
    const job = jobs.start('train', { runId: id })
    // Let epoch 1 be checkpointed, then kill the worker during epoch 2.
    await waitFor((m) => m.type === 'step' && m.epoch === 2)
    expect(await jobs.terminate(job.jobId)).toBe(true)
    const end = await jobs.wait(job.jobId)
    expect(end.status).toBe('failed')
    expect(end.error?.code).toBe('WORKER_DIED')
    const state = await readRunState(workspace, id)
    expect(state).toMatchObject({ status: 'failed', epoch: 1 })
    expect(state.message).toMatch(/worker exited unexpectedly/)
    expect(state.message).toMatch(/epoch 1.*dsd resume dies-Basic-fold0/)
    expect(end.message).toBe(state.message)
    expect(existsSync(join(workspace, 'runs', id, 'checkpoints', 'last.ckpt'))).toBe(true)
  })

  it('a worker that runs out of memory ends the run as failed with the reason and the fix', { timeout: 600_000 }, async () => {
    const [id] = await makeRun('oom', 2)
    // A real V8 heap limit far below what loading the engine needs.
    const { jobs } = system({ workerHeapMb: 8 })
    const end = await jobs.wait(jobs.start('train', { runId: id }).jobId)
    expect(end).toMatchObject({ status: 'failed', error: { code: 'OUT_OF_MEMORY' } })
    const state = await readRunState(workspace, id)
    expect(state.message).toMatch(/ran out of memory .*heap limit 8 MB.*smaller patch, batch or preset/)
    expect(state.message).toMatch(/dsd resume oom-Basic-fold0/)
    expect(state).toMatchObject({ status: 'failed', epoch: 0 })
  })

  it('pauses, continues and cancels a running worker; its backend and progress reach the job', { timeout: 600_000 }, async () => {
    const [id] = await makeRun('control', 50)
    const { jobs, waitFor } = system()
    const states: JobInfo[] = []
    jobs.on('state', (s) => states.push(s))
    const job = jobs.start('train', { runId: id })
    await waitFor((m) => m.type === 'step')
    const running = jobs.get(job.jobId)!
    expect(running.backend).toMatchObject({ name: 'cpu' })
    expect(running.backend!.reason.length).toBeGreaterThan(3)
    expect(running.total).toBe(100)
    expect(running.message).toMatch(/^epoch \d+ \/ 50 · step \d \/ 2$/)
    expect(jobs.control(job.jobId, 'pause')).toBe(true)
    const paused = await waitFor((m) => m.type === 'state' && m.state.status === 'paused')
    expect(paused.type === 'state' && paused.state.message).toMatch(/paused in epoch/)
    expect((await readRunState(workspace, id)).status).toBe('paused')
    expect(jobs.get(job.jobId)!.status).toBe('paused')
    expect(jobs.control(job.jobId, 'continue')).toBe(true)
    await waitFor((m) => m.type === 'state' && m.state.status === 'running')
    expect(jobs.control(job.jobId, 'cancel')).toBe(true)
    const end = await jobs.wait(job.jobId)
    expect(end.status).toBe('cancelled')
    const state = await readRunState(workspace, id)
    expect(state.status).toBe('cancelled')
    expect(state.epoch).toBeLessThan(50)
    expect(states.map((s) => s.status)).toEqual(['queued', 'running', 'running', 'paused', 'running', 'cancelled'])
    expect(jobs.control(job.jobId, 'pause')).toBe(false)
  })

  it('queued and running training survives a restart of the app and continues from its checkpoint', { timeout: 900_000 }, async () => {
    const ids = await makeRun('restart', 50, [1, 2])
    const first = createApp({ workspace, transport: 'in-process', validateResponses: true })
    const epochs: EventPayload<'run.epoch'>[] = []
    first.bridge.api().on('run.epoch', (e) => epochs.push(e))
    const checkpointed = new Promise<void>((resolve) => first.bridge.api().on('run.epoch', () => resolve()))
    const { jobs } = await first.bridge.api().invoke('runs.create', {
      datasetId: 'hippocampus-sample', split: 'k10', folds: [3], variants: ['Basic'], name: 'later',
      patch: [16, 16, 16], filters: [4, 4, 8, 8, 8], epochs: 50, stepsPerEpoch: 2, backend: 'cpu', validateEvery: 0,
    })
    // The two runs made above, queued behind it through the contract.
    const resumed = [
      (await first.bridge.api().invoke('runs.resume', { runId: ids[0] })).job,
      (await first.bridge.api().invoke('runs.resume', { runId: ids[1] })).job,
    ]
    await expect(first.bridge.api().invoke('runs.resume', { runId: ids[0] })).rejects.toMatchObject({ code: 'RUN_BUSY' })
    await checkpointed
    await first.close()
    const running = jobs[0].subject!
    expect(epochs[0].runId).toBe(running)
    const stored = JSON.parse(readFileSync(join(workspace, 'jobs.json'), 'utf8')).jobs as { info: JobInfo }[]
    const byId = new Map(stored.map((j) => [j.info.jobId, j.info]))
    for (const j of [jobs[0], ...resumed]) expect(byId.get(j.jobId)?.status, j.label).toBe('queued')
    expect(byId.get(jobs[0].jobId)?.message).toMatch(/stopped when the app closed/)
    const stopped = await readRunState(workspace, running)
    expect(stopped.epoch).toBeGreaterThanOrEqual(1)

    // A new app on the workspace lists the three jobs and runs them again, in order.
    const second = createApp({ workspace, transport: 'in-process', validateResponses: true })
    const api = second.bridge.api()
    const again = new Promise<EventPayload<'run.state'>>((resolve) =>
      api.on('run.state', (s) => {
        if (s.runId === running && s.state.status === 'running') resolve(s)
      }),
    )
    await second.ready
    const listed = (await api.invoke('jobs.list', {})).jobs.filter((j) => j.kind === 'train' && j.status !== 'cancelled' && j.status !== 'failed' && j.status !== 'completed')
    expect(listed.map((j) => j.subject)).toEqual([running, ids[0], ids[1]])
    const state = await again
    expect(state.state.message).toBe(`resumed from epoch ${stopped.epoch}`)
    for (const j of [...listed].reverse()) await api.invoke('jobs.control', { jobId: j.jobId, action: 'cancel' })
    await second.jobs.idle()
    expect((await readRunState(workspace, ids[1])).message).toBe('cancelled before it started')
    await second.close()
  })
})
