/**
 * The everyday basics over the contract, with real files and a real training worker: a split's
 * fold view and deleting it, deleting a run (refused while its job runs, a queued one cancelled
 * first, the folder in the workspace's trash), a run left "queued" with no job cancelled, the
 * runs table's times, the forms' number bounds read from the contract's schemas, app messages
 * that name app actions where the CLI's name flags, and the startup sweep.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobInfo } from '../../../main/contract'
import { parsePairRule } from '../../../main/data/layouts'
import { createApp, type App } from '../../../main/services/app'
import { DatasetService } from '../../../main/services/datasets'
import { createRuns } from '../../../main/services/training'
import { TRASH_DIR } from '../../../main/workspace/entries'
import { readRunState, writeRunState } from '../../../main/workspace/runs'
import { sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('everyday')
const WS = join(TMP, 'ws')
const HIPPO = sharedPath('data', 'msd-task04-hippocampus')
const IDS = ['001', '003', '004', '006', '007', '008']

let app: App
let api: ReturnType<App['bridge']['api']>

function waitJob(pred: (j: JobInfo) => boolean): Promise<JobInfo> {
  return new Promise((resolve) => {
    const off = api.on('job.state', (info) => {
      if (pred(info)) {
        off()
        resolve(info)
      }
    })
  })
}

beforeAll(async () => {
  const src = join(TMP, 'src')
  mkdirSync(join(src, 'images'), { recursive: true })
  mkdirSync(join(src, 'labels'), { recursive: true })
  for (const id of IDS) {
    copyFileSync(join(HIPPO, 'imagesTr', `hippocampus_${id}.nii.gz`), join(src, 'images', `c${id}.nii.gz`))
    copyFileSync(join(HIPPO, 'labelsTr', `hippocampus_${id}.nii.gz`), join(src, 'labels', `c${id}.nii.gz`))
  }
  // What a killed process left: a staging folder of a dead pid (the startup sweep removes it).
  mkdirSync(join(WS, 'datasets', '.staging-999999999-abcd'), { recursive: true })
  await new DatasetService(WS).importDataset(src, { layout: 'pairs', rule: parsePairRule('images/{id}.nii.gz=labels/{id}.nii.gz'), name: 'six' })
  app = createApp({ workspace: WS, transport: 'in-process', validateResponses: true })
  api = app.bridge.api()
  await app.ready
})
afterAll(async () => {
  await app?.close()
  rmSync(TMP, { recursive: true, force: true })
})

describe('startup', () => {
  it('the app sweeps the workspace when it starts', () => {
    expect(existsSync(join(WS, 'datasets', '.staging-999999999-abcd'))).toBe(false)
  })
})

describe('splits', () => {
  it('shows which cases are in which fold, and who uses the split; deleting it moves the file to the trash', async () => {
    await api.invoke('splits.create', { datasetId: 'six', folds: 3, seed: 0, name: 'k3' })
    const d = await api.invoke('splits.get', { datasetId: 'six', name: 'k3' })
    expect(d.summary).toMatchObject({ name: 'k3', folds: 3, seed: 0 })
    expect(d.folds).toHaveLength(3)
    const vals = d.folds.flatMap((f) => f.val).sort()
    expect(vals).toEqual(IDS.map((i) => `c${i}`).sort()) // every case validates exactly once
    for (const f of d.folds) {
      expect(f.val).toHaveLength(2)
      expect([...f.train, ...f.val].sort()).toEqual(vals)
    }
    // the same as the file says
    const file = JSON.parse(readFileSync(join(WS, 'datasets', 'six', 'splits', 'k3.json'), 'utf8'))
    expect(d.folds).toEqual(file.folds)
    expect(d.usedBy).toEqual([])
    // an existing name is refused with the error the app shows
    await expect(api.invoke('splits.create', { datasetId: 'six', folds: 2, seed: 5, name: 'k3' })).rejects.toMatchObject({ code: 'SPLIT_EXISTS' })

    await api.invoke('splits.create', { datasetId: 'six', folds: 2, seed: 0, name: 'spare' })
    const { trashedTo } = await api.invoke('splits.delete', { datasetId: 'six', name: 'spare' })
    expect(trashedTo.startsWith(join(WS, TRASH_DIR))).toBe(true)
    expect(existsSync(trashedTo)).toBe(true)
    expect((await api.invoke('splits.list', { datasetId: 'six' })).splits.map((s) => s.name)).toEqual(['k3'])
  })
})

describe('runs', () => {
  it('a run left "queued" with no job is cancelled, then deleted into the trash', async () => {
    const [cfg] = await createRuns(WS, { datasetId: 'six', split: 'k3', folds: [0], variants: ['Basic'], name: 'stuck', preset: 'quick', epochs: 1, stepsPerEpoch: 1 })
    expect((await api.invoke('runs.list', {})).runs.find((r) => r.id === cfg.id)).toMatchObject({
      state: { status: 'queued' },
      startedAt: null,
      endedAt: null,
      trainingSeconds: 0,
    })
    expect((await api.invoke('splits.get', { datasetId: 'six', name: 'k3' })).usedBy).toEqual([cfg.id])
    await expect(api.invoke('splits.delete', { datasetId: 'six', name: 'k3' })).rejects.toMatchObject({ code: 'SPLIT_IN_USE' })
    const states: string[] = []
    api.on('run.state', (p) => p.runId === cfg.id && states.push(p.state.status))
    const { state } = await api.invoke('runs.cancel', { runId: cfg.id })
    expect(state.status).toBe('cancelled')
    expect(state.message).toMatch(/no job was running it/)
    expect((await readRunState(WS, cfg.id)).status).toBe('cancelled')
    expect(states).toEqual(['cancelled'])
    await expect(api.invoke('runs.cancel', { runId: cfg.id })).rejects.toMatchObject({ code: 'RUN_ENDED' })
    const { trashedTo } = await api.invoke('runs.delete', { runId: cfg.id })
    expect(trashedTo.startsWith(join(WS, TRASH_DIR, 'runs', `${cfg.id}-`))).toBe(true)
    expect(JSON.parse(readFileSync(join(trashedTo, 'config.json'), 'utf8')).id).toBe(cfg.id)
    expect(existsSync(join(WS, 'runs', cfg.id))).toBe(false)
    expect((await api.invoke('runs.list', {})).runs.map((r) => r.id)).not.toContain(cfg.id)
    await expect(api.invoke('runs.delete', { runId: cfg.id })).rejects.toMatchObject({ code: 'RUN_NOT_FOUND' })
  })

  it('a run "running" in another process (fresh state, no job here) is refused; a stale one can be cancelled', async () => {
    const [cfg] = await createRuns(WS, { datasetId: 'six', split: 'k3', folds: [0], variants: ['Basic'], name: 'elsewhere', preset: 'quick', epochs: 1, stepsPerEpoch: 1 })
    const st = await readRunState(WS, cfg.id)
    await writeRunState(WS, cfg.id, { ...st, status: 'running', updatedAt: new Date().toISOString() })
    await expect(api.invoke('runs.delete', { runId: cfg.id })).rejects.toMatchObject({ code: 'RUN_BUSY_ELSEWHERE' })
    await expect(api.invoke('runs.cancel', { runId: cfg.id })).rejects.toMatchObject({ code: 'RUN_BUSY_ELSEWHERE' })
    await writeRunState(WS, cfg.id, { ...st, status: 'running', updatedAt: new Date(Date.now() - 3600_000).toISOString() })
    expect((await api.invoke('runs.cancel', { runId: cfg.id })).state.status).toBe('cancelled')
    await api.invoke('runs.delete', { runId: cfg.id })
  })

  it('deleting a run whose job runs is refused; a queued one is cancelled first; after cancel both go, with start time and duration shown', async () => {
    const running = waitJob((j) => j.kind === 'train' && j.status === 'running')
    const { runIds, jobs } = await api.invoke('runs.create', {
      datasetId: 'six', split: 'k3', folds: [0], variants: ['Basic', 'DS'], name: 'live', preset: 'quick',
      patch: [16, 16, 16], batch: 1, epochs: 500, stepsPerEpoch: 2, validateEvery: 0, backend: 'cpu',
    })
    expect(jobs.map((j) => j.status)).toEqual(['queued', 'queued'])
    const first = await running
    expect(first.subject).toBe(runIds[0])
    // the second waits in the device queue: deleting it cancels its job and moves it away
    const trashed = await api.invoke('runs.delete', { runId: runIds[1] })
    expect(existsSync(trashed.trashedTo)).toBe(true)
    expect((await api.invoke('jobs.list', {})).jobs.find((j) => j.subject === runIds[1])?.status).toBe('cancelled')
    // the running one is refused, naming what to do
    const busy = await api.invoke('runs.delete', { runId: runIds[0] }).catch((e) => e)
    expect(busy).toMatchObject({ code: 'RUN_BUSY' })
    expect(busy.message).toMatch(/cancel it/)
    expect(existsSync(join(WS, 'runs', runIds[0], 'config.json'))).toBe(true)
    // wait for one epoch so the run has a start time and training seconds
    await new Promise<void>((resolve) => {
      const off = api.on('run.epoch', (p) => {
        if (p.runId === runIds[0]) {
          off()
          resolve()
        }
      })
    })
    const ended = waitJob((j) => j.jobId === first.jobId && ['completed', 'failed', 'cancelled'].includes(j.status))
    await api.invoke('runs.cancel', { runId: runIds[0] })
    expect((await ended).status).toBe('cancelled')
    const summary = (await api.invoke('runs.list', {})).runs.find((r) => r.id === runIds[0])!
    expect(summary.state.status).toBe('cancelled')
    const manifest = JSON.parse(readFileSync(join(WS, 'runs', runIds[0], 'manifest.json'), 'utf8'))
    expect(summary.startedAt).toBe(manifest.createdAt)
    expect(summary.endedAt).toBe(summary.state.updatedAt)
    const timing = readFileSync(join(WS, 'runs', runIds[0], 'timing.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).seconds as number)
    expect(summary.trainingSeconds).toBeCloseTo(timing.reduce((a, b) => a + b, 0), 9)
    expect(summary.trainingSeconds).toBeGreaterThan(0)
    await api.invoke('runs.delete', { runId: runIds[0] })
    expect(readdirSync(join(WS, TRASH_DIR, 'runs')).some((n) => n.startsWith(`${runIds[0]}-`))).toBe(true)
  }, 240_000)
})

describe('datasets', () => {
  it('deleting a dataset used by runs is refused; unused, it moves to the trash (the source files stay)', async () => {
    const [cfg] = await createRuns(WS, { datasetId: 'six', split: 'k3', folds: [1], variants: ['Basic'], name: 'keep', preset: 'quick', epochs: 1 })
    await expect(api.invoke('datasets.delete', { datasetId: 'six' })).rejects.toMatchObject({ code: 'DATASET_IN_USE' })
    await api.invoke('runs.cancel', { runId: cfg.id })
    await api.invoke('runs.delete', { runId: cfg.id })
    const { trashedTo } = await api.invoke('datasets.delete', { datasetId: 'six' })
    expect(existsSync(join(trashedTo, 'dataset.json')) || readdirSync(trashedTo).length > 0).toBe(true)
    expect((await api.invoke('datasets.list', {})).datasets).toEqual([])
    expect(readdirSync(join(TMP, 'src', 'images'))).toHaveLength(IDS.length)
  })
})

describe('forms.limits', () => {
  it('reads every number field’s bounds from the request schemas', async () => {
    const { forms } = await api.invoke('forms.limits', {})
    expect(forms['splits.create']).toEqual({
      folds: { integer: true, min: 2, max: 50 },
      seed: { integer: true, min: 0, max: 2 ** 31 - 1 },
    })
    const run = forms['runs.create']
    expect(run.batch).toEqual({ integer: true, min: 1, max: 64 })
    expect(run.epochs).toEqual({ integer: true, min: 1, max: 100000 })
    expect(run.stepsPerEpoch).toEqual({ integer: true, min: 1 })
    expect(run.lr).toEqual({ integer: false, above: 0 })
    expect(run.patch).toEqual({ integer: true, min: 1, multipleOf: 16 })
    expect(run['weights.eta']).toEqual({ integer: false, min: 0, max: 100 })
    expect(run.validateEvery).toEqual({ integer: true, min: 0 })
  })
})

describe('app messages', () => {
  it('an error naming CLI flags carries the app’s words (appMessage) across the bridge', async () => {
    const res = await app.bridge.invoke('splits.create', { datasetId: 'nope', folds: 2 })
    expect(res.ok).toBe(false)
    if (res.ok) return
    expect(res.error.code).toBe('DATASET_NOT_FOUND')
    expect(res.error.message).toMatch(/dsd import/)
    expect(res.error.appMessage).toBeDefined()
    expect(res.error.appMessage).not.toMatch(/dsd |--/)
    expect(res.error.appMessage).toMatch(/Datasets page/)
  })
})
