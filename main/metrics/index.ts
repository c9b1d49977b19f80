/**
 * Segmentation metrics (Dice, HD95, ASSD, NSD) on typed arrays, exact Euclidean distance
 * transforms, surfaces and evaluation statistics. Pure code: usable in Node, workers and the
 * renderer. See docs/metrics.md.
 */
export {
  computeMetrics,
  type LabelMetrics,
  type MetricsOptions,
  type MetricsResult,
} from './metrics'
export { diceByClass } from './dice'
export { createWorkspace, distancesAtQueries, edt, squaredEdt, type EdtWorkspace } from './edt'
export { markLabelSurface, surface, type Box, type LabelData } from './surface'
export {
  boxStats,
  mean,
  median,
  METRIC_NAMES,
  normalSf,
  pairedComparison,
  percentile,
  rankAverage,
  signedRankCounts,
  sortedPercentile,
  std,
  sum,
  summarize,
  summarizeCases,
  wilcoxon,
  type BoxStats,
  type CaseMetrics,
  type CasesSummary,
  type FoldSummary,
  type MetricName,
  type PairedCase,
  type PairedComparison,
  type Summary,
  type WilcoxonMethod,
  type WilcoxonOptions,
  type WilcoxonResult,
} from './stats'
