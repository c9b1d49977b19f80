import { describe, expect, it } from 'vitest'
import type { Vec3 } from '../../../main/data/volume'
import { DsdError } from '../../../main/errors'
import { computeMetrics, percentile } from '../../../main/metrics'

const shape: Vec3 = [12, 10, 8]
const N = shape[0] * shape[1] * shape[2]
const at = (i: number, j: number, k: number) => (k * shape[1] + j) * shape[0] + i

/** Fill a box [lo, hi] (inclusive) with `value`. */
function fillBox(a: { [i: number]: number }, lo: Vec3, hi: Vec3, value: number) {
  for (let k = lo[2]; k <= hi[2]; k++)
    for (let j = lo[1]; j <= hi[1]; j++) for (let i = lo[0]; i <= hi[0]; i++) a[at(i, j, k)] = value
}

/** Brute-force reference of the MONAI definitions, for a cross-check on small volumes. */
function reference(pred: Uint8Array, gt: Uint8Array, value: number, sp: Vec3, tol: number) {
  const [nx, ny, nz] = shape
  const inMask = (m: Uint8Array, i: number, j: number, k: number) =>
    i >= 0 && j >= 0 && k >= 0 && i < nx && j < ny && k < nz && m[at(i, j, k)] === value
  const surf = (m: Uint8Array) => {
    const pts: Vec3[] = []
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++) {
          if (!inMask(m, i, j, k)) continue
          const interior =
            inMask(m, i - 1, j, k) &&
            inMask(m, i + 1, j, k) &&
            inMask(m, i, j - 1, k) &&
            inMask(m, i, j + 1, k) &&
            inMask(m, i, j, k - 1) &&
            inMask(m, i, j, k + 1)
          if (!interior) pts.push([i, j, k])
        }
    return pts
  }
  const sp_ = surf(pred)
  const sg = surf(gt)
  const directed = (from: Vec3[], to: Vec3[]) =>
    from.map(([a, b, c]) =>
      Math.sqrt(
        Math.min(
          ...to.map(
            ([x, y, z]) => ((a - x) * sp[0]) ** 2 + ((b - y) * sp[1]) ** 2 + ((c - z) * sp[2]) ** 2,
          ),
        ),
      ),
    )
  const dpg = directed(sp_, sg)
  const dgp = directed(sg, sp_)
  const m = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length
  let inter = 0
  let np_ = 0
  let ng = 0
  for (let i = 0; i < N; i++) {
    if (pred[i] === value) np_++
    if (gt[i] === value) ng++
    if (pred[i] === value && gt[i] === value) inter++
  }
  return {
    dice: (2 * inter) / (np_ + ng),
    hd95: Math.max(percentile(dpg, 95), percentile(dgp, 95)),
    assd: (m(dpg) + m(dgp)) / 2,
    nsd:
      (dpg.filter((d) => d <= tol).length + dgp.filter((d) => d <= tol).length) /
      (dpg.length + dgp.length),
  }
}

