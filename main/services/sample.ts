/**
 * The bundled sample dataset (resources/sample/hippocampus, 40 MSD hippocampus cases): imported
 * into the workspace on first start, so the app has something to show and train on.
 */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { projectRoot } from '../version'
import { createDatasetService } from './datasets'

/** Where the sample lives: next to the sources, or in a packaged app's resources folder. */
export function samplePath(): string | null {
  const candidates = [
    join(projectRoot(), 'resources', 'sample', 'hippocampus'),
    ...((process as { resourcesPath?: string }).resourcesPath
      ? [join((process as { resourcesPath?: string }).resourcesPath!, 'sample', 'hippocampus')]
      : []),
  ]
  return candidates.find((p) => existsSync(join(p, 'dataset.json'))) ?? null
}

/** Import the sample unless a dataset from that folder is already in the workspace. */
export async function ensureSampleDataset(workspace: string): Promise<{ datasetId: string; imported: boolean } | null> {
  const path = samplePath()
  if (!path) return null
  const datasets = createDatasetService(workspace)
  const existing = (await datasets.listDatasets()).datasets.find((d) => resolve(d.source) === resolve(path))
  if (existing) return { datasetId: existing.id, imported: false }
  const r = await datasets.importDataset(path, { name: 'hippocampus-sample' })
  return { datasetId: r.manifest.id, imported: true }
}
