/**
 * The Review commands and the volume data channel on a real workspace: a hippocampus dataset
 * imported, a run's prediction set and an ensemble set written as `dsd predict` writes them,
 * evaluated as `dsd evaluate` does, and a TCIA (oblique, L-A-S) file set. Checks what the
 * viewer gets — geometry in LPS, voxels, labels as classes — against the NIfTI files, the
 * outlier rule, path validation and the server route; and that none of it writes.
 */
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readNifti, writeNifti } from '../../../main/data/nifti'
import type { Mat4 } from '../../../main/data/volume'
import { DatasetService } from '../../../main/services/datasets'
import { evaluatePredictions, evaluateRun, readTable, writeTable } from '../../../main/services/evaluation'
import type { PredictionsManifest } from '../../../main/services/inference'
import { getMetrics, labelColor, listPredictionSets, reviewCase } from '../../../main/services/review'
import { parseVolumePath, readViewerVolume, volumePath } from '../../../main/services/volumes'
import { startServer } from '../../../main/server'
import { atomicWriteJson } from '../../../main/workspace/atomic'
import { runFiles } from '../../../main/workspace/run-layout'
import { createRun } from '../../../main/workspace/runs'
import { decodeVolume } from '../../../renderer/src/viewer/volume-format'
import { miniMsd, testRunConfig } from '../../helpers/inference'
import { writeShiftedSet } from '../../helpers/review'
import { sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('review')
const WS = join(TMP, 'ws')
const CASES = ['hippocampus_001', 'hippocampus_003', 'hippocampus_004', 'hippocampus_006']
let datasetId = ''

/** World (LPS) of voxel (i, j, k) from a NIfTI affine (RAS). */
function lpsOf(a: Mat4, i: number, j: number, k: number): number[] {
  const w = [0, 1, 2].map((r) => a[r][0] * i + a[r][1] * j + a[r][2] * k + a[r][3])
  return [-w[0], -w[1], w[2]]
}

/** World (LPS) of voxel (i, j, k) from the viewer header. */
function lpsOfHeader(h: { origin: number[]; spacing: number[]; direction: number[] }, i: number, j: number, k: number) {
  const ijk = [i, j, k]
  return [0, 1, 2].map((r) => h.origin[r] + ijk.reduce((s, v, c) => s + v * h.spacing[c] * h.direction[c * 3 + r], 0))
}

async function writeSet(dir: string, ids: string[], fold: number | null, runIds: string[], shift: number, empty: string[] = []) {
  await writeShiftedSet(dir, { datasetId, cases: ids, fold, runIds, shift, empty })
}

/** A decoded label block put back into its full grid. */
function full(v: ReturnType<typeof decodeVolume>): Uint8Array {
  const [gx, gy, gz] = v.header.gridDims
  const [bx, by, bz] = v.header.dims
  const [ox, oy, oz] = v.header.offset
  const out = new Uint8Array(gx * gy * gz)
  for (let k = 0; k < bz; k++)
    for (let j = 0; j < by; j++)
      for (let i = 0; i < bx; i++) out[((k + oz) * gy + j + oy) * gx + i + ox] = v.data[(k * by + j) * bx + i]
  return out
}

/** Every file under the workspace with its size and mtime (to show that reads never write). */
function snapshot(root: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else out.push(`${relative(root, p)} ${statSync(p).size} ${statSync(p).mtimeMs}`)
    }
  }
  walk(root)
  return out.sort()
}

