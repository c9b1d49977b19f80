/**
 * `dsd metrics`: Dice, HD95, ASSD and NSD per label of a predicted label map against the
 * ground truth (see docs/metrics.md).
 */
import { basename } from 'node:path'
import { DsdError } from '../errors'
import type { Mat4, Vec3, Volume } from '../data/volume'
import type { NiftiVolume } from '../data/nifti'
import { alignToGrid, readVolume } from '../data/volume-io'
import { computeMetrics, type LabelMetrics } from '../metrics'
import { CliError, numberOption, parse, printJson } from './args'

export const summary = 'Dice, HD95, ASSD and NSD per label of a prediction against a label map'
export const usage = `Usage: dsd metrics --pred PRED.nii.gz --label LABEL.nii.gz [options]

Scores a predicted label map against the ground truth, per label value: Dice, HD95 (95th
percentile Hausdorff distance), ASSD (average symmetric surface distance) and NSD (normalised
surface distance within a tolerance). Definitions are MONAI's (surface = mask XOR 6-connected
erosion, exact Euclidean distance transform); see docs/metrics.md.

Options:
  --pred FILE            predicted label map (NIfTI, NRRD or a DICOM series folder)
  --label FILE           ground-truth label map on the same grid (a prediction whose grid
                         differs only by axis flips/permutations is reordered onto it)
  --voxel-units          distances in voxels instead of mm (the paper's HD95); the NSD
                         tolerance is then in voxels too
  --nsd-tolerance X      NSD tolerance in mm (voxels with --voxel-units); default 1
  --labels 1,2,3         label values to score (default: all values in either map except 0)
  --spacing X,Y,Z        voxel size in mm (default: the label file's pixdim)
  --no-affine-check      score even when the two files' affines differ
  --json                 print JSON: { "labels": { "<value>": { dice, hd95, assd, nsd } }, … }

A label absent from the ground truth gets null values with a "reason"; a label absent only
from the prediction gets Dice 0, null distances and "empty_prediction": true.`

/** Largest absolute difference allowed between the two affines' entries (mm). */
const AFFINE_TOLERANCE = 1e-3

function parseList(name: string, value: string, count?: number): number[] {
  const parts = value.split(',').map((s) => s.trim())
  const nums = parts.map(Number)
  if (
    parts.some((s) => s === '') ||
    nums.some((n) => !Number.isFinite(n)) ||
    (count && nums.length !== count)
  )
    throw new CliError(
      `--${name} must be ${count ? `${count} ` : ''}comma-separated numbers, got "${value}"`,
    )
  return nums
}

function affineDiff(a: Mat4, b: Mat4): number {
  let worst = 0
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++) worst = Math.max(worst, Math.abs(a[r][c] - b[r][c]))
  return worst
}

/**
 * The prediction on the label's grid: as is when shape and affine match, reordered when the
 * grids differ only by axis flips/permutations, else a DsdError naming both files.
 */
export function onLabelGrid(
  pred: Volume,
  label: Volume,
  checkAffine = true,
): { pred: Volume; reordered: boolean } {
  const p = pred.source ?? 'prediction'
  const l = label.source ?? 'label'
  for (const v of [pred, label]) {
    if (v.channels !== 1)
      throw new DsdError(
        'METRICS_NOT_LABEL_MAP',
        `${v.source}: has ${v.channels} channels; a label map is one 3D volume of label values`,
        { file: v.source, channels: v.channels },
      )
  }
  const sameShape = pred.shape.every((n, i) => n === label.shape[i])
  const diff = affineDiff(pred.affine, label.affine)
  if (sameShape && (!checkAffine || diff <= AFFINE_TOLERANCE)) return { pred, reordered: false }
  // Axes flipped or permuted (e.g. LPS vs RAS storage): reorder onto the label grid when the
  // voxel centres coincide (alignToGrid: within 0.1 voxel).
  const axesDiffer = [0, 1, 2].some((c) => {
    const a = [0, 1, 2].map((r) => pred.affine[r][c])
    const b = [0, 1, 2].map((r) => label.affine[r][c])
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2] <= 0.5 * Math.hypot(...a) * Math.hypot(...b)
  })
  if (axesDiffer) {
    try {
      return { pred: alignToGrid(pred, label), reordered: true }
    } catch {
      // not a reordering of the same grid: report below
    }
  }
  if (!sameShape)
    throw new DsdError(
      'METRICS_GRID_MISMATCH',
      `${p}: grid ${pred.shape.join('×')} does not match ${basename(l)} (${label.shape.join('×')}); ` +
        'resample the prediction onto the label grid (nearest neighbour) first',
      { pred: p, label: l, predShape: pred.shape, labelShape: label.shape },
    )
  throw new DsdError(
    'METRICS_GRID_MISMATCH',
    `${p}: voxel-to-world affine differs from ${basename(l)} by up to ${diff.toPrecision(3)} mm ` +
      `(tolerance ${AFFINE_TOLERANCE} mm), so the voxels are not the same places; resample the ` +
      'prediction onto the label grid, or pass --no-affine-check if you know they match',
    {
      pred: p,
      label: l,
      maxDifference: diff,
      predAffine: pred.affine,
      labelAffine: label.affine,
    },
  )
}

