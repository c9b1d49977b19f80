/**
 * Evaluation: per-case metric tables of a predictions folder (Dice, HD95, ASSD, NSD per label;
 * distances in mm and optionally in voxel units), summaries (mean ± std per label, per fold and
 * across folds), paired comparisons of two runs on the same cases (per-case deltas and the
 * Wilcoxon signed-rank p-value per label), and CSV / JSON writers.
 *
 * Grids: by default metrics are computed on the original image grid (the prediction NIfTI
 * against the ground-truth file, after the dataset's label map). `grid: 'preprocessed'`
 * scores the prediction made on the preprocessed grid against the preprocessed label, which is
 * what the paper's code does (dsd-spec §5: HD95 there is in voxel units).
 *
 * Missing values are never NaN: a label absent from the ground truth has null metrics and a
 * reason; an empty prediction has Dice 0, null distances and a reason. In CSV a null is an
 * empty cell and the `reason` column says why.
 */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { readVolume } from '../data/volume-io'
import { applyLabelMap, type LabelMap } from '../data/labels'
import { readNifti } from '../data/nifti'
import { preprocessVolumes, type PreparedCase } from '../data/preprocess'
import { spacingOf } from '../data/resample'
import type { Mat4, Vec3, Volume } from '../data/volume'
import { DsdError } from '../errors'
import {
  computeMetrics,
  METRIC_NAMES,
  pairedComparison,
  summarizeCases,
  type CaseMetrics,
  type CasesSummary,
  type LabelMetrics,
  type MetricName,
  type PairedComparison,
  type WilcoxonOptions,
} from '../metrics'
import { atomicWriteFile, atomicWriteJson } from '../workspace/atomic'
import { DatasetService } from './datasets'
// The manifest reader and types only: evaluation never loads TensorFlow.js.
import type { PredictedCase, PredictionsManifest } from './inference/types'
import { readPredictionsManifest } from './inference/write'
import { checkRunSplit } from '../workspace/cases'
import { runFiles } from '../workspace/run-layout'
import { readRunConfig } from '../workspace/runs'

/** Options of {@link evaluatePredictions}. */
export interface EvaluateOptions {
  /** Workspace (to load preprocessed dataset cases through the cache). */
  workspace?: string
  /** 'original' (default) or 'preprocessed' (the paper's grid). */
  grid?: 'original' | 'preprocessed'
  /** Also compute the distances in voxel units (the paper's HD95); default false. */
  voxelUnits?: boolean
  /** NSD tolerance in mm (default 1); the voxel-unit NSD uses `voxelNsdTolerance` (default 1). */
  nsdTolerance?: number
  voxelNsdTolerance?: number
  /** Class indices to score; default every foreground class 1..K−1. */
  labels?: number[]
  /** Only these cases (default: all predicted cases that have a ground truth). */
  cases?: string[]
  /** Fold tag of the cases; default the predictions' run fold. */
  fold?: number | string | null
  /** Table name (default: the predictions folder's name + grid). */
  name?: string
  onProgress?: (done: number, total: number, caseId: string) => void
  signal?: AbortSignal
}

/** One metric cell per (case, label): distances in mm, voxel-unit ones when asked. */
export interface EvaluationRow {
  caseId: string
  fold: number | string | null
  label: number
  labelName: string
  dice: number | null
  hd95: number | null
  assd: number | null
  nsd: number | null
  hd95Voxel?: number | null
  assdVoxel?: number | null
  nsdVoxel?: number | null
  emptyPrediction: boolean
  /** Why some values are null (null when none is). */
  reason: string | null
}

/** A per-case metrics table with its summaries (written as JSON; rows as CSV). */
export interface EvaluationTable {
  format: 'dsd-evaluation'
  version: 1
  createdAt: string
  name: string
  runIds: string[]
  datasetId: string | null
  /** Folds present in the rows (one for a single run). */
  folds: (number | string)[]
  predictionsDirs: string[]
  grid: 'original' | 'preprocessed'
  voxelUnits: boolean
  nsdTolerance: number
  voxelNsdTolerance: number
  /** Class index → name, for the scored labels. */
  labels: Record<string, string>
  /** Cases skipped (no ground truth, …) with the reason. */
  skipped: { caseId: string; reason: string }[]
  rows: EvaluationRow[]
  /** Summaries over cases (mm); `folds` / `foldsOverall` when the cases carry folds. */
  summary: CasesSummary
  /** The same with the voxel-unit distances (Dice is the same). */
  summaryVoxel?: CasesSummary
}

