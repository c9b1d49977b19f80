import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { DsdError } from '../errors'
import {
  readDicomHeader,
  readDicomSeries,
  scanDicomFolder,
  type DicomSeriesInfo,
  type DicomVolume,
} from '../data/dicom'
import {
  axcodes,
  effectiveScaling,
  qformAffine,
  readNifti,
  readNiftiHeader,
  sformAffine,
  type NiftiVolume,
} from '../data/nifti'
import { readNrrd, type NrrdVolume } from '../data/nrrd'
import { detectFormat, labelCounts, volumeStats } from '../data/volume-io'
import type { Volume } from '../data/volume'
import { CliError, parse, printJson } from './args'

export const summary = 'Header, geometry, datatype, value range and label values of a volume'
export const usage = `Usage: dsd inspect <file|dir> [--json] [--series UID] [--header-only]

<file|dir> is a NIfTI (.nii, .nii.gz), a NRRD (.nrrd), a DICOM file (its series is read), a
DICOM SEG (its segments are listed), a folder holding a DICOM series, or a folder of NIfTI files
(one header line per file).

  --json          print JSON: { shape: [x, y, z(, c)], spacing, affine (4×4 voxel → RAS+ world,
                  as nibabel reports it), axcodes, datatype, channels, min, max, mean, labels, … }
  --series UID    pick one series when a DICOM folder holds several (otherwise they are listed)
  --header-only   NIfTI only: read just the header (no value range or labels; fast)

Label values are listed when the voxels are integers with at most 64 distinct values.`

const round = (x: number, d = 6) => (Number.isFinite(x) ? Number(x.toPrecision(d + 3)) : x)

function geometry(v: Pick<Volume, 'shape' | 'channels' | 'spacing' | 'affine' | 'datatype'>) {
  return {
    shape: v.channels > 1 ? [...v.shape, v.channels] : [...v.shape],
    spacing: v.spacing.map((s) => round(s)),
    affine: v.affine.map((r) => r.map((x) => round(x))),
    axcodes: axcodes(v.affine),
    datatype: v.datatype,
    channels: v.channels,
  }
}

function values(v: Volume) {
  const s = volumeStats(v)
  return {
    min: round(s.min),
    max: round(s.max),
    mean: round(s.mean),
    ...(s.nonFinite ? { nonFinite: s.nonFinite } : {}),
    labels: labelCounts(v),
  }
}

function niftiHeaderJson(v: Pick<NiftiVolume, 'header'>, gzipped: boolean) {
  const h = v.header
  const scale = effectiveScaling(h)
  return {
    version: h.version,
    byteOrder: h.littleEndian ? 'little' : 'big',
    gzipped,
    magic: h.magic,
    dim: h.dim,
    pixdim: h.pixdim.map((x) => round(x)),
    datatypeCode: h.datatypeCode,
    bitpix: h.bitpix,
    voxOffset: h.voxOffset,
    sclSlope: h.sclSlope,
    sclInter: h.sclInter,
    scaling: scale,
    qformCode: h.qformCode,
    sformCode: h.sformCode,
    qfac: h.pixdim[0] === -1 ? -1 : 1,
    qform: qformAffine(h).map((r) => r.map((x) => round(x))),
    sform: sformAffine(h).map((r) => r.map((x) => round(x))),
    xyztUnits: h.xyztUnits,
    intentCode: h.intentCode,
    descrip: h.descrip,
    hasExtensions: h.hasExtensions,
  }
}

function seriesJson(s: DicomSeriesInfo) {
  return {
    seriesInstanceUID: s.seriesInstanceUID,
    modality: s.modality,
    description: s.seriesDescription,
    seriesNumber: s.seriesNumber,
    files: s.files.length,
    rows: s.rows,
    columns: s.columns,
    isImage: s.isImage,
    isSeg: s.isSeg,
  }
}

