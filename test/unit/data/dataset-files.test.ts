/**
 * Every NIfTI under ../shared/data against its folder's cases.tsv (written with nibabel):
 * headers of all files, then a full read of every image and label (values, label counts).
 */
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { axcodes, readNifti, readNiftiHeader } from '../../../main/data/nifti'
import { sharedPath } from '../../helpers/shared'

interface Row {
  case: string
  shape_ijk: string
  spacing_mm: string
  axcodes: string
  image_dtype: string
  label_dtype: string
  image_min: string
  image_max: string
  image_mean: string
  voxels_label1: string
  voxels_label2?: string
}

function cases(folder: string): Row[] {
  const lines = readFileSync(sharedPath('data', folder, 'cases.tsv'), 'utf8')
    .trim()
    .split('\n')
  const head = lines.shift()!.split('\t')
  return lines.map(
    (l) => Object.fromEntries(l.split('\t').map((v, i) => [head[i], v])) as unknown as Row,
  )
}

/** cases.tsv prints 6 significant digits. */
function close6(got: number, expected: string): boolean {
  const e = Number(expected)
  return Math.abs(got - e) <= Math.max(1e-9, Math.abs(e) * 1e-5)
}

const FOLDERS = ['msd-task04-hippocampus', 'tcia-brain-tumor-progression']

describe.each(FOLDERS)('%s', (folder) => {
  const rows = cases(folder)
  const dir = sharedPath('data', folder)

  it('lists every case and the folders hold exactly those files', () => {
    expect(rows.length).toBe(folder.startsWith('msd') ? 260 : 4)
    const names = rows.map((r) => `${r.case}.nii.gz`).sort()
    expect(
      readdirSync(join(dir, 'imagesTr'))
        .filter((f) => f.endsWith('.nii.gz'))
        .sort(),
    ).toEqual(names)
    expect(
      readdirSync(join(dir, 'labelsTr'))
        .filter((f) => f.endsWith('.nii.gz'))
        .sort(),
    ).toEqual(names)
  })

  it('header-only reads give shape, spacing, axis codes and datatypes', async () => {
    const mismatches: string[] = []
    for (const r of rows) {
      for (const kind of ['imagesTr', 'labelsTr'] as const) {
        const h = await readNiftiHeader(join(dir, kind, `${r.case}.nii.gz`))
        const dtype = kind === 'imagesTr' ? r.image_dtype : r.label_dtype
        const spacing = r.spacing_mm.split('x').map(Number)
        const ok =
          h.shape.join('x') === r.shape_ijk &&
          h.channels === 1 &&
          h.ndim === 3 &&
          h.gzipped &&
          h.spacing.every((s, k) => Math.abs(s - spacing[k]) < 1e-5 * spacing[k]) &&
          axcodes(h.affine) === r.axcodes &&
          h.datatype === dtype
        if (!ok)
          mismatches.push(
            `${kind}/${r.case}: ${h.shape} ${h.spacing} ${axcodes(h.affine)} ${h.datatype}`,
          )
      }
    }
    expect(mismatches).toEqual([])
  })

  it('full reads give the value range, mean and label voxel counts', async () => {
    const mismatches: string[] = []
    for (const r of rows) {
      const img = await readNifti(join(dir, 'imagesTr', `${r.case}.nii.gz`))
      const lab = await readNifti(join(dir, 'labelsTr', `${r.case}.nii.gz`))
      expect(lab.shape).toEqual(img.shape)
      let mn = Infinity
      let mx = -Infinity
      let sum = 0
      const d = img.data
      for (let i = 0; i < d.length; i++) {
        const x = d[i]
        if (x < mn) mn = x
        if (x > mx) mx = x
        sum += x
      }
      const counts = new Map<number, number>()
      for (const x of lab.data) counts.set(x, (counts.get(x) ?? 0) + 1)
      const labelsOk =
        counts.get(1) === Number(r.voxels_label1) &&
        (r.voxels_label2 === undefined || counts.get(2) === Number(r.voxels_label2)) &&
        [...counts.keys()].every(
          (k) => k === 0 || k === 1 || (k === 2 && r.voxels_label2 !== undefined),
        )
      const ok =
        close6(mn, r.image_min) &&
        close6(mx, r.image_max) &&
        close6(sum / d.length, r.image_mean) &&
        img.datatype === r.image_dtype &&
        lab.datatype === r.label_dtype &&
        labelsOk
      if (!ok)
        mismatches.push(
          `${r.case}: min ${mn} max ${mx} mean ${sum / d.length} labels ${[...counts]}`,
        )
    }
    expect(mismatches).toEqual([])
  })
})

describe('dataset quirks', () => {
  it('reads the two float32 label files as float32 with integral values', async () => {
    const rows = cases('msd-task04-hippocampus').filter((r) => r.label_dtype === 'float32')
    expect(rows.length).toBe(2)
    for (const r of rows) {
      const lab = await readNifti(
        sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', `${r.case}.nii.gz`),
      )
      expect(lab.data).toBeInstanceOf(Float32Array)
      expect(lab.data.every((x) => Number.isInteger(x))).toBe(true)
    }
  })

  it('gives the oblique TCIA affine exactly as nibabel (sform, float32 values)', async () => {
    const v = await readNifti(
      sharedPath('data', 'tcia-brain-tumor-progression', 'imagesTr', 'PGBM-001_19911119.nii.gz'),
    )
    // nibabel: img.affine
    const expected = [
      [-6.85806632e-1, 4.6753604e-2, 1.11717254e-1, 80.4096298],
      [4.40024808e-2, 6.75623953e-1, -1.12871325, -102.113007],
      [1.97308064e-2, 1.18332781e-1, 6.40027618, -83.5394592],
      [0, 0, 0, 1],
    ]
    for (let r = 0; r < 4; r++) {
      for (let c = 0; c < 4; c++) expect(v.affine[r][c]).toBeCloseTo(expected[r][c], 6)
    }
    expect(v.header.pixdim[0]).toBe(-1)
    expect(v.header.sformCode).toBe(1)
    expect(v.data).toBeInstanceOf(Int16Array)
  })

  it('reads the golden prediction files (sform only, qform_code 0)', async () => {
    const dir = sharedPath('golden', 'metrics')
    const files = readdirSync(dir).filter((f) => f.endsWith('.nii.gz'))
    expect(files.length).toBeGreaterThan(0)
    for (const f of files) {
      const v = await readNifti(join(dir, f))
      expect(v.header.qformCode).toBe(0)
      expect(v.header.sformCode).toBe(2)
      expect(v.datatype).toBe('uint8')
      const ref = f.includes('PGBM')
        ? `tcia-brain-tumor-progression/labelsTr/${f.match(/PGBM-\d+_\d+/)![0]}.nii.gz`
        : `msd-task04-hippocampus/labelsTr/${f.match(/hippocampus_\d+/)![0]}.nii.gz`
      const lab = await readNiftiHeader(sharedPath('data', ref))
      expect(v.shape).toEqual(lab.shape)
      for (let r = 0; r < 3; r++)
        for (let c = 0; c < 4; c++) expect(v.affine[r][c]).toBeCloseTo(lab.affine[r][c], 4)
    }
  })
})