beforeAll(async () => {
  mkdirSync(WS, { recursive: true })
  const src = miniMsd(join(TMP, 'src'), 'msd-task04-hippocampus', CASES)
  const svc = new DatasetService(WS)
  datasetId = (await svc.importDataset(src, { name: 'hippo-review' })).manifest.id
  await svc.createSplit(datasetId, { folds: 2, seed: 0, name: 'k2' })
  await createRun(WS, testRunConfig({ id: 'r1', datasetId, split: 'k2', variant: 'Basic' }))
  // The run's set: shifted by one voxel, one empty prediction; evaluated as `dsd evaluate --run r1`.
  await writeSet(join(runFiles(WS, 'r1').predictions, 'last'), CASES, 0, ['r1'], 1, ['hippocampus_004'])
  await writeTable(await evaluateRun(WS, 'r1', { name: 'last-original' }), runFiles(WS, 'r1').metrics, 'last-original')
  // An ensemble set, evaluated as `dsd evaluate --dir`.
  const ens = join(WS, 'predictions', 'ens')
  await writeSet(ens, CASES.slice(0, 2), null, ['r1', 'r2'], 2)
  const t = await evaluatePredictions(ens, { workspace: WS })
  await writeTable(t, join(ens, 'metrics'), t.name)
  // A set that is not evaluated, and one whose manifest is damaged.
  await writeSet(join(runFiles(WS, 'r1').predictions, 'best'), CASES.slice(0, 1), 0, ['r1'], 0)
  mkdirSync(join(WS, 'predictions', 'broken'), { recursive: true })
  writeFileSync(join(WS, 'predictions', 'broken', 'predictions.json'), '{ not json')
  // TCIA: oblique L-A-S files, predicted from files (no dataset).
  const tcia = join(WS, 'predictions', 'tcia')
  mkdirSync(tcia, { recursive: true })
  const id = 'PGBM-003_19950329'
  const img = sharedPath('data', 'tcia-brain-tumor-progression', 'imagesTr', `${id}.nii.gz`)
  const lab = sharedPath('data', 'tcia-brain-tumor-progression', 'labelsTr', `${id}.nii.gz`)
  copyFileSync(lab, join(tcia, `${id}.nii.gz`))
  const v = await readNifti(lab)
  await atomicWriteJson(join(tcia, 'predictions.json'), {
    format: 'dsd-predictions',
    version: 1,
    createdAt: new Date().toISOString(),
    datasetId: null,
    runIds: [],
    fold: null,
    which: null,
    models: [],
    settings: { overlap: 0.25, blend: 'constant', tta: false, swBatch: 1 },
    preprocessing: { spacing: null, reorient: true, intensity: { kind: 'zscore' } },
    preprocessingHash: 'x',
    labelMap: { classes: { '0': 'background', '1': 'tumor' } },
    classes: 2,
    cases: [
      { caseId: id, file: `${id}.nii.gz`, preprocessedFile: null, images: [img], label: lab, sourceFormat: 'nifti', shape: v.shape, affine: v.affine, preprocessedShape: v.shape, seconds: 0 },
    ],
  } satisfies PredictionsManifest)
})
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

describe('predictions.list', () => {
  it('lists run and ensemble sets with their cases and tables; a damaged set is a problem, not a failure', async () => {
    const before = snapshot(WS)
    const { sets, problems } = await listPredictionSets(WS)
    expect(sets.map((s) => s.key).sort()).toEqual(['ensemble:ens', 'ensemble:tcia', 'run:r1/best', 'run:r1/last'])
    const last = sets.find((s) => s.key === 'run:r1/last')!
    expect(last).toMatchObject({ ref: { kind: 'run', runId: 'r1', set: 'last' }, datasetId, variant: 'Basic', fold: 0, classes: 3 })
    expect(last.cases.map((c) => c.caseId)).toEqual(CASES)
    expect(last.metrics).toMatchObject([{ name: 'last-original', grid: 'original', cases: 4 }])
    expect(sets.find((s) => s.key === 'run:r1/best')!.metrics).toEqual([])
    expect(sets.find((s) => s.key === 'ensemble:ens')!.metrics.length).toBe(1)
    expect(problems).toHaveLength(1)
    expect(problems[0].where).toBe('ensemble:broken')
    expect(problems[0].message).toMatch(/predictions\.json: the file is damaged.*dsd predict/)
    expect(snapshot(WS)).toEqual(before)
  })
})

