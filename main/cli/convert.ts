import { stat } from 'node:fs/promises'
import { DsdError } from '../errors'
import {
  readDicomHeader,
  readDicomSeg,
  readDicomSeries,
  writeDicomSeg,
  type SegSegmentSpec,
} from '../data/dicom'
import { axcodes, type WriteNiftiOptions } from '../data/nifti'
import {
  alignToGrid,
  detectFormat,
  isDicomVolume,
  readVolume,
  writeVolume,
} from '../data/volume-io'
import type { DataType, Volume } from '../data/volume'
import { CliError, parse, printJson } from './args'

export const summary =
  'Convert a DICOM series / DICOM SEG / NRRD / NIfTI to NIfTI, or a label map to DICOM SEG'
export const usage = `Usage: dsd convert <input> <out.nii.gz> [--series UID] [--reference DIR] [--datatype T] [--json]
       dsd convert <labels.nii.gz> <out.dcm> --reference DIR [--labels "1=Liver,2=Tumour"] [--json]

<input> is a folder holding a DICOM series (any file order), one DICOM file (its whole series
is read from its folder), a DICOM SEG file (needs --reference), a NRRD or a NIfTI file.
The output is NIfTI-1 (gzip when the name ends in .gz), written atomically.

DICOM geometry follows dcm2niix: i along the columns, j along the rows bottom-up, k along the
slice normal; the affine is RAS+. A SEG becomes a label map on the reference series' grid
(segment numbers as label values).

  --series UID      pick the series when the folder holds several
  --reference DIR   for a SEG: the folder of the image series it was drawn on
  --datatype T      store as uint8 | int8 | int16 | uint16 | int32 | uint32 | float32 | float64
                    (values must fit; default: the input's datatype)
  --labels SPEC     for SEG export: segment names, "value=name" pairs separated by commas
  --json            print what was written as JSON

An output ending in .dcm exports the input label map as a DICOM SEG (BINARY) on the grid of the
--reference series; the label map must hold the same voxels as that series (up to axis flips,
e.g. its dcm2niix NIfTI or a prediction on it).`

const TYPES: DataType[] = [
  'uint8',
  'int8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'float32',
  'float64',
]

/** Convert `input` to NIfTI at `output`; returns a report of what was written. */
export async function convert(
  input: string,
  output: string,
  opts: { series?: string; reference?: string; datatype?: DataType } = {},
): Promise<Record<string, unknown>> {
  const format = await detectFormat(input)
  let volume: Volume
  let extra: Record<string, unknown> = {}
  const isSeg = format === 'dicom-file' && (await readDicomHeader(input)).dataset.Modality === 'SEG'
  if (isSeg) {
    if (!opts.reference) {
      throw new CliError(
        `${input} is a DICOM SEG: pass --reference <folder of the image series it was drawn on>`,
      )
    }
    const ref = await readDicomSeries(opts.reference, { seriesUID: opts.series })
    const seg = await readDicomSeg(input, ref)
    volume = seg.volume
    extra = {
      segments: seg.segments,
      segmentationType: seg.segmentationType,
      overlapVoxels: seg.overlapVoxels,
      reference: ref.dicom.seriesInstanceUID,
    }
  } else {
    if (opts.reference) throw new CliError('--reference is only for a DICOM SEG input')
    volume = await readVolume(input, { seriesUID: opts.series })
    if (isDicomVolume(volume)) {
      extra = {
        seriesInstanceUID: volume.dicom.seriesInstanceUID,
        modality: volume.dicom.modality,
        description: volume.dicom.seriesDescription,
        slices: volume.dicom.files.length,
      }
    }
  }
  const wopts: WriteNiftiOptions = { datatype: opts.datatype }
  if (!opts.datatype && volume.data instanceof Float32Array && volume.datatype !== 'float32') {
    wopts.datatype = 'float32' // scaled values: keep them exactly
  }
  await writeVolume(output, volume, wopts)
  return {
    input,
    output,
    format: isSeg ? 'dicom-seg' : format,
    shape: volume.channels > 1 ? [...volume.shape, volume.channels] : volume.shape,
    spacing: volume.spacing,
    axcodes: axcodes(volume.affine),
    datatype: wopts.datatype ?? volume.datatype,
    ...extra,
  }
}

