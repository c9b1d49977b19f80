/**
 * Cross-check with nibabel (python3-nibabel): nibabel reads the files our writer makes, and our
 * reader reads files nibabel writes. nibabel must be installed (`/usr/bin/python3 -c 'import
 * nibabel'`); when it is missing this suite FAILS with an install hint — it never skips.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  allocVoxels,
  axcodes,
  readNifti,
  writeNifti,
  type WriteNiftiOptions,
} from '../../../main/data/nifti'
import type { DataType, Mat4, Volume } from '../../../main/data/volume'
import { ROOT, tmpDir } from '../../helpers/shared'

const PYTHON = process.env.DSD_PYTHON ?? '/usr/bin/python3'
const TMP = tmpDir('nibabel')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

interface Report {
  shape: number[]
  dtype: string
  endianness: string
  affine: number[][]
  qform?: number[][]
  codes?: number[]
  qfac?: number
  slope?: number
  data: number[]
}

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

function affine(kind: number): Mat4 {
  const c = Math.cos(0.5)
  const s = Math.sin(0.5)
  if (kind === 0)
    return [
      [-0.75 * c, 0.8 * s, 0, 30].map(f32),
      [0.75 * s, 0.8 * c, 0, -12].map(f32),
      [0, 0, 4, 2],
      [0, 0, 0, 1],
    ] // LAS-ish, qfac -1
  if (kind === 1)
    return [
      [0, 0, 2, -5],
      [-1.25, 0, 0, 7],
      [0, 1.5, 0, 9],
      [0, 0, 0, 1],
    ] // permuted axes
  return [[1, 0.2, 0, 0].map(f32), [0, 1, 0, 0], [0.1, 0, 2, 1].map(f32), [0, 0, 0, 1]] // sheared
}

const ours: Record<string, { vol: Volume; opts: WriteNiftiOptions }> = {}
let report: { ours: Record<string, Report>; theirs: Record<string, Report> }

beforeAll(async () => {
  const probe = spawnSync(PYTHON, ['-c', 'import nibabel, numpy'], { encoding: 'utf8' })
  if (probe.status !== 0) {
    throw new Error(
      `nibabel cross-check NOT RUN: "${PYTHON} -c 'import nibabel, numpy'" failed (${(probe.stderr || probe.error?.message || '').trim()}). Install python3-nibabel and python3-numpy (apt) or set DSD_PYTHON to a python with nibabel.`,
    )
  }
  let k = 0
  for (const t of TYPES) {
    for (const version of [1, 2] as const) {
      for (const littleEndian of [true, false]) {
        const channels = k % 4 === 3 ? 3 : 1
        const n = 7 * 6 * 5 * channels
        const data = allocVoxels(t, n)
        for (let i = 0; i < n; i++)
          data[i] = t.startsWith('float') ? (i - 100) * 1.375 : (i * 13) % 120
        const name = `ours-${t}-v${version}-${littleEndian ? 'le' : 'be'}.nii${k % 2 ? '.gz' : ''}`
        ours[name] = {
          vol: {
            shape: [7, 6, 5],
            channels,
            spacing: [1, 1, 1],
            affine: affine(k % 3),
            datatype: t,
            data,
          },
          opts: { version, littleEndian },
        }
        k++
      }
    }
  }
  const scaled = Float32Array.from({ length: 210 }, (_, i) => i * 0.25 - 20)
  ours['ours-scaled.nii.gz'] = {
    vol: {
      shape: [7, 6, 5],
      channels: 1,
      spacing: [1, 1, 1],
      affine: affine(0),
      datatype: 'int16',
      data: scaled,
    },
    opts: { datatype: 'int16', sclSlope: 0.25, sclInter: -20 },
  }
  for (const [name, { vol, opts }] of Object.entries(ours))
    await writeNifti(join(TMP, name), vol, opts)
  writeFileSync(join(TMP, 'ours.json'), JSON.stringify(Object.keys(ours)))
  const run = spawnSync(PYTHON, [join(ROOT, 'test/unit/data/nibabel-crosscheck.py'), TMP], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
  if (run.status !== 0) throw new Error(`nibabel-crosscheck.py failed:\n${run.stderr}`)
  report = JSON.parse(run.stdout)
})

function expectMatClose(a: number[][], b: number[][], tol: number, what = '') {
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++)
      expect(Math.abs(a[r][c] - b[r][c]), `${what} [${r}][${c}]`).toBeLessThan(tol)
}

describe('nibabel reads our files', () => {
  it('every file: shape, datatype, byte order, affine, qform and voxels', () => {
    expect(Object.keys(report.ours).sort()).toEqual(Object.keys(ours).sort())
    for (const [name, { vol, opts }] of Object.entries(ours)) {
      const r = report.ours[name]
      const shape = vol.channels > 1 ? [...vol.shape, vol.channels] : vol.shape
      expect(r.shape, name).toEqual(shape)
      expect(r.dtype, name).toBe(opts.datatype ?? vol.datatype)
      expect(r.endianness, name).toBe(opts.littleEndian === false ? '>' : '<')
      expect(r.codes, name).toEqual([1, 1])
      expectMatClose(r.affine, vol.affine, 1e-12)
      // nibabel's qform is the closest rotation: exact up to float32 for orthogonal affines
      if (!name.includes('scaled') && Math.abs(vol.affine[0][1] - 0.2) > 1e-6)
        expectMatClose(r.qform!, vol.affine, 1e-5, name)
      expect(r.data, name).toEqual(Array.from(vol.data))
    }
  })
})

describe('we read nibabel files', () => {
  it('every datatype, byte order, NIfTI-1/-2, 3D/4D, an .hdr/.img pair', async () => {
    const names = Object.keys(report.theirs)
    expect(names.length).toBe(37)
    for (const name of names) {
      const r = report.theirs[name]
      const v = await readNifti(join(TMP, 'theirs', name))
      const shape = v.channels > 1 ? [...v.shape, v.channels] : [...v.shape]
      expect(shape, name).toEqual(r.shape)
      expect(v.header.littleEndian, name).toBe(r.endianness === '<')
      expect(v.header.version, name).toBe(name.includes('-v2-') ? 2 : 1)
      expect(v.header.magic, name).toBe(
        name.endsWith('.hdr') ? 'ni1' : name.includes('-v2-') ? 'n+2' : 'n+1',
      )
      expectMatClose(v.affine, r.affine, 1e-9)
      if (name === 'nib-scaled.nii') {
        expect(v.datatype).toBe('int16')
        expect(v.header.sclSlope).toBeCloseTo(r.slope!, 12)
        expect(v.data).toBeInstanceOf(Float32Array)
        const d = Array.from(v.data)
        d.forEach((x, i) =>
          expect(Math.abs(x - r.data[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(r.data[i]))),
        )
      } else {
        expect(v.datatype, name).toBe(r.dtype)
        expect(Array.from(v.data), name).toEqual(r.data)
      }
    }
  })

  it('qform-only file with qfac −1', async () => {
    const r = report.theirs['nib-qform-only.nii.gz']
    const v = await readNifti(join(TMP, 'theirs', 'nib-qform-only.nii.gz'))
    expect(r.codes).toEqual([1, 0])
    expect(r.qfac).toBe(-1)
    expect(v.header.sformCode).toBe(0)
    expect(v.header.pixdim[0]).toBe(-1)
    expectMatClose(v.affine, r.affine, 1e-6)
    expect(axcodes(v.affine)).toBe('RAI')
    expect(v.spacing.map((s) => +s.toFixed(6))).toEqual([1.5, 2, 3])
  })
})
