import { describe, expect, it } from 'vitest'
import { augmentPatch, flipAxis, rot90, AUGMENT_PRESETS } from '../../../main/data/augment'
import { readNifti } from '../../../main/data/nifti'
import { preprocessVolumes, PREPROCESS_PRESETS } from '../../../main/data/preprocess'
import { Rng } from '../../../main/engine/random'
import { CropSampler, padToSize, reflectIndex, type Sample } from '../../../main/data/sampling'
import { sharedPath } from '../../helpers/shared'

// m = np.arange(24).reshape((3, 4, 2)) in MONAI (i, j, k) order; our flat layout is m.flatten('F').
const small = (): Sample => ({
  shape: [3, 4, 2],
  channels: 1,
  image: Float32Array.from([
    0, 8, 16, 2, 10, 18, 4, 12, 20, 6, 14, 22, 1, 9, 17, 3, 11, 19, 5, 13, 21, 7, 15, 23,
  ]),
  label: Uint8Array.from([
    0, 8, 16, 2, 10, 18, 4, 12, 20, 6, 14, 22, 1, 9, 17, 3, 11, 19, 5, 13, 21, 7, 15, 23,
  ]),
})

describe('reflect padding (numpy "reflect")', () => {
  it('matches np.pad(m, ((2,3),(0,0),(1,1)), "reflect") for image and label', () => {
    const p = padToSize(small(), [8, 4, 4])
    expect(p.shape).toEqual([8, 4, 4])
    const want = [
      17, 9, 1, 9, 17, 9, 1, 9, 19, 11, 3, 11, 19, 11, 3, 11, 21, 13, 5, 13, 21, 13, 5, 13, 23, 15,
      7, 15, 23, 15, 7, 15, 16, 8, 0, 8, 16, 8, 0, 8, 18, 10, 2, 10, 18, 10, 2, 10, 20, 12, 4, 12,
      20, 12, 4, 12, 22, 14, 6, 14, 22, 14, 6, 14, 17, 9, 1, 9, 17, 9, 1, 9, 19, 11, 3, 11, 19, 11,
      3, 11, 21, 13, 5, 13, 21, 13, 5, 13, 23, 15, 7, 15, 23, 15, 7, 15, 16, 8, 0, 8, 16, 8, 0, 8,
      18, 10, 2, 10, 18, 10, 2, 10, 20, 12, 4, 12, 20, 12, 4, 12, 22, 14, 6, 14, 22, 14, 6, 14,
    ]
    expect(Array.from(p.image)).toEqual(want)
    expect(Array.from(p.label!)).toEqual(want)
  })
  it('reflects without repeating the edge, periodically for large pads', () => {
    // np.pad([1,2,3], (5,6), 'reflect') = [2 1 2 3 2 1 2 3 2 1 2 3 2 1]
    expect(Array.from({ length: 14 }, (_, p) => [1, 2, 3][reflectIndex(p - 5, 3)])).toEqual([
      2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1,
    ])
  })
})

describe('augmentation', () => {
  it('rot90 equals np.rot90(m, k, axes=(0, 1))', () => {
    expect(Array.from(rot90(small(), 1).image)).toEqual([
      6, 4, 2, 0, 14, 12, 10, 8, 22, 20, 18, 16, 7, 5, 3, 1, 15, 13, 11, 9, 23, 21, 19, 17,
    ])
    expect(rot90(small(), 1).shape).toEqual([4, 3, 2])
    expect(Array.from(rot90(small(), 2).image)).toEqual([
      22, 14, 6, 20, 12, 4, 18, 10, 2, 16, 8, 0, 23, 15, 7, 21, 13, 5, 19, 11, 3, 17, 9, 1,
    ])
    expect(Array.from(rot90(small(), 3).label!)).toEqual([
      16, 18, 20, 22, 8, 10, 12, 14, 0, 2, 4, 6, 17, 19, 21, 23, 9, 11, 13, 15, 1, 3, 5, 7,
    ])
  })
  it('flips reverse one axis and are involutions', () => {
    const s = small()
    const f = flipAxis(s, 2)
    expect(Array.from(f.image.slice(0, 12))).toEqual(Array.from(s.image.slice(12)))
    expect(Array.from(flipAxis(flipAxis(s, 0), 0).image)).toEqual(Array.from(s.image))
  })
  it('is deterministic for a seed; the shift moves the image only, within ±0.1', () => {
    const a = augmentPatch(small(), AUGMENT_PRESETS.brats, Rng.seeded(5))
    const b = augmentPatch(small(), AUGMENT_PRESETS.brats, Rng.seeded(5))
    expect(a.applied).toEqual(b.applied)
    expect(Array.from(a.sample.image)).toEqual(Array.from(b.sample.image))
    expect(Math.abs(a.applied.shift)).toBeLessThanOrEqual(0.1)
    expect(a.applied.shift).not.toBe(0) // BraTS: shift with p = 1
    const img = Array.from(a.sample.image)
    const lab = Array.from(a.sample.label!)
    for (let i = 0; i < img.length; i++) expect(img[i] - a.applied.shift).toBeCloseTo(lab[i], 5)
  })
})

