/**
 * What the app's `predictions.predict`, `metrics.evaluate` and `metrics.compare` do, on the
 * same functions as `dsd predict` and `dsd evaluate` (main/services/inference.ts,
 * main/services/evaluation.ts):
 *
 * - `predictionTarget`: the set a prediction request writes (`run:<id>/<name>` for one run,
 *   `ensemble:<name>` for several) and the `predictCases` options;
 * - `checkPredictable`: refuses at once what would fail in the job (unknown run, no such
 *   checkpoint, a split that changed under the run);
 * - `predictSet` and `evaluateSet`: the work of the `predict` and `evaluate` jobs (they run in
 *   the inference worker, main/workers/inference-worker.ts); `evaluateSet` is also what
 *   `dsd evaluate --run` calls for each run;
 * - `compareSets`: two sets' metric tables paired by case (`compareTables`, as
 *   `dsd evaluate --a --b`).
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { toSafeId } from '../contract/ids'
import type { PredictionSetRef, PredictRequest, SetComparison } from '../contract/review'
import { DsdError } from '../errors'
import type { MetricName } from '../metrics'
import { checkRunSplit } from '../workspace/cases'
import { runFiles } from '../workspace/run-layout'
import { readRunConfig } from '../workspace/runs'
import type { EvaluateOptions, EvaluationTable } from './evaluation'
import type { PredictOptions, PredictProgress } from './inference'
import { ensemblesDir, readSet, setDir, setKey, setTables } from './prediction-sets'

/** The set a request predicts into, and the options of `predictCases` that write it. */
export function predictionTarget(
  workspace: string,
  req: PredictRequest,
): { ref: PredictionSetRef; key: string; options: PredictOptions } {
  const runIds = [...new Set(req.runIds)]
  const base: PredictOptions = {
    workspace,
    runIds,
    which: req.which,
    ...(req.tta === undefined ? {} : { tta: req.tta }),
    ...(req.cases ? { cases: req.cases } : {}),
  }
  if (runIds.length === 1) {
    const ref: PredictionSetRef = { kind: 'run', runId: runIds[0], set: req.name ?? req.which }
    return { ref, key: setKey(ref), options: { ...base, name: ref.set } }
  }
  // Folds of one study share a prefix (`<prefix>-<variant>-fold<k>`): name the ensemble after it.
  const stem = runIds[0].replace(/-fold\d+$/, '')
  const name = req.name ?? toSafeId(`${runIds.every((id) => id.startsWith(stem)) ? stem : 'ensemble'}-${runIds.length}runs-${req.which}`)
  const ref: PredictionSetRef = { kind: 'ensemble', name }
  return { ref, key: setKey(ref), options: { ...base, outDir: join(ensemblesDir(workspace), name) } }
}

/**
 * Refuse now what the job would fail on: a run that does not exist, has no such checkpoint, or
 * whose split changed (SPLIT_CHANGED: the one check prediction and evaluation run).
 */
export async function checkPredictable(workspace: string, req: PredictRequest): Promise<void> {
  for (const runId of new Set(req.runIds)) {
    const cfg = await readRunConfig(workspace, runId)
    const files = runFiles(workspace, runId)
    const ckpt = req.which === 'best' ? files.bestCheckpoint : files.lastCheckpoint
    if (!existsSync(ckpt)) {
      throw new DsdError(
        'CHECKPOINT_MISSING',
        req.which === 'best'
          ? `Run ${runId} has no best checkpoint yet (no validated epoch); predict with its last checkpoint.`
          : `Run ${runId} has no checkpoint yet; train it first.`,
        { runId, which: req.which },
      )
    }
    await checkRunSplit(workspace, cfg)
  }
}

/** The `predict` job's work: `predictCases`, the function `dsd predict` runs. */
export async function predictSet(
  workspace: string,
  req: PredictRequest,
  hooks: { signal?: AbortSignal; onProgress?: (p: PredictProgress) => void } = {},
): Promise<{ ref: PredictionSetRef; key: string; cases: number; outDir: string }> {
  const { predictCases } = await import('./inference')
  const { ref, key, options } = predictionTarget(workspace, req)
  const res = await predictCases({ ...options, signal: hooks.signal, onProgress: hooks.onProgress })
  return { ref, key, cases: res.manifest.cases.length, outDir: res.outDir }
}

