/**
 * Prediction, evaluation and comparison over the contract, on the one job system: a run's
 * validation cases predicted by a `predict` job in the inference worker thread (progress in
 * cases, the backend reported), its `evaluate` job queued after it, the set then listed by
 * `predictions.list` with the table `metrics.get` reads — the same numbers the CLI's
 * `dsd evaluate` function computes; a cancelled prediction ends `cancelled`, a damaged
 * checkpoint ends `failed` naming the file; `metrics.compare` pairs two sets by case. Real
 * files: a mini hippocampus dataset, a tiny untrained DynUNet checkpoint.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobInfo, JobProgress } from '../../../main/contract'
import { createApp, type App } from '../../../main/services/app'
import { DatasetService } from '../../../main/services/datasets'
import { evaluateRun } from '../../../main/services/evaluation'
import { createRuns } from '../../../main/services/training'
import { runFiles } from '../../../main/workspace/run-layout'
import { miniMsd, saveUntrainedCheckpoint } from '../../helpers/inference'
import { tmpDir } from '../../helpers/shared'

const TMP = tmpDir('predict-jobs')
const WS = join(TMP, 'ws')
const TINY = {
  backbone: 'dynunet' as const,
  preset: 'small',
  inChannels: 1,
  numClasses: 3,
  patch: [16, 16, 16] as [number, number, number],
  filters: [2, 2, 4, 4, 4],
}
const CASES = ['hippocampus_001', 'hippocampus_003', 'hippocampus_004', 'hippocampus_006']
let app: App
let api: ReturnType<App['bridge']['api']>
let runId = ''
let other = ''
const states: JobInfo[] = []
const progress: JobProgress[] = []

/** The first job matching `pred` to end (already ended, or by its `job.state` event). */
async function endOf(pred: (j: JobInfo) => boolean, timeout = 120_000): Promise<JobInfo> {
  const t0 = Date.now()
  for (;;) {
    const j = states.find((s) => pred(s) && ['completed', 'failed', 'cancelled'].includes(s.status))
    if (j) return j
    if (Date.now() - t0 > timeout) throw new Error('job did not end in time')
    await new Promise((r) => setTimeout(r, 50))
  }
}

beforeAll(async () => {
  mkdirSync(WS, { recursive: true })
  const src = miniMsd(join(TMP, 'src'), 'msd-task04-hippocampus', CASES)
  const svc = new DatasetService(WS)
  const datasetId = (await svc.importDataset(src, { name: 'hippo-mini' })).manifest.id
  await svc.createSplit(datasetId, { folds: 2, seed: 0, name: 'k2' })
  const configs = await createRuns(WS, {
    datasetId,
    split: 'k2',
    variants: ['Basic'],
    patch: [16, 16, 16],
    filters: TINY.filters,
    epochs: 1,
    backend: 'cpu',
  })
  ;[runId, other] = configs.map((c) => c.id)
  for (const c of configs) await saveUntrainedCheckpoint(runFiles(WS, c.id).lastCheckpoint, TINY, 1)
  app = createApp({ workspace: WS, transport: 'in-process', validateResponses: true })
  api = app.bridge.api()
  api.on('job.state', (s) => states.push(s))
  api.on('job.progress', (p) => progress.push(p))
}, 120_000)
afterAll(async () => {
  await app?.close()
  rmSync(TMP, { recursive: true, force: true })
})

