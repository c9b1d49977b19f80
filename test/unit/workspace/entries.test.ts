/**
 * Workspace entries and the honesty of what they record, on real files: a split name is
 * created once and never replaced, reading a split never writes, an import reports the cases
 * it cannot read (and runs on that dataset are refused, naming them), deleting moves datasets
 * and splits to the workspace's trash folder, staging folders and the sweep.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parsePairRule } from '../../../main/data/layouts'
import { DatasetService } from '../../../main/services/datasets'
import { createRuns, RUN_DEFAULTS } from '../../../main/services/training'
import { manifestPath } from '../../../main/workspace/datasets'
import { createEntry, STAGING_PREFIX, TRASH_DIR } from '../../../main/workspace/entries'
import { createRun } from '../../../main/workspace/runs'
import { splitPath } from '../../../main/workspace/splits'
import { sweepWorkspace } from '../../../main/workspace/sweep'
import { sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('entries')
const WS = join(TMP, 'ws')
const HIPPO = sharedPath('data', 'msd-task04-hippocampus')
const RULE = parsePairRule('images/{id}.nii=labels/{id}.nii.gz')

/** A pairs folder of real hippocampus cases; `truncate` cuts one image's data short. */
function pairs(name: string, ids: string[], truncate?: string): string {
  const d = join(TMP, name)
  mkdirSync(join(d, 'images'), { recursive: true })
  mkdirSync(join(d, 'labels'), { recursive: true })
  for (const id of ids) {
    const img = join(d, 'images', `c${id}.nii`)
    const raw = gunzipSync(readFileSync(join(HIPPO, 'imagesTr', `hippocampus_${id}.nii.gz`)))
    writeFileSync(img, id === truncate ? raw.subarray(0, raw.length - 1000) : raw)
    copyFileSync(join(HIPPO, 'labelsTr', `hippocampus_${id}.nii.gz`), join(d, 'labels', `c${id}.nii.gz`))
  }
  return d
}

const svc = new DatasetService(WS)
beforeAll(async () => {
  mkdirSync(WS, { recursive: true })
  await svc.importDataset(pairs('good', ['001', '003', '004', '006', '007', '008']), { layout: 'pairs', rule: RULE, name: 'good' })
})
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

describe('splits are never changed under runs', () => {
  it('creating a split with a name that exists is refused, suggesting a free name; the file is untouched', async () => {
    const first = await svc.createSplit('good', { folds: 2, seed: 0, name: 'k2' })
    const file = splitPath(WS, 'good', 'k2')
    const before = readFileSync(file)
    const err = await svc.createSplit('good', { folds: 3, seed: 7, name: 'k2' }).catch((e) => e)
    expect(err.code).toBe('SPLIT_EXISTS')
    expect(err.message).toMatch(/already has a split "k2".*e\.g\. "k2-2"/)
    expect(readFileSync(file).equals(before)).toBe(true)
    expect((await svc.getSplit('good', 'k2')).split.hash).toBe(first.hash)
    const other = await svc.createSplit('good', { folds: 3, seed: 7, name: err.details.suggestion })
    expect(other.name).toBe('k2-2')
  })

  it('reading an edited split never writes; the repair is explicit and logged', async () => {
    await svc.createSplit('good', { folds: 2, seed: 1, name: 'edited' })
    const file = splitPath(WS, 'good', 'edited')
    const json = JSON.parse(readFileSync(file, 'utf8'))
    const moved = json.folds[0].val.pop()
    json.folds[0].train.push(moved)
    json.folds[1].val.push(moved)
    json.folds[1].train = json.folds[1].train.filter((x: string) => x !== moved)
    writeFileSync(file, JSON.stringify(json))
    const bytes = readFileSync(file)
    const mtime = statSync(file).mtimeMs
    const r = await svc.getSplit('good', 'edited')
    expect(r.edited).toBe(true)
    expect(r.storedHash).toBe(json.hash)
    expect(r.split.hash).not.toBe(json.hash)
    await svc.listSplits('good')
    expect(readFileSync(file).equals(bytes)).toBe(true)
    expect(statSync(file).mtimeMs).toBe(mtime)
    const logged: string[] = []
    const fix = await svc.repairSplit('good', 'edited', (m) => logged.push(m))
    expect(fix).toMatchObject({ repaired: true, from: json.hash, to: r.split.hash })
    expect(logged[0]).toMatch(/edited by hand; its hash was re-stamped from sha256:\w+ to sha256:\w+/)
    expect((await svc.getSplit('good', 'edited')).edited).toBe(false)
  })
})