describe('metrics.get', () => {
  it('returns the table dsd evaluate wrote, with the outlier flags and summaries', async () => {
    const m = await getMetrics(WS, { kind: 'run', runId: 'r1', set: 'last' })
    const t = await readTable(join(runFiles(WS, 'r1').metrics, 'last-original.json'))
    expect(m.table).toBe('last-original')
    expect(m.rows.map((r) => [r.caseId, r.label, r.dice, r.hd95, r.assd, r.nsd])).toEqual(
      t.rows.map((r) => [r.caseId, r.label, r.dice, r.hd95, r.assd, r.nsd]),
    )
    expect(m.labels).toEqual([
      { value: 1, name: 'Anterior' },
      { value: 2, name: 'Posterior' },
    ])
    // The empty prediction is flagged on both labels; nothing else falls below median − 2 IQR
    // unless its Dice says so.
    for (const r of m.rows) {
      const th = m.thresholds.find((x) => x.label === r.label)!
      const expected = r.emptyPrediction ? 'empty-prediction' : r.dice! < th.lowDice! ? 'low-dice' : null
      expect(r.outlier).toBe(expected)
    }
    expect(m.rows.filter((r) => r.outlier === 'empty-prediction').map((r) => r.caseId)).toEqual([
      'hippocampus_004',
      'hippocampus_004',
    ])
    const d1 = t.summary.labels['1'].dice
    const th1 = m.thresholds.find((x) => x.label === 1)!
    expect(th1.median).toBe(d1.median)
    expect(th1.lowDice).toBeCloseTo(d1.median! - 2 * (d1.box!.q3 - d1.box!.q1), 12)
    expect(m.summary['1'].dice.mean).toBe(d1.mean)
    expect(m.summary['1'].dice.std).toBe(d1.std)
    expect(m.summary.all.dice.mean).toBe(t.summary.overall.dice.mean)
  })

  it('a set that is not evaluated says how to evaluate it', async () => {
    await expect(getMetrics(WS, { kind: 'run', runId: 'r1', set: 'best' })).rejects.toMatchObject({
      code: 'METRICS_NOT_FOUND',
      message: expect.stringContaining('dsd evaluate --run r1 --predictions best'),
    })
    await expect(getMetrics(WS, { kind: 'run', runId: 'r1', set: 'nope' })).rejects.toMatchObject({
      code: 'PREDICTIONS_NOT_FOUND',
    })
  })
})

