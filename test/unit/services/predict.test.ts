/**
 * Prediction geometry: predictions written as NIfTI carry the source image's affine, and a
 * "perfect predictor" (one-hot ground truth of the preprocessed label as logits) maps back to
 * exactly the original label map — on a hippocampus case (RAS, 1 mm) and on a TCIA case
 * (oblique direction cosines, LAS axes, 0.69×0.69×6.5 mm). nibabel checks world coordinates.
 */
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readVolume } from '../../../main/data/volume-io'
import { readNifti } from '../../../main/data/nifti'
import {
  PREPROCESS_PRESETS,
  preprocessVolumes,
  type PreprocessSettings,
} from '../../../main/data/preprocess'
import { orientationCodes } from '../../../main/data/resample'
import { computeMetrics } from '../../../main/metrics'
import { predictPrepared, writeLabelNifti } from '../../../main/services/inference'
import { sharedPath, tmpDir } from '../../helpers/shared'
import { perfectPredictor, python } from '../../helpers/inference'

const TMP = tmpDir('predict')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

type V3 = [number, number, number]

async function perfectRoundTrip(
  dataset: string,
  id: string,
  settings: PreprocessSettings,
  K: number,
  roi: V3,
) {
  const imgFile = sharedPath('data', dataset, 'imagesTr', `${id}.nii.gz`)
  const labFile = sharedPath('data', dataset, 'labelsTr', `${id}.nii.gz`)
  const image = await readVolume(imgFile)
  const label = await readVolume(labFile)
  const prepared = preprocessVolumes(id, [image], label, settings, null)
  const overlap = 0.25
  const res = await predictPrepared(
    prepared,
    [{ predictor: perfectPredictor(prepared, K, roi, overlap), roi }],
    { overlap },
  )
  // On the preprocessed grid the argmax is the preprocessed label itself.
  expect(Buffer.from(res.preprocessed).equals(Buffer.from(prepared.label!))).toBe(true)
  const out = join(TMP, `${id}.nii.gz`)
  await writeLabelNifti(
    out,
    res.original.data as Uint8Array,
    res.original.shape,
    res.original.affine,
  )
  return { imgFile, labFile, image, label, prepared, res, out }
}

function maxAffineDiff(a: number[][], b: number[][]): number {
  let m = 0
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) m = Math.max(m, Math.abs(a[r][c] - b[r][c]))
  return m
}

const NIBABEL_CHECK = `
import sys, json, numpy as np, nibabel as nib
img, lab, pred = (nib.load(p) for p in sys.argv[1:4])
def centroid(v):
    d = np.asarray(v.dataobj)
    ijk = np.argwhere(d > 0).mean(axis=0)
    return (v.affine @ np.r_[ijk, 1])[:3].tolist()
pd = np.asarray(pred.dataobj)
print(json.dumps({
  "imgAffine": img.affine.tolist(), "predAffine": pred.affine.tolist(),
  "predSform": int(pred.get_sform(coded=True)[1]), "predQform": int(pred.get_qform(coded=True)[1]),
  "predQformAffine": pred.get_qform().tolist(),
  "axcodes": "".join(nib.aff2axcodes(pred.affine)),
  "shape": list(pred.shape), "dtype": str(pred.get_data_dtype()),
  "equal": bool((pd == np.asarray(lab.dataobj).astype(pd.dtype)).all()),
  "labCentroid": centroid(lab), "predCentroid": centroid(pred),
}))
`

