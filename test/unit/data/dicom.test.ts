/**
 * DICOM import against the reference conversions in ../shared/data/dicom-samples:
 * the TCIA MR series (scrambled file order) vs its dcm2niix NIfTI, and the dcmqi CT + SEG vs
 * the NRRD label map, voxel for voxel.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  readDicomSeg,
  readDicomSeries,
  scanDicomFolder,
  type DicomVolume,
} from '../../../main/data/dicom'
import { axcodes, readNifti } from '../../../main/data/nifti'
import { readNrrd } from '../../../main/data/nrrd'
import { alignToGrid, readVolume } from '../../../main/data/volume-io'
import type { Mat4 } from '../../../main/data/volume'
import { sharedPath, tmpDir } from '../../helpers/shared'

const MR = sharedPath('data', 'dicom-samples', 'tcia-brain-tumor-progression_PGBM-001_19911119')
const CT = sharedPath('data', 'dicom-samples', 'dcmqi_ct-3slice_liver-seg')
const TMP = tmpDir('dicom')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

function maxAffineDiff(a: Mat4, b: Mat4): number {
  let m = 0
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++) m = Math.max(m, Math.abs(a[r][c] - b[r][c]))
  return m
}

function countDiffs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length)
  let d = 0
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++
  return d
}

describe('MR series (TCIA PGBM-001) vs the dcm2niix NIfTI', () => {
  let t1: DicomVolume
  beforeAll(async () => {
    t1 = await readDicomSeries(join(MR, 'T1post'))
  })

  it('T1post: same grid, axis codes, datatype and every voxel', async () => {
    const ref = await readNifti(
      sharedPath('data', 'tcia-brain-tumor-progression', 'imagesTr', 'PGBM-001_19911119.nii.gz'),
    )
    expect(t1.shape).toEqual([260, 320, 25])
    expect(t1.datatype).toBe('int16')
    expect(axcodes(t1.affine)).toBe('LAS')
    expect(t1.spacing[0]).toBeCloseTo(0.6875, 6)
    expect(t1.spacing[1]).toBeCloseTo(0.6875, 6)
    expect(t1.spacing[2]).toBeCloseTo(6.5, 4)
    // the reference affine is stored as float32: agreement to rounding
    expect(maxAffineDiff(t1.affine, ref.affine)).toBeLessThan(1e-4)
    expect(countDiffs(t1.data, ref.data)).toBe(0)
  })

  it('sorts by position, not by file name or instance number', () => {
    const names = t1.dicom.files.map((f) => f.split('/').pop())
    expect(names[0]).not.toBe('000000.dcm')
    expect([...names].sort()).toEqual(readdirSync(join(MR, 'T1post')).sort())
    // consecutive slices are 6.5 mm apart along the normal
    expect(t1.dicom.sopInstanceUIDs).toHaveLength(25)
  })

  it('MaskTumor (positions rounded to 6 decimals): same grid within rounding, 2641 tumour voxels', async () => {
    const mask = await readDicomSeries(join(MR, 'MaskTumor'))
    const ref = await readNifti(
      sharedPath('data', 'tcia-brain-tumor-progression', 'labelsTr', 'PGBM-001_19911119.nii.gz'),
    )
    expect(maxAffineDiff(mask.affine, ref.affine)).toBeLessThan(2e-4)
    expect(countDiffs(mask.data, ref.data)).toBe(0)
    let ones = 0
    for (const v of mask.data) if (v === 1) ones++
    expect(ones).toBe(2641)
    // a file order different from T1post still lands on the same slices
    expect(maxAffineDiff(mask.affine, t1.affine)).toBeLessThan(2e-4)
  })

  it('a folder with two series lists them; a UID picks one', async () => {
    const scan = await scanDicomFolder(MR)
    expect(scan.series.map((s) => s.seriesDescription).sort()).toEqual(['Mask_Tumor', 'T1post'])
    await expect(readDicomSeries(MR)).rejects.toMatchObject({
      code: 'DICOM_MULTIPLE_SERIES',
      message: expect.stringMatching(/2 image series.*T1post.*--series/s),
    })
    const mask = scan.series.find((s) => s.seriesDescription === 'Mask_Tumor')!
    const v = await readDicomSeries(MR, { seriesUID: mask.seriesInstanceUID })
    expect(v.dicom.seriesDescription).toBe('Mask_Tumor')
  })

  it('an enhanced multi-frame file (made by the dcmjs normalizer from T1post) reads the same', async () => {
    // dcmjs converts the classic series to one Enhanced MR object with per-frame functional
    // groups; write it to disk and read it back through the multi-frame path
    const dcmjs = (await import('dcmjs' as string)).default
    const M = dcmjs.data.DicomMetaDictionary
    const datasets = t1.dicom.files.map((f) => {
      const b = readFileSync(f)
      const dd = dcmjs.data.DicomMessage.readFile(
        b.buffer.slice(b.byteOffset, b.byteOffset + b.length),
      )
      const ds = M.naturalizeDataset(dd.dict)
      ds._meta = M.namifyDataset(dd.meta)
      ds.PixelData = ds.PixelData[0] // the normalizer wants one ArrayBuffer per slice
      return ds
    })
    const mf = dcmjs.normalizers.Normalizer.normalizeToDataset(datasets)
    expect(mf.NumberOfFrames).toBe(25)
    mf._vrMap = { PixelData: 'OW' }
    const meta = {
      FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
      MediaStorageSOPClassUID: mf.SOPClassUID,
      MediaStorageSOPInstanceUID: mf.SOPInstanceUID,
      TransferSyntaxUID: '1.2.840.10008.1.2.1',
      ImplementationClassUID: '1.2.826.0.1.3680043.10.1437.1',
      _vrMap: { FileMetaInformationVersion: 'OB' },
    }
    delete mf._meta
    const dict = new dcmjs.data.DicomDict(M.denaturalizeDataset(meta))
    dict.dict = M.denaturalizeDataset(mf)
    const dir = join(TMP, 'enhanced')
    mkdirSync(dir)
    writeFileSync(join(dir, 'enhanced.dcm'), Buffer.from(dict.write()))
    const v = await readDicomSeries(dir)
    expect(v.dicom.files).toHaveLength(25)
    expect(new Set(v.dicom.frameNumbers).size).toBe(25)
    expect(v.shape).toEqual(t1.shape)
    expect(maxAffineDiff(v.affine, t1.affine)).toBeLessThan(1e-6)
    expect(countDiffs(v.data, t1.data)).toBe(0)
  })

  it('a missing slice and a duplicated slice are reported', async () => {
    const files = t1.dicom.files
    const gap = join(TMP, 'gap')
    mkdirSync(gap)
    files.forEach((f, k) => k !== 12 && copyFileSync(f, join(gap, `s${k}.dcm`)))
    await expect(readDicomSeries(gap)).rejects.toMatchObject({
      code: 'DICOM_UNEVEN_SPACING',
      message: expect.stringMatching(/13\.0000 mm between .*a slice is missing/),
    })
    const dup = join(TMP, 'dup')
    mkdirSync(dup)
    files.slice(0, 4).forEach((f, k) => copyFileSync(f, join(dup, `s${k}.dcm`)))
    const buf = readFileSync(files[2])
    // same slice again under another SOPInstanceUID: a second echo/time point at the same place
    const uid = Buffer.from(t1.dicom.sopInstanceUIDs[2], 'latin1')
    const at = buf.indexOf(uid)
    expect(at).toBeGreaterThan(0)
    const other = Buffer.from(buf)
    other[at + uid.length - 1] = other[at + uid.length - 1] === 0x31 ? 0x32 : 0x31
    writeFileSync(join(dup, 'echo2.dcm'), other)
    await expect(readDicomSeries(dup)).rejects.toMatchObject({ code: 'DICOM_DUPLICATE_POSITIONS' })
  })

  it('a truncated file gets a specific error', async () => {
    const dir = join(TMP, 'trunc')
    mkdirSync(dir)
    t1.dicom.files.slice(0, 3).forEach((f, k) => copyFileSync(f, join(dir, `s${k}.dcm`)))
    const whole = readFileSync(t1.dicom.files[3])
    writeFileSync(join(dir, 's3.dcm'), whole.subarray(0, whole.length - 5000))
    const err = await readDicomSeries(dir).catch((e) => e)
    expect(['DICOM_CORRUPT', 'DICOM_TRUNCATED']).toContain(err.code)
    expect(err.message).toContain('s3.dcm')
    expect(err.message).toMatch(/truncated/)
  })
})

describe('CT (dcmqi 3 slices) + DICOM SEG vs the NRRD label map', () => {
  let ct: DicomVolume
  beforeAll(async () => {
    ct = await readDicomSeries(join(CT, 'ct'))
  })

  it('CT: slices sorted by z (file order is reversed), rescale intercept applied', () => {
    expect(ct.shape).toEqual([512, 512, 3])
    expect(ct.dicom.files.map((f) => f.split('/').pop())).toEqual(['03.dcm', '02.dcm', '01.dcm'])
    expect(ct.affine[2][3]).toBeCloseTo(-128.69, 4)
    expect(ct.affine[2][2]).toBeCloseTo(1, 6)
    expect(ct.spacing[0]).toBeCloseTo(0.810547, 6)
    expect(ct.datatype).toBe('int16')
    expect(ct.dicom.rescaleIntercept).toBe(-1024)
    // padding value -2000 stored, -3024 HU after the intercept
    expect(ct.data[0]).toBe(-3024)
    expect(axcodes(ct.affine)).toBe('LAS')
  })

  it('SEG matches the NRRD voxel for voxel (frames matched by ReferencedSOPInstanceUID)', async () => {
    const seg = await readDicomSeg(join(CT, 'liver_seg.dcm'), ct)
    expect(seg.segmentationType).toBe('BINARY')
    expect(seg.framesByUid).toBe(3)
    expect(seg.segments).toHaveLength(1)
    expect(seg.segments[0]).toMatchObject({
      number: 1,
      label: 'Liver',
      algorithmType: 'SEMIAUTOMATIC',
    })
    const nrrd = await readNrrd(join(CT, 'liver_seg.nrrd'))
    expect(nrrd.shape).toEqual([512, 512, 3])
    const aligned = alignToGrid(nrrd, ct)
    expect(countDiffs(seg.volume.data, aligned.data)).toBe(0)
    const perSlice = [0, 0, 0]
    for (let i = 0; i < seg.volume.data.length; i++)
      if (seg.volume.data[i] === 1) perSlice[Math.floor(i / (512 * 512))]++
    expect(perSlice).toEqual([36233, 35645, 35220])
    expect(seg.segments[0].voxels).toBe(36233 + 35645 + 35220)
  })

  it('SEG frames fall back to position matching when the UIDs are unknown', async () => {
    const fakeRef: DicomVolume = {
      ...ct,
      dicom: { ...ct.dicom, sopInstanceUIDs: ct.dicom.sopInstanceUIDs.map((_, k) => `1.2.3.${k}`) },
    }
    const seg = await readDicomSeg(join(CT, 'liver_seg.dcm'), fakeRef)
    expect(seg.framesByPosition).toBe(3)
    const byUid = await readDicomSeg(join(CT, 'liver_seg.dcm'), ct)
    expect(countDiffs(seg.volume.data, byUid.volume.data)).toBe(0)
  })

  it('SEG onto the wrong series, and a non-SEG file, are refused', async () => {
    const mr = await readDicomSeries(join(MR, 'T1post'))
    await expect(readDicomSeg(join(CT, 'liver_seg.dcm'), mr)).rejects.toMatchObject({
      code: 'DICOM_SEG_MISMATCH',
    })
    await expect(readDicomSeg(join(CT, 'ct', '01.dcm'), ct)).rejects.toMatchObject({
      code: 'DICOM_NOT_SEG',
    })
  })

  it('readVolume: the parent folder picks the CT (the SEG is not an image series); one .dcm reads its series', async () => {
    const fromDir = await readVolume(CT)
    expect(fromDir.shape).toEqual([512, 512, 3])
    const fromFile = await readVolume(join(CT, 'ct', '02.dcm'))
    expect(countDiffs(fromFile.data, ct.data)).toBe(0)
    await expect(readVolume(join(CT, 'liver_seg.dcm'))).rejects.toMatchObject({
      code: 'DICOM_IS_SEG',
    })
  })
})
