/**
 * Where prediction sets live in a workspace and how they are found (read-only):
 *
 *   runs/<runId>/predictions/<set>/predictions.json   one run (`dsd predict --run`)
 *   predictions/<name>/predictions.json               an ensemble (`dsd predict … --out
 *                                                      <workspace>/predictions/<name>`)
 *
 * and which evaluated metric tables belong to a set: `dsd evaluate --run` writes
 * `runs/<runId>/metrics/<name>.json`, `dsd evaluate --dir` writes `<set>/metrics/<name>.json`;
 * a table belongs to the set whose folder is its only `predictionsDirs` entry.
 */
import { existsSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join, resolve, sep } from 'node:path'
import { isSafeId, SAFE_ID_RULE } from '../contract/ids'
import type { PredictionSetRef } from '../contract/review'
import { DsdError } from '../errors'
import { runFiles } from '../workspace/run-layout'
import type { EvaluationTable } from './evaluation'
import type { PredictionsManifest } from './inference'


function checkId(what: string, v: string): void {
  if (!isSafeId(v)) {
    throw new DsdError('VALIDATION', `"${v}" is not a valid ${what} (${SAFE_ID_RULE}).`, {
      [what]: v,
    })
  }
}

/** The ensembles folder of a workspace. */
export const ensemblesDir = (workspace: string) => join(workspace, 'predictions')

/** The folder of a prediction set (ids checked; nothing is read). */
export function setDir(workspace: string, ref: PredictionSetRef): string {
  if (ref.kind === 'run') {
    checkId('runId', ref.runId)
    checkId('set', ref.set)
    return join(runFiles(workspace, ref.runId).predictions, ref.set)
  }
  checkId('name', ref.name)
  return join(ensemblesDir(workspace), ref.name)
}

/** `run:<runId>/<set>` or `ensemble:<name>`. */
export function setKey(ref: PredictionSetRef): string {
  return ref.kind === 'run' ? `run:${ref.runId}/${ref.set}` : `ensemble:${ref.name}`
}

async function subdirs(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory() && isSafeId(e.name)) out.push(e.name)
  }
  return out.sort()
}

/** Every folder of the workspace that holds a `predictions.json`. */
export async function findPredictionSets(workspace: string): Promise<PredictionSetRef[]> {
  const refs: PredictionSetRef[] = []
  for (const runId of await subdirs(join(workspace, 'runs'))) {
    const preds = runFiles(workspace, runId).predictions
    for (const set of await subdirs(preds)) {
      if (existsSync(join(preds, set, 'predictions.json'))) refs.push({ kind: 'run', runId, set })
    }
  }
  for (const name of await subdirs(ensemblesDir(workspace))) {
    if (existsSync(join(ensemblesDir(workspace), name, 'predictions.json'))) {
      refs.push({ kind: 'ensemble', name })
    }
  }
  return refs
}

/** Read a set's manifest (throws PREDICTIONS_NOT_FOUND / PREDICTIONS_CORRUPT with the file). */
export async function readSet(
  workspace: string,
  ref: PredictionSetRef,
): Promise<{ dir: string; manifest: PredictionsManifest }> {
  const dir = setDir(workspace, ref)
  if (!existsSync(join(dir, 'predictions.json'))) {
    const hint =
      ref.kind === 'run'
        ? `run \`dsd predict --run ${ref.runId}${ref.set === 'last' ? '' : ` --name ${ref.set}`}\` first`
        : `predict into it with \`dsd predict … --out ${dir}\` first`
    throw new DsdError(
      'PREDICTIONS_NOT_FOUND',
      `${dir}: no predictions.json there; ${hint}`,
      { set: setKey(ref) },
      ref.kind === 'run'
        ? `${dir}: no predictions there; choose "Predict validation cases" for run ${ref.runId} on the Training page first`
        : `${dir}: no predictions there; predict into it first`,
    )
  }
  const { readPredictionsManifest } = await import('./inference')
  return { dir, manifest: await readPredictionsManifest(dir) }
}

/** A metric table file with the table read from it. */
export interface TableFile {
  file: string
  name: string
  table: EvaluationTable
}

function sameFolder(a: string, b: string): boolean {
  return resolve(a) === resolve(b)
}

/**
 * The evaluated tables of a set (newest first). Tables that cannot be read are skipped: the
 * metrics of a set are optional, and `dsd evaluate` rewrites a damaged one.
 */
export async function setTables(workspace: string, ref: PredictionSetRef, dir: string): Promise<TableFile[]> {
  const folders = [join(dir, 'metrics')]
  if (ref.kind === 'run') folders.push(runFiles(workspace, ref.runId).metrics)
  const suffix = ref.kind === 'run' ? `${sep}${join('runs', ref.runId, 'predictions', ref.set)}` : null
  const { readTable } = await import('./evaluation')
  const out: TableFile[] = []
  for (const folder of folders) {
    if (!existsSync(folder)) continue
    for (const f of (await readdir(folder)).sort()) {
      if (!f.endsWith('.json')) continue
      const file = join(folder, f)
      if (!(await stat(file)).isFile()) continue
      let table: EvaluationTable
      try {
        table = await readTable(file)
      } catch {
        continue
      }
      const dirs = table.predictionsDirs ?? []
      // The set's own table: it scored exactly this folder (also after the workspace moved).
      const mine =
        dirs.length === 1 &&
        (sameFolder(dirs[0], dir) || (suffix !== null && resolve(dirs[0]).endsWith(suffix)))
      if (mine) out.push({ file, name: f.slice(0, -'.json'.length), table })
    }
  }
  out.sort((a, b) => (a.table.createdAt < b.table.createdAt ? 1 : a.table.createdAt > b.table.createdAt ? -1 : 0))
  // The same name in both folders: the newer one wins.
  const seen = new Set<string>()
  return out.filter((t) => !seen.has(t.name) && seen.add(t.name))
}
