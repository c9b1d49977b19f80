/**
 * Statistics for evaluation: sums, mean, standard deviation, numpy-compatible percentiles,
 * box-plot quartiles, the Wilcoxon signed-rank test and summaries of per-case metrics.
 *
 * Conventions (stated so numbers can be reproduced elsewhere):
 * - `std` is the **sample** standard deviation (ddof = 1, like `numpy.std(x, ddof=1)` and
 *   pandas' default); pass `ddof = 0` for the population one.
 * - `percentile` is numpy's default `method='linear'` (Hyndman & Fan type 7).
 * - `wilcoxon` follows `scipy.stats.wilcoxon` defaults (zero_method='wilcox', no continuity
 *   correction, two-sided) with SciPy ≥ 1.13's `method='auto'` rules; see its doc comment.
 * Low-level functions return NaN for an empty input, as numpy does; the summary helpers turn
 * that into null so that NaN never reaches a file.
 */

/** Sum with numpy's pairwise summation (blocks of 128, 8 accumulators): error O(log n · ε). */
export function sum(values: ArrayLike<number>, start = 0, end = values.length): number {
  const n = end - start
  if (n < 8) {
    let s = -0
    for (let i = start; i < end; i++) s += values[i]
    return s
  }
  if (n <= 128) {
    let r0 = values[start]
    let r1 = values[start + 1]
    let r2 = values[start + 2]
    let r3 = values[start + 3]
    let r4 = values[start + 4]
    let r5 = values[start + 5]
    let r6 = values[start + 6]
    let r7 = values[start + 7]
    let i = start + 8
    for (; i < end - (n % 8); i += 8) {
      r0 += values[i]
      r1 += values[i + 1]
      r2 += values[i + 2]
      r3 += values[i + 3]
      r4 += values[i + 4]
      r5 += values[i + 5]
      r6 += values[i + 6]
      r7 += values[i + 7]
    }
    let s = r0 + r1 + (r2 + r3) + (r4 + r5 + (r6 + r7))
    for (; i < end; i++) s += values[i]
    return s
  }
  let half = n >> 1
  half -= half % 8
  return sum(values, start, start + half) + sum(values, start + half, end)
}

/** Arithmetic mean; NaN when empty. */
export function mean(values: ArrayLike<number>): number {
  return values.length === 0 ? NaN : sum(values) / values.length
}

/** Standard deviation with `ddof` delta degrees of freedom (default 1: the sample std). */
export function std(values: ArrayLike<number>, ddof = 1): number {
  const n = values.length
  if (n - ddof <= 0) return NaN
  const m = mean(values)
  const sq = new Float64Array(n)
  for (let i = 0; i < n; i++) sq[i] = (values[i] - m) * (values[i] - m)
  return Math.sqrt(sum(sq) / (n - ddof))
}

/**
 * The q-th percentile (0–100) with numpy's default linear interpolation, including numpy's
 * way of interpolating (so results match `numpy.percentile` bit for bit on the same data).
 * Sorts a copy, or `values` itself when `inPlace` (it must then be a Float64Array).
 */
