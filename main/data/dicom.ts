/**
 * DICOM import: a CT/MR image series from a folder → Volume, and a DICOM SEG → label map on
 * that series' grid. Parsing uses dcmjs; geometry and pixels are handled here.
 *
 * Conventions (chosen to match dcm2niix, so a DICOM import and a dcm2niix NIfTI of the same
 * series agree voxel for voxel): i runs along the DICOM columns, j along the rows from the
 * last row to the first (rows flipped), k along the slice normal (row × column cosines) in
 * increasing order. The affine is converted from DICOM LPS to RAS.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
// @ts-expect-error -- dcmjs ships no type declarations; the few calls used are typed below
import dcmjsUntyped from 'dcmjs'
import { DsdError } from '../errors'
import { allocVoxels, spacingFromAffine, writeAtomic } from './nifti'
import type { DataType, Mat4, Vec3, Volume, VoxelArray } from './volume'

/** The part of dcmjs used here. */
interface DicomDictLike {
  meta: Record<string, { Value?: unknown[] }>
  dict: Record<string, unknown>
}
const dcmjs = dcmjsUntyped as {
  data: {
    DicomMessage: {
      readFile(
        buf: ArrayBuffer,
        opts?: { ignoreErrors?: boolean; untilTag?: string | null; noCopy?: boolean },
      ): DicomDictLike
    }
    DicomMetaDictionary: {
      naturalizeDataset(dict: Record<string, unknown>): Ds
      denaturalizeDataset(ds: Ds): Record<string, unknown>
      uid(): string
    }
    DicomDict: new (meta: Record<string, unknown>) => {
      dict: Record<string, unknown>
      write(opts?: Record<string, unknown>): ArrayBuffer
    }
  }
  log?: {
    setLevel?(level: string): void
    getLogger?(name: string): { setLevel?(level: string): void }
  }
}
try {
  // dcmjs logs every odd VR (e.g. implicit-VR "xs" tags) to the console; errors reach us as throws
  dcmjs.log?.setLevel?.('error')
  dcmjs.log?.getLogger?.('validation.dcmjs')?.setLevel?.('silent')
} catch {
  /* logging level is cosmetic */
}

/** A naturalized dcmjs dataset (keyword → value). */
type Ds = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4'
const NATIVE_SYNTAXES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
}
const SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian (retired)',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
}

/** One series found in a folder. */
export interface DicomSeriesInfo {
  seriesInstanceUID: string
  modality: string
  seriesDescription: string
  seriesNumber?: number
  sopClassUID: string
  studyInstanceUID?: string
  frameOfReferenceUID?: string
  patientID?: string
  rows?: number
  columns?: number
  /** Image series have pixels and plane geometry; SEG, SR, RTSTRUCT … are not. */
  isImage: boolean
  isSeg: boolean
  files: string[]
}

/** What `scanDicomFolder` found. */
export interface DicomScan {
  dir: string
  series: DicomSeriesInfo[]
  /** Files that are not DICOM Part 10 (no "DICM" at byte 128) or DICOMDIR. */
  skipped: string[]
}

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
}

// ---------------------------------------------------------------------------------------------
// parsing

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
}

function isPart10(b: Uint8Array): boolean {
  return b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d
}

interface Parsed {
  ds: Ds
  syntax: string
}

function parseDicom(file: string, buf: Buffer, headerOnly: boolean): Parsed {
  const ab = toArrayBuffer(buf)
  const untilTag = headerOnly ? '7FE00010' : null
  let dd: DicomDictLike
  try {
    dd = dcmjs.data.DicomMessage.readFile(ab, { untilTag, ignoreErrors: false })
  } catch (err) {
    const msg = (err as Error).message ?? String(err)
    if (/character set/i.test(msg)) {
      dd = dcmjs.data.DicomMessage.readFile(ab, { untilTag, ignoreErrors: true })
    } else {
      throw new DsdError(
        'DICOM_CORRUPT',
        `${file}: cannot parse the DICOM file (${msg}); it is truncated or damaged — re-export it from the PACS/scanner`,
        { file, error: msg },
      )
    }
  }
  const syntax = String(dd.meta['00020010']?.Value?.[0] ?? '')
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dd.dict)
  if (!headerOnly) checkPixelDataComplete(file, buf, ds)
  return { ds, syntax }
}

/**
 * dcmjs pads a PixelData element cut short by the end of the file, so check the length
 * field of the top-level (7FE0,0010) element against the file size ourselves. Candidates are
 * the tag bytes followed by an explicit OB/OW/OF/UN header, or (implicit VR) by a length equal
 * to the size Rows × Columns × frames × bits implies.
 */
