/**
 * What training and prediction read from an imported dataset, below the services: a split
 * checked against the dataset (a pure read), and cases preprocessed through the workspace cache.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { preprocessVolumes, settingsHash, type PreparedCase, type PreprocessSettings } from '../data/preprocess'
import { splitHash, validateSplit, type SplitFile } from '../data/splits'
import { readVolume } from '../data/volume-io'
import { DsdError } from '../errors'
import { readCacheEntry, writeCacheEntry } from './cache'
import type { RunConfig } from '../contract/runs'
import { readManifest, type DatasetManifest } from './datasets'
import { runFiles } from './run-layout'
import { readSplit } from './splits'

/**
 * Read a split of a dataset and check it against the dataset's cases (SPLIT_INVALID lists the
 * problems). Nothing is written: an edited file keeps its stored hash on disk, and `hash` is the
 * hash of what it holds now.
 */
export async function readCheckedSplit(
  workspace: string,
  manifest: DatasetManifest,
  name: string,
): Promise<{ split: SplitFile; hash: string; edited: boolean; file: string }> {
  const { split, hashMatches, file } = await readSplit(workspace, manifest.id, name)
  const groups = Object.fromEntries(Object.entries(manifest.patients).filter(([, v]) => v.length > 1))
  const errors = validateSplit(split, manifest.cases.map((c) => c.id), groups).filter((p) => p.severity === 'error')
  if (errors.length) {
    throw new DsdError(
      'SPLIT_INVALID',
      `${file}: ${errors.length} problem(s): ${errors.slice(0, 3).map((p) => p.message).join('; ')}${errors.length > 3 ? '; …' : ''}`,
      { file, problems: errors },
    )
  }
  return { split, hash: hashMatches ? split.hash : splitHash(split), edited: !hashMatches, file }
}

/**
 * One case preprocessed with `settings`, from the cache when its sources are unchanged;
 * otherwise read (the files must still be the imported ones: FILE_CHANGED), preprocessed and
 * cached.
 */
export async function loadPreparedCase(
  workspace: string,
  manifest: DatasetManifest,
  caseId: string,
  settings: PreprocessSettings,
): Promise<PreparedCase> {
  const c = manifest.cases.find((x) => x.id === caseId)
  if (!c) throw new DsdError('CASE_NOT_FOUND', `dataset "${manifest.id}" has no case "${caseId}"`, { id: manifest.id, caseId })
  const key = settingsHash(settings, manifest.labelMap)
  const sources = [...c.images.map((f) => f.sha256), c.label?.sha256 ?? '']
  const hit = await readCacheEntry(workspace, manifest.id, key, caseId, sources)
  if (hit) return hit
  const files = [...c.images, ...(c.label ? [c.label] : [])]
  const volumes = await Promise.all(files.map((f) => readVolume(f.path)))
  for (const [i, f] of files.entries()) {
    const sha256 = createHash('sha256').update(await readFile(f.path)).digest('hex')
    if (sha256 !== f.sha256) {
      throw new DsdError('FILE_CHANGED', `${f.path}: content changed since import (sha256 differs); re-import the dataset`, { file: f.path, source: volumes[i].source })
    }
  }
  const images = volumes.slice(0, c.images.length)
  const label = c.label ? volumes[c.images.length] : null
  const prepared = preprocessVolumes(caseId, images, label, settings, manifest.labelMap)
  await writeCacheEntry(workspace, manifest.id, key, settings, sources, prepared)
  return prepared
}

/**
 * The split hash a run records: its config's `splitHash` (written when the run is created),
 * else the one its manifest.json recorded when training started (runs created before configs
 * recorded it); null when neither exists (a run that never started has nothing to predict).
 */
export async function recordedSplitHash(workspace: string, cfg: RunConfig): Promise<string | null> {
  if (cfg.splitHash) return cfg.splitHash
  try {
    const m = JSON.parse(await readFile(runFiles(workspace, cfg.id).manifest, 'utf8')) as { split?: { hash?: unknown } }
    return typeof m.split?.hash === 'string' ? m.split.hash : null
  } catch {
    return null
  }
}

/**
 * Refuse a run whose split no longer holds the partition it was trained on (SPLIT_CHANGED,
 * naming both hashes and the fix): its "validation" cases would no longer be the ones it never
 * trained on. Prediction and evaluation call this for every run they use (CLI and app alike).
 */
export async function checkRunSplit(workspace: string, cfg: RunConfig, manifest?: DatasetManifest): Promise<void> {
  const recorded = await recordedSplitHash(workspace, cfg)
  if (!recorded) return
  const ds = manifest ?? (await readManifest(workspace, cfg.datasetId))
  const { hash, file } = await readCheckedSplit(workspace, ds, cfg.split)
  if (hash === recorded) return
  throw new DsdError(
    'SPLIT_CHANGED',
    `run ${cfg.id} was trained on split "${cfg.split}" with hash ${recorded}, but ${file} now holds a different partition (hash ${hash}): fold ${cfg.fold}'s validation cases are no longer the ones this run was validated on, so its predictions and metrics would mix in training cases. Restore the split file the run was trained with, or train new runs on a split with a new name.`,
    { runId: cfg.id, split: cfg.split, file, recorded, current: hash },
  )
}