// ---------------------------------------------------------------------------------------------
// computing

function toClasses(vol: Volume, map: LabelMap | null, file: string): Uint8Array {
  if (map) return applyLabelMap(vol.data, map, file)
  const out = new Uint8Array(vol.data.length)
  for (let i = 0; i < out.length; i++) {
    const v = vol.data[i]
    if (!(Number.isInteger(v) && v >= 0 && v <= 255)) {
      throw new DsdError(
        'LABEL_UNMAPPED',
        `${file}: label value ${v} is not a class index 0–255; give the dataset's label map`,
        { file, value: v },
      )
    }
    out[i] = v
  }
  return out
}

function affineDiff(a: Mat4, b: Mat4): number {
  let m = 0
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++) m = Math.max(m, Math.abs(a[r][c] - b[r][c]))
  return m
}

function checkGrid(
  pred: { shape: Vec3; affine: Mat4 },
  gt: { shape: Vec3; affine: Mat4 },
  predFile: string,
  gtFile: string,
): void {
  if (pred.shape.some((v, i) => v !== gt.shape[i])) {
    throw new DsdError(
      'EVAL_GRID_MISMATCH',
      `${predFile}: the prediction grid ${pred.shape.join('×')} does not match the ground truth ${gtFile} (${gt.shape.join('×')}); predict again or pair it with the right label file`,
      { pred: predFile, label: gtFile },
    )
  }
  const tol = 1e-3 * Math.max(1, ...spacingOf(gt.affine))
  const d = affineDiff(pred.affine, gt.affine)
  if (!(d <= tol)) {
    throw new DsdError(
      'EVAL_GRID_MISMATCH',
      `${predFile}: the prediction's voxel-to-world affine differs from ${gtFile} by up to ${d.toFixed(4)} mm; the two files are not on the same grid — predict again`,
      { pred: predFile, label: gtFile, difference: d },
    )
  }
}

function rowsOf(
  caseId: string,
  fold: number | string | null,
  mm: ReturnType<typeof computeMetrics>,
  vox: ReturnType<typeof computeMetrics> | null,
  names: Record<string, string>,
): EvaluationRow[] {
  return Object.entries(mm.labels).map(([key, m]: [string, LabelMetrics]) => {
    const v = vox?.labels[key]
    const row: EvaluationRow = {
      caseId,
      fold,
      label: Number(key),
      labelName: names[key] ?? `class ${key}`,
      dice: m.dice,
      hd95: m.hd95,
      assd: m.assd,
      nsd: m.nsd,
      emptyPrediction: !!m.emptyPrediction,
      reason: m.reason ?? null,
    }
    if (v) {
      row.hd95Voxel = v.hd95
      row.assdVoxel = v.assd
      row.nsdVoxel = v.nsd
    }
    return row
  })
}

/** Per-case metrics in the shape `summarizeCases` takes (`voxel`: the voxel-unit distances). */
export function caseMetricsOf(rows: readonly EvaluationRow[], voxel = false): CaseMetrics[] {
  const byCase = new Map<string, CaseMetrics>()
  for (const r of rows) {
    const key = `${r.fold ?? ''}\u0000${r.caseId}`
    let c = byCase.get(key)
    if (!c) {
      c = { caseId: r.caseId, ...(r.fold !== null ? { fold: r.fold } : {}), labels: {} }
      byCase.set(key, c)
    }
    c.labels[String(r.label)] = voxel
      ? {
          dice: r.dice,
          hd95: r.hd95Voxel ?? null,
          assd: r.assdVoxel ?? null,
          nsd: r.nsdVoxel ?? null,
        }
      : { dice: r.dice, hd95: r.hd95, assd: r.assd, nsd: r.nsd }
  }
  return [...byCase.values()]
}

function finishTable(t: Omit<EvaluationTable, 'summary' | 'summaryVoxel'>): EvaluationTable {
  const table: EvaluationTable = { ...t, summary: summarizeCases(caseMetricsOf(t.rows)) }
  if (t.voxelUnits) table.summaryVoxel = summarizeCases(caseMetricsOf(t.rows, true))
  return table
}

/** A NIfTI file, or a DICOM series folder (e.g. a mask stored as an image series). */
async function readAnyVolume(path: string): Promise<Volume> {
  return readVolume(path)
}

