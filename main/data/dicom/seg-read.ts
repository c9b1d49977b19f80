/**
 * DICOM SEG → label map on the grid of its image series (from readDicomSeries).
 */
import { readFile } from 'node:fs/promises'
import { DsdError } from '../../errors'
import { MAX_VOLUME_BYTES, type Mat4, type Vec3, type Volume } from '../volume'
import {
  checkPixelModule,
  checkSyntax,
  cross,
  dot,
  isPart10,
  num,
  nums,
  orientationClose,
  parseDicom,
  SEG_SOP_CLASS,
  seqItem,
  str,
  unit,
  wholeNumber,
  type Ds,
} from './parse'
import type { DicomVolume } from './series'

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
  const px = checkPixelModule(segFile, ds, type === 'BINARY' ? [1] : [8], MAX_VOLUME_BYTES)
  const rows = px.rows
  const cols = px.columns
  const nFrames = px.frames
  if (rows !== refDicom.rows || cols !== refDicom.columns) {
    throw new DsdError(
      'DICOM_SEG_MISMATCH',
      `${segFile}: SEG frames are ${rows}×${cols} but the image slices are ${refDicom.rows}×${refDicom.columns}; the SEG is on another grid — resample it in a viewer (e.g. 3D Slicer) or pick the matching series`,
      { file: segFile },
    )
  }
  const segSeq: Ds[] = Array.isArray(ds.SegmentSequence) ? ds.SegmentSequence : []
  const segments: SegSegment[] = segSeq.map((s) => ({
    number: wholeNumber(segFile, 'SegmentNumber', s.SegmentNumber, 1, 65535),
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
  const maxFrac = wholeNumber(
    segFile,
    'MaximumFractionalValue',
    ds.MaximumFractionalValue,
    1,
    255,
    255,
  )
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
