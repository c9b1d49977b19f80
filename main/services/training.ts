/**
 * The training service: turns a run form (one run, or folds × variants) into run folders. Used
 * by the app's `runs.create` and by `dsd train`; the form → config step is
 * main/training/run-config.ts, the same for both.
 */
import { existsSync } from 'node:fs'
import type { RunConfig, RunFormInput } from '../contract/runs'
import { DsdError } from '../errors'
import { runConfigs } from '../training/run-config'
import { runFiles } from '../workspace/run-layout'
import { createRun, validateRunConfig } from '../workspace/runs'
import { createDatasetService } from './datasets'

/**
 * Create the run folders of a form, in queue order. Every config is checked and no id may exist
 * before the first folder is written, so a refused form writes nothing.
 */
export async function createRuns(workspace: string, form: RunFormInput): Promise<RunConfig[]> {
  const datasets = createDatasetService(workspace)
  await datasets.assertReadable(form.datasetId) // DATASET_UNREADABLE_CASES names them
  const { split } = await datasets.getSplit(form.datasetId, form.split)
  // The split's hash as it is now (an edited file: its content's), recorded in each config.
  const configs = runConfigs(form, split.folds.length).map((c) => validateRunConfig({ ...c, splitHash: split.hash }, `run ${c.id}`))
  for (const c of configs) {
    if (existsSync(runFiles(workspace, c.id).config)) {
      throw new DsdError('RUN_EXISTS', `Run ${c.id} already exists (${runFiles(workspace, c.id).dir}); pick another name or resume it.`, { runId: c.id })
    }
  }
  const out: RunConfig[] = []
  for (const c of configs) out.push(await createRun(workspace, c))
  return out
}
