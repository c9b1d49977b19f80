/** Helpers of the Review tests: prediction sets written as `dsd predict` writes them. */
import { join } from 'node:path'
import { readNifti } from '../../main/data/nifti'
import { writeLabelNifti, type PredictionsManifest } from '../../main/services/inference'
import { atomicWriteJson } from '../../main/workspace/atomic'
import { sharedPath } from './shared'

/**
 * Write a predictions folder for hippocampus cases whose prediction is the ground truth
 * shifted by `shift` voxels along i (and nothing for the `empty` cases).
 */
export async function writeShiftedSet(
  dir: string,
  opts: {
    datasetId: string | null
    cases: string[]
    fold: number | null
    runIds: string[]
    shift: number
    empty?: string[]
  },
): Promise<void> {
  const cases: PredictionsManifest['cases'] = []
  for (const id of opts.cases) {
    const label = sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', `${id}.nii.gz`)
    const gt = await readNifti(label)
    const [nx, ny, nz] = gt.shape
    const pred = new Uint8Array(gt.data.length)
    if (!opts.empty?.includes(id)) {
      for (let k = 0; k < nz; k++)
        for (let j = 0; j < ny; j++)
          for (let i = 0; i < nx; i++) {
            const si = i - opts.shift
            if (si >= 0 && si < nx) pred[(k * ny + j) * nx + i] = gt.data[(k * ny + j) * nx + si]
          }
    }
    await writeLabelNifti(join(dir, `${id}.nii.gz`), pred, gt.shape, gt.affine)
    cases.push({
      caseId: id,
      file: `${id}.nii.gz`,
      preprocessedFile: null,
      images: [sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', `${id}.nii.gz`)],
      label,
      sourceFormat: 'nifti',
      shape: gt.shape,
      affine: gt.affine,
      preprocessedShape: gt.shape,
      seconds: 0,
    })
  }
  const m: PredictionsManifest = {
    format: 'dsd-predictions',
    version: 1,
    createdAt: new Date().toISOString(),
    datasetId: opts.datasetId,
    runIds: opts.runIds,
    fold: opts.fold,
    which: 'last',
    models: [],
    settings: { overlap: 0.25, blend: 'constant', tta: false, swBatch: 1 },
    preprocessing: { spacing: null, reorient: true, intensity: { kind: 'zscore' } },
    preprocessingHash: 'test',
    labelMap: { classes: { '0': 'background', '1': 'Anterior', '2': 'Posterior' } },
    classes: 3,
    cases,
  }
  await atomicWriteJson(join(dir, 'predictions.json'), m)
}
