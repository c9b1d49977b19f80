/**
 * Preprocessing (dsd-spec §4): resampling to a target spacing (trilinear images, nearest
 * labels; MONAI `Spacingd`), reorientation to RAS (`Orientationd`), CT windowing
 * (`ScaleIntensityRanged`, clip to 0..1) then non-zero z-score, or per-channel non-zero z-score
 * for MRI (`NormalizeIntensityd(nonzero=True, channel_wise=True)`). The result is a Float32
 * channels-last image `[nz][ny][nx][C]` (a `[d, h, w, c]` tensor, i fastest) plus a Uint8
 * class map `[nz][ny][nx]`, and what is needed to map a prediction back to the original grid.
 */
import { createHash } from 'node:crypto'
import { DsdError } from '../errors'
import { applyLabelMap, type LabelMap } from './labels'
import {
  invertAxisTransform,
  isIdentityTransform,
  rasTransform,
  resampleToGrid,
  sameGrid,
  spacingGrid,
  isIdentityResample,
  spacingOf,
  transformGrid,
  transformVolume,
  type AxisTransform,
  type Grid,
} from './resample'
import type { Mat4, Vec3, Volume } from './volume'

/** Bump when the preprocessing code changes results: invalidates every cache entry. */
export const PREPROCESS_VERSION = 1

/** Intensity normalisation. */
export type IntensitySettings =
  /** CT: clip to [min, max] HU and scale to 0..1, then (optionally) non-zero z-score. */
  | { kind: 'ct'; window: [number, number]; zscore: boolean }
  /** MRI: per-channel z-score over the non-zero voxels. */
  | { kind: 'zscore' }
  | { kind: 'none' }

/** Preprocessing settings; their hash keys the workspace cache. */
export interface PreprocessSettings {
  /** Target voxel size in mm along the voxel axes (MONAI `pixdim`); null keeps the spacing. */
  spacing: Vec3 | null
  /** Reorient to RAS (true in both paper pipelines). */
  reorient: boolean
  intensity: IntensitySettings
}

/** The paper pipelines (spec §4) and a default for MRI datasets such as hippocampus. */
export const PREPROCESS_PRESETS: Record<string, PreprocessSettings> = {
  mmwhs: {
    spacing: [1.5, 1.5, 2.0],
    reorient: true,
    intensity: { kind: 'ct', window: [-175, 250], zscore: true },
  },
  brats: { spacing: null, reorient: true, intensity: { kind: 'zscore' } },
  mri: { spacing: null, reorient: true, intensity: { kind: 'zscore' } },
}

/** A stable hash of the settings (+ label map + code version): the cache key. */
export function settingsHash(settings: PreprocessSettings, labelMap?: LabelMap | null): string {
  const canon = canonicalJson({ v: PREPROCESS_VERSION, settings, labelMap: labelMap ?? null })
  return createHash('sha256').update(canon).digest('hex').slice(0, 16)
}

/** JSON with sorted object keys (for hashing). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v)
}

/** What the inverse mapping needs (JSON-serialisable; stored in the cache entry). */
export interface InverseInfo {
  /** The image grid as read from disk. */
  original: Grid
  /** The grid after resampling, before reorientation (equals `original` when not resampled). */
  resampled: Grid
  resampledApplied: boolean
  /** Axis transform from the resampled grid to the final (RAS) grid. */
  orientation: AxisTransform
}

/** A preprocessed case, ready for sampling and the engine. */
export interface PreparedCase {
  id: string
  /** Spatial shape [nx, ny, nz] of the final grid. */
  shape: Vec3
  channels: number
  spacing: Vec3
  /** Voxel → world (RAS mm) of the final grid. */
  affine: Mat4
  /** Float32, channels-last: index = ((k·ny + j)·nx + i)·C + c. */
  image: Float32Array
  /** Class indices (after the label map), index = (k·ny + j)·nx + i; null without a label. */
  label: Uint8Array | null
  inverse: InverseInfo
}

function sameGeometryError(
  code: string,
  what: string,
  a: Volume,
  b: Volume,
  fix: string,
): DsdError {
  const fmt = (v: Volume) =>
    `${v.shape.join('×')} at ${v.spacing.map((s) => +s.toFixed(4)).join('×')} mm`
  return new DsdError(
    code,
    `${b.source ?? 'volume'}: ${what} ${fmt(b)} does not match ${a.source ?? 'the image'} (${fmt(a)}); ${fix}`,
    {
      file: b.source,
      reference: a.source,
      shape: b.shape,
      expectedShape: a.shape,
    },
  )
}