describe('review.case and the volumes', () => {
  it('gives the dataset label names and colours and paths through the dataset', async () => {
    const c = await reviewCase(WS, { kind: 'run', runId: 'r1', set: 'last' }, 'hippocampus_003')
    expect(c.labels).toEqual([
      { value: 1, name: 'Anterior', color: labelColor(1) },
      { value: 2, name: 'Posterior', color: labelColor(2) },
    ])
    expect(c.channels).toEqual(['MRI'])
    expect(c.modality).toEqual(['MR'])
    expect(c.volumes).toEqual({
      images: [`dataset/${datasetId}/hippocampus_003/image/0`],
      groundTruth: `dataset/${datasetId}/hippocampus_003/label`,
      prediction: 'run/r1/last/hippocampus_003/prediction',
    })
    expect([c.index, c.count]).toEqual([1, 4])
    await expect(reviewCase(WS, { kind: 'run', runId: 'r1', set: 'last' }, 'nope')).rejects.toMatchObject({
      code: 'CASE_NOT_FOUND',
    })
  })

  it('image, ground truth and prediction decode to the file voxels with the exact geometry in LPS', async () => {
    const c = await reviewCase(WS, { kind: 'run', runId: 'r1', set: 'last' }, 'hippocampus_001')
    const img = await readNifti(sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', 'hippocampus_001.nii.gz'))
    const gt = await readNifti(sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', 'hippocampus_001.nii.gz'))
    const pred = await readNifti(join(runFiles(WS, 'r1').predictions, 'last', 'hippocampus_001.nii.gz'))
    const decode = async (p: string) => {
      const e = await readViewerVolume(WS, p)
      const buf = new Uint8Array(e.bytes)
      buf.set(e.parts[0])
      buf.set(e.parts[1], e.parts[0].length)
      return decodeVolume(buf.buffer)
    }
    const vi = await decode(c.volumes.images[0])
    expect(vi.header.kind).toBe('image')
    expect(vi.header.dims).toEqual(img.shape)
    expect(['int16', 'uint8', 'float32']).toContain(vi.header.dtype)
    expect(Array.from(vi.data)).toEqual(Array.from(img.data))
    expect(vi.header.p1).toBeLessThan(vi.header.p99)
    expect(vi.header.min).toBe(Math.min(...img.data))
    expect(vi.header.max).toBe(Math.max(...img.data))
    for (const [i, j, k] of [[0, 0, 0], [3, 7, 11], [img.shape[0] - 1, img.shape[1] - 1, img.shape[2] - 1]]) {
      const a = lpsOf(img.affine, i, j, k)
      const b = lpsOfHeader(vi.header, i, j, k)
      for (let r = 0; r < 3; r++) expect(b[r]).toBeCloseTo(a[r], 4)
    }
    expect(vi.header).toMatchObject({ offset: [0, 0, 0], gridDims: img.shape })
    // Label maps come as the block around their labels (2 voxels of margin) on the same lattice.
    const vg = await decode(c.volumes.groundTruth!)
    expect(vg.header).toMatchObject({ kind: 'label', dtype: 'uint8', max: 2, gridDims: img.shape })
    expect(Array.from(full(vg))).toEqual(Array.from(gt.data))
    expect(vg.header.dims[0] * vg.header.dims[1] * vg.header.dims[2]).toBeLessThan(gt.data.length / 2)
    const [bi, bj, bk] = vg.header.offset
    expect(Math.min(bi, bj, bk)).toBeGreaterThanOrEqual(0)
    expect(lpsOfHeader(vg.header, 0, 0, 0)).toEqual(lpsOfHeader(vi.header, bi, bj, bk))
    const vp = await decode(c.volumes.prediction)
    expect(vp.header).toMatchObject({ kind: 'prediction', dtype: 'uint8', gridDims: img.shape })
    expect(Array.from(full(vp))).toEqual(Array.from(pred.data))
  })

  it('a left-handed (L-A-S, oblique) file is sent right-handed with the same voxel centres', async () => {
    const c = await reviewCase(WS, { kind: 'ensemble', name: 'tcia' }, 'PGBM-003_19950329')
    expect(c.volumes.images).toEqual(['ensemble/tcia/PGBM-003_19950329/image/0'])
    expect(c.labels).toEqual([{ value: 1, name: 'tumor', color: labelColor(1) }])
    const e = await readViewerVolume(WS, c.volumes.images[0])
    const buf = new Uint8Array(e.bytes)
    buf.set(e.parts[0])
    buf.set(e.parts[1], e.parts[0].length)
    const v = decodeVolume(buf.buffer)
    const src = await readNifti(sharedPath('data', 'tcia-brain-tumor-progression', 'imagesTr', 'PGBM-003_19950329.nii.gz'))
    const [nx, ny, nz] = src.shape
    const d = v.header.direction
    const cross = [d[1] * d[5] - d[2] * d[4], d[2] * d[3] - d[0] * d[5], d[0] * d[4] - d[1] * d[3]]
    expect(cross[0] * d[6] + cross[1] * d[7] + cross[2] * d[8]).toBeCloseTo(1, 6) // right-handed
    for (const [i, j, k] of [[0, 0, 0], [100, 200, 5], [nx - 1, ny - 1, nz - 1]]) {
      const kk = nz - 1 - k // the file's slice shown as slice k
      const a = lpsOf(src.affine, i, j, kk)
      const b = lpsOfHeader(v.header, i, j, k)
      for (let r = 0; r < 3; r++) expect(b[r]).toBeCloseTo(a[r], 3)
      expect(v.data[(k * ny + j) * nx + i]).toBe(src.data[(kk * ny + j) * nx + i])
    }
  })

  it('multi-channel images: each channel of a 4D file, or one file per channel', async () => {
    const src = await readNifti(sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', 'hippocampus_001.nii.gz'))
    const n = src.data.length
    const both = new Float32Array(2 * n)
    for (let i = 0; i < n; i++) {
      both[i] = src.data[i]
      both[n + i] = 2 * src.data[i] + 0.5 // not integral: sent as float32
    }
    const dir = join(WS, 'predictions', 'multi')
    mkdirSync(dir, { recursive: true })
    const four = join(TMP, 'two-channel.nii.gz')
    await writeNifti(four, { ...src, channels: 2, datatype: 'float32', data: both })
    copyFileSync(join(runFiles(WS, 'r1').predictions, 'last', 'hippocampus_001.nii.gz'), join(dir, 'a.nii.gz'))
    copyFileSync(join(runFiles(WS, 'r1').predictions, 'last', 'hippocampus_001.nii.gz'), join(dir, 'b.nii.gz'))
    const file = (id: string, images: string[]) => ({
      caseId: id, file: `${id}.nii.gz`, preprocessedFile: null, images, label: null, sourceFormat: 'nifti' as const,
      shape: src.shape, affine: src.affine, preprocessedShape: src.shape, seconds: 0,
    })
    const img = sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', 'hippocampus_001.nii.gz')
    const img3 = sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', 'hippocampus_003.nii.gz')
    await atomicWriteJson(join(dir, 'predictions.json'), {
      format: 'dsd-predictions', version: 1, createdAt: new Date().toISOString(), datasetId: null, runIds: [], fold: null,
      which: null, models: [], settings: { overlap: 0.25, blend: 'constant', tta: false, swBatch: 1 },
      preprocessing: { spacing: null, reorient: true, intensity: { kind: 'zscore' } }, preprocessingHash: 'x',
      labelMap: { classes: { '0': 'background', '1': 'Anterior', '2': 'Posterior' } }, classes: 3,
      cases: [file('a', [four]), file('b', [img, img3])],
    } satisfies PredictionsManifest)
    const ref = { kind: 'ensemble' as const, name: 'multi' }
    const a = await reviewCase(WS, ref, 'a')
    expect(a.channels).toEqual(['channel 0', 'channel 1'])
    expect(a.volumes.images).toEqual(['ensemble/multi/a/image/0', 'ensemble/multi/a/image/1'])
    expect(a.volumes.groundTruth).toBeNull()
    const decode = async (p: string) => {
      const e = await readViewerVolume(WS, p)
      const buf = new Uint8Array(e.bytes)
      buf.set(e.parts[0])
      buf.set(e.parts[1], e.parts[0].length)
      return decodeVolume(buf.buffer)
    }
    const c0 = await decode(a.volumes.images[0])
    const c1 = await decode(a.volumes.images[1])
    expect(c0.header).toMatchObject({ channel: 0, channels: 2, dtype: 'int16' })
    expect(c1.header).toMatchObject({ channel: 1, channels: 2, dtype: 'float32' })
    expect(Array.from(c0.data)).toEqual(Array.from(src.data))
    expect(Array.from(c1.data)).toEqual(Array.from(both.subarray(n)))
    // One file per channel: channel 1 is the second file.
    const b = await reviewCase(WS, ref, 'b')
    expect(b.channels).toEqual(['channel 0', 'channel 1'])
    const b1 = await decode(b.volumes.images[1])
    const third = await readNifti(img3)
    expect(b1.header.dims).toEqual(third.shape)
    expect(Array.from(b1.data)).toEqual(Array.from(third.data))
    await expect(readViewerVolume(WS, 'ensemble/multi/a/image/2')).rejects.toMatchObject({ code: 'CHANNEL_NOT_FOUND' })
  })

  it('volume paths round-trip and anything else is refused', async () => {
    const ref = { source: { kind: 'run' as const, runId: 'r1', set: 'last' }, caseId: 'a b/c', what: 'prediction' as const, channel: 0 }
    expect(volumePath(ref)).toBe('run/r1/last/a%20b%2Fc/prediction')
    expect(parseVolumePath(volumePath(ref))).toEqual(ref)
    for (const bad of [
      '../x',
      'dataset/../../etc/image/0',
      'run/r1/../x/prediction',
      'run/..%2F../last/c/prediction',
      'dataset/ds/case/prediction',
      'dataset/ds/case/image/abc',
      'dataset/ds/case/image/0/extra',
      'dataset/ds/case/mask',
      'dataset/ds%00/case/label',
      'files/etc/passwd',
    ]) {
      expect(() => parseVolumePath(bad), bad).toThrow(/volume path/)
    }
    await expect(readViewerVolume(WS, `dataset/${datasetId}/nope/label`)).rejects.toMatchObject({ code: 'CASE_NOT_FOUND' })
    await expect(readViewerVolume(WS, `dataset/${datasetId}/hippocampus_001/image/3`)).rejects.toMatchObject({
      code: 'CHANNEL_NOT_FOUND',
    })
  })

  it('the browser-mode route needs the token and answers errors as JSON', async () => {
    const server = await startServer({ port: 0, staticDir: TMP, workspace: WS, token: 'tok' })
    try {
      const path = `dataset/${datasetId}/hippocampus_001/label`
      expect((await fetch(`${server.origin}/volume/${path}`)).status).toBe(401)
      const ok = await fetch(`${server.origin}/volume/${path}`, { headers: { 'X-DSD-Token': 'tok' } })
      expect(ok.status).toBe(200)
      const v = decodeVolume(await ok.arrayBuffer())
      expect(v.header.kind).toBe('label')
      const missing = await fetch(`${server.origin}/volume/dataset/${datasetId}/nope/label`, { headers: { 'X-DSD-Token': 'tok' } })
      expect(missing.status).toBe(404)
      expect(await missing.json()).toMatchObject({ code: 'CASE_NOT_FOUND' })
      const bad = await fetch(`${server.origin}/volume/files/etc/passwd`, { headers: { 'X-DSD-Token': 'tok' } })
      expect(bad.status).toBe(400)
    } finally {
      await server.close()
    }
  })
})
