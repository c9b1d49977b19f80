/**
 * Prediction: load one or more trained checkpoints, preprocess each case exactly as training
 * does (the same `preprocessVolumes` settings and label map, through the dataset cache for
 * workspace cases), run sliding-window inference (mean of the softmax over checkpoints for an
 * ensemble), take the argmax, map the label map back onto the original image grid with the data
 * team's inverse mapping (`invertLabelMap`) and write it as NIfTI with the source affine
 * (atomically). Works on cases of a workspace dataset or on arbitrary image files.
 *
 * Output folder (default `runs/<runId>/predictions/<name>/` for one run):
 *   <caseId>.nii.gz                 class indices on the original image grid (uint8)
 *   preprocessed/<caseId>.nii.gz    the same prediction on the preprocessed grid (for
 *                                   evaluation on that grid, as the paper does)
 *   predictions.json                what was predicted with what (see {@link PredictionsManifest})
 */
import { createHash } from 'node:crypto'
import { existsSync, statSync } from 'node:fs'
import { mkdir, open, readdir, readFile, stat } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { readVolume } from '../data/volume-io'
import { classCount, type LabelMap } from '../data/labels'
import { writeNifti } from '../data/nifti'
import {
  invertLabelMap,
  PREPROCESS_PRESETS,
  preprocessVolumes,
  settingsHash,
  type PreparedCase,
  type PreprocessSettings,
} from '../data/preprocess'
import type { Mat4, Vec3, Volume } from '../data/volume'
import { CHECKPOINT_MAGIC, loadCheckpoint } from '../engine/checkpoint'
import {
  createModel,
  type DsdModel,
  type ModelConfig,
  type ResolvedModelConfig,
} from '../engine/model'
import {
  argmaxClasses,
  slidingWindowInference,
  type BlendMode,
  type Predictor,
  type SlidingWindowProgress,
} from '../engine/sliding-window'
import { tf } from '../engine/tf'
import { isSafeId, SAFE_ID_RULE } from '../contract/ids'
import { DsdError } from '../errors'
import { atomicWriteJson, readJsonFile } from '../workspace/atomic'
import { readManifest, type DatasetManifest } from '../workspace/datasets'
import { DatasetService } from './datasets'
import { runFiles, type RunConfig } from '../workspace/run-layout'
import { readRunConfig } from '../workspace/runs'
import { runPreprocessing } from './trainer'

/** A checkpoint to load: a file, or a folder holding one checkpoint file. */
export interface CheckpointSpec {
  path: string
  /** Model config; default: the checkpoint's metadata, else the run's config.json. */
  model?: ModelConfig
  /** Preprocessing used in training; needed for file inputs when there is no run. */
  preprocessing?: PreprocessSettings
  /** Label map of the training dataset (class names and stored values). */
  labelMap?: LabelMap
}

/** A case given as files (not from a workspace dataset). */
export interface FileCase {
  id: string
  /** One file per channel (NIfTI), or one DICOM series folder. */
  images: string[]
  /** Optional ground truth (kept in the manifest for evaluation). */
  label?: string | null
}

/** Progress of {@link predictCases}. */
export interface PredictProgress {
  caseIndex: number
  cases: number
  caseId: string
  stage: 'load' | 'infer' | 'write' | 'done'
  /** Model index within the ensemble (stage 'infer'). */
  model?: number
  models?: number
  window?: SlidingWindowProgress
}

