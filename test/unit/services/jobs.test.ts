/**
 * Jobs over the contract, with the real dataset service: an import runs as a job with
 * rate-limited progress events and ends `completed` with its result; a failed import names the
 * folder; the job list is kept in the workspace, so a new app on it lists what ran; a damaged
 * job list is moved aside and reported, never used.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { JobInfo } from '../../../main/contract'
import { createApp } from '../../../main/services/app'
import { ROOT, tmpDir } from '../../helpers/shared'

/** Resolves when the job `current.id` (known once the command has answered) ends. */
function ended(api: ReturnType<ReturnType<typeof createApp>['bridge']['api']>, current: { id?: string }): Promise<JobInfo> {
  return new Promise((resolve) =>
    api.on('job.state', (info) => {
      if (info.jobId === current.id && ['completed', 'failed', 'cancelled'].includes(info.status)) resolve(info)
    }),
  )
}

describe('jobs over the contract', () => {
  it('imports the bundled sample as a job with progress events, lists it and keeps it across a restart', async () => {
    const workspace = tmpDir('jobs-app')
    const app = createApp({ workspace, transport: 'in-process', validateResponses: true })
    const api = app.bridge.api()
    const progress: number[] = []
    const states: string[] = []
    const current: { id?: string } = {}
    api.on('job.progress', (p) => progress.push(p.done))
    api.on('job.state', (s) => states.push(s.status))
    const end = ended(api, current)
    const { job } = await api.invoke('datasets.import', { path: join(ROOT, 'resources/sample/hippocampus') })
    const id = (current.id = job.jobId)
    expect(job).toMatchObject({ kind: 'datasets.import', label: 'Import hippocampus', status: 'queued', pausable: false })
    const info = await end
    expect(info).toMatchObject({ status: 'completed', done: 40, total: 40 })
    expect(info.result).toMatchObject({ datasetId: 'hippocampus-sample', imported: 40, skipped: 0 })
    expect(states).toEqual(['queued', 'running', 'completed'])
    // Rate-limited: fewer events than cases on a fast import is allowed, but the last one is the end.
    expect(progress.length).toBeGreaterThan(0)
    expect(progress.length).toBeLessThanOrEqual(40)
    expect(progress.at(-1)).toBeLessThanOrEqual(40)
    const { jobs } = await api.invoke('jobs.list', {})
    expect(jobs).toEqual([expect.objectContaining({ jobId: id, kind: 'datasets.import', status: 'completed', done: 40, total: 40 })])
    expect(await api.invoke('jobs.control', { jobId: id, action: 'cancel' })).toEqual({ accepted: false })
    expect((await api.invoke('datasets.list', {})).datasets.map((d) => d.id)).toEqual(['hippocampus-sample'])
    await app.close()

    // The job list is in the workspace: a new app lists what ran (its result stays in memory).
    const stored = JSON.parse(readFileSync(join(workspace, 'jobs.json'), 'utf8'))
    expect(stored.jobs.map((j: { info: JobInfo }) => j.info.status)).toEqual(['completed'])
    const again = createApp({ workspace, transport: 'in-process', validateResponses: true })
    const listed = (await again.bridge.api().invoke('jobs.list', {})).jobs
    expect(listed).toEqual([expect.objectContaining({ jobId: id, status: 'completed', done: 40, total: 40, label: 'Import hippocampus' })])
    expect(listed[0].result).toBeUndefined()
    await again.close()
  })

  it('reports a failed import with the error shape, naming the folder', async () => {
    const app = createApp({ workspace: tmpDir('jobs-bad'), transport: 'in-process', validateResponses: true })
    const api = app.bridge.api()
    const current: { id?: string } = {}
    const end = ended(api, current)
    current.id = (await api.invoke('datasets.import', { path: join(ROOT, 'no-such-folder') })).job.jobId
    const info = await end
    expect(info.status).toBe('failed')
    expect(info.error?.message).toContain('no-such-folder')
    expect(info.message).toContain('no-such-folder')
    const [listed] = (await api.invoke('jobs.list', {})).jobs
    expect(listed.status).toBe('failed')
    await app.close()
  })

  it('moves a damaged job list aside and starts with an empty one', async () => {
    const workspace = tmpDir('jobs-damaged')
    const first = createApp({ workspace, transport: 'in-process' })
    await first.close()
    writeFileSync(join(workspace, 'jobs.json'), '{"version": 1, "jobs": [{"info": 3')
    const errors: string[] = []
    const log = console.error
    console.error = (m: unknown) => errors.push(String(m))
    try {
      const app = createApp({ workspace, transport: 'in-process', validateResponses: true })
      expect((await app.bridge.api().invoke('jobs.list', {})).jobs).toEqual([])
      await app.close()
    } finally {
      console.error = log
    }
    const aside = readdirSync(workspace).filter((f) => f.startsWith('jobs.json.damaged-'))
    expect(aside).toHaveLength(1)
    expect(readFileSync(join(workspace, aside[0]), 'utf8')).toBe('{"version": 1, "jobs": [{"info": 3')
    expect(errors.join('\n')).toMatch(/jobs\.json: the job list is damaged .*moved to .*jobs\.json\.damaged-/)
    expect(existsSync(join(workspace, 'jobs.json'))).toBe(true)
  })
})