/** The label file's voxel size: NIfTI pixdim (as nibabel's get_zooms), else the affine's. */
function fileSpacing(v: Volume): Vec3 {
  const pd = (v as Partial<NiftiVolume>).header?.pixdim
  if (pd && [1, 2, 3].every((i) => Number.isFinite(pd[i]) && Math.abs(pd[i]) > 0))
    return [Math.abs(pd[1]), Math.abs(pd[2]), Math.abs(pd[3])]
  return v.spacing
}

/** One label's metrics in the shape of shared/golden/metrics/expected.json. */
function toJsonLabel(m: LabelMetrics): Record<string, unknown> {
  const out: Record<string, unknown> = { dice: m.dice, hd95: m.hd95, assd: m.assd, nsd: m.nsd }
  if (m.emptyPrediction) out.empty_prediction = true
  if (m.reason) out.reason = m.reason
  return out
}

const fmt = (x: number | null, digits = 4) => (x === null ? '—' : x.toFixed(digits))

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      pred: { type: 'string' },
      label: { type: 'string' },
      'voxel-units': { type: 'boolean' },
      'nsd-tolerance': { type: 'string' },
      labels: { type: 'string' },
      spacing: { type: 'string' },
      'no-affine-check': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    false,
  )
  if (positionals.length) throw new CliError(`unexpected argument "${positionals[0]}"`)
  if (!values.pred || !values.label)
    throw new CliError('--pred and --label are both required. Run with --help for the options.')
  const tolerance = numberOption('nsd-tolerance', values['nsd-tolerance'], 1, { min: 0 })
  const labels = values.labels !== undefined ? parseList('labels', values.labels) : undefined
  let spacing: Vec3 | undefined
  if (values.spacing !== undefined) {
    spacing = parseList('spacing', values.spacing, 3) as Vec3
    if (spacing.some((s) => s <= 0))
      throw new CliError(`--spacing values must be > 0, got "${values.spacing}"`)
  }

  const [rawPred, label] = await Promise.all([readVolume(values.pred), readVolume(values.label)])
  const { pred, reordered } = onLabelGrid(rawPred, label, !values['no-affine-check'])
  spacing ??= fileSpacing(label)
  const voxelUnits = values['voxel-units'] ?? false
  const result = computeMetrics(pred.data, label.data, {
    shape: label.shape,
    spacing,
    labels,
    nsdTolerance: tolerance,
    voxelUnits,
  })

  if (values.json) {
    const out: Record<string, unknown> = {
      prediction: values.pred,
      ground_truth: values.label,
      units: result.units,
      prediction_reordered: reordered,
      spacing_mm: spacing,
      nsd_tolerance: tolerance,
      labels: Object.fromEntries(
        Object.entries(result.labels).map(([k, m]) => [k, toJsonLabel(m)]),
      ),
    }
    printJson(out)
    return 0
  }
  const unit = voxelUnits ? 'vox' : 'mm'
  const lines = [
    `prediction:   ${values.pred}`,
    `ground truth: ${values.label}`,
    ...(reordered ? ['(prediction axes reordered/flipped onto the label grid)'] : []),
    `grid ${label.shape.join('×')}, spacing ${spacing.map((s) => +s.toFixed(6)).join(' × ')} mm, ` +
      `distances in ${voxelUnits ? 'voxels' : 'mm'}, NSD tolerance ${tolerance} ${unit}`,
    '',
    `${'label'.padEnd(7)}${'Dice'.padStart(8)}${`HD95 (${unit})`.padStart(13)}${`ASSD (${unit})`.padStart(13)}${'NSD'.padStart(8)}`,
  ]
  for (const [k, m] of Object.entries(result.labels)) {
    lines.push(
      `${k.padEnd(7)}${fmt(m.dice).padStart(8)}${fmt(m.hd95, 3).padStart(13)}${fmt(m.assd, 3).padStart(13)}` +
        `${fmt(m.nsd).padStart(8)}${m.reason ? `  (${m.reason})` : ''}`,
    )
  }
  if (Object.keys(result.labels).length === 0) lines.push('(no labels other than 0 in either file)')
  console.log(lines.join('\n'))
  return 0
}
