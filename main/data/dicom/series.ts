/**
 * A CT/MR image series → Volume. Conventions (chosen to match dcm2niix, so a DICOM import and a
 * dcm2niix NIfTI of the same series agree voxel for voxel): i runs along the DICOM columns, j
 * along the rows from the last row to the first (rows flipped), k along the slice normal
 * (row × column cosines) in increasing order. The affine is converted from DICOM LPS to RAS.
 */
import { readFile } from 'node:fs/promises'
import { DsdError } from '../../errors'
import { allocVoxels, spacingFromAffine } from '../nifti'
import { MAX_VOLUME_BYTES, type DataType, type Mat4, type Volume, type VoxelArray } from '../volume'
import {
  badField,
  checkOrientation,
  checkPixelModule,
  checkSyntax,
  cross,
  dot,
  lpsToRas,
  num,
  numberList,
  optionalNumber,
  orientationClose,
  parseDicom,
  seqItem,
  str,
  unit,
  type Ds,
  type PixelModule,
  type V3,
} from './parse'
import { pickSeries, scanDicomFolder, type DicomSeriesInfo } from './scan'

/** A volume read from a DICOM series, with what a SEG or an export needs to refer back. */
export interface DicomVolume extends Volume {
  dicom: {
    seriesInstanceUID: string
    studyInstanceUID?: string
    frameOfReferenceUID?: string
    modality: string
    seriesDescription: string
    sopClassUID: string
    /** SOPInstanceUID of the frame at each k (index k), and its frame number (1-based). */
    sopInstanceUIDs: string[]
    frameNumbers: number[]
    files: string[]
    rows: number
    columns: number
    /** Rows are flipped (j = rows − 1 − row), like dcm2niix. */
    flipRows: boolean
    /** Voxel (column, row, slice) → LPS world, without the row flip (DICOM's own grid). */
    lpsAffine: Mat4
    rescaleSlope: number
    rescaleIntercept: number
    /** The key attributes of the first file (patient/study context for an export). */
    firstDataset: Record<string, unknown>
  }
}

export interface ReadDicomSeriesOptions {
  /** Pick this series when the folder has several. */
  seriesUID?: string
  /** Look in sub-folders too (default true). */
  recursive?: boolean
  /** Flip rows like dcm2niix (default true). */
  flipRows?: boolean
  /** Largest voxel data accepted, in bytes (default MAX_VOLUME_BYTES); checked from the headers. */
  maxBytes?: number
}

/** One 2D frame: geometry, rescale and where its pixels live. */
interface Frame {
  file: string
  frameIndex: number // 0-based within the file
  sopInstanceUID: string
  position: V3
  orientation: number[] // 6 values
  pixelSpacing: [number, number] // [between rows, between columns]
  slope: number
  intercept: number
  instanceNumber: number
  thickness: number
  spacingBetween: number
  /** The frame's stored pixel values (before rescale), row by row. */
  pixels?: VoxelArray
}