function checkPixelDataComplete(file: string, buf: Uint8Array, ds: Ds): void {
  const frames = Math.max(1, num(ds.NumberOfFrames, 1))
  const bitsAlloc = num(ds.BitsAllocated, 16)
  const expected = Math.ceil(
    (num(ds.Rows, 0) * num(ds.Columns, 0) * frames * num(ds.SamplesPerPixel, 1) * bitsAlloc) / 8,
  )
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const vrs = new Set(['OB', 'OW', 'OF', 'OD', 'UN'])
  let found: { at: number; hdr: number; len: number } | undefined
  for (let at = 132; at + 8 <= buf.length; at++) {
    if (buf[at] !== 0xe0 || buf[at + 1] !== 0x7f || buf[at + 2] !== 0x10 || buf[at + 3] !== 0x00)
      continue
    const vr = String.fromCharCode(buf[at + 4], buf[at + 5])
    if (vrs.has(vr) && buf[at + 6] === 0 && buf[at + 7] === 0 && at + 12 <= buf.length) {
      found = { at, hdr: 12, len: dv.getUint32(at + 8, true) }
    } else {
      const len = dv.getUint32(at + 4, true)
      if (len === expected || len === expected + 1 || len === 0xffffffff)
        found = { at, hdr: 8, len }
    }
    if (found && found.at === at) at += found.hdr + (found.len === 0xffffffff ? 0 : found.len) - 1
  }
  if (!found || found.len === 0xffffffff) return // none, or encapsulated
  const have = buf.length - found.at - found.hdr
  if (found.len > have) {
    throw new DsdError(
      'DICOM_TRUNCATED',
      `${file}: PixelData needs ${found.len.toLocaleString('en-US')} bytes but the file ends after ${have.toLocaleString('en-US')}; the file is truncated — re-export or re-copy it`,
      { file, expectedBytes: found.len, actualBytes: have },
    )
  }
}

function num(v: unknown, fallback = NaN): number {
  if (Array.isArray(v)) v = v[0]
  const n = typeof v === 'number' ? v : Number(v)
  return Number.isFinite(n) ? n : fallback
}

function nums(v: unknown): number[] | undefined {
  if (v === undefined || v === null) return undefined
  const a = Array.isArray(v) ? v : [v]
  const out = a.map((x) => Number(x))
  return out.every(Number.isFinite) ? out : undefined
}

function str(v: unknown): string {
  if (Array.isArray(v)) v = v[0]
  if (v === undefined || v === null) return ''
  if (typeof v === 'object') return String((v as { Alphabetic?: string }).Alphabetic ?? '')
  return String(v)
}

async function listFiles(dir: string, recursive: boolean): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string) => {
    const entries = await readdir(d, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) {
      if (e.name.startsWith('.')) continue
      const p = join(d, e.name)
      if (e.isDirectory()) {
        if (recursive) await walk(p)
      } else if (e.isFile()) out.push(p)
    }
  }
  await walk(dir)
  return out
}

async function ensureDir(dir: string): Promise<void> {
  let s
  try {
    s = await stat(dir)
  } catch {
    throw new DsdError('NOT_FOUND', `${dir}: no such folder; check the path`, { dir })
  }
  if (!s.isDirectory()) {
    throw new DsdError(
      'DICOM_NOT_A_FOLDER',
      `${dir}: is a file; pass the folder that holds the DICOM series`,
      {
        dir,
      },
    )
  }
}

/** Group the DICOM files under `dir` by SeriesInstanceUID (headers only, no pixel data). */
export async function scanDicomFolder(dir: string, recursive = true): Promise<DicomScan> {
  dir = resolve(dir)
  await ensureDir(dir)
  const files = await listFiles(dir, recursive)
  const bySeries = new Map<string, DicomSeriesInfo>()
  const skipped: string[] = []
  for (const file of files) {
    // look at the 132-byte preamble first: other files (NIfTI, notes, …) are never read whole
    if (!(await isDicomFile(file))) {
      skipped.push(file)
      continue
    }
    const buf = await readFile(file)
    const { ds } = parseDicom(file, buf, true)
    const sop = str(ds.SOPClassUID)
    if (sop === '1.2.840.10008.1.3.10') {
      skipped.push(file) // DICOMDIR
      continue
    }
    const uid = str(ds.SeriesInstanceUID) || `(no SeriesInstanceUID) ${file}`
    let s = bySeries.get(uid)
    if (!s) {
      const modality = str(ds.Modality)
      const isSeg = sop === SEG_SOP_CLASS || modality === 'SEG'
      s = {
        seriesInstanceUID: uid,
        modality,
        seriesDescription: str(ds.SeriesDescription),
        seriesNumber: Number.isFinite(num(ds.SeriesNumber)) ? num(ds.SeriesNumber) : undefined,
        sopClassUID: sop,
        studyInstanceUID: str(ds.StudyInstanceUID) || undefined,
        frameOfReferenceUID: str(ds.FrameOfReferenceUID) || undefined,
        patientID: str(ds.PatientID) || undefined,
        rows: Number.isFinite(num(ds.Rows)) ? num(ds.Rows) : undefined,
        columns: Number.isFinite(num(ds.Columns)) ? num(ds.Columns) : undefined,
        isSeg,
        isImage:
          !isSeg &&
          Number.isFinite(num(ds.Rows)) &&
          (ds.ImagePositionPatient !== undefined ||
            ds.PerFrameFunctionalGroupsSequence !== undefined),
        files: [],
      }
      bySeries.set(uid, s)
    }
    s.files.push(file)
  }
  return { dir, series: [...bySeries.values()], skipped }
}

function describeSeries(s: DicomSeriesInfo): string {
  return `${s.seriesInstanceUID} (${s.modality || '?'}${s.seriesDescription ? ` "${s.seriesDescription}"` : ''}, ${s.files.length} file${s.files.length === 1 ? '' : 's'})`
}

// ---------------------------------------------------------------------------------------------
// geometry helpers

type V3 = [number, number, number]
const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
const cross = (a: number[], b: number[]): V3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
]
const norm = (a: number[]) => Math.hypot(a[0], a[1], a[2])
const unit = (a: number[]): V3 => {
  const n = norm(a) || 1
  return [a[0] / n, a[1] / n, a[2] / n]
}

