/**
 * Split files in the workspace: `datasets/<id>/splits/<name>.json` (see main/data/splits.ts for
 * the format). Files may be edited by hand: reading re-checks the hash and the content.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isSafeId, SAFE_ID_RULE } from '../contract/ids'
import { DsdError } from '../errors'
import { parseSplitFile, serializeSplit, type SplitFile } from '../data/splits'
import { atomicWriteFile } from './atomic'
import { splitsDir } from './datasets'

/** The path of a named split. */
export function splitPath(ws: string, datasetId: string, name: string): string {
  if (!isSafeId(name)) {
    throw new DsdError(
      'SPLIT_NAME_INVALID',
      `split name "${name}" is not allowed: use ${SAFE_ID_RULE}`,
      { name },
    )
  }
  return join(splitsDir(ws, datasetId), `${name}.json`)
}

/** Write a split file atomically (the hash is recomputed). */
export async function writeSplit(ws: string, datasetId: string, split: SplitFile): Promise<string> {
  const file = splitPath(ws, datasetId, split.name)
  await atomicWriteFile(file, serializeSplit(split))
  return file
}

/** Read a split file: its content, and whether the stored hash still matches (false = edited). */
export async function readSplit(
  ws: string,
  datasetId: string,
  name: string,
): Promise<{ split: SplitFile; hashMatches: boolean; file: string }> {
  const file = splitPath(ws, datasetId, name)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    throw new DsdError(
      'SPLIT_NOT_FOUND',
      `${file}: no split "${name}" for dataset "${datasetId}"; create it with \`dsd split ${datasetId} --folds 5 --seed 0\``,
      { file },
    )
  }
  const { split, hashMatches } = parseSplitFile(text, file)
  if (!split.name) split.name = name
  return { split, hashMatches, file }
}

/** Names of the split files of a dataset. */
export async function listSplitNames(ws: string, datasetId: string): Promise<string[]> {
  try {
    return (await readdir(splitsDir(ws, datasetId)))
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -5))
      .sort()
  } catch {
    return []
  }
}