/** The frames of one parsed file (classic: one; enhanced multi-frame: NumberOfFrames). */
function framesOf(file: string, ds: Ds, n: number): Frame[] {
  const shared = seqItem(ds.SharedFunctionalGroupsSequence) ?? {}
  const perFrame: Ds[] = Array.isArray(ds.PerFrameFunctionalGroupsSequence)
    ? ds.PerFrameFunctionalGroupsSequence
    : []
  const frames: Frame[] = []
  for (let f = 0; f < n; f++) {
    const pf = perFrame[f] ?? {}
    const pick = (seq: string, key: string) =>
      seqItem(pf[seq])?.[key] ?? seqItem(shared[seq])?.[key] ?? undefined
    const where = n > 1 ? ` (frame ${f + 1})` : ''
    const position = numberList(
      file,
      `ImagePositionPatient${where}`,
      pick('PlanePositionSequence', 'ImagePositionPatient') ?? ds.ImagePositionPatient,
      3,
    )
    const orientation = numberList(
      file,
      `ImageOrientationPatient${where}`,
      pick('PlaneOrientationSequence', 'ImageOrientationPatient') ?? ds.ImageOrientationPatient,
      6,
    )
    if (!position || !orientation) {
      throw new DsdError(
        'DICOM_NO_GEOMETRY',
        `${file}: frame ${f + 1} has no ImagePositionPatient/ImageOrientationPatient, so it cannot be placed in 3D; this is not a volume series (a screenshot or localizer?) — pick another series`,
        { file, frame: f + 1 },
      )
    }
    checkOrientation(file, `ImageOrientationPatient${where}`, orientation)
    const spacingRaw =
      pick('PixelMeasuresSequence', 'PixelSpacing') ?? ds.PixelSpacing ?? ds.ImagerPixelSpacing
    const spacing = numberList(file, `PixelSpacing${where}`, spacingRaw, 2)
    if (!spacing) {
      throw new DsdError(
        'DICOM_NO_SPACING',
        `${file}: frame ${f + 1} has no PixelSpacing, so the voxel size is unknown; this is not a calibrated volume series — pick another series or re-export it with its geometry`,
        { file, frame: f + 1 },
      )
    }
    if (!spacing.every((v) => v > 0))
      throw badField(
        file,
        `PixelSpacing${where}`,
        `is ${spacing.join('\\')}; pixel sizes must be positive`,
      )
    const slope =
      optionalNumber(
        file,
        `RescaleSlope${where}`,
        pick('PixelValueTransformationSequence', 'RescaleSlope') ?? ds.RescaleSlope,
      ) ?? 1
    if (slope === 0)
      throw badField(
        file,
        `RescaleSlope${where}`,
        'is 0, which would map every pixel to the intercept',
      )
    const intercept =
      optionalNumber(
        file,
        `RescaleIntercept${where}`,
        pick('PixelValueTransformationSequence', 'RescaleIntercept') ?? ds.RescaleIntercept,
      ) ?? 0
    frames.push({
      file,
      frameIndex: f,
      sopInstanceUID: str(ds.SOPInstanceUID),
      position: position as V3,
      orientation,
      pixelSpacing: [spacing[0], spacing[1]],
      slope,
      intercept,
      instanceNumber: num(ds.InstanceNumber, 0),
      thickness: num(pick('PixelMeasuresSequence', 'SliceThickness') ?? ds.SliceThickness),
      spacingBetween: num(
        pick('PixelMeasuresSequence', 'SpacingBetweenSlices') ?? ds.SpacingBetweenSlices,
      ),
    })
  }
  return frames
}

/** Pixel bytes of one frame as numbers (before rescale), as a typed-array view. */
function framePixels(ds: Ds, px: PixelModule, frameIndex: number): VoxelArray {
  const pd = ds.PixelData
  const parts: ArrayBuffer[] = Array.isArray(pd) ? pd : [pd]
  let whole: Uint8Array
  if (parts.length === 1) whole = new Uint8Array(parts[0])
  else {
    whole = new Uint8Array(px.bytes)
    let o = 0
    for (const p of parts) {
      whole.set(new Uint8Array(p), o)
      o += p.byteLength
    }
    ds.PixelData = [whole.buffer]
  }
  const n = px.rows * px.columns * (px.bitsAllocated / 8)
  const copy = whole.slice(frameIndex * n, (frameIndex + 1) * n)
  const signed = px.signed
  if (px.bitsAllocated === 8) return signed ? new Int8Array(copy.buffer) : copy
  if (px.bitsAllocated === 16)
    return signed ? new Int16Array(copy.buffer) : new Uint16Array(copy.buffer)
  return signed ? new Int32Array(copy.buffer) : new Uint32Array(copy.buffer)
}

function chooseDatatype(min: number, max: number, integral: boolean, bits: number): DataType {
  if (!integral) return 'float32'
  if (bits === 8 && min >= 0 && max <= 255) return 'uint8'
  if (min >= -32768 && max <= 32767) return 'int16'
  if (min >= 0 && max <= 65535) return 'uint16'
  if (min >= -(2 ** 31) && max <= 2 ** 31 - 1) return 'int32'
  return 'float32'
}

/**
 * Read one CT/MR series from a folder (any file order) into a Volume. Several series: pass
 * `seriesUID` or get DICOM_MULTIPLE_SERIES listing them.
 */
