import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createApp } from '../../../main/services/app'
import { ROOT, tmpDir } from '../../helpers/shared'

describe('tasks over the contract', () => {
  it('imports the bundled sample as a task with progress events, then lists it and its result', async () => {
    const app = createApp({ workspace: tmpDir('tasks'), transport: 'in-process', validateResponses: true })
    const api = app.bridge.api()
    const progress: number[] = []
    api.on('task.progress', (p) => progress.push(p.done))
    const finished = new Promise<{ ok: boolean; result?: unknown }>((resolve) => api.on('task.finished', resolve))
    const { taskId } = await api.invoke('datasets.import', { path: join(ROOT, 'resources/sample/hippocampus') })
    const end = await finished
    expect(end.ok).toBe(true)
    expect(end.result).toMatchObject({ datasetId: 'hippocampus-sample', imported: 40, skipped: 0 })
    expect(progress.length).toBeGreaterThan(0)
    expect(progress.at(-1)).toBe(40)
    const { tasks } = await api.invoke('tasks.list', {})
    expect(tasks).toEqual([expect.objectContaining({ taskId, kind: 'datasets.import', status: 'done', done: 40, total: 40 })])
    const { datasets } = await api.invoke('datasets.list', {})
    expect(datasets.map((d) => d.id)).toEqual(['hippocampus-sample'])
    const split = await api.invoke('splits.create', { datasetId: 'hippocampus-sample', folds: 5, seed: 0 })
    expect(split.folds).toBe(5)
    expect((await api.invoke('splits.list', { datasetId: 'hippocampus-sample' })).splits).toHaveLength(1)
    expect(await api.invoke('tasks.cancel', { taskId })).toEqual({ cancelled: false })
    await app.close()
  })

  it('reports a failed import with the error shape, naming the folder', async () => {
    const app = createApp({ workspace: tmpDir('tasks-bad'), transport: 'in-process', validateResponses: true })
    const api = app.bridge.api()
    const finished = new Promise<{ ok: boolean; error?: { code: string; message: string } }>((resolve) => api.on('task.finished', resolve))
    await api.invoke('datasets.import', { path: join(ROOT, 'no-such-folder') })
    const end = await finished
    expect(end.ok).toBe(false)
    expect(end.error?.message).toContain('no-such-folder')
    const [task] = (await api.invoke('tasks.list', {})).tasks
    expect(task.status).toBe('failed')
  })
})
