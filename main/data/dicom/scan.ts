/**
 * Finding DICOM series in a folder: every file's header (never its pixels) grouped by
 * SeriesInstanceUID, and picking the one series a read asks for.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises'
import { extname, join, resolve } from 'node:path'
import { DsdError } from '../../errors'
import { MAX_VOLUME_BYTES } from '../volume'
import { isPart10, num, parseDicom, SEG_SOP_CLASS, str } from './parse'

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
  /**
   * Skipped files that should have been DICOM (a .dcm/.dicom/.ima name, or no extension and
   * binary or empty content): truncated or damaged slices. Reading a series refuses a folder
   * that has any, since a slice may be missing.
   */
  unreadable: string[]
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

/** The first 132 bytes of a file (fewer when it is shorter). */
async function fileHead(file: string): Promise<{ head: Uint8Array; size: number }> {
  const fh = await open(file, 'r')
  try {
    const b = Buffer.alloc(132)
    const { bytesRead } = await fh.read(b, 0, 132, 0)
    return { head: b.subarray(0, bytesRead), size: (await fh.stat()).size }
  } finally {
    await fh.close()
  }
}

/** A non-DICOM file that should have been one: a DICOM name, or no extension and not text. */
function shouldBeDicom(file: string, head: Uint8Array): boolean {
  const ext = extname(file).toLowerCase()
  if (['.dcm', '.dicom', '.ima'].includes(ext)) return true
  if (ext !== '') return false
  if (head.length === 0) return true
  return head.some((b) => b === 0 || (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d))
}

/** Group the DICOM files under `dir` by SeriesInstanceUID (headers only, no pixel data). */
export async function scanDicomFolder(
  dir: string,
  recursive = true,
  maxBytes = MAX_VOLUME_BYTES,
): Promise<DicomScan> {
  dir = resolve(dir)
  await ensureDir(dir)
  const files = await listFiles(dir, recursive)
  const bySeries = new Map<string, DicomSeriesInfo>()
  const skipped: string[] = []
  const unreadable: string[] = []
  for (const file of files) {
    // look at the 132-byte preamble first: other files (NIfTI, notes, …) are never read whole
    const { head, size } = await fileHead(file)
    if (isPart10(head) && size > maxBytes + Math.min(64 << 20, maxBytes)) {
      // read whole by dcmjs: refuse before loading a file no volume within the limit needs
      throw new DsdError(
        'DICOM_TOO_LARGE',
        `${file}: ${size.toLocaleString('en-US')} bytes, more than the ${maxBytes.toLocaleString('en-US')}-byte volume limit allows for one file; split or downsample the series first`,
        { file, bytes: size, maxBytes },
      )
    }
    if (!isPart10(head)) {
      skipped.push(file)
      if (shouldBeDicom(file, head)) unreadable.push(file)
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
  return { dir, series: [...bySeries.values()], skipped, unreadable }
}

export function describeSeries(s: DicomSeriesInfo): string {
  return `${s.seriesInstanceUID} (${s.modality || '?'}${s.seriesDescription ? ` "${s.seriesDescription}"` : ''}, ${s.files.length} file${s.files.length === 1 ? '' : 's'})`
}

export function pickSeries(scan: DicomScan, uid: string | undefined): DicomSeriesInfo {
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
  const flat = scan.series.find((s) => !s.isSeg && s.rows !== undefined)
  if (images.length === 0 && flat) {
    throw new DsdError(
      'DICOM_NO_GEOMETRY',
      `${flat.files[0]}: has pixels but no ImagePositionPatient/ImageOrientationPatient, so it cannot be placed in 3D; this is not a volume series (a screenshot, a localizer or a secondary capture?) — pick another series`,
      { file: flat.files[0], dir: scan.dir },
    )
  }
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