/**
 * Voxel size of a ground-truth file: the NIfTI header's pixdim (what nibabel's `get_zooms()`
 * and the reference values use), else the affine's column norms.
 */
function voxelSize(v: Volume): Vec3 {
  const pix = (v as Volume & { header?: { pixdim?: number[] } }).header?.pixdim
  if (pix && pix.length >= 4) {
    const s = [Math.abs(pix[1]), Math.abs(pix[2]), Math.abs(pix[3])] as Vec3
    if (s.every((x) => Number.isFinite(x) && x > 0)) return s
  }
  return spacingOf(v.affine)
}

/** Ground truth and prediction of one case on the chosen grid. */
async function casePair(
  c: PredictedCase,
  m: PredictionsManifest,
  dir: string,
  grid: 'original' | 'preprocessed',
  svc: DatasetService | null,
): Promise<{ pred: Uint8Array; gt: Uint8Array; shape: Vec3; spacing: Vec3 }> {
  if (grid === 'original') {
    const predFile = join(dir, c.file)
    const pred = await readNifti(predFile)
    const gtVol = await readAnyVolume(c.label!)
    checkGrid(pred, gtVol, predFile, c.label!)
    const gt = toClasses(gtVol, m.labelMap ?? null, c.label!)
    return {
      pred: toClasses(pred, null, predFile),
      gt,
      shape: gtVol.shape,
      spacing: voxelSize(gtVol),
    }
  }
  if (!c.preprocessedFile) {
    throw new DsdError(
      'EVAL_NO_PREPROCESSED',
      `${dir}: case ${c.caseId} has no prediction on the preprocessed grid; predict again with savePreprocessed (the default) or evaluate on the original grid`,
      { caseId: c.caseId },
    )
  }
  const predFile = join(dir, c.preprocessedFile)
  const pred = await readNifti(predFile)
  let prepared: PreparedCase
  if (svc && m.datasetId) prepared = await svc.loadCase(m.datasetId, c.caseId, m.preprocessing)
  else {
    const images = await Promise.all(c.images.map((p) => readAnyVolume(p)))
    const label = await readAnyVolume(c.label!)
    prepared = preprocessVolumes(c.caseId, images, label, m.preprocessing, m.labelMap ?? null)
  }
  if (!prepared.label) {
    throw new DsdError('EVAL_NO_LABEL', `case ${c.caseId}: the preprocessed case has no label`, {
      caseId: c.caseId,
    })
  }
  checkGrid(pred, prepared, predFile, `${c.label} (preprocessed)`)
  return {
    pred: toClasses(pred, null, predFile),
    gt: prepared.label,
    shape: prepared.shape,
    spacing: prepared.spacing,
  }
}

/**
 * Score every predicted case of a predictions folder (written by `predictCases`) against its
 * ground truth. Cases without a ground-truth file are listed in `skipped`.
 */
