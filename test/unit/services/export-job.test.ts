/**
 * The export job (main/services/export-job.ts) on the app's one job system, with real files:
 * hippocampus cases from ../shared/data predicted as their ground truth shifted by one voxel,
 * exported as NIfTI masks, metrics CSV and the HTML report; the masks read back with the app's
 * reader (data/volume-io.ts) on the source grid; cancel leaves nothing; names cannot escape
 * `exports/`. The report's slice images (report-slices.ts) are checked pixel by pixel.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { decode } from 'fast-png'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readDicomSeg, readDicomSeries } from '../../../main/data/dicom'
import { readVolume } from '../../../main/data/volume-io'
import type { Mat4 } from '../../../main/data/volume'
import type { JobInfo } from '../../../main/contract'
import type { ExportResult } from '../../../main/contract/export'
import { createApp } from '../../../main/services/app'
import { evaluatePredictions, tableToCsv, writeTable } from '../../../main/services/evaluation'
import { exportFolder, exportsDir, runExport } from '../../../main/services/export-job'
import { createJobSystem } from '../../../main/services/jobs'
import {
  axialLayout,
  caseMeanDice,
  pickWorstAndMedian,
  renderSlice,
} from '../../../main/services/report-slices'
import { writeLabelNifti, type PredictionsManifest } from '../../../main/services/inference'
import { labelColor } from '../../../main/services/review'
import { atomicWriteJson } from '../../../main/workspace/atomic'
import { runFiles } from '../../../main/workspace/run-layout'
import { createRun } from '../../../main/workspace/runs'
import { testRunConfig } from '../../helpers/inference'
import { writeShiftedSet } from '../../helpers/review'
import { dsdCli, sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('export-job')
const WS = join(TMP, 'ws')
const RUN = 'hippo-DSD-fold0'
const CASES = ['hippocampus_001', 'hippocampus_003', 'hippocampus_004']
const predDir = () => join(runFiles(WS, RUN).predictions, 'last')
const image = (id: string) =>
  sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', `${id}.nii.gz`)

beforeAll(async () => {
  mkdirSync(WS, { recursive: true })
  await createRun(WS, testRunConfig({ id: RUN, datasetId: 'hippo', split: 'k5' }))
  // Predictions: the ground truth shifted by one voxel along i; hippocampus_004 predicted empty.
  await writeShiftedSet(predDir(), {
    datasetId: null,
    cases: CASES,
    fold: 0,
    runIds: [RUN],
    shift: 1,
    empty: ['hippocampus_004'],
  })
})
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

const REF = { kind: 'run' as const, runId: RUN, set: 'last' }

describe('export job', () => {
  it('exports masks on the source grid, the metrics CSV and the report through the job system', async () => {
    const jobs = createJobSystem(WS, { progressIntervalMs: 0 })
    const progress: string[] = []
    jobs.on('progress', (p) => progress.push(`${p.done}/${p.total} ${p.message}`))
    const started = jobs.start('export', {
      sets: [REF],
      formats: ['nifti', 'metrics', 'report'],
      name: 'first',
    })
    expect(started.kind).toBe('export')
    const info = await jobs.wait(started.jobId)
    expect(info.error?.message ?? '').toBe('')
    expect(info.status).toBe('completed')
    const r = info.result as ExportResult
    expect(r.folder).toBe(join(exportsDir(WS), 'first'))
    expect(r.files).toEqual(
      [
        'export.json',
        'masks/export.json',
        ...CASES.map((c) => `masks/${c}.nii.gz`),
        'metrics/last-original.csv',
        'metrics/last-original.json',
        'metrics/last-original.summary.csv',
        'report.html',
      ].sort(),
    )
    // Progress counted files: 3 masks + 1 table + the report.
    expect(info.total).toBe(5)
    expect(info.done).toBe(5)
    expect(progress.some((m) => /^3\/5 .*hippocampus_004 \(3 of 3 cases\)/.test(m))).toBe(true)
    // Masks: the app's reader gives the source image's grid and the predicted voxels.
    for (const c of CASES) {
      const mask = await readVolume(join(r.folder, 'masks', `${c}.nii.gz`))
      const src = await readVolume(image(c))
      const pred = await readVolume(join(predDir(), `${c}.nii.gz`))
      expect(mask.shape).toEqual(src.shape)
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 4; j++) expect(mask.affine[i][j]).toBeCloseTo(src.affine[i][j], 5)
      expect(mask.datatype).toBe('uint8')
      expect(
        Buffer.from(mask.data.buffer, mask.data.byteOffset, mask.data.byteLength).equals(
          Buffer.from(pred.data as Uint8Array),
        ),
      ).toBe(true)
    }
    // Metrics: the CSV of evaluating the set as `dsd evaluate` does.
    const table = await evaluatePredictions(predDir(), { workspace: WS, name: 'last-original' })
    expect(readFileSync(join(r.folder, 'metrics', 'last-original.csv'), 'utf8')).toBe(
      tableToCsv(table),
    )
    // The report: self-contained, the worst (the empty prediction) and the median case as PNGs.
    const html = readFileSync(join(r.folder, 'report.html'), 'utf8')
    expect(html).not.toMatch(/https?:/i)
    const srcs = [...html.matchAll(/\bsrc="([^"]*)"/g)].map((m) => m[1])
    expect(srcs).toHaveLength(2)
    for (const s of srcs) expect(s).toMatch(/^data:image\/png;base64,[A-Za-z0-9+/]+=*$/)
    const figures = [
      ...html.matchAll(/<figure class="slice" data-case="([^"]+)" data-roles="([^"]+)"/g),
    ].map((m) => [m[1], m[2]])
    const means = caseMeanDice(table).sort((a, b) => a.meanDice - b.meanDice)
    expect(means[0].caseId).toBe('hippocampus_004')
    expect(figures).toEqual([
      ['hippocampus_004', 'worst'],
      [means[1].caseId, 'median'],
    ])
    // Nothing else in exports/: no staging folder left.
    expect(readdirSync(exportsDir(WS))).toEqual(['first'])
  })

  it('uses the stored table of dsd evaluate when it covers the request, and exports a case subset', async () => {
    const stored = await evaluatePredictions(predDir(), { workspace: WS, name: 'last-original' })
    await writeTable(stored, runFiles(WS, RUN).metrics, 'last-original')
    const r = await runExport(WS, {
      sets: [REF],
      formats: ['metrics'],
      name: 'stored',
      values: 'classes',
      grid: 'original',
    })
    const json = JSON.parse(readFileSync(join(r.folder, 'metrics', 'last-original.json'), 'utf8'))
    expect(json.createdAt).toBe(stored.createdAt)
    const sub = await runExport(WS, {
      sets: [REF],
      cases: ['hippocampus_003'],
      formats: ['nifti', 'metrics'],
      name: 'subset',
      values: 'classes',
      grid: 'original',
    })
    expect(sub.files.filter((f) => f.endsWith('.nii.gz'))).toEqual(['masks/hippocampus_003.nii.gz'])
    const csv = readFileSync(join(sub.folder, 'metrics', 'last-original.csv'), 'utf8')
      .trim()
      .split('\n')
    expect(csv.slice(1).map((l) => l.split(',')[0])).toEqual(['hippocampus_003', 'hippocampus_003'])
  })

  it('lists DICOM SEG as not available for a NIfTI source, with the reason', async () => {
    const r = await runExport(WS, {
      sets: [REF],
      formats: ['dicom-seg'],
      name: 'seg',
      values: 'classes',
      grid: 'original',
    })
    expect(r.unavailable.map((u) => u.caseId)).toEqual(CASES)
    expect(r.unavailable[0].reason).toMatch(/source image .* is NIfTI/)
    expect(r.files.filter((f) => f.endsWith('.dcm'))).toEqual([])
  })

  it('writes a DICOM SEG where the source is a DICOM series (an ensemble-style set)', async () => {
    const series = sharedPath(
      'data',
      'dicom-samples',
      'tcia-brain-tumor-progression_PGBM-001_19911119',
    )
    const ref = await readDicomSeries(join(series, 'T1post'))
    const mask = await readDicomSeries(join(series, 'MaskTumor'))
    const dir = join(WS, 'predictions', 'dicom')
    await writeLabelNifti(
      join(dir, 'PGBM-001.nii.gz'),
      Uint8Array.from(mask.data, (v) => (v > 0 ? 1 : 0)),
      ref.shape,
      ref.affine,
    )
    const m: PredictionsManifest = {
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
      preprocessingHash: 'test',
      labelMap: { classes: { '0': 'background', '1': 'tumour' } },
      classes: 2,
      cases: [
        {
          caseId: 'PGBM-001',
          file: 'PGBM-001.nii.gz',
          preprocessedFile: null,
          images: [join(series, 'T1post')],
          label: null,
          sourceFormat: 'dicom',
          shape: ref.shape,
          affine: ref.affine,
          preprocessedShape: ref.shape,
          seconds: 0,
        },
      ],
    }
    await atomicWriteJson(join(dir, 'predictions.json'), m)
    const r = await runExport(WS, {
      sets: [{ kind: 'ensemble', name: 'dicom' }],
      formats: ['nifti', 'dicom-seg'],
      name: 'dicom-seg',
      values: 'classes',
      grid: 'original',
    })
    expect(r.unavailable).toEqual([])
    expect(r.files).toContain('masks/PGBM-001.seg.dcm')
    const seg = await readDicomSeg(join(r.folder, 'masks', 'PGBM-001.seg.dcm'), ref)
    expect(seg.segments.map((x) => [x.number, x.label])).toEqual([[1, 'tumour']])
    const nii = await readVolume(join(r.folder, 'masks', 'PGBM-001.nii.gz'))
    expect(Array.from(seg.volume.data)).toEqual(Array.from(nii.data))
    expect(nii.shape).toEqual(ref.shape)
  })

  it('several sets: one folder each, a fold filter, one report over all of them', async () => {
    const run1 = 'hippo-DSD-fold1'
    await createRun(WS, testRunConfig({ id: run1, datasetId: 'hippo', split: 'k5', fold: 1 }))
    const other = ['hippocampus_006', 'hippocampus_007']
    await writeShiftedSet(join(runFiles(WS, run1).predictions, 'last'), {
      datasetId: null,
      cases: other,
      fold: 1,
      runIds: [run1],
      shift: 2,
    })
    const sets = [REF, { kind: 'run' as const, runId: run1, set: 'last' }]
    const only1 = await runExport(WS, {
      sets,
      folds: [1],
      formats: ['nifti'],
      name: 'fold1',
      values: 'classes',
      grid: 'original',
    })
    expect(only1.sets.map((x) => x.key)).toEqual([`run:${run1}/last`])
    expect(only1.files.filter((f) => f.endsWith('.nii.gz'))).toEqual(
      other.map((c) => `masks/${c}.nii.gz`),
    )
    await expect(
      runExport(WS, {
        sets,
        folds: [3],
        formats: ['nifti'],
        name: 'fold3',
        values: 'classes',
        grid: 'original',
      }),
    ).rejects.toThrow(/None of the chosen prediction sets is of fold 3/)
    const both = await runExport(WS, {
      sets,
      formats: ['nifti', 'metrics', 'report'],
      name: 'both',
      values: 'classes',
      grid: 'original',
    })
    expect(both.sets.map((x) => x.folder)).toEqual([RUN, run1])
    expect(both.files).toContain(`${RUN}/masks/hippocampus_001.nii.gz`)
    expect(both.files).toContain(`${run1}/masks/hippocampus_006.nii.gz`)
    expect(both.files).toContain(`${run1}/metrics/last-original.csv`)
    const html = readFileSync(join(both.folder, 'report.html'), 'utf8')
    // The combined table holds both runs' cases; the worst case over both is still the empty prediction.
    for (const c of [...CASES, ...other]) expect(html).toContain(`<td>${c}</td>`)
    expect(html).toMatch(/<figure class="slice" data-case="hippocampus_004" data-roles="worst"/)
  })

  it('a cancelled export leaves nothing in exports/', async () => {
    const controller = new AbortController()
    let error: Error | null = null
    try {
      await runExport(
        WS,
        {
          sets: [REF],
          formats: ['nifti', 'metrics', 'report'],
          name: 'cancelled',
          values: 'classes',
          grid: 'original',
        },
        {
          signal: controller.signal,
          progress: (done) => {
            if (done >= 1) controller.abort()
          },
        },
      )
    } catch (err) {
      error = err as Error
    }
    expect((error as { code?: string } | null)?.code).toBe('CANCELLED')
    expect(error!.message).toMatch(/nothing was written/)
    expect(existsSync(join(exportsDir(WS), 'cancelled'))).toBe(false)
    expect(readdirSync(exportsDir(WS)).filter((n) => n.startsWith('.'))).toEqual([])
  })

  it('refuses names and paths that leave exports/, an existing name, and unknown cases, at the edge', async () => {
    const app = createApp({ workspace: WS, transport: 'in-process', validateResponses: true })
    try {
      for (const name of ['../evil', '..', '.hidden', 'a/b', '/tmp/x']) {
        const r = await app.bridge.invoke('export.start', { sets: [REF], formats: ['nifti'], name })
        expect(r.ok).toBe(false)
        if (!r.ok) expect(r.error.code).toBe('VALIDATION')
      }
      const traversal = await app.bridge.invoke('export.start', {
        sets: [{ kind: 'run', runId: '..', set: 'last' }],
        formats: ['nifti'],
      })
      expect(traversal.ok).toBe(false)
      const exists = await app.bridge.invoke('export.start', {
        sets: [REF],
        formats: ['nifti'],
        name: 'first',
      })
      expect(exists.ok ? '' : exists.error.code).toBe('ENTRY_EXISTS')
      const unknown = await app.bridge.invoke('export.start', {
        sets: [REF],
        formats: ['nifti'],
        cases: ['nope'],
      })
      expect(unknown.ok ? '' : unknown.error.message).toMatch(
        /"nope" is in none of the chosen prediction sets/,
      )
      // export.open: only names of existing exports; without a file manager it answers the path.
      const open = await app.bridge.invoke('export.open', { name: 'first' })
      expect(open.ok && open.value).toEqual({
        opened: false,
        folder: join(exportsDir(WS), 'first'),
        reason: expect.any(String),
      })
      const bad = await app.bridge.invoke('export.open', { name: '..' })
      expect(bad.ok).toBe(false)
      await expect(exportFolder(WS, 'missing')).rejects.toThrow(/No export "missing"/)
      // The default name: made from the run and the time, under exports/.
      const started = await app.bridge.invoke('export.start', { sets: [REF], formats: ['nifti'] })
      if (!started.ok) throw new Error(started.error.message)
      const done = (await app.jobs.wait((started.value as { job: JobInfo }).job.jobId)) as JobInfo
      expect(done.status).toBe('completed')
      expect((done.result as ExportResult).name).toMatch(new RegExp(`^${RUN}-\\d{8}-\\d{6}$`))
    } finally {
      await app.close()
    }
  })
})

describe('dsd export --report', () => {
  it('writes the same example slices into the CLI report', () => {
    const out = join(TMP, 'cli-report')
    const r = dsdCli(WS, ['export', '--run', RUN, '--report', '--out', out])
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const html = readFileSync(join(out, 'report.html'), 'utf8')
    const figures = [
      ...html.matchAll(
        /<figure class="slice" data-case="([^"]+)" data-roles="([^"]+)"><img src="data:image\/png;base64,/g,
      ),
    ]
    expect(figures.map((m) => m[2])).toEqual(['worst', 'median'])
    expect(figures[0][1]).toBe('hippocampus_004')
  }, 120_000)
})

describe('report slices', () => {
  it('picks the worst and the (lower) median case by mean Dice, ties by case id', () => {
    const c = (caseId: string, meanDice: number) => ({ caseId, meanDice })
    expect(
      pickWorstAndMedian([c('a', 0.9), c('b', 0.1), c('c', 0.5), c('d', 0.7)]).map((x) => [
        x.item.caseId,
        x.roles,
      ]),
    ).toEqual([
      ['b', ['worst']],
      ['c', ['median']],
    ])
    expect(pickWorstAndMedian([c('x', 0.4)]).map((x) => x.roles)).toEqual([['worst', 'median']])
    expect(pickWorstAndMedian([c('b', 0.2), c('a', 0.2), c('c', 0.3)])[0].item.caseId).toBe('a')
  })

  it('draws radiological axial panels whatever the axis order (RAS, LPS, permuted)', () => {
    // 4 × 5 × 3 voxels, 1 mm; the marker sits at patient right–anterior on the middle slice.
    const orientations: {
      name: string
      affine: Mat4
      marker: (s: [number, number, number]) => [number, number, number]
    }[] = [
      // RAS+ (+x towards the patient's right, +y anterior): the marker is the last i and j.
      {
        name: 'RAS',
        affine: [
          [1, 0, 0, 0],
          [0, 1, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 0, 1],
        ],
        marker: (s) => [s[0] - 1, s[1] - 1, 1],
      },
      {
        name: 'LPS',
        affine: [
          [-1, 0, 0, 0],
          [0, -1, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 0, 1],
        ],
        marker: () => [0, 0, 1],
      },
      // k runs along x, i along z: the axial slices cut i.
      {
        name: 'permuted',
        affine: [
          [0, 0, 1, 0],
          [0, 1, 0, 0],
          [1, 0, 0, 0],
          [0, 0, 0, 1],
        ],
        marker: (s) => [1, s[1] - 1, s[2] - 1],
      },
    ]
    for (const o of orientations) {
      const shape: [number, number, number] = o.name === 'permuted' ? [3, 5, 4] : [4, 5, 3]
      const n = shape[0] * shape[1] * shape[2]
      const data = new Float32Array(n).fill(10)
      const gt = new Uint8Array(n)
      const [mi, mj, mk] = o.marker(shape)
      const at = (i: number, j: number, k: number) => (k * shape[1] + j) * shape[0] + i
      data[at(mi, mj, mk)] = 100
      gt[at(mi, mj, mk)] = 1
      const pred = gt.slice()
      const labels = [{ value: 1, name: 'one', color: labelColor(1) }]
      const s = renderSlice({ shape, affine: o.affine, spacing: [1, 1, 1], data }, gt, pred, labels)
      expect(axialLayout(o.affine).axis, o.name).toBe(o.name === 'permuted' ? 0 : 2)
      expect(s.foreground).toEqual({ groundTruth: 1, prediction: 1 })
      const img = decode(s.png)
      expect([img.width, img.height, img.channels]).toEqual([s.width, s.height, 3])
      const px = (x: number, y: number) =>
        Array.from(img.data.slice((y * img.width + x) * 3, (y * img.width + x) * 3 + 3))
      // Top-left pixel of each panel: patient right (picture left), anterior (top).
      const { width: pw, gap } = s.panel
      expect(px(0, 0), o.name).toEqual([255, 255, 255])
      const blend = labelColor(1).map((c) => Math.round(0.5 * 255 + 0.5 * c))
      expect(px(pw + gap, 0), o.name).toEqual(blend)
      expect(px(2 * (pw + gap), 0), o.name).toEqual(blend)
      // Elsewhere: plain grey (the background value, the window's low end).
      expect(px(pw - 1, s.height - 1), o.name).toEqual([0, 0, 0])
    }
  })

  it('on a real case: the slice with the most foreground, each label coloured where its voxels are', async () => {
    const id = 'hippocampus_001'
    const img = await readVolume(image(id))
    const gtVol = await readVolume(
      sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', `${id}.nii.gz`),
    )
    const gt = Uint8Array.from(gtVol.data)
    const pred = new Uint8Array(gt.length) // an empty prediction: only the ground truth is coloured
    const labels = [1, 2].map((value) => ({ value, name: `L${value}`, color: labelColor(value) }))
    const s = renderSlice(img, gt, pred, labels)
    const { axis } = axialLayout(img.affine)
    // Independent count of the foreground per slice along the axial axis.
    const per = new Array(img.shape[axis]).fill(0)
    const [nx, ny] = img.shape
    for (let v = 0; v < gt.length; v++)
      if (gt[v]) per[[v % nx, Math.floor(v / nx) % ny, Math.floor(v / (nx * ny))][axis]]++
    expect(s.index).toBe(per.indexOf(Math.max(...per)))
    expect(s.foreground.groundTruth).toBe(per[s.index])
    expect(s.foreground.prediction).toBe(0)
    // Pixels in each label's blend colour in the ground-truth panel ∝ that label's voxels on the slice.
    const png = decode(s.png)
    const { width: pw, height: ph, gap } = s.panel
    const voxelsOf = (label: number) => {
      let c = 0
      for (let v = 0; v < gt.length; v++)
        if (
          gt[v] === label &&
          [v % nx, Math.floor(v / nx) % ny, Math.floor(v / (nx * ny))][axis] === s.index
        )
          c++
      return c
    }
    const inPanel = (p: number) => {
      const counts = new Map<string, number>()
      for (let y = 0; y < ph; y++)
        for (let x = 0; x < pw; x++) {
          const o = (y * png.width + p * (pw + gap) + x) * 3
          const r = png.data[o],
            g = png.data[o + 1],
            b = png.data[o + 2]
          const key = r === g && g === b ? 'grey' : `${r},${g},${b}`
          counts.set(key, (counts.get(key) ?? 0) + 1)
        }
      return counts
    }
    const gtPanel = inPanel(1)
    const colouredPixels = [...gtPanel.entries()]
      .filter(([k]) => k !== 'grey')
      .reduce((n, [, c]) => n + c, 0)
    const pxPerVoxel = colouredPixels / s.foreground.groundTruth
    expect(pxPerVoxel).toBeGreaterThan(1)
    // Label 1 blends red (R > G), label 2 green (G > R), over a grey pixel.
    const pixelsOf = (l: number) =>
      [...gtPanel.entries()]
        .filter(([k]) => k !== 'grey')
        .filter(([k]) => {
          const [r, g] = k.split(',').map(Number)
          return l === 1 ? r > g : g > r
        })
        .reduce((n, [, c]) => n + c, 0)
    for (const l of [1, 2]) expect(pixelsOf(l) / pxPerVoxel).toBeCloseTo(voxelsOf(l), 0)
    // The image panel and the (empty) prediction panel are grey only.
    expect([...inPanel(0).keys()]).toEqual(['grey'])
    expect([...inPanel(2).keys()]).toEqual(['grey'])
  })
})