/** LPS affine → RAS affine (negate the x and y rows). */
export function lpsToRas(a: Mat4): Mat4 {
  return [a[0].map((v) => -v), a[1].map((v) => -v), [...a[2]], [...a[3]]]
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

function seqItem(v: unknown): Ds | undefined {
  return Array.isArray(v) ? (v[0] as Ds) : (v as Ds | undefined)
}

/** The frames of one parsed file (classic: one; enhanced multi-frame: NumberOfFrames). */
function framesOf(file: string, ds: Ds): Frame[] {
  const n = Math.max(1, num(ds.NumberOfFrames, 1))
  const shared = seqItem(ds.SharedFunctionalGroupsSequence) ?? {}
  const perFrame: Ds[] = Array.isArray(ds.PerFrameFunctionalGroupsSequence)
    ? ds.PerFrameFunctionalGroupsSequence
    : []
  const frames: Frame[] = []
  for (let f = 0; f < n; f++) {
    const pf = perFrame[f] ?? {}
    const pick = (seq: string, key: string) =>
      seqItem(pf[seq])?.[key] ?? seqItem(shared[seq])?.[key] ?? undefined
    const position = nums(
      pick('PlanePositionSequence', 'ImagePositionPatient') ?? ds.ImagePositionPatient,
    )
    const orientation = nums(
      pick('PlaneOrientationSequence', 'ImageOrientationPatient') ?? ds.ImageOrientationPatient,
    )
    const spacing = nums(
      pick('PixelMeasuresSequence', 'PixelSpacing') ?? ds.PixelSpacing ?? ds.ImagerPixelSpacing,
    )
    const slope = num(
      pick('PixelValueTransformationSequence', 'RescaleSlope') ?? ds.RescaleSlope,
      1,
    )
    const intercept = num(
      pick('PixelValueTransformationSequence', 'RescaleIntercept') ?? ds.RescaleIntercept,
      0,
    )
    if (!position || position.length !== 3 || !orientation || orientation.length !== 6) {
      throw new DsdError(
        'DICOM_NO_GEOMETRY',
        `${file}: frame ${f + 1} has no ImagePositionPatient/ImageOrientationPatient, so it cannot be placed in 3D; this is not a volume series (a screenshot or localizer?) — pick another series`,
        { file, frame: f + 1 },
      )
    }
    frames.push({
      file,
      frameIndex: f,
      sopInstanceUID: str(ds.SOPInstanceUID),
      position: position as V3,
      orientation,
      pixelSpacing: spacing && spacing.length >= 2 ? [spacing[0], spacing[1]] : [1, 1],
      slope: slope === 0 ? 1 : slope,
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

function checkSyntax(file: string, syntax: string): void {
  if (NATIVE_SYNTAXES[syntax]) return
  const name = SYNTAX_NAMES[syntax] ?? 'a compressed or unsupported transfer syntax'
  throw new DsdError(
    'DICOM_UNSUPPORTED_SYNTAX',
    `${file}: pixel data uses ${name} (${syntax}), which this reader cannot decode; convert the series to uncompressed little endian first (dcmtk: \`dcmdjpeg in.dcm out.dcm\` or \`dcmconv +te\`; gdcm: \`gdcmconv --raw\`) or convert it to NIfTI with dcm2niix`,
    { file, transferSyntax: syntax },
  )
}

/** Pixel bytes of one frame as numbers (before rescale), as a typed-array view. */
function framePixels(file: string, ds: Ds, frameIndex: number): VoxelArray {
  const rows = num(ds.Rows)
  const cols = num(ds.Columns)
  const bits = num(ds.BitsAllocated)
  const signed = num(ds.PixelRepresentation, 0) === 1
  const spp = num(ds.SamplesPerPixel, 1)
  if (spp !== 1) {
    throw new DsdError(
      'DICOM_UNSUPPORTED_PIXELS',
      `${file}: SamplesPerPixel is ${spp} (colour); only greyscale series can be imported — pick a greyscale series`,
      { file, samplesPerPixel: spp },
    )
  }
  const pd = ds.PixelData
  const parts: ArrayBuffer[] = Array.isArray(pd) ? pd : pd ? [pd] : []
  if (!parts.length) {
    throw new DsdError(
      'DICOM_NO_PIXELS',
      `${file}: the file has no PixelData; it is not an image — pick an image series`,
      {
        file,
      },
    )
  }
  let whole: Uint8Array
  if (parts.length === 1) whole = new Uint8Array(parts[0])
  else {
    const total = parts.reduce((s, p) => s + p.byteLength, 0)
    whole = new Uint8Array(total)
    let o = 0
    for (const p of parts) {
      whole.set(new Uint8Array(p), o)
      o += p.byteLength
    }
  }
  const n = rows * cols
  const bytesPer = bits / 8
  if (![8, 16, 32].includes(bits)) {
    throw new DsdError(
      'DICOM_UNSUPPORTED_PIXELS',
      `${file}: BitsAllocated is ${bits}; only 8, 16 and 32-bit greyscale pixels can be imported`,
      { file, bitsAllocated: bits },
    )
  }
  const start = frameIndex * n * bytesPer
  if (whole.length < start + n * bytesPer) {
    throw new DsdError(
      'DICOM_TRUNCATED',
      `${file}: frame ${frameIndex + 1} needs ${n * bytesPer} bytes of ${rows}×${cols} ${bits}-bit pixels but PixelData has only ${Math.max(0, whole.length - start)}; the file is truncated — re-export it`,
      { file, frame: frameIndex + 1 },
    )
  }
  const copy = whole.slice(start, start + n * bytesPer)
  if (bits === 8) return signed ? new Int8Array(copy.buffer) : copy
  if (bits === 16) return signed ? new Int16Array(copy.buffer) : new Uint16Array(copy.buffer)
  return signed ? new Int32Array(copy.buffer) : new Uint32Array(copy.buffer)
}

function orientationClose(a: number[], b: number[], tol = 1e-3): boolean {
  return a.every((v, i) => Math.abs(v - b[i]) <= tol)
}

// ---------------------------------------------------------------------------------------------
// series

function pickSeries(scan: DicomScan, uid: string | undefined): DicomSeriesInfo {
  if (uid) {
    const s = scan.series.find((x) => x.seriesInstanceUID === uid)
    if (!s) {
      throw new DsdError(
        'DICOM_SERIES_NOT_FOUND',
        `${scan.dir}: no series ${uid}; the folder has ${scan.series.map(describeSeries).join('; ') || 'no DICOM files'}`,
        { dir: scan.dir, series: scan.series.map((s) => s.seriesInstanceUID) },
      )
    }
    return s
  }
  const images = scan.series.filter((s) => s.isImage)
  if (images.length === 1) return images[0]
  if (images.length === 0) {
    throw new DsdError(
      'DICOM_NO_SERIES',
      scan.series.length
        ? `${scan.dir}: no image series found (only ${scan.series.map(describeSeries).join('; ')}); pass the folder of the CT/MR images`
        : `${scan.dir}: no DICOM files found${scan.skipped.length ? ` (${scan.skipped.length} other files skipped)` : ''}; pass a folder of .dcm files`,
      { dir: scan.dir },
    )
  }
  throw new DsdError(
    'DICOM_MULTIPLE_SERIES',
    `${scan.dir}: the folder has ${images.length} image series: ${images.map(describeSeries).join('; ')}. Choose one with --series <SeriesInstanceUID> (or pass its own folder)`,
    {
      dir: scan.dir,
      series: images.map((s) => ({
        uid: s.seriesInstanceUID,
        modality: s.modality,
        description: s.seriesDescription,
        files: s.files.length,
      })),
    },
  )
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
  const scan = await scanDicomFolder(dir, opts.recursive ?? true)
  const series = pickSeries(scan, opts.seriesUID)
  if (series.isSeg) {
    throw new DsdError(
      'DICOM_IS_SEG',
      `${scan.dir}: series ${series.seriesInstanceUID} is a DICOM SEG, not an image series; read it with readDicomSeg (\`dsd convert SEG.dcm out.nii.gz --reference <image folder>\`)`,
      { dir: scan.dir },
    )
  }
  return readSeriesFiles(scan.dir, series, opts.flipRows ?? true)
}

async function readSeriesFiles(
  where: string,
  series: DicomSeriesInfo,
  flipRows: boolean,
): Promise<DicomVolume> {
  const parsed: { file: string; ds: Ds; frames: Frame[] }[] = []
  for (const file of series.files) {
    const { ds, syntax } = parseDicom(file, await readFile(file), false)
    checkSyntax(file, syntax)
    const frames = framesOf(file, ds)
    // keep only each frame's pixels, not the parsed file (memory: ~1 copy of the series)
    for (const f of frames) f.pixels = framePixels(file, ds, f.frameIndex)
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
  // affine in LPS on DICOM's own grid (column, row, slice)
  const [dr, dc] = sp0 // between rows (along c), between columns (along r)
  const p0 = withPos[0].f.position
  let kcol: number[]
  if (nz > 1) {
    const pl = withPos[nz - 1].f.position
    kcol = [0, 1, 2].map((a) => (pl[a] - p0[a]) / (nz - 1))
  } else {
    const t = Number.isFinite(withPos[0].f.spacingBetween)
      ? withPos[0].f.spacingBetween
      : Number.isFinite(withPos[0].f.thickness)
        ? withPos[0].f.thickness
        : 1
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

const CONTEXT_KEYS = [
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

// ---------------------------------------------------------------------------------------------
// SEG

/** One segment of a DICOM SEG. */
export interface SegSegment {
  number: number
  label: string
  description?: string
  algorithmType?: string
  category?: string
  type?: string
  /** Recommended display colour as CIELab (DICOM scaled 0–65535), if given. */
  cielab?: number[]
  /** Voxels of this segment in the label map (after overlaps were resolved). */
  voxels: number
}

/** A DICOM SEG turned into a label map on the reference image grid. */
export interface DicomSegResult {
  /** Label map: 0 = background, segment number elsewhere (uint8, or uint16 above 255). */
  volume: Volume
  segments: SegSegment[]
  segmentationType: 'BINARY' | 'FRACTIONAL'
  /** Voxels claimed by more than one segment (the higher segment number wins). */
  overlapVoxels: number
  /** SEG frames that were empty or outside the grid (they are ignored) and how many matched. */
  framesMatched: number
  framesByUid: number
  framesByPosition: number
}

/**
 * Read a DICOM SEG onto the grid of `reference` (from readDicomSeries). Frames are placed by
 * ReferencedSOPInstanceUID, else by their position on the slice normal; segment numbers become
 * label values.
 */
export async function readDicomSeg(
  segFile: string,
  reference: DicomVolume,
): Promise<DicomSegResult> {
  let buf: Buffer
  try {
    buf = await readFile(segFile)
  } catch {
    throw new DsdError('NOT_FOUND', `${segFile}: no such file; check the path`, { file: segFile })
  }
  if (!isPart10(buf)) {
    throw new DsdError(
      'DICOM_BAD_MAGIC',
      `${segFile}: not a DICOM file (no "DICM" marker at byte 128); pass the SEG .dcm file`,
      { file: segFile },
    )
  }
  const { ds, syntax } = parseDicom(segFile, buf, false)
  const sop = str(ds.SOPClassUID)
  if (sop !== SEG_SOP_CLASS && str(ds.Modality) !== 'SEG') {
    throw new DsdError(
      'DICOM_NOT_SEG',
      `${segFile}: SOPClassUID ${sop} (modality ${str(ds.Modality) || '?'}) is not a DICOM Segmentation; pass a SEG object (an RTSTRUCT or an image mask series needs another path)`,
      { file: segFile, sopClassUID: sop },
    )
  }
  checkSyntax(segFile, syntax)
  const refDicom = reference.dicom
  const segRef = str(ds.FrameOfReferenceUID)
  if (segRef && refDicom.frameOfReferenceUID && segRef !== refDicom.frameOfReferenceUID) {
    throw new DsdError(
      'DICOM_SEG_MISMATCH',
      `${segFile}: the SEG's FrameOfReferenceUID ${segRef} differs from the image series' ${refDicom.frameOfReferenceUID}; the SEG belongs to other images — pick the series it was made on`,
      { file: segFile },
    )
  }
  const type = str(ds.SegmentationType).toUpperCase() === 'FRACTIONAL' ? 'FRACTIONAL' : 'BINARY'
  const rows = num(ds.Rows)
  const cols = num(ds.Columns)
  const nFrames = Math.max(1, num(ds.NumberOfFrames, 1))
  if (rows !== refDicom.rows || cols !== refDicom.columns) {
    throw new DsdError(
      'DICOM_SEG_MISMATCH',
      `${segFile}: SEG frames are ${rows}×${cols} but the image slices are ${refDicom.rows}×${refDicom.columns}; the SEG is on another grid — resample it in a viewer (e.g. 3D Slicer) or pick the matching series`,
      { file: segFile },
    )
  }
  const segSeq: Ds[] = Array.isArray(ds.SegmentSequence) ? ds.SegmentSequence : []
  const segments: SegSegment[] = segSeq.map((s) => ({
    number: num(s.SegmentNumber),
    label: str(s.SegmentLabel),
    description: str(s.SegmentDescription) || undefined,
    algorithmType: str(s.SegmentAlgorithmType) || undefined,
    category: str(seqItem(s.SegmentedPropertyCategoryCodeSequence)?.CodeMeaning) || undefined,
    type: str(seqItem(s.SegmentedPropertyTypeCodeSequence)?.CodeMeaning) || undefined,
    cielab: nums(s.RecommendedDisplayCIELabValue),
    voxels: 0,
  }))
  const maxSeg = segments.reduce((m, s) => Math.max(m, s.number), 0)
  const pd = ds.PixelData
  const parts: ArrayBuffer[] = Array.isArray(pd) ? pd : pd ? [pd] : []
  const total = parts.reduce((s, p) => s + p.byteLength, 0)
  const bits = new Uint8Array(total)
  {
    let o = 0
    for (const p of parts) {
      bits.set(new Uint8Array(p), o)
      o += p.byteLength
    }
  }
  const plane = rows * cols
  const need = type === 'BINARY' ? Math.ceil((plane * nFrames) / 8) : plane * nFrames
  if (bits.length < need) {
    throw new DsdError(
      'DICOM_TRUNCATED',
      `${segFile}: ${nFrames} ${type} frames of ${rows}×${cols} need ${need} bytes but PixelData has ${bits.length}; the file is truncated — re-export it`,
      { file: segFile },
    )
  }
  const maxFrac = num(ds.MaximumFractionalValue, 255)
  const [nx, ny, nz] = reference.shape
  const labels = maxSeg > 255 ? new Uint16Array(nx * ny * nz) : new Uint8Array(nx * ny * nz)
  const uidToK = new Map(
    refDicom.sopInstanceUIDs.map((u, k) => [`${u}#${refDicom.frameNumbers[k]}`, k]),
  )
  const uidOnly = new Map(refDicom.sopInstanceUIDs.map((u, k) => [u, k]))
  // reference grid in LPS for position matching
  const L = refDicom.lpsAffine
  const rdir = [L[0][0], L[1][0], L[2][0]]
  const cdir = [L[0][1], L[1][1], L[2][1]]
  const kdir = [L[0][2], L[1][2], L[2][2]]
  const normal = unit(cross(rdir, cdir))
  const kStep = dot(kdir, normal)
  const origin = [L[0][3], L[1][3], L[2][3]]
  const shared = seqItem(ds.SharedFunctionalGroupsSequence) ?? {}
  const perFrame: Ds[] = Array.isArray(ds.PerFrameFunctionalGroupsSequence)
    ? ds.PerFrameFunctionalGroupsSequence
    : []
  const segOrient = nums(seqItem(shared.PlaneOrientationSequence)?.ImageOrientationPatient)
  const refOrient = [...unit(rdir), ...unit(cdir)]
  if (segOrient && !orientationClose(segOrient, refOrient, 1e-3)) {
    throw new DsdError(
      'DICOM_SEG_MISMATCH',
      `${segFile}: the SEG's ImageOrientationPatient ${segOrient.join('\\')} differs from the image series' ${refOrient.map((v) => +v.toFixed(6)).join('\\')}; the SEG is on another grid — resample it or pick the matching series`,
      { file: segFile },
    )
  }
  let overlap = 0
  let framesByUid = 0
  let framesByPosition = 0
  const claimed = new Uint8Array(nx * ny * nz)
  for (let f = 0; f < nFrames; f++) {
    const pf = perFrame[f] ?? {}
    const segNo = num(
      seqItem(pf.SegmentIdentificationSequence)?.ReferencedSegmentNumber ??
        seqItem(shared.SegmentIdentificationSequence)?.ReferencedSegmentNumber,
      1,
    )
    const src = seqItem(seqItem(pf.DerivationImageSequence)?.SourceImageSequence)
    let k: number | undefined
    if (src?.ReferencedSOPInstanceUID) {
      const u = str(src.ReferencedSOPInstanceUID)
      const fr = num(src.ReferencedFrameNumber, 1)
      k = uidToK.get(`${u}#${fr}`) ?? uidOnly.get(u)
      if (k !== undefined) framesByUid++
    }
    const pos = nums(seqItem(pf.PlanePositionSequence)?.ImagePositionPatient)
    if (k === undefined && pos) {
      const d = [pos[0] - origin[0], pos[1] - origin[1], pos[2] - origin[2]]
      const kk = dot(d, normal) / kStep
      const rk = Math.round(kk)
      // in-plane offset must be ~0 relative to the slice's own origin
      if (Math.abs(kk - rk) < 0.05 && rk >= 0 && rk < nz) {
        k = rk
        framesByPosition++
      }
    }
    if (k === undefined) {
      throw new DsdError(
        'DICOM_SEG_MISMATCH',
        `${segFile}: frame ${f + 1} (segment ${segNo}) matches no slice of series ${refDicom.seriesInstanceUID} (by ReferencedSOPInstanceUID or position); the SEG was made on other images — pick the series it references`,
        { file: segFile, frame: f + 1 },
      )
    }
    const base = k * plane
    for (let row = 0; row < rows; row++) {
      const j = refDicom.flipRows ? rows - 1 - row : row
      const dst = base + j * cols
      const srcOff = f * plane + row * cols
      for (let i = 0; i < cols; i++) {
        const p = srcOff + i
        const on = type === 'BINARY' ? (bits[p >> 3] >> (p & 7)) & 1 : bits[p] > maxFrac / 2 ? 1 : 0
        if (!on) continue
        const v = dst + i
        if (claimed[v]) {
          overlap++
          if (segNo > labels[v]) labels[v] = segNo
        } else {
          claimed[v] = 1
          labels[v] = segNo
        }
      }
    }
  }
  const counts = new Map<number, number>()
  for (let v = 0; v < labels.length; v++)
    if (labels[v]) counts.set(labels[v], (counts.get(labels[v]) ?? 0) + 1)
  for (const s of segments) s.voxels = counts.get(s.number) ?? 0
  return {
    volume: {
      shape: [...reference.shape] as Vec3,
      channels: 1,
      spacing: [...reference.spacing] as Vec3,
      affine: reference.affine.map((r) => [...r]) as Mat4,
      datatype: maxSeg > 255 ? 'uint16' : 'uint8',
      data: labels,
      source: segFile,
    },
    segments,
    segmentationType: type,
    overlapVoxels: overlap,
    framesMatched: framesByUid + framesByPosition,
    framesByUid,
    framesByPosition,
  }
}

/** True when `file` starts like a DICOM Part 10 file. */
export async function isDicomFile(file: string): Promise<boolean> {
  const fh = await open(file, 'r')
  try {
    const b = Buffer.alloc(132)
    const { bytesRead } = await fh.read(b, 0, 132, 0)
    return bytesRead === 132 && isPart10(b)
  } finally {
    await fh.close()
  }
}

/** Read the header (no pixels) of one DICOM file as a naturalized dataset. */
export async function readDicomHeader(
  file: string,
): Promise<{ dataset: Ds; transferSyntax: string }> {
  const buf = await readFile(file)
  if (!isPart10(buf)) {
    throw new DsdError(
      'DICOM_BAD_MAGIC',
      `${file}: not a DICOM Part 10 file (no "DICM" marker at byte 128); pass a .dcm file`,
      { file },
    )
  }
  const { ds, syntax } = parseDicom(file, buf, true)
  return { dataset: ds, transferSyntax: syntax }
}

// ---------------------------------------------------------------------------------------------
// SEG writing

/** A segment to write into a DICOM SEG. */
export interface SegSegmentSpec {
  /** Label value in the label map (1…65535); it becomes the SegmentNumber. */
  number: number
  label: string
  description?: string
  /** Coded category / type (default: SCT 85756007 "Tissue" for both). */
  category?: { value: string; scheme: string; meaning: string }
  type?: { value: string; scheme: string; meaning: string }
  /** DICOM CIELab (0–65535 scaled), e.g. from a display colour. */
  cielab?: [number, number, number]
}

export interface WriteDicomSegOptions {
  /** Segments to write; default: one per label value found, named "Segment <n>". */
  segments?: SegSegmentSpec[]
  seriesDescription?: string
  seriesNumber?: number
  /** AUTOMATIC (default), SEMIAUTOMATIC or MANUAL. */
  algorithmType?: 'AUTOMATIC' | 'SEMIAUTOMATIC' | 'MANUAL'
  /** Required unless MANUAL (default "DSD Studio"). */
  algorithmName?: string
  contentLabel?: string
  contentDescription?: string
  contentCreatorName?: string
  /** Write a FRACTIONAL (8-bit, 0/255 PROBABILITY) SEG instead of BINARY. */
  fractional?: boolean
}

const TISSUE = { value: '85756007', scheme: 'SCT', meaning: 'Tissue' }

function code(c: { value: string; scheme: string; meaning: string }): Ds {
  return { CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning }
}

function dicomDateTime(d = new Date()): { date: string; time: string } {
  const iso = d.toISOString()
  return { date: iso.slice(0, 10).replace(/-/g, ''), time: iso.slice(11, 19).replace(/:/g, '') }
}

/**
 * Write a label map on the grid of `reference` (a DicomVolume from readDicomSeries) as a
 * BINARY (or, with `fractional`, FRACTIONAL) DICOM SEG that references the source images by SOPInstanceUID. Only frames with
 * voxels are stored. Returns the new SEG's UIDs and the frames written.
 */
export async function writeDicomSeg(
  path: string,
  labels: Volume,
  reference: DicomVolume,
  opts: WriteDicomSegOptions = {},
): Promise<{
  seriesInstanceUID: string
  sopInstanceUID: string
  frames: number
  segments: number[]
}> {
  const ref = reference.dicom
  const [nx, ny, nz] = reference.shape
  if (
    labels.shape[0] !== nx ||
    labels.shape[1] !== ny ||
    labels.shape[2] !== nz ||
    labels.channels !== 1
  ) {
    throw new DsdError(
      'DICOM_SEG_MISMATCH',
      `${path}: the label map is ${labels.shape.join('×')}×${labels.channels} but the image series is ${nx}×${ny}×${nz}; a SEG must be on the image grid — resample the labels onto it first`,
      { file: path },
    )
  }
  let worst = 0
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++)
      worst = Math.max(worst, Math.abs(labels.affine[r][c] - reference.affine[r][c]))
  if (worst > 1e-3 * Math.max(1, ...reference.spacing)) {
    throw new DsdError(
      'DICOM_SEG_MISMATCH',
      `${path}: the label map's affine differs from the image series' by ${worst.toFixed(4)} mm; the labels are on another grid — resample them onto the image first`,
      { file: path, maxDifference: worst },
    )
  }
  const d = labels.data
  const present = new Set<number>()
  for (let i = 0; i < d.length; i++) {
    const v = d[i]
    if (v !== 0) {
      if (!Number.isInteger(v) || v < 0 || v > 65535) {
        throw new DsdError(
          'DICOM_SEG_BAD_LABELS',
          `${path}: label value ${v} at voxel ${i} is not an integer in 1…65535; a SEG needs integer label values`,
          { file: path, value: v },
        )
      }
      present.add(v)
    }
  }
  const specs: SegSegmentSpec[] =
    opts.segments ??
    [...present].sort((a, b) => a - b).map((n) => ({ number: n, label: `Segment ${n}` }))
  const plane = nx * ny
  // frames: for each segment, each slice with voxels
  const frames: { seg: number; k: number }[] = []
  for (const sp of specs) {
    if (!present.has(sp.number)) continue
    for (let k = 0; k < nz; k++) {
      const base = k * plane
      for (let p = 0; p < plane; p++) {
        if (d[base + p] === sp.number) {
          frames.push({ seg: sp.number, k })
          break
        }
      }
    }
  }
  const written = specs.filter((s) => present.has(s.number))
  if (!frames.length) {
    throw new DsdError(
      'DICOM_SEG_EMPTY',
      `${path}: the label map has no voxels of the requested segments (${specs.map((s) => s.number).join(', ') || 'none'}); nothing to export`,
      { file: path },
    )
  }
  const rows = ref.rows
  const cols = ref.columns
  const fractional = opts.fractional ?? false
  const nbits = frames.length * plane
  const nbytes = fractional ? nbits : Math.ceil(nbits / 8)
  const bytes = new Uint8Array(nbytes + (nbytes % 2))
  frames.forEach(({ seg, k }, f) => {
    for (let row = 0; row < rows; row++) {
      const j = ref.flipRows ? rows - 1 - row : row
      const src = k * plane + j * cols
      const dst = f * plane + row * cols
      for (let i = 0; i < cols; i++) {
        if (d[src + i] === seg) {
          const b = dst + i
          if (fractional) bytes[b] = 255
          else bytes[b >> 3] |= 1 << (b & 7)
        }
      }
    }
  })
  const L = ref.lpsAffine
  const posOf = (k: number) => [0, 1, 2].map((a) => L[a][3] + k * L[a][2])
  const rdir = unit([L[0][0], L[1][0], L[2][0]])
  const cdir = unit([L[0][1], L[1][1], L[2][1]])
  const colSpacing = norm([L[0][0], L[1][0], L[2][0]])
  const rowSpacing = norm([L[0][1], L[1][1], L[2][1]])
  const sliceSpacing = norm([L[0][2], L[1][2], L[2][2]])
  const M = dcmjs.data.DicomMetaDictionary
  const seriesUID = M.uid()
  const sopUID = M.uid()
  const dimOrgUID = M.uid()
  const { date, time } = dicomDateTime()
  const algType = opts.algorithmType ?? 'AUTOMATIC'
  const ctx = ref.firstDataset
  const refSop = ref.sopClassUID
  const ds: Ds = {
    ...Object.fromEntries(
      [
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
      ]
        .filter((k) => ctx[k] !== undefined)
        .map((k) => [k, ctx[k]]),
    ),
    SOPClassUID: SEG_SOP_CLASS,
    SOPInstanceUID: sopUID,
    Modality: 'SEG',
    SeriesInstanceUID: seriesUID,
    SeriesNumber: opts.seriesNumber ?? 300,
    SeriesDescription: opts.seriesDescription ?? 'DSD Studio segmentation',
    SeriesDate: date,
    SeriesTime: time,
    ContentDate: date,
    ContentTime: time,
    InstanceNumber: 1,
    Manufacturer: 'DSD Studio',
    ManufacturerModelName: 'DSD Studio',
    DeviceSerialNumber: '1',
    SoftwareVersions: '1',
    FrameOfReferenceUID: ref.frameOfReferenceUID ?? ctx.FrameOfReferenceUID,
    PositionReferenceIndicator: ctx.PositionReferenceIndicator ?? '',
    ImageType: ['DERIVED', 'PRIMARY'],
    ContentLabel: (opts.contentLabel ?? 'SEGMENTATION')
      .toUpperCase()
      .replace(/[^A-Z0-9_ ]/g, '_')
      .slice(0, 16),
    ContentDescription: opts.contentDescription ?? 'Segmentation exported by DSD Studio',
    ContentCreatorName: opts.contentCreatorName ?? '',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: cols,
    NumberOfFrames: frames.length,
    BitsAllocated: fractional ? 8 : 1,
    BitsStored: fractional ? 8 : 1,
    HighBit: fractional ? 7 : 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    SegmentationType: fractional ? 'FRACTIONAL' : 'BINARY',
    ...(fractional
      ? { SegmentationFractionalType: 'PROBABILITY', MaximumFractionalValue: 255 }
      : {}),
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: ref.seriesInstanceUID,
        ReferencedInstanceSequence: [...new Set(frames.map((f) => f.k))].map((k) => ({
          ReferencedSOPClassUID: refSop,
          ReferencedSOPInstanceUID: ref.sopInstanceUIDs[k],
        })),
      },
    ],
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimOrgUID }],
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimOrgUID,
        DimensionIndexPointer: 0x0062000b,
        FunctionalGroupPointer: 0x0062000a,
        DimensionDescriptionLabel: 'ReferencedSegmentNumber',
      },
      {
        DimensionOrganizationUID: dimOrgUID,
        DimensionIndexPointer: 0x00200032,
        FunctionalGroupPointer: 0x00209113,
        DimensionDescriptionLabel: 'ImagePositionPatient',
      },
    ],
    SegmentSequence: written.map((s) => ({
      SegmentNumber: s.number,
      SegmentLabel: s.label,
      ...(s.description ? { SegmentDescription: s.description } : {}),
      SegmentAlgorithmType: algType,
      ...(algType !== 'MANUAL' ? { SegmentAlgorithmName: opts.algorithmName ?? 'DSD Studio' } : {}),
      SegmentedPropertyCategoryCodeSequence: [code(s.category ?? TISSUE)],
      SegmentedPropertyTypeCodeSequence: [code(s.type ?? TISSUE)],
      ...(s.cielab ? { RecommendedDisplayCIELabValue: s.cielab } : {}),
    })),
    SharedFunctionalGroupsSequence: [
      {
        PlaneOrientationSequence: [
          { ImageOrientationPatient: [...rdir, ...cdir].map((v) => +v.toFixed(8)) },
        ],
        PixelMeasuresSequence: [
          {
            PixelSpacing: [+rowSpacing.toFixed(8), +colSpacing.toFixed(8)],
            SliceThickness: +sliceSpacing.toFixed(8),
            SpacingBetweenSlices: +sliceSpacing.toFixed(8),
          },
        ],
      },
    ],
    PerFrameFunctionalGroupsSequence: frames.map(({ seg, k }) => ({
      DerivationImageSequence: [
        {
          SourceImageSequence: [
            {
              ReferencedSOPClassUID: refSop,
              ReferencedSOPInstanceUID: ref.sopInstanceUIDs[k],
              ...(ref.frameNumbers[k] > 1 ? { ReferencedFrameNumber: ref.frameNumbers[k] } : {}),
              PurposeOfReferenceCodeSequence: [
                code({
                  value: '121322',
                  scheme: 'DCM',
                  meaning: 'Source image for image processing operation',
                }),
              ],
            },
          ],
          DerivationCodeSequence: [
            code({ value: '113076', scheme: 'DCM', meaning: 'Segmentation' }),
          ],
        },
      ],
      FrameContentSequence: [{ DimensionIndexValues: [seg, k + 1] }],
      PlanePositionSequence: [{ ImagePositionPatient: posOf(k).map((v) => +v.toFixed(6)) }],
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: seg }],
    })),
    PixelData: [bytes.buffer],
    _vrMap: { PixelData: 'OB' },
  }
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: SEG_SOP_CLASS,
    MediaStorageSOPInstanceUID: sopUID,
    TransferSyntaxUID: '1.2.840.10008.1.2.1',
    ImplementationClassUID: '1.2.826.0.1.3680043.10.1437.1',
    ImplementationVersionName: 'DSD_STUDIO',
    _vrMap: { FileMetaInformationVersion: 'OB' },
  }
  const dict = new dcmjs.data.DicomDict(M.denaturalizeDataset(meta))
  dict.dict = M.denaturalizeDataset(ds)
  const out = new Uint8Array(dict.write())
  await writeAtomic(path, out)
  return {
    seriesInstanceUID: seriesUID,
    sopInstanceUID: sopUID,
    frames: frames.length,
    segments: written.map((s) => s.number),
  }
}