/** Concatenate single- or multi-channel volumes on one grid into one multi-channel volume. */
export function stackChannels(images: Volume[]): Volume {
  if (images.length === 0)
    throw new DsdError('PREPROCESS_NO_IMAGE', 'a case needs at least one image', {})
  if (images.length === 1) return images[0]
  const first = images[0]
  for (const v of images.slice(1)) {
    if (!sameGrid(first, v, 1e-3)) {
      throw sameGeometryError(
        'CHANNEL_GRID_MISMATCH',
        'channel grid',
        first,
        v,
        'all channels of a case must share one grid — resample them onto the first channel',
      )
    }
  }
  const n = first.shape[0] * first.shape[1] * first.shape[2]
  const channels = images.reduce((s, v) => s + v.channels, 0)
  const data = new Float32Array(n * channels)
  let off = 0
  for (const v of images) {
    for (let i = 0; i < v.data.length; i++) data[off + i] = v.data[i]
    off += v.data.length
  }
  return { ...first, channels, datatype: 'float32', data }
}

/**
 * Preprocess one case already in memory: `images` (one volume per channel, or one
 * multi-channel volume), an optional raw `label` volume and the label map to apply to it.
 * Throws DsdError naming the file when the label grid does not match the image.
 */
export function preprocessVolumes(
  id: string,
  images: Volume[],
  label: Volume | null,
  settings: PreprocessSettings,
  labelMap?: LabelMap | null,
): PreparedCase {
  let img = stackChannels(images)
  const original: Grid = {
    shape: [...img.shape] as Vec3,
    affine: img.affine.map((r) => [...r]) as Mat4,
  }
  let lab: Volume | null = null
  if (label) {
    if (label.channels !== 1) {
      throw new DsdError(
        'LABEL_MULTICHANNEL',
        `${label.source ?? 'label'}: the label map has ${label.channels} channels; a label map must be a single 3D volume of class values`,
        { file: label.source },
      )
    }
    if (
      label.shape.some((v, i) => v !== img.shape[i]) ||
      !sameGrid(img, label, 1e-3 * Math.max(1, ...img.spacing))
    ) {
      throw sameGeometryError(
        'LABEL_GRID_MISMATCH',
        'label grid',
        img,
        label,
        'the label map must be on the image grid — resample it onto the image (nearest neighbour) or pair it with the right image',
      )
    }
    const classes = labelMap
      ? applyLabelMap(label.data, labelMap, label.source ?? `${id} label`)
      : toUint8Labels(label)
    lab = { ...label, affine: img.affine, spacing: img.spacing, datatype: 'uint8', data: classes }
  }
  // 1. Spacing
  let resampled: Grid = original
  let resampledApplied = false
  if (settings.spacing) {
    const g = spacingGrid(img, settings.spacing)
    if (!isIdentityResample(img, g)) {
      img = resampleToGrid(img, g, 'linear')
      if (lab) lab = resampleToGrid(lab, g, 'nearest')
      resampled = g
      resampledApplied = true
    }
  }
  // 2. Orientation
  const orientation: AxisTransform = settings.reorient
    ? rasTransform(img.affine)
    : { to: [0, 1, 2], flip: [false, false, false] }
  img = transformVolume(img, orientation)
  if (lab) lab = transformVolume(lab, orientation)
  // 3. Intensity, into channels-last Float32
  const n = img.shape[0] * img.shape[1] * img.shape[2]
  const C = img.channels
  const out = new Float32Array(n * C)
  for (let c = 0; c < C; c++) {
    const ch = new Float32Array(n)
    for (let i = 0; i < n; i++) ch[i] = img.data[c * n + i]
    normaliseChannel(ch, settings.intensity, img.source)
    for (let i = 0; i < n; i++) out[i * C + c] = ch[i]
  }
  return {
    id,
    shape: img.shape,
    channels: C,
    spacing: spacingOf(img.affine),
    affine: img.affine,
    image: out,
    label: lab ? (lab.data as Uint8Array) : null,
    inverse: { original, resampled, resampledApplied, orientation },
  }
}