describe('RandCropByPosNegLabel on a real case', () => {
  it('centres every crop on a foreground voxel (clamped to fit), same seed → same crops, state resumes', async () => {
    const img = await readNifti(
      sharedPath('data/msd-task04-hippocampus/imagesTr/hippocampus_001.nii.gz'),
    )
    const lab = await readNifti(
      sharedPath('data/msd-task04-hippocampus/labelsTr/hippocampus_001.nii.gz'),
    )
    const p = preprocessVolumes('h1', [img], lab, PREPROCESS_PRESETS.mri)
    const sampler = new CropSampler(
      { shape: p.shape, channels: 1, image: p.image, label: p.label },
      { patch: [16, 16, 16], numSamples: 2 },
    )
    expect(sampler.fg.length).toBe(1324 + 1624) // cases.tsv voxel counts
    const rng = Rng.seeded(100)
    const saved = rng.state()
    const crops = [...sampler.draw(rng), ...sampler.draw(rng)]
    expect(crops).toHaveLength(4)
    const again = sampler.draw(Rng.fromState(saved))
    expect(again.map((c) => c.center)).toEqual(crops.slice(0, 2).map((c) => c.center))
    for (const c of crops) {
      expect(c.foreground).toBe(true)
      expect(c.shape).toEqual([16, 16, 16])
      for (let a = 0; a < 3; a++) {
        expect(c.start[a]).toBeGreaterThanOrEqual(0)
        expect(c.start[a] + 16).toBeLessThanOrEqual(sampler.sample.shape[a])
      }
      // The centre voxel is foreground unless it had to be clamped.
      const [nx, ny] = sampler.sample.shape
      const clamped = c.center.some((v, a) => v === 8 || v === sampler.sample.shape[a] - 8)
      if (!clamped)
        expect(
          sampler.sample.label![(c.center[2] * ny + c.center[1]) * nx + c.center[0]],
        ).toBeGreaterThan(0)
      expect(c.label!.some((v) => v > 0)).toBe(true)
    }
  })

  it('pads a case smaller than the patch with reflect values before cropping', async () => {
    const img = await readNifti(
      sharedPath('data/msd-task04-hippocampus/imagesTr/hippocampus_001.nii.gz'),
    )
    const lab = await readNifti(
      sharedPath('data/msd-task04-hippocampus/labelsTr/hippocampus_001.nii.gz'),
    )
    const p = preprocessVolumes('h1', [img], lab, PREPROCESS_PRESETS.mri)
    const sampler = new CropSampler(
      { shape: p.shape, channels: 1, image: p.image, label: p.label },
      { patch: [64, 64, 64], numSamples: 1 },
    )
    expect(sampler.sample.shape).toEqual([64, 64, 64])
    const [crop] = sampler.draw(Rng.seeded(1))
    expect(crop.start).toEqual([0, 0, 0])
    // x: 35 → 64, before = 14: padded x = 13 mirrors original x = 1.
    const [nx, ny] = p.shape
    const before = [14, 6, 14]
    const o = ((before[2] + 3) * 64 + before[1] + 5) * 64 + 13
    expect(crop.image[o]).toBe(p.image[(3 * ny + 5) * nx + 1])
  })
})
