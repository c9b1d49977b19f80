/**
 * The report's example slices: for the worst and the median case by mean Dice (over the scored
 * labels), one axial slice — the one with the most foreground in the ground truth or the
 * prediction — drawn as three panels side by side (image; image + ground truth; image +
 * prediction, each label filled in its colour at half opacity) and encoded as a PNG
 * (fast-png). The report (report.ts) embeds them as data URIs; `dsd export --report` and the
 * app's export job both call {@link reportSlices}.
 *
 * Orientation: "axial" is the voxel axis closest to the world's superior axis; the panel is
 * drawn in radiological convention (patient right on the left of the picture, anterior at the
 * top) with square pixels in mm, whatever the file's axis order.
 */
import { join } from 'node:path'
import { encode } from 'fast-png'
import { applyLabelMap, type LabelMap } from '../data/labels'
import { readNifti } from '../data/nifti'
import { alignToGrid, readVolume } from '../data/volume-io'
import type { Mat4, Vec3, Volume } from '../data/volume'
import { DsdError } from '../errors'
import type { EvaluationTable } from './evaluation'
import type { PredictionsManifest } from './inference'
import { labelColor } from './review'

/** One label in a slice's legend. */
export interface SliceLabel {
  value: number
  name: string
  color: [number, number, number]
}

/** One example slice of the report. */
export interface ReportSlice {
  /** Why this case is shown (one case can be both when the set has one or two cases). */
  roles: ('worst' | 'median')[]
  caseId: string
  /** The prediction set the case comes from. */
  set: string
  fold: number | string | null
  meanDice: number
  /** Index of the slice along `axis` (0-based), and the number of slices along it. */
  index: number
  count: number
  /** The voxel axis (0 = i, 1 = j, 2 = k) the slice cuts. */
  axis: 0 | 1 | 2
  /** Voxels of the ground truth / prediction on this slice (labels > 0). */
  foreground: { groundTruth: number; prediction: number }
  /** The PNG: three panels of `panel.width` × `panel.height`, `gap` pixels apart. */
  png: Uint8Array
  width: number
  height: number
  panel: { width: number; height: number; gap: number }
  labels: SliceLabel[]
}

/** A prediction set with its evaluated table, as the report's slices need it. */
export interface SliceSource {
  title: string
  /** The set's folder (predictions.json and the masks). */
  dir: string
  manifest: PredictionsManifest
  table: EvaluationTable
}

/** Mean Dice over the scored labels per case (cases whose labels all have a null Dice are left out). */
export function caseMeanDice(
  table: Pick<EvaluationTable, 'rows'>,
): { caseId: string; fold: number | string | null; meanDice: number }[] {
  const by = new Map<
    string,
    { caseId: string; fold: number | string | null; sum: number; n: number }
  >()
  for (const r of table.rows) {
    if (r.dice === null) continue
    const key = `${r.fold ?? ''}\u0000${r.caseId}`
    const c = by.get(key) ?? { caseId: r.caseId, fold: r.fold, sum: 0, n: 0 }
    c.sum += r.dice
    c.n++
    by.set(key, c)
  }
  return [...by.values()].map((c) => ({ caseId: c.caseId, fold: c.fold, meanDice: c.sum / c.n }))
}

/**
 * The worst (lowest mean Dice) and the median case (the lower median for an even count), ties
 * broken by case id. One entry with both roles when they are the same case.
 */
export function pickWorstAndMedian<T extends { caseId: string; meanDice: number }>(
  cases: T[],
): { roles: ('worst' | 'median')[]; item: T }[] {
  if (!cases.length) return []
  const sorted = [...cases].sort(
    (a, b) => a.meanDice - b.meanDice || a.caseId.localeCompare(b.caseId, 'en', { numeric: true }),
  )
  const worst = sorted[0]
  const median = sorted[Math.floor((sorted.length - 1) / 2)]
  if (worst === median) return [{ roles: ['worst', 'median'], item: worst }]
  return [
    { roles: ['worst'], item: worst },
    { roles: ['median'], item: median },
  ]
}

const column = (a: Mat4, c: number): Vec3 => [a[0][c], a[1][c], a[2][c]]

