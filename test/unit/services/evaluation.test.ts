/**
 * Evaluation tables, summaries, comparisons and CSV, on predictions folders built from the
 * golden perturbed predictions (shared/golden/metrics): the per-case values must equal the
 * independent SciPy reference values, in mm and in voxel units, on the original grid and on
 * the preprocessed (RAS) grid.
 */
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readNifti } from '../../../main/data/nifti'
import { computeMetrics } from '../../../main/metrics'
import {
  combineTables,
  compareTables,
  comparisonSummaryToCsv,
  csvField,
  evaluatePredictions,
  readTable,
  summaryToCsv,
  tableToCsv,
  writeComparison,
  writeTable,
  type EvaluationTable,
} from '../../../main/services/evaluation'
import { sharedPath, tmpDir } from '../../helpers/shared'
import { goldenFolder } from '../../helpers/inference'

const TMP = tmpDir('evaluation')
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

interface Golden {
  prediction: string
  ground_truth: string
  labels: Record<string, Record<string, number | null | boolean>>
  labels_voxel_units: Record<string, Record<string, number | null | boolean>>
}
const GOLDEN: Golden[] = JSON.parse(
  readFileSync(sharedPath('golden', 'metrics', 'expected.json'), 'utf8'),
).cases
const golden = (pred: string) => GOLDEN.find((g) => g.prediction.endsWith(`pred_${pred}.nii.gz`))!

const HIPPO = 'msd-task04-hippocampus'
const TCIA = 'tcia-brain-tumor-progression'

function parseCsv(text: string): Record<string, string>[] {
  const lines = text.trim().split('\n')
  const split = (l: string) => {
    const out: string[] = []
    let cur = ''
    let q = false
    for (let i = 0; i < l.length; i++) {
      const ch = l[i]
      if (q) {
        if (ch === '"' && l[i + 1] === '"') {
          cur += '"'
          i++
        } else if (ch === '"') q = false
        else cur += ch
      } else if (ch === '"') q = true
      else if (ch === ',') {
        out.push(cur)
        cur = ''
      } else cur += ch
    }
    out.push(cur)
    return out
  }
  const header = split(lines[0])
  return lines.slice(1).map((l) => Object.fromEntries(split(l).map((v, i) => [header[i], v])))
}

const close = (a: number | null | undefined, b: unknown) => {
  if (b === null || b === undefined) expect(a).toBeNull()
  else expect(a).toBeCloseTo(b as number, 9)
}

let hippoA = ''
let hippoB = ''
let tcia = ''
beforeAll(async () => {
  hippoA = await goldenFolder(TMP, 'hippoA', HIPPO, 3, 0, [
    { id: 'hippocampus_001', pred: 'hippocampus_001_shift1', gt: 'hippocampus_001' },
    { id: 'hippocampus_033', pred: 'hippocampus_033_erode_l2', gt: 'hippocampus_033' },
    { id: 'hippocampus_243', pred: 'hippocampus_243_drop_l2', gt: 'hippocampus_243' },
  ])
  hippoB = await goldenFolder(TMP, 'hippoB', HIPPO, 3, 1, [
    { id: 'hippocampus_001', pred: 'hippocampus_001_noise', gt: 'hippocampus_001' },
    { id: 'hippocampus_033', pred: 'hippocampus_033_swap_block', gt: 'hippocampus_033' },
  ])
  // 3 classes although the TCIA labels only hold 0/1: class 2 is absent from the ground truth.
  tcia = await goldenFolder(TMP, 'tcia', TCIA, 3, null, [
    { id: 'PGBM-003_19950329', pred: 'PGBM-003_19950329_slice_shift', gt: 'PGBM-003_19950329' },
  ])
})

