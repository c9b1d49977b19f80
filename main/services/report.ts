/**
 * The self-contained HTML report of a run (or several folds) and of a paired comparison: the
 * run config, learning curves from `log.jsonl` (inline SVG), summary tables (mean ± std per
 * label, across folds), per-label box plots (inline SVG), the per-case metrics table and, for a
 * comparison, per-case deltas and Wilcoxon p-values; and, for the worst and the median case by
 * mean Dice, one slice of image + ground truth + prediction (report-slices.ts) as an embedded PNG.
 *
 * Self-contained: no scripts, no external stylesheets, fonts or images, no URLs (the slices are
 * `data:image/png` URIs inside the page). Every string
 * that goes into the page is HTML-escaped. The markup is also well-formed XML (quoted
 * attributes, closed elements, only numeric or XML entities), so XML tools can read it.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { DsdError } from '../errors'
import { METRIC_NAMES, type CasesSummary, type MetricName, type Summary } from '../metrics'
import { appVersion } from '../version'
import { atomicWriteFile } from '../workspace/atomic'
import type { ComparisonResult, EvaluationTable } from './evaluation'
import type { ReportSlice } from './report-slices'
import type { EpochLog, RunConfig, RunState } from '../contract/runs'
import { runFiles } from '../workspace/run-layout'
import { readRunConfig, readRunLog } from '../workspace/runs'

/** One run's material for the report. */
export interface ReportRun {
  runId: string
  config?: RunConfig | null
  state?: RunState | null
  manifest?: Record<string, unknown> | null
  log?: EpochLog[]
}

/** What {@link renderReport} draws. */
export interface ReportInput {
  title: string
  runs: ReportRun[]
  /** Per-case metrics (one run, or folds combined). */
  table?: EvaluationTable | null
  /** A second table and the comparison of `table` (a) against it (b). */
  comparison?: { b: EvaluationTable; result: ComparisonResult } | null
  /** Example slices (worst and median case), drawn by report-slices.ts. */
  slices?: ReportSlice[]
  /** Generation time (default now). */
  createdAt?: string
}

/** Escape text for HTML element content and attribute values. */
export function escapeHtml(v: unknown): string {
  return String(v ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}

const e = escapeHtml

function fmt(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–'
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2)
  return String(+v.toFixed(digits))
}

function fmtP(p: number | null | undefined): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return '–'
  return p < 1e-4 ? p.toExponential(1) : p.toFixed(4)
}

function meanStd(s: Summary | undefined, digits = 4): string {
  if (!s || s.mean === null) return '–'
  return s.std === null ? fmt(s.mean, digits) : `${fmt(s.mean, digits)} ± ${fmt(s.std, digits)}`
}

const UNITS: Record<MetricName, string> = { dice: '', hd95: 'mm', assd: 'mm', nsd: '' }

// ---------------------------------------------------------------------------------------------
// SVG charts

const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#17becf',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#393b79',
]

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) {
    const d = Math.abs(lo) || 1
    return [lo - d / 2, lo, lo + d / 2]
  }
  const raw = (hi - lo) / n
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw
  const out: number[] = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(+v.toPrecision(12))
  return out
}

interface Series {
  name: string
  points: [number, number][]
}

