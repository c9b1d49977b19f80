/**
 * predictCases end to end with a real (untrained, tiny) DynUNet checkpoint: through a run in a
 * workspace (config.json, dataset manifest, split → the validation fold), and on image files
 * with an explicit checkpoint. The geometry of every written file is the source image's.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readNifti } from '../../../main/data/nifti'
import { PREPROCESS_PRESETS, zscoreNonzero } from '../../../main/data/preprocess'
import { tf } from '../../../main/engine/tf'
import { DatasetService } from '../../../main/services/datasets'
import {
  predictCases,
  predictPrepared,
  readPredictionsManifest,
} from '../../../main/services/inference'
import { runFiles } from '../../../main/workspace/run-layout'
import { createRun } from '../../../main/workspace/runs'
import { preprocessVolumes } from '../../../main/data/preprocess'
import { readVolume } from '../../../main/data/volume-io'
import {
  slidingWindowInference,
  argmaxClasses,
  type Predictor,
} from '../../../main/engine/sliding-window'
import { sharedPath, tmpDir } from '../../helpers/shared'
import { miniMsd, saveUntrainedCheckpoint, testRunConfig } from '../../helpers/inference'

const TMP = tmpDir('predict-run')
const WS = join(TMP, 'ws')
const TINY = {
  backbone: 'dynunet' as const,
  preset: 'small',
  inChannels: 1,
  numClasses: 3,
  patch: [48, 64, 48] as [number, number, number],
  filters: [2, 2, 4, 4, 4],
}
let datasetId = ''
let valCase = ''

beforeAll(async () => {
  mkdirSync(WS, { recursive: true })
  const src = miniMsd(join(TMP, 'src'), 'msd-task04-hippocampus', [
    'hippocampus_001',
    'hippocampus_003',
    'hippocampus_004',
  ])
  const svc = new DatasetService(WS)
  const imp = await svc.importDataset(src, { name: 'hippo-mini' })
  datasetId = imp.manifest.id
  const split = await svc.createSplit(datasetId, { folds: 3, seed: 0, name: 'k3' })
  valCase = split.folds[0].val[0]
  await createRun(
    WS,
    testRunConfig({
      id: 'r1',
      datasetId,
      split: 'k3',
      fold: 0,
      model: { backbone: 'dynunet', preset: 'small', patch: TINY.patch },
    }),
  )
  await saveUntrainedCheckpoint(runFiles(WS, 'r1').lastCheckpoint, TINY, 7)
})
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

describe('predictCases with a run', () => {
  it('predicts the validation fold and writes NIfTI on the source grid', async () => {
    const before = tf.memory().numTensors
    const stages: string[] = []
    const res = await predictCases({
      workspace: WS,
      runIds: ['r1'],
      onProgress: (p) => stages.push(p.stage),
    })
    expect(tf.memory().numTensors).toBe(before)
    expect(res.outDir).toBe(join(runFiles(WS, 'r1').predictions, 'last'))
    expect(stages).toContain('infer')
    expect(stages.at(-1)).toBe('done')
    const m = await readPredictionsManifest(res.outDir)
    expect(m.cases.map((c) => c.caseId)).toEqual([valCase])
    expect(m.fold).toBe(0)
    expect(m.which).toBe('last')
    expect(m.models[0].epoch).toBe(7)
    expect(m.models[0].config!.filters).toEqual(TINY.filters)
    expect(m.settings).toEqual({ overlap: 0.25, blend: 'constant', tta: false, swBatch: 1 })
    expect(m.preprocessing).toEqual(PREPROCESS_PRESETS.mri)
    expect(m.classes).toBe(3)
    const src = await readNifti(
      sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', `${valCase}.nii.gz`),
    )
    const pred = await readNifti(join(res.outDir, `${valCase}.nii.gz`))
    expect(pred.shape).toEqual(src.shape)
    expect(pred.datatype).toBe('uint8')
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 4; c++) expect(pred.affine[r][c]).toBeCloseTo(src.affine[r][c], 5)
    expect(Math.max(...pred.data)).toBeLessThanOrEqual(2)
    expect(existsSync(join(res.outDir, 'preprocessed', `${valCase}.nii.gz`))).toBe(true)
    expect(m.cases[0].label).toMatch(/labelsTr/)
  })

  it('names a missing best checkpoint and a checkpoint that does not fit the dataset', async () => {
    await expect(
      predictCases({ workspace: WS, runIds: ['r1'], which: 'best' }),
    ).rejects.toMatchObject({ code: 'CHECKPOINT_MISSING' })
    await createRun(WS, testRunConfig({ id: 'r2', datasetId, split: 'k3', fold: 1 }))
    await saveUntrainedCheckpoint(runFiles(WS, 'r2').lastCheckpoint, {
      ...TINY,
      numClasses: 2,
    })
    await expect(predictCases({ workspace: WS, runIds: ['r2'] })).rejects.toMatchObject({
      code: 'INFER_CLASS_MISMATCH',
    })
    await expect(
      predictCases({
        workspace: WS,
        runIds: ['r1', 'r2'],
        cases: [valCase],
        outDir: join(TMP, 'ens'),
      }),
    ).rejects.toMatchObject({
      code: 'INFER_CLASS_MISMATCH',
    })
    await expect(
      predictCases({ workspace: WS, runIds: ['r1'], cases: ['nope'] }),
    ).rejects.toMatchObject({ code: 'CASE_NOT_FOUND' })
  })
})

describe('predictCases on files with a checkpoint', () => {
  it('needs preprocessing settings and an output folder, then writes the source geometry', async () => {
    const ckpt = runFiles(WS, 'r1').lastCheckpoint
    const img = sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', 'hippocampus_006.nii.gz')
    const lab = sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', 'hippocampus_006.nii.gz')
    const cases = [{ id: 'h006', images: [img], label: lab }]
    await expect(
      predictCases({ checkpoints: [ckpt], cases, outDir: join(TMP, 'f') }),
    ).rejects.toMatchObject({ code: 'PREPROCESS_SETTINGS_MISSING' })
    await expect(
      predictCases({ checkpoints: [{ path: ckpt, preprocessing: PREPROCESS_PRESETS.mri }], cases }),
    ).rejects.toMatchObject({ code: 'INFER_NO_OUTDIR' })
    const res = await predictCases({
      checkpoints: [{ path: ckpt, preprocessing: PREPROCESS_PRESETS.mri }],
      cases,
      outDir: join(TMP, 'f'),
      blend: 'gaussian',
    })
    const m = res.manifest
    expect(m.datasetId).toBeNull()
    expect(m.settings.blend).toBe('gaussian')
    expect(m.cases[0].label).toBe(lab)
    const src = await readNifti(img)
    const pred = await readNifti(join(res.outDir, 'h006.nii.gz'))
    expect(pred.shape).toEqual(src.shape)
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 4; c++) expect(pred.affine[r][c]).toBeCloseTo(src.affine[r][c], 5)
  })
})

describe('ensembles', () => {
  it('predictPrepared takes the argmax of the mean softmax over models', async () => {
    const id = 'hippocampus_001'
    const image = await readVolume(
      sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', `${id}.nii.gz`),
    )
    const prepared = preprocessVolumes(id, [image], null, PREPROCESS_PRESETS.mri, null)
    const w1 = tf.tensor2d([[2, -1, 0.5]])
    const w2 = tf.tensor2d([[-1.5, 1, 0.2]])
    const lin =
      (w: tf.Tensor2D): Predictor =>
      (x) =>
        tf.tidy(() => {
          const [b, d, h, ww] = x.shape
          return tf.reshape(
            tf.add(tf.matMul(tf.reshape(x, [-1, 1]), w), tf.tensor1d([0, 0.3, -0.2])),
            [b, d, h, ww, 3],
          )
        })
    const roi: [number, number, number] = [32, 32, 32]
    const res = await predictPrepared(prepared, [
      { predictor: lin(w1), roi },
      { predictor: lin(w2), roi },
    ])
    const vol = {
      data: prepared.image,
      shape: [prepared.shape[2], prepared.shape[1], prepared.shape[0]] as [number, number, number],
      channels: 1,
    }
    const a = await slidingWindowInference(vol, roi, lin(w1))
    const b = await slidingWindowInference(vol, roi, lin(w2))
    const mean = a.data.map((v, i) => (v + b.data[i]) / 2)
    const expected = argmaxClasses(mean, 3)
    expect(Buffer.from(res.preprocessed).equals(Buffer.from(expected))).toBe(true)
    // and the ensemble differs from either member somewhere (the test can fail)
    expect(Buffer.from(expected).equals(Buffer.from(argmaxClasses(a.data, 3)))).toBe(false)
    expect(Buffer.from(expected).equals(Buffer.from(argmaxClasses(b.data, 3)))).toBe(false)
    w1.dispose()
    w2.dispose()
  })
})

describe('predictCases on a DICOM series', () => {
  it('reads the series, writes dcm2niix geometry, records the DICOM source and exports a DICOM SEG', async () => {
    const dir = sharedPath(
      'data',
      'dicom-samples',
      'tcia-brain-tumor-progression_PGBM-001_19911119',
    )
    // A voxel-wise model: class 1 where the z-scored intensity exceeds 1.
    const threshold: Predictor = (x) =>
      tf.tidy(() => {
        const [b, d, h, w] = x.shape
        const fg = tf.mul(tf.sub(tf.reshape(x, [-1, 1]), tf.scalar(1)), tf.scalar(5))
        return tf.reshape(tf.concat([tf.zerosLike(fg), fg], 1), [b, d, h, w, 2])
      })
    const settings = { spacing: null, reorient: true, intensity: { kind: 'zscore' as const } }
    const out = join(TMP, 'dicom')
    const res = await predictCases({
      models: [
        {
          label: 'threshold',
          predictor: threshold,
          patch: [32, 128, 128],
          numClasses: 2,
          inChannels: 1,
          preprocessing: settings,
        },
      ],
      cases: [{ id: 'PGBM-001', images: [join(dir, 'T1post')], label: join(dir, 'MaskTumor') }],
      outDir: out,
    })
    const c = res.manifest.cases[0]
    expect(c.sourceFormat).toBe('dicom')
    expect(res.manifest.models[0]).toMatchObject({
      label: 'threshold',
      checkpoint: null,
      config: null,
      numClasses: 2,
    })
    const pred = await readNifti(join(out, 'PGBM-001.nii.gz'))
    const ref = await readNifti(
      sharedPath('data', 'tcia-brain-tumor-progression', 'imagesTr', 'PGBM-001_19911119.nii.gz'),
    )
    expect(pred.shape).toEqual(ref.shape)
    for (let r = 0; r < 3; r++)
      for (let k = 0; k < 4; k++)
        expect(Math.abs(pred.affine[r][k] - ref.affine[r][k])).toBeLessThan(1e-3)
    // Independent expectation from the dcm2niix NIfTI: z-score over non-zero voxels, > 1.
    const v = Float32Array.from(ref.data)
    zscoreNonzero(v)
    let diff = 0
    let fg = 0
    for (let i = 0; i < v.length; i++) {
      const e = v[i] > 1 ? 1 : 0
      fg += e
      if (e !== pred.data[i]) diff++
    }
    expect(fg).toBeGreaterThan(1000)
    expect(diff).toBe(0)
    // The ground truth came from the mask series: evaluation works on it.
    const { evaluatePredictions } = await import('../../../main/services/evaluation')
    const t = await evaluatePredictions(out)
    expect(t.rows).toHaveLength(1)
    expect(t.rows[0].dice).toBeGreaterThan(0) // the enhancing tumour is bright: some overlap
    expect(t.rows[0].dice).toBeLessThan(1)
    const { exportPredictions } = await import('../../../main/services/export')
    const exp = await exportPredictions(out, join(TMP, 'dicom-export'), { formats: ['dicom-seg'] })
    expect(exp.unavailable).toEqual([])
    const { readDicomSeg, readDicomSeries } = await import('../../../main/data/dicom')
    const seg = await readDicomSeg(
      exp.cases[0].dicomSeg!,
      await readDicomSeries(join(dir, 'T1post')),
    )
    expect(
      Buffer.from(seg.volume.data as Uint8Array).equals(Buffer.from(pred.data as Uint8Array)),
    ).toBe(true)
  })
})

describe('checkpoints as the trainer writes them', () => {
  it('rebuilds the model from the run config when the metadata holds only the RunConfig', async () => {
    const { createModel } = await import('../../../main/engine/model')
    const { packTrainingState, saveCheckpoint } = await import('../../../main/engine/checkpoint')
    const { loadModelFromCheckpoint } = await import('../../../main/services/inference')
    const cfg = {
      backbone: 'dynunet' as const,
      preset: 'small',
      inChannels: 1,
      numClasses: 3,
      patch: [32, 32, 32] as [number, number, number],
      filters: [2, 2, 4, 4, 4],
      seed: 5,
    }
    const model = createModel(cfg)
    const file = join(TMP, 'trainer-format.ckpt')
    const packed = packTrainingState({
      weights: model.variables,
      metadata: {
        runId: 'x',
        epoch: 4,
        best: { epoch: null, dice: null },
        config: { model: { backbone: 'dynunet', preset: 'small', patch: cfg.patch } },
      },
    })
    await saveCheckpoint(file, packed.tensors, packed.metadata)
    // Without a fallback config it cannot know inChannels/numClasses: a clear error.
    await expect(loadModelFromCheckpoint(file, null)).rejects.toMatchObject({
      code: 'CHECKPOINT_NO_CONFIG',
    })
    // With the wrong fallback (preset filters) the weights do not fit: named.
    await expect(
      loadModelFromCheckpoint(file, { ...cfg, filters: undefined }),
    ).rejects.toMatchObject({ code: 'CHECKPOINT_MODEL_MISMATCH' })
    const before = tf.memory().numTensors
    const loaded = await loadModelFromCheckpoint(file, { ...cfg, seed: 99 })
    expect(loaded.epoch).toBe(4)
    for (const [name, v] of Object.entries(model.variables)) {
      const a = (await loaded.model.variables[name].data()) as Float32Array
      const b = (await v.data()) as Float32Array
      expect(a.length).toBe(b.length)
      expect(a.every((x, k) => x === b[k])).toBe(true)
    }
    loaded.model.dispose()
    model.dispose()
    expect(tf.memory().numTensors).toBeLessThanOrEqual(before)
  })
})