describe('evaluatePredictions', () => {
  it('matches the golden SciPy values per case and label (mm), with nulls and reasons', async () => {
    const t = await evaluatePredictions(hippoA)
    expect(t.grid).toBe('original')
    expect(t.folds).toEqual([0])
    expect(t.rows.length).toBe(6)
    const pairs: [string, string][] = [
      ['hippocampus_001', 'hippocampus_001_shift1'],
      ['hippocampus_033', 'hippocampus_033_erode_l2'],
      ['hippocampus_243', 'hippocampus_243_drop_l2'],
    ]
    for (const [id, pred] of pairs) {
      const g = golden(pred)
      for (const label of ['1', '2']) {
        const r = t.rows.find((x) => x.caseId === id && String(x.label) === label)!
        expect(r.fold).toBe(0)
        expect(r.labelName).toBe(`L${label}`)
        for (const k of ['dice', 'hd95', 'assd', 'nsd'] as const) close(r[k], g.labels[label][k])
        expect(r.emptyPrediction).toBe(!!g.labels[label].empty_prediction)
      }
    }
    const empty = t.rows.find((x) => x.caseId === 'hippocampus_243' && x.label === 2)!
    expect(empty.dice).toBe(0)
    expect(empty.reason).toMatch(/absent from the prediction/)
    // Summary: mean ± sample std over the cases, straight from the golden values.
    const dice1 = pairs.map(([, p]) => golden(p).labels['1'].dice as number)
    const mean = dice1.reduce((s, x) => s + x, 0) / 3
    const sd = Math.sqrt(dice1.reduce((s, x) => s + (x - mean) ** 2, 0) / 2)
    expect(t.summary.labels['1'].dice.mean).toBeCloseTo(mean, 12)
    expect(t.summary.labels['1'].dice.std).toBeCloseTo(sd, 12)
    expect(t.summary.labels['2'].hd95.n).toBe(2)
    expect(t.summary.labels['2'].hd95.missing).toBe(1)
  })

  it('voxel units on an anisotropic, LAS case; a label absent from the ground truth is null', async () => {
    const t = await evaluatePredictions(tcia, { voxelUnits: true })
    const g = golden('PGBM-003_19950329_slice_shift')
    const r = t.rows.find((x) => x.label === 1)!
    for (const k of ['dice', 'hd95', 'assd', 'nsd'] as const) close(r[k], g.labels['1'][k])
    close(r.hd95Voxel, g.labels_voxel_units['1'].hd95)
    close(r.assdVoxel, g.labels_voxel_units['1'].assd)
    close(r.nsdVoxel, g.labels_voxel_units['1'].nsd)
    const absent = t.rows.find((x) => x.label === 2)!
    expect(absent.dice).toBeNull()
    expect(absent.reason).toMatch(/absent from both/)
    expect(t.summaryVoxel!.labels['1'].hd95.mean).toBe(g.labels_voxel_units['1'].hd95)
  })

  it('on the preprocessed (RAS) grid gives the same values for a pure reorientation', async () => {
    const a = await evaluatePredictions(tcia, { voxelUnits: true })
    const b = await evaluatePredictions(tcia, { voxelUnits: true, grid: 'preprocessed' })
    expect(b.grid).toBe('preprocessed')
    const ra = a.rows.find((x) => x.label === 1)!
    const rb = b.rows.find((x) => x.label === 1)!
    // (the preprocessed grid's spacing comes from the float32 affine: 6.4999973 mm, not 6.5)
    for (const k of ['dice', 'nsd', 'hd95Voxel', 'assdVoxel', 'nsdVoxel'] as const)
      close(rb[k], ra[k])
    for (const k of ['hd95', 'assd'] as const) expect(rb[k]).toBeCloseTo(ra[k]!, 4)
  })

  it('refuses a prediction that is not on the ground-truth grid', async () => {
    const dir = await goldenFolder(TMP, 'wrong', HIPPO, 3, 0, [
      { id: 'x', pred: 'hippocampus_033_erode_l2', gt: 'hippocampus_001' },
    ])
    await expect(evaluatePredictions(dir)).rejects.toMatchObject({ code: 'EVAL_GRID_MISMATCH' })
  })
})

describe('CSV and JSON', () => {
  it('writes one CSV row per case and label, empty cells for nulls, never NaN', async () => {
    const t = await evaluatePredictions(hippoA)
    const files = await writeTable(t, join(TMP, 'metrics'), 'a')
    const text = readFileSync(files[0], 'utf8')
    const rows = parseCsv(text)
    for (const r of rows)
      for (const v of Object.values(r))
        expect(['NaN', 'Infinity', 'undefined', 'null']).not.toContain(v)
    expect(rows.length).toBe(6)
    expect(Object.keys(rows[0])).toEqual([
      'case_id',
      'fold',
      'label',
      'label_name',
      'dice',
      'hd95_mm',
      'assd_mm',
      'nsd_1mm',
      'empty_prediction',
      'reason',
    ])
    // Values round-trip exactly and equal computeMetrics run directly on the files.
    const gt = await readNifti(sharedPath('data', HIPPO, 'labelsTr', 'hippocampus_033.nii.gz'))
    const pred = await readNifti(join(hippoA, 'hippocampus_033.nii.gz'))
    const direct = computeMetrics(pred.data, gt.data, {
      shape: gt.shape,
      spacing: gt.spacing,
      labels: [1, 2],
    })
    const row = rows.find((r) => r.case_id === 'hippocampus_033' && r.label === '2')!
    expect(Number(row.dice)).toBe(direct.labels['2'].dice)
    expect(Number(row.hd95_mm)).toBe(direct.labels['2'].hd95)
    expect(Number(row.assd_mm)).toBe(direct.labels['2'].assd)
    expect(Number(row.nsd_1mm)).toBe(direct.labels['2'].nsd)
    const empty = rows.find((r) => r.case_id === 'hippocampus_243' && r.label === '2')!
    expect(empty.dice).toBe('0')
    expect(empty.hd95_mm).toBe('')
    expect(empty.empty_prediction).toBe('true')
    expect(empty.reason.length).toBeGreaterThan(10)
    // Summary CSV and JSON round trip.
    const sum = parseCsv(readFileSync(files[1], 'utf8'))
    const d1 = sum.find((r) => r.label === '1' && r.metric === 'dice')!
    expect(Number(d1.mean)).toBe(t.summary.labels['1'].dice.mean)
    expect(Number(d1.n)).toBe(3)
    const back = await readTable(files[2])
    expect(back.rows).toEqual(t.rows)
  })

  it('quotes fields with commas and quotes', () => {
    expect(csvField('a,b')).toBe('"a,b"')
    expect(csvField('say "hi"')).toBe('"say ""hi"""')
    expect(csvField(NaN)).toBe('')
    expect(csvField(null)).toBe('')
    expect(csvField(0.1)).toBe('0.1')
  })
})

