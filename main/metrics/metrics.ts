/**
 * Per-label segmentation metrics: Dice, HD95, ASSD and NSD (normalised surface distance).
 *
 * Definitions (MONAI-compatible, as in shared/golden/metrics/expected.json):
 * - surface = mask XOR 6-connected erosion, outside the volume = background (surface.ts);
 * - distances are Euclidean in mm (the voxel spacing) or in voxels (`voxelUnits`), from each
 *   surface voxel of one mask to the nearest surface voxel of the other (edt.ts);
 * - HD95 = max of the two directed 95th percentiles (numpy's linear interpolation);
 * - ASSD = mean of the two directed mean surface distances;
 * - NSD(τ) = (#pred-surface within τ of gt + #gt-surface within τ of pred) / (#pred + #gt
 *   surface voxels), "within" meaning ≤ τ;
 * - Dice = 2|P∩G| / (|P| + |G|).
 *
 * A label absent from the ground truth gives null for every metric with a `reason`; a label
 * absent only from the prediction gives Dice 0, null distances and `emptyPrediction: true`.
 *
 * Each label's distance transforms run on the union bounding box of its prediction and ground
 * truth voxels only (every surface voxel of both lies inside it, so the distances are exact).
 * Pure typed-array code: no Node or DOM APIs, usable in a worker or the renderer.
 */
import { DsdError } from '../errors'
import type { Vec3 } from '../data/volume'
import { createWorkspace, distancesAtQueries, type EdtWorkspace } from './edt'
import { markLabelSurface, type Box, type LabelData } from './surface'
import { percentile, sum } from './stats'

/** Options of computeMetrics. */
export interface MetricsOptions {
  /** [nx, ny, nz] of both label maps (i-fastest layout). */
  shape: Vec3
  /** Voxel size in mm along i, j, k (ignored for distances when `voxelUnits`). */
  spacing: Vec3
  /** Label values to score; default: every value present in either map except 0. */
  labels?: number[]
  /** NSD tolerance, in mm (or in voxels with `voxelUnits`); default 1. */
  nsdTolerance?: number
  /** Measure distances in voxel units (spacing 1, 1, 1), as the paper's code does. */
  voxelUnits?: boolean
  /** Percentile for the Hausdorff distance; default 95. */
  percentile?: number
}

/** Metrics of one label. Distances are in mm, or voxels when `units` is 'voxel'. */
export interface LabelMetrics {
  dice: number | null
  hd95: number | null
  assd: number | null
  nsd: number | null
  /** Present (true) when the label is in the ground truth but not in the prediction. */
  emptyPrediction?: true
  /** Why some values are null. */
  reason?: string
}

/** Result of computeMetrics: one entry per label value (as a string key). */
export interface MetricsResult {
  labels: Record<string, LabelMetrics>
  units: 'mm' | 'voxel'
  /** The spacing the distances used ([1, 1, 1] in voxel units). */
  spacing: Vec3
  nsdTolerance: number
}

/** Per-label voxel counts, intersection and union bounding box, from one pass over both maps. */
interface LabelTally {
  value: number
  pred: number
  gt: number
  both: number
  lo: Vec3
  hi: Vec3
}

function newTally(value: number): LabelTally {
  return {
    value,
    pred: 0,
    gt: 0,
    both: 0,
    lo: [Infinity, Infinity, Infinity],
    hi: [-1, -1, -1],
  }
}

/**
 * One pass over both maps: per label value, voxel counts in each map, their intersection and
 * the union bounding box. Value 0 is background and is not tallied unless `withZero`.
 */