export async function evaluatePredictions(
  predictionsDir: string,
  opts: EvaluateOptions = {},
): Promise<EvaluationTable> {
  const dir = resolve(predictionsDir)
  const m = await readPredictionsManifest(dir)
  const grid = opts.grid ?? 'original'
  if (grid !== 'original' && grid !== 'preprocessed') {
    throw new DsdError(
      'EVAL_BAD_OPTION',
      `evaluate: grid must be "original" or "preprocessed", got "${grid}"`,
    )
  }
  const K = m.classes
  const labels = opts.labels ?? Array.from({ length: K - 1 }, (_, i) => i + 1)
  for (const l of labels) {
    if (!Number.isInteger(l) || l < 0 || l >= K) {
      throw new DsdError(
        'EVAL_BAD_OPTION',
        `evaluate: label ${l} is not a class of these predictions (0–${K - 1})`,
        { label: l },
      )
    }
  }
  const names: Record<string, string> = {}
  for (const l of labels) names[String(l)] = m.labelMap?.classes?.[String(l)] ?? `class ${l}`
  const fold = opts.fold !== undefined ? opts.fold : m.fold
  const tol = opts.nsdTolerance ?? 1
  const vtol = opts.voxelNsdTolerance ?? 1
  const wanted = opts.cases ? new Set(opts.cases) : null
  if (wanted) {
    for (const id of wanted) {
      if (!m.cases.some((c) => c.caseId === id)) {
        throw new DsdError(
          'CASE_NOT_FOUND',
          `${dir}: case "${id}" was not predicted; predict it first`,
          { caseId: id },
        )
      }
    }
  }
  if (opts.workspace) {
    // The runs of these predictions must still have the split they were trained on.
    for (const runId of m.runIds) {
      if (existsSync(runFiles(opts.workspace, runId).config)) await checkRunSplit(opts.workspace, await readRunConfig(opts.workspace, runId))
    }
  }
  const svc = opts.workspace && m.datasetId ? new DatasetService(opts.workspace) : null
  const cases = m.cases.filter((c) => !wanted || wanted.has(c.caseId))
  const rows: EvaluationRow[] = []
  const skipped: EvaluationTable['skipped'] = []
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]
    if (opts.signal?.aborted) {
      throw new DsdError(
        'CANCELLED',
        `evaluation cancelled after ${i} of ${cases.length} cases; nothing was written`,
        { done: i },
      )
    }
    if (!c.label) {
      skipped.push({ caseId: c.caseId, reason: 'no ground-truth label file' })
      continue
    }
    if (!existsSync(c.label)) {
      throw new DsdError(
        'FILE_NOT_FOUND',
        `${c.label}: the ground truth of case ${c.caseId} is missing; restore it`,
        { file: c.label },
      )
    }
    const p = await casePair(c, m, dir, grid, svc)
    const mm = computeMetrics(p.pred, p.gt, {
      shape: p.shape,
      spacing: p.spacing,
      labels,
      nsdTolerance: tol,
    })
    const vox = opts.voxelUnits
      ? computeMetrics(p.pred, p.gt, {
          shape: p.shape,
          spacing: p.spacing,
          labels,
          nsdTolerance: vtol,
          voxelUnits: true,
        })
      : null
    rows.push(...rowsOf(c.caseId, fold, mm, vox, names))
    opts.onProgress?.(i + 1, cases.length, c.caseId)
  }
  const folderName = dir.split(/[\\/]/).filter(Boolean).at(-1) ?? 'predictions'
  return finishTable({
    format: 'dsd-evaluation',
    version: 1,
    createdAt: new Date().toISOString(),
    name: opts.name ?? `${folderName}-${grid}`,
    runIds: m.runIds,
    datasetId: m.datasetId,
    folds: fold === null || fold === undefined ? [] : [fold],
    predictionsDirs: [dir],
    grid,
    voxelUnits: !!opts.voxelUnits,
    nsdTolerance: tol,
    voxelNsdTolerance: vtol,
    labels: names,
    skipped,
    rows,
  })
}

/**
 * Combine the tables of several folds (or runs) into one: rows concatenated, summaries
 * recomputed with the across-fold statistics (each fold's mean, then mean ± std of those).
 */
export function combineTables(tables: EvaluationTable[], name = 'combined'): EvaluationTable {
  if (tables.length === 0) throw new DsdError('EVAL_NOTHING', 'combine: no tables given')
  const first = tables[0]
  for (const t of tables.slice(1)) {
    if (
      t.grid !== first.grid ||
      t.voxelUnits !== first.voxelUnits ||
      t.nsdTolerance !== first.nsdTolerance
    ) {
      throw new DsdError(
        'EVAL_INCOMPATIBLE',
        `combine: table "${t.name}" was computed with other settings (grid, units or NSD tolerance) than "${first.name}"; evaluate them alike`,
        {},
      )
    }
  }
  const rows = tables.flatMap((t, i) =>
    t.rows.map((r) => ({ ...r, fold: r.fold ?? (t.runIds.join('+') || String(i)) })),
  )
  const seen = new Set<string>()
  for (const r of rows) {
    const key = `${r.fold}\u0000${r.caseId}\u0000${r.label}`
    if (seen.has(key)) {
      throw new DsdError(
        'EVAL_DUPLICATE',
        `combine: case ${r.caseId} (fold ${r.fold}) appears in two tables; combine distinct folds`,
        { caseId: r.caseId },
      )
    }
    seen.add(key)
  }
  return finishTable({
    ...first,
    createdAt: new Date().toISOString(),
    name,
    runIds: [...new Set(tables.flatMap((t) => t.runIds))],
    folds: [...new Set(rows.map((r) => r.fold).filter((f): f is string | number => f !== null))],
    predictionsDirs: tables.flatMap((t) => t.predictionsDirs),
    labels: Object.assign({}, ...tables.map((t) => t.labels)),
    skipped: tables.flatMap((t) => t.skipped),
    rows,
  })
}

