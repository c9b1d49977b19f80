import { describe, expect, it } from 'vitest'
import type { Vec3 } from '../../../main/data/volume'
import {
  createWorkspace,
  distancesAtQueries,
  edt,
  markLabelSurface,
  squaredEdt,
  surface,
} from '../../../main/metrics'

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Brute force: min over all feature voxels of Σ (Δ·spacing)², summed in axis order. */
function bruteSquared(feat: Uint8Array, shape: Vec3, sp: Vec3): Float64Array {
  const [nx, ny, nz] = shape
  const pts: Vec3[] = []
  for (let k = 0, idx = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, idx++) if (feat[idx]) pts.push([i, j, k])
  const out = new Float64Array(nx * ny * nz).fill(Infinity)
  for (let k = 0, idx = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, idx++)
        for (const [a, b, c] of pts) {
          const dx = (i - a) * sp[0]
          const dy = (j - b) * sp[1]
          const dz = (k - c) * sp[2]
          const d = dx * dx + dy * dy + dz * dz
          if (d < out[idx]) out[idx] = d
        }
  return out
}

/** Brute-force 6-connected surface with outside = background. */
function bruteSurface(mask: Uint8Array, shape: Vec3): Uint8Array {
  const [nx, ny, nz] = shape
  const at = (i: number, j: number, k: number) =>
    i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz ? 0 : mask[(k * ny + j) * nx + i]
  const out = new Uint8Array(mask.length)
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) {
        if (!at(i, j, k)) continue
        const eroded =
          at(i - 1, j, k) &&
          at(i + 1, j, k) &&
          at(i, j - 1, k) &&
          at(i, j + 1, k) &&
          at(i, j, k - 1) &&
          at(i, j, k + 1)
        out[(k * ny + j) * nx + i] = eroded ? 0 : 1
      }
  return out
}

function randomMask(n: number, density: number, r: () => number): Uint8Array {
  const m = new Uint8Array(n)
  for (let i = 0; i < n; i++) m[i] = r() < density ? 1 : 0
  return m
}

describe('exact Euclidean distance transform', () => {
  const configs: { shape: Vec3; spacing: Vec3; density: number }[] = [
    { shape: [9, 7, 5], spacing: [1, 1, 1], density: 0.05 },
    { shape: [12, 10, 8], spacing: [0.6875, 0.6875, 6.5], density: 0.02 },
    { shape: [7, 13, 11], spacing: [1.5, 0.8, 2.0], density: 0.01 },
    { shape: [16, 5, 9], spacing: [0.3, 2.7, 1.1], density: 0.2 },
    { shape: [1, 17, 6], spacing: [2, 0.5, 1.25], density: 0.05 },
    { shape: [11, 1, 1], spacing: [0.7, 1, 1], density: 0.15 },
  ]
  it('equals brute force on random volumes with anisotropic spacing', () => {
    const r = rng(42)
    const ws = createWorkspace()
    let checked = 0
    for (const { shape, spacing, density } of configs) {
      for (let rep = 0; rep < 4; rep++) {
        const n = shape[0] * shape[1] * shape[2]
        const feat = randomMask(n, density, r)
        if (!feat.some((v) => v)) feat[Math.floor(r() * n)] = 1
        const got = squaredEdt(feat, shape, spacing, ws)
        const want = bruteSquared(feat, shape, spacing)
        for (let i = 0; i < n; i++) {
          const tol = 1e-12 * Math.max(1, want[i])
          if (!(Math.abs(got[i] - want[i]) <= tol))
            throw new Error(
              `shape ${shape} spacing ${spacing} voxel ${i}: ${got[i]} vs brute force ${want[i]}`,
            )
          checked++
        }
      }
    }
    expect(checked).toBeGreaterThan(3000)
  })

  it('a single feature voxel gives the Euclidean distance to it; no feature gives Infinity', () => {
    const shape: Vec3 = [5, 4, 3]
    const feat = new Uint8Array(60)
    feat[(2 * 4 + 3) * 5 + 4] = 1 // (4, 3, 2)
    const d = edt(feat, shape, [0.5, 2, 3])
    expect(d[0]).toBeCloseTo(Math.hypot(4 * 0.5, 3 * 2, 2 * 3), 12)
    expect(d[(2 * 4 + 3) * 5 + 4]).toBe(0)
    expect(
      Array.from(squaredEdt(new Uint8Array(60), shape, [1, 1, 1])).every((v) => v === Infinity),
    ).toBe(true)
  })

  it('distancesAtQueries equals the full transform sampled at the query voxels, in scan order', () => {
    const r = rng(7)
    const shape: Vec3 = [10, 9, 8]
    const spacing: Vec3 = [0.9, 1.3, 2.2]
    const n = 720
    const flags = new Uint8Array(n)
    for (let i = 0; i < n; i++) flags[i] = (r() < 0.04 ? 1 : 0) | (r() < 0.1 ? 2 : 0)
    const full = bruteSquared(
      flags.map((v) => v & 1),
      shape,
      spacing,
    )
    const got = distancesAtQueries(flags, 1, 2, shape, spacing)
    const want: number[] = []
    for (let i = 0; i < n; i++) if (flags[i] & 2) want.push(Math.sqrt(full[i]))
    expect(got.length).toBe(want.length)
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 12)
    // no features at all → Infinity at every query
    expect(
      Array.from(distancesAtQueries(flags, 4, 2, shape, spacing)).every((v) => v === Infinity),
    ).toBe(true)
  })

  it('distancesAtQueries stays exact when features sit in few slices and queries in few columns', () => {
    const r = rng(5)
    const shape: Vec3 = [14, 11, 13]
    const spacing: Vec3 = [1.1, 0.6, 3.3]
    for (let rep = 0; rep < 6; rep++) {
      const flags = new Uint8Array(14 * 11 * 13)
      const fk = [Math.floor(r() * 13), Math.floor(r() * 13)]
      for (let i = 0; i < flags.length; i++) {
        const k = Math.floor(i / (14 * 11))
        if (fk.includes(k) && r() < 0.03) flags[i] |= 1
        if (r() < 0.01) flags[i] |= 2
      }
      const full = bruteSquared(
        flags.map((v) => v & 1),
        shape,
        spacing,
      )
      const got = distancesAtQueries(flags, 1, 2, shape, spacing)
      let m = 0
      for (let i = 0; i < flags.length; i++)
        if (flags[i] & 2) expect(got[m++]).toBeCloseTo(Math.sqrt(full[i]), 12)
      expect(m).toBe(got.length)
    }
  })

  it('rejects a mismatched shape or bad spacing', () => {
    expect(() => squaredEdt(new Uint8Array(5), [2, 2, 2], [1, 1, 1])).toThrow(/needs 8/)
    expect(() => squaredEdt(new Uint8Array(8), [2, 2, 2], [1, 0, 1])).toThrow(/spacing/)
  })
})

