/**
 * `dsd evaluate`: per-case metric tables of predictions (one run, folds combined, or any
 * predictions folder), summaries, and paired comparisons of two runs (see docs/inference.md).
 */
import { join, resolve } from 'node:path'
import { DsdError } from '../errors'
import type { MetricName } from '../metrics'
import {
  combineTables,
  compareTables,
  evaluatePredictions,
  writeComparison,
  writeTable,
  type ComparisonResult,
  type EvaluateOptions,
  type EvaluationTable,
} from '../services/evaluation'
import { evaluateSet } from '../services/predict-evaluate'
import { runFiles } from '../workspace/run-layout'
import { workspaceRoot } from '../services/workspace-root'
import { CliError, SOURCE_OPTIONS, numberOption, parse, printJson } from './args'

export const summary =
  'Score predictions (Dice, HD95, ASSD, NSD per case and label), summarise folds, compare runs'
export const usage = `Usage:
  dsd evaluate --run ID [--run ID …] [options]          one run, or folds combined
  dsd evaluate --dir PREDICTIONS_DIR [--out DIR] [options]
  dsd evaluate --a RUN[,RUN…] --b RUN[,RUN…] --out DIR [options]   paired comparison

  --predictions NAME     the runs' predictions sub-folder (default last)
  --grid original|preprocessed
                         original image grid (default) or the preprocessed grid (the paper's)
  --voxel-units          also report HD95/ASSD/NSD in voxel units (the paper's HD95)
  --nsd-tolerance X      NSD tolerance in mm (default 1)
  --labels 1,2,…         classes to score (default every foreground class)
  --metrics dice,hd95    metrics of a comparison (default dice,hd95,assd,nsd)
  --name NAME            table name (default <predictions>-<grid>)
  --out DIR              where combined tables and comparisons are written
  --workspace DIR        the workspace (default: DSD_WORKSPACE or the user-data folder)
  --json                 print the table (or comparison) as JSON

Writes <name>.csv (one line per case and label; empty cells for missing values, with a
reason), <name>.summary.csv (mean, std, quartiles per label; fold means across folds) and
<name>.json. A run's tables go to runs/<id>/metrics/. A comparison writes <name>.cases.csv
(per-case deltas b − a), <name>.summary.csv (means, deltas, Wilcoxon signed-rank p) and .json.`

function list(name: string, v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined
  const parts = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (!parts.length) throw new CliError(`--${name} needs a comma-separated list`)
  return parts
}

function printSummary(t: EvaluationTable): void {
  const f = (v: number | null | undefined, d = 4) =>
    v === null || v === undefined ? '–' : v.toFixed(d)
  console.log(
    `${t.name}: ${new Set(t.rows.map((r) => `${r.fold}/${r.caseId}`)).size} case(s), ${t.grid} grid, distances in mm`,
  )
  console.log(
    `  ${'label'.padEnd(20)} ${'Dice'.padEnd(18)} ${'HD95 (mm)'.padEnd(18)} ${'ASSD (mm)'.padEnd(18)} NSD`,
  )
  const row = (name: string, s: EvaluationTable['summary']['overall']) =>
    console.log(
      `  ${name.padEnd(20)} ${`${f(s.dice.mean)} ± ${f(s.dice.std)}`.padEnd(18)} ${`${f(s.hd95.mean, 2)} ± ${f(s.hd95.std, 2)}`.padEnd(18)} ${`${f(s.assd.mean, 2)} ± ${f(s.assd.std, 2)}`.padEnd(18)} ${f(s.nsd.mean)}`,
    )
  for (const [l, s] of Object.entries(t.summary.labels))
    row(`${l} ${t.labels[l] ?? ''}`.slice(0, 20), s)
  row('all', t.summary.overall)
  if (t.summary.foldsOverall && t.folds.length > 1) {
    const d = t.summary.foldsOverall.dice
    console.log(
      `  across ${t.folds.length} folds: Dice ${f(d.mean)} ± ${f(d.std)} (mean ± std of the fold means)`,
    )
  }
  for (const s of t.skipped) console.log(`  skipped ${s.caseId}: ${s.reason}`)
}

