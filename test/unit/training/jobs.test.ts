/**
 * The job queue with real worker threads: a worker that dies mid-run (terminated from outside,
 * as a crash or the OS would) leaves a clear failed state naming the intact checkpoint, and
 * pause / continue / cancel reach a running worker through the shared control word.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { createDatasetService } from '../../../main/services/datasets'
import { JobQueue } from '../../../main/services/jobs'
import { readRunState } from '../../../main/workspace/runs'
import { createRuns } from '../../../main/services/training'
import type { WorkerMessage } from '../../../main/workers/protocol'
import { ROOT, tmpDir } from '../../helpers/shared'

const workspace = tmpDir('jobs-ws')

async function makeRun(name: string, epochs: number): Promise<string> {
  const [cfg] = await createRuns(workspace, {
    datasetId: 'hippocampus-sample',
    split: 'k10',
    folds: [0],
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
  return cfg.id
}

function waitFor(queue: JobQueue, pred: (m: WorkerMessage) => boolean): Promise<WorkerMessage> {
  return new Promise((resolve) => {
    const on = (_id: string, m: WorkerMessage) => {
      if (pred(m)) {
        queue.off('message', on)
        resolve(m)
      }
    }
    queue.on('message', on)
  })
}

describe('job queue and training workers', () => {
  beforeAll(async () => {
    const datasets = createDatasetService(workspace)
    await datasets.importDataset(join(ROOT, 'resources/sample/hippocampus'))
    await datasets.createSplit('hippocampus-sample', { folds: 10, seed: 0, name: 'k10' })
  })

  it('a worker that dies mid-run ends the run as failed, naming the intact checkpoint', { timeout: 600_000 }, async () => {
    const id = await makeRun('dies', 5)
    const queue = new JobQueue(workspace)
    const done = queue.enqueue(id)
    // Let epoch 1 be checkpointed, then kill the worker during epoch 2.
    await waitFor(queue, (m) => m.type === 'step' && m.epoch === 2)
    const worker = (queue as unknown as { active: { worker: { terminate(): Promise<number> } } }).active.worker
    await worker.terminate()
    const state = await done
    expect(state.status).toBe('failed')
    expect(state.epoch).toBe(1)
    expect(state.message).toMatch(/worker exited unexpectedly/)
    expect(state.message).toMatch(/epoch 1.*dsd resume dies-Basic-fold0/)
    expect(await readRunState(workspace, id)).toMatchObject({ status: 'failed', epoch: 1 })
    expect(existsSync(join(workspace, 'runs', id, 'checkpoints', 'last.ckpt'))).toBe(true)
  })

  it('a worker that runs out of memory ends the run as failed with the reason and the fix', { timeout: 600_000 }, async () => {
    const id = await makeRun('oom', 2)
    // A real V8 heap limit far below what loading the engine needs.
    const queue = new JobQueue(workspace, { workerHeapMb: 8 })
    const state = await queue.enqueue(id)
    expect(state.status).toBe('failed')
    expect(state.message).toMatch(/ran out of memory .*heap limit 8 MB.*smaller patch, batch or preset/)
    expect(state.message).toMatch(/dsd resume oom-Basic-fold0/)
    expect(await readRunState(workspace, id)).toMatchObject({ status: 'failed', epoch: 0 })
  })

  it('pauses, continues and cancels a running worker', { timeout: 600_000 }, async () => {
    const id = await makeRun('control', 50)
    const queue = new JobQueue(workspace)
    const done = queue.enqueue(id)
    await waitFor(queue, (m) => m.type === 'step')
    expect(queue.pause(id)).toBe(true)
    const paused = await waitFor(queue, (m) => m.type === 'state' && m.state.status === 'paused')
    expect(paused.type === 'state' && paused.state.message).toMatch(/paused in epoch/)
    expect((await readRunState(workspace, id)).status).toBe('paused')
    expect(queue.resume(id)).toBe(true)
    await waitFor(queue, (m) => m.type === 'state' && m.state.status === 'running')
    expect(queue.cancel(id)).toBe(true)
    const state = await done
    expect(state.status).toBe('cancelled')
    expect(state.epoch).toBeLessThan(50)
  })
})
