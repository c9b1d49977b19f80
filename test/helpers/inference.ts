/** Shared helpers of the inference tests: a "perfect predictor", tiny workspaces and runs. */
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { readNifti } from '../../main/data/nifti'
import { rasTransform, transformVolume } from '../../main/data/resample'
import { writeLabelNifti, type PredictionsManifest } from '../../main/services/inference'
import { atomicWriteJson } from '../../main/workspace/atomic'
import { join } from 'node:path'
import type { PreparedCase } from '../../main/data/preprocess'
import { packTrainingState, saveCheckpoint } from '../../main/engine/checkpoint'
import { createModel, type ModelConfig } from '../../main/engine/model'
import { windowGrid, type Predictor } from '../../main/engine/sliding-window'
import { tf } from '../../main/engine/tf'
import type { RunConfig } from '../../main/contract/runs'
import { sharedPath } from './shared'

type V3 = [number, number, number]

/**
 * A predictor that returns the one-hot ground truth of the preprocessed label as logits (×10).
 * It is stateful: with swBatch 1 and no mirroring, call n sees window n of `windowGrid`.
 */
export function perfectPredictor(
  prepared: PreparedCase,
  K: number,
  roi: V3,
  overlap: number,
): Predictor {
  const [nx, ny, nz] = prepared.shape
  const shape: V3 = [nz, ny, nx]
  const size = shape.map((s, k) => Math.max(s, roi[k])) as V3
  const pad = shape.map((s, k) => Math.floor(Math.max(roi[k] - s, 0) / 2)) as V3
  const windows = windowGrid(size, roi, overlap)
  let call = 0
  return (x) => {
    if (x.shape[0] !== 1) throw new Error('perfectPredictor needs swBatch 1')
    const [a, b, c] = windows[call++ % windows.length]
    const out = new Float32Array(roi[0] * roi[1] * roi[2] * K)
    for (let z = 0, p = 0; z < roi[0]; z++)
      for (let y = 0; y < roi[1]; y++)
        for (let xx = 0; xx < roi[2]; xx++, p++) {
          const k = a + z - pad[0]
          const j = b + y - pad[1]
          const i = c + xx - pad[2]
          const inside = k >= 0 && k < nz && j >= 0 && j < ny && i >= 0 && i < nx
          const cls = inside ? prepared.label![(k * ny + j) * nx + i] : 0
          out[p * K + cls] = 10
        }
    return tf.tensor5d(out, [1, ...roi, K])
  }
}

/** Copy some cases of a shared MSD dataset into a small MSD folder (dataset.json + files). */
export function miniMsd(dir: string, dataset: string, ids: string[]): string {
  const src = sharedPath('data', dataset)
  const dj = JSON.parse(readFileSync(join(src, 'dataset.json'), 'utf8'))
  mkdirSync(join(dir, 'imagesTr'), { recursive: true })
  mkdirSync(join(dir, 'labelsTr'), { recursive: true })
  for (const id of ids) {
    copyFileSync(join(src, 'imagesTr', `${id}.nii.gz`), join(dir, 'imagesTr', `${id}.nii.gz`))
    copyFileSync(join(src, 'labelsTr', `${id}.nii.gz`), join(dir, 'labelsTr', `${id}.nii.gz`))
  }
  const out = {
    ...dj,
    numTraining: ids.length,
    training: ids.map((id) => ({
      image: `./imagesTr/${id}.nii.gz`,
      label: `./labelsTr/${id}.nii.gz`,
    })),
    test: [],
  }
  delete out.patients
  writeFileSync(join(dir, 'dataset.json'), JSON.stringify(out, null, 2))
  return dir
}