describe('folds and paired comparison', () => {
  let a: EvaluationTable
  let b: EvaluationTable
  beforeAll(async () => {
    a = await evaluatePredictions(hippoA)
    b = await evaluatePredictions(hippoB)
  })

  it('summarises across folds: mean ± std of the fold means', () => {
    const c = combineTables([a, b], 'cv')
    expect(c.folds).toEqual([0, 1])
    expect(c.rows.length).toBe(10)
    const m0 = a.summary.labels['1'].dice.mean!
    const m1 = b.summary.labels['1'].dice.mean!
    const f = c.summary.folds!['1'].dice
    expect(f.foldMeans['0']).toBeCloseTo(m0, 12)
    expect(f.foldMeans['1']).toBeCloseTo(m1, 12)
    expect(f.mean).toBeCloseTo((m0 + m1) / 2, 12)
    expect(f.std).toBeCloseTo(Math.abs(m0 - m1) / Math.SQRT2, 12)
    const csv = parseCsv(summaryToCsv(c))
    const row = csv.find((r) => r.label === '1' && r.metric === 'dice')!
    expect(Number(row.fold_0_mean)).toBeCloseTo(m0, 12)
    expect(Number(row.folds_std)).toBeCloseTo(f.std!, 12)
  })

  it('pairs cases by ID: deltas b − a and the Wilcoxon p-value', async () => {
    const cmp = compareTables(a, b)
    const d = cmp.labels['1'].dice
    expect(d.n).toBe(2)
    expect(d.excluded).toEqual([{ caseId: 'hippocampus_243', reason: 'missing from run b' }])
    const da = golden('hippocampus_001_noise').labels['1'].dice as number
    const db = golden('hippocampus_001_shift1').labels['1'].dice as number
    const c001 = d.cases.find((c) => c.caseId === 'hippocampus_001')!
    expect(c001.delta).toBeCloseTo(da - db, 12)
    // Both deltas negative (0.864 − 0.899, 0.885 − 1.0): exact n = 2 → R+ = 0, p = 2 · 1/4.
    expect(d.cases.every((c) => c.delta < 0)).toBe(true)
    expect(d.wilcoxon!.pvalue).toBeCloseTo(0.5, 12)
    expect(d.meanA).toBeCloseTo((db + 1.0) / 2, 12)
    // The "mean" label compares each case's mean over labels 1 and 2.
    const mean = cmp.labels.mean.dice.cases.find((c) => c.caseId === 'hippocampus_001')!
    const g1 = golden('hippocampus_001_shift1').labels
    expect(mean.a).toBeCloseTo(((g1['1'].dice as number) + (g1['2'].dice as number)) / 2, 12)
    const files = await writeComparison(cmp, join(TMP, 'cmp'), 'a-vs-b')
    const rows = parseCsv(readFileSync(files[1], 'utf8'))
    const r = rows.find((x) => x.label === '1' && x.metric === 'dice')!
    expect(Number(r.p_value)).toBeCloseTo(0.5, 12)
    expect(Number(r.excluded)).toBe(1)
    expect(comparisonSummaryToCsv(cmp)).not.toMatch(/NaN/)
    const cases = parseCsv(readFileSync(files[0], 'utf8'))
    expect(
      cases.find((x) => x.case_id === 'hippocampus_243' && x.metric === 'dice' && x.label === '1')!
        .reason,
    ).toBe('missing from run b')
  })

  it('refuses tables from different grids', async () => {
    const p = await evaluatePredictions(hippoB, { grid: 'preprocessed' })
    expect(() => compareTables(a, p)).toThrow(/same grid/)
  })
})

it('tableToCsv adds voxel columns when asked', async () => {
  const t = await evaluatePredictions(tcia, { voxelUnits: true })
  expect(tableToCsv(t).split('\n')[0]).toBe(
    'case_id,fold,label,label_name,dice,hd95_mm,assd_mm,nsd_1mm,hd95_vox,assd_vox,nsd_1vox,empty_prediction,reason',
  )
})
