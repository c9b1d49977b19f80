import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseLayout, parsePairRule, proposePairRules } from '../../../main/data/layouts'
import { readNifti, writeNifti } from '../../../main/data/nifti'
import { DatasetService } from '../../../main/services/datasets'
import { manifestPath } from '../../../main/workspace/datasets'
import { splitPath } from '../../../main/workspace/splits'
import { sharedPath, tmpDir } from '../../helpers/shared'

const HIPPO = sharedPath('data/msd-task04-hippocampus')
const TCIA = sharedPath('data/tcia-brain-tumor-progression')
const root = tmpDir('data-datasets')
const ws = join(root, 'ws')

beforeAll(() => mkdirSync(root, { recursive: true }))
afterAll(() => rmSync(root, { recursive: true, force: true }))

describe('layouts', () => {
  it('parses the hippocampus MSD folder (260 cases, 1 channel, 3 labels)', () => {
    const l = parseLayout(HIPPO)
    expect(l.layout).toBe('msd')
    expect(l.cases).toHaveLength(260)
    expect(l.channels).toEqual(['MRI'])
    expect(l.labels).toEqual({ 0: 'background', 1: 'Anterior', 2: 'Posterior' })
    expect(l.cases[0].id).toBe('hippocampus_001')
    expect(l.problems).toEqual([])
  })

  it('reads tcia patients (two studies of PGBM-001)', () => {
    const l = parseLayout(TCIA)
    expect(l.patients['PGBM-001']).toEqual(['PGBM-001_19911119', 'PGBM-001_19920402'])
    expect(l.cases.filter((c) => c.patient === 'PGBM-001')).toHaveLength(2)
  })

  it('parses an nnU-Net raw folder built from real files; flags a missing channel and an extra one', () => {
    const d = join(root, 'Dataset004_Hippo')
    mkdirSync(join(d, 'imagesTr'), { recursive: true })
    mkdirSync(join(d, 'labelsTr'), { recursive: true })
    for (const id of ['001', '003', '004']) {
      copyFileSync(
        join(HIPPO, `imagesTr/hippocampus_${id}.nii.gz`),
        join(d, `imagesTr/hippo_${id}_0000.nii.gz`),
      )
      copyFileSync(
        join(HIPPO, `labelsTr/hippocampus_${id}.nii.gz`),
        join(d, `labelsTr/hippo_${id}.nii.gz`),
      )
    }
    copyFileSync(
      join(HIPPO, 'imagesTr/hippocampus_001.nii.gz'),
      join(d, 'imagesTr/hippo_001_0001.nii.gz'),
    )
    writeFileSync(
      join(d, 'dataset.json'),
      JSON.stringify({
        channel_names: { 0: 'T1' },
        labels: { background: 0, anterior: 1, posterior: 2 },
        numTraining: 3,
        file_ending: '.nii.gz',
      }),
    )
    const l = parseLayout(d)
    expect(l.layout).toBe('nnunet')
    expect(l.cases.map((c) => c.id)).toEqual(['hippo_001', 'hippo_003', 'hippo_004'])
    expect(l.labels).toEqual({ 0: 'background', 1: 'anterior', 2: 'posterior' })
    expect(l.problems.map((p) => p.code)).toEqual(['EXTRA_CHANNEL'])
    // Declare two channels: now every case but hippo_001 misses channel 1 and is skipped.
    writeFileSync(
      join(d, 'dataset.json'),
      JSON.stringify({
        channel_names: { 0: 'T1', 1: 'T2' },
        labels: { background: 0, a: 1 },
        numTraining: 3,
        file_ending: '.nii.gz',
      }),
    )
    const l2 = parseLayout(d)
    expect(l2.cases.map((c) => c.id)).toEqual(['hippo_001'])
    expect(l2.cases[0].images).toHaveLength(2)
    const missing = l2.problems.filter((p) => p.code === 'MISSING_CHANNEL')
    expect(missing.map((p) => p.caseId)).toEqual(['hippo_003', 'hippo_004'])
    expect(missing[0].message).toMatch(/imagesTr\/hippo_003_0001.nii.gz: missing channel 1 \(T2\)/)
  })

  it('proposes and applies a pairs rule', () => {
    const d = join(root, 'pairs')
    mkdirSync(d, { recursive: true })
    for (const id of ['001', '003']) {
      copyFileSync(join(HIPPO, `imagesTr/hippocampus_${id}.nii.gz`), join(d, `h${id}_image.nii.gz`))
      copyFileSync(join(HIPPO, `labelsTr/hippocampus_${id}.nii.gz`), join(d, `h${id}_label.nii.gz`))
    }
    copyFileSync(join(HIPPO, 'imagesTr/hippocampus_004.nii.gz'), join(d, 'h004_image.nii.gz'))
    const best = proposePairRules(d)[0]
    expect(best.rule).toEqual({ image: '{id}_image.nii.gz', label: '{id}_label.nii.gz' })
    expect(best.pairs).toBe(2)
    const l = parseLayout(d, {
      layout: 'pairs',
      rule: parsePairRule('{id}_image.nii.gz={id}_label.nii.gz'),
    })
    expect(l.cases.map((c) => c.id)).toEqual(['h001', 'h003'])
    expect(l.problems).toMatchObject([{ caseId: 'h004', code: 'LABEL_MISSING' }])
    expect(() => parsePairRule('images/x.nii.gz')).toThrow(/must look like/)
  })

  it('reports a malformed dataset.json naming the file', () => {
    const d = join(root, 'broken')
    mkdirSync(d, { recursive: true })
    writeFileSync(join(d, 'dataset.json'), '{"labels": {"0": "bg"}, "training": [,]}')
    expect(() => parseLayout(d)).toThrow(/broken\/dataset.json: not valid JSON/)
    writeFileSync(join(d, 'dataset.json'), '{"labels": {"0": "bg"}, "training": []}')
    expect(() => parseLayout(d, { layout: 'msd' })).toThrow(/dataset.json: "modality" is missing/)
  })
})

