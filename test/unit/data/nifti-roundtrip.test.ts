/**
 * NIfTI write → read round trips over every datatype, byte order, NIfTI version, .nii/.nii.gz,
 * 3D/4D, scl_slope, qfac −1 and an oblique / sheared sform.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import {
  allocVoxels,
  axcodes,
  encodeNifti,
  parseNiftiHeader,
  qformAffine,
  readNifti,
  readNiftiHeader,
  sformAffine,
  writeNifti,
} from '../../../main/data/nifti'
import type { DataType, Mat4, Volume } from '../../../main/data/volume'
import { tmpDir } from '../../helpers/shared'

const TMP = tmpDir('nifti-rt')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

const f32 = (x: number) => Math.fround(x)
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

/** Values spanning the type's range, including the extremes. */
function fill(t: DataType, n: number): Volume['data'] {
  const a = allocVoxels(t, n)
  const ext: Record<DataType, [number, number]> = {
    uint8: [0, 255],
    int8: [-128, 127],
    int16: [-32768, 32767],
    uint16: [0, 65535],
    int32: [-(2 ** 31), 2 ** 31 - 1],
    uint32: [0, 2 ** 32 - 1],
    float32: [-3.4e38, 3.4e38],
    float64: [-1.7e308, 1e-300],
  }
  for (let i = 0; i < n; i++) {
    if (i === 0) a[i] = ext[t][0]
    else if (i === 1) a[i] = ext[t][1]
    else if (t.startsWith('float')) a[i] = (i * 37.25 - 400) / 3
    else a[i] = (i * 37) % 100
  }
  return a
}

/** An oblique rotation (not axis-aligned) with det < 0 when `flip`: needs qfac −1. */
function obliqueAffine(flip: boolean): Mat4 {
  const c = Math.cos(0.3)
  const s = Math.sin(0.3)
  const ca = Math.cos(0.2)
  const sa = Math.sin(0.2)
  // Rz(0.3) · Rx(0.2)
  const R = [
    [c, -s * ca, s * sa],
    [s, c * ca, -c * sa],
    [0, sa, ca],
  ]
  const zooms = [0.7, 0.9, flip ? -2.5 : 2.5]
  const a = R.map((row, r) => [...row.map((v, k) => f32(v * zooms[k])), f32([12.5, -30.25, 7][r])])
  return [a[0], a[1], a[2], [0, 0, 0, 1]]
}

function vol(t: DataType, channels: number, affine: Mat4): Volume {
  const shape: [number, number, number] = [5, 4, 3]
  return {
    shape,
    channels,
    spacing: [0.7, 0.9, 2.5],
    affine,
    datatype: t,
    data: fill(t, 60 * channels),
  }
}

function maxAbsDiff(a: Mat4, b: Mat4): number {
  let m = 0
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) m = Math.max(m, Math.abs(a[r][c] - b[r][c]))
  return m
}