/** Evaluate the predictions of one run (default: its `predictions/last` folder). */
export async function evaluateRun(
  workspace: string,
  runId: string,
  opts: EvaluateOptions & { predictions?: string } = {},
): Promise<EvaluationTable> {
  const dir = join(runFiles(workspace, runId).predictions, opts.predictions ?? 'last')
  if (!existsSync(join(dir, 'predictions.json'))) {
    throw new DsdError(
      'PREDICTIONS_NOT_FOUND',
      `${dir}: run ${runId} has no predictions there; run \`dsd predict --run ${runId}\` first`,
      { runId },
    )
  }
  return evaluatePredictions(dir, { workspace, ...opts })
}

// ---------------------------------------------------------------------------------------------
// comparison

/** Per-label, per-metric paired comparison of two tables on their common cases. */
export interface ComparisonResult {
  format: 'dsd-comparison'
  version: 1
  createdAt: string
  a: { name: string; runIds: string[] }
  b: { name: string; runIds: string[] }
  grid: 'original' | 'preprocessed'
  metrics: MetricName[]
  /** Label key (class index, or "mean" = per-case mean over the labels) → metric → result. */
  labels: Record<
    string,
    Record<string, PairedComparison & { meanA: number | null; meanB: number | null }>
  >
  labelNames: Record<string, string>
}

function caseKey(r: EvaluationRow): string {
  return r.fold === null ? r.caseId : `${r.fold}/${r.caseId}`
}

function metricOf(r: EvaluationRow, metric: MetricName, voxel: boolean): number | null {
  if (voxel && metric !== 'dice')
    return (r[`${metric}Voxel` as 'hd95Voxel'] as number | null | undefined) ?? null
  return r[metric]
}

function meanOf(v: Record<string, number | null | undefined>): number | null {
  const xs = Object.values(v).filter(
    (x): x is number => typeof x === 'number' && Number.isFinite(x),
  )
  return xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null
}

/**
 * Paired comparison of two evaluation tables (e.g. Basic vs DSD) on the cases both scored:
 * per label and metric the per-case values, deltas b − a, their mean / median / std and the
 * Wilcoxon signed-rank p-value (metrics/stats.ts). The "mean" label compares each case's mean
 * over the labels. Cases are matched by case ID (by fold and case ID when a table holds a case
 * more than once).
 */
export function compareTables(
  a: EvaluationTable,
  b: EvaluationTable,
  opts: { metrics?: MetricName[]; voxelUnits?: boolean; wilcoxon?: WilcoxonOptions } = {},
): ComparisonResult {
  if (a.grid !== b.grid) {
    throw new DsdError(
      'EVAL_INCOMPATIBLE',
      `compare: "${a.name}" is on the ${a.grid} grid but "${b.name}" on the ${b.grid} grid; evaluate both on the same grid`,
      {},
    )
  }
  const voxel = !!opts.voxelUnits
  if (voxel && !(a.voxelUnits && b.voxelUnits)) {
    throw new DsdError(
      'EVAL_INCOMPATIBLE',
      'compare: voxel-unit distances were not computed for both tables; evaluate with voxelUnits',
      {},
    )
  }
  const metrics = opts.metrics ?? [...METRIC_NAMES]
  // Match by case ID; by fold + case ID only when a table holds a case more than once.
  const dup = (t: EvaluationTable) => {
    const seen = new Set<string>()
    for (const r of t.rows) {
      const k = `${r.caseId}\u0000${r.label}`
      if (seen.has(k)) return true
      seen.add(k)
    }
    return false
  }
  const useFolds = dup(a) || dup(b)
  const key = (r: EvaluationRow) => (useFolds ? caseKey(r) : r.caseId)
  const labelKeys = [...new Set([...a.rows, ...b.rows].map((r) => String(r.label)))].sort(
    (x, y) => Number(x) - Number(y),
  )
  const labelsOut: ComparisonResult['labels'] = {}
  const pick = (t: EvaluationTable, label: string, metric: MetricName) => {
    const out: Record<string, number | null> = {}
    for (const r of t.rows) if (String(r.label) === label) out[key(r)] = metricOf(r, metric, voxel)
    return out
  }
  const perCaseMean = (t: EvaluationTable, metric: MetricName) => {
    const by: Record<string, Record<string, number | null>> = {}
    for (const r of t.rows) (by[key(r)] ??= {})[String(r.label)] = metricOf(r, metric, voxel)
    return Object.fromEntries(Object.entries(by).map(([k, v]) => [k, meanOf(v)]))
  }
  for (const label of [...labelKeys, 'mean']) {
    labelsOut[label] = {}
    for (const metric of metrics) {
      const va = label === 'mean' ? perCaseMean(a, metric) : pick(a, label, metric)
      const vb = label === 'mean' ? perCaseMean(b, metric) : pick(b, label, metric)
      const pc = pairedComparison(va, vb, opts.wilcoxon)
      labelsOut[label][metric] = {
        ...pc,
        meanA: meanOf(Object.fromEntries(pc.cases.map((c) => [c.caseId, c.a]))),
        meanB: meanOf(Object.fromEntries(pc.cases.map((c) => [c.caseId, c.b]))),
      }
    }
  }
  return {
    format: 'dsd-comparison',
    version: 1,
    createdAt: new Date().toISOString(),
    a: { name: a.name, runIds: a.runIds },
    b: { name: b.name, runIds: b.runIds },
    grid: a.grid,
    metrics,
    labels: labelsOut,
    labelNames: { ...a.labels, ...b.labels, mean: 'mean over labels' },
  }
}

