/**
 * Write what a prediction made: each case's class map as NIfTI on its original grid (and on
 * the preprocessed grid), and `predictions.json`, rewritten after every case so an interrupted
 * prediction leaves a manifest of the finished cases.
 */
import { mkdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { PreparedCase } from '../../data/preprocess'
import { writeNifti } from '../../data/nifti'
import type { Mat4, Vec3, Volume } from '../../data/volume'
import { DsdError } from '../../errors'
import { atomicWriteJson, readJsonFile } from '../../workspace/atomic'
import { runFiles } from '../../workspace/run-layout'
import type { PredictionSource } from './models'
import type { CaseJob, ModelEntry, PredictedCase, PredictionsManifest, PredictOptions } from './types'

/** Write a class map as NIfTI (uint8, the grid's affine as sform and qform), atomically. */
export async function writeLabelNifti(
  path: string,
  data: Uint8Array,
  shape: Vec3,
  affine: Mat4,
  descrip = 'DSD Studio prediction',
): Promise<void> {
  const vol: Volume = {
    shape,
    channels: 1,
    spacing: [0, 1, 2].map((c) => Math.hypot(affine[0][c], affine[1][c], affine[2][c])) as Vec3,
    affine,
    datatype: 'uint8',
    data,
  }
  await mkdir(dirname(path), { recursive: true })
  await writeNifti(path, vol, { datatype: 'uint8', descrip })
}

/** The output folder: `opts.outDir`, else `runs/<run>/predictions/<name or which>` of a single run. */
export function outputFolder(opts: PredictOptions, src: PredictionSource, which: 'last' | 'best'): string {
  if (opts.outDir) return resolve(opts.outDir)
  if (src.runs.length !== 1 || (opts.checkpoints ?? []).length || (opts.models ?? []).length) {
    throw new DsdError('INFER_NO_OUTDIR', 'predict: an ensemble or a checkpoint prediction needs an output folder (--out)')
  }
  return join(runFiles(src.ws!, src.runs[0].id).predictions, opts.name ?? which)
}

/** Write one predicted case (original grid, and the preprocessed grid unless `savePreprocessed` is false). */
export async function writeCase(
  outDir: string,
  job: CaseJob,
  prepared: PreparedCase,
  res: { preprocessed: Uint8Array; original: Volume },
  savePreprocessed: boolean,
  seconds: () => number,
): Promise<PredictedCase> {
  const file = `${job.id}.nii.gz`
  await writeLabelNifti(join(outDir, file), res.original.data as Uint8Array, res.original.shape, res.original.affine)
  let preFile: string | null = null
  if (savePreprocessed) {
    preFile = `preprocessed/${job.id}.nii.gz`
    await writeLabelNifti(join(outDir, preFile), res.preprocessed, prepared.shape, prepared.affine, 'DSD Studio prediction (preprocessed grid)')
  }
  return {
    caseId: job.id,
    file,
    preprocessedFile: preFile,
    images: job.images,
    label: job.label,
    sourceFormat: job.sourceFormat,
    shape: res.original.shape,
    affine: res.original.affine,
    preprocessedShape: prepared.shape,
    seconds: seconds(),
  }
}

/** Write `predictions.json` for the cases predicted so far. */
export async function writePredictionsManifest(
  outDir: string,
  src: PredictionSource,
  run: { runIds: string[]; fold: number | null; which: 'last' | 'best' | null },
  models: ModelEntry[],
  settings: PredictionsManifest['settings'],
  classes: number,
  cases: PredictedCase[],
): Promise<PredictionsManifest> {
  const m: PredictionsManifest = {
    format: 'dsd-predictions',
    version: 1,
    createdAt: new Date().toISOString(),
    datasetId: src.manifest?.id ?? null,
    runIds: run.runIds,
    fold: run.fold,
    which: run.which,
    models: models.map((x) => ({
      label: x.label,
      runId: x.runId,
      checkpoint: x.checkpoint,
      sha256: x.sha256,
      epoch: x.epoch,
      config: x.config,
      patch: x.patch,
      numClasses: x.numClasses,
    })),
    settings,
    preprocessing: src.settings,
    preprocessingHash: src.hash,
    labelMap: src.labelMap ?? {
      classes: Object.fromEntries(Array.from({ length: classes }, (_, k) => [String(k), k === 0 ? 'background' : `class ${k}`])),
    },
    classes,
    cases,
  }
  await atomicWriteJson(join(outDir, 'predictions.json'), m)
  return m
}

/** Read and check a predictions folder's `predictions.json`. */
export async function readPredictionsManifest(dir: string): Promise<PredictionsManifest> {
  const file = join(dir, 'predictions.json')
  const m = (await readJsonFile(file, 'PREDICTIONS_NOT_FOUND', 'run `dsd predict` (again)', 'PREDICTIONS_CORRUPT')) as PredictionsManifest
  if (m?.format !== 'dsd-predictions' || !Array.isArray(m.cases)) {
    throw new DsdError(
      'PREDICTIONS_CORRUPT',
      `${file}: not a predictions manifest (format "${String((m as { format?: unknown })?.format)}"); run \`dsd predict\` again`,
      { file },
    )
  }
  return m
}