/** A line chart as inline SVG (x: epochs). */
export function lineChart(
  title: string,
  series: Series[],
  opts: { yLabel?: string; width?: number; height?: number; logY?: boolean } = {},
): string {
  const W = opts.width ?? 560
  const H = opts.height ?? 260
  const m = { l: 56, r: 12, t: 26, b: 36 }
  const pts = series
    .flatMap((s) => s.points)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0))
  if (pts.length === 0) return `<p class="muted">${e(title)}: no data.</p>`
  const ty = (y: number) => (opts.logY ? Math.log10(y) : y)
  const xs = pts.map((p) => p[0])
  const ys = pts.map((p) => ty(p[1]))
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)]
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)]
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1]
  if (y0 === y1) [y0, y1] = [y0 - (Math.abs(y0) || 1) * 0.1, y1 + (Math.abs(y1) || 1) * 0.1]
  const pad = (y1 - y0) * 0.05
  y0 -= pad
  y1 += pad
  const X = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r)
  const Y = (y: number) => H - m.b - ((ty(y) - y0) / (y1 - y0)) * (H - m.t - m.b)
  const Yraw = (v: number) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b)
  const parts: string[] = []
  parts.push(
    `<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${e(title)}">`,
  )
  parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" class="ct">${e(title)}</text>`)
  for (const v of ticks(y0, y1)) {
    const y = Yraw(v).toFixed(1)
    const label = opts.logY ? fmt(10 ** v, 3) : fmt(v, 3)
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" class="grid"/>`)
    parts.push(
      `<text x="${m.l - 4}" y="${y}" text-anchor="end" dominant-baseline="middle" class="tick">${e(label)}</text>`,
    )
  }
  for (const v of ticks(x0, x1, 8).filter((v) => Number.isInteger(v))) {
    const x = X(v).toFixed(1)
    parts.push(`<line x1="${x}" x2="${x}" y1="${H - m.b}" y2="${H - m.b + 4}" class="axis"/>`)
    parts.push(`<text x="${x}" y="${H - m.b + 16}" text-anchor="middle" class="tick">${v}</text>`)
  }
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" class="axis"/>`)
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" class="axis"/>`)
  parts.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 4}" text-anchor="middle" class="tick">epoch</text>`,
  )
  if (opts.yLabel)
    parts.push(
      `<text x="12" y="${(m.t + H - m.b) / 2}" text-anchor="middle" class="tick" transform="rotate(-90 12 ${(m.t + H - m.b) / 2})">${e(opts.yLabel)}</text>`,
    )
  series.forEach((s, i) => {
    const p = s.points.filter(
      ([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0),
    )
    if (!p.length) return
    const color = PALETTE[i % PALETTE.length]
    const d = p
      .map(([x, y], k) => `${k ? 'L' : 'M'}${X(x).toFixed(1)},${Y(y).toFixed(1)}`)
      .join(' ')
    parts.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="${i === 0 ? 2 : 1.2}"><title>${e(s.name)}</title></path>`,
    )
    if (p.length === 1)
      parts.push(
        `<circle cx="${X(p[0][0]).toFixed(1)}" cy="${Y(p[0][1]).toFixed(1)}" r="3" fill="${color}"/>`,
      )
  })
  // legend
  series.forEach((s, i) => {
    const y = m.t + 4 + i * 14
    const color = PALETTE[i % PALETTE.length]
    parts.push(`<rect x="${W - m.r - 120}" y="${y - 6}" width="10" height="3" fill="${color}"/>`)
    parts.push(
      `<text x="${W - m.r - 106}" y="${y}" dominant-baseline="middle" class="legend">${e(s.name)}</text>`,
    )
  })
  parts.push('</svg>')
  return parts.join('')
}

/** Box plots (Tukey whiskers, outliers as dots) as inline SVG, one box per group. */
export function boxPlot(
  title: string,
  groups: { name: string; summary: Summary | null | undefined }[],
  opts: { yLabel?: string; width?: number; height?: number } = {},
): string {
  const boxes = groups.filter((g) => g.summary?.box)
  if (boxes.length === 0) return `<p class="muted">${e(title)}: no values.</p>`
  const W = opts.width ?? Math.max(260, 90 + boxes.length * 70)
  const H = opts.height ?? 260
  const m = { l: 56, r: 12, t: 26, b: 48 }
  const all = boxes.flatMap((g) => [g.summary!.box!.min, g.summary!.box!.max])
  let [y0, y1] = [Math.min(...all), Math.max(...all)]
  if (y0 === y1) [y0, y1] = [y0 - (Math.abs(y0) || 1) * 0.1, y1 + (Math.abs(y1) || 1) * 0.1]
  const pad = (y1 - y0) * 0.05
  y0 -= pad
  y1 += pad
  const Y = (v: number) => (H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b)).toFixed(1)
  const slot = (W - m.l - m.r) / boxes.length
  const parts: string[] = []
  parts.push(
    `<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${e(title)}">`,
  )
  parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" class="ct">${e(title)}</text>`)
  for (const v of ticks(y0, y1)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" class="grid"/>`)
    parts.push(
      `<text x="${m.l - 4}" y="${Y(v)}" text-anchor="end" dominant-baseline="middle" class="tick">${e(fmt(v, 3))}</text>`,
    )
  }
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" class="axis"/>`)
  if (opts.yLabel)
    parts.push(
      `<text x="12" y="${(m.t + H - m.b) / 2}" text-anchor="middle" class="tick" transform="rotate(-90 12 ${(m.t + H - m.b) / 2})">${e(opts.yLabel)}</text>`,
    )
  boxes.forEach((g, i) => {
    const b = g.summary!.box!
    const cx = m.l + slot * (i + 0.5)
    const hw = Math.min(22, slot * 0.3)
    const color = PALETTE[i % PALETTE.length]
    const tip = `${g.name}: n ${g.summary!.n}, median ${fmt(b.median)}, IQR ${fmt(b.q1)}–${fmt(b.q3)}, range ${fmt(b.min)}–${fmt(b.max)}`
    parts.push(`<g><title>${e(tip)}</title>`)
    parts.push(
      `<line x1="${cx}" x2="${cx}" y1="${Y(b.whiskerLow)}" y2="${Y(b.q1)}" class="whisk"/>`,
    )
    parts.push(
      `<line x1="${cx}" x2="${cx}" y1="${Y(b.q3)}" y2="${Y(b.whiskerHigh)}" class="whisk"/>`,
    )
    parts.push(
      `<line x1="${cx - hw / 2}" x2="${cx + hw / 2}" y1="${Y(b.whiskerLow)}" y2="${Y(b.whiskerLow)}" class="whisk"/>`,
    )
    parts.push(
      `<line x1="${cx - hw / 2}" x2="${cx + hw / 2}" y1="${Y(b.whiskerHigh)}" y2="${Y(b.whiskerHigh)}" class="whisk"/>`,
    )
    const top = Number(Y(b.q3))
    const h = Math.max(1, Number(Y(b.q1)) - top)
    parts.push(
      `<rect x="${cx - hw}" y="${top}" width="${2 * hw}" height="${h.toFixed(1)}" fill="${color}" fill-opacity="0.25" stroke="${color}"/>`,
    )
    parts.push(
      `<line x1="${cx - hw}" x2="${cx + hw}" y1="${Y(b.median)}" y2="${Y(b.median)}" stroke="${color}" stroke-width="2"/>`,
    )
    for (const o of b.outliers)
      parts.push(`<circle cx="${cx}" cy="${Y(o)}" r="2.5" fill="none" stroke="${color}"/>`)
    parts.push('</g>')
    parts.push(
      `<text x="${cx}" y="${H - m.b + 16}" text-anchor="middle" class="tick">${e(g.name.length > 14 ? g.name.slice(0, 13) + '…' : g.name)}</text>`,
    )
    parts.push(
      `<text x="${cx}" y="${H - m.b + 30}" text-anchor="middle" class="tick muted">n ${g.summary!.n}</text>`,
    )
  })
  parts.push('</svg>')
  return parts.join('')
}

// ---------------------------------------------------------------------------------------------
// sections

function kvTable(rows: [string, unknown][]): string {
  return `<table class="kv"><tbody>${rows.map(([k, v]) => `<tr><th>${e(k)}</th><td>${e(typeof v === 'object' && v !== null ? JSON.stringify(v) : v)}</td></tr>`).join('')}</tbody></table>`
}

/** Flatten nested objects to "a.b.c" keys. */
function flatten(o: unknown, prefix = '', out: [string, unknown][] = []): [string, unknown][] {
  if (o && typeof o === 'object' && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o as Record<string, unknown>))
      flatten(v, prefix ? `${prefix}.${k}` : k, out)
  } else out.push([prefix, Array.isArray(o) ? o.join(' × ') : o])
  return out
}

