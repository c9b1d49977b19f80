import { stat } from 'node:fs/promises'
import { DsdError } from '../errors'
import { readDicomHeader, readDicomSeg, readDicomSeries } from '../data/dicom'
import { axcodes, type WriteNiftiOptions } from '../data/nifti'
import { detectFormat, isDicomVolume, readVolume, writeVolume } from '../data/volume-io'
import type { DataType, Volume } from '../data/volume'
import { CliError, parse, printJson } from './args'

export const summary = 'Convert a DICOM series / DICOM SEG / NRRD / NIfTI to NIfTI (.nii.gz)'
export const usage = `Usage: dsd convert <input> <out.nii.gz> [--series UID] [--reference DIR] [--datatype T] [--json]

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
  --json            print what was written as JSON`

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

export async function run(args: string[]): Promise<number> {
  const { values: o, positionals } = parse(args, {
    series: { type: 'string' },
    reference: { type: 'string' },
    datatype: { type: 'string' },
    json: { type: 'boolean' },
  })
  if (positionals.length !== 2) throw new CliError(`expected <input> and <out.nii.gz>.\n${usage}`)
  const [input, output] = positionals
  if (o.datatype && !TYPES.includes(o.datatype as DataType)) {
    throw new CliError(`--datatype must be one of ${TYPES.join(', ')}; got "${o.datatype}"`)
  }
  if (!/\.nii(\.gz)?$/i.test(output)) {
    throw new CliError(`${output}: the output must be a .nii.gz or .nii file`)
  }
  await stat(input).catch(() => {
    throw new DsdError('NOT_FOUND', `${input}: no such file or folder; check the path`, {
      file: input,
    })
  })
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
