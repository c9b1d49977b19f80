/**
 * Export (NIfTI with class or stored values, DICOM SEG when the source is a DICOM series) and
 * the self-contained HTML report.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readDicomSeg, readDicomSeries } from '../../../main/data/dicom'
import { readNifti } from '../../../main/data/nifti'
import {
  compareTables,
  evaluatePredictions,
  type EvaluationTable,
} from '../../../main/services/evaluation'
import { classToSourceValues, exportPredictions } from '../../../main/services/export'
import { writeLabelNifti, type PredictionsManifest } from '../../../main/services/inference'
import { escapeHtml, loadReportRun, renderReport, writeReport } from '../../../main/services/report'
import { runFiles } from '../../../main/workspace/run-layout'
import { createRun } from '../../../main/workspace/runs'
import { atomicWriteJson } from '../../../main/workspace/atomic'
import { sharedPath, tmpDir } from '../../helpers/shared'
import { goldenFolder, python, testRunConfig } from '../../helpers/inference'

const TMP = tmpDir('export-report')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

const DICOM = () =>
  sharedPath('data', 'dicom-samples', 'tcia-brain-tumor-progression_PGBM-001_19911119')

describe('exportPredictions', () => {
  let dicomDir = ''
  beforeAll(async () => {
    // A prediction made from the DICOM series: the tumour mask on the T1post grid.
    const ref = await readDicomSeries(join(DICOM(), 'T1post'))
    const mask = await readDicomSeries(join(DICOM(), 'MaskTumor'))
    const data = Uint8Array.from(mask.data, (v) => (v > 0 ? 1 : 0))
    dicomDir = join(TMP, 'dicom-pred')
    await writeLabelNifti(join(dicomDir, 'PGBM-001.nii.gz'), data, ref.shape, ref.affine)
    const m: PredictionsManifest = {
      format: 'dsd-predictions',
      version: 1,
      createdAt: new Date().toISOString(),
      datasetId: null,
      runIds: ['r-dicom'],
      fold: null,
      which: 'last',
      models: [],
      settings: { overlap: 0.25, blend: 'constant', tta: false, swBatch: 1 },
      preprocessing: { spacing: null, reorient: true, intensity: { kind: 'zscore' } },
      preprocessingHash: 'test',
      labelMap: { classes: { '0': 'background', '1': 'tumour' }, remap: { '0': 0, '255': 1 } },
      classes: 2,
      cases: [
        {
          caseId: 'PGBM-001',
          file: 'PGBM-001.nii.gz',
          preprocessedFile: null,
          images: [join(DICOM(), 'T1post')],
          label: null,
          sourceFormat: 'dicom',
          shape: ref.shape,
          affine: ref.affine,
          preprocessedShape: ref.shape,
          seconds: 0,
        },
      ],
    }
    await atomicWriteJson(join(dicomDir, 'predictions.json'), m)
  })

  it('writes a DICOM SEG that references the source series and reads back to the same mask', async () => {
    const res = await exportPredictions(dicomDir, join(TMP, 'out-dicom'), {
      formats: ['nifti', 'dicom-seg'],
    })
    expect(res.unavailable).toEqual([])
    const c = res.cases[0]
    expect(c.dicomSeg).toMatch(/PGBM-001\.seg\.dcm$/)
    const ref = await readDicomSeries(join(DICOM(), 'T1post'))
    const seg = await readDicomSeg(c.dicomSeg!, ref)
    expect(seg.segments.map((s) => [s.number, s.label])).toEqual([[1, 'tumour']])
    expect(seg.framesByUid).toBeGreaterThan(0)
    const pred = await readNifti(join(dicomDir, 'PGBM-001.nii.gz'))
    expect([...seg.volume.data]).toEqual([...pred.data])
    expect([...pred.data].filter((v) => v === 1).length).toBe(2641) // SOURCE.md: 2641 tumour voxels
    // The exported NIfTI has the DICOM series' geometry, which is dcm2niix's.
    const nii = await readNifti(c.nifti!)
    const d2n = await readNifti(
      sharedPath('data', 'tcia-brain-tumor-progression', 'imagesTr', 'PGBM-001_19911119.nii.gz'),
    )
    expect(nii.shape).toEqual(d2n.shape)
    for (let r = 0; r < 3; r++)
      for (let k = 0; k < 4; k++)
        expect(Math.abs(nii.affine[r][k] - d2n.affine[r][k])).toBeLessThan(1e-3)
    const summary = JSON.parse(readFileSync(join(TMP, 'out-dicom', 'export.json'), 'utf8'))
    expect(summary.cases[0].dicomSeg).toBe('PGBM-001.seg.dcm')
  })

  it('maps classes back to the stored label values on request', async () => {
    expect(
      classToSourceValues(
        {
          classes: { '0': 'bg', '1': 'a', '2': 'b' },
          remap: { '0': 0, '421': 0, '205': 1, '500': 2 },
        },
        3,
      ),
    ).toEqual([0, 205, 500])
    const res = await exportPredictions(dicomDir, join(TMP, 'out-values'), { values: 'source' })
    const nii = await readNifti(res.cases[0].nifti!)
    expect(nii.datatype).toBe('uint8')
    expect(new Set(nii.data)).toEqual(new Set([0, 255]))
  })

  it('says clearly that DICOM SEG is not available for a NIfTI source', async () => {
    const dir = await goldenFolder(TMP, 'nifti-src', 'msd-task04-hippocampus', 3, 0, [
      { id: 'hippocampus_033', pred: 'hippocampus_033_erode_l2', gt: 'hippocampus_033' },
    ])
    const res = await exportPredictions(dir, join(TMP, 'out-nifti'), { formats: ['dicom-seg'] })
    expect(res.cases[0].dicomSeg).toBeNull()
    expect(res.unavailable).toHaveLength(1)
    expect(res.unavailable[0].reason).toMatch(/^not available: .*NIfTI/)
    await expect(exportPredictions(dir, dir)).rejects.toMatchObject({ code: 'EXPORT_SAME_FOLDER' })
  })
})

describe('HTML report', () => {
  const WS = join(TMP, 'ws')
  let a: EvaluationTable
  let b: EvaluationTable
  beforeAll(async () => {
    const dirA = await goldenFolder(TMP, 'repA', 'msd-task04-hippocampus', 3, 0, [
      { id: 'hippocampus_001', pred: 'hippocampus_001_shift1', gt: 'hippocampus_001' },
      { id: 'hippocampus_033', pred: 'hippocampus_033_erode_l2', gt: 'hippocampus_033' },
      { id: 'hippocampus_243', pred: 'hippocampus_243_drop_l2', gt: 'hippocampus_243' },
    ])
    const dirB = await goldenFolder(TMP, 'repB', 'msd-task04-hippocampus', 3, 0, [
      { id: 'hippocampus_001', pred: 'hippocampus_001_noise', gt: 'hippocampus_001' },
      { id: 'hippocampus_033', pred: 'hippocampus_033_swap_block', gt: 'hippocampus_033' },
    ])
    a = await evaluatePredictions(dirA, { voxelUnits: true })
    b = await evaluatePredictions(dirB, { voxelUnits: true })
    // A run folder with a config, a state and a log.
    mkdirSync(WS, { recursive: true })
    await createRun(WS, testRunConfig({ id: 'basic-f0', datasetId: 'hippo', split: 'k5' }))
    const log = [1, 2, 3].map((epoch) => ({
      epoch,
      lr: 1e-3 / epoch,
      loss: { total: 3 / epoch, dce_Y: 1 / epoch },
      steps: 4,
      ...(epoch > 1
        ? {
            valDice: { '1': 0.5 + epoch / 10, '2': 0.4 + epoch / 10 },
            valMeanDice: 0.45 + epoch / 10,
          }
        : {}),
    }))
    writeFileSync(runFiles(WS, 'basic-f0').log, log.map((l) => JSON.stringify(l)).join('\n') + '\n')
  })

  it('is self-contained, well-formed and holds the config, curves, box plots and every per-case row', async () => {
    const run = await loadReportRun(WS, 'basic-f0')
    expect(run.log).toHaveLength(3)
    const cmp = compareTables(a, b)
    const file = await writeReport(join(TMP, 'report.html'), {
      title: 'Basic vs DSD',
      runs: [run],
      table: a,
      comparison: { b, result: cmp },
    })
    const html = readFileSync(file, 'utf8')
    expect(html).not.toMatch(/https?:/i)
    expect(html).not.toMatch(/<script/i)
    expect(html).not.toMatch(/<link|@import|url\(/i)
    expect(html).not.toMatch(/\bsrc=/i)
    // Well-formed: a strict XML parser reads it (and finds the per-case rows).
    const parsed = python(
      `import sys, json, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
rows = [tr for tr in root.iter('tr') if tr.get('class') == 'case']
print(json.dumps({"rows": len(rows), "svgs": len(list(root.iter('svg'))), "first": [td.text for td in rows[0].findall('td')][:4]}))`,
      [file],
    ) as { rows: number; svgs: number; first: string[] }
    expect(parsed.rows).toBe(a.rows.length + b.rows.length)
    expect(parsed.svgs).toBeGreaterThanOrEqual(3 + 4 + 4 + 2)
    expect(parsed.first[0]).toBe('hippocampus_001')
    for (const r of a.rows) expect(html).toContain(`<td>${r.caseId}</td>`)
    expect(html).toContain('Training loss')
    expect(html).toContain('Validation Dice')
    expect(html).toContain('basic-f0')
    expect(html).toContain('optimizer.lr')
    // the comparison: the Wilcoxon p of label 1 Dice (two pairs, both worse: p = 0.5)
    expect(cmp.labels['1'].dice.wilcoxon!.pvalue).toBeCloseTo(0.5, 12)
    expect(html).toMatch(
      /<td>1 L1<\/td><td>dice<\/td><td>2<\/td>(<td>[^<]*<\/td>){4}<td>0\.5000<\/td>/,
    )
  })

  it('escapes every string it puts into the page', () => {
    const evil = '<script>alert("x")</script> & \'quote\''
    const t: EvaluationTable = {
      ...a,
      name: evil,
      labels: { '1': evil, '2': 'L2' },
      rows: a.rows.map((r) => ({ ...r, labelName: evil, reason: evil })),
    }
    const html = renderReport({
      title: evil,
      runs: [{ runId: evil, config: null, log: [] }],
      table: t,
    })
    expect(html).not.toContain('<script>')
    expect(html).toContain(escapeHtml(evil))
    expect(escapeHtml(evil)).toBe(
      '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quote&#39;',
    )
    const file = join(TMP, 'evil.html')
    writeFileSync(file, html)
    const ok = python(
      `import sys, json, xml.etree.ElementTree as ET\nET.parse(sys.argv[1]); print(json.dumps(True))`,
      [file],
    )
    expect(ok).toBe(true)
  })
})
