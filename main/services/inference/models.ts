/**
 * Resolve what a prediction runs: the runs and their dataset, the one preprocessing and label
 * map of the ensemble, and the models — run checkpoints (last or best), explicit checkpoint
 * files or folders, and models already in memory — checked to agree on classes and channels.
 */
import { createHash } from 'node:crypto'
import { statSync } from 'node:fs'
import { open, readdir, readFile, stat } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import type { RunConfig } from '../../contract/runs'
import { classCount, type LabelMap } from '../../data/labels'
import { PREPROCESS_PRESETS, settingsHash, type PreprocessSettings } from '../../data/preprocess'
import { CHECKPOINT_MAGIC, loadCheckpoint } from '../../engine/checkpoint'
import { createModel, type ModelConfig } from '../../engine/model'
import type { Predictor } from '../../engine/sliding-window'
import { tf } from '../../engine/tf'
import { DsdError } from '../../errors'
import { runPreprocessing } from '../../training/run-config'
import { checkRunSplit } from '../../workspace/cases'
import { readManifest, type DatasetManifest } from '../../workspace/datasets'
import { runFiles } from '../../workspace/run-layout'
import { readRunConfig } from '../../workspace/runs'
import type { LoadedModel, ModelEntry, PredictOptions } from './types'

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
export function runPreprocessingChecked(cfg: RunConfig, file: string): PreprocessSettings {
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

/** The runs of a prediction, their dataset, and the preprocessing and label map they share. */
export interface PredictionSource {
  /** Workspace root (null: checkpoints and files only). */
  ws: string | null
  runs: RunConfig[]
  /** The dataset of the cases (the first run's, or `datasetId`), when there is one. */
  manifest: DatasetManifest | null
  settings: PreprocessSettings
  /** settingsHash(settings, labelMap): what the whole ensemble preprocesses with. */
  hash: string
  labelMap: LabelMap | null
}

/**
 * Read the runs and their dataset, and the one preprocessing the ensemble shares (refused when
 * its members were trained with different preprocessing, or on another dataset).
 */
export async function resolveSource(opts: PredictOptions): Promise<PredictionSource> {
  const runIds = opts.runIds ?? []
  if (runIds.length === 0 && (opts.checkpoints ?? []).length === 0 && (opts.models ?? []).length === 0) {
    throw new DsdError('INFER_NO_MODEL', 'predict: give at least one run (--run) or checkpoint (--checkpoint)')
  }
  if (runIds.length && !opts.workspace) throw new DsdError('INFER_NO_WORKSPACE', 'predict: runs need the workspace folder (--workspace)')
  const ws = opts.workspace ? resolve(opts.workspace) : null

  const runs: RunConfig[] = []
  for (const id of runIds) runs.push(await readRunConfig(ws!, id))
  const datasetId = opts.datasetId ?? runs[0]?.datasetId ?? null
  const manifest = datasetId && ws ? await readManifest(ws, datasetId) : null
  for (const c of runs) {
    if (manifest && c.datasetId !== manifest.id) {
      throw new DsdError(
        'INFER_DATASET_MISMATCH',
        `run ${c.id} was trained on dataset "${c.datasetId}" but the cases come from "${manifest.id}"; predict each dataset with its own runs`,
        { runId: c.id },
      )
    }
    await checkRunSplit(ws!, c, manifest ?? undefined)
  }

  // One preprocessing for the whole ensemble.
  const settingsList: { from: string; settings: PreprocessSettings }[] = runs.map((c) => ({
    from: `run ${c.id}`,
    settings: runPreprocessingChecked(c, runFiles(ws!, c.id).config),
  }))
  for (const c of opts.checkpoints ?? [])
    if (typeof c !== 'string' && c.preprocessing) settingsList.push({ from: c.path, settings: c.preprocessing })
  for (const m of opts.models ?? []) if (m.preprocessing) settingsList.push({ from: m.label, settings: m.preprocessing })
  if (settingsList.length === 0) {
    throw new DsdError(
      'PREPROCESS_SETTINGS_MISSING',
      'predict: a checkpoint without a run needs its preprocessing settings (CheckpointSpec.preprocessing, or --preprocess PRESET)',
    )
  }
  const labelMap: LabelMap | null =
    manifest?.labelMap ??
    (opts.checkpoints ?? []).map((c) => (typeof c === 'string' ? undefined : c.labelMap)).find((m) => !!m) ??
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
  return { ws, runs, manifest, settings, hash, labelMap }
}

/** The models of a prediction, loaded; `dispose` frees the ones loaded from checkpoints. */
export interface ResolvedModels {
  models: ModelEntry[]
  /** Classes every model predicts, and channels every model takes. */
  classes: number
  inChannels: number
  dispose(): void
}

/** A run's checkpoint file (`which`), with what to do when there is none. */
async function runCheckpoint(ws: string, c: RunConfig, which: 'last' | 'best'): Promise<string> {
  const files = runFiles(ws, c.id)
  return resolveCheckpointFile(which === 'best' ? files.bestCheckpoint : files.lastCheckpoint).catch((err: DsdError) => {
    if (err.code !== 'CHECKPOINT_MISSING') throw err
    throw new DsdError(
      'CHECKPOINT_MISSING',
      which === 'best'
        ? `run ${c.id} has no best checkpoint (${files.bestCheckpoint}): no validated epoch yet; predict with the last checkpoint or let training validate first`
        : `run ${c.id} has no checkpoint yet (${files.lastCheckpoint}); train it first (dsd train / dsd resume)`,
      { runId: c.id, which },
    )
  })
}

/** Load the runs' checkpoints, the explicit checkpoints and the in-memory models, and check they agree. */
export async function resolveModels(opts: PredictOptions, src: PredictionSource, which: 'last' | 'best'): Promise<ResolvedModels> {
  const loaded: LoadedModel[] = []
  const models: ModelEntry[] = []
  const dispose = () => {
    for (const m of loaded) m.model.dispose()
  }
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
    for (const c of src.runs) {
      const file = await runCheckpoint(src.ws!, c, which)
      // The model as the training loop builds it (main/training/loop.ts).
      const fallback: ModelConfig = {
        backbone: c.model.backbone,
        preset: c.model.preset,
        patch: c.model.patch,
        seed: c.seed,
        ...(c.model.filters ? { filters: c.model.filters } : {}),
        ...(src.manifest
          ? { inChannels: Math.max(1, src.manifest.channels.length), numClasses: classCount(src.manifest.labelMap) }
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
        throw new DsdError('INFER_CLASS_MISMATCH', `ensemble: ${m.label} predicts ${m.numClasses} classes but ${models[0].label} predicts ${K}`, {})
      }
    }
    if (src.labelMap && classCount(src.labelMap) !== K) {
      throw new DsdError(
        'INFER_CLASS_MISMATCH',
        `${models[0].label}: the model predicts ${K} classes but the dataset's label map has ${classCount(src.labelMap)}; the label map changed after training — train again or restore the map`,
        {},
      )
    }
    const inChannels = models[0].inChannels
    for (const m of models) {
      if (m.inChannels !== inChannels) {
        throw new DsdError('INFER_CHANNEL_MISMATCH', `ensemble: ${m.label} takes ${m.inChannels} channel(s) but ${models[0].label} takes ${inChannels}`, {})
      }
    }
    return { models, classes: K, inChannels, dispose }
  } catch (err) {
    dispose()
    throw err
  }
}
