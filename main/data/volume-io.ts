/**
 * The one way to read a volume: `readVolume` picks the reader from the path (NIfTI, NRRD, a
 * DICOM folder or one file of a DICOM series) and `readVolumeHeader` gives the geometry
 * without the voxels (header-only for NIfTI). Dataset import, audit, training, prediction,
 * evaluation and the CLI all read through here. `writeVolume` writes NIfTI, and `alignToGrid`
 * reorders a volume onto another grid that differs only by axis flips or permutations (e.g. a
 * NRRD label map in LPS order onto a DICOM-derived image grid).
 */
import { stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { DsdError } from '../errors'
import { readDicomHeader, readDicomSeries, isDicomFile, type DicomVolume } from './dicom'
import { readNifti, readNiftiHeader, writeNifti, type WriteNiftiOptions } from './nifti'
import { readNrrd } from './nrrd'
import type { Mat4, Vec3, Volume, VolumeHeader } from './volume'

/** What kind of input a path is. */
export type VolumeFormat = 'nifti' | 'nrrd' | 'dicom-dir' | 'dicom-file'

export interface ReadVolumeOptions {
  /** For DICOM folders holding several series. */
  seriesUID?: string
  /** Accept 2D NIfTI files (nz = 1). */
  allow2D?: boolean
  /** Largest voxel data accepted, in bytes (default MAX_VOLUME_BYTES); checked from the header. */
  maxBytes?: number
}

export type { VolumeHeader } from './volume'

const NIFTI_RE = /\.(nii|nii\.gz|hdr|hdr\.gz)$/i
const NRRD_RE = /\.(nrrd|nhdr)$/i

/** Decide the format of `path` from the file system and extension (DICOM by its "DICM" marker). */
export async function detectFormat(path: string): Promise<VolumeFormat> {
  let s
  try {
    s = await stat(path)
  } catch {
    throw new DsdError('NOT_FOUND', `${path}: no such file or folder; check the path`, {
      file: path,
    })
  }
  if (s.isDirectory()) return 'dicom-dir'
  if (NIFTI_RE.test(path)) return 'nifti'
  if (NRRD_RE.test(path)) return 'nrrd'
  if (await isDicomFile(path)) return 'dicom-file'
  throw new DsdError(
    'UNKNOWN_FORMAT',
    `${path}: unknown volume format; use .nii/.nii.gz (NIfTI), .nrrd/.nhdr (NRRD), a DICOM file (.dcm) or a folder of DICOM files`,
    { file: path },
  )
}

/** Read a NIfTI / NRRD file, a DICOM series folder, or the series one DICOM file belongs to. */
export async function readVolume(path: string, opts: ReadVolumeOptions = {}): Promise<Volume> {
  const format = await detectFormat(path)
  const { maxBytes } = opts
  switch (format) {
    case 'nifti':
      return readNifti(path, { allow2D: opts.allow2D, maxBytes })
    case 'nrrd':
      return readNrrd(path, { maxBytes })
    case 'dicom-dir':
      return readDicomSeries(path, { seriesUID: opts.seriesUID, maxBytes })
    case 'dicom-file': {
      const { dataset } = await readDicomHeader(path)
      if (dataset.Modality === 'SEG') {
        throw new DsdError(
          'DICOM_IS_SEG',
          `${path}: is a DICOM SEG, which needs the image series it was drawn on; use \`dsd convert ${path} out.nii.gz --reference <image folder>\` (readDicomSeg)`,
          { file: path },
        )
      }
      return readDicomSeries(dirname(path), {
        seriesUID: opts.seriesUID ?? String(dataset.SeriesInstanceUID),
        recursive: false,
        maxBytes,
      })
    }
  }
}

/**
 * The geometry of a volume without its voxels: NIfTI reads only the (checked) header; the
 * other formats are read whole.
 */
export async function readVolumeHeader(path: string, opts: ReadVolumeOptions = {}): Promise<VolumeHeader> {
  if ((await detectFormat(path)) === 'nifti') {
    const h = await readNiftiHeader(path, { maxBytes: opts.maxBytes })
    return { ndim: h.ndim, shape: h.shape, channels: h.channels, spacing: h.spacing, affine: h.affine, datatype: h.datatype }
  }
  const v = await readVolume(path, opts)
  return {
    ndim: v.channels > 1 ? 4 : 3,
    shape: v.shape,
    channels: v.channels,
    spacing: v.spacing,
    affine: v.affine,
    datatype: v.datatype,
  }
}

/** Write a volume; only NIfTI (.nii / .nii.gz) is written. */
export async function writeVolume(
  path: string,
  volume: Volume,
  opts: WriteNiftiOptions = {},
): Promise<void> {
  if (!/\.nii(\.gz)?$/i.test(path)) {
    throw new DsdError(
      'UNSUPPORTED_OUTPUT',
      `${path}: only NIfTI output is supported; name the output .nii.gz or .nii`,
      { file: path },
    )
  }
  await writeNifti(path, volume, opts)
}

/** True when `v` came from a DICOM series. */
export function isDicomVolume(v: Volume): v is DicomVolume {
  return (v as Partial<DicomVolume>).dicom !== undefined
}

/**
 * Reorder `vol` onto the grid of `ref` when the two grids hold the same voxel centres and
 * differ only by axis flips/permutations (tolerance: `tol` voxels, default 0.1). Throws
 * GRID_MISMATCH otherwise (resampling is another module's job).
 */
export function alignToGrid(vol: Volume, ref: Pick<Volume, 'shape' | 'affine'>, tol = 0.1): Volume {
  const A = vol.affine
  const B = ref.affine
  const col = (M: Mat4, c: number) => [M[0][c], M[1][c], M[2][c]]
  const perm = [-1, -1, -1] // ref axis a ← vol axis perm[a]
  const sign = [1, 1, 1]
  for (let a = 0; a < 3; a++) {
    const b = col(B, a)
    const nb = Math.hypot(b[0], b[1], b[2])
    for (let v = 0; v < 3; v++) {
      const c = col(A, v)
      const nc = Math.hypot(c[0], c[1], c[2])
      const cos = (b[0] * c[0] + b[1] * c[1] + b[2] * c[2]) / (nb * nc)
      if (
        Math.abs(Math.abs(cos) - 1) < 1e-4 &&
        Math.abs(nb - nc) <= 1e-3 * nb &&
        !perm.includes(v)
      ) {
        perm[a] = v
        sign[a] = cos > 0 ? 1 : -1
        break
      }
    }
  }
  const src = vol.source ?? 'volume'
  if (perm.includes(-1)) {
    throw new DsdError(
      'GRID_MISMATCH',
      `${src}: its voxel axes are not the reference grid's axes up to flips (different orientation or spacing); resample it onto the image first`,
      { file: vol.source },
    )
  }
  const shape = ref.shape
  for (let a = 0; a < 3; a++) {
    if (vol.shape[perm[a]] !== shape[a]) {
      throw new DsdError(
        'GRID_MISMATCH',
        `${src}: shape ${vol.shape.join('×')} does not match the reference ${shape.join('×')} along any axis order; it is on another grid`,
        { file: vol.source },
      )
    }
  }
  // voxel index in vol for ref index (i,j,k): idx_v[perm[a]] = sign>0 ? x_a : n-1-x_a
  // check: world(ref voxel 0) == world(vol voxel at mapped index)
  const start = [0, 0, 0]
  for (let a = 0; a < 3; a++) start[perm[a]] = sign[a] > 0 ? 0 : shape[a] - 1
  const wv = [0, 1, 2].map(
    (r) => A[r][0] * start[0] + A[r][1] * start[1] + A[r][2] * start[2] + A[r][3],
  )
  const wr = [B[0][3], B[1][3], B[2][3]]
  const d = [wv[0] - wr[0], wv[1] - wr[1], wv[2] - wr[2]]
  const minSpacing = Math.min(...[0, 1, 2].map((c) => Math.hypot(B[0][c], B[1][c], B[2][c])))
  if (Math.hypot(d[0], d[1], d[2]) > tol * minSpacing) {
    throw new DsdError(
      'GRID_MISMATCH',
      `${src}: its voxel centres are offset by ${Math.hypot(d[0], d[1], d[2]).toFixed(4)} mm from the reference grid; it is on another grid — resample it onto the image first`,
      { file: vol.source, offsetMm: d },
    )
  }
  const [nx, ny, nz] = shape
  const vs = vol.shape
  const strides = [1, vs[0], vs[0] * vs[1]]
  const step = [0, 1, 2].map((a) => sign[a] * strides[perm[a]])
  const base0 = start[0] * strides[0] + start[1] * strides[1] + start[2] * strides[2]
  const nvox = nx * ny * nz
  // same array type as the input (scaled float data of an int16 file stays float)
  const out = new (vol.data.constructor as new (n: number) => Volume['data'])(nvox * vol.channels)
  for (let c = 0; c < vol.channels; c++) {
    const cOff = c * nvox
    let o = cOff
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        let p = cOff + base0 + k * step[2] + j * step[1]
        for (let i = 0; i < nx; i++, p += step[0]) out[o++] = vol.data[p]
      }
    }
  }
  return {
    shape: [nx, ny, nz] as Vec3,
    channels: vol.channels,
    spacing: [0, 1, 2].map((a) => Math.hypot(B[0][a], B[1][a], B[2][a])) as Vec3,
    affine: B.map((r) => [...r]) as Mat4,
    datatype: vol.datatype,
    data: out,
    source: vol.source,
  }
}

