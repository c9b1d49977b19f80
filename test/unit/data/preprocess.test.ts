import { describe, expect, it } from 'vitest'
import { readNifti } from '../../../main/data/nifti'
import {
  invertLabelMap,
  normaliseChannel,
  preprocessVolumes,
  settingsHash,
  zscoreNonzero,
  PREPROCESS_PRESETS,
} from '../../../main/data/preprocess'
import {
  orientationCodes,
  reorientToRas,
  resampleToGrid,
  spacingGrid,
  voxelToWorld,
} from '../../../main/data/resample'
import { applyLabelMap, mmwhsLabelMap } from '../../../main/data/labels'
import type { Mat4, Vec3, Volume } from '../../../main/data/volume'
import { sharedPath } from '../../helpers/shared'

function ramp(shape: Vec3, affine: Mat4, f: (i: number, j: number, k: number) => number): Volume {
  const [nx, ny, nz] = shape
  const data = new Float32Array(nx * ny * nz)
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) data[(k * ny + j) * nx + i] = f(i, j, k)
  return {
    shape,
    channels: 1,
    spacing: [affine[0][0], affine[1][1], affine[2][2]] as Vec3,
    affine,
    datatype: 'float32',
    data,
  }
}
const diag = (sx: number, sy: number, sz: number, o: Vec3 = [0, 0, 0]): Mat4 => [
  [sx, 0, 0, o[0]],
  [0, sy, 0, o[1]],
  [0, 0, sz, o[2]],
  [0, 0, 0, 1],
]

describe('resampling (MONAI Spacing semantics)', () => {
  it('gives the MONAI output grid for the oblique LAS tcia case (values from a NumPy port of compute_shape_offset)', async () => {
    const vol = await readNifti(
      sharedPath('data/tcia-brain-tumor-progression/imagesTr/PGBM-001_19911119.nii.gz'),
    )
    const g = spacingGrid(vol, [1.5, 1.5, 2.0])
    expect(g.shape).toEqual([120, 147, 79])
    const want = [
      [-1.496305363823, 0.102007859313, 0.034374534095, 80.409629821777],
      [0.096005411691, 1.474088589936, -0.347296325468, -102.113006591797],
      [0.043049031601, 0.258180606668, 1.969315529244, -83.539459228516],
    ]
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 4; c++) expect(g.affine[r][c]).toBeCloseTo(want[r][c], 9)
  })

  it('reproduces a linear ramp exactly (trilinear), samples at o·new/old, clamps at the border', () => {
    const vol = ramp([10, 8, 6], diag(1, 1, 1, [5, 6, 7]), (i, j, k) => i + 10 * j + 100 * k)
    const g = spacingGrid(vol, [1.5, 2, 0.5])
    expect(g.shape).toEqual([7, 5, 11]) // round((n-1)·old/new + 1)
    expect(g.affine.map((r) => r[3])).toEqual([5, 6, 7, 1])
    const out = resampleToGrid(vol, g, 'linear')
    const at = (i: number, j: number, k: number) => out.data[(k * 5 + j) * 7 + i]
    expect(at(3, 2, 5)).toBeCloseTo(4.5 + 40 + 250, 4)
    expect(at(6, 4, 10)).toBeCloseTo(9 + 70 + 500, 4) // last sample clamps to the last voxel
    const near = resampleToGrid(vol, g, 'nearest')
    // 1.5 → round-half-even → 2; 4.5 → 4
    expect(near.data[1]).toBe(2)
    expect(near.data[3]).toBe(4)
  })
})

describe('reorientation', () => {
  it('turns the LAS tcia case into RAS and keeps every voxel at its world position', async () => {
    const vol = await readNifti(
      sharedPath('data/tcia-brain-tumor-progression/imagesTr/PGBM-001_19911119.nii.gz'),
    )
    expect(orientationCodes(vol.affine)).toBe('LAS')
    const { volume: ras, transform } = reorientToRas(vol)
    expect(orientationCodes(ras.affine)).toBe('RAS')
    expect(transform.flip).toEqual([true, false, false])
    expect(ras.shape).toEqual([260, 320, 25])
    const [nx, ny] = vol.shape
    for (const [i, j, k] of [
      [0, 0, 0],
      [17, 201, 3],
      [259, 319, 24],
      [130, 7, 12],
    ]) {
      const ri = nx - 1 - i
      expect(ras.data[(k * ny + j) * nx + ri]).toBe(vol.data[(k * ny + j) * nx + i])
      const w0 = voxelToWorld(vol.affine, [i, j, k])
      const w1 = voxelToWorld(ras.affine, [ri, j, k])
      for (let a = 0; a < 3; a++) expect(w1[a]).toBeCloseTo(w0[a], 6)
    }
  })
})

