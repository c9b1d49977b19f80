/**
 * Resolve what a prediction reads: the cases (IDs of the workspace dataset — by default the
 * run's validation fold, or the split's test set for an ensemble — or image files), and each
 * case preprocessed as in training.
 */
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { isSafeId, SAFE_ID_RULE } from '../../contract/ids'
import { preprocessVolumes, type PreparedCase } from '../../data/preprocess'
import type { Volume } from '../../data/volume'
import { readVolume } from '../../data/volume-io'
import { DsdError } from '../../errors'
import { loadPreparedCase, readCheckedSplit } from '../../workspace/cases'
import type { PredictionSource } from './models'
import type { CaseJob, PredictOptions } from './types'

function isDicomDir(p: string): boolean {
  try {
    return statSync(p).isDirectory()
  } catch {
    return false
  }
}

async function readFileCase(job: CaseJob): Promise<{ images: Volume[]; label: Volume | null }> {
  // NIfTI, NRRD or a DICOM series folder (a mask may be stored as an image series)
  const images: Volume[] = []
  for (const p of job.images) images.push(await readVolume(p))
  const label = job.label ? await readVolume(job.label) : null
  return { images, label }
}

function safeCaseId(id: string): string {
  if (!isSafeId(id)) {
    throw new DsdError(
      'CASE_ID_INVALID',
      `case id "${id}" cannot be a file name (${SAFE_ID_RULE}); rename the case`,
      { caseId: id },
    )
  }
  return id
}

/**
 * The cases to predict, checked (known IDs, existing files, safe and unique names), and the
 * fold they are the validation set of (null for files or a test set).
 */
export async function resolveCases(opts: PredictOptions, src: PredictionSource): Promise<{ jobs: CaseJob[]; fold: number | null }> {
  const { runs, manifest, ws } = src
  let caseList = opts.cases
  let fold: number | null = runs.length === 1 ? runs[0].fold : null
  if (!caseList || caseList.length === 0) {
    if (runs.length === 0 || !ws || !manifest) {
      throw new DsdError('INFER_NO_CASES', 'predict: no cases given; pass case IDs of the dataset or image files')
    }
    const { split } = await readCheckedSplit(ws, manifest, runs[0].split)
    if (runs.length === 1) {
      const f = split.folds[runs[0].fold]
      if (!f) throw new DsdError('SPLIT_FOLD_MISSING', `split "${split.name}" has no fold ${runs[0].fold}`, {})
      caseList = f.val
    } else if (split.test.length) {
      caseList = split.test
      fold = null
    } else {
      throw new DsdError(
        'INFER_NO_CASES',
        `predict: an ensemble of ${runs.length} runs needs the cases to predict (split "${split.name}" has no test set)`,
      )
    }
  }
  const jobs: CaseJob[] = []
  for (const c of caseList) {
    if (typeof c === 'string') {
      if (!manifest)
        throw new DsdError('INFER_NO_DATASET', `predict: case "${c}" needs a dataset (a run, or datasetId) — or give image files`, { caseId: c })
      const mc = manifest.cases.find((x) => x.id === c)
      if (!mc)
        throw new DsdError('CASE_NOT_FOUND', `dataset "${manifest.id}" has no case "${c}"; check the case ID (dsd import lists them)`, { caseId: c })
      jobs.push({ id: safeCaseId(c), kind: 'dataset', images: mc.images.map((f) => f.path), label: mc.label?.path ?? null, sourceFormat: 'nifti' })
    } else {
      if (!c.images?.length) throw new DsdError('INFER_NO_IMAGE', `predict: case "${c.id}" has no image file`, { caseId: c.id })
      for (const p of [...c.images, ...(c.label ? [c.label] : [])]) {
        if (!existsSync(p)) throw new DsdError('FILE_NOT_FOUND', `${p}: no such file or folder (case "${c.id}")`, { file: p })
      }
      jobs.push({
        id: safeCaseId(c.id),
        kind: 'files',
        images: c.images.map((p) => resolve(p)),
        label: c.label ? resolve(c.label) : null,
        sourceFormat: c.images.length === 1 && isDicomDir(c.images[0]) ? 'dicom' : 'nifti',
      })
    }
  }
  const ids = new Set<string>()
  for (const j of jobs) {
    if (ids.has(j.id)) throw new DsdError('CASE_DUPLICATE', `predict: case "${j.id}" is listed twice`, { caseId: j.id })
    ids.add(j.id)
  }
  return { jobs, fold }
}

/** A case preprocessed with the ensemble's settings: through the dataset cache, or from its files. */
export async function prepareCase(job: CaseJob, src: PredictionSource): Promise<PreparedCase> {
  if (job.kind === 'dataset') return loadPreparedCase(src.ws!, src.manifest!, job.id, src.settings)
  const { images, label } = await readFileCase(job)
  return preprocessVolumes(job.id, images, label, src.settings, src.labelMap)
}