function tally(
  pred: LabelData,
  gt: LabelData,
  shape: Vec3,
  withZero: boolean,
): Map<number, LabelTally> {
  const [nx, ny, nz] = shape
  const byValue = new Map<number, LabelTally>()
  const get = (value: number): LabelTally => {
    let t = byValue.get(value)
    if (!t) {
      if (!Number.isFinite(value))
        throw new DsdError(
          'METRICS_BAD_LABEL',
          `label maps must hold finite label values, found ${value}`,
          {
            value,
          },
        )
      t = newTally(value)
      byValue.set(value, t)
    }
    return t
  }
  /** Grow a label's bounding box by voxel (i, j, k); voxels come in k order, so hi[2] = k. */
  const extend = (t: LabelTally, i: number, j: number, k: number): void => {
    if (i < t.lo[0]) t.lo[0] = i
    if (i > t.hi[0]) t.hi[0] = i
    if (j < t.lo[1]) t.lo[1] = j
    if (j > t.hi[1]) t.hi[1] = j
    if (k < t.lo[2]) t.lo[2] = k
    t.hi[2] = k
  }
  let lastP = NaN
  let tp: LabelTally | null = null
  let lastG = NaN
  let tg: LabelTally | null = null
  const visit = (p: number, g: number, i: number, j: number, k: number): void => {
    if (p !== 0 || withZero) {
      if (p !== lastP) {
        lastP = p
        tp = get(p)
      }
      const t = tp!
      t.pred++
      if (p === g) t.both++
      extend(t, i, j, k)
    }
    if (g !== 0 || withZero) {
      if (g !== lastG) {
        lastG = g
        tg = get(g)
      }
      const t = tg!
      t.gt++
      extend(t, i, j, k)
    }
  }
  // Fast path for byte label maps: skip 4 background voxels at a time (aligned 32-bit words).
  const bytes =
    !withZero &&
    pred instanceof Uint8Array &&
    gt instanceof Uint8Array &&
    pred.byteOffset % 4 === 0 &&
    gt.byteOffset % 4 === 0
  if (bytes) {
    const words = pred.length >> 2
    const p32 = new Uint32Array(pred.buffer, pred.byteOffset, words)
    const g32 = new Uint32Array(gt.buffer, gt.byteOffset, words)
    for (let k = 0, idx = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx;) {
          if ((idx & 3) === 0 && i + 4 <= nx && (p32[idx >> 2] | g32[idx >> 2]) === 0) {
            i += 4
            idx += 4
            continue
          }
          const p = pred[idx]
          const g = gt[idx]
          if (p !== 0 || g !== 0) visit(p, g, i, j, k)
          i++
          idx++
        }
      }
    }
    return byValue
  }
  for (let k = 0, idx = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, idx++) {
        const p = pred[idx]
        const g = gt[idx]
        if (p !== 0 || g !== 0 || withZero) visit(p, g, i, j, k)
      }
    }
  }
  return byValue
}

/** Surface distances of one label present in both maps, on its bounding box. */
function surfaceMetrics(
  pred: LabelData,
  gt: LabelData,
  shape: Vec3,
  spacing: Vec3,
  t: LabelTally,
  tolerance: number,
  q: number,
  ws: EdtWorkspace,
  flagBuf: { flags: Uint8Array },
): { hd: number; assd: number; nsd: number } {
  const box: Box = { lo: t.lo, hi: t.hi }
  const bshape: Vec3 = [t.hi[0] - t.lo[0] + 1, t.hi[1] - t.lo[1] + 1, t.hi[2] - t.lo[2] + 1]
  const n = bshape[0] * bshape[1] * bshape[2]
  if (flagBuf.flags.length < n) flagBuf.flags = new Uint8Array(n)
  const flags = flagBuf.flags.subarray(0, n)
  flags.fill(0)
  const PRED = 1
  const GT = 2
  const nPred = markLabelSurface(pred, shape, t.value, box, flags, PRED)
  const nGt = markLabelSurface(gt, shape, t.value, box, flags, GT)
  const predToGt = distancesAtQueries(flags, GT, PRED, bshape, spacing, ws)
  const gtToPred = distancesAtQueries(flags, PRED, GT, bshape, spacing, ws)
  if (predToGt.length !== nPred || gtToPred.length !== nGt)
    throw new Error('metrics: surface voxel counts disagree (internal error)')
  let within = 0
  for (let i = 0; i < predToGt.length; i++) if (predToGt[i] <= tolerance) within++
  for (let i = 0; i < gtToPred.length; i++) if (gtToPred[i] <= tolerance) within++
  const meanPG = sum(predToGt) / nPred
  const meanGP = sum(gtToPred) / nGt
  const hd = Math.max(percentile(predToGt, q, true), percentile(gtToPred, q, true))
  return { hd, assd: (meanPG + meanGP) / 2, nsd: within / (nPred + nGt) }
}

