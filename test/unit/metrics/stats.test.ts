import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  boxStats,
  mean,
  median,
  normalSf,
  pairedComparison,
  percentile,
  signedRankCounts,
  std,
  sum,
  summarize,
  summarizeCases,
  wilcoxon,
  type CaseMetrics,
} from '../../../main/metrics'
import { ROOT } from '../../helpers/shared'

interface ScipyCase {
  name: string
  x: number[]
  y?: number[]
  method: 'exact' | 'asymptotic' | 'permutation'
  alternative: 'two-sided' | 'greater' | 'less'
  correction: boolean
  pvalue: number
  statistic: number
  n: number
  zeros: number
  ties: boolean
}

// Reference values computed with SciPy (see wilcoxon-scipy.py next to this file).
const scipy = JSON.parse(
  readFileSync(join(ROOT, 'test/unit/metrics/wilcoxon-scipy.json'), 'utf8'),
) as { cases: ScipyCase[] }

/** R+ counts by brute force over all 2^n sign assignments of ranks 1..n. */
function enumerateCounts(n: number): number[] {
  const counts = new Array((n * (n + 1)) / 2 + 1).fill(0)
  for (let mask = 0; mask < 2 ** n; mask++) {
    let s = 0
    for (let i = 0; i < n; i++) if (mask & (1 << i)) s += i + 1
    counts[s]++
  }
  return counts
}

describe('basic statistics', () => {
  const a = [3.2, 1.0, 7.5, 2.25, 9.0, 4.0, 4.0, 0.5, 11.0, 6.125, 5.5]

  it('percentile equals numpy.percentile (linear) bit for bit', () => {
    // numpy 1.24: np.percentile(a, q)
    const expected: [number, number][] = [
      [0, 0.5],
      [5, 0.75],
      [25, 2.725],
      [50, 4.0],
      [75, 6.8125],
      [90, 9.0],
      [95, 10.0],
      [99, 10.8],
      [100, 11.0],
    ]
    for (const [q, v] of expected) expect(percentile(a, q)).toBe(v)
    const b = Array.from({ length: 7 }, (_, i) => 0.1 * (i + 1))
    expect(percentile(b, 95)).toBe(0.67)
    expect(percentile(b, 33)).toBe(0.29800000000000004)
    expect(percentile(b, 66.6)).toBe(0.49959999999999993)
    expect(percentile([], 50)).toBeNaN()
    expect(() => percentile(a, 101)).toThrow(RangeError)
  })

  it('mean, sample std (ddof=1) and population std match numpy', () => {
    expect(mean(a)).toBeCloseTo(4.915909090909091, 14)
    expect(std(a)).toBeCloseTo(3.297580035557756, 14)
    expect(std(a, 0)).toBeCloseTo(3.1441191989474704, 14)
    expect(std([5])).toBeNaN()
    expect(median([4, 1, 3, 2])).toBe(2.5)
  })

  it('pairwise sum is accurate where naive summation drifts', () => {
    const n = 1_000_003
    const v = new Float64Array(n).fill(0.1)
    const exact = n * 0.1
    let naive = 0
    for (let i = 0; i < n; i++) naive += v[i]
    expect(Math.abs(sum(v) - exact)).toBeLessThan(1e-9)
    expect(Math.abs(naive - exact)).toBeGreaterThan(Math.abs(sum(v) - exact))
  })

  it('box-plot numbers: quartiles, Tukey whiskers and outliers', () => {
    const b = boxStats([1, 2, 3, 4, 5, 6, 7, 8, 100])!
    expect(b.q1).toBe(3)
    expect(b.median).toBe(5)
    expect(b.q3).toBe(7)
    expect(b.whiskerLow).toBe(1)
    expect(b.whiskerHigh).toBe(8)
    expect(b.outliers).toEqual([100])
    expect(boxStats([])).toBeNull()
  })

  it('normal tail matches scipy.special.ndtr(-z)', () => {
    const ref: [number, number][] = [
      [0, 0.5],
      [0.1, 0.460172162722971],
      [0.5, 0.3085375387259869],
      [1, 0.15865525393145707],
      [1.5, 0.06680720126885807],
      [1.9999, 0.02275553158476718],
      [2, 0.022750131948179195],
      [2.5, 0.006209665325776132],
      [3, 0.0013498980316300933],
      [4, 3.167124183311986e-5],
      [6, 9.865876450376946e-10],
      [8, 6.22096057427174e-16],
      [10, 7.61985302416047e-24],
      [20, 2.7536241186061556e-89],
      [30, 4.906713927147908e-198],
    ]
    for (const [z, p] of ref) {
      expect(Math.abs(normalSf(z) - p) / p).toBeLessThan(1e-12)
      expect(Math.abs(normalSf(-z) - (1 - p))).toBeLessThan(1e-15)
    }
  })
})