/** Slice axis (closest to superior), column axis (closest to left–right) and row axis, with flips. */
export function axialLayout(affine: Mat4): {
  axis: 0 | 1 | 2
  cols: { axis: number; flip: boolean }
  rows: { axis: number; flip: boolean }
} {
  const dirs = [0, 1, 2].map((c) => {
    const v = column(affine, c)
    const n = Math.hypot(v[0], v[1], v[2]) || 1
    return [v[0] / n, v[1] / n, v[2] / n]
  })
  const axis = [0, 1, 2].reduce(
    (best, c) => (Math.abs(dirs[c][2]) > Math.abs(dirs[best][2]) ? c : best),
    2,
  ) as 0 | 1 | 2
  const [a, b] = [0, 1, 2].filter((c) => c !== axis)
  const colAxis = Math.abs(dirs[a][0]) >= Math.abs(dirs[b][0]) ? a : b
  const rowAxis = colAxis === a ? b : a
  // RAS+: the picture's columns run from patient right to left (x decreasing), rows from
  // anterior to posterior (y decreasing).
  return {
    axis,
    cols: { axis: colAxis, flip: dirs[colAxis][0] > 0 },
    rows: { axis: rowAxis, flip: dirs[rowAxis][1] > 0 },
  }
}

/** Largest panel side in pixels; smaller slices are enlarged (nearest neighbour) to at least MIN_PANEL. */
const MAX_PANEL = 384
const MIN_PANEL = 192
const GAP = 4
const ALPHA = 0.5

/**
 * Draw one slice (three panels) of a volume and its ground truth and prediction (class indices
 * on the volume's grid) and encode it as PNG. `image` is channel 0 of the volume's data.
 */
export function renderSlice(
  image: Pick<Volume, 'shape' | 'affine' | 'spacing' | 'data'>,
  groundTruth: Uint8Array | null,
  prediction: Uint8Array,
  labels: SliceLabel[],
): Omit<ReportSlice, 'roles' | 'caseId' | 'set' | 'fold' | 'meanDice' | 'labels'> {
  const shape = image.shape
  const n = shape[0] * shape[1] * shape[2]
  if (prediction.length !== n || (groundTruth && groundTruth.length !== n)) {
    throw new DsdError(
      'SLICE_GRID_MISMATCH',
      'report slice: the image, ground truth and prediction are not on one grid',
      {},
    )
  }
  const { axis, cols, rows } = axialLayout(image.affine)
  const stride: Vec3 = [1, shape[0], shape[0] * shape[1]]
  // The slice with the most foreground (ground truth or prediction); the middle one if none has any.
  const count = shape[axis]
  const fg = new Float64Array(count)
  for (let k = 0; k < shape[2]; k++)
    for (let j = 0; j < shape[1]; j++)
      for (let i = 0; i < shape[0]; i++) {
        const v = (k * shape[1] + j) * shape[0] + i
        if (prediction[v] > 0 || (groundTruth && groundTruth[v] > 0))
          fg[axis === 0 ? i : axis === 1 ? j : k]++
      }
  let index = Math.floor(count / 2)
  let most = 0
  for (let s = 0; s < count; s++) if (fg[s] > most) [most, index] = [fg[s], s]
  const nc = shape[cols.axis]
  const nr = shape[rows.axis]
  const voxel = (r: number, c: number) =>
    index * stride[axis] +
    (cols.flip ? nc - 1 - c : c) * stride[cols.axis] +
    (rows.flip ? nr - 1 - r : r) * stride[rows.axis]
  // Grey levels: the slice's 1st–99th percentile.
  const values = new Float64Array(nr * nc)
  for (let r = 0; r < nr; r++)
    for (let c = 0; c < nc; c++) values[r * nc + c] = Number(image.data[voxel(r, c)])
  const sorted = Float64Array.from(values).sort()
  let lo = sorted[Math.floor(0.01 * (sorted.length - 1))]
  let hi = sorted[Math.ceil(0.99 * (sorted.length - 1))]
  if (!(hi > lo)) [lo, hi] = [sorted[0], sorted[sorted.length - 1]]
  const grey = (x: number) =>
    hi > lo ? Math.round(Math.min(1, Math.max(0, (x - lo) / (hi - lo))) * 255) : 0
  let gtCount = 0
  let predCount = 0
  for (let r = 0; r < nr; r++)
    for (let c = 0; c < nc; c++) {
      const v = voxel(r, c)
      if (groundTruth && groundTruth[v] > 0) gtCount++
      if (prediction[v] > 0) predCount++
    }
  // Square pixels in mm, enlarged for small slices, capped for large ones.
  const sc = image.spacing[cols.axis]
  const sr = image.spacing[rows.axis]
  const wMm = nc * sc
  const hMm = nr * sr
  let pxPerMm = Math.max(1, Math.ceil(MIN_PANEL / Math.max(nc, nr))) / Math.min(sc, sr)
  if (Math.max(wMm, hMm) * pxPerMm > MAX_PANEL) pxPerMm = MAX_PANEL / Math.max(wMm, hMm)
  const pw = Math.max(1, Math.round(wMm * pxPerMm))
  const ph = Math.max(1, Math.round(hMm * pxPerMm))
  const width = 3 * pw + 2 * GAP
  const height = ph
  const rgb = new Uint8Array(width * height * 3)
  const colors = new Map(labels.map((l) => [l.value, l.color]))
  for (let y = 0; y < ph; y++) {
    const r = Math.min(nr - 1, Math.floor(y / (sr * pxPerMm)))
    for (let x = 0; x < pw; x++) {
      const c = Math.min(nc - 1, Math.floor(x / (sc * pxPerMm)))
      const g = grey(values[r * nc + c])
      const v = voxel(r, c)
      const masks = [null, groundTruth ? groundTruth[v] : 0, prediction[v]]
      for (let p = 0; p < 3; p++) {
        const o = (y * width + p * (pw + GAP) + x) * 3
        const cls = masks[p] ?? 0
        const color = cls > 0 ? (colors.get(cls) ?? labelColor(cls)) : null
        for (let ch = 0; ch < 3; ch++)
          rgb[o + ch] = color ? Math.round((1 - ALPHA) * g + ALPHA * color[ch]) : g
      }
    }
  }
  const png = encode({ width, height, data: rgb, channels: 3, depth: 8 })
  return {
    index,
    count,
    axis,
    foreground: { groundTruth: gtCount, prediction: predCount },
    png,
    width,
    height,
    panel: { width: pw, height: ph, gap: GAP },
  }
}