/** Options of {@link predictCases}. */
export interface PredictOptions {
  /** Workspace root (needed for runIds and dataset cases). */
  workspace?: string
  /** Runs whose checkpoint(s) to use; several = an ensemble (mean of the softmax). */
  runIds?: string[]
  /** Which run checkpoint: 'last' (default) or 'best'. */
  which?: 'last' | 'best'
  /** Explicit checkpoints (files or folders), instead of or in addition to runIds. */
  checkpoints?: (string | CheckpointSpec)[]
  /** Models already in memory (e.g. the one being trained); not disposed by predictCases. */
  models?: InMemoryModel[]
  /** Case IDs of the dataset, or file cases. Default (one run): the run's validation fold. */
  cases?: (string | FileCase)[]
  /** Dataset of the case IDs; default: the first run's dataset. */
  datasetId?: string
  /** Output folder; default `runs/<runId>/predictions/<name>` for a single run. */
  outDir?: string
  /** Sub-folder name under the run's predictions/ (default: `which`). */
  name?: string
  /** Mirror test-time augmentation (8 flips); default: the run's inference.mirror, else false. */
  tta?: boolean
  /** Default: the run's inference.overlap, else 0.25. */
  overlap?: number
  /** Default: the run's inference.blend, else 'constant'. */
  blend?: BlendMode
  swBatch?: number
  /** Also write the prediction on the preprocessed grid (default true). */
  savePreprocessed?: boolean
  onProgress?: (p: PredictProgress) => void
  signal?: AbortSignal
}

/** A model given as a predictor (in memory), with what prediction needs to know about it. */
export interface InMemoryModel {
  label: string
  predictor: Predictor
  /** Window (training patch) [d, h, w]. */
  patch: [number, number, number]
  numClasses: number
  inChannels: number
  /** Preprocessing it was trained with (needed without a run). */
  preprocessing?: PreprocessSettings
  labelMap?: LabelMap
}

/** One loaded model of an ensemble. */
export interface LoadedModel {
  label: string
  runId: string | null
  checkpoint: string
  checkpointSha256: string
  epoch: number | null
  config: ResolvedModelConfig
  model: DsdModel
  predictor: Predictor
}

/** One predicted case in {@link PredictionsManifest}. */
export interface PredictedCase {
  caseId: string
  /** Prediction file, relative to the output folder. */
  file: string
  preprocessedFile: string | null
  /** Where the image came from. */
  images: string[]
  /** Ground-truth file, when known. */
  label: string | null
  /** Source kind (a DICOM series can be exported as DICOM SEG). */
  sourceFormat: 'nifti' | 'dicom'
  shape: Vec3
  affine: Mat4
  preprocessedShape: Vec3
  seconds: number
}

/** `predictions.json`: everything needed to evaluate or export the predictions later. */
export interface PredictionsManifest {
  format: 'dsd-predictions'
  version: 1
  createdAt: string
  datasetId: string | null
  runIds: string[]
  /** Fold of the run (single run), for evaluation tables. */
  fold: number | null
  which: 'last' | 'best' | null
  models: {
    label: string
    runId: string | null
    /** Checkpoint file and its sha256 (null for an in-memory model). */
    checkpoint: string | null
    sha256: string | null
    epoch: number | null
    /** The model config (null for an in-memory model). */
    config: ResolvedModelConfig | null
    patch: [number, number, number]
    numClasses: number
  }[]
  settings: { overlap: number; blend: BlendMode; tta: boolean; swBatch: number }
  preprocessing: PreprocessSettings
  preprocessingHash: string
  labelMap: LabelMap
  classes: number
  cases: PredictedCase[]
}

/** What {@link predictCases} returns. */
export interface PredictResult {
  outDir: string
  manifestFile: string
  manifest: PredictionsManifest
}

// ---------------------------------------------------------------------------------------------
// preprocessing settings and checkpoints

/**
 * The preprocessing settings stored in a run config (`preprocessing`): full
 * {@link PreprocessSettings} (`spacing`, `reorient`, `intensity`), or `{ preset: name }` naming
 * one of PREPROCESS_PRESETS, optionally with overrides.
 */