function dicomJson(v: DicomVolume) {
  const d = v.dicom
  return {
    seriesInstanceUID: d.seriesInstanceUID,
    studyInstanceUID: d.studyInstanceUID,
    frameOfReferenceUID: d.frameOfReferenceUID,
    modality: d.modality,
    description: d.seriesDescription,
    slices: d.files.length,
    rows: d.rows,
    columns: d.columns,
    rescaleSlope: d.rescaleSlope,
    rescaleIntercept: d.rescaleIntercept,
    rowsFlipped: d.flipRows,
  }
}

/** Inspect one path; returns the JSON report. */
export async function inspect(
  path: string,
  opts: { series?: string; headerOnly?: boolean } = {},
): Promise<Record<string, unknown>> {
  const format = await detectFormat(path)
  if (format === 'nifti') {
    if (opts.headerOnly) {
      const h = await readNiftiHeader(path)
      return { file: path, format: 'nifti', ...geometry(h), nifti: niftiHeaderJson(h, h.gzipped) }
    }
    const v = await readNifti(path, { allow2D: true })
    const { gzipped } = await readNiftiHeader(path)
    return {
      file: path,
      format: 'nifti',
      ...geometry(v),
      ...values(v),
      nifti: niftiHeaderJson(v, gzipped),
    }
  }
  if (format === 'nrrd') {
    const v: NrrdVolume = await readNrrd(path)
    return { file: path, format: 'nrrd', ...geometry(v), ...values(v), nrrd: v.fields }
  }
  if (format === 'dicom-file') {
    const { dataset, transferSyntax } = await readDicomHeader(path)
    if (dataset.Modality === 'SEG') {
      const segs = (
        Array.isArray(dataset.SegmentSequence) ? dataset.SegmentSequence : []
      ) as Record<string, unknown>[]
      return {
        file: path,
        format: 'dicom-seg',
        segmentationType: dataset.SegmentationType,
        frames: Number(dataset.NumberOfFrames ?? 1),
        rows: dataset.Rows,
        columns: dataset.Columns,
        transferSyntax,
        referencedSeries: (
          dataset.ReferencedSeriesSequence as Record<string, unknown>[] | undefined
        )?.map((s) => s.SeriesInstanceUID),
        segments: segs.map((s) => ({
          number: s.SegmentNumber,
          label: s.SegmentLabel,
          algorithmType: s.SegmentAlgorithmType,
        })),
      }
    }
    const v = await readDicomSeries(join(path, '..'), {
      seriesUID: opts.series ?? String(dataset.SeriesInstanceUID),
      recursive: false,
    })
    return { file: path, format: 'dicom', ...geometry(v), ...values(v), dicom: dicomJson(v) }
  }
  // a folder: DICOM series, or a folder of NIfTI/NRRD files
  const scan = await scanDicomFolder(path)
  const images = scan.series.filter((s) => s.isImage)
  if (images.length === 0) {
    const names = (await readdir(path)).filter((n) => /\.(nii|nii\.gz)$/i.test(n)).sort()
    if (!names.length) {
      throw new DsdError(
        'NO_VOLUMES',
        `${path}: no DICOM series and no NIfTI files found; pass a volume file or a folder of them`,
        { dir: path },
      )
    }
    const files = []
    for (const n of names) {
      const h = await readNiftiHeader(join(path, n))
      files.push({ file: n, ...geometry(h) })
    }
    return { dir: path, format: 'nifti-folder', files }
  }
  if (images.length > 1 && !opts.series) {
    return { dir: path, format: 'dicom-folder', series: scan.series.map(seriesJson) }
  }
  const v = await readDicomSeries(path, { seriesUID: opts.series })
  return {
    dir: path,
    format: 'dicom',
    ...geometry(v),
    ...values(v),
    dicom: dicomJson(v),
    otherSeries: scan.series
      .filter((s) => s.seriesInstanceUID !== v.dicom.seriesInstanceUID)
      .map(seriesJson),
  }
}

