/**
 * Exact Euclidean distance transforms with anisotropic voxel spacing.
 *
 * Separable squared-EDT after Felzenszwalb & Huttenlocher ("Distance transforms of sampled
 * functions", 2012): one pass per axis, each computing the lower envelope of parabolas along a
 * line. The first axis only needs the 1D distance to the nearest feature on the line (two
 * sweeps). The result is exact: at every voxel it is the minimum over all feature voxels of
 * Σ (Δ_a · spacing_a)², summed in axis order i, j, k like SciPy's
 * `distance_transform_edt(sampling=…)`.
 *
 * Layout: i-fastest, index = (k · ny + j) · nx + i, as in main/data/volume.ts. The volume
 * passed in is normally a bounding region of the full scan, cut by the caller (see
 * metrics.ts): distances between voxels inside the region are exact as long as every feature
 * voxel of interest lies inside it.
 */
import type { Vec3 } from '../data/volume'

/** Lines processed together by the strided passes, so that memory is read in rows. */
const TILE = 32

/** Reusable scratch buffers, so that many transforms allocate once. */
export interface EdtWorkspace {
  /** Squared distances of the current transform (grown on demand). */
  grid: Float64Array
  /** TILE lines gathered from the grid. */
  tile: Float64Array
  /** Per-line scratch for the parabola envelope. */
  d: Float64Array
  z: Float64Array
  v: Int32Array
  /** f(v[k]) + (v[k]·s)² of the parabolas on the envelope stack. */
  h: Float64Array
}

/** A workspace for volumes up to `voxels` voxels with lines up to `maxLine` long. */
export function createWorkspace(voxels = 0, maxLine = 0): EdtWorkspace {
  return {
    grid: new Float64Array(voxels),
    tile: new Float64Array(TILE * maxLine),
    d: new Float64Array(maxLine),
    z: new Float64Array(maxLine + 1),
    v: new Int32Array(maxLine),
    h: new Float64Array(maxLine),
  }
}

function ensure(ws: EdtWorkspace, voxels: number, maxLine: number): void {
  if (ws.grid.length < voxels) ws.grid = new Float64Array(voxels)
  if (ws.d.length < maxLine) {
    ws.tile = new Float64Array(TILE * maxLine)
    ws.d = new Float64Array(maxLine)
    ws.z = new Float64Array(maxLine + 1)
    ws.v = new Int32Array(maxLine)
    ws.h = new Float64Array(maxLine)
  }
}

/**
 * Lower envelope of the parabolas y = f(q) + ((p − q)·s)² over q (FH algorithm) for the line
 * f[fo … fo + n), written into d[0 … n). Infinite samples (no feature reachable yet) are
 * skipped. Returns false when every sample is infinite (then `d` is untouched).
 */
function envelope1d(
  f: Float64Array,
  fo: number,
  n: number,
  s: number,
  d: Float64Array,
  v: Int32Array,
  z: Float64Array,
  h: Float64Array,
): boolean {
  const s2 = s * s
  let k = -1
  for (let q = 0; q < n; q++) {
    const fq = f[fo + q]
    if (fq === Infinity) continue
    const hq = fq + s2 * q * q
    if (k < 0) {
      k = 0
      v[0] = q
      h[0] = hq
      z[0] = -Infinity
      z[1] = Infinity
      continue
    }
    let x: number
    for (;;) {
      // Abscissa where the parabola of q overtakes the one of v[k].
      x = (hq - h[k]) / (2 * s2 * (q - v[k]))
      if (x <= z[k] && k > 0) k--
      else break
    }
    k++
    v[k] = q
    h[k] = hq
    z[k] = x
    z[k + 1] = Infinity
  }
  if (k < 0) return false
  k = 0
  for (let p = 0; p < n; p++) {
    while (z[k + 1] < p) k++
    const r = v[k]
    const t = (p - r) * s
    d[p] = t * t + f[fo + r]
  }
  return true
}

/**
 * First axis (i): squared distance to the nearest feature voxel on the same row, or Infinity.
 * Two sweeps; writes the whole grid. Returns, per k-slice, whether it holds any feature.
 */
function passI(
  feat: Uint8Array,
  bit: number,
  shape: Vec3,
  sx: number,
  g: Float64Array,
): Uint8Array {
  const [nx, ny, nz] = shape
  const sliceHas = new Uint8Array(nz)
  for (let k = 0, base = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++, base += nx) {
      let last = -1
      for (let i = 0; i < nx; i++) {
        if ((feat[base + i] & bit) !== 0) {
          last = i
          g[base + i] = 0
        } else g[base + i] = last < 0 ? Infinity : i - last
      }
      if (last < 0) continue // no feature on this row: all Infinity already
      sliceHas[k] = 1
      last = -1
      for (let i = nx - 1; i >= 0; i--) {
        const idx = base + i
        if ((feat[idx] & bit) !== 0) {
          last = i
          continue
        }
        let dist = g[idx]
        if (last >= 0 && last - i < dist) dist = last - i
        const t = dist * sx
        g[idx] = t * t
      }
    }
  }
  return sliceHas
}

/**
 * Parabola-envelope pass along lines of `len` samples spaced `stride` apart: `width` adjacent
 * lines start at offset, offset + 1, …, offset + width − 1. Lines are gathered TILE at a time
 * so that the grid is read and written in contiguous runs even when `stride` is large. With
 * `need`, only lines t with need[t] ≠ 0 are transformed (the others keep their values).
 */