export function toPreprocessSettings(
  raw: Record<string, unknown> | undefined,
  where: string,
): PreprocessSettings {
  const r = raw ?? {}
  let base: Partial<PreprocessSettings> = {}
  if (typeof r.preset === 'string') {
    const p = PREPROCESS_PRESETS[r.preset]
    if (!p) {
      throw new DsdError(
        'PREPROCESS_PRESET_UNKNOWN',
        `${where}: preprocessing preset "${r.preset}" is unknown; use one of ${Object.keys(PREPROCESS_PRESETS).join(', ')}`,
        { preset: r.preset },
      )
    }
    base = p
  }
  const s = {
    ...base,
    ...Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'preset')),
  } as Partial<PreprocessSettings>
  const okSpacing =
    s.spacing === null ||
    (Array.isArray(s.spacing) &&
      s.spacing.length === 3 &&
      s.spacing.every((v) => typeof v === 'number' && v > 0))
  const kinds = ['ct', 'zscore', 'none']
  if (
    !okSpacing ||
    typeof s.reorient !== 'boolean' ||
    !s.intensity ||
    !kinds.includes((s.intensity as { kind: string }).kind)
  ) {
    throw new DsdError(
      'PREPROCESS_SETTINGS_INVALID',
      `${where}: preprocessing settings ${JSON.stringify(r)} are incomplete; give { "preset": "mri" | "mmwhs" | "brats" } or { "spacing": [x, y, z] | null, "reorient": true, "intensity": { "kind": "ct" | "zscore" | "none", … } }`,
      { preprocessing: r },
    )
  }
  return {
    spacing: s.spacing ?? null,
    reorient: s.reorient,
    intensity: s.intensity,
  } as PreprocessSettings
}

/** The training preprocessing of a run (the trainer's own rule), checked for completeness. */
function runPreprocessingChecked(cfg: RunConfig, file: string): PreprocessSettings {
  const s = runPreprocessing(cfg)
  return toPreprocessSettings(s as unknown as Record<string, unknown>, file)
}

const CHECKPOINT_NAMES = [
  'checkpoint.dsdckpt',
  'checkpoint.ckpt',
  'model.dsdckpt',
  'model.ckpt',
  'weights.dsdckpt',
]

async function hasMagic(file: string): Promise<boolean> {
  try {
    const fh = await open(file, 'r')
    try {
      const buf = Buffer.alloc(8)
      const { bytesRead } = await fh.read(buf, 0, 8, 0)
      return bytesRead === 8 && buf.toString('latin1') === CHECKPOINT_MAGIC
    } finally {
      await fh.close()
    }
  } catch {
    return false
  }
}

/** A checkpoint file: `path` itself, or the one checkpoint file inside folder `path`. */
export async function resolveCheckpointFile(path: string): Promise<string> {
  let st
  try {
    st = await stat(path)
  } catch {
    throw new DsdError(
      'CHECKPOINT_MISSING',
      `${path}: no such checkpoint file or folder; train the run first or check the path`,
      { path },
    )
  }
  if (st.isFile()) return path
  const names = (await readdir(path)).filter((n) => !n.startsWith('.'))
  for (const n of CHECKPOINT_NAMES) if (names.includes(n)) return join(path, n)
  const found: string[] = []
  for (const n of names.sort()) {
    const f = join(path, n)
    if (statSync(f).isFile() && (await hasMagic(f))) found.push(f)
  }
  if (found.length === 1) return found[0]
  if (found.length === 0) {
    throw new DsdError(
      'CHECKPOINT_MISSING',
      `${path}: the folder holds no checkpoint file (none starts with "${CHECKPOINT_MAGIC}"); train the run first`,
      { path },
    )
  }
  throw new DsdError(
    'CHECKPOINT_AMBIGUOUS',
    `${path}: the folder holds ${found.length} checkpoint files (${found.map((f) => basename(f)).join(', ')}); pass one file`,
    { path, files: found },
  )
}

function isModelConfig(v: unknown): v is ModelConfig {
  return (
    !!v &&
    typeof v === 'object' &&
    ((v as ModelConfig).backbone === 'dynunet' || (v as ModelConfig).backbone === 'unetr')
  )
}