describe('round trip', () => {
  const combos: [DataType, 1 | 2, boolean, boolean, number][] = []
  for (const t of TYPES)
    for (const version of [1, 2] as const)
      for (const le of [true, false])
        for (const gz of [false, true]) combos.push([t, version, le, gz, (combos.length % 3) + 1])

  it.each(combos)(
    '%s NIfTI-%i littleEndian=%s gz=%s channels=%i',
    async (t, version, le, gz, ch) => {
      const affine = obliqueAffine(ch !== 2)
      const v = vol(t, ch, affine)
      const file = join(TMP, `${t}-${version}-${le}-${ch}.nii${gz ? '.gz' : ''}`)
      await writeNifti(file, v, { version, littleEndian: le })
      const back = await readNifti(file)
      expect(back.header.version).toBe(version)
      expect(back.header.littleEndian).toBe(le)
      expect(back.datatype).toBe(t)
      expect(back.shape).toEqual(v.shape)
      expect(back.channels).toBe(ch)
      expect(back.header.dim[0]).toBe(ch > 1 ? 4 : 3)
      expect(back.data.constructor).toBe(v.data.constructor)
      expect(Array.from(back.data)).toEqual(Array.from(v.data))
      // sform stores the affine exactly (its values are float32-representable)
      expect(back.affine).toEqual(affine)
      // the qform describes the same rotation, zooms and qfac
      expect(maxAbsDiff(qformAffine(back.header), affine)).toBeLessThan(2e-6)
      expect(back.header.pixdim[0]).toBe(ch !== 2 ? -1 : 1)
      expect(axcodes(back.affine)).toBe(axcodes(affine))
      const h = await readNiftiHeader(file)
      expect(h.gzipped).toBe(gz)
      expect(h.shape).toEqual(v.shape)
      // writing what was read gives the same bytes
      const again = encodeNifti(back, { version, littleEndian: le })
      const raw = readFileSync(file)
      expect(Buffer.from(again).equals(gz ? gunzipSync(raw) : raw)).toBe(true)
    },
  )

  it('keeps the axis order of a 4D multi-channel volume (channel slowest)', async () => {
    const v = vol('int16', 4, obliqueAffine(false))
    const d = v.data as Int16Array
    for (let c = 0; c < 4; c++) for (let i = 0; i < 60; i++) d[c * 60 + i] = c * 1000 + i
    const file = join(TMP, 'brats-like.nii.gz')
    await writeNifti(file, v)
    const back = await readNifti(file)
    expect(back.header.dim.slice(0, 5)).toEqual([4, 5, 4, 3, 4])
    expect(back.data[3 * 60 + 59]).toBe(3059)
    expect(back.data[60]).toBe(1000)
  })

  it('writes scl_slope/scl_inter and reads scaled float32 values', async () => {
    const v: Volume = {
      shape: [4, 3, 2],
      channels: 1,
      spacing: [1, 1, 1],
      affine: [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
      ],
      datatype: 'int16',
      data: Float32Array.from({ length: 24 }, (_, i) => -10 + 0.5 * i),
    }
    const file = join(TMP, 'scaled.nii')
    await writeNifti(file, v, { datatype: 'int16', sclSlope: 0.5, sclInter: -10 })
    const back = await readNifti(file)
    expect(back.header.datatypeCode).toBe(4)
    expect(back.header.sclSlope).toBe(0.5)
    expect(back.header.sclInter).toBe(-10)
    expect(back.datatype).toBe('int16')
    expect(back.data).toBeInstanceOf(Float32Array)
    expect(Array.from(back.data)).toEqual(Array.from(v.data))
    // raw stored values are 0..23
    const raw = readFileSync(file)
    expect(
      Array.from(new Int16Array(raw.buffer.slice(raw.byteOffset + 352, raw.byteOffset + 352 + 48))),
    ).toEqual(Array.from({ length: 24 }, (_, i) => i))
    // default write of scaled data keeps the values (float32 on disk)
    await writeNifti(file, back)
    const again = await readNifti(file)
    expect(again.datatype).toBe('float32')
    expect(Array.from(again.data)).toEqual(Array.from(v.data))
  })

  it('treats scl_slope 0, NaN and 1/0 as no scaling', async () => {
    const v = vol('int16', 1, obliqueAffine(false))
    const bytes = encodeNifti(v)
    const dv = new DataView(bytes.buffer)
    for (const [slope, inter] of [
      [0, 5],
      [NaN, 5],
      [1, 0],
    ]) {
      dv.setFloat32(112, slope, true)
      dv.setFloat32(116, inter, true)
      const file = join(TMP, 'slope.nii')
      writeFileSync(file, bytes)
      const back = await readNifti(file)
      expect(back.data).toBeInstanceOf(Int16Array)
      expect(Array.from(back.data)).toEqual(Array.from(v.data))
    }
    dv.setFloat32(112, 2, true)
    dv.setFloat32(116, 1, true)
    writeFileSync(join(TMP, 'slope.nii'), bytes)
    const scaled = await readNifti(join(TMP, 'slope.nii'))
    expect(scaled.data[5]).toBe(v.data[5] * 2 + 1)
  })

  it('stores a sheared (non-orthogonal) sform exactly and its closest rotation as qform', async () => {
    const affine: Mat4 = [
      [0.8, 0.1, 0, -20],
      [0, 0.9, 0.2, 10],
      [0.05, 0, 3, 5],
      [0, 0, 0, 1],
    ].map((r) => r.map(f32)) as Mat4
    const v = vol('uint8', 1, affine)
    const file = join(TMP, 'shear.nii.gz')
    await writeNifti(file, v)
    const back = await readNifti(file)
    expect(back.affine).toEqual(affine)
    expect(sformAffine(back.header)).toEqual(affine)
    expect(maxAbsDiff(qformAffine(back.header), affine)).toBeLessThan(0.2)
    expect(axcodes(back.affine)).toBe('RAS')
  })

  it('falls back to the qform when sform_code is 0, and to pixdim when both are 0', () => {
    const v = vol('uint8', 1, obliqueAffine(true))
    const bytes = encodeNifti(v, { sformCode: 0 })
    const h = parseNiftiHeader(bytes, 'mem')
    expect(h.sformCode).toBe(0)
    expect(maxAbsDiff(qformAffine(h), v.affine)).toBeLessThan(2e-6)
    const both0 = parseNiftiHeader(encodeNifti(v, { sformCode: 0, qformCode: 0 }), 'mem')
    expect(both0.qformCode).toBe(0)
  })

  it('writes atomically: no temp file left behind, and a failed write leaves no file', async () => {
    const dir = join(TMP, 'atomic')
    mkdirSync(dir)
    await writeNifti(join(dir, 'a.nii.gz'), vol('uint8', 1, obliqueAffine(false)))
    const { readdirSync } = await import('node:fs')
    expect(readdirSync(dir)).toEqual(['a.nii.gz'])
    await expect(
      writeNifti(join(dir, 'missing', 'b.nii'), vol('uint8', 1, obliqueAffine(false))),
    ).rejects.toThrow(/does not exist/)
    const bad = vol('uint8', 1, obliqueAffine(false))
    bad.data = Float32Array.from({ length: 60 }, (_, i) => i * 10)
    await expect(writeNifti(join(dir, 'c.nii'), bad, { datatype: 'uint8' })).rejects.toMatchObject({
      code: 'NIFTI_VALUE_RANGE',
    })
    expect(readdirSync(dir)).toEqual(['a.nii.gz'])
  })
})

describe('header codes', () => {
  it('a volume read with sform_code 2 (aligned) is written with sform_code 2', async () => {
    const { sharedPath } = await import('../../helpers/shared')
    const golden = sharedPath('golden', 'metrics', 'pred_hippocampus_001_noise.nii.gz')
    const v = await readNifti(golden)
    expect([v.header.qformCode, v.header.sformCode]).toEqual([0, 2])
    const file = join(TMP, 'codes.nii.gz')
    await writeNifti(file, v)
    const back = await readNifti(file)
    expect([back.header.qformCode, back.header.sformCode]).toEqual([1, 2])
    expect(back.affine).toEqual(v.affine)
    expect(Array.from(back.data)).toEqual(Array.from(v.data))
  })
})
