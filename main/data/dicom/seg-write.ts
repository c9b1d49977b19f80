/**
 * Label map on an image series' grid → DICOM SEG (BINARY or FRACTIONAL) referencing the source
 * images by SOPInstanceUID.
 */
import { atomicWriteFile } from '../../atomic-file'
import { DsdError } from '../../errors'
import type { Volume } from '../volume'
import { dcmjs, norm, SEG_SOP_CLASS, unit, type Ds } from './parse'
import { STUDY_CONTEXT_KEYS, type DicomVolume } from './series'

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
      STUDY_CONTEXT_KEYS.filter((k) => ctx[k] !== undefined)
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
  await atomicWriteFile(path, out, { mkdir: false })
  return {
    seriesInstanceUID: seriesUID,
    sopInstanceUID: sopUID,
    frames: frames.length,
    segments: written.map((s) => s.number),
  }
}
