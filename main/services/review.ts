/**
 * The Review page's read-only commands: the prediction sets of a workspace (`predictions.list`),
 * a set's evaluated metrics with outlier flags (`metrics.get`), and what the case viewer needs
 * for one case (`review.case`: label names and colours, channels, the volume paths of the data
 * channel). Nothing here writes: metrics come from the tables `dsd evaluate` wrote.
 */
import type {
  MetricRow,
  MetricsTable,
  MetricSummary,
  PredictionSetRef,
  PredictionSetSummary,
  ReviewCase,
} from '../contract/review'
import { DsdError } from '../errors'
import type { Summary } from '../metrics/stats'
import { readManifest, type DatasetManifest } from '../workspace/datasets'
import { readRunConfig } from '../workspace/runs'
import type { EvaluationTable } from './evaluation'
import { findPredictionSets, readSet, setKey, setTables } from './prediction-sets'
import { volumePath, type VolumeSource } from './volumes'

/**
 * Display colours by class index (1, 2, …), after ITK-SNAP's default label colours, which
 * Slicer and ITK-SNAP users know; the list repeats beyond its length.
 */
export const LABEL_COLORS: [number, number, number][] = [
  [255, 0, 0],
  [0, 255, 0],
  [0, 0, 255],
  [255, 255, 0],
  [0, 255, 255],
  [255, 0, 255],
  [255, 239, 213],
  [0, 0, 205],
  [205, 133, 63],
  [210, 180, 140],
  [102, 205, 170],
  [0, 0, 128],
  [0, 139, 139],
  [46, 139, 87],
  [255, 228, 225],
  [106, 90, 205],
]

export function labelColor(value: number): [number, number, number] {
  return LABEL_COLORS[(value - 1 + LABEL_COLORS.length * 16) % LABEL_COLORS.length]
}

/** Outlier rule: Dice below median − 2 × IQR of the label's Dice over the set's cases. */
export const OUTLIER_IQR_FACTOR = 2

function ensembleTitle(name: string, models: number): string {
  return models > 1 ? `${name} (ensemble of ${models})` : name
}

async function runVariant(workspace: string, ref: PredictionSetRef): Promise<string | null> {
  if (ref.kind !== 'run') return null
  try {
    return (await readRunConfig(workspace, ref.runId)).variant
  } catch {
    return null
  }
}

/** `predictions.list`: every readable prediction set; unreadable ones are listed as problems. */
export async function listPredictionSets(
  workspace: string,
): Promise<{ sets: PredictionSetSummary[]; problems: { where: string; message: string }[] }> {
  const sets: PredictionSetSummary[] = []
  const problems: { where: string; message: string }[] = []
  for (const ref of await findPredictionSets(workspace)) {
    try {
      const { dir, manifest: m } = await readSet(workspace, ref)
      const tables = await setTables(workspace, ref, dir)
      sets.push({
        ref,
        key: setKey(ref),
        title: ref.kind === 'run' ? `${ref.runId} · ${ref.set}` : ensembleTitle(ref.name, m.runIds.length || m.models.length),
        datasetId: m.datasetId,
        runIds: m.runIds,
        variant: await runVariant(workspace, ref),
        fold: m.fold,
        which: m.which,
        tta: m.settings?.tta ?? false,
        createdAt: m.createdAt,
        classes: m.classes,
        cases: m.cases.map((c) => ({ caseId: c.caseId, hasGroundTruth: c.label !== null })),
        metrics: tables.map((t) => ({
          name: t.name,
          grid: t.table.grid,
          createdAt: t.table.createdAt,
          cases: new Set(t.table.rows.map((r) => r.caseId)).size,
        })),
      })
    } catch (err) {
      problems.push({ where: setKey(ref), message: (err as Error).message })
    }
  }
  return { sets, problems }
}

function summaryOf(s: Summary | undefined): MetricSummary {
  return {
    n: s?.n ?? 0,
    mean: s?.mean ?? null,
    std: s?.std ?? null,
    median: s?.median ?? null,
    q1: s?.box?.q1 ?? null,
    q3: s?.box?.q3 ?? null,
  }
}

/** Outlier thresholds per label and the rows with their flags (pure; exported for tests). */
export function flagOutliers(t: Pick<EvaluationTable, 'rows' | 'summary'>): {
  rows: MetricRow[]
  thresholds: MetricsTable['thresholds']
} {
  const thresholds: MetricsTable['thresholds'] = []
  const low = new Map<number, number | null>()
  for (const [label, per] of Object.entries(t.summary.labels)) {
    const d = per.dice
    const iqr = d?.box ? d.box.q3 - d.box.q1 : null
    const lowDice = d?.median !== null && d?.median !== undefined && iqr !== null ? d.median - OUTLIER_IQR_FACTOR * iqr : null
    thresholds.push({ label: Number(label), median: d?.median ?? null, iqr, lowDice })
    low.set(Number(label), lowDice)
  }
  const rows: MetricRow[] = t.rows.map((r) => {
    const lowDice = low.get(r.label) ?? null
    const outlier = r.emptyPrediction
      ? 'empty-prediction'
      : r.dice !== null && lowDice !== null && r.dice < lowDice
        ? 'low-dice'
        : null
    return {
      caseId: r.caseId,
      fold: r.fold,
      label: r.label,
      labelName: r.labelName,
      dice: r.dice,
      hd95: r.hd95,
      assd: r.assd,
      nsd: r.nsd,
      emptyPrediction: r.emptyPrediction,
      reason: r.reason,
      outlier,
    }
  })
  return { rows, thresholds }
}

