/**
 * The app's export: chosen prediction sets (runs' `predictions/<set>` or ensembles), folds,
 * cases and formats written into ONE new folder `<workspace>/exports/<name>/` by the `export`
 * job kind (registered in jobs.ts):
 *
 *   exports/<name>/
 *     export.json                 what was asked, written and not available (and why)
 *     report.html                 the HTML report (report.ts) with the example slices
 *     masks/<case>.nii.gz …       one set: masks (export.ts), metrics (evaluation.ts)
 *     metrics/<set>-<grid>.csv …
 *     <run>/masks/…, <run>/metrics/…   several sets: one folder each
 *
 * Nothing half-written: the folder is built in a hidden staging folder and renamed into place
 * when complete (workspace/entries.ts `createEntry`; every file inside goes through the atomic
 * writer); a cancel or a failure removes the staging folder. The folder name is a safe id
 * (contract/ids.ts), so a request cannot name a path outside `exports/`.
 *
 * Metrics: a set's stored table (what `dsd evaluate` wrote) when it covers the request (every
 * case, the chosen grid, newer than the predictions); otherwise the set is evaluated here, with
 * the same function `dsd evaluate` uses, and the table is written into the export only.
 */
import { existsSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import type { ExportParams, ExportResult } from '../contract/export'
import { ExportRequest } from '../contract/export'
import { toSafeId } from '../contract/ids'
import type { PredictionSetRef } from '../contract/review'
import { DsdError } from '../errors'
import type { JobKind } from '../jobs/system'
import { resolveInside } from '../safe-path'
import { atomicWriteJson } from '../workspace/atomic'
import { checkRunSplit } from '../workspace/cases'
import { runFiles } from '../workspace/run-layout'
import { readRunConfig } from '../workspace/runs'
import { createEntry } from '../workspace/entries'
import { sweepOnce } from '../workspace/sweep'
import { combineTables, evaluatePredictions, writeTable, type EvaluationTable } from './evaluation'
import { exportPredictions, type MaskFormat } from './export'
import type { PredictionsManifest } from './inference'
import { readSet, setKey, setTables } from './prediction-sets'
import { loadReportRun, writeReport } from './report'
import { reportSlices } from './report-slices'

/** The exports folder of a workspace. */
export const exportsDir = (workspace: string) => join(workspace, 'exports')

/** What a person reads for a set: `<runId> · <set>` or the ensemble's name. */
export function setTitle(ref: PredictionSetRef): string {
  return ref.kind === 'run' ? `${ref.runId} · ${ref.set}` : ref.name
}

/** One chosen set, read. */
interface ChosenSet {
  ref: PredictionSetRef
  key: string
  title: string
  dir: string
  manifest: PredictionsManifest
  cases: string[]
  /** Its folder inside the export ('' when it is the only set). */
  folder: string
}

/** Progress and cancel of an export (the job's context, or nothing in a script). */
export interface ExportHooks {
  signal?: AbortSignal
  progress?: (done: number, total: number, message: string) => void
}

function cancelled(done: number, total: number): DsdError {
  return new DsdError(
    'CANCELLED',
    `export cancelled after ${done} of ${total} files; nothing was written (the unfinished folder was removed)`,
    { done, total },
  )
}

async function listFiles(root: string, dir = root): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await listFiles(root, p)))
    else if (e.isFile()) out.push(relative(root, p).split(sep).join('/'))
  }
  return out.sort()
}

/** The chosen sets, read, filtered by fold and case, each with its folder in the export. */
async function chooseSets(workspace: string, p: ExportParams): Promise<ChosenSet[]> {
  const seen = new Set<string>()
  let sets: ChosenSet[] = []
  for (const ref of p.sets) {
    const key = setKey(ref)
    if (seen.has(key)) continue
    seen.add(key)
    const { dir, manifest } = await readSet(workspace, ref)
    sets.push({
      ref,
      key,
      title: setTitle(ref),
      dir,
      manifest,
      cases: manifest.cases.map((c) => c.caseId),
      folder: '',
    })
  }
  if (p.folds) {
    const folds = new Set(p.folds)
    const kept = sets.filter((s) => s.manifest.fold !== null && folds.has(s.manifest.fold))
    if (!kept.length) {
      throw new DsdError(
        'EXPORT_NOTHING',
        `None of the chosen prediction sets is of fold ${p.folds.join(', ')} (${sets.map((s) => `${s.title}: fold ${s.manifest.fold ?? 'none'}`).join('; ')}); choose other folds or sets`,
        {},
      )
    }
    sets = kept
  }
  if (p.cases) {
    const wanted = new Set(p.cases)
    for (const id of wanted) {
      if (!sets.some((s) => s.cases.includes(id))) {
        throw new DsdError(
          'CASE_NOT_FOUND',
          `Case "${id}" is in none of the chosen prediction sets; predict it first or leave it out`,
          {
            caseId: id,
          },
        )
      }
    }
    for (const s of sets) s.cases = s.cases.filter((c) => wanted.has(c))
    sets = sets.filter((s) => s.cases.length > 0)
  }
  if (p.formats.includes('metrics') || p.formats.includes('report')) {
    // Metrics of a run whose split changed would count training cases as validation cases.
    const runIds = new Set(
      sets.flatMap((s) => (s.ref.kind === 'run' ? [s.ref.runId] : s.manifest.runIds)),
    )
    for (const runId of runIds) {
      if (existsSync(runFiles(workspace, runId).config))
        await checkRunSplit(workspace, await readRunConfig(workspace, runId))
    }
  }
  if (sets.length > 1) {
    const used = new Set<string>()
    for (const s of sets) {
      const base = toSafeId(
        s.ref.kind === 'run'
          ? s.ref.set === 'last'
            ? s.ref.runId
            : `${s.ref.runId}-${s.ref.set}`
          : `ensemble-${s.ref.name}`,
        'set',
      )
      let name = base
      for (let n = 2; used.has(name); n++) name = `${base}-${n}`
      used.add(name)
      s.folder = name
    }
  }
  return sets
}