// ---------------------------------------------------------------------------------------------
// CSV / JSON

/** One CSV field: numbers as they are (never NaN: non-finite → empty), strings quoted when needed. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : ''
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  const s = String(v)
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

function csv(header: string[], rows: unknown[][]): string {
  return [header, ...rows].map((r) => r.map(csvField).join(',')).join('\n') + '\n'
}

/** The per-case table as CSV: one line per (case, label); empty cells for nulls, with a reason. */
export function tableToCsv(t: EvaluationTable): string {
  const u = 'mm'
  const header = [
    'case_id',
    'fold',
    'label',
    'label_name',
    'dice',
    `hd95_${u}`,
    `assd_${u}`,
    `nsd_${t.nsdTolerance}${u}`,
  ]
  if (t.voxelUnits) header.push('hd95_vox', 'assd_vox', `nsd_${t.voxelNsdTolerance}vox`)
  header.push('empty_prediction', 'reason')
  const rows = t.rows.map((r) => [
    r.caseId,
    r.fold,
    r.label,
    r.labelName,
    r.dice,
    r.hd95,
    r.assd,
    r.nsd,
    ...(t.voxelUnits ? [r.hd95Voxel, r.assdVoxel, r.nsdVoxel] : []),
    r.emptyPrediction,
    r.reason,
  ])
  return csv(header, rows)
}

/** Summary CSV: per label (and "all" = every case×label cell) and metric: n, mean, std, quartiles, fold means. */
export function summaryToCsv(t: EvaluationTable, voxel = false): string {
  const s = voxel ? t.summaryVoxel : t.summary
  if (!s)
    throw new DsdError(
      'EVAL_NO_VOXEL',
      `${t.name}: no voxel-unit summary; evaluate with voxelUnits`,
      {},
    )
  const folds = t.folds.map(String)
  const header = [
    'label',
    'label_name',
    'metric',
    'units',
    'n',
    'missing',
    'mean',
    'std',
    'median',
    'q1',
    'q3',
    'min',
    'max',
  ]
  if (s.folds) header.push(...folds.map((f) => `fold_${f}_mean`), 'folds_mean', 'folds_std')
  const rows: unknown[][] = []
  const units = (metric: MetricName) =>
    metric === 'dice' ? '' : metric === 'nsd' ? 'fraction' : voxel ? 'voxel' : 'mm'
  const add = (
    label: string,
    name: string,
    metric: MetricName,
    sum: CasesSummary['overall'][MetricName],
    fs?: NonNullable<CasesSummary['foldsOverall']>[MetricName],
  ) => {
    rows.push([
      label,
      name,
      metric,
      units(metric),
      sum.n,
      sum.missing,
      sum.mean,
      sum.std,
      sum.median,
      sum.box?.q1,
      sum.box?.q3,
      sum.box?.min,
      sum.box?.max,
      ...(s.folds ? [...folds.map((f) => fs?.foldMeans[f]), fs?.mean, fs?.std] : []),
    ])
  }
  for (const [label, per] of Object.entries(s.labels)) {
    for (const metric of METRIC_NAMES)
      add(label, t.labels[label] ?? '', metric, per[metric], s.folds?.[label]?.[metric])
  }
  for (const metric of METRIC_NAMES)
    add(
      'all',
      'all labels (case × label cells)',
      metric,
      s.overall[metric],
      s.foldsOverall?.[metric],
    )
  return csv(header, rows)
}