/** The model config stored in checkpoint metadata (`model`, `modelConfig` or `config.model`), if any. */
function metadataModel(meta: unknown): ModelConfig | null {
  if (!meta || typeof meta !== 'object') return null
  const m = meta as Record<string, unknown>
  for (const v of [
    m.model,
    m.modelConfig,
    (m.config as Record<string, unknown> | undefined)?.model,
  ]) {
    if (isModelConfig(v) && (v as { inChannels?: unknown }).inChannels !== undefined) return v
  }
  return null
}

function metadataEpoch(meta: unknown): number | null {
  const e = (meta as { epoch?: unknown } | null)?.epoch
  return typeof e === 'number' && Number.isFinite(e) ? e : null
}

/**
 * Load a model from a checkpoint file. Weights are the `weights/<name>` tensors (a training
 * checkpoint) or plain `<name>` tensors; every model weight must be present with its shape.
 * `fallback` gives the model config when the checkpoint does not carry one.
 */
export async function loadModelFromCheckpoint(
  file: string,
  fallback: ModelConfig | null,
  label = file,
  runId: string | null = null,
): Promise<LoadedModel> {
  const bytes = await readFile(file)
  const sha = createHash('sha256').update(bytes).digest('hex')
  const ckpt = loadCheckpoint(file)
  try {
    const cfg = metadataModel(ckpt.metadata) ?? fallback
    if (!cfg) {
      throw new DsdError(
        'CHECKPOINT_NO_CONFIG',
        `${file}: the checkpoint does not record its model config and no run config.json was given; predict through its run (--run) or pass the model config`,
        { file },
      )
    }
    const model = createModel(cfg)
    try {
      const names = Object.keys(model.variables)
      const missing: string[] = []
      const wrong: string[] = []
      for (const name of names) {
        const t = ckpt.tensors[`weights/${name}`] ?? ckpt.tensors[name]
        const v = model.variables[name]
        if (!t) missing.push(name)
        else if (t.shape.join() !== v.shape.join())
          wrong.push(`${name} [${t.shape}] vs model [${v.shape}]`)
        else v.assign(t.dtype === 'float32' ? t : tf.cast(t, 'float32'))
      }
      if (missing.length || wrong.length) {
        throw new DsdError(
          'CHECKPOINT_MODEL_MISMATCH',
          `${file}: the checkpoint does not fit the ${model.config.backbone}/${model.config.preset} model (${model.config.inChannels} in, ${model.config.numClasses} classes)` +
            (missing.length
              ? `; ${missing.length} weight(s) missing, e.g. ${missing.slice(0, 3).join(', ')}`
              : '') +
            (wrong.length
              ? `; ${wrong.length} with another shape, e.g. ${wrong.slice(0, 2).join('; ')}`
              : '') +
            '; it was saved by a different model config — predict with the run that trained it',
          { file, missing: missing.slice(0, 20), wrong: wrong.slice(0, 20) },
        )
      }
    } catch (err) {
      model.dispose()
      throw err
    }
    const predictor: Predictor = (x) => model.forward(x).Y
    return {
      label,
      runId,
      checkpoint: file,
      checkpointSha256: sha,
      epoch: metadataEpoch(ckpt.metadata),
      config: model.config,
      model,
      predictor,
    }
  } finally {
    for (const t of Object.values(ckpt.tensors)) t.dispose()
  }
}

// ---------------------------------------------------------------------------------------------
// one case

/** Options of {@link predictPrepared}. */
export interface PredictPreparedOptions {
  overlap?: number
  blend?: BlendMode
  tta?: boolean
  swBatch?: number
  onProgress?: (model: number, p: SlidingWindowProgress) => void
  signal?: AbortSignal
}

/** The models' input: a prepared case as a channels-last `[d, h, w, c]` volume (d = nz). */
export function preparedVolume(p: Pick<PreparedCase, 'image' | 'shape' | 'channels'>) {
  return {
    data: p.image,
    shape: [p.shape[2], p.shape[1], p.shape[0]] as [number, number, number],
    channels: p.channels,
  }
}