/**
 * Check a request before its job is queued (the sets exist and hold the chosen cases and folds,
 * the folder name is free), so the person who asked gets the error at once.
 */
export async function checkExport(workspace: string, request: ExportParams): Promise<void> {
  const sets = await chooseSets(workspace, ExportRequest.parse(request))
  if (!sets.length)
    throw new DsdError(
      'EXPORT_NOTHING',
      'Nothing to export: no chosen set has any of the chosen cases.',
      {},
    )
  if (request.name && existsSync(join(exportsDir(workspace), request.name))) {
    throw new DsdError(
      'ENTRY_EXISTS',
      `An export named "${request.name}" exists in ${exportsDir(workspace)}; choose another name`,
      {
        name: request.name,
      },
    )
  }
}

/** The default folder name: the first set and the time, e.g. `hippo-DSD-fold0-20261129-221503`. */
function defaultName(workspace: string, sets: ChosenSet[]): string {
  const t = new Date().toISOString()
  const stamp = `${t.slice(0, 10).replace(/-/g, '')}-${t.slice(11, 19).replace(/:/g, '')}`
  const first = sets[0].ref.kind === 'run' ? sets[0].ref.runId : sets[0].ref.name
  const base =
    toSafeId(
      `${first}${sets.length > 1 ? `-and-${sets.length - 1}` : ''}`.slice(0, 100),
      'export',
    ) + `-${stamp}`
  let name = base
  for (let n = 2; existsSync(join(exportsDir(workspace), name)); n++) name = `${base}-${n}`
  return name
}

/** A set's metrics table: the stored one when it covers the request, else evaluated now. */
async function tableOf(
  workspace: string,
  s: ChosenSet,
  p: ExportParams,
  signal: AbortSignal | undefined,
): Promise<{ table: EvaluationTable; name: string }> {
  const name = `${s.ref.kind === 'run' ? s.ref.set : s.ref.name}-${p.grid}`
  const all = s.cases.length === s.manifest.cases.length
  if (all) {
    const stored = (await setTables(workspace, s.ref, s.dir)).find(
      (t) => t.table.grid === p.grid && t.table.createdAt >= s.manifest.createdAt,
    )
    if (stored) return { table: stored.table, name }
  }
  const table = await evaluatePredictions(s.dir, {
    workspace,
    grid: p.grid,
    cases: all ? undefined : s.cases,
    name,
    signal,
  })
  return { table, name }
}

/**
 * Export prediction sets into `<workspace>/exports/<name>/` (see the module comment). Progress
 * counts files (masks, metric tables, the report); the answer says where everything went.
 */