/** Per-case deltas of a comparison as CSV. */
export function comparisonCasesToCsv(c: ComparisonResult): string {
  const rows: unknown[][] = []
  for (const [label, per] of Object.entries(c.labels)) {
    for (const [metric, r] of Object.entries(per)) {
      for (const x of r.cases)
        rows.push([x.caseId, label, c.labelNames[label] ?? '', metric, x.a, x.b, x.delta, ''])
      for (const x of r.excluded)
        rows.push([x.caseId, label, c.labelNames[label] ?? '', metric, null, null, null, x.reason])
    }
  }
  return csv(
    [
      'case_id',
      'label',
      'label_name',
      'metric',
      `a_${c.a.name}`,
      `b_${c.b.name}`,
      'delta_b_minus_a',
      'reason',
    ],
    rows,
  )
}

/** Comparison summary as CSV: per label and metric, means, deltas and the Wilcoxon p-value. */
export function comparisonSummaryToCsv(c: ComparisonResult): string {
  const rows: unknown[][] = []
  for (const [label, per] of Object.entries(c.labels)) {
    for (const [metric, r] of Object.entries(per)) {
      rows.push([
        label,
        c.labelNames[label] ?? '',
        metric,
        r.n,
        r.meanA,
        r.meanB,
        r.meanDelta,
        r.medianDelta,
        r.stdDelta,
        r.wilcoxon?.statistic,
        r.wilcoxon?.pvalue,
        r.wilcoxon?.method,
        r.excluded.length,
      ])
    }
  }
  return csv(
    [
      'label',
      'label_name',
      'metric',
      'n',
      'mean_a',
      'mean_b',
      'mean_delta',
      'median_delta',
      'std_delta',
      'wilcoxon_statistic',
      'p_value',
      'wilcoxon_method',
      'excluded',
    ],
    rows,
  )
}

/** JSON with non-finite numbers as null (JSON.stringify would already do it; this makes it explicit). */
function cleanJson(v: unknown): unknown {
  return JSON.parse(
    JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x)),
  )
}

/**
 * Write a table as `<dir>/<name>.csv` (per case), `<name>.summary.csv` and `<name>.json`
 * (everything), atomically. Returns the files written.
 */
export async function writeTable(
  t: EvaluationTable,
  dir: string,
  name = t.name,
): Promise<string[]> {
  const files = [
    join(dir, `${name}.csv`),
    join(dir, `${name}.summary.csv`),
    join(dir, `${name}.json`),
  ]
  await atomicWriteFile(files[0], tableToCsv(t))
  await atomicWriteFile(files[1], summaryToCsv(t))
  if (t.voxelUnits) {
    files.push(join(dir, `${name}.summary-voxel.csv`))
    await atomicWriteFile(files[3], summaryToCsv(t, true))
  }
  await atomicWriteJson(files[2], cleanJson(t))
  return files
}

/** Write a comparison as `<name>.cases.csv`, `<name>.summary.csv` and `<name>.json`. */
export async function writeComparison(
  c: ComparisonResult,
  dir: string,
  name: string,
): Promise<string[]> {
  const files = [
    join(dir, `${name}.cases.csv`),
    join(dir, `${name}.summary.csv`),
    join(dir, `${name}.json`),
  ]
  await atomicWriteFile(files[0], comparisonCasesToCsv(c))
  await atomicWriteFile(files[1], comparisonSummaryToCsv(c))
  await atomicWriteJson(files[2], cleanJson(c))
  return files
}

/** Read a table written by {@link writeTable}. */
export async function readTable(file: string): Promise<EvaluationTable> {
  const { readJsonFile } = await import('../workspace/atomic')
  const t = (await readJsonFile(file, 'EVAL_NOT_FOUND', 'evaluate again')) as EvaluationTable
  if (t?.format !== 'dsd-evaluation' || !Array.isArray(t.rows)) {
    throw new DsdError(
      'EVAL_CORRUPT',
      `${file}: not an evaluation table (format "${String((t as { format?: unknown })?.format)}"); evaluate again`,
      { file },
    )
  }
  return t
}