function runSection(r: ReportRun): string {
  const parts: string[] = [`<section><h2>Run ${e(r.runId)}</h2>`]
  if (r.state) {
    parts.push(
      kvTable([
        ['status', r.state.status],
        ['epochs', `${r.state.epoch} of ${r.state.epochs}`],
        ['best epoch', r.state.bestEpoch ?? '–'],
        [
          'best mean validation Dice',
          r.state.bestMeanDice === null ? '–' : fmt(r.state.bestMeanDice),
        ],
        ['message', r.state.message],
      ]),
    )
  }
  if (r.config) parts.push('<h3>Configuration</h3>', kvTable(flatten(r.config)))
  const man = r.manifest
  if (man) {
    const rows: [string, unknown][] = []
    for (const k of ['app', 'libraries', 'platform', 'seeds', 'split', 'model'])
      if (man[k] !== undefined) rows.push(...flatten(man[k], k))
    const ds = man.dataset as Record<string, unknown> | undefined
    if (ds) rows.push(['dataset.id', ds.id], ['dataset.hash', ds.hash])
    const starts = man.starts as { at?: string; backend?: string; device?: string }[] | undefined
    if (starts?.length)
      rows.push([
        'backend (last start)',
        `${starts.at(-1)?.backend ?? '?'}${starts.at(-1)?.device ? ` — ${starts.at(-1)?.device}` : ''}`,
      ])
    if (rows.length) parts.push('<h3>Manifest</h3>', kvTable(rows))
  }
  const log = r.log ?? []
  if (log.length) {
    parts.push('<h3>Learning curves</h3><div class="charts">')
    const terms = [...new Set(log.flatMap((l) => Object.keys(l.loss)))]
    const order = ['total', ...terms.filter((t) => t !== 'total')]
    parts.push(
      lineChart(
        'Training loss',
        order
          .filter((t) => terms.includes(t))
          .map((t) => ({
            name: t,
            points: log.map((l) => [l.epoch, l.loss[t]] as [number, number]),
          })),
        { yLabel: 'loss', logY: log.every((l) => Object.values(l.loss).every((v) => v > 0)) },
      ),
    )
    const val = log.filter((l) => l.valMeanDice !== undefined)
    if (val.length) {
      const classes = [...new Set(val.flatMap((l) => Object.keys(l.valDice ?? {})))]
      parts.push(
        lineChart(
          'Validation Dice',
          [
            { name: 'mean', points: val.map((l) => [l.epoch, l.valMeanDice!] as [number, number]) },
            ...classes.map((c) => ({
              name: `class ${c}`,
              points: val.map((l) => [l.epoch, l.valDice?.[c] ?? NaN] as [number, number]),
            })),
          ],
          { yLabel: 'Dice' },
        ),
      )
    }
    parts.push(
      lineChart(
        'Learning rate',
        [{ name: 'lr', points: log.map((l) => [l.epoch, l.lr] as [number, number]) }],
        { yLabel: 'lr', height: 200 },
      ),
    )
    parts.push('</div>')
  } else parts.push('<p class="muted">No epochs logged yet (log.jsonl is empty or missing).</p>')
  parts.push('</section>')
  return parts.join('')
}