/** A run config for tests (small model, CPU). */
export function testRunConfig(
  over: Partial<RunConfig> & Pick<RunConfig, 'id' | 'datasetId' | 'split'>,
): RunConfig {
  return {
    fold: 0,
    model: { backbone: 'dynunet', preset: 'small', patch: [32, 32, 32] },
    variant: 'DSD',
    loss: { eta: 1, alpha1: 1, alpha2: 1, temperature: 3 },
    batch: 2,
    epochs: 1,
    optimizer: { lr: 1e-3, weightDecay: 1e-5 },
    schedule: { kind: 'step', stepSize: 0, gamma: 0.5 },
    seed: 100,
    backend: 'cpu',
    validateEvery: 1,
    inference: { overlap: 0.25, blend: 'constant', mirror: false },
    preprocessing: { preset: 'mri' },
    augment: 'none',
    ...over,
  }
}

/**
 * Save an untrained model's weights as a training checkpoint at `file` (the model config in
 * the metadata, as the trainer records it). Tiny filters keep the JS CPU backend fast.
 */
export async function saveUntrainedCheckpoint(
  file: string,
  config: ModelConfig,
  epoch = 1,
): Promise<void> {
  const model = createModel(config)
  try {
    const { tensors, metadata } = packTrainingState({
      weights: model.variables,
      metadata: { epoch, model: model.config },
    })
    mkdirSync(join(file, '..'), { recursive: true })
    await saveCheckpoint(file, tensors, metadata)
  } finally {
    model.dispose()
  }
}

/** Run a Python snippet with /usr/bin/python3 (nibabel); returns parsed JSON from stdout. */
export function python(code: string, args: string[] = []): unknown {
  const py = process.env.DSD_PYTHON ?? '/usr/bin/python3'
  const r = spawnSync(py, ['-c', code, ...args], { encoding: 'utf8' })
  if (r.status !== 0) {
    throw new Error(
      `${py} failed (${r.status}): ${r.stderr}\nThese checks need python3-nibabel and numpy (/usr/bin/python3 -c 'import nibabel').`,
    )
  }
  return JSON.parse(r.stdout)
}

/** A predictions folder as predictCases writes it, from golden prediction files. */
export async function goldenFolder(
  root: string,
  name: string,
  dataset: string,
  classes: number,
  fold: number | null,
  cases: { id: string; pred: string; gt: string }[],
): Promise<string> {
  const dir = join(root, name)
  mkdirSync(join(dir, 'preprocessed'), { recursive: true })
  const out: PredictionsManifest['cases'] = []
  for (const c of cases) {
    const src = sharedPath('golden', 'metrics', `pred_${c.pred}.nii.gz`)
    copyFileSync(src, join(dir, `${c.id}.nii.gz`))
    // The preprocessed grid is the RAS reorientation (no resampling): map the prediction there.
    const v = await readNifti(src)
    const ras = transformVolume(v, rasTransform(v.affine))
    await writeLabelNifti(
      join(dir, 'preprocessed', `${c.id}.nii.gz`),
      Uint8Array.from(ras.data),
      ras.shape,
      ras.affine,
    )
    out.push({
      caseId: c.id,
      file: `${c.id}.nii.gz`,
      preprocessedFile: `preprocessed/${c.id}.nii.gz`,
      images: [sharedPath('data', dataset, 'imagesTr', `${c.gt}.nii.gz`)],
      label: sharedPath('data', dataset, 'labelsTr', `${c.gt}.nii.gz`),
      sourceFormat: 'nifti',
      shape: v.shape,
      affine: v.affine,
      preprocessedShape: ras.shape,
      seconds: 0,
    })
  }
  const classNames = Object.fromEntries(
    Array.from({ length: classes }, (_, k) => [String(k), k === 0 ? 'background' : `L${k}`]),
  )
  const m: PredictionsManifest = {
    format: 'dsd-predictions',
    version: 1,
    createdAt: new Date().toISOString(),
    datasetId: null,
    runIds: [name],
    fold,
    which: 'last',
    models: [],
    settings: { overlap: 0.25, blend: 'constant', tta: false, swBatch: 1 },
    preprocessing: { spacing: null, reorient: true, intensity: { kind: 'zscore' } },
    preprocessingHash: 'test',
    labelMap: { classes: classNames },
    classes,
    cases: out,
  }
  await atomicWriteJson(join(dir, 'predictions.json'), m)
  return dir
}