const fmt = (a: number[]) => a.map((x) => round(x, 4)).join(' × ')

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function text(r: Record<string, any>): string {
  const lines: string[] = []
  const where = r.file ?? r.dir
  if (r.format === 'dicom-folder') {
    lines.push(`${where}: ${r.series.length} DICOM series (pick one with --series UID)`)
    for (const s of r.series) {
      lines.push(
        `  ${s.seriesInstanceUID}  ${s.modality || '?'}  "${s.description}"  ${s.files} files${s.isImage ? `  ${s.columns}×${s.rows}` : s.isSeg ? '  (SEG)' : '  (not an image)'}`,
      )
    }
    return lines.join('\n')
  }
  if (r.format === 'nifti-folder') {
    lines.push(`${where}: ${r.files.length} NIfTI files`)
    for (const f of r.files)
      lines.push(
        `  ${f.file}  ${f.shape.join('×')}  ${f.datatype}  ${fmt(f.spacing)} mm  ${f.axcodes}`,
      )
    return lines.join('\n')
  }
  if (r.format === 'dicom-seg') {
    lines.push(
      `${where}: DICOM SEG (${r.segmentationType}), ${r.frames} frames of ${r.columns}×${r.rows}`,
    )
    for (const s of r.segments)
      lines.push(
        `  segment ${s.number}: ${s.label}${s.algorithmType ? ` (${s.algorithmType})` : ''}`,
      )
    lines.push(`  referenced series: ${(r.referencedSeries ?? []).join(', ') || '?'}`)
    return lines.join('\n')
  }
  lines.push(`${where}  (${r.format})`)
  lines.push(
    `  shape     ${r.shape.join(' × ')}${r.channels > 1 ? `  (${r.channels} channels)` : ''}`,
  )
  lines.push(`  datatype  ${r.datatype}`)
  lines.push(`  spacing   ${fmt(r.spacing)} mm`)
  lines.push(`  axcodes   ${r.axcodes}`)
  lines.push(
    '  affine    ' +
      r.affine
        .slice(0, 3)
        .map((row: number[]) => row.map((x) => String(round(x, 5)).padStart(11)).join(' '))
        .join('\n            '),
  )
  if (r.min !== undefined)
    lines.push(`  values    min ${r.min}  max ${r.max}  mean ${round(r.mean, 5)}`)
  if (r.labels)
    lines.push(
      `  labels    ${r.labels.map((l: { value: number; voxels: number }) => `${l.value}: ${l.voxels}`).join(', ')}`,
    )
  else if (r.min !== undefined)
    lines.push('  labels    (not a label map: non-integer or more than 64 values)')
  if (r.nifti) {
    const n = r.nifti
    lines.push(
      `  NIfTI-${n.version}  ${n.byteOrder}-endian${n.gzipped ? ', gzip' : ''}  sform_code ${n.sformCode}  qform_code ${n.qformCode}  qfac ${n.qfac}` +
        (n.scaling ? `  scl_slope ${n.scaling.slope} scl_inter ${n.scaling.inter}` : ''),
    )
    if (n.descrip) lines.push(`  descrip   ${n.descrip}`)
  }
  if (r.dicom) {
    const d = r.dicom
    lines.push(
      `  DICOM     ${d.modality} "${d.description}"  ${d.slices} slices  series ${d.seriesInstanceUID}`,
    )
    if (d.rescaleSlope !== 1 || d.rescaleIntercept !== 0)
      lines.push(`  rescale   slope ${d.rescaleSlope}  intercept ${d.rescaleIntercept}`)
    if (r.otherSeries?.length)
      lines.push(
        `  also in folder: ${r.otherSeries.map((s: { description: string; modality: string }) => `${s.modality} "${s.description}"`).join(', ')}`,
      )
  }
  return lines.join('\n')
}

export async function run(args: string[]): Promise<number> {
  const { values: o, positionals } = parse(args, {
    json: { type: 'boolean' },
    series: { type: 'string' },
    'header-only': { type: 'boolean' },
  })
  if (positionals.length !== 1) throw new CliError(`expected one file or folder.\n${usage}`)
  const path = positionals[0]
  await stat(path).catch(() => {
    throw new CliError(`${path}: no such file or folder`, 1)
  })
  const report = await inspect(path, { series: o.series, headerOnly: o['header-only'] })
  if (o.json) printJson(report)
  else console.log(text(report))
  return 0
}
