/**
 * Markdown tables for docs/results.md from the files `bench/hippocampus-result.sh` writes:
 * per variant, label and metric the mean over each validation fold's cases, and the mean ± std
 * of the fold means; then the paired comparison (Wilcoxon) over all cases.
 *
 *   npx tsx bench/results-table.ts <compare dir> [A.json B.json A-vs-B.json]
 *
 * With DSD_WORKSPACE set, also each run's last-epoch training loss (dce_Y) and training time.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ComparisonResult, EvaluationTable } from '../main/services/evaluation'

const [dir = 'test/.tmp/result-ws/compare', aFile = 'basic.json', bFile = 'dsd.json', cFile = 'basic-vs-dsd.json'] =
  process.argv.slice(2)
const read = <T>(f: string): T => JSON.parse(readFileSync(join(dir, f), 'utf8')) as T
const tables: [string, EvaluationTable][] = [
  ['Basic', read<EvaluationTable>(aFile)],
  ['DSD', read<EvaluationTable>(bFile)],
]
const comparison = read<ComparisonResult>(cFile)

const fmt = (v: number | null | undefined, metric: string) =>
  v === null || v === undefined ? '–' : metric === 'dice' || metric === 'nsd' ? v.toFixed(3) : v.toFixed(2)
const METRICS: [string, string][] = [
  ['dice', 'Dice'],
  ['hd95', 'HD95 (mm)'],
]

const folds = Object.keys(tables[0][1].summary.folds?.['1']?.dice.foldMeans ?? {})
console.log(`| variant | label | metric | ${folds.map((f) => `fold ${f}`).join(' | ')} | mean ± std of folds |`)
console.log(`|---|---|---|${folds.map(() => '---').join('|')}|---|`)
for (const [variant, t] of tables) {
  for (const [label, name] of Object.entries(t.labels)) {
    for (const [metric, title] of METRICS) {
      const s = t.summary.folds?.[label]?.[metric as 'dice']
      if (!s) continue
      const cells = folds.map((f) => fmt(s.foldMeans[f], metric))
      console.log(
        `| ${variant} | ${label} ${name} | ${title} | ${cells.join(' | ')} | ${fmt(s.mean, metric)} ± ${fmt(s.std, metric)} |`,
      )
    }
  }
}

console.log('\n| label | metric | Basic (mean over cases) | DSD | Δ mean (DSD − Basic) | Δ median | n | Wilcoxon p |')
console.log('|---|---|---|---|---|---|---|---|')
for (const [label, byMetric] of Object.entries(comparison.labels)) {
  for (const [metric, c] of Object.entries(byMetric)) {
    const name = label === 'mean' ? 'mean of labels' : `${label} ${comparison.labelNames[label] ?? ''}`
    const p = c.wilcoxon?.pvalue
    console.log(
      `| ${name} | ${metric} | ${fmt(c.meanA, metric)} | ${fmt(c.meanB, metric)} | ${c.meanDelta?.toFixed(4) ?? '–'} | ${c.medianDelta?.toFixed(4) ?? '–'} | ${c.n} | ${p === undefined ? '–' : p < 1e-3 ? p.toExponential(1) : p.toFixed(3)} |`,
    )
  }
}

const workspace = process.env.DSD_WORKSPACE
if (workspace) {
  console.log('\n| run | final-epoch train dce_Y | total loss | training time (min) | voxels/s |')
  console.log('|---|---|---|---|---|')
  for (const [, t] of tables) {
    for (const id of t.runIds) {
      const dir = join(workspace, 'runs', id)
      const lines = (f: string) =>
        readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      const last = lines('log.jsonl').at(-1) as { loss: Record<string, number> }
      const timing = lines('timing.jsonl') as { seconds: number; voxelsPerSecond: number }[]
      const seconds = timing.reduce((a, x) => a + x.seconds, 0)
      const vps = timing.reduce((a, x) => a + x.voxelsPerSecond, 0) / timing.length
      console.log(
        `| ${id} | ${last.loss.dce_Y.toFixed(4)} | ${last.loss.total.toFixed(4)} | ${(seconds / 60).toFixed(1)} | ${Math.round(vps).toLocaleString('en')} |`,
      )
    }
  }
}