function passLines(
  g: Float64Array,
  offset: number,
  width: number,
  stride: number,
  len: number,
  s: number,
  ws: EdtWorkspace,
  need?: Uint8Array,
): void {
  const { tile, d, v, z, h } = ws
  for (let t0 = 0; t0 < width; t0 += TILE) {
    const tw = Math.min(TILE, width - t0)
    if (need) {
      let any = false
      for (let t = 0; t < tw; t++) if (need[t0 + t] !== 0) any = true
      if (!any) continue
    }
    const base = offset + t0
    for (let p = 0; p < len; p++) {
      const row = base + p * stride
      for (let t = 0, o = p; t < tw; t++, o += len) tile[o] = g[row + t]
    }
    for (let t = 0; t < tw; t++) {
      if (need && need[t0 + t] === 0) continue
      const fo = t * len
      if (!envelope1d(tile, fo, len, s, d, v, z, h)) continue // Infinity all along: unchanged
      for (let p = 0; p < len; p++) tile[fo + p] = d[p]
    }
    for (let p = 0; p < len; p++) {
      const row = base + p * stride
      for (let t = 0, o = p; t < tw; t++, o += len) g[row + t] = tile[o]
    }
  }
}

/**
 * Second axis (j): every column of every k-slice that holds a feature (the others are
 * Infinity throughout and stay so). With `need` (indexed by i), only those columns.
 */
function passJ(
  g: Float64Array,
  shape: Vec3,
  sy: number,
  ws: EdtWorkspace,
  sliceHas: Uint8Array,
  need?: Uint8Array,
): void {
  const [nx, ny, nz] = shape
  for (let k = 0; k < nz; k++) if (sliceHas[k]) passLines(g, k * nx * ny, nx, nx, ny, sy, ws, need)
}

function checkShape(shape: Vec3, spacing: Vec3, length: number, what: string): number {
  const n = shape[0] * shape[1] * shape[2]
  if (!shape.every((s) => Number.isInteger(s) && s >= 0))
    throw new RangeError(`edt: shape must be 3 non-negative integers, got [${shape.join(', ')}]`)
  if (!spacing.every((s) => Number.isFinite(s) && s > 0))
    throw new RangeError(`edt: spacing must be 3 positive numbers, got [${spacing.join(', ')}]`)
  if (length !== n)
    throw new RangeError(
      `edt: ${what} has ${length} voxels but shape [${shape.join(', ')}] needs ${n}`,
    )
  return n
}

/**
 * Squared Euclidean distance (in the units of `spacing`) from every voxel to the nearest
 * feature voxel (`features[i] & bit` nonzero); Infinity everywhere when there is none. Same
 * values as `scipy.ndimage.distance_transform_edt(features == 0, sampling=spacing) ** 2`.
 * The result lives in the workspace and is overwritten by the next call that uses it.
 */
export function squaredEdt(
  features: Uint8Array,
  shape: Vec3,
  spacing: Vec3,
  ws: EdtWorkspace = createWorkspace(),
  bit = 0xff,
): Float64Array {
  const n = checkShape(shape, spacing, features.length, 'features')
  ensure(ws, n, Math.max(shape[1], shape[2]))
  const g = ws.grid.length === n ? ws.grid : ws.grid.subarray(0, n)
  const sliceHas = passI(features, bit, shape, spacing[0], g)
  passJ(g, shape, spacing[1], ws, sliceHas)
  passLines(g, 0, shape[0] * shape[1], shape[0] * shape[1], shape[2], spacing[2], ws)
  return g
}

/** Euclidean distance (not squared) from every voxel to the nearest nonzero feature voxel. */
export function edt(features: Uint8Array, shape: Vec3, spacing: Vec3): Float64Array {
  const g = squaredEdt(features, shape, spacing).slice()
  for (let i = 0; i < g.length; i++) g[i] = Math.sqrt(g[i])
  return g
}

/**
 * Distances from each query voxel (`flags[i] & queryBit`) to the nearest feature voxel
 * (`flags[i] & featureBit`), in scan order, one value per query voxel (Infinity when there is
 * no feature voxel). Feature and query sets may share one flag array (one bit each), which is
 * how metrics.ts passes a label's two surfaces. Only the lines needed for the query voxels are
 * transformed: k-slices without features are skipped, the j pass runs only for i values that
 * hold a query somewhere, the k pass only along (i, j) columns that hold one.
 */
export function distancesAtQueries(
  flags: Uint8Array,
  featureBit: number,
  queryBit: number,
  shape: Vec3,
  spacing: Vec3,
  ws: EdtWorkspace = createWorkspace(),
): Float64Array {
  const n = checkShape(shape, spacing, flags.length, 'flags')
  const [nx, ny, nz] = shape
  ensure(ws, n, Math.max(ny, nz))
  const g = ws.grid.length === n ? ws.grid : ws.grid.subarray(0, n)
  // Which k-lines (i, j) and which j-lines (index i) hold a query voxel: only those are needed.
  const plane = nx * ny
  const column = new Uint8Array(plane)
  const columnI = new Uint8Array(nx)
  let queryCount = 0
  for (let k = 0, idx = 0; k < nz; k++)
    for (let c = 0; c < plane; c++, idx++)
      if ((flags[idx] & queryBit) !== 0) {
        column[c] = 1
        queryCount++
      }
  for (let c = 0; c < plane; c++) if (column[c] !== 0) columnI[c % nx] = 1

  const sliceHas = passI(flags, featureBit, shape, spacing[0], g)
  passJ(g, shape, spacing[1], ws, sliceHas, columnI)
  passLines(g, 0, plane, plane, nz, spacing[2], ws, column)
  // Collect in scan order so that the order does not depend on the pass order.
  const out = new Float64Array(queryCount)
  for (let i = 0, m = 0; i < n; i++) if ((flags[i] & queryBit) !== 0) out[m++] = Math.sqrt(g[i])
  return out
}