export async function runExport(
  workspace: string,
  request: ExportParams,
  hooks: ExportHooks = {},
): Promise<ExportResult> {
  const p = ExportRequest.parse(request)
  const { signal } = hooks
  await sweepOnce(workspace) // staging folders a killed export left
  const sets = await chooseSets(workspace, p)
  if (!sets.length)
    throw new DsdError(
      'EXPORT_NOTHING',
      'Nothing to export: no chosen set has any of the chosen cases.',
      {},
    )
  const maskFormats = p.formats.filter((f): f is MaskFormat => f === 'nifti' || f === 'dicom-seg')
  const wantMetrics = p.formats.includes('metrics')
  const wantReport = p.formats.includes('report')
  const total =
    sets.reduce((n, s) => n + s.cases.length * maskFormats.length + (wantMetrics ? 1 : 0), 0) +
    (wantReport ? 1 : 0)
  let done = 0
  const tell = (message: string) => hooks.progress?.(done, total, message)
  const name = p.name ?? defaultName(workspace, sets)
  const parent = exportsDir(workspace)
  const unavailable: ExportResult['unavailable'] = []
  tell('starting')
  try {
    const files = await createEntry(
      parent,
      name,
      async (stage) => {
        const tables: { set: ChosenSet; table: EvaluationTable }[] = []
        for (const s of sets) {
          const root = join(stage, s.folder)
          if (maskFormats.length) {
            const before = done
            const r = await exportPredictions(s.dir, join(root, 'masks'), {
              formats: maskFormats,
              values: p.values,
              cases: s.cases,
              signal,
              onProgress: (k, n, caseId) => {
                done = before + k * maskFormats.length
                tell(`${s.title} · ${caseId} (${k} of ${n} cases)`)
              },
            })
            for (const u of r.unavailable) unavailable.push({ set: s.key, ...u })
          }
          if (wantMetrics || wantReport) {
            if (signal?.aborted) throw cancelled(done, total)
            tell(`${s.title} · metrics`)
            const { table, name: tableName } = await tableOf(workspace, s, p, signal)
            tables.push({ set: s, table })
            if (wantMetrics) {
              await writeTable(table, join(root, 'metrics'), tableName)
              done++
              tell(`${s.title} · metrics ${tableName}.csv`)
            }
          }
        }
        if (wantReport) {
          if (signal?.aborted) throw cancelled(done, total)
          tell('report.html (example slices)')
          const runIds = [
            ...new Set(
              sets.flatMap((s) => (s.ref.kind === 'run' ? [s.ref.runId] : s.manifest.runIds)),
            ),
          ]
          const runs = []
          for (const id of runIds) {
            try {
              runs.push(await loadReportRun(workspace, id))
            } catch {
              // a run folder that is gone (an ensemble's member deleted): the report goes on without it
            }
          }
          const table =
            tables.length === 1
              ? tables[0].table
              : combineTables(
                  tables.map((t) => t.table),
                  sets.map((s) => s.title).join(' + '),
                )
          const slices = await reportSlices(
            tables.map((t) => ({
              title: t.set.title,
              dir: t.set.dir,
              manifest: t.set.manifest,
              table: t.table,
            })),
            signal,
          )
          await writeReport(join(stage, 'report.html'), {
            title: p.title ?? `DSD Studio export: ${sets.map((s) => s.title).join(', ')}`,
            runs,
            table,
            slices,
          })
          done++
          tell('report.html')
        }
        if (signal?.aborted) throw cancelled(done, total)
        await atomicWriteJson(join(stage, 'export.json'), {
          format: 'dsd-export-bundle',
          version: 1,
          createdAt: new Date().toISOString(),
          formats: p.formats,
          values: p.values,
          grid: p.grid,
          sets: sets.map((s) => ({
            key: s.key,
            title: s.title,
            folder: s.folder || '.',
            predictions: s.dir,
            cases: s.cases,
          })),
          unavailable,
        })
        return listFiles(stage)
      },
      'export',
    )
    return {
      name,
      folder: join(parent, name),
      files,
      sets: sets.map((s) => ({
        key: s.key,
        title: s.title,
        folder: s.folder || '.',
        cases: s.cases.length,
      })),
      unavailable,
    }
  } catch (err) {
    if ((err as DsdError).code === 'CANCELLED' || signal?.aborted) throw cancelled(done, total)
    throw err
  }
}

/**
 * The `export` job kind: on the io queue (it starts at once), cancellable; `runExport` runs in
 * a worker thread so a large export (CT volumes) does not hold up the main side.
 */
export function exportKind(
  /** Runs the export off the main thread (services/jobs.ts: the inference worker). */
  runInWorker: (request: ExportParams, ctx: Parameters<JobKind['run']>[1]) => Promise<ExportResult>,
): JobKind<ExportParams, ExportResult> {
  return {
    name: 'export',
    params: ExportRequest,
    queue: 'io',
    label: (p) =>
      `Export ${setTitle(p.sets[0])}${p.sets.length > 1 ? ` and ${p.sets.length - 1} more` : ''}`,
    subject: (p) => p.name ?? null,
    run: runInWorker,
  }
}

/**
 * The folder of an export by name (`export.open`): inside `exports/`, existing, a folder.
 * Throws EXPORT_NOT_FOUND otherwise.
 */
export async function exportFolder(workspace: string, name: string): Promise<string> {
  const folder = resolveInside(exportsDir(workspace), encodeURIComponent(name))
  const s = await stat(folder).catch(() => null)
  if (!s?.isDirectory()) {
    throw new DsdError(
      'EXPORT_NOT_FOUND',
      `No export "${name}" in ${exportsDir(workspace)}; export again`,
      { name },
    )
  }
  return folder
}

/** `export.open`: show an export's folder with `openFolder` (Electron), or answer its path only. */
export async function openExport(
  workspace: string,
  name: string,
  openFolder?: (folder: string) => Promise<string>,
): Promise<{ opened: boolean; folder: string; reason?: string }> {
  const folder = await exportFolder(workspace, name)
  if (!openFolder)
    return {
      opened: false,
      folder,
      reason: 'this window cannot open folders (browser mode): the path is shown instead',
    }
  const error = await openFolder(folder)
  return error ? { opened: false, folder, reason: error } : { opened: true, folder }
}