/** `metrics.get`: a set's table (default: the newest on the original grid). */
export async function getMetrics(workspace: string, ref: PredictionSetRef, name?: string): Promise<MetricsTable> {
  const { dir } = await readSet(workspace, ref)
  const tables = await setTables(workspace, ref, dir)
  const chosen = name ? tables.find((t) => t.name === name) : (tables.find((t) => t.table.grid === 'original') ?? tables[0])
  if (!chosen) {
    const how =
      ref.kind === 'run'
        ? `dsd evaluate --run ${ref.runId}${ref.set === 'last' ? '' : ` --predictions ${ref.set}`}`
        : `dsd evaluate --dir ${dir}`
    throw new DsdError(
      'METRICS_NOT_FOUND',
      name
        ? `prediction set ${setKey(ref)} has no metric table "${name}" (it has: ${tables.map((t) => t.name).join(', ') || 'none'})`
        : `prediction set ${setKey(ref)} is not evaluated yet; run \`${how}\``,
      { set: setKey(ref) },
      name ? undefined : `prediction set ${setKey(ref)} is not evaluated yet; choose Evaluate on the Review page`,
    )
  }
  const t = chosen.table
  const { rows, thresholds } = flagOutliers(t)
  const summary: MetricsTable['summary'] = {}
  for (const [label, per] of Object.entries(t.summary.labels)) {
    summary[label] = {
      dice: summaryOf(per.dice),
      hd95: summaryOf(per.hd95),
      assd: summaryOf(per.assd),
      nsd: summaryOf(per.nsd),
    }
  }
  const o = t.summary.overall
  summary.all = { dice: summaryOf(o.dice), hd95: summaryOf(o.hd95), assd: summaryOf(o.assd), nsd: summaryOf(o.nsd) }
  return {
    ref,
    table: chosen.name,
    grid: t.grid,
    createdAt: t.createdAt,
    nsdTolerance: t.nsdTolerance,
    labels: Object.entries(t.labels)
      .map(([value, name]) => ({ value: Number(value), name }))
      .sort((a, b) => a.value - b.value),
    folds: t.folds,
    rows,
    summary,
    thresholds,
    skipped: t.skipped,
  }
}

function modalityOf(channel: string): 'CT' | 'MR' | 'other' {
  if (/\bCT\b|computed tomography/i.test(channel)) return 'CT'
  if (/MR|T1|T2|FLAIR|ADC|DWI|PD|SWI|DIXON/i.test(channel)) return 'MR'
  return 'other'
}

/** `review.case`: label names and colours, channels and the volume paths of one case. */
export async function reviewCase(workspace: string, ref: PredictionSetRef, caseId: string): Promise<ReviewCase> {
  const { dir, manifest: m } = await readSet(workspace, ref)
  const index = m.cases.findIndex((c) => c.caseId === caseId)
  if (index < 0) {
    throw new DsdError('CASE_NOT_FOUND', `prediction set ${setKey(ref)} (${dir}) has no case "${caseId}"`, {
      caseId,
      set: setKey(ref),
    })
  }
  const c = m.cases[index]
  // Dataset cases are read through the dataset (shared by every set of that dataset, so two
  // runs compared on one case load the image once); file cases through the set.
  let dataset: DatasetManifest | null = null
  if (m.datasetId) {
    try {
      dataset = await readManifest(workspace, m.datasetId)
    } catch {
      dataset = null
    }
  }
  const dsCase = dataset?.cases.find((x) => x.id === caseId) ?? null
  const source: VolumeSource = dataset && dsCase ? { kind: 'dataset', datasetId: dataset.id } : ref
  let channels = dataset && dsCase ? dataset.channels : c.images.map((_, i) => `channel ${i}`)
  if (!dsCase && c.images.length === 1) {
    // One file: a 4D NIfTI holds every channel (its header says how many).
    const { readVolumeHeader } = await import('../data/volume-io')
    const n = await readVolumeHeader(c.images[0]).then((h) => h.channels).catch(() => 1)
    channels = n > 1 ? Array.from({ length: n }, (_, i) => `channel ${i}`) : ['image']
  }
  const hasLabel = dsCase ? dsCase.label !== null : c.label !== null
  const classes = m.labelMap?.classes ?? dataset?.labelMap.classes ?? {}
  const labels = Object.entries(classes)
    .map(([value, name]) => ({ value: Number(value), name }))
    .filter((l) => l.value > 0)
    .sort((a, b) => a.value - b.value)
    .map((l) => ({ ...l, color: labelColor(l.value) }))
  return {
    ref,
    caseId,
    datasetId: m.datasetId,
    labels,
    channels,
    modality: channels.map(modalityOf),
    volumes: {
      images: channels.map((_, ch) => volumePath({ source, caseId, what: 'image', channel: ch })),
      groundTruth: hasLabel ? volumePath({ source, caseId, what: 'label', channel: 0 }) : null,
      prediction: volumePath({ source: ref, caseId, what: 'prediction', channel: 0 }),
    },
    index,
    count: m.cases.length,
  }
}