describe('computeMetrics', () => {
  it('identical masks: Dice 1, distances 0, NSD 1', () => {
    const a = new Uint8Array(N)
    fillBox(a, [2, 2, 2], [6, 5, 4], 3)
    const r = computeMetrics(a, a.slice(), { shape, spacing: [0.7, 1.2, 3] })
    expect(r.labels).toEqual({ '3': { dice: 1, hd95: 0, assd: 0, nsd: 1 } })
  })

  it('single-voxel labels: one voxel apart along k is one k-spacing away', () => {
    const p = new Uint8Array(N)
    const g = new Uint8Array(N)
    p[at(4, 4, 3)] = 1
    g[at(4, 4, 4)] = 1
    const r = computeMetrics(p, g, { shape, spacing: [0.5, 0.5, 2.5], nsdTolerance: 2 })
    expect(r.labels['1']).toEqual({ dice: 0, hd95: 2.5, assd: 2.5, nsd: 0 })
    const v = computeMetrics(p, g, {
      shape,
      spacing: [0.5, 0.5, 2.5],
      nsdTolerance: 1,
      voxelUnits: true,
    })
    expect(v.labels['1']).toEqual({ dice: 0, hd95: 1, assd: 1, nsd: 1 })
    expect(v.spacing).toEqual([1, 1, 1])
  })

  it('empty labels: absent from ground truth → null + reason; absent from prediction → Dice 0', () => {
    const p = new Uint8Array(N)
    const g = new Uint8Array(N)
    fillBox(p, [1, 1, 1], [3, 3, 3], 1)
    fillBox(g, [1, 1, 1], [3, 3, 3], 1)
    fillBox(p, [6, 6, 6], [7, 7, 7], 2) // only in prediction
    fillBox(g, [8, 1, 1], [9, 2, 2], 4) // only in ground truth
    const r = computeMetrics(p, g, { shape, spacing: [1, 1, 1] })
    expect(Object.keys(r.labels)).toEqual(['1', '2', '4'])
    expect(r.labels['2']).toMatchObject({ dice: null, hd95: null, assd: null, nsd: null })
    expect(r.labels['2'].reason).toMatch(/absent from the ground truth/)
    expect(r.labels['2'].emptyPrediction).toBeUndefined()
    expect(r.labels['4']).toMatchObject({
      dice: 0,
      hd95: null,
      assd: null,
      nsd: null,
      emptyPrediction: true,
    })
    expect(r.labels['4'].reason).toMatch(/absent from the prediction/)
    // asking for a label in neither map, and for background explicitly
    const q = computeMetrics(p, g, { shape, spacing: [1, 1, 1], labels: [9, 0] })
    expect(Object.keys(q.labels)).toEqual(['0', '9'])
    expect(q.labels['9'].reason).toMatch(/absent from both/)
    expect(q.labels['0'].dice).toBeGreaterThan(0.9)
    // all-background maps give no labels
    expect(
      computeMetrics(new Uint8Array(N), new Uint8Array(N), { shape, spacing: [1, 1, 1] }).labels,
    ).toEqual({})
    expect(JSON.stringify(r)).not.toMatch(/NaN|Infinity/)
  })

  it('matches a brute-force implementation of the definitions on random blobs (several labels, anisotropic)', () => {
    let seed = 99
    const r = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const p = new Uint8Array(N)
    const g = new Uint8Array(N)
    // overlapping boxes with random voxels knocked out, touching the volume border
    fillBox(g, [0, 0, 0], [5, 6, 3], 1)
    fillBox(p, [1, 0, 0], [6, 5, 4], 1)
    fillBox(g, [6, 3, 2], [11, 9, 7], 2)
    fillBox(p, [5, 4, 1], [10, 9, 6], 2)
    for (let i = 0; i < N; i++) {
      if (r() < 0.15) p[i] = 0
      if (r() < 0.1) g[i] = 0
      if (r() < 0.02) p[i] = 2 // stray voxels far from the blob
    }
    const sp: Vec3 = [0.8, 1.1, 2.6]
    const tol = 1.5
    const got = computeMetrics(p, g, { shape, spacing: sp, nsdTolerance: tol })
    for (const value of [1, 2]) {
      const want = reference(p, g, value, sp, tol)
      const l = got.labels[String(value)]
      expect(l.dice).toBeCloseTo(want.dice, 12)
      expect(l.hd95).toBeCloseTo(want.hd95, 12)
      expect(l.assd).toBeCloseTo(want.assd, 12)
      expect(l.nsd).toBeCloseTo(want.nsd, 12)
      expect(l.hd95!).toBeGreaterThan(0)
    }
  })

  it('works on any typed array, including float label values', () => {
    const p = new Float32Array(N)
    const g = new Int16Array(N)
    fillBox(p, [2, 2, 2], [4, 4, 4], 7)
    fillBox(g, [2, 2, 2], [4, 4, 5], 7)
    const r = computeMetrics(p, g, { shape, spacing: [1, 1, 1] })
    expect(r.labels['7'].dice).toBeCloseTo((2 * 27) / (27 + 36), 15)
    expect(r.labels['7'].hd95).toBe(1)
  })

  it('errors name the problem: wrong length, bad spacing, non-finite labels', () => {
    const a = new Uint8Array(N)
    const err = (() => {
      try {
        computeMetrics(a, new Uint8Array(N - 1), { shape, spacing: [1, 1, 1] })
      } catch (e) {
        return e as DsdError
      }
    })()
    expect(err).toBeInstanceOf(DsdError)
    expect(err!.code).toBe('METRICS_SHAPE_MISMATCH')
    expect(err!.message).toMatch(/ground truth has 959 voxels/)
    expect(() => computeMetrics(a, a, { shape, spacing: [1, -1, 1] })).toThrow(/spacing/)
    const f = new Float32Array(N)
    f[5] = NaN
    expect(() => computeMetrics(f, a, { shape, spacing: [1, 1, 1] })).toThrow(/finite label values/)
  })
})