describe('import + audit (all 260 hippocampus cases)', () => {
  const svc = new DatasetService(ws)
  it('imports with progress, records hashes and geometry, never touches the source', async () => {
    const events: number[] = []
    const r = await svc.importDataset(HIPPO, { onProgress: (done) => events.push(done) })
    expect(r.imported).toBe(260)
    expect(events).toHaveLength(260)
    expect(events[events.length - 1]).toBe(260)
    const m = await svc.getDataset('hippocampus')
    const c3 = m.cases.find((c) => c.id === 'hippocampus_003')!
    expect(c3.labelGeometry!.datatype).toBe('float32')
    expect(c3.imageGeometry[0].shape).toEqual([34, 52, 35])
    expect(c3.labelValues).toEqual([0, 1, 2])
    const sums = readFileSync(join(HIPPO, 'SHA256SUMS'), 'utf8')
    expect(sums).toContain(`${c3.images[0].sha256}  imagesTr/hippocampus_003.nii.gz`)
    expect((await svc.listDatasets()).datasets.map((d) => d.id)).toContain('hippocampus')
  })

  it('audit flags the two float32 label files and the intensity outliers, with progress', async () => {
    let calls = 0
    const a = await svc.auditDataset('hippocampus', { onProgress: () => calls++ })
    expect(calls).toBe(260)
    expect(a.counts.error).toBe(0)
    const floats = a.findings.filter((f) => f.code === 'LABEL_FLOAT').map((f) => f.caseId)
    expect(floats.sort()).toEqual(['hippocampus_003', 'hippocampus_243'])
    const outliers = new Set(
      a.findings.filter((f) => f.code === 'INTENSITY_OUTLIER').map((f) => f.caseId),
    )
    expect(outliers.has('hippocampus_210')).toBe(true) // max 1.7e6
    expect(outliers.has('hippocampus_172')).toBe(true) // max 112
    expect(outliers.has('hippocampus_003')).toBe(false) // max 2777, typical
    expect(a.summary.some((l) => l.startsWith('WARNING LABEL_FLOAT — 2 of 260'))).toBe(true)
    expect(a.summary.some((l) => l.startsWith('INFO MIXED_DATATYPES'))).toBe(true)
    const s210 = a.stats.find((s) => s.id === 'hippocampus_210')!
    expect(s210.max[0]).toBeCloseTo(1.7043e6, -3)
  })

  it('cancellation stops the audit with a CANCELLED error', async () => {
    const controller = new AbortController()
    let seen = 0
    await expect(
      svc.auditDataset('hippocampus', {
        signal: controller.signal,
        onProgress: (done) => {
          seen = done
          if (done === 10) controller.abort()
        },
      }),
    ).rejects.toMatchObject({ code: 'CANCELLED' })
    expect(seen).toBeLessThan(260)
  })

  it('splits: k-fold saved with a hash; an edited file is checked, leakage rejected', async () => {
    const s = await svc.createSplit('hippocampus', { folds: 5, seed: 0 })
    expect(s.folds.map((f) => f.val.length)).toEqual([52, 52, 52, 52, 52])
    const file = splitPath(ws, 'hippocampus', s.name)
    const json = JSON.parse(readFileSync(file, 'utf8'))
    const moved = json.folds[0].val.pop()
    json.folds[1].val.push(moved)
    json.folds[1].train = json.folds[1].train.filter((x: string) => x !== moved)
    json.folds[0].train.push(moved)
    writeFileSync(file, JSON.stringify(json))
    const r = await svc.getSplit('hippocampus', s.name)
    expect(r.edited).toBe(true)
    expect(r.split.hash).not.toBe(s.hash)
    json.folds[2].train.push(json.folds[2].val[0])
    writeFileSync(file, JSON.stringify(json))
    await expect(svc.getSplit('hippocampus', s.name)).rejects.toThrow(
      /in both train and val of fold 2/,
    )
    expect((await svc.listSplits('hippocampus'))[0].folds).toBe(5)
  })

  it('a damaged manifest is reported, never used', async () => {
    const file = manifestPath(ws, 'hippocampus')
    const text = readFileSync(file, 'utf8')
    writeFileSync(file, text.slice(0, 500))
    await expect(svc.getDataset('hippocampus')).rejects.toThrow(
      /manifest.json: the file is damaged/,
    )
    const list = await svc.listDatasets()
    expect(list.broken.map((b) => b.id)).toEqual(['hippocampus'])
    writeFileSync(file, text.replaceAll('"Anterior"', '"Front"'))
    await expect(svc.getDataset('hippocampus')).rejects.toThrow(/content hash mismatch/)
    writeFileSync(file, text)
  })
})