export async function readDicomSeries(
  dir: string,
  opts: ReadDicomSeriesOptions = {},
): Promise<DicomVolume> {
  const scan = await scanDicomFolder(dir, opts.recursive ?? true, opts.maxBytes ?? MAX_VOLUME_BYTES)
  const series = pickSeries(scan, opts.seriesUID)
  if (series.isSeg) {
    throw new DsdError(
      'DICOM_IS_SEG',
      `${scan.dir}: series ${series.seriesInstanceUID} is a DICOM SEG, not an image series; read it with readDicomSeg (\`dsd convert SEG.dcm out.nii.gz --reference <image folder>\`)`,
      { dir: scan.dir },
    )
  }
  if (scan.unreadable.length) {
    const list =
      scan.unreadable.slice(0, 3).join(', ') +
      (scan.unreadable.length > 3 ? `, … (${scan.unreadable.length} files)` : '')
    throw new DsdError(
      'DICOM_UNREADABLE_FILE',
      `${scan.dir}: ${list} cannot be read as DICOM (no "DICM" marker: truncated, empty or damaged), so a slice of the series may be missing; restore the file(s) from the source, or move them out of the folder if they are not part of the series`,
      { dir: scan.dir, files: scan.unreadable },
    )
  }
  return readSeriesFiles(scan.dir, series, opts.flipRows ?? true, opts.maxBytes ?? MAX_VOLUME_BYTES)
}