describe('intensity', () => {
  it('z-scores non-zero voxels only (population std), zeros stay 0', () => {
    const ch = new Float32Array([0, 1, 2, 3, 0, 4])
    zscoreNonzero(ch)
    const sd = Math.sqrt(1.25)
    expect(Array.from(ch).map((v) => +v.toFixed(5))).toEqual(
      [0, -1.5 / sd, -0.5 / sd, 0.5 / sd, 0, 1.5 / sd].map((v) => +v.toFixed(5)),
    )
  })

  it('CT: clips to the window, scales to 0..1, voxels ≤ −175 HU stay exactly 0', () => {
    const ch = new Float32Array([-1000, -175, 37.5, 250, 900])
    normaliseChannel(ch, { kind: 'ct', window: [-175, 250], zscore: false })
    expect(Array.from(ch)).toEqual([0, 0, 0.5, 1, 1])
    const z = new Float32Array([-1000, -175, 37.5, 250, 900])
    normaliseChannel(z, { kind: 'ct', window: [-175, 250], zscore: true })
    expect(z[0]).toBe(0)
    expect(z[1]).toBe(0)
    expect(z[2]).toBeLessThan(0)
  })

  it('rejects NaN naming the file', () => {
    expect(() =>
      normaliseChannel(new Float32Array([1, NaN]), { kind: 'zscore' }, 'x.nii.gz'),
    ).toThrow(/x.nii.gz: voxel 1 is NaN/)
  })
})

describe('preprocessCase on real data', () => {
  it('tcia: resample 1.5×1.5×2 + RAS; the inverse mapping restores the label on the original grid', async () => {
    const img = await readNifti(
      sharedPath('data/tcia-brain-tumor-progression/imagesTr/PGBM-008_19930610.nii.gz'),
    )
    const lab = await readNifti(
      sharedPath('data/tcia-brain-tumor-progression/labelsTr/PGBM-008_19930610.nii.gz'),
    )
    const settings = {
      spacing: [1.5, 1.5, 2.0] as Vec3,
      reorient: true,
      intensity: { kind: 'zscore' as const },
    }
    const p = preprocessVolumes('PGBM-008', [img], lab, settings)
    expect(orientationCodes(p.affine)).toBe('RAS')
    expect(p.spacing.map((s) => +s.toFixed(6))).toEqual([1.5, 1.5, 2])
    expect(p.image.length).toBe(p.shape[0] * p.shape[1] * p.shape[2])
    const back = invertLabelMap(p.label!, p)
    expect(back.shape).toEqual(img.shape)
    let agree = 0
    let fgOrig = 0
    let fgBack = 0
    for (let i = 0; i < back.data.length; i++) {
      if (lab.data[i] > 0) fgOrig++
      if (back.data[i] > 0) fgBack++
      if (back.data[i] > 0 && lab.data[i] > 0) agree++
    }
    expect(fgOrig).toBe(846) // cases.tsv
    // Down- then up-sampling by nearest keeps most of the mask.
    expect(agree / fgOrig).toBeGreaterThan(0.6)
    expect(fgBack / fgOrig).toBeGreaterThan(0.7)
    expect(fgBack / fgOrig).toBeLessThan(1.3)
  })

  it('without resampling the inverse is exact, and the settings hash keys the cache', async () => {
    const img = await readNifti(
      sharedPath('data/tcia-brain-tumor-progression/imagesTr/PGBM-003_19950329.nii.gz'),
    )
    const lab = await readNifti(
      sharedPath('data/tcia-brain-tumor-progression/labelsTr/PGBM-003_19950329.nii.gz'),
    )
    const p = preprocessVolumes('PGBM-003', [img], lab, PREPROCESS_PRESETS.mri)
    const back = invertLabelMap(p.label!, p)
    let diff = 0
    for (let i = 0; i < lab.data.length; i++) if (back.data[i] !== lab.data[i]) diff++
    expect(back.data.length).toBe(lab.data.length)
    expect(diff).toBe(0)
    expect(settingsHash(PREPROCESS_PRESETS.mri)).toBe(settingsHash({ ...PREPROCESS_PRESETS.mri }))
    expect(settingsHash(PREPROCESS_PRESETS.mri)).not.toBe(
      settingsHash(PREPROCESS_PRESETS.brats, mmwhsLabelMap()),
    )
  })

  it('refuses a label on another grid, naming both files', async () => {
    const img = await readNifti(
      sharedPath('data/msd-task04-hippocampus/imagesTr/hippocampus_001.nii.gz'),
    )
    const lab = await readNifti(
      sharedPath('data/msd-task04-hippocampus/labelsTr/hippocampus_003.nii.gz'),
    )
    expect(() => preprocessVolumes('x', [img], lab, PREPROCESS_PRESETS.mri)).toThrow(
      /labelsTr\/hippocampus_003.nii.gz: label grid 34×52×35.*does not match .*hippocampus_001.nii.gz/,
    )
  })
})

describe('label maps', () => {
  it('MMWHS: 205…850 → 1…7 and 421 → 0; unknown values are an error naming the file', () => {
    const raw = new Int16Array([0, 205, 420, 500, 550, 600, 820, 850, 421])
    expect(Array.from(applyLabelMap(raw, mmwhsLabelMap(), 'l.nii.gz'))).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 0,
    ])
    expect(() =>
      applyLabelMap(new Int16Array([0, 205, 999]), mmwhsLabelMap(), 'ct_1001_label.nii.gz'),
    ).toThrow(/ct_1001_label.nii.gz: label value\(s\) 999 \(1 voxels\) are outside the label map/)
    expect(() =>
      applyLabelMap(new Float32Array([0, 0.5]), { classes: { 0: 'bg', 1: 'a' } }, 'f.nii'),
    ).toThrow(/f.nii: label value 0.5/)
  })
})
