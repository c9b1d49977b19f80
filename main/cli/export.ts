/**
 * `dsd export`: prediction masks (NIfTI, DICOM SEG), metrics CSV and the HTML report of a run,
 * of folds, or of a comparison (see docs/inference.md).
 */
import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import {
  combineTables,
  compareTables,
  evaluateRun,
  readTable,
  writeTable,
  type EvaluationTable,
} from '../services/evaluation'
import { exportFiles, exportPredictions, type MaskFormat } from '../services/export'
import { readPredictionsManifest } from '../services/inference'
import { loadReportRun, writeReport } from '../services/report'
import { reportSlices, type ReportSlice } from '../services/report-slices'
import { runFiles } from '../workspace/run-layout'
import { workspaceRoot } from '../services/workspace-root'
import { CliError, SOURCE_OPTIONS, parse, printJson } from './args'

export const summary =
  'Export masks (NIfTI, DICOM SEG), metrics CSV and a self-contained HTML report'
export const usage = `Usage:
  dsd export --run ID --out DIR [--masks] [--metrics] [--report] [options]
  dsd export --dir PREDICTIONS_DIR --out DIR [--format nifti,dicom-seg] [--values classes|source]
  dsd export --report --a RUN[,RUN…] --b RUN[,RUN…] --out DIR      comparison report

  --masks                export the run's predictions (default when nothing else is asked)
  --format LIST          nifti (default) and/or dicom-seg (only for cases predicted from a
                         DICOM series; others are listed as "not available" with the reason)
  --values classes|source
                         class indices 0..K−1 (default) or the values the dataset's label
                         files store (e.g. MMWHS 205, 420, …)
  --metrics              copy the run's metrics tables (runs/<id>/metrics/*.csv, *.json)
  --report               write report.html: config, learning curves, summaries, box plots,
                         per-case table (and the comparison with --a/--b), and one slice of
                         image + ground truth + prediction for the worst and the median case
                         (side a of a comparison); evaluates first when the run has no
                         metrics table yet
  --predictions NAME     the runs' predictions sub-folder (default last)
  --grid original|preprocessed   grid of the metrics in the report (default original)
  --title TEXT           report title
  --workspace DIR        the workspace (default: DSD_WORKSPACE or the user-data folder)
  --json                 print what was written as JSON

Without --out, --report writes runs/<id>/report.html.`

async function tableFor(
  ws: string,
  runId: string,
  pred: string,
  grid: 'original' | 'preprocessed',
): Promise<EvaluationTable> {
  const name = `${pred}-${grid}`
  const file = join(runFiles(ws, runId).metrics, `${name}.json`)
  if (existsSync(file)) return readTable(file)
  const t = await evaluateRun(ws, runId, { predictions: pred, grid, name })
  await writeTable(t, runFiles(ws, runId).metrics, name)
  return t
}