describe('surfaces', () => {
  it('mask XOR 6-connected erosion with outside = background, vs brute force', () => {
    const r = rng(3)
    for (const shape of [
      [6, 5, 4],
      [1, 4, 4],
      [8, 8, 8],
    ] as Vec3[]) {
      const n = shape[0] * shape[1] * shape[2]
      for (const density of [0.3, 0.8, 1]) {
        const mask = randomMask(n, density, r)
        const { surface: s, count } = surface(mask, shape)
        const want = bruteSurface(mask, shape)
        expect(Array.from(s)).toEqual(Array.from(want))
        expect(count).toBe(want.reduce((a, b) => a + b, 0))
      }
    }
  })

  it('a full 3×3×3 cube has 26 surface voxels; the centre is interior', () => {
    const { surface: s, count } = surface(new Uint8Array(27).fill(1), [3, 3, 3])
    expect(count).toBe(26)
    expect(s[13]).toBe(0)
  })

  it('markLabelSurface on a box equals the surface of the whole volume', () => {
    const r = rng(11)
    const shape: Vec3 = [9, 8, 7]
    const n = 504
    const labels = new Int16Array(n)
    // label 5 inside i 2..6, j 1..7 (touches the j border), k 0..4 (touches the k border)
    for (let k = 0; k <= 4; k++)
      for (let j = 1; j <= 7; j++)
        for (let i = 2; i <= 6; i++) if (r() < 0.7) labels[(k * 8 + j) * 9 + i] = 5
    for (let i = 0; i < n; i++) if (labels[i] === 0 && r() < 0.3) labels[i] = 2
    const full = bruteSurface(labels.map((v) => (v === 5 ? 1 : 0)) as unknown as Uint8Array, shape)
    const box = { lo: [2, 1, 0] as Vec3, hi: [6, 7, 4] as Vec3 }
    const flags = new Uint8Array(5 * 7 * 5)
    const count = markLabelSurface(labels, shape, 5, box, flags, 4)
    let o = 0
    let want = 0
    for (let k = 0; k <= 4; k++)
      for (let j = 1; j <= 7; j++)
        for (let i = 2; i <= 6; i++, o++) {
          expect(flags[o]).toBe(full[(k * 8 + j) * 9 + i] ? 4 : 0)
          want += full[(k * 8 + j) * 9 + i]
        }
    expect(count).toBe(want)
  })
})
