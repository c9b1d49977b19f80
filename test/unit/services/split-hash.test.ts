/**
 * A run's split cannot change under it: predict, evaluate and training (the service functions the
 * CLI and the app both call, and the `dsd` CLI itself) refuse a run whose split file now holds another
 * partition, naming both hashes and the fix. Real files: a mini hippocampus dataset, a split
 * file rewritten on disk, a tiny untrained checkpoint.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { splitHash, type SplitFile } from '../../../main/data/splits'
import type { DsdError } from '../../../main/errors'
import { DatasetService } from '../../../main/services/datasets'
import { evaluateRun } from '../../../main/services/evaluation'
import { runExport } from '../../../main/services/export-job'
import { predictCases } from '../../../main/services/inference'
import { createRuns } from '../../../main/services/training'
import { readRunConfig } from '../../../main/workspace/runs'
import { runFiles } from '../../../main/workspace/run-layout'
import { splitPath } from '../../../main/workspace/splits'
import { dsdCli, tmpDir } from '../../helpers/shared'
import { miniMsd, saveUntrainedCheckpoint } from '../../helpers/inference'

const TMP = tmpDir('split-hash')
const WS = join(TMP, 'ws')
const TINY = {
  backbone: 'dynunet' as const,
  preset: 'small',
  inChannels: 1,
  numClasses: 3,
  patch: [16, 16, 16] as [number, number, number],
  filters: [2, 2, 4, 4, 4],
}
let datasetId = ''
let runId = ''
let original = ''
let splitFile = ''

async function refusal(p: Promise<unknown>): Promise<DsdError> {
  const err = (await p.then(
    () => null,
    (e: unknown) => e,
  )) as DsdError | null
  expect(err, 'refused').not.toBeNull()
  return err!
}

beforeAll(async () => {
  mkdirSync(WS, { recursive: true })
  const src = miniMsd(join(TMP, 'src'), 'msd-task04-hippocampus', ['hippocampus_001', 'hippocampus_003', 'hippocampus_004'])
  const svc = new DatasetService(WS)
  datasetId = (await svc.importDataset(src, { name: 'hippo-mini' })).manifest.id
  original = (await svc.createSplit(datasetId, { folds: 3, seed: 0, name: 'k3' })).hash
  splitFile = splitPath(WS, datasetId, 'k3')
  const [cfg] = await createRuns(WS, {
    datasetId,
    split: 'k3',
    folds: [0],
    variants: ['Basic'],
    patch: [16, 16, 16],
    filters: TINY.filters,
    epochs: 1,
    backend: 'cpu',
  })
  runId = cfg.id
  await saveUntrainedCheckpoint(runFiles(WS, runId).lastCheckpoint, TINY, 1)
}, 120_000)
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

describe('the split hash of a run', () => {
  it('is recorded in the run config when the run is created', async () => {
    expect(original).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect((await readRunConfig(WS, runId)).splitHash).toBe(original)
  })

  it('lets predict and evaluate run while the split is unchanged', async () => {
    const res = await predictCases({ workspace: WS, runIds: [runId], swBatch: 4 })
    expect(res.manifest.cases).toHaveLength(1)
    const t = await evaluateRun(WS, runId)
    expect(t.rows.length).toBeGreaterThan(0)
    // The CLI's `dsd evaluate --run` (evaluateSet, as the app's evaluate job) gives the same rows.
    const cli = dsdCli(WS, ['evaluate', '--run', runId, '--json'])
    expect(cli.status, cli.stderr).toBe(0)
    const printed = JSON.parse(cli.stdout) as typeof t
    expect(printed.name).toBe('last-original')
    expect(printed.rows).toEqual(t.rows)
    expect(readFileSync(join(runFiles(WS, runId).metrics, 'last-original.csv'), 'utf8')).toContain(t.rows[0].caseId)
  }, 120_000)

  it('refuses predict and evaluate (service and CLI) once the split file holds another partition', async () => {
    // Re-create "k3" with the folds rotated: fold 0 now validates on a case the run trained on.
    const split = JSON.parse(readFileSync(splitFile, 'utf8')) as SplitFile
    const rotated = { ...split, seed: 1, folds: [...split.folds.slice(1), split.folds[0]] }
    rotated.hash = splitHash(rotated)
    expect(rotated.folds[0].val).not.toEqual(split.folds[0].val)
    writeFileSync(splitFile, JSON.stringify(rotated, null, 2))

    const p = await refusal(predictCases({ workspace: WS, runIds: [runId], swBatch: 4 }))
    expect(p.code).toBe('SPLIT_CHANGED')
    expect(p.message).toContain(original)
    expect(p.message).toContain(rotated.hash)
    expect(p.message).toContain(splitFile)
    expect(p.message).toMatch(/Restore the split file .* or train new runs on a split with a new name/)

    const e = await refusal(evaluateRun(WS, runId))
    expect(e.code).toBe('SPLIT_CHANGED')
    expect(e.message).toContain(original)
    expect(e.message).toContain(rotated.hash)

    // An edited file (its stored hash no longer matches what it holds) counts by its content.
    writeFileSync(splitFile, JSON.stringify({ ...rotated, hash: original }, null, 2))
    expect((await refusal(evaluateRun(WS, runId))).code).toBe('SPLIT_CHANGED')

    const cli = dsdCli(WS, ['predict', '--run', runId, '--quiet'])
    expect(cli.status).not.toBe(0)
    expect(cli.stderr).toContain(original)
    expect(cli.stderr).toContain(rotated.hash)
    const ev = dsdCli(WS, ['evaluate', '--run', runId])
    expect(ev.status).not.toBe(0)
    expect(ev.stderr).toContain(rotated.hash)

    // The app's export refuses the metrics and the report of such a run; its masks still export.
    const set = { kind: 'run' as const, runId, set: 'last' }
    const opts = { values: 'classes' as const, grid: 'original' as const }
    for (const f of ['metrics', 'report'] as const) {
      const x = await refusal(runExport(WS, { sets: [set], formats: [f], ...opts }))
      expect(x.code).toBe('SPLIT_CHANGED')
      expect(x.message).toContain(rotated.hash)
    }
    const masks = await runExport(WS, { sets: [set], formats: ['nifti'], name: 'masks-only', ...opts })
    expect(masks.files.filter((f) => f.endsWith('.nii.gz'))).toHaveLength(1)

    // Training does not start (or resume) on it either: `dsd resume` fails with the reason.
    const resumed = dsdCli(WS, ['resume', runId])
    expect(resumed.status).not.toBe(0)
    expect(resumed.stdout + resumed.stderr).toContain(rotated.hash)
    const state = JSON.parse(readFileSync(runFiles(WS, runId).state, 'utf8')) as { status: string; message: string }
    expect(state.status).toBe('failed')
    expect(state.message).toContain(rotated.hash)

    // Restoring the split the run was trained with lets both run again.
    writeFileSync(splitFile, JSON.stringify(split, null, 2))
    expect((await evaluateRun(WS, runId)).rows.length).toBeGreaterThan(0)
  }, 180_000)

  it('falls back to the hash training recorded in manifest.json for runs created before configs recorded it', async () => {
    const cfgFile = runFiles(WS, runId).config
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>
    delete cfg.splitHash
    writeFileSync(cfgFile, JSON.stringify(cfg))
    writeFileSync(runFiles(WS, runId).manifest, JSON.stringify({ split: { name: 'k3', fold: 0, hash: 'sha256:' + '0'.repeat(64) } }))
    const e = await refusal(evaluateRun(WS, runId))
    expect(e.code).toBe('SPLIT_CHANGED')
    expect(e.message).toContain('sha256:' + '0'.repeat(64))
  })
})