export function percentile(values: ArrayLike<number>, q: number, inPlace = false): number {
  const n = values.length
  if (n === 0) return NaN
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile: q must be in [0, 100], got ${q}`)
  const a = inPlace && values instanceof Float64Array ? values : Float64Array.from(values)
  a.sort()
  return sortedPercentile(a, q)
}

/** numpy's linear percentile of an ascending-sorted array. */
export function sortedPercentile(a: ArrayLike<number>, q: number): number {
  const n = a.length
  if (n === 0) return NaN
  const virtual = (n - 1) * (q / 100)
  if (virtual >= n - 1) return a[n - 1]
  const lo = Math.floor(virtual)
  const gamma = virtual - lo
  const x = a[lo]
  const y = a[lo + 1]
  const diff = y - x
  return gamma >= 0.5 ? y - diff * (1 - gamma) : x + diff * gamma
}

/** Median (numpy's: the mean of the two middle values for an even count). */
export function median(values: ArrayLike<number>): number {
  return percentile(values, 50)
}

/** Five-number summary plus Tukey whiskers (1.5 IQR) and outliers, for box plots. */
export interface BoxStats {
  min: number
  q1: number
  median: number
  q3: number
  max: number
  /** Smallest value ≥ q1 − 1.5 IQR. */
  whiskerLow: number
  /** Largest value ≤ q3 + 1.5 IQR. */
  whiskerHigh: number
  /** Values outside the whiskers, ascending. */
  outliers: number[]
}

/** Quartiles (numpy linear percentiles 25/50/75) and whiskers; null when empty. */
export function boxStats(values: ArrayLike<number>): BoxStats | null {
  if (values.length === 0) return null
  const a = Float64Array.from(values).sort()
  const q1 = sortedPercentile(a, 25)
  const q3 = sortedPercentile(a, 75)
  const iqr = q3 - q1
  const lowFence = q1 - 1.5 * iqr
  const highFence = q3 + 1.5 * iqr
  let whiskerLow = a[0]
  let whiskerHigh = a[a.length - 1]
  const outliers: number[] = []
  for (const v of a)
    if (v >= lowFence) {
      whiskerLow = v
      break
    }
  for (let i = a.length - 1; i >= 0; i--)
    if (a[i] <= highFence) {
      whiskerHigh = a[i]
      break
    }
  for (const v of a) if (v < lowFence || v > highFence) outliers.push(v)
  return {
    min: a[0],
    q1,
    median: sortedPercentile(a, 50),
    q3,
    max: a[a.length - 1],
    whiskerLow,
    whiskerHigh,
    outliers,
  }
}

// ---------------------------------------------------------------------------------------------
// Normal distribution tail

/** erfc(x) for x ≥ 0 to about 1e-15 relative: series for erf below 2, continued fraction above. */
function erfcPos(x: number): number {
  if (x < 2) {
    // erf(x) = 2/√π · e^{−x²} · Σ 2ⁿ x^{2n+1} / (1·3·…·(2n+1)); all terms positive.
    let term = x
    let s = x
    const x2 = 2 * x * x
    for (let n = 1; n < 200; n++) {
      term *= x2 / (2 * n + 1)
      s += term
      if (term < s * 1e-17) break
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * s
  }
  // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), modified Lentz.
  const tiny = 1e-300
  let f = x
  let c = x
  let d = 0
  for (let n = 1; n < 500; n++) {
    const a = n / 2
    d = x + a * d
    d = d === 0 ? tiny : d
    c = x + a / c
    c = c === 0 ? tiny : c
    d = 1 / d
    const delta = c * d
    f *= delta
    if (Math.abs(delta - 1) < 1e-16) break
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f
}

/** Upper tail of the standard normal, P(Z > z). */
export function normalSf(z: number): number {
  if (Number.isNaN(z)) return NaN
  return z >= 0 ? 0.5 * erfcPos(z / Math.SQRT2) : 1 - 0.5 * erfcPos(-z / Math.SQRT2)
}

// ---------------------------------------------------------------------------------------------
// Wilcoxon signed-rank test

/** Average ranks (1-based) of `values` with ties sharing the mean rank, plus tie group sizes. */
export function rankAverage(values: ArrayLike<number>): { ranks: Float64Array; ties: number[] } {
  const n = values.length
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b])
  const ranks = new Float64Array(n)
  const ties: number[] = []
  for (let i = 0; i < n;) {
    let j = i + 1
    while (j < n && values[order[j]] === values[order[i]]) j++
    const r = (i + 1 + j) / 2 // mean of ranks i+1 … j
    for (let m = i; m < j; m++) ranks[order[m]] = r
    if (j - i > 1) ties.push(j - i)
    i = j
  }
  return { ranks, ties }
}

/**
 * Null distribution of the signed-rank statistic R+ for n untied, nonzero differences:
 * counts[s] = number of subsets of {1 … n} with sum s (total 2ⁿ; exact in float64 up to
 * n = 52).
 */
export function signedRankCounts(n: number): Float64Array {
  const max = (n * (n + 1)) / 2
  const c = new Float64Array(max + 1)
  c[0] = 1
  for (let k = 1, top = 0; k <= n; k++) {
    top += k
    for (let s = top; s >= k; s--) c[s] += c[s - k]
  }
  return c
}

export type WilcoxonMethod = 'exact' | 'permutation' | 'asymptotic'

/** Options of `wilcoxon`, named after SciPy's. */
export interface WilcoxonOptions {
  /** 'auto' (default) picks as SciPy ≥ 1.13 does; see `wilcoxon`. */
  method?: 'auto' | WilcoxonMethod
  /** Continuity correction of the normal approximation (SciPy's default: false). */
  correction?: boolean
  alternative?: 'two-sided' | 'greater' | 'less'
}

/** Result of `wilcoxon`. */
export interface WilcoxonResult {
  /** min(R+, R−) for the two-sided test, R+ otherwise (SciPy's `statistic`). */
  statistic: number
  pvalue: number
  /** Sum of the ranks of the positive differences. */
  rPlus: number
  rMinus: number
  /** The method actually used. */
  method: WilcoxonMethod
  /** Number of differences given, and how many were zero (dropped: zero_method 'wilcox'). */
  n: number
  zeros: number
  /** Whether nonzero |differences| had ties. */
  ties: boolean
  /** Normal-approximation z of R+ (after any continuity correction); only for 'asymptotic'. */
  z?: number
}

/**
 * Wilcoxon signed-rank test of the differences d = x − y (or of x itself when y is omitted):
 * is the distribution of d symmetric about 0? Zeros are dropped (SciPy's default
 * zero_method='wilcox'); ties get average ranks.
 *
 * `method: 'auto'` implements SciPy ≥ 1.13 (checked against 1.17's `_wilcoxon.py`):
 * - n > 50 (n counts zeros too): normal approximation;
 * - n ≤ 50 and no ties and no zeros: exact null distribution of R+;
 * - n ≤ 13 with ties or zeros: exact permutation test over all 2ⁿ sign flips (what SciPy's
 *   `PermutationMethod` does deterministically at that size);
 * - otherwise: normal approximation.
 * The normal approximation uses mean m(m+1)/4 and variance (m(m+1)(2m+1) − Σ(t³ − t)/2)/24
 * over the m nonzero differences with tie groups t, optional continuity correction.
 * (SciPy 1.10–1.12 used the exact distribution for every n ≤ 50 without zeros, even with ties;
 * that is not exact with ties, so we follow the newer rule.) When every difference is zero the
 * test has no evidence either way: p = 1.
 */
export function wilcoxon(
  x: ArrayLike<number>,
  y?: ArrayLike<number>,
  options: WilcoxonOptions = {},
): WilcoxonResult {
  const n = x.length
  if (y && y.length !== n)
    throw new RangeError(`wilcoxon: x has ${n} values but y has ${y.length}; pairs must match`)
  const alternative = options.alternative ?? 'two-sided'
  const d: number[] = []
  let zeros = 0
  for (let i = 0; i < n; i++) {
    const v = y ? x[i] - y[i] : x[i]
    if (!Number.isFinite(v)) throw new RangeError(`wilcoxon: difference ${i} is ${v}`)
    if (v === 0) zeros++
    else d.push(v)
  }
  if (n === 0) throw new RangeError('wilcoxon: no pairs')
  const m = d.length
  const { ranks, ties: tieGroups } = rankAverage(d.map(Math.abs))
  let rPlus = 0
  let rMinus = 0
  for (let i = 0; i < m; i++) {
    if (d[i] > 0) rPlus += ranks[i]
    else rMinus += ranks[i]
  }
  const ties = tieGroups.length > 0
  let method: WilcoxonMethod
  if (!options.method || options.method === 'auto') {
    if (n > 50) method = 'asymptotic'
    else if (!ties && zeros === 0) method = 'exact'
    else if (n <= 13) method = 'permutation'
    else method = 'asymptotic'
  } else method = options.method
  const statistic = alternative === 'two-sided' ? Math.min(rPlus, rMinus) : rPlus
  const base = { statistic, rPlus, rMinus, method, n, zeros, ties }
  if (m === 0) return { ...base, pvalue: 1 }

  if (method === 'asymptotic') {
    const mn = (m * (m + 1)) / 4
    let tie = 0
    for (const t of tieGroups) tie += t * t * t - t
    const se = Math.sqrt((m * (m + 1) * (2 * m + 1) - tie / 2) / 24)
    let z = (rPlus - mn) / se
    if (options.correction) {
      const sign = alternative === 'greater' ? 1 : alternative === 'less' ? -1 : Math.sign(z)
      z -= (sign * 0.5) / se
    }
    const p =
      alternative === 'greater'
        ? normalSf(z)
        : alternative === 'less'
          ? normalSf(-z)
          : Math.min(1, 2 * normalSf(Math.abs(z)))
    return { ...base, pvalue: p, z }
  }

  let less: number // P(R+ ≤ observed)
  let greater: number // P(R+ ≥ observed)
  if (method === 'exact') {
    // Like SciPy: round a non-integral R+ (ties) up for the lower tail, down for the upper.
    const c = signedRankCounts(m)
    const total = 2 ** m
    const hi = Math.ceil(rPlus)
    const lo = Math.floor(rPlus)
    let cLess = 0
    for (let s = 0; s <= Math.min(hi, c.length - 1); s++) cLess += c[s]
    let cGreater = 0
    for (let s = Math.max(lo, 0); s < c.length; s++) cGreater += c[s]
    less = cLess / total
    greater = cGreater / total
  } else {
    if (m > 20)
      throw new RangeError(
        `wilcoxon: an exact permutation test over 2^${m} sign flips is too large`,
      )
    // All 2^m sign assignments of the nonzero ranks (zeros never change R+).
    const total = 2 ** m
    const tol = Math.abs(rPlus) * 100 * Number.EPSILON
    let cLess = 0
    let cGreater = 0
    for (let mask = 0; mask < total; mask++) {
      let s = 0
      for (let i = 0; i < m; i++) if (mask & (1 << i)) s += ranks[i]
      if (s <= rPlus + tol) cLess++
      if (s >= rPlus - tol) cGreater++
    }
    less = cLess / total
    greater = cGreater / total
  }
  const p =
    alternative === 'less'
      ? less
      : alternative === 'greater'
        ? greater
        : Math.min(1, 2 * Math.min(less, greater))
  return { ...base, pvalue: Math.min(1, Math.max(0, p)) }
}

// ---------------------------------------------------------------------------------------------
// Summaries of per-case metrics

/** The metric names computeMetrics reports. */
export const METRIC_NAMES = ['dice', 'hd95', 'assd', 'nsd'] as const
export type MetricName = (typeof METRIC_NAMES)[number]

/** Summary of one metric over cases; null fields when there is no value. */
export interface Summary {
  /** Number of values used (non-null). */
  n: number
  /** Number of null values left out (e.g. HD95 of an empty prediction). */
  missing: number
  mean: number | null
  /** Sample standard deviation (ddof = 1); null for fewer than 2 values. */
  std: number | null
  median: number | null
  box: BoxStats | null
}

/** Mean, sample std, median and box-plot numbers of the non-null values. */
export function summarize(values: ReadonlyArray<number | null | undefined>): Summary {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x))
  const fin = (x: number): number | null => (Number.isFinite(x) ? x : null)
  return {
    n: v.length,
    missing: values.length - v.length,
    mean: fin(mean(v)),
    std: fin(std(v)),
    median: fin(median(v)),
    box: boxStats(v),
  }
}

/** One case's metrics as computeMetrics returns them, tagged with its id and fold. */
export interface CaseMetrics {
  caseId: string
  fold?: string | number
  labels: Record<string, Partial<Record<MetricName, number | null>>>
}

/** Across folds: each fold's mean, then mean ± sample std of those fold means. */
export interface FoldSummary {
  foldMeans: Record<string, number | null>
  mean: number | null
  std: number | null
}

/** Summary of many cases, per label and metric, and pooled over labels. */
export interface CasesSummary {
  /** label → metric → summary over cases. */
  labels: Record<string, Record<MetricName, Summary>>
  /** metric → summary over every (case, label) cell (the paper's `aggregate().mean()`). */
  overall: Record<MetricName, Summary>
  /** label → metric → across-fold summary; only when every case has a fold. */
  folds?: Record<string, Record<MetricName, FoldSummary>>
  /** metric → across-fold summary of the per-fold means over all (case, label) cells. */
  foldsOverall?: Record<MetricName, FoldSummary>
}

function foldSummary(byFold: Map<string, (number | null | undefined)[]>): FoldSummary {
  const foldMeans: Record<string, number | null> = {}
  const means: number[] = []
  for (const [fold, vals] of [...byFold].sort((a, b) =>
    a[0].localeCompare(b[0], 'en', { numeric: true }),
  )) {
    const m = summarize(vals).mean
    foldMeans[fold] = m
    if (m !== null) means.push(m)
  }
  const s = summarize(means)
  return { foldMeans, mean: s.mean, std: s.std }
}

/**
 * Summaries of per-case metrics: mean ± sample std (and median, quartiles) per label and
 * metric, pooled over labels, and — when cases carry folds — across folds (the mean of each
 * fold, then mean ± std of the fold means, as "5-fold mean ± std" tables report).
 */
export function summarizeCases(cases: readonly CaseMetrics[]): CasesSummary {
  const labelKeys = [...new Set(cases.flatMap((c) => Object.keys(c.labels)))].sort(
    (a, b) => Number(a) - Number(b) || a.localeCompare(b),
  )
  const withFolds = cases.length > 0 && cases.every((c) => c.fold !== undefined)
  const labels: CasesSummary['labels'] = {}
  const folds: NonNullable<CasesSummary['folds']> = {}
  const pooled = {} as Record<MetricName, (number | null | undefined)[]>
  const pooledFolds = {} as Record<MetricName, Map<string, (number | null | undefined)[]>>
  for (const metric of METRIC_NAMES) {
    pooled[metric] = []
    pooledFolds[metric] = new Map()
  }
  for (const label of labelKeys) {
    labels[label] = {} as Record<MetricName, Summary>
    folds[label] = {} as Record<MetricName, FoldSummary>
    for (const metric of METRIC_NAMES) {
      const vals: (number | null | undefined)[] = []
      const byFold = new Map<string, (number | null | undefined)[]>()
      for (const c of cases) {
        const cell = c.labels[label]
        if (!cell) continue
        const v = cell[metric]
        vals.push(v)
        pooled[metric].push(v)
        if (withFolds) {
          const f = String(c.fold)
          if (!byFold.has(f)) byFold.set(f, [])
          byFold.get(f)!.push(v)
          if (!pooledFolds[metric].has(f)) pooledFolds[metric].set(f, [])
          pooledFolds[metric].get(f)!.push(v)
        }
      }
      labels[label][metric] = summarize(vals)
      if (withFolds) folds[label][metric] = foldSummary(byFold)
    }
  }
  const overall = {} as Record<MetricName, Summary>
  const foldsOverall = {} as Record<MetricName, FoldSummary>
  for (const metric of METRIC_NAMES) {
    overall[metric] = summarize(pooled[metric])
    if (withFolds) foldsOverall[metric] = foldSummary(pooledFolds[metric])
  }
  return withFolds ? { labels, overall, folds, foldsOverall } : { labels, overall }
}

/** One case of a paired comparison. */
export interface PairedCase {
  caseId: string
  a: number
  b: number
  /** b − a. */
  delta: number
}

/** Result of `pairedComparison`. */
export interface PairedComparison {
  /** Cases with a value in both runs, in the order of `a`. */
  cases: PairedCase[]
  /** Case ids left out, with the reason (missing from a run, or null there). */
  excluded: { caseId: string; reason: string }[]
  n: number
  meanDelta: number | null
  medianDelta: number | null
  /** Sample std of the deltas. */
  stdDelta: number | null
  /** Wilcoxon signed-rank test of the deltas (two-sided unless asked); null for no pairs. */
  wilcoxon: WilcoxonResult | null
}

/**
 * Paired comparison of two runs on the same cases (e.g. one label's Dice per case for Basic
 * vs DSD): per-case deltas b − a, their mean / median / std and the Wilcoxon signed-rank
 * p-value. Cases missing or null in either run are listed in `excluded`, not dropped silently.
 */
export function pairedComparison(
  a: Readonly<Record<string, number | null | undefined>>,
  b: Readonly<Record<string, number | null | undefined>>,
  options: WilcoxonOptions = {},
): PairedComparison {
  const cases: PairedCase[] = []
  const excluded: PairedComparison['excluded'] = []
  const valid = (v: number | null | undefined): v is number =>
    typeof v === 'number' && Number.isFinite(v)
  for (const caseId of Object.keys(a)) {
    const va = a[caseId]
    const vb = b[caseId]
    if (!(caseId in b)) excluded.push({ caseId, reason: 'missing from run b' })
    else if (!valid(va)) excluded.push({ caseId, reason: 'no value in run a' })
    else if (!valid(vb)) excluded.push({ caseId, reason: 'no value in run b' })
    else cases.push({ caseId, a: va, b: vb, delta: vb - va })
  }
  for (const caseId of Object.keys(b))
    if (!(caseId in a)) excluded.push({ caseId, reason: 'missing from run a' })
  const deltas = cases.map((c) => c.delta)
  const s = summarize(deltas)
  return {
    cases,
    excluded,
    n: cases.length,
    meanDelta: s.mean,
    medianDelta: s.median,
    stdDelta: s.std,
    wilcoxon: cases.length > 0 ? wilcoxon(deltas, undefined, options) : null,
  }
}