async function readSeriesFiles(
  where: string,
  series: DicomSeriesInfo,
  flipRows: boolean,
  maxBytes: number,
): Promise<DicomVolume> {
  const parsed: { file: string; ds: Ds; frames: Frame[] }[] = []
  let voxels = 0
  for (const file of series.files) {
    const { ds, syntax } = parseDicom(file, await readFile(file), false)
    checkSyntax(file, syntax)
    const px = checkPixelModule(file, ds, [8, 16, 32], maxBytes)
    // the volume is at most float32: refuse a series that would exceed the limit
    voxels += px.rows * px.columns * px.frames
    if (voxels * 4 > maxBytes) {
      throw new DsdError(
        'DICOM_TOO_LARGE',
        `${where}: series ${series.seriesInstanceUID} holds more than ${Math.floor(maxBytes / 4).toLocaleString('en-US')} voxels (the ${maxBytes.toLocaleString('en-US')}-byte limit) by ${file}; crop or downsample it first, or pick the series by folder`,
        { dir: where, maxBytes },
      )
    }
    const frames = framesOf(file, ds, px.frames)
    // keep only each frame's pixels, not the parsed file (memory: ~1 copy of the series)
    for (const f of frames) f.pixels = framePixels(ds, px, f.frameIndex)
    delete ds.PixelData
    parsed.push({ file, ds, frames })
  }
  const first = parsed[0]
  const rows = num(first.ds.Rows)
  const cols = num(first.ds.Columns)
  const bits = num(first.ds.BitsAllocated)
  const frames = parsed.flatMap((p) => p.frames)
  const o0 = frames[0].orientation
  const sp0 = frames[0].pixelSpacing
  for (const p of parsed) {
    if (num(p.ds.Rows) !== rows || num(p.ds.Columns) !== cols) {
      throw new DsdError(
        'DICOM_INCONSISTENT_SERIES',
        `${p.file}: ${num(p.ds.Rows)}×${num(p.ds.Columns)} pixels, but ${first.file} has ${rows}×${cols}; the series mixes image sizes (a localizer or a reformat?) — remove the odd files or pick the series by folder`,
        { file: p.file },
      )
    }
  }
  for (const f of frames) {
    if (!orientationClose(f.orientation, o0)) {
      throw new DsdError(
        'DICOM_INCONSISTENT_SERIES',
        `${f.file}: ImageOrientationPatient ${f.orientation.join('\\')} differs from ${frames[0].file} (${o0.join('\\')}); the series mixes slice orientations (a localizer?) — remove the odd files`,
        { file: f.file },
      )
    }
    if (
      Math.abs(f.pixelSpacing[0] - sp0[0]) > 1e-4 * sp0[0] ||
      Math.abs(f.pixelSpacing[1] - sp0[1]) > 1e-4 * sp0[1]
    ) {
      throw new DsdError(
        'DICOM_INCONSISTENT_SERIES',
        `${f.file}: PixelSpacing ${f.pixelSpacing.join('\\')} differs from ${frames[0].file} (${sp0.join('\\')}); the series mixes pixel sizes — remove the odd files`,
        { file: f.file },
      )
    }
  }
  const r = unit(o0.slice(0, 3))
  const c = unit(o0.slice(3, 6))
  const n = unit(cross(r, c))
  const withPos = frames.map((f) => ({ f, s: dot(f.position, n) }))
  withPos.sort((a, b) => a.s - b.s || a.f.instanceNumber - b.f.instanceNumber)
  const nz = withPos.length
  // spacing from positions; duplicates mean several volumes (echoes, time points)
  const gaps: number[] = []
  for (let k = 1; k < nz; k++) gaps.push(withPos[k].s - withPos[k - 1].s)
  const span = nz > 1 ? withPos[nz - 1].s - withPos[0].s : 0
  const mean = nz > 1 ? span / (nz - 1) : 0
  const tol = Math.max(1e-3, 1e-2 * mean)
  const dup = gaps.findIndex((g) => g < tol)
  if (nz > 1 && dup >= 0) {
    const positions = new Set(withPos.map((w) => w.s.toFixed(3))).size
    throw new DsdError(
      'DICOM_DUPLICATE_POSITIONS',
      `${where}: series ${series.seriesInstanceUID} has ${nz} slices at only ${positions} distinct positions (e.g. ${withPos[dup].f.file} and ${withPos[dup + 1].f.file}); it holds several volumes (echoes, time points or phases) — split them into separate folders first (e.g. dcm2niix does this)`,
      { dir: where, slices: nz, positions },
    )
  }
  const worst = gaps.reduce((m, g) => Math.max(m, Math.abs(g - mean)), 0)
  if (nz > 2 && worst > tol) {
    const bad = gaps.findIndex((g) => Math.abs(g - mean) === worst)
    throw new DsdError(
      'DICOM_UNEVEN_SPACING',
      `${where}: slices are unevenly spaced (mean ${mean.toFixed(4)} mm, but ${gaps[bad].toFixed(4)} mm between ${withPos[bad].f.file} and ${withPos[bad + 1].f.file}); a slice is missing or the series mixes stacks — complete the series or convert it with dcm2niix`,
      { dir: where, mean, gap: gaps[bad] },
    )
  }
  // SpacingBetweenSlices says how far apart the slices should be: positions a whole multiple
  // of it apart mean slices are missing (the only sign of it in a series of two).
  const sbs = withPos.map((w) => w.f.spacingBetween)
  if (nz > 1 && sbs.every((v) => v > 0) && Math.max(...sbs) - Math.min(...sbs) <= 1e-3 * sbs[0]) {
    const ratio = mean / sbs[0]
    if (ratio > 1.5 && Math.abs(ratio - Math.round(ratio)) < 0.05) {
      const missing = (Math.round(ratio) - 1) * (nz - 1)
      throw new DsdError(
        'DICOM_MISSING_SLICES',
        `${where}: slices are ${mean.toFixed(4)} mm apart but SpacingBetweenSlices is ${sbs[0]} mm, so about ${missing} slice(s) are missing between ${withPos[0].f.file} and ${withPos[nz - 1].f.file}; restore the missing files from the source and read the series again`,
        { dir: where, mean, spacingBetweenSlices: sbs[0], missing },
      )
    }
  }
  // affine in LPS on DICOM's own grid (column, row, slice)
  const [dr, dc] = sp0 // between rows (along c), between columns (along r)
  const p0 = withPos[0].f.position
  let kcol: number[]
  if (nz > 1) {
    const pl = withPos[nz - 1].f.position
    kcol = [0, 1, 2].map((a) => (pl[a] - p0[a]) / (nz - 1))
  } else {
    const f0 = withPos[0].f
    const t = f0.spacingBetween > 0 ? f0.spacingBetween : f0.thickness > 0 ? f0.thickness : 1
    kcol = n.map((v) => v * t)
  }
  const lps: Mat4 = [
    [r[0] * dc, c[0] * dr, kcol[0], p0[0]],
    [r[1] * dc, c[1] * dr, kcol[1], p0[1]],
    [r[2] * dc, c[2] * dr, kcol[2], p0[2]],
    [0, 0, 0, 1],
  ]
  const grid: Mat4 = flipRows
    ? [
        [lps[0][0], -lps[0][1], lps[0][2], lps[0][3] + (rows - 1) * lps[0][1]],
        [lps[1][0], -lps[1][1], lps[1][2], lps[1][3] + (rows - 1) * lps[1][1]],
        [lps[2][0], -lps[2][1], lps[2][2], lps[2][3] + (rows - 1) * lps[2][1]],
        [0, 0, 0, 1],
      ]
    : lps
  const affine = lpsToRas(grid)
  // pixels: range first (to pick the datatype like dcm2niix), then one typed array
  const plane = rows * cols
  const slopes = new Set(withPos.map((w) => w.f.slope))
  const inters = new Set(withPos.map((w) => w.f.intercept))
  const rescaled =
    slopes.size > 1 || inters.size > 1 || withPos[0].f.slope !== 1 || withPos[0].f.intercept !== 0
  const integral = [...slopes].every(Number.isInteger) && [...inters].every(Number.isInteger)
  let min = Infinity
  let max = -Infinity
  for (const { f } of withPos) {
    const px = f.pixels!
    let lo = Infinity
    let hi = -Infinity
    for (let p = 0; p < plane; p++) {
      const x = px[p]
      if (x < lo) lo = x
      if (x > hi) hi = x
    }
    const a = lo * f.slope + f.intercept
    const b = hi * f.slope + f.intercept
    min = Math.min(min, a, b)
    max = Math.max(max, a, b)
  }
  const datatype = chooseDatatype(min, max, integral, bits)
  const data = allocVoxels(datatype, plane * nz)
  for (let k = 0; k < nz; k++) {
    const f = withPos[k].f
    const px = f.pixels!
    const base = k * plane
    for (let row = 0; row < rows; row++) {
      const j = flipRows ? rows - 1 - row : row
      const src = row * cols
      const dst = base + j * cols
      if (rescaled) {
        for (let i = 0; i < cols; i++) data[dst + i] = px[src + i] * f.slope + f.intercept
      } else {
        for (let i = 0; i < cols; i++) data[dst + i] = px[src + i]
      }
    }
    f.pixels = undefined
  }
  const ds0 = first.ds
  return {
    shape: [cols, rows, nz],
    channels: 1,
    spacing: spacingFromAffine(affine),
    affine,
    datatype,
    data,
    source: where,
    dicom: {
      seriesInstanceUID: series.seriesInstanceUID,
      studyInstanceUID: str(ds0.StudyInstanceUID) || undefined,
      frameOfReferenceUID: str(ds0.FrameOfReferenceUID) || undefined,
      modality: str(ds0.Modality),
      seriesDescription: str(ds0.SeriesDescription),
      sopClassUID: str(ds0.SOPClassUID),
      sopInstanceUIDs: withPos.map((w) => w.f.sopInstanceUID),
      frameNumbers: withPos.map((w) => w.f.frameIndex + 1),
      files: withPos.map((w) => w.f.file),
      rows,
      columns: cols,
      flipRows,
      lpsAffine: lps,
      rescaleSlope: withPos[0].f.slope,
      rescaleIntercept: withPos[0].f.intercept,
      firstDataset: contextOf(ds0),
    },
  }
}

/** Patient and study attributes a derived object (DICOM SEG) copies from its source series. */
export const STUDY_CONTEXT_KEYS = [
  'PatientName',
  'PatientID',
  'PatientBirthDate',
  'PatientSex',
  'PatientAge',
  'StudyInstanceUID',
  'StudyDate',
  'StudyTime',
  'StudyID',
  'AccessionNumber',
  'ReferringPhysicianName',
  'StudyDescription',
] as const

const CONTEXT_KEYS = [
  ...STUDY_CONTEXT_KEYS,
  'FrameOfReferenceUID',
  'PositionReferenceIndicator',
  'Manufacturer',
  'SOPClassUID',
  'SeriesInstanceUID',
  'Modality',
]

function contextOf(ds: Ds): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of CONTEXT_KEYS) if (ds[k] !== undefined) out[k] = ds[k]
  return out
}