describe('imports run the audit’s file checks', () => {
  it('a truncated image is reported at import, recorded in the manifest, and runs on the dataset are refused naming it', async () => {
    const r = await svc.importDataset(pairs('cut', ['001', '003', '004', '006'], '004'), { layout: 'pairs', rule: RULE, name: 'cut' })
    expect(r.imported).toBe(3)
    expect(r.unreadable).toEqual([
      expect.objectContaining({ caseId: 'c004', code: 'NIFTI_TRUNCATED', file: expect.stringMatching(/images\/c004\.nii$/) }),
    ])
    expect(r.problems.find((p) => p.caseId === 'c004')!.message).toMatch(/c004\.nii: header says .* the file is truncated/)
    const m = JSON.parse(readFileSync(manifestPath(WS, 'cut'), 'utf8'))
    expect(m.unreadable.map((u: { caseId: string }) => u.caseId)).toEqual(['c004'])
    expect((await svc.unreadableCases('cut')).map((u) => [u.caseId, u.source])).toEqual([['c004', 'import']])
    await expect(svc.assertReadable('good')).resolves.toBeUndefined()
    await svc.createSplit('cut', { folds: 3, seed: 0, name: 'k3' })
    const refused = await createRuns(WS, {
      ...structuredClone(RUN_DEFAULTS),
      model: { ...RUN_DEFAULTS.model, patch: [32, 32, 32] },
      loss: { ...RUN_DEFAULTS.loss },
      datasetId: 'cut',
      split: 'k3',
      variants: ['Basic'],
      epochs: 1,
      schedule: { stepSize: 1, gamma: 0.5 },
    } as never).catch((e) => e)
    expect(refused.code).toBe('DATASET_UNREADABLE_CASES')
    expect(refused.message).toMatch(/dataset "cut" has 1 case\(s\) whose files cannot be read: c004 \(.*c004\.nii\)/)
    expect(existsSync(join(WS, 'runs'))).toBe(false) // refused before any run folder was made
  })

  it('a file found unreadable by the last audit is refused too', async () => {
    await svc.importDataset(pairs('later', ['001', '003', '004']), { layout: 'pairs', rule: RULE, name: 'later' })
    const img = join(TMP, 'later', 'images', 'c003.nii')
    writeFileSync(img, readFileSync(img).subarray(0, 2000))
    await svc.auditDataset('later')
    const bad = await svc.unreadableCases('later')
    expect(bad.map((u) => [u.caseId, u.source])).toEqual([['c003', 'audit']])
    await expect(svc.assertReadable('later')).rejects.toMatchObject({ code: 'DATASET_UNREADABLE_CASES' })
  })
})