describe('predict and evaluate jobs', () => {
  it("predicts a run's validation cases in a worker, evaluates them, and lists the set with its table", async () => {
    const { job, ref, key } = await api.invoke('predictions.predict', { runIds: [runId] })
    expect(ref).toEqual({ kind: 'run', runId, set: 'last' })
    expect(key).toBe(`run:${runId}/last`)
    expect(job).toMatchObject({ kind: 'predict', subject: key, status: 'queued', label: `Predict ${runId} (last)` })
    // The same set being predicted again is refused while the first job runs.
    await expect(api.invoke('predictions.predict', { runIds: [runId] })).rejects.toMatchObject({ code: 'PREDICTION_BUSY' })
    const predicted = await endOf((j) => j.jobId === job.jobId)
    expect(predicted.error?.message).toBeUndefined()
    expect(predicted).toMatchObject({ status: 'completed', done: 2, total: 2 })
    expect(predicted.backend?.name).toBe('cpu')
    expect(predicted.result).toMatchObject({ ref, key, cases: 2 })
    const lines = progress.filter((p) => p.jobId === job.jobId).map((p) => p.message)
    expect(lines.some((m) => /^case 1 \/ 2 hippocampus_\d+: infer · window \d+ \/ \d+$/.test(m))).toBe(true)

    const evaluated = await endOf((j) => j.kind === 'evaluate' && j.subject === key)
    expect(evaluated).toMatchObject({ status: 'completed', done: 2, total: 2 })
    expect(evaluated.result).toMatchObject({ ref, table: 'last-original', cases: 2 })

    const { sets } = await api.invoke('predictions.list', {})
    const set = sets.find((s) => s.key === key)!
    expect(set.cases).toHaveLength(2)
    expect(set.metrics.map((m) => m.name)).toEqual(['last-original'])
    const table = await api.invoke('metrics.get', { ref })
    // What `dsd evaluate --run` computes for the run (the function it calls), case by case.
    const cli = await evaluateRun(WS, runId)
    expect(table.rows).toHaveLength(cli.rows.length)
    for (const r of cli.rows) {
      const shown = table.rows.find((x) => x.caseId === r.caseId && x.label === r.label)!
      expect(shown.dice).toBe(r.dice)
      expect(shown.hd95).toBe(r.hd95)
    }
  }, 180_000)

  it('a prediction cancelled between windows ends cancelled; a damaged checkpoint ends failed naming the file', async () => {
    const { job } = await api.invoke('predictions.predict', { runIds: [other], name: 'tta', tta: true, cases: CASES, evaluate: false })
    const t0 = Date.now()
    while (!progress.some((p) => p.jobId === job.jobId && /window/.test(p.message))) {
      if (Date.now() - t0 > 60_000) throw new Error('no window progress')
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(await api.invoke('jobs.control', { jobId: job.jobId, action: 'cancel' })).toEqual({ accepted: true })
    const end = await endOf((j) => j.jobId === job.jobId)
    expect(end.status).toBe('cancelled')
    expect(end.done).toBeLessThan(CASES.length)
    expect(end.error?.code).toBe('CANCELLED')

    const ckpt = runFiles(WS, other).lastCheckpoint
    writeFileSync(ckpt, 'not a checkpoint')
    const { job: bad } = await api.invoke('predictions.predict', { runIds: [other], name: 'broken' })
    const failed = await endOf((j) => j.jobId === bad.jobId)
    expect(failed.status).toBe('failed')
    expect(failed.error?.message).toContain(ckpt)
    // No evaluate job follows a failed prediction.
    await new Promise((r) => setTimeout(r, 300))
    expect(states.some((s) => s.kind === 'evaluate' && s.subject === `run:${other}/broken`)).toBe(false)
    await saveUntrainedCheckpoint(ckpt, TINY, 1)
  }, 180_000)

  it('refuses at once what would fail: an unknown run, a missing best checkpoint, a set with no predictions', async () => {
    await expect(api.invoke('predictions.predict', { runIds: ['no-such-run'] })).rejects.toMatchObject({ code: 'RUN_NOT_FOUND' })
    await expect(api.invoke('predictions.predict', { runIds: [runId], which: 'best' })).rejects.toMatchObject({
      code: 'CHECKPOINT_MISSING',
      message: expect.stringContaining('predict with its last checkpoint'),
    })
    await expect(api.invoke('metrics.evaluate', { ref: { kind: 'run', runId, set: 'nothing' } })).rejects.toMatchObject({ code: 'PREDICTIONS_NOT_FOUND' })
  })

  it('compares two sets case by case (Δ = b − a of each metric) from their tables', async () => {
    // The other run (other weights) on the same cases as the first run's set.
    const a = { kind: 'run' as const, runId, set: 'last' }
    const cases = (await api.invoke('predictions.list', {})).sets.find((s) => s.key === `run:${runId}/last`)!.cases.map((c) => c.caseId)
    const { job, ref: b } = await api.invoke('predictions.predict', { runIds: [other], name: 'same-cases', cases })
    await endOf((j) => j.jobId === job.jobId)
    await endOf((j) => j.kind === 'evaluate' && j.subject === `run:${other}/same-cases`)
    const cmp = await api.invoke('metrics.compare', { a: { ref: a }, b: { ref: b } })
    expect(cmp.a).toEqual({ ref: a, table: 'last-original' })
    expect(cmp.b).toEqual({ ref: b, table: 'same-cases-original' })
    const ta = await api.invoke('metrics.get', { ref: a })
    const tb = await api.invoke('metrics.get', { ref: b })
    for (const label of ['1', '2']) {
      for (const metric of ['dice', 'hd95', 'assd', 'nsd'] as const) {
        const r = cmp.labels[label][metric]
        for (const c of r.cases) {
          const va = ta.rows.find((x) => x.caseId === c.caseId && String(x.label) === label)![metric]
          const vb = tb.rows.find((x) => x.caseId === c.caseId && String(x.label) === label)![metric]
          expect(c).toEqual({ caseId: c.caseId, a: va, b: vb, delta: vb! - va! })
        }
        expect(r.n + r.excluded.length).toBeGreaterThanOrEqual(2)
      }
    }
    expect(cmp.labels.mean.dice.n).toBe(2)
  }, 180_000)
})