/** Several runs (folds, variants): one config table with a column per run, overlaid curves. */
function runsSection(runs: ReportRun[]): string {
  const parts: string[] = [`<section><h2>Runs</h2>`]
  const flat = runs.map((r) => new Map(flatten(r.config ?? {})))
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))]
  const show = (v: unknown) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : v)
  const head = `<tr><th>run</th>${runs.map((r) => `<th>${e(r.runId)}</th>`).join('')}</tr>`
  const stateRows: [string, (r: ReportRun) => unknown][] = [
    ['status', (r) => r.state?.status ?? '–'],
    ['epochs', (r) => (r.state ? `${r.state.epoch} of ${r.state.epochs}` : '–')],
    ['best epoch', (r) => r.state?.bestEpoch ?? '–'],
    [
      'best mean validation Dice',
      (r) => (r.state?.bestMeanDice == null ? '–' : fmt(r.state.bestMeanDice)),
    ],
    [
      'backend (last start)',
      (r) => (r.manifest?.starts as { backend?: string }[] | undefined)?.at(-1)?.backend ?? '–',
    ],
  ]
  const rows = [
    ...stateRows.map(
      ([k, f]) => `<tr><th>${e(k)}</th>${runs.map((r) => `<td>${e(f(r))}</td>`).join('')}</tr>`,
    ),
    ...keys.map((k) => {
      const vals = flat.map((m) => show(m.get(k)))
      const differs = new Set(vals.map((v) => String(v))).size > 1
      return `<tr${differs ? ' class="sig"' : ''}><th>${e(k)}</th>${vals.map((v) => `<td>${e(v ?? '–')}</td>`).join('')}</tr>`
    }),
  ]
  parts.push(
    `<p class="muted">Highlighted rows differ between runs.</p><table class="kv"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`,
  )
  const logged = runs.filter((r) => r.log?.length)
  if (logged.length) {
    parts.push('<h3>Learning curves</h3><div class="charts">')
    parts.push(
      lineChart(
        'Training loss (total)',
        logged.map((r) => ({
          name: r.runId,
          points: r.log!.map((l) => [l.epoch, l.loss.total] as [number, number]),
        })),
        { yLabel: 'loss', logY: logged.every((r) => r.log!.every((l) => (l.loss.total ?? 0) > 0)) },
      ),
    )
    const val = logged.filter((r) => r.log!.some((l) => l.valMeanDice !== undefined))
    if (val.length) {
      parts.push(
        lineChart(
          'Validation mean Dice',
          val.map((r) => ({
            name: r.runId,
            points: r
              .log!.filter((l) => l.valMeanDice !== undefined)
              .map((l) => [l.epoch, l.valMeanDice!] as [number, number]),
          })),
          { yLabel: 'Dice' },
        ),
      )
    }
    parts.push('</div>')
  } else parts.push('<p class="muted">No epochs logged yet.</p>')
  parts.push('</section>')
  return parts.join('')
}