describe('bad input and the cache', () => {
  it('skips a case whose label grid differs and one with labels outside the map; imports the rest', async () => {
    const d = join(root, 'bad-pairs')
    mkdirSync(join(d, 'images'), { recursive: true })
    mkdirSync(join(d, 'labels'), { recursive: true })
    for (const id of ['001', '004', '006'])
      copyFileSync(
        join(HIPPO, `imagesTr/hippocampus_${id}.nii.gz`),
        join(d, `images/c${id}.nii.gz`),
      )
    copyFileSync(join(HIPPO, 'labelsTr/hippocampus_001.nii.gz'), join(d, 'labels/c001.nii.gz'))
    copyFileSync(join(HIPPO, 'labelsTr/hippocampus_001.nii.gz'), join(d, 'labels/c004.nii.gz')) // wrong grid
    const lab = await readNifti(join(HIPPO, 'labelsTr/hippocampus_006.nii.gz'))
    lab.data[0] = 7
    await writeNifti(join(d, 'labels/c006.nii.gz'), lab)
    const svc = new DatasetService(ws)
    const r = await svc.importDataset(d, {
      layout: 'pairs',
      rule: parsePairRule('images/{id}.nii.gz=labels/{id}.nii.gz'),
      labelMap: { classes: { 0: 'bg', 1: 'a', 2: 'p' } },
    })
    expect(r.imported).toBe(2)
    expect(r.skipped).toBe(1)
    const grid = r.problems.find((p) => p.code === 'LABEL_GRID_MISMATCH')!
    expect(grid.message).toMatch(
      /labels\/c004.nii.gz: label shape 35×51×35 does not match the image .*c004.nii.gz \(36×52×38\)/,
    )
    const unmapped = r.problems.find((p) => p.code === 'LABEL_UNMAPPED')!
    expect(unmapped.message).toMatch(
      /labels\/c006.nii.gz: label value\(s\) 7 are outside the label map/,
    )
    await expect(
      svc.loadCase(r.manifest.id, 'c006', {
        spacing: null,
        reorient: true,
        intensity: { kind: 'zscore' },
      }),
    ).rejects.toThrow(/c006.nii.gz: label value\(s\) 7 \(1 voxels\)/)
    // Remap 7 → 0 and the case loads; the second load comes from the cache.
    await svc.setLabelMap(r.manifest.id, {
      classes: { 0: 'bg', 1: 'a', 2: 'p' },
      remap: { 0: 0, 1: 1, 2: 2, 7: 0 },
    })
    const settings = { spacing: null, reorient: true, intensity: { kind: 'zscore' as const } }
    const a = await svc.loadCase(r.manifest.id, 'c006', settings)
    const b = await svc.loadCase(r.manifest.id, 'c006', settings)
    expect(a.label![0]).toBe(0)
    expect(Array.from(b.image.subarray(0, 50))).toEqual(Array.from(a.image.subarray(0, 50)))
    expect(b.inverse).toEqual(a.inverse)
  })
})