function printComparison(c: ComparisonResult): void {
  const f = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v.toFixed(4))
  console.log(`${c.a.name} (a) vs ${c.b.name} (b), Δ = b − a, two-sided Wilcoxon signed-rank`)
  for (const [label, per] of Object.entries(c.labels)) {
    for (const [metric, r] of Object.entries(per)) {
      console.log(
        `  ${(label === 'mean' ? 'mean over labels' : `${label} ${c.labelNames[label] ?? ''}`).slice(0, 20).padEnd(20)} ${metric.padEnd(5)} n ${String(r.n).padEnd(4)} a ${f(r.meanA)}  b ${f(r.meanB)}  Δ ${f(r.meanDelta)}  p ${r.wilcoxon ? r.wilcoxon.pvalue.toPrecision(3) : '–'}${r.excluded.length ? `  (${r.excluded.length} excluded)` : ''}`,
      )
    }
  }
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      ...SOURCE_OPTIONS,
      'voxel-units': { type: 'boolean' },
      'nsd-tolerance': { type: 'string' },
      labels: { type: 'string' },
      metrics: { type: 'string' },
      name: { type: 'string' },
      out: { type: 'string' },
    },
    false,
  )
  const grid = values.grid ?? 'original'
  if (grid !== 'original' && grid !== 'preprocessed')
    throw new CliError(`--grid must be original or preprocessed, got "${grid}"`)
  const tol = numberOption('nsd-tolerance', values['nsd-tolerance'], 1, { min: 0 })
  const labels = list('labels', values.labels)?.map((s) => {
    const n = Number(s)
    if (!Number.isInteger(n)) throw new CliError(`--labels must list class numbers, got "${s}"`)
    return n
  })
  const metrics = list('metrics', values.metrics) as MetricName[] | undefined
  for (const m of metrics ?? [])
    if (!['dice', 'hd95', 'assd', 'nsd'].includes(m))
      throw new CliError(`--metrics: unknown metric "${m}"`)
  const pred = values.predictions ?? 'last'
  const base: EvaluateOptions = {
    grid,
    voxelUnits: values['voxel-units'],
    nsdTolerance: tol,
    labels,
  }
  const modes = [
    values.run?.length ? 1 : 0,
    values.dir ? 1 : 0,
    values.a || values.b ? 1 : 0,
  ].reduce((s, x) => s + x, 0)
  if (modes !== 1)
    throw new CliError('give exactly one of --run, --dir, or --a with --b (see --help)')

  const name = values.name ?? `${pred}-${grid}`
  if (values.dir) {
    const t = await evaluatePredictions(values.dir, {
      ...base,
      workspace: values.workspace ? workspaceRoot(values.workspace) : undefined,
      name: values.name,
    })
    const files = await writeTable(t, resolve(values.out ?? join(values.dir, 'metrics')), t.name)
    if (values.json) printJson(t)
    else {
      printSummary(t)
      console.log(`Wrote ${files.join(', ')}`)
    }
    return 0
  }
  const ws = workspaceRoot(values.workspace)
  const evalRuns = async (ids: string[]): Promise<EvaluationTable> => {
    const tables: EvaluationTable[] = []
    for (const id of ids) {
      // The app's evaluate job runs the same function (main/services/predict-evaluate.ts).
      const { table } = await evaluateSet(ws, { kind: 'run', runId: id, set: pred }, { ...base, name })
      tables.push(table)
    }
    return tables.length === 1 ? tables[0] : combineTables(tables, `${ids.join('+')}-${name}`)
  }
  if (values.run?.length) {
    const t = await evalRuns(values.run)
    const written: string[] = values.run.map((id) => join(runFiles(ws, id).metrics, `${name}.csv`))
    if (values.run.length > 1) {
      if (!values.out)
        throw new CliError(
          "several runs: give --out DIR for the combined table (each run's own table is in runs/<id>/metrics/)",
        )
      written.push(...(await writeTable(t, resolve(values.out), values.name ?? 'combined')))
    }
    if (values.json) printJson(t)
    else {
      printSummary(t)
      console.log(`Wrote ${written.join(', ')}`)
    }
    return 0
  }
  if (!values.a || !values.b) throw new CliError('a comparison needs both --a and --b')
  if (!values.out) throw new CliError('a comparison needs --out DIR')
  const aIds = list('a', values.a)!
  const bIds = list('b', values.b)!
  const a = { ...(await evalRuns(aIds)), name: aIds.join('+') }
  const b = { ...(await evalRuns(bIds)), name: bIds.join('+') }
  const cmp = compareTables(a, b, { metrics, voxelUnits: false })
  if (cmp.labels.mean?.dice && cmp.labels.mean.dice.n === 0) {
    throw new DsdError(
      'EVAL_NO_PAIRS',
      `compare: the two sides share no case (a: ${a.name}, b: ${b.name}); compare runs evaluated on the same cases`,
      {},
    )
  }
  const out = resolve(values.out)
  const cmpName = values.name ?? 'comparison'
  const files = [
    ...(await writeTable(a, out, `${cmpName}.a`)),
    ...(await writeTable(b, out, `${cmpName}.b`)),
    ...(await writeComparison(cmp, out, cmpName)),
  ]
  if (values.json) printJson(cmp)
  else {
    printComparison(cmp)
    console.log(`Wrote ${files.join(', ')}`)
  }
  return 0
}