/** Parse "1=Liver,2=Tumour" into segment specs. */
export function parseLabelSpec(spec: string): SegSegmentSpec[] {
  return spec
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const m = /^(\d+)\s*=\s*(.+)$/.exec(p)
      if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) {
        throw new CliError(`--labels: "${p}" is not "value=name" with a value in 1…65535`)
      }
      return { number: Number(m[1]), label: m[2].trim() }
    })
}

/** Export a label map (NIfTI/NRRD) as a DICOM SEG on the grid of the reference series. */
export async function exportSeg(
  input: string,
  output: string,
  opts: { reference?: string; series?: string; labels?: string },
): Promise<Record<string, unknown>> {
  if (!opts.reference) {
    throw new CliError(
      'a .dcm output is a DICOM SEG export: pass --reference <image series folder>',
    )
  }
  const labels = await readVolume(input)
  if (isDicomVolume(labels)) {
    throw new CliError('SEG export takes a label map file (NIfTI or NRRD) as input')
  }
  const ref = await readDicomSeries(opts.reference, { seriesUID: opts.series })
  const onGrid = alignToGrid(labels, ref)
  const r = await writeDicomSeg(output, onGrid, ref, {
    segments: opts.labels ? parseLabelSpec(opts.labels) : undefined,
  })
  return {
    input,
    output,
    format: 'dicom-seg',
    reference: ref.dicom.seriesInstanceUID,
    seriesInstanceUID: r.seriesInstanceUID,
    sopInstanceUID: r.sopInstanceUID,
    frames: r.frames,
    segments: r.segments,
  }
}

export async function run(args: string[]): Promise<number> {
  const { values: o, positionals } = parse(args, {
    series: { type: 'string' },
    reference: { type: 'string' },
    datatype: { type: 'string' },
    labels: { type: 'string' },
    json: { type: 'boolean' },
  })
  if (positionals.length !== 2) throw new CliError(`expected <input> and <out.nii.gz>.\n${usage}`)
  const [input, output] = positionals
  if (o.datatype && !TYPES.includes(o.datatype as DataType)) {
    throw new CliError(`--datatype must be one of ${TYPES.join(', ')}; got "${o.datatype}"`)
  }
  await stat(input).catch(() => {
    throw new DsdError('NOT_FOUND', `${input}: no such file or folder; check the path`, {
      file: input,
    })
  })
  if (/\.dcm$/i.test(output)) {
    const r = await exportSeg(input, output, o)
    if (o.json) printJson(r)
    else {
      const segs = (r.segments as number[]).join(', ')
      console.log(
        `wrote ${output}: DICOM SEG, segments ${segs}, ${r.frames} frames on series ${r.reference}`,
      )
    }
    return 0
  }
  if (!/\.nii(\.gz)?$/i.test(output)) {
    throw new CliError(
      `${output}: the output must be a .nii.gz or .nii file (or .dcm for a DICOM SEG export)`,
    )
  }
  if (o.labels)
    throw new CliError('--labels is only for a DICOM SEG export (an output ending in .dcm)')
  const r = await convert(input, output, {
    series: o.series,
    reference: o.reference,
    datatype: o.datatype as DataType | undefined,
  })
  if (o.json) printJson(r)
  else {
    const shape = (r.shape as number[]).join('×')
    const sp = (r.spacing as number[]).map((s) => Number(s.toPrecision(5))).join('×')
    const segs = r.segments as { number: number; label: string; voxels: number }[] | undefined
    console.log(
      `wrote ${output}: ${shape} ${r.datatype}, ${sp} mm, ${r.axcodes}` +
        (r.slices ? ` (DICOM ${r.modality} "${r.description}", ${r.slices} slices)` : '') +
        (segs
          ? `\n  segments: ${segs.map((s) => `${s.number} ${s.label} (${s.voxels} voxels)`).join(', ')}`
          : ''),
    )
  }
  return 0
}
