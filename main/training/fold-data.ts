/** The cases one run trains and validates on: its fold of its split, preprocessed. */
import type { RunConfig } from '../contract/runs'
import { classCount } from '../data/labels'
import type { PreparedCase } from '../data/preprocess'
import { DsdError } from '../errors'
import { loadPreparedCase, readCheckedSplit } from '../workspace/cases'
import { manifestHash, readManifest } from '../workspace/datasets'
import { runPreprocessing } from './run-config'

/** Training and validation cases of one fold, preprocessed. */
export interface FoldData {
  train: PreparedCase[]
  val: PreparedCase[]
  inChannels: number
  numClasses: number
  /** Of the dataset manifest and of the split as read (recorded in the run manifest). */
  datasetHash: string
  splitHash: string
}

/** Load and preprocess (through the workspace cache) the cases of the run's fold. */
export async function loadFoldData(workspace: string, cfg: RunConfig, onCase?: (done: number, total: number) => void): Promise<FoldData> {
  const manifest = await readManifest(workspace, cfg.datasetId)
  const { split, hash } = await readCheckedSplit(workspace, manifest, cfg.split)
  const fold = split.folds[cfg.fold]
  if (!fold) {
    throw new DsdError('RUN_FOLD_MISSING', `split "${cfg.split}" of dataset "${cfg.datasetId}" has ${split.folds.length} folds; fold ${cfg.fold} does not exist (folds are numbered from 0)`, {})
  }
  const settings = runPreprocessing(cfg)
  const ids = [...fold.train, ...fold.val]
  const loaded = new Map<string, PreparedCase>()
  let done = 0
  for (const id of ids) {
    loaded.set(id, await loadPreparedCase(workspace, manifest, id, settings))
    onCase?.(++done, ids.length)
  }
  return {
    train: fold.train.map((id) => loaded.get(id)!),
    val: fold.val.map((id) => loaded.get(id)!),
    inChannels: Math.max(1, manifest.channels.length),
    numClasses: classCount(manifest.labelMap),
    datasetHash: manifestHash(manifest),
    splitHash: hash,
  }
}