describe('delete moves to the workspace trash', () => {
  it('a split, then a dataset; refused while a run uses them', async () => {
    await svc.importDataset(pairs('del', ['001', '003', '004']), { layout: 'pairs', rule: RULE, name: 'del' })
    await svc.createSplit('del', { folds: 3, seed: 0, name: 'used' })
    await svc.createSplit('del', { folds: 3, seed: 0, name: 'spare' })
    const { trashedTo } = await svc.deleteSplit('del', 'spare')
    expect(trashedTo.startsWith(join(WS, TRASH_DIR, 'splits', 'del'))).toBe(true)
    expect(JSON.parse(readFileSync(trashedTo, 'utf8')).name).toBe('spare')
    expect((await svc.listSplits('del')).map((s) => s.name)).toEqual(['used'])

    const cfg = JSON.parse(JSON.stringify(RUN_DEFAULTS))
    await createRun(WS, {
      ...cfg,
      id: 'del-run',
      datasetId: 'del',
      split: 'used',
      fold: 0,
      variant: 'Basic',
      epochs: 1,
      schedule: { stepSize: 1, gamma: 0.5 },
    })
    await expect(svc.deleteSplit('del', 'used')).rejects.toMatchObject({ code: 'SPLIT_IN_USE', details: { runs: ['del-run'] } })
    await expect(svc.deleteDataset('del')).rejects.toMatchObject({ code: 'DATASET_IN_USE' })
    rmSync(join(WS, 'runs', 'del-run'), { recursive: true })

    const gone = await svc.deleteDataset('del')
    expect(existsSync(join(WS, 'datasets', 'del'))).toBe(false)
    expect(existsSync(join(gone.trashedTo, 'manifest.json'))).toBe(true)
    expect((await svc.listDatasets()).datasets.map((d) => d.id)).not.toContain('del')
    // the name is free again, and the source data was never touched
    expect((await svc.importDataset(join(TMP, 'del'), { layout: 'pairs', rule: RULE, name: 'del' })).manifest.id).toBe('del')
  })
})

describe('staging and the sweep', () => {
  it('createEntry: all or nothing, and never over an existing entry', async () => {
    const parent = join(TMP, 'entries')
    await createEntry(parent, 'a', async (dir) => writeFileSync(join(dir, 'x'), '1'))
    expect(readFileSync(join(parent, 'a', 'x'), 'utf8')).toBe('1')
    await expect(createEntry(parent, 'a', async () => undefined)).rejects.toMatchObject({ code: 'ENTRY_EXISTS' })
    await expect(
      createEntry(parent, 'b', async (dir) => {
        writeFileSync(join(dir, 'half'), 'x')
        throw new Error('disk on fire')
      }),
    ).rejects.toThrow('disk on fire')
    expect(readdirSync(parent)).toEqual(['a'])
  })

  it('removes staging folders and temp files of dead processes, keeps those of live ones', async () => {
    const ws = join(TMP, 'sweep')
    const runs = join(ws, 'runs')
    mkdirSync(join(runs, `${STAGING_PREFIX}999999-deadbeef`), { recursive: true })
    mkdirSync(join(runs, `${STAGING_PREFIX}${process.pid}-0badf00d`), { recursive: true })
    mkdirSync(join(runs, 'r1', 'checkpoints'), { recursive: true })
    writeFileSync(join(runs, 'r1', '.state.json.999999.abcdef01.tmp'), '{')
    writeFileSync(join(runs, 'r1', 'checkpoints', '.last.ckpt.tmp-999999-abcdef01'), 'x')
    writeFileSync(join(runs, 'r1', 'config.json'), '{}')
    writeFileSync(join(runs, 'r1', `.state.json.${process.pid}.abcdef02.tmp`), '{')
    const r = await sweepWorkspace(ws)
    expect(r.removed.sort()).toEqual(
      [
        join(runs, `${STAGING_PREFIX}999999-deadbeef`),
        join(runs, 'r1', '.state.json.999999.abcdef01.tmp'),
        join(runs, 'r1', 'checkpoints', '.last.ckpt.tmp-999999-abcdef01'),
      ].sort(),
    )
    expect(readdirSync(runs).sort()).toEqual([`${STAGING_PREFIX}${process.pid}-0badf00d`, 'r1'].sort())
    expect(existsSync(join(runs, 'r1', `.state.json.${process.pid}.abcdef02.tmp`))).toBe(true)
  })
})