function toUint8Labels(label: Volume): Uint8Array {
  const out = new Uint8Array(label.data.length)
  for (let i = 0; i < out.length; i++) {
    const v = label.data[i]
    if (!(v >= 0 && v <= 255 && Number.isInteger(v))) {
      throw new DsdError(
        'LABEL_UNMAPPED',
        `${label.source ?? 'label'}: label value ${v} is not a class index 0–255; set a label remapping for this dataset`,
        { file: label.source, value: v },
      )
    }
    out[i] = v
  }
  return out
}

/** Apply one intensity step to one channel in place (exported for tests). */
export function normaliseChannel(ch: Float32Array, s: IntensitySettings, source?: string): void {
  for (let i = 0; i < ch.length; i++) {
    if (!Number.isFinite(ch[i])) {
      throw new DsdError(
        'IMAGE_NOT_FINITE',
        `${source ?? 'image'}: voxel ${i} is ${ch[i]}; the image holds NaN or Inf — fix or re-export it (the audit lists such files)`,
        { file: source, voxel: i },
      )
    }
  }
  if (s.kind === 'none') return
  if (s.kind === 'ct') {
    const [a, b] = s.window
    if (!(b > a))
      throw new DsdError(
        'PREPROCESS_BAD_WINDOW',
        `CT window [${a}, ${b}] is empty; the maximum must exceed the minimum`,
        { window: s.window },
      )
    for (let i = 0; i < ch.length; i++) {
      const v = (ch[i] - a) / (b - a)
      ch[i] = v < 0 ? 0 : v > 1 ? 1 : v
    }
    if (!s.zscore) return
  }
  zscoreNonzero(ch)
}

/** MONAI NormalizeIntensity(nonzero=True): z-score over voxels ≠ 0; zeros stay 0; std 0 → 1. */
export function zscoreNonzero(ch: Float32Array): void {
  let count = 0
  let sum = 0
  for (let i = 0; i < ch.length; i++) {
    if (ch[i] !== 0) {
      sum += ch[i]
      count++
    }
  }
  if (count === 0) return
  const mean = sum / count
  let ss = 0
  for (let i = 0; i < ch.length; i++) {
    if (ch[i] !== 0) {
      const d = ch[i] - mean
      ss += d * d
    }
  }
  let std = Math.sqrt(ss / count)
  if (std === 0) std = 1
  for (let i = 0; i < ch.length; i++) if (ch[i] !== 0) ch[i] = (ch[i] - mean) / std
}

/**
 * Map a class map on the preprocessed grid (`[nz][ny][nx]`, i fastest) back to the original
 * image grid: undo the reorientation exactly, then nearest-neighbour resampling when the case
 * was resampled. Returns a uint8 Volume with the original shape and affine.
 */
export function invertLabelMap(
  pred: Uint8Array,
  prepared: Pick<PreparedCase, 'shape' | 'affine' | 'inverse'>,
): Volume {
  const n = prepared.shape[0] * prepared.shape[1] * prepared.shape[2]
  if (pred.length !== n) {
    throw new DsdError(
      'PREDICTION_SHAPE',
      `prediction has ${pred.length} voxels but the preprocessed grid ${prepared.shape.join('×')} has ${n}; predict on the preprocessed case`,
      {},
    )
  }
  const inv = prepared.inverse
  let vol: Volume = {
    shape: [...prepared.shape] as Vec3,
    channels: 1,
    spacing: spacingOf(prepared.affine),
    affine: prepared.affine,
    datatype: 'uint8',
    data: pred,
  }
  if (!isIdentityTransform(inv.orientation))
    vol = transformVolume(vol, invertAxisTransform(inv.orientation))
  if (inv.resampledApplied) vol = resampleToGrid(vol, inv.original, 'nearest')
  return {
    ...vol,
    shape: [...inv.original.shape] as Vec3,
    affine: inv.original.affine,
    spacing: spacingOf(inv.original.affine),
  }
}

/** The final grid of a case without reading voxels (for planning and checks). */
export function preprocessedGrid(original: Grid, settings: PreprocessSettings): Grid {
  let g = original
  if (settings.spacing) {
    const s = spacingGrid(g, settings.spacing)
    if (!isIdentityResample(g, s)) g = s
  }
  return settings.reorient ? transformGrid(g, rasTransform(g.affine)) : g
}