/**
 * Predict one preprocessed case with one or more models (each `{ predictor, roi }`; ROI =
 * the model's training patch `[d, h, w]`): sliding window per model, mean of the softmax
 * over models, argmax. Returns the class map on the preprocessed grid (i fastest, like
 * `PreparedCase.label`) and the same map on the original image grid.
 */
export async function predictPrepared(
  prepared: PreparedCase,
  models: { predictor: Predictor; roi: [number, number, number] }[],
  opts: PredictPreparedOptions = {},
): Promise<{ preprocessed: Uint8Array; original: Volume; classes: number }> {
  if (models.length === 0)
    throw new DsdError('INFER_NO_MODEL', 'prediction needs at least one model')
  const vol = preparedVolume(prepared)
  let mean: Float32Array | null = null
  let K = 0
  for (let m = 0; m < models.length; m++) {
    const res = await slidingWindowInference(vol, models[m].roi, models[m].predictor, {
      overlap: opts.overlap,
      blend: opts.blend,
      mirror: opts.tta,
      swBatch: opts.swBatch,
      output: 'probabilities',
      signal: opts.signal,
      onProgress: opts.onProgress ? (p) => opts.onProgress!(m, p) : undefined,
    })
    if (!mean) {
      mean = res.data
      K = res.classes
    } else {
      if (res.classes !== K) {
        throw new DsdError(
          'INFER_CLASS_MISMATCH',
          `ensemble: model ${m + 1} predicts ${res.classes} classes but model 1 predicts ${K}; ensemble models trained on the same label map`,
          {},
        )
      }
      for (let i = 0; i < mean.length; i++) mean[i] += res.data[i]
    }
  }
  // The mean's argmax equals the sum's argmax: no division needed.
  const pre = argmaxClasses(mean!, K)
  const original = invertLabelMap(pre, prepared)
  return { preprocessed: pre, original, classes: K }
}

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

// ---------------------------------------------------------------------------------------------
// many cases

/** A model of the ensemble, loaded from a checkpoint or given in memory: what the manifest
 * records of it, plus what running it needs. */
type ModelEntry = PredictionsManifest['models'][number] & {
  inChannels: number
  predictor: Predictor
}

interface CaseJob {
  id: string
  kind: 'dataset' | 'files'
  images: string[]
  label: string | null
  sourceFormat: 'nifti' | 'dicom'
}

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

function cancelled(done: number, total: number): DsdError {
  return new DsdError(
    'CANCELLED',
    `prediction cancelled after ${done} of ${total} cases; the finished cases are written`,
    { done, total },
  )
}

/**
 * Predict many cases with one run, an ensemble of runs (folds) or explicit checkpoints, and
 * write the predictions as NIfTI on each case's original grid (see the module comment).
 */