describe('perfect predictor maps back to exactly the original label map', () => {
  it('hippocampus (RAS, 1 mm, no resampling)', async () => {
    const r = await perfectRoundTrip(
      'msd-task04-hippocampus',
      'hippocampus_001',
      PREPROCESS_PRESETS.mri,
      3,
      [32, 32, 32],
    )
    expect(r.res.original.shape).toEqual(r.label.shape)
    expect([...r.res.original.data]).toEqual([...r.label.data])
    const back = await readNifti(r.out)
    expect(back.datatype).toBe('uint8')
    expect(back.shape).toEqual(r.image.shape)
    expect(maxAffineDiff(back.affine, r.image.affine)).toBeLessThan(1e-5)
    expect([...back.data]).toEqual([...r.label.data])
  })

  it('TCIA (oblique, LAS, anisotropic) through reorientation to RAS and back', async () => {
    const settings: PreprocessSettings = {
      spacing: null,
      reorient: true,
      intensity: { kind: 'zscore' },
    }
    const r = await perfectRoundTrip(
      'tcia-brain-tumor-progression',
      'PGBM-001_19911119',
      settings,
      2,
      [16, 96, 96],
    )
    expect(orientationCodes(r.image.affine)).toBe('LAS')
    expect(orientationCodes(r.prepared.affine)).toBe('RAS')
    // the preprocessed grid is really different (axis flipped), so the inverse mapping did work
    expect(r.prepared.affine[0][0] * r.image.affine[0][0]).toBeLessThan(0)
    expect([...r.res.original.data]).toEqual([...r.label.data])
    const back = await readNifti(r.out)
    expect(back.shape).toEqual(r.image.shape)
    expect(maxAffineDiff(back.affine, r.image.affine)).toBeLessThan(1e-4)
    // Independent reader: nibabel sees the source geometry and the same world positions.
    const nb = python(NIBABEL_CHECK, [r.imgFile, r.labFile, r.out]) as Record<string, unknown>
    expect(maxAffineDiff(nb.predAffine as number[][], nb.imgAffine as number[][])).toBeLessThan(
      1e-4,
    )
    expect(
      maxAffineDiff(nb.predQformAffine as number[][], nb.imgAffine as number[][]),
    ).toBeLessThan(1e-3)
    expect(nb.predSform).toBe(1)
    expect(nb.axcodes).toBe('LAS')
    expect(nb.shape).toEqual([...r.image.shape])
    expect(nb.dtype).toBe('uint8')
    expect(nb.equal).toBe(true)
    const [a, b] = [nb.labCentroid as number[], nb.predCentroid as number[]]
    for (let i = 0; i < 3; i++) expect(b[i]).toBeCloseTo(a[i], 4)
  })

  it('TCIA resampled to 1.5×1.5×2 mm: geometry is the source one, labels agree up to the nearest-neighbour round trip', async () => {
    const settings: PreprocessSettings = {
      spacing: [1.5, 1.5, 2],
      reorient: true,
      intensity: { kind: 'zscore' },
    }
    const r = await perfectRoundTrip(
      'tcia-brain-tumor-progression',
      'PGBM-003_19950329',
      settings,
      2,
      [64, 96, 96],
    )
    expect(r.prepared.inverse.resampledApplied).toBe(true)
    expect(r.prepared.shape).not.toEqual(r.image.shape)
    const back = await readNifti(r.out)
    expect(back.shape).toEqual(r.image.shape)
    expect(maxAffineDiff(back.affine, r.image.affine)).toBeLessThan(1e-4)
    const m = computeMetrics(back.data, r.label.data, {
      shape: r.image.shape,
      spacing: r.image.spacing,
      labels: [1],
    })
    // 0.69 mm in-plane → 1.5 mm and back moves boundary voxels by at most about half the coarse
    // voxel; a geometric error (flip, shift) would move whole surfaces by millimetres.
    const t = m.labels['1']
    expect(t.dice!).toBeGreaterThan(0.75)
    expect(t.hd95!).toBeLessThanOrEqual(1.5)
    expect(t.assd!).toBeLessThan(0.5)
    expect(t.nsd!).toBeGreaterThan(0.95)
    const nb = python(NIBABEL_CHECK, [r.imgFile, r.labFile, r.out]) as Record<string, unknown>
    const [a, b] = [nb.labCentroid as number[], nb.predCentroid as number[]]
    for (let i = 0; i < 3; i++) expect(Math.abs(b[i] - a[i])).toBeLessThan(0.75)
  })
})