/**
 * Dice, HD95, ASSD and NSD per label of a predicted label map against the ground truth. Both
 * maps are flat i-fastest arrays of `shape` (any typed array; values are compared exactly).
 */
export function computeMetrics(
  pred: LabelData,
  gt: LabelData,
  options: MetricsOptions,
): MetricsResult {
  const { shape } = options
  const voxels = shape[0] * shape[1] * shape[2]
  if (!shape.every((s) => Number.isInteger(s) && s > 0))
    throw new DsdError(
      'METRICS_BAD_SHAPE',
      `metrics: shape must be 3 positive integers, got [${shape.join(', ')}]`,
      {
        shape,
      },
    )
  for (const [name, arr] of [
    ['prediction', pred],
    ['ground truth', gt],
  ] as const) {
    if (arr.length !== voxels)
      throw new DsdError(
        'METRICS_SHAPE_MISMATCH',
        `metrics: the ${name} has ${arr.length} voxels but shape [${shape.join(', ')}] needs ${voxels}; ` +
          'pass label maps on the same grid',
        { shape, length: arr.length },
      )
  }
  const units = options.voxelUnits ? 'voxel' : 'mm'
  const spacing: Vec3 = options.voxelUnits ? [1, 1, 1] : options.spacing
  if (!spacing.every((s) => Number.isFinite(s) && s > 0))
    throw new DsdError(
      'METRICS_BAD_SPACING',
      `metrics: spacing must be 3 positive numbers, got [${spacing.join(', ')}]`,
      {
        spacing,
      },
    )
  const tolerance = options.nsdTolerance ?? 1
  if (!(tolerance >= 0))
    throw new DsdError(
      'METRICS_BAD_TOLERANCE',
      `metrics: the NSD tolerance must be ≥ 0, got ${tolerance}`,
      {
        tolerance,
      },
    )
  const q = options.percentile ?? 95
  if (!(q >= 0 && q <= 100))
    throw new DsdError(
      'METRICS_BAD_PERCENTILE',
      `metrics: the percentile must be in [0, 100], got ${q}`,
      { q },
    )

  const wanted = options.labels
  const tallies = tally(pred, gt, shape, wanted?.includes(0) ?? false)
  const values = wanted ? [...new Set(wanted)] : [...tallies.keys()].filter((v) => v !== 0)
  values.sort((a, b) => a - b)

  const ws = createWorkspace()
  const flagBuf = { flags: new Uint8Array(0) }
  const labels: Record<string, LabelMetrics> = {}
  for (const value of values) {
    const t = tallies.get(value) ?? newTally(value)
    const key = String(value)
    if (t.gt === 0) {
      labels[key] = {
        dice: null,
        hd95: null,
        assd: null,
        nsd: null,
        reason:
          t.pred === 0
            ? 'label absent from both the prediction and the ground truth'
            : 'label absent from the ground truth',
      }
    } else if (t.pred === 0) {
      labels[key] = {
        dice: 0,
        hd95: null,
        assd: null,
        nsd: null,
        emptyPrediction: true,
        reason: 'label absent from the prediction: surface distances are undefined',
      }
    } else {
      const s = surfaceMetrics(pred, gt, shape, spacing, t, tolerance, q, ws, flagBuf)
      labels[key] = { dice: (2 * t.both) / (t.pred + t.gt), hd95: s.hd, assd: s.assd, nsd: s.nsd }
    }
  }
  return { labels, units, spacing: [...spacing], nsdTolerance: tolerance }
}
