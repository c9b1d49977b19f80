/**
 * Split files in the workspace: `datasets/<id>/splits/<name>.json` (see main/data/splits.ts for
 * the format). A split is created once under its name (create-only write: an existing name is
 * never overwritten), read without side effects, rewritten only by an explicit repair, and
 * deleted by moving it to the workspace's trash folder.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isSafeId, SAFE_ID_RULE } from '../contract/ids'
import { DsdError } from '../errors'
import { parseSplitFile, serializeSplit, type SplitFile } from '../data/splits'
import { atomicWriteFile } from './atomic'
import { splitsDir } from './datasets'
import { moveToTrash } from './entries'

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

/** The first of `base`, `base-2`, `base-3`, … that no split of the dataset uses. */
export function freeSplitName(ws: string, datasetId: string, base: string): string {
  let name = base
  for (let n = 2; existsSync(splitPath(ws, datasetId, name)); n++) name = `${base}-${n}`
  return name
}

/**
 * Write a split file atomically. `create` (the default) refuses an existing name with
 * SPLIT_EXISTS; `replace` is for an explicit repair of the same split.
 */
export async function writeSplit(
  ws: string,
  datasetId: string,
  split: SplitFile,
  mode: 'create' | 'replace' = 'create',
): Promise<string> {
  const file = splitPath(ws, datasetId, split.name)
  try {
    await atomicWriteFile(file, serializeSplit(split), { exclusive: mode === 'create' })
  } catch (err) {
    if ((err as DsdError).code !== 'FILE_EXISTS') throw err
    const other = freeSplitName(ws, datasetId, split.name)
    throw new DsdError(
      'SPLIT_EXISTS',
      `dataset "${datasetId}" already has a split "${split.name}" (${file}); runs may have used it, so it is never replaced — create the new split under another name, e.g. "${other}"`,
      { file, name: split.name, suggestion: other },
    )
  }
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
      `${file}: no split "${name}" for dataset "${datasetId}"; create it on the Splits page (Create split)`,
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

/** Move a split file to the workspace's trash folder; returns where it went. */
export async function trashSplit(ws: string, datasetId: string, name: string): Promise<string> {
  const file = splitPath(ws, datasetId, name)
  if (!existsSync(file)) {
    throw new DsdError('SPLIT_NOT_FOUND', `${file}: no split "${name}" for dataset "${datasetId}"; nothing was deleted`, { file })
  }
  return moveToTrash(ws, file, join('splits', datasetId))
}