/** The table name `dsd evaluate` gives a set's table: `<set>-<grid>`. */
export function tableName(ref: PredictionSetRef, grid: 'original' | 'preprocessed' = 'original'): string {
  return `${ref.kind === 'run' ? ref.set : ref.name}-${grid}`
}

/**
 * Evaluate a set and write its table where `dsd evaluate` writes it: a run's into
 * `runs/<id>/metrics/<name>.{csv,summary.csv,json}`, an ensemble's into `<set>/metrics/`.
 */
export async function evaluateSet(
  workspace: string,
  ref: PredictionSetRef,
  opts: EvaluateOptions = {},
): Promise<{ table: EvaluationTable; files: string[] }> {
  const { evaluatePredictions, evaluateRun, writeTable } = await import('./evaluation')
  const name = opts.name ?? tableName(ref, opts.grid)
  if (ref.kind === 'run') {
    setDir(workspace, ref) // ids checked
    const table = await evaluateRun(workspace, ref.runId, { ...opts, predictions: ref.set, name })
    return { table, files: await writeTable(table, runFiles(workspace, ref.runId).metrics, name) }
  }
  const dir = setDir(workspace, ref)
  if (!existsSync(join(dir, 'predictions.json'))) await readSet(workspace, ref) // PREDICTIONS_NOT_FOUND
  const table = await evaluatePredictions(dir, { ...opts, workspace, name })
  return { table, files: await writeTable(table, join(dir, 'metrics'), name) }
}

/** A set's table: the named one, else the newest on the original grid (as `metrics.get`). */
async function tableOf(workspace: string, ref: PredictionSetRef, name?: string): Promise<{ name: string; table: EvaluationTable }> {
  const { dir } = await readSet(workspace, ref)
  const tables = await setTables(workspace, ref, dir)
  const t = name ? tables.find((x) => x.name === name) : (tables.find((x) => x.table.grid === 'original') ?? tables[0])
  if (!t) {
    throw new DsdError(
      'METRICS_NOT_FOUND',
      name ? `prediction set ${setKey(ref)} has no metric table "${name}"` : `prediction set ${setKey(ref)} is not evaluated yet; evaluate it first`,
      { set: setKey(ref) },
    )
  }
  return t
}

/** `metrics.compare`: the two sets' tables paired by case, Δ = b − a. */
export async function compareSets(
  workspace: string,
  a: { ref: PredictionSetRef; table?: string },
  b: { ref: PredictionSetRef; table?: string },
  metrics?: MetricName[],
): Promise<SetComparison> {
  const ta = await tableOf(workspace, a.ref, a.table)
  const tb = await tableOf(workspace, b.ref, b.table)
  const { compareTables } = await import('./evaluation')
  const cmp = compareTables(ta.table, tb.table, { metrics })
  const labels: SetComparison['labels'] = {}
  for (const [label, per] of Object.entries(cmp.labels)) {
    labels[label] = {}
    for (const [metric, r] of Object.entries(per)) {
      labels[label][metric] = {
        n: r.n,
        meanA: r.meanA,
        meanB: r.meanB,
        meanDelta: r.meanDelta,
        medianDelta: r.medianDelta,
        stdDelta: r.stdDelta,
        pValue: r.wilcoxon?.pvalue ?? null,
        cases: r.cases.map((c) => ({ caseId: c.caseId, a: c.a, b: c.b, delta: c.delta })),
        excluded: r.excluded,
      }
    }
  }
  return {
    a: { ref: a.ref, table: ta.name },
    b: { ref: b.ref, table: tb.name },
    grid: cmp.grid,
    metrics: cmp.metrics,
    labels,
    labelNames: cmp.labelNames,
  }
}
