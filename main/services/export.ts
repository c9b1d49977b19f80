/**
 * Export: prediction masks as NIfTI on the original image grid (class indices, or the label
 * values the dataset stores, e.g. MMWHS 205…850) and as DICOM SEG when the source image was a
 * DICOM series; metrics CSV files; the HTML report (report.ts). Every file is written
 * atomically. Cases whose source is not DICOM are listed as "not available" for DICOM SEG with
 * the reason, never silently skipped.
 */
import { copyFile, mkdir, rename, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import type { LabelMap } from '../data/labels'
import { readNifti, writeNifti } from '../data/nifti'
import type { DataType, Volume } from '../data/volume'
import { DsdError } from '../errors'
import { atomicWriteJson } from '../workspace/atomic'
import { readPredictionsManifest, type PredictionsManifest } from './inference'

/** Export formats for masks. */
export type MaskFormat = 'nifti' | 'dicom-seg'

/** Options of {@link exportPredictions}. */
export interface ExportOptions {
  /** Default ['nifti']. */
  formats?: MaskFormat[]
  /** 'classes' (default): 0..K−1; 'source': the values the dataset's label files store. */
  values?: 'classes' | 'source'
  /** Only these cases (default all). */
  cases?: string[]
  onProgress?: (done: number, total: number, caseId: string) => void
  signal?: AbortSignal
}

/** One exported case. */
export interface ExportedCase {
  caseId: string
  nifti: string | null
  dicomSeg: string | null
}

/** What {@link exportPredictions} did. */
export interface ExportResult {
  outDir: string
  cases: ExportedCase[]
  /** Formats that could not be written for a case, with the reason. */
  unavailable: { caseId: string; format: MaskFormat; reason: string }[]
  files: string[]
}

/**
 * Class index → stored label value. With a remapping, each class maps back to the smallest
 * stored value that maps to it (class 0 to 0 when 0 is listed); without one, values are the
 * classes.
 */
export function classToSourceValues(map: LabelMap, classes: number): number[] {
  const out = Array.from({ length: classes }, (_, k) => k)
  if (!map.remap) return out
  for (let k = 0; k < classes; k++) {
    const values = Object.entries(map.remap)
      .filter(([, c]) => c === k)
      .map(([v]) => Number(v))
      .sort((a, b) => a - b)
    if (k === 0 && values.includes(0)) out[k] = 0
    else if (values.length) out[k] = values[0]
    else {
      throw new DsdError(
        'EXPORT_NO_SOURCE_VALUE',
        `label map: class ${k} (${map.classes[String(k)] ?? '?'}) has no stored value in the remapping; export class indices instead (--values classes)`,
        { class: k },
      )
    }
  }
  return out
}

function smallestType(values: number[]): DataType {
  const min = Math.min(...values)
  const max = Math.max(...values)
  if (min >= 0 && max <= 255) return 'uint8'
  if (min >= -32768 && max <= 32767) return 'int16'
  if (min >= 0 && max <= 65535) return 'uint16'
  return 'int32'
}

/** The prediction volume with class indices replaced by stored values. */
function toSourceValues(vol: Volume, lut: number[]): Volume {
  const t = smallestType(lut)
  const ctor = { uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array }[
    t as 'uint8'
  ]
  const data = new ctor(vol.data.length)
  for (let i = 0; i < data.length; i++) data[i] = lut[vol.data[i]]
  return { ...vol, datatype: t, data }
}

/**
 * Export a predictions folder (written by `predictCases`) into `outDir`: `<case>.nii.gz` and/or
 * `<case>.seg.dcm`, plus `export.json` listing what was written and what was not available.
 */
export async function exportPredictions(
  predictionsDir: string,
  outDir: string,
  opts: ExportOptions = {},
): Promise<ExportResult> {
  const dir = resolve(predictionsDir)
  const out = resolve(outDir)
  if (out === dir)
    throw new DsdError(
      'EXPORT_SAME_FOLDER',
      `${out}: export into another folder than the predictions themselves`,
      {},
    )
  const m: PredictionsManifest = await readPredictionsManifest(dir)
  const formats = opts.formats ?? ['nifti']
  for (const f of formats) {
    if (f !== 'nifti' && f !== 'dicom-seg')
      throw new DsdError(
        'EXPORT_BAD_FORMAT',
        `export: unknown format "${f}"; use nifti or dicom-seg`,
        { format: f },
      )
  }
  const values = opts.values ?? 'classes'
  const lut = values === 'source' ? classToSourceValues(m.labelMap, m.classes) : null
  const wanted = opts.cases ? new Set(opts.cases) : null
  for (const id of wanted ?? []) {
    if (!m.cases.some((c) => c.caseId === id))
      throw new DsdError('CASE_NOT_FOUND', `${dir}: case "${id}" was not predicted`, { caseId: id })
  }
  const cases = m.cases.filter((c) => !wanted || wanted.has(c.caseId))
  await mkdir(out, { recursive: true })
  const result: ExportResult = { outDir: out, cases: [], unavailable: [], files: [] }
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]
    if (opts.signal?.aborted) {
      throw new DsdError(
        'CANCELLED',
        `export cancelled after ${i} of ${cases.length} cases; the finished files are complete`,
        { done: i },
      )
    }
    const src = join(dir, c.file)
    if (!existsSync(src))
      throw new DsdError(
        'FILE_NOT_FOUND',
        `${src}: the prediction of case ${c.caseId} is missing; predict again`,
        { file: src },
      )
    const entry: ExportedCase = { caseId: c.caseId, nifti: null, dicomSeg: null }
    const vol = await readNifti(src)
    if (formats.includes('nifti')) {
      const file = join(out, `${c.caseId}.nii.gz`)
      if (lut)
        await writeNifti(file, toSourceValues(vol, lut), {
          descrip: 'DSD Studio prediction (label values)',
        })
      else
        await writeNifti(file, vol, {
          datatype: 'uint8',
          descrip: 'DSD Studio prediction (classes)',
        })
      entry.nifti = file
      result.files.push(file)
    }
    if (formats.includes('dicom-seg')) {
      if (c.sourceFormat !== 'dicom') {
        result.unavailable.push({
          caseId: c.caseId,
          format: 'dicom-seg',
          reason: `not available: the source image (${basename(c.images[0] ?? '?')}) is NIfTI, and a DICOM SEG must reference the DICOM series the prediction was made on — predict from the DICOM series folder to export a SEG`,
        })
      } else {
        const dicom = await import('../data/dicom')
        if (typeof dicom.writeDicomSeg !== 'function') {
          result.unavailable.push({
            caseId: c.caseId,
            format: 'dicom-seg',
            reason: 'not available: this build has no DICOM SEG writer',
          })
        } else {
          const reference = await dicom.readDicomSeries(c.images[0])
          const file = join(out, `${c.caseId}.seg.dcm`)
          const present = new Set<number>()
          for (let v = 0; v < vol.data.length; v++) if (vol.data[v]) present.add(vol.data[v])
          const segments = [...present]
            .sort((a, b) => a - b)
            .map((k) => ({ number: k, label: m.labelMap.classes[String(k)] ?? `class ${k}` }))
          if (segments.length === 0) {
            result.unavailable.push({
              caseId: c.caseId,
              format: 'dicom-seg',
              reason:
                'not written: the prediction is empty (no foreground voxel), and a DICOM SEG needs at least one segment',
            })
          } else {
            await dicom.writeDicomSeg(file, vol, reference, {
              segments,
              seriesDescription: `DSD Studio prediction${m.runIds.length ? ` (${m.runIds.join(', ')})` : ''}`,
              contentLabel: 'DSDPRED',
            })
            entry.dicomSeg = file
            result.files.push(file)
          }
        }
      }
    }
    result.cases.push(entry)
    opts.onProgress?.(i + 1, cases.length, c.caseId)
  }
  const summary = join(out, 'export.json')
  await atomicWriteJson(summary, {
    format: 'dsd-export',
    version: 1,
    createdAt: new Date().toISOString(),
    predictions: dir,
    runIds: m.runIds,
    values,
    formats,
    labels: m.labelMap.classes,
    ...(lut ? { classToValue: lut } : {}),
    cases: result.cases.map((c) => ({
      ...c,
      nifti: c.nifti && basename(c.nifti),
      dicomSeg: c.dicomSeg && basename(c.dicomSeg),
    })),
    unavailable: result.unavailable,
  })
  result.files.push(summary)
  return result
}

/** Copy metric CSV/JSON files (e.g. from `runs/<id>/metrics/`) into `outDir` (atomically). */
export async function exportFiles(files: string[], outDir: string): Promise<string[]> {
  const out: string[] = []
  await mkdir(outDir, { recursive: true })
  for (const f of files) {
    if (!existsSync(f))
      throw new DsdError('FILE_NOT_FOUND', `${f}: no such file to export; evaluate first`, {
        file: f,
      })
    const dst = join(outDir, basename(f))
    const tmp = join(outDir, `.${basename(f)}.${process.pid}.tmp`)
    try {
      await copyFile(f, tmp)
      await rename(tmp, dst)
    } catch (err) {
      await rm(tmp, { force: true })
      throw new DsdError(
        'WRITE_FAILED',
        `${dst}: could not write (${(err as Error).message}); check permissions and free space`,
        { file: dst },
      )
    }
    out.push(dst)
  }
  return out
}