/** Value range and mean over all voxels (NaN voxels are skipped and counted). */
export interface VolumeStats {
  min: number
  max: number
  mean: number
  nonFinite: number
}

/** min / max / mean of a volume's voxels in one pass. */
export function volumeStats(vol: Pick<Volume, 'data'>): VolumeStats {
  const d = vol.data
  let min = Infinity
  let max = -Infinity
  let sum = 0
  let bad = 0
  for (let i = 0; i < d.length; i++) {
    const x = d[i]
    if (x !== x || x === Infinity || x === -Infinity) {
      bad++
      continue
    }
    if (x < min) min = x
    if (x > max) max = x
    sum += x
  }
  const n = d.length - bad
  return { min: n ? min : NaN, max: n ? max : NaN, mean: n ? sum / n : NaN, nonFinite: bad }
}

/**
 * Voxel count per value when the volume looks like a label map (integral values, at most
 * `maxLabels` distinct ones); null otherwise.
 */
export function labelCounts(
  vol: Pick<Volume, 'data'>,
  maxLabels = 64,
): { value: number; voxels: number }[] | null {
  const d = vol.data
  if (d instanceof Uint8Array) {
    const c = new Float64Array(256)
    for (let i = 0; i < d.length; i++) c[d[i]]++
    const out: { value: number; voxels: number }[] = []
    for (let v = 0; v < 256; v++) if (c[v]) out.push({ value: v, voxels: c[v] })
    return out.length <= maxLabels ? out : null
  }
  const counts = new Map<number, number>()
  for (let i = 0; i < d.length; i++) {
    const x = d[i]
    const n = counts.get(x)
    if (n === undefined) {
      if (!Number.isInteger(x) || counts.size >= maxLabels) return null
      counts.set(x, 1)
    } else counts.set(x, n + 1)
  }
  return [...counts.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([value, voxels]) => ({ value, voxels }))
}