function summaryTable(t: EvaluationTable, s: CasesSummary, unitsNote: string): string {
  const labels = Object.keys(s.labels)
  const head = `<tr><th>label</th>${METRIC_NAMES.map((m) => `<th>${e(m.toUpperCase())}${UNITS[m] ? ` (${e(unitsNote || UNITS[m])})` : ''}</th>`).join('')}<th>n</th></tr>`
  const rows = labels.map(
    (l) =>
      `<tr><td>${e(l)} ${e(t.labels[l] ?? '')}</td>${METRIC_NAMES.map((m) => `<td>${e(meanStd(s.labels[l][m]))}</td>`).join('')}<td>${s.labels[l].dice.n}</td></tr>`,
  )
  rows.push(
    `<tr class="total"><td>all (case × label)</td>${METRIC_NAMES.map((m) => `<td>${e(meanStd(s.overall[m]))}</td>`).join('')}<td>${s.overall.dice.n}</td></tr>`,
  )
  let html = `<table><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`
  if (s.folds && t.folds.length > 1) {
    const fh = `<tr><th>label</th><th>metric</th>${t.folds.map((f) => `<th>fold ${e(f)}</th>`).join('')}<th>mean ± std of folds</th></tr>`
    const fr: string[] = []
    for (const l of [...labels, 'all']) {
      for (const m of ['dice', 'hd95'] as MetricName[]) {
        const f = l === 'all' ? s.foldsOverall?.[m] : s.folds[l]?.[m]
        if (!f) continue
        fr.push(
          `<tr><td>${e(l === 'all' ? 'all' : `${l} ${t.labels[l] ?? ''}`)}</td><td>${e(m)}</td>${t.folds.map((k) => `<td>${e(fmt(f.foldMeans[String(k)]))}</td>`).join('')}<td>${e(f.mean === null ? '–' : `${fmt(f.mean)}${f.std === null ? '' : ` ± ${fmt(f.std)}`}`)}</td></tr>`,
        )
      }
    }
    html += `<h3>Across folds</h3><table><thead>${fh}</thead><tbody>${fr.join('')}</tbody></table>`
  }
  return html
}