describe('Wilcoxon signed-rank test', () => {
  it('exact null distribution equals brute-force enumeration for n = 1 … 12', () => {
    for (let n = 1; n <= 12; n++)
      expect(Array.from(signedRankCounts(n))).toEqual(enumerateCounts(n))
    // n = 50: counts add up to 2^50 exactly and are symmetric
    const c = signedRankCounts(50)
    let total = 0
    for (const v of c) total += v
    expect(total).toBe(2 ** 50)
    expect(c[10]).toBe(c[c.length - 11])
  })

  it('exact two-sided p-value from hand enumeration (n = 6, all positive: 2/64)', () => {
    const r = wilcoxon([1, 2, 3, 4, 5, 6])
    expect(r.method).toBe('exact')
    expect(r.statistic).toBe(0)
    expect(r.rPlus).toBe(21)
    expect(r.pvalue).toBe(2 / 64)
    // R+ = 3 for n = 5 (−1 −2 +3 −4 −5): P(R+ ≤ 3) = #{0,1,2,3,{1,2}} = 5 subsets / 32
    const r2 = wilcoxon([-1, -2, 3, -4, -5])
    expect(r2.rPlus).toBe(3)
    expect(r2.pvalue).toBe((2 * 5) / 32)
  })

  for (const c of scipy.cases) {
    it(`matches SciPy: ${c.name}`, () => {
      const r = wilcoxon(c.x, c.y, { alternative: c.alternative, correction: c.correction })
      expect(r.method).toBe(c.method)
      expect(r.n).toBe(c.n)
      expect(r.zeros).toBe(c.zeros)
      expect(r.ties).toBe(c.ties)
      expect(r.statistic).toBe(c.statistic)
      expect(Math.abs(r.pvalue - c.pvalue)).toBeLessThan(1e-12 + 1e-9 * c.pvalue)
    })
  }

  it('all-zero differences give p = 1; mismatched pairs throw', () => {
    expect(wilcoxon([0, 0, 0]).pvalue).toBe(1)
    expect(() => wilcoxon([1, 2], [1])).toThrow(/pairs must match/)
  })
})

describe('summaries and paired comparison', () => {
  const cases: CaseMetrics[] = [
    { caseId: 'a', fold: 1, labels: { '1': { dice: 0.9, hd95: 2 }, '2': { dice: 0.8, hd95: 4 } } },
    { caseId: 'b', fold: 1, labels: { '1': { dice: 0.7, hd95: 6 }, '2': { dice: 0, hd95: null } } },
    { caseId: 'c', fold: 2, labels: { '1': { dice: 0.8, hd95: 3 }, '2': { dice: 0.6, hd95: 5 } } },
  ]

  it('summarize skips nulls and counts them; std is the sample std', () => {
    const s = summarize([1, 2, null, 3, undefined])
    expect(s.n).toBe(3)
    expect(s.missing).toBe(2)
    expect(s.mean).toBe(2)
    expect(s.std).toBe(1)
    expect(s.median).toBe(2)
    const empty = summarize([null])
    expect(empty).toMatchObject({
      n: 0,
      missing: 1,
      mean: null,
      std: null,
      median: null,
      box: null,
    })
    expect(JSON.stringify(summarize([7]))).not.toContain('NaN')
  })

  it('per label, pooled and across folds', () => {
    const s = summarizeCases(cases)
    expect(s.labels['1'].dice.mean).toBeCloseTo(0.8, 15)
    expect(s.labels['1'].dice.std).toBeCloseTo(0.1, 15)
    expect(s.labels['2'].hd95).toMatchObject({ n: 2, missing: 1, mean: 4.5 })
    expect(s.overall.dice.n).toBe(6)
    expect(s.overall.dice.mean).toBeCloseTo((0.9 + 0.8 + 0.7 + 0 + 0.8 + 0.6) / 6, 15)
    // fold 1 label 1: (0.9 + 0.7) / 2 = 0.8; fold 2: 0.8 → mean 0.8, std 0
    expect(s.folds!['1'].dice.foldMeans['1']).toBeCloseTo(0.8, 15)
    expect(s.folds!['1'].dice.foldMeans['2']).toBeCloseTo(0.8, 15)
    expect(s.folds!['1'].dice.std).toBeCloseTo(0, 15)
    // pooled over labels per fold: fold 1 (0.9+0.8+0.7+0)/4 = 0.6, fold 2 (0.8+0.6)/2 = 0.7
    expect(s.foldsOverall!.dice.mean).toBeCloseTo(0.65, 15)
    expect(s.foldsOverall!.dice.std).toBeCloseTo(Math.SQRT1_2 * 0.1, 15)
    expect(summarizeCases([{ caseId: 'x', labels: {} }]).folds).toBeUndefined()
  })

  it('paired comparison: deltas b − a, exclusions with reasons, Wilcoxon p', () => {
    const a = { c1: 0.8, c2: 0.7, c3: 0.9, c4: 0.5, c5: 0.6, c6: null, c7: 0.4 }
    const b = { c1: 0.85, c2: 0.78, c3: 0.93, c4: 0.61, c5: 0.62, c6: 0.7, c8: 0.9 }
    const r = pairedComparison(a, b)
    expect(r.n).toBe(5)
    expect(r.cases.map((c) => c.caseId)).toEqual(['c1', 'c2', 'c3', 'c4', 'c5'])
    expect(r.cases[0].delta).toBeCloseTo(0.05, 12)
    expect(r.excluded).toEqual([
      { caseId: 'c6', reason: 'no value in run a' },
      { caseId: 'c7', reason: 'missing from run b' },
      { caseId: 'c8', reason: 'missing from run a' },
    ])
    // All five deltas positive and distinct: exact p = 2 / 2^5
    expect(r.wilcoxon!.method).toBe('exact')
    expect(r.wilcoxon!.pvalue).toBe(2 / 32)
    expect(r.meanDelta).toBeCloseTo((0.05 + 0.08 + 0.03 + 0.11 + 0.02) / 5, 12)
    expect(pairedComparison({}, {}).wilcoxon).toBeNull()
  })
})