/** The report's example slices (worst and median case) over the runs' predictions. */
async function slicesFor(
  ws: string,
  ids: string[],
  tables: EvaluationTable[],
  pred: string,
): Promise<ReportSlice[]> {
  const sources = await Promise.all(
    ids.map(async (id, i) => {
      const dir = join(runFiles(ws, id).predictions, pred)
      return { title: `${id} · ${pred}`, dir, manifest: await readPredictionsManifest(dir), table: tables[i] }
    }),
  )
  return reportSlices(sources)
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      ...SOURCE_OPTIONS,
      out: { type: 'string' },
      masks: { type: 'boolean' },
      format: { type: 'string' },
      values: { type: 'string' },
      metrics: { type: 'boolean' },
      report: { type: 'boolean' },
      title: { type: 'string' },
    },
    false,
  )
  const formats = (values.format ?? 'nifti').split(',').map((s) => s.trim()) as MaskFormat[]
  for (const f of formats)
    if (f !== 'nifti' && f !== 'dicom-seg')
      throw new CliError(`--format: unknown format "${f}"; use nifti and/or dicom-seg`)
  const valuesMode = values.values ?? 'classes'
  if (valuesMode !== 'classes' && valuesMode !== 'source')
    throw new CliError(`--values must be classes or source, got "${valuesMode}"`)
  const grid = values.grid ?? 'original'
  if (grid !== 'original' && grid !== 'preprocessed')
    throw new CliError(`--grid must be original or preprocessed, got "${grid}"`)
  const pred = values.predictions ?? 'last'
  const written: string[] = []
  const notes: string[] = []

  if (values.dir) {
    if (!values.out) throw new CliError('--dir needs --out DIR')
    const r = await exportPredictions(values.dir, values.out, { formats, values: valuesMode })
    written.push(...r.files)
    for (const u of r.unavailable) notes.push(`${u.caseId} ${u.format}: ${u.reason}`)
  } else if (values.a || values.b) {
    if (!values.a || !values.b) throw new CliError('a comparison report needs both --a and --b')
    if (!values.out) throw new CliError('a comparison report needs --out DIR')
    const ws = workspaceRoot(values.workspace)
    const aTables: EvaluationTable[] = []
    const side = async (ids: string[], keep?: EvaluationTable[]) => {
      const tables = await Promise.all(ids.map((id) => tableFor(ws, id, pred, grid)))
      keep?.push(...tables)
      return tables.length === 1 ? tables[0] : combineTables(tables, ids.join('+'))
    }
    const aIds = values.a
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
    const bIds = values.b
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
    const a = { ...(await side(aIds, aTables)), name: aIds.join('+') }
    const b = { ...(await side(bIds)), name: bIds.join('+') }
    const result = compareTables(a, b)
    const runs = await Promise.all([...aIds, ...bIds].map((id) => loadReportRun(ws, id)))
    const file = join(resolve(values.out), 'report.html')
    await writeReport(file, {
      title: values.title ?? `${a.name} vs ${b.name}`,
      runs,
      table: a,
      comparison: { b, result },
      slices: await slicesFor(ws, aIds, aTables, pred),
    })
    written.push(file)
  } else {
    const ids = values.run ?? []
    if (!ids.length)
      throw new CliError('give --run ID, --dir PREDICTIONS_DIR, or --a/--b (see --help)')
    const ws = workspaceRoot(values.workspace)
    const masks = values.masks || (!values.metrics && !values.report)
    if ((masks || values.metrics) && !values.out)
      throw new CliError('exporting masks or metrics needs --out DIR')
    for (const id of ids) {
      const sub = ids.length > 1 ? join(resolve(values.out ?? '.'), id) : resolve(values.out ?? '.')
      if (masks) {
        const r = await exportPredictions(
          join(runFiles(ws, id).predictions, pred),
          join(sub, 'masks'),
          { formats, values: valuesMode },
        )
        written.push(...r.files)
        for (const u of r.unavailable) notes.push(`${u.caseId} ${u.format}: ${u.reason}`)
      }
      if (values.metrics) {
        const dir = runFiles(ws, id).metrics
        const files = existsSync(dir)
          ? (await readdir(dir)).filter((f) => /\.(csv|json)$/.test(f)).map((f) => join(dir, f))
          : []
        if (!files.length)
          throw new CliError(
            `run ${id} has no metrics yet; run \`dsd evaluate --run ${id}\` first`,
            1,
          )
        written.push(...(await exportFiles(files, join(sub, 'metrics'))))
      }
    }
    if (values.report) {
      const tables = await Promise.all(ids.map((id) => tableFor(ws, id, pred, grid)))
      const table = tables.length === 1 ? tables[0] : combineTables(tables, ids.join('+'))
      const runs = await Promise.all(ids.map((id) => loadReportRun(ws, id)))
      const file = values.out
        ? join(resolve(values.out), 'report.html')
        : runFiles(ws, ids[0]).report
      await writeReport(file, {
        title: values.title ?? `DSD Studio report: ${ids.join(', ')}`,
        runs,
        table,
        slices: await slicesFor(ws, ids, tables, pred),
      })
      written.push(file)
    }
  }
  if (values.json) printJson({ written, notAvailable: notes })
  else {
    for (const f of written) console.log(f)
    for (const n of notes) console.error(n)
  }
  return 0
}