function toClasses(vol: Volume, map: LabelMap | null, file: string): Uint8Array {
  if (map) return applyLabelMap(vol.data, map, file)
  return Uint8Array.from(vol.data, (v) => (Number.isInteger(v) && v > 0 && v < 256 ? v : 0))
}

function sameGrid(
  a: Pick<Volume, 'shape' | 'affine'>,
  b: Pick<Volume, 'shape' | 'affine'>,
): boolean {
  if (a.shape.some((v, i) => v !== b.shape[i])) return false
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++) if (Math.abs(a.affine[r][c] - b.affine[r][c]) > 1e-3) return false
  return true
}

/** The labels of a set (foreground classes with names and the viewer's colours). */
export function sliceLabels(m: PredictionsManifest): SliceLabel[] {
  const classes = m.labelMap?.classes ?? {}
  return Array.from({ length: Math.max(0, m.classes - 1) }, (_, i) => i + 1).map((value) => ({
    value,
    name: classes[String(value)] ?? `class ${value}`,
    color: labelColor(value),
  }))
}

/** Read one predicted case (image channel 0, ground truth, prediction on one grid) and draw its slice. */
export async function caseSlice(
  dir: string,
  m: PredictionsManifest,
  caseId: string,
): Promise<Omit<ReportSlice, 'roles' | 'set' | 'fold' | 'meanDice'>> {
  const c = m.cases.find((x) => x.caseId === caseId)
  if (!c)
    throw new DsdError('CASE_NOT_FOUND', `${dir}: case "${caseId}" was not predicted`, { caseId })
  const predFile = join(dir, c.file)
  const pred = await readNifti(predFile)
  let image = await readVolume(c.images[0])
  if (!sameGrid(image, pred)) image = alignToGrid(image, pred)
  let gt: Uint8Array | null = null
  if (c.label) {
    let g = await readVolume(c.label)
    if (!sameGrid(g, pred)) g = alignToGrid(g, pred)
    gt = toClasses(g, m.labelMap ?? null, c.label)
  }
  const n = pred.shape[0] * pred.shape[1] * pred.shape[2]
  const labels = sliceLabels(m)
  const drawn = renderSlice(
    { ...pred, data: image.data.subarray(0, n) },
    gt,
    toClasses(pred, null, predFile),
    labels,
  )
  return { caseId, labels, ...drawn }
}

/**
 * The report's slices for the worst and the median case (by mean Dice) over the cases of all
 * `sources` together.
 */
export async function reportSlices(
  sources: SliceSource[],
  signal?: AbortSignal,
): Promise<ReportSlice[]> {
  const candidates = sources.flatMap((s) => caseMeanDice(s.table).map((c) => ({ ...c, source: s })))
  const out: ReportSlice[] = []
  for (const { roles, item } of pickWorstAndMedian(candidates)) {
    if (signal?.aborted)
      throw new DsdError('CANCELLED', 'cancelled while drawing the report slices', {})
    const drawn = await caseSlice(item.source.dir, item.source.manifest, item.caseId)
    out.push({ ...drawn, roles, set: item.source.title, fold: item.fold, meanDice: item.meanDice })
  }
  return out
}