export async function predictCases(opts: PredictOptions): Promise<PredictResult> {
  const runIds = opts.runIds ?? []
  const which = opts.which ?? 'last'
  if (
    runIds.length === 0 &&
    (opts.checkpoints ?? []).length === 0 &&
    (opts.models ?? []).length === 0
  ) {
    throw new DsdError(
      'INFER_NO_MODEL',
      'predict: give at least one run (--run) or checkpoint (--checkpoint)',
    )
  }
  if (runIds.length && !opts.workspace)
    throw new DsdError(
      'INFER_NO_WORKSPACE',
      'predict: runs need the workspace folder (--workspace)',
    )
  const ws = opts.workspace ? resolve(opts.workspace) : null

  // Run configs and their dataset.
  const runConfigs: RunConfig[] = []
  for (const id of runIds) runConfigs.push(await readRunConfig(ws!, id))
  const datasetId = opts.datasetId ?? runConfigs[0]?.datasetId ?? null
  let manifest: DatasetManifest | null = null
  if (datasetId && ws) manifest = await readManifest(ws, datasetId)
  for (const c of runConfigs) {
    if (manifest && c.datasetId !== manifest.id) {
      throw new DsdError(
        'INFER_DATASET_MISMATCH',
        `run ${c.id} was trained on dataset "${c.datasetId}" but the cases come from "${manifest.id}"; predict each dataset with its own runs`,
        { runId: c.id },
      )
    }
  }

  // Preprocessing: one setting for the whole ensemble.
  const settingsList: { from: string; settings: PreprocessSettings }[] = runConfigs.map((c) => ({
    from: `run ${c.id}`,
    settings: runPreprocessingChecked(c, runFiles(ws!, c.id).config),
  }))
  for (const c of opts.checkpoints ?? [])
    if (typeof c !== 'string' && c.preprocessing)
      settingsList.push({ from: c.path, settings: c.preprocessing })
  for (const m of opts.models ?? [])
    if (m.preprocessing) settingsList.push({ from: m.label, settings: m.preprocessing })
  if (settingsList.length === 0) {
    throw new DsdError(
      'PREPROCESS_SETTINGS_MISSING',
      'predict: a checkpoint without a run needs its preprocessing settings (CheckpointSpec.preprocessing, or --preprocess PRESET)',
    )
  }
  const labelMap: LabelMap | null =
    manifest?.labelMap ??
    (opts.checkpoints ?? [])
      .map((c) => (typeof c === 'string' ? undefined : c.labelMap))
      .find((m) => !!m) ??
    (opts.models ?? []).map((m) => m.labelMap).find((m) => !!m) ??
    null
  const settings = settingsList[0].settings
  const hash = settingsHash(settings, labelMap)
  for (const s of settingsList.slice(1)) {
    if (settingsHash(s.settings, labelMap) !== hash) {
      throw new DsdError(
        'INFER_PREPROCESS_MISMATCH',
        `ensemble: ${s.from} preprocesses differently from ${settingsList[0].from} (${JSON.stringify(s.settings)} vs ${JSON.stringify(settings)}); ensemble only models trained with the same preprocessing`,
        {},
      )
    }
  }

  // Cases.
  const jobs: CaseJob[] = []
  let caseList = opts.cases
  let fold: number | null = runConfigs.length === 1 ? runConfigs[0].fold : null
  if (!caseList || caseList.length === 0) {
    if (runConfigs.length === 0 || !ws || !datasetId) {
      throw new DsdError(
        'INFER_NO_CASES',
        'predict: no cases given; pass case IDs of the dataset or image files',
      )
    }
    const svc = new DatasetService(ws)
    const { split } = await svc.getSplit(datasetId, runConfigs[0].split)
    if (runConfigs.length === 1) {
      const f = split.folds[runConfigs[0].fold]
      if (!f)
        throw new DsdError(
          'SPLIT_FOLD_MISSING',
          `split "${split.name}" has no fold ${runConfigs[0].fold}`,
          {},
        )
      caseList = f.val
    } else if (split.test.length) {
      caseList = split.test
      fold = null
    } else {
      throw new DsdError(
        'INFER_NO_CASES',
        `predict: an ensemble of ${runConfigs.length} runs needs the cases to predict (split "${split.name}" has no test set)`,
      )
    }
  }
  for (const c of caseList) {
    if (typeof c === 'string') {
      if (!manifest)
        throw new DsdError(
          'INFER_NO_DATASET',
          `predict: case "${c}" needs a dataset (a run, or datasetId) — or give image files`,
          { caseId: c },
        )
      const mc = manifest.cases.find((x) => x.id === c)
      if (!mc)
        throw new DsdError(
          'CASE_NOT_FOUND',
          `dataset "${manifest.id}" has no case "${c}"; check the case ID (dsd import lists them)`,
          { caseId: c },
        )
      jobs.push({
        id: safeCaseId(c),
        kind: 'dataset',
        images: mc.images.map((f) => f.path),
        label: mc.label?.path ?? null,
        sourceFormat: 'nifti',
      })
    } else {
      if (!c.images?.length)
        throw new DsdError('INFER_NO_IMAGE', `predict: case "${c.id}" has no image file`, {
          caseId: c.id,
        })
      for (const p of [...c.images, ...(c.label ? [c.label] : [])]) {
        if (!existsSync(p))
          throw new DsdError('FILE_NOT_FOUND', `${p}: no such file or folder (case "${c.id}")`, {
            file: p,
          })
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
    if (ids.has(j.id))
      throw new DsdError('CASE_DUPLICATE', `predict: case "${j.id}" is listed twice`, {
        caseId: j.id,
      })
    ids.add(j.id)
  }

  // Output folder.
  let outDir = opts.outDir ? resolve(opts.outDir) : null
  if (!outDir) {
    if (runConfigs.length !== 1 || (opts.checkpoints ?? []).length || (opts.models ?? []).length) {
      throw new DsdError(
        'INFER_NO_OUTDIR',
        'predict: an ensemble or a checkpoint prediction needs an output folder (--out)',
      )
    }
    outDir = join(runFiles(ws!, runConfigs[0].id).predictions, opts.name ?? which)
  }

  // Inference settings (defaults from the first run's config).
  const inf = runConfigs[0]?.inference
  const overlap = opts.overlap ?? inf?.overlap ?? 0.25
  const blend = opts.blend ?? inf?.blend ?? 'constant'
  const tta = opts.tta ?? inf?.mirror ?? false
  const swBatch = opts.swBatch ?? 1

  // Models.
  const loaded: LoadedModel[] = []
  const models: ModelEntry[] = []
  const add = (m: LoadedModel) => {
    loaded.push(m)
    models.push({
      label: m.label,
      runId: m.runId,
      checkpoint: m.checkpoint,
      sha256: m.checkpointSha256,
      epoch: m.epoch,
      config: m.config,
      patch: [...m.config.patch] as [number, number, number],
      numClasses: m.config.numClasses,
      inChannels: m.config.inChannels,
      predictor: m.predictor,
    })
  }
  try {
    for (const c of runConfigs) {
      const files = runFiles(ws!, c.id)
      const file = await resolveCheckpointFile(
        which === 'best' ? files.bestCheckpoint : files.lastCheckpoint,
      ).catch((err: DsdError) => {
        if (err.code !== 'CHECKPOINT_MISSING') throw err
        throw new DsdError(
          'CHECKPOINT_MISSING',
          which === 'best'
            ? `run ${c.id} has no best checkpoint (${files.bestCheckpoint}): no validated epoch yet; predict with the last checkpoint or let training validate first`
            : `run ${c.id} has no checkpoint yet (${files.lastCheckpoint}); train it first (dsd train / dsd resume)`,
          { runId: c.id, which },
        )
      })
      const fallback: ModelConfig = {
        backbone: c.model.backbone,
        preset: c.model.preset,
        patch: c.model.patch,
        seed: c.seed,
        ...((c.model as { filters?: number[] }).filters
          ? { filters: (c.model as { filters?: number[] }).filters }
          : {}),
        // as the trainer builds it (main/services/trainer.ts)
        ...(manifest
          ? {
              inChannels: Math.max(1, manifest.channels.length),
              numClasses: classCount(manifest.labelMap),
            }
          : {}),
      }
      add(await loadModelFromCheckpoint(file, fallback, `${c.id}/${which}`, c.id))
    }
    for (const c of opts.checkpoints ?? []) {
      const spec = typeof c === 'string' ? { path: c } : c
      const file = await resolveCheckpointFile(spec.path)
      add(await loadModelFromCheckpoint(file, spec.model ?? null, file, null))
    }
    for (const m of opts.models ?? []) {
      models.push({
        label: m.label,
        runId: null,
        checkpoint: null,
        sha256: null,
        epoch: null,
        config: null,
        patch: m.patch,
        numClasses: m.numClasses,
        inChannels: m.inChannels,
        predictor: m.predictor,
      })
    }
    const K = models[0].numClasses
    for (const m of models) {
      if (m.numClasses !== K) {
        throw new DsdError(
          'INFER_CLASS_MISMATCH',
          `ensemble: ${m.label} predicts ${m.numClasses} classes but ${models[0].label} predicts ${K}`,
          {},
        )
      }
    }
    if (labelMap && classCount(labelMap) !== K) {
      throw new DsdError(
        'INFER_CLASS_MISMATCH',
        `${models[0].label}: the model predicts ${K} classes but the dataset's label map has ${classCount(labelMap)}; the label map changed after training — train again or restore the map`,
        {},
      )
    }
    const inChannels = models[0].inChannels
    for (const m of models) {
      if (m.inChannels !== inChannels) {
        throw new DsdError(
          'INFER_CHANNEL_MISMATCH',
          `ensemble: ${m.label} takes ${m.inChannels} channel(s) but ${models[0].label} takes ${inChannels}`,
          {},
        )
      }
    }
    const svc = ws && manifest ? new DatasetService(ws) : null
    const done: PredictedCase[] = []
    const write = async () => {
      const m: PredictionsManifest = {
        format: 'dsd-predictions',
        version: 1,
        createdAt: new Date().toISOString(),
        datasetId: manifest?.id ?? null,
        runIds,
        fold,
        which: runIds.length ? which : null,
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
        settings: { overlap, blend, tta, swBatch },
        preprocessing: settings,
        preprocessingHash: hash,
        labelMap: labelMap ?? {
          classes: Object.fromEntries(
            Array.from({ length: K }, (_, k) => [String(k), k === 0 ? 'background' : `class ${k}`]),
          ),
        },
        classes: K,
        cases: done,
      }
      await atomicWriteJson(join(outDir!, 'predictions.json'), m)
      return m
    }
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]
      if (opts.signal?.aborted) throw cancelled(i, jobs.length)
      const t0 = Date.now()
      const progress = (p: Omit<PredictProgress, 'caseIndex' | 'cases' | 'caseId'>) =>
        opts.onProgress?.({ caseIndex: i, cases: jobs.length, caseId: job.id, ...p })
      progress({ stage: 'load' })
      let prepared: PreparedCase
      if (job.kind === 'dataset')
        prepared = await svc!.loadCase(manifest!.id, job.id, settings, manifest!)
      else {
        const { images, label } = await readFileCase(job)
        prepared = preprocessVolumes(job.id, images, label, settings, labelMap)
      }
      if (prepared.channels !== inChannels) {
        throw new DsdError(
          'INFER_CHANNEL_MISMATCH',
          `${job.images[0]}: case "${job.id}" has ${prepared.channels} channel(s) but the model was trained on ${inChannels}; give one image per training channel`,
          { caseId: job.id },
        )
      }
      const res = await predictPrepared(
        prepared,
        models.map((m) => ({
          predictor: m.predictor,
          roi: m.patch,
        })),
        {
          overlap,
          blend,
          tta,
          swBatch,
          signal: opts.signal,
          onProgress: (model, w) =>
            progress({ stage: 'infer', model, models: models.length, window: w }),
        },
      )
      progress({ stage: 'write' })
      const file = `${job.id}.nii.gz`
      await writeLabelNifti(
        join(outDir, file),
        res.original.data as Uint8Array,
        res.original.shape,
        res.original.affine,
      )
      let preFile: string | null = null
      if (opts.savePreprocessed ?? true) {
        preFile = `preprocessed/${job.id}.nii.gz`
        await writeLabelNifti(
          join(outDir, preFile),
          res.preprocessed,
          prepared.shape,
          prepared.affine,
          'DSD Studio prediction (preprocessed grid)',
        )
      }
      done.push({
        caseId: job.id,
        file,
        preprocessedFile: preFile,
        images: job.images,
        label: job.label,
        sourceFormat: job.sourceFormat,
        shape: res.original.shape,
        affine: res.original.affine,
        preprocessedShape: prepared.shape,
        seconds: (Date.now() - t0) / 1000,
      })
      await write()
      progress({ stage: 'done' })
    }
    const m = await write()
    return { outDir, manifestFile: join(outDir, 'predictions.json'), manifest: m }
  } finally {
    for (const m of loaded) m.model.dispose()
  }
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