function metricsSection(t: EvaluationTable): string {
  const parts = [`<section><h2>Metrics: ${e(t.name)}</h2>`]
  parts.push(
    `<p>Grid: ${e(t.grid)}; distances in mm${t.voxelUnits ? ' (voxel units in the per-case table too)' : ''}; NSD tolerance ${e(t.nsdTolerance)} mm; ${e(new Set(t.rows.map((r) => `${r.fold}/${r.caseId}`)).size)} case(s); run(s) ${e(t.runIds.join(', ') || '–')}.</p>`,
  )
  parts.push(summaryTable(t, t.summary, ''))
  if (t.voxelUnits && t.summaryVoxel)
    parts.push('<h3>Distances in voxel units</h3>', summaryTable(t, t.summaryVoxel, 'voxel'))
  parts.push('<h3>Distribution per label</h3><div class="charts">')
  for (const m of METRIC_NAMES) {
    parts.push(
      boxPlot(
        m === 'dice' ? 'Dice per label' : `${m.toUpperCase()} per label`,
        Object.keys(t.summary.labels).map((l) => ({
          name: `${l} ${t.labels[l] ?? ''}`.trim(),
          summary: t.summary.labels[l][m],
        })),
        { yLabel: UNITS[m] ? `${m} (${UNITS[m]})` : m },
      ),
    )
  }
  parts.push('</div>')
  if (t.skipped.length)
    parts.push(
      `<p class="muted">Skipped: ${t.skipped.map((s) => `${e(s.caseId)} (${e(s.reason)})`).join('; ')}</p>`,
    )
  const vh = t.voxelUnits ? '<th>HD95 (vox)</th><th>ASSD (vox)</th><th>NSD (vox)</th>' : ''
  const rows = [...t.rows]
    .sort(
      (a, b) =>
        String(a.fold).localeCompare(String(b.fold), 'en', { numeric: true }) ||
        a.caseId.localeCompare(b.caseId, 'en', { numeric: true }) ||
        a.label - b.label,
    )
    .map(
      (r) =>
        `<tr class="case"><td>${e(r.caseId)}</td><td>${e(r.fold ?? '')}</td><td>${e(r.label)} ${e(r.labelName)}</td><td>${e(fmt(r.dice))}</td><td>${e(fmt(r.hd95))}</td><td>${e(fmt(r.assd))}</td><td>${e(fmt(r.nsd))}</td>${t.voxelUnits ? `<td>${e(fmt(r.hd95Voxel))}</td><td>${e(fmt(r.assdVoxel))}</td><td>${e(fmt(r.nsdVoxel))}</td>` : ''}<td class="muted">${e(r.reason ?? '')}</td></tr>`,
    )
  parts.push(
    `<h3>Per case</h3><table class="cases"><thead><tr><th>case</th><th>fold</th><th>label</th><th>Dice</th><th>HD95 (mm)</th><th>ASSD (mm)</th><th>NSD</th>${vh}<th>note</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
  )
  parts.push('</section>')
  return parts.join('')
}

function comparisonSection(a: EvaluationTable, b: EvaluationTable, c: ComparisonResult): string {
  const parts = [`<section><h2>Comparison: ${e(c.a.name)} (a) vs ${e(c.b.name)} (b)</h2>`]
  parts.push(
    '<p>Paired on the cases both runs scored. Delta = b − a. p: two-sided Wilcoxon signed-rank test of the per-case deltas (exact for small samples, see docs/metrics.md). Higher is better for Dice and NSD, lower for HD95 and ASSD.</p>',
  )
  const head =
    '<tr><th>label</th><th>metric</th><th>n</th><th>mean a</th><th>mean b</th><th>mean Δ</th><th>median Δ</th><th>p</th><th>excluded</th></tr>'
  const rows: string[] = []
  for (const [label, per] of Object.entries(c.labels)) {
    for (const [metric, r] of Object.entries(per)) {
      const sig = r.wilcoxon && r.wilcoxon.pvalue < 0.05 ? ' class="sig"' : ''
      rows.push(
        `<tr${sig}><td>${e(label)} ${e(c.labelNames[label] ?? '')}</td><td>${e(metric)}</td><td>${r.n}</td><td>${e(fmt(r.meanA))}</td><td>${e(fmt(r.meanB))}</td><td>${e(fmt(r.meanDelta))}</td><td>${e(fmt(r.medianDelta))}</td><td>${e(fmtP(r.wilcoxon?.pvalue))}</td><td>${r.excluded.length ? e(r.excluded.map((x) => `${x.caseId}: ${x.reason}`).join('; ')) : ''}</td></tr>`,
      )
    }
  }
  parts.push(`<table><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`)
  // Box plots: a vs b per label for Dice and HD95.
  parts.push('<div class="charts">')
  for (const m of ['dice', 'hd95'] as MetricName[]) {
    const groups: { name: string; summary: Summary | undefined }[] = []
    for (const l of Object.keys(a.summary.labels)) {
      groups.push({ name: `${l} a`, summary: a.summary.labels[l]?.[m] })
      groups.push({ name: `${l} b`, summary: b.summary.labels[l]?.[m] })
    }
    parts.push(
      boxPlot(`${m === 'dice' ? 'Dice' : 'HD95'}: a vs b per label`, groups, {
        yLabel: UNITS[m] ? `${m} (${UNITS[m]})` : m,
      }),
    )
  }
  parts.push('</div>')
  const mean = c.labels.mean?.dice
  if (mean) {
    const rr = mean.cases.map(
      (x) =>
        `<tr class="delta"><td>${e(x.caseId)}</td><td>${e(fmt(x.a))}</td><td>${e(fmt(x.b))}</td><td class="${x.delta >= 0 ? 'up' : 'down'}">${e(fmt(x.delta))}</td></tr>`,
    )
    parts.push(
      `<h3>Per case: mean Dice over labels</h3><table><thead><tr><th>case</th><th>a</th><th>b</th><th>Δ (b − a)</th></tr></thead><tbody>${rr.join('')}</tbody></table>`,
    )
  }
  parts.push('</section>')
  return parts.join('')
}

const ROLE_TEXT: Record<'worst' | 'median', string> = {
  worst: 'worst case (lowest mean Dice)',
  median: 'median case (by mean Dice)',
}

/** The worst and the median case: one slice of image, ground truth and prediction each. */
export function slicesSection(slices: ReportSlice[]): string {
  const parts = ['<section class="slices"><h2>Example cases</h2>']
  parts.push(
    '<p>For the worst and the median case by mean Dice over the scored labels: the axial slice with the most ground-truth or predicted voxels, drawn in radiological convention (patient right on the left, anterior at the top). Panels: image (1st–99th percentile window), image + ground truth, image + prediction; labels filled at half opacity.</p>',
  )
  for (const s of slices) {
    const role = s.roles.map((r) => ROLE_TEXT[r]).join(' and ')
    const title = `${s.caseId}: ${role}`
    const uri = `data:image/png;base64,${Buffer.from(s.png).toString('base64')}`
    const legend = s.labels
      .map(
        (l) =>
          `<span class="swatch"><span class="chip" style="background:rgb(${l.color.join(',')})"></span>${e(l.value)} ${e(l.name)}</span>`,
      )
      .join(' ')
    parts.push(
      `<figure class="slice" data-case="${e(s.caseId)}" data-roles="${e(s.roles.join(' '))}"><img src="${uri}" width="${s.width}" height="${s.height}" alt="${e(`${title}; slice ${s.index} of ${s.count}: image, ground truth, prediction`)}"/><figcaption><strong>${e(title)}</strong> — ${e(s.set)}${s.fold !== null && s.fold !== undefined ? `, fold ${e(s.fold)}` : ''}; mean Dice ${e(fmt(s.meanDice))}; slice ${e(s.index)} of ${e(s.count)} (voxel axis ${'ijk'[s.axis]}); ground truth ${e(s.foreground.groundTruth)} voxels, prediction ${e(s.foreground.prediction)} voxels on this slice.<br/><span class="muted">image · ground truth · prediction</span> ${legend}</figcaption></figure>`,
    )
  }
  parts.push('</section>')
  return parts.join('')
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:#f4f5f7}table.kv th{background:#f8f8fa;font-weight:600;white-space:nowrap}tr.total td{font-weight:600;background:#fafafa}
tr.sig td{background:#fff7e0}td.up{color:#0a7a2f}td.down{color:#b3261e}.muted{color:#6b6b70}
.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{border:1px solid #eee;background:#fff}
svg .ct{font-size:13px;font-weight:600;fill:#1d1d1f}svg .tick,svg .legend{font-size:11px;fill:#444}svg .grid{stroke:#eee}svg .axis{stroke:#888}svg .whisk{stroke:#666}
figure.slice{margin:12px 0}figure.slice img{display:block;image-rendering:pixelated;border:1px solid #ddd;background:#000}
.swatch{display:inline-block;margin-right:10px}.chip{display:inline-block;width:10px;height:10px;margin-right:4px;border:1px solid #888;vertical-align:middle}
@media print{.charts{display:block}}
`

/** Render the report as one self-contained HTML document (well-formed XML too). */
export function renderReport(input: ReportInput): string {
  const created = input.createdAt ?? new Date().toISOString()
  const body: string[] = []
  body.push(
    `<header><h1>${e(input.title)}</h1><p class="muted">DSD Studio ${e(appVersion())} — generated ${e(created)}</p></header>`,
  )
  if (input.runs.length === 1) body.push(runSection(input.runs[0]))
  else if (input.runs.length > 1) body.push(runsSection(input.runs))
  if (input.table) body.push(metricsSection(input.table))
  if (input.slices?.length) body.push(slicesSection(input.slices))
  if (input.comparison && input.table) {
    body.push(metricsSection(input.comparison.b))
    body.push(comparisonSection(input.table, input.comparison.b, input.comparison.result))
  }
  if (!input.runs.length && !input.table) body.push('<p class="muted">Nothing to report.</p>')
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/><title>${e(input.title)}</title><style>${STYLE}</style></head>
<body>${body.join('\n')}</body></html>
`
}

/** Read what a run folder holds for the report (config, state, manifest, log). */
export async function loadReportRun(workspace: string, runId: string): Promise<ReportRun> {
  const files = runFiles(workspace, runId)
  const config = await readRunConfig(workspace, runId)
  const readJson = async (p: string) => {
    if (!existsSync(p)) return null
    try {
      return JSON.parse(await readFile(p, 'utf8')) as Record<string, unknown>
    } catch {
      throw new DsdError('RUN_FILE_CORRUPT', `${p}: not valid JSON; restore it or delete the run`, {
        file: p,
      })
    }
  }
  const state = (await readJson(files.state)) as RunState | null
  const manifest = await readJson(files.manifest)
  const log = existsSync(files.log) ? await readRunLog(workspace, runId) : []
  return { runId, config, state, manifest, log }
}

/** Write a report file atomically. */
export async function writeReport(path: string, input: ReportInput): Promise<string> {
  await atomicWriteFile(path, renderReport(input))
  return path
}
