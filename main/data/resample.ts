/**
 * Geometry: reorientation to RAS (axis permutation + flips, affine updated so every voxel keeps
 * its world position), resampling to a target spacing with MONAI 0.9.1 `Spacing` semantics
 * (trilinear for images, nearest for labels, border padding, voxel centres aligned at the
 * minimum corner), and resampling onto any grid (used for the inverse mapping of predictions).
 *
 * Volumes use the `Volume` layout: i fastest, channel slowest.
 */
import { DsdError } from '../errors'
import type { Mat4, Vec3, Volume, VoxelArray } from './volume'

/** A voxel grid: shape [nx, ny, nz] and voxel → world affine. */
export interface Grid {
  shape: Vec3
  affine: Mat4
}

/** Interpolation: trilinear for images, nearest for label maps. */
export type Interp = 'linear' | 'nearest'

// ---------------------------------------------------------------------------------------------
// small matrix helpers

/** 4×4 product a·b. */
export function matMul4(a: Mat4, b: Mat4): Mat4 {
  const out: Mat4 = [[], [], [], []]
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let s = 0
      for (let k = 0; k < 4; k++) s += a[r][k] * b[k][c]
      out[r][c] = s
    }
  }
  return out
}

/** Inverse of a 4×4 matrix (Gauss–Jordan with partial pivoting). */
export function inv4(m: Mat4): Mat4 {
  const a = m.map((row, r) => [...row, ...[0, 1, 2, 3].map((c) => (c === r ? 1 : 0))])
  for (let c = 0; c < 4; c++) {
    let p = c
    for (let r = c + 1; r < 4; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r
    if (Math.abs(a[p][c]) < 1e-12) {
      throw new DsdError(
        'GEOMETRY_SINGULAR',
        'the voxel-to-world affine is singular (a zero spacing or collapsed axis); fix the file header',
        {
          affine: m,
        },
      )
    }
    ;[a[c], a[p]] = [a[p], a[c]]
    const d = a[c][c]
    for (let k = 0; k < 8; k++) a[c][k] /= d
    for (let r = 0; r < 4; r++) {
      if (r === c) continue
      const f = a[r][c]
      if (f !== 0) for (let k = 0; k < 8; k++) a[r][k] -= f * a[c][k]
    }
  }
  return a.map((row) => row.slice(4)) as Mat4
}

/** World position of voxel (i, j, k). */
export function voxelToWorld(affine: Mat4, p: readonly number[]): Vec3 {
  return [0, 1, 2].map(
    (r) => affine[r][0] * p[0] + affine[r][1] * p[1] + affine[r][2] * p[2] + affine[r][3],
  ) as Vec3
}

/** Column norms of the 3×3 part (voxel size along i, j, k). */
export function spacingOf(affine: Mat4): Vec3 {
  return [0, 1, 2].map((c) => Math.hypot(affine[0][c], affine[1][c], affine[2][c])) as Vec3
}

function cloneAffine(a: Mat4): Mat4 {
  return a.map((r) => [...r]) as Mat4
}

function inv3(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m
  const A = e * i - f * h
  const B = -(d * i - f * g)
  const C = d * h - e * g
  const det = a * A + b * B + c * C
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ]
}

/** Nearest orthogonal matrix (polar decomposition by Newton iteration), as nibabel's SVD gives. */
function polarRotation(m: number[][]): number[][] {
  let r = m.map((row) => [...row])
  for (let it = 0; it < 100; it++) {
    const ri = inv3(r)
    let diff = 0
    const next = r.map((row, i) =>
      row.map((v, j) => {
        const n = 0.5 * (v + ri[j][i])
        diff += Math.abs(n - v)
        return n
      }),
    )
    r = next
    if (diff < 1e-15) break
  }
  return r
}

// ---------------------------------------------------------------------------------------------
// orientation

/**
 * For each voxel axis, the world axis it follows (0 = x/R, 1 = y/A, 2 = z/S) and the sign
 * (+1 towards R/A/S). Same algorithm as nibabel's `io_orientation` (polar decomposition,
 * then greedy largest component).
 */
export function ioOrientation(affine: Mat4): { axis: number; sign: 1 | -1 }[] {
  const rzs = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r][c]))
  const zooms = [0, 1, 2].map((c) => Math.hypot(rzs[0][c], rzs[1][c], rzs[2][c]) || 1)
  const rs = rzs.map((row) => row.map((v, c) => v / zooms[c]))
  const R = polarRotation(rs)
  const out: { axis: number; sign: 1 | -1 }[] = []
  for (let c = 0; c < 3; c++) {
    let best = 0
    for (let r = 1; r < 3; r++) if (Math.abs(R[r][c]) > Math.abs(R[best][c])) best = r
    out.push({ axis: best, sign: R[best][c] < 0 ? -1 : 1 })
    for (let k = 0; k < 3; k++) R[best][k] = 0
  }
  return out
}

/** Axis codes like nibabel's `aff2axcodes` ('RAS', 'LAS', 'LPS', …). */
export function orientationCodes(affine: Mat4): string {
  const labels = ['LR', 'PA', 'IS']
  return ioOrientation(affine)
    .map((o) => labels[o.axis][o.sign > 0 ? 1 : 0])
    .join('')
}

/**
 * How voxel axes move under a reorientation: input axis `a` becomes output axis `to[a]`,
 * reversed when `flip[a]`.
 */
export interface AxisTransform {
  to: [number, number, number]
  flip: [boolean, boolean, boolean]
}

/** The transform that makes a volume with this affine RAS (identity when it already is). */
export function rasTransform(affine: Mat4): AxisTransform {
  const o = ioOrientation(affine)
  return {
    to: o.map((x) => x.axis) as [number, number, number],
    flip: o.map((x) => x.sign < 0) as [boolean, boolean, boolean],
  }
}

/** The transform that undoes `t`. */
export function invertAxisTransform(t: AxisTransform): AxisTransform {
  const to: [number, number, number] = [0, 0, 0]
  const flip: [boolean, boolean, boolean] = [false, false, false]
  for (let a = 0; a < 3; a++) {
    to[t.to[a]] = a
    flip[t.to[a]] = t.flip[a]
  }
  return { to, flip }
}

/** True when `t` changes nothing. */
export function isIdentityTransform(t: AxisTransform): boolean {
  return t.to[0] === 0 && t.to[1] === 1 && t.to[2] === 2 && !t.flip.some(Boolean)
}

/** The grid after applying an axis transform (world positions of voxels preserved). */
export function transformGrid(g: Grid, t: AxisTransform): Grid {
  const shape: Vec3 = [0, 0, 0]
  const A = g.affine
  const out: Mat4 = [
    [0, 0, 0, A[0][3]],
    [0, 0, 0, A[1][3]],
    [0, 0, 0, A[2][3]],
    [0, 0, 0, 1],
  ]
  for (let a = 0; a < 3; a++) {
    const b = t.to[a]
    shape[b] = g.shape[a]
    const s = t.flip[a] ? -1 : 1
    for (let r = 0; r < 3; r++) {
      out[r][b] = s * A[r][a]
      if (t.flip[a]) out[r][3] += (g.shape[a] - 1) * A[r][a]
    }
  }
  return { shape, affine: out }
}

/**
 * Permute/flip voxel data (any number of channels, channel slowest). Exact: no interpolation.
 */
export function transformData<T extends VoxelArray>(
  data: T,
  shape: Vec3,
  channels: number,
  t: AxisTransform,
): T {
  const [nx, ny, nz] = shape
  const inStride = [1, nx, nx * ny]
  const outShape: Vec3 = [0, 0, 0]
  for (let a = 0; a < 3; a++) outShape[t.to[a]] = shape[a]
  // For each output axis b: which input axis feeds it, and the signed input stride.
  const step = [0, 0, 0]
  let base = 0
  for (let a = 0; a < 3; a++) {
    const b = t.to[a]
    step[b] = t.flip[a] ? -inStride[a] : inStride[a]
    if (t.flip[a]) base += (shape[a] - 1) * inStride[a]
  }
  const out = new (data.constructor as new (n: number) => T)(data.length)
  const n = nx * ny * nz
  const [ox, oy, oz] = outShape
  let o = 0
  for (let c = 0; c < channels; c++) {
    const cb = c * n + base
    for (let k = 0; k < oz; k++) {
      const kb = cb + k * step[2]
      for (let j = 0; j < oy; j++) {
        let src = kb + j * step[1]
        const s0 = step[0]
        for (let i = 0; i < ox; i++) {
          out[o++] = data[src]
          src += s0
        }
      }
    }
  }
  return out
}

/** Apply an axis transform to a volume (data and geometry). */
export function transformVolume(vol: Volume, t: AxisTransform): Volume {
  if (isIdentityTransform(t)) return vol
  const g = transformGrid(vol, t)
  return {
    ...vol,
    shape: g.shape,
    affine: g.affine,
    spacing: spacingOf(g.affine),
    data: transformData(vol.data, vol.shape, vol.channels, t),
  }
}

/** Reorient to RAS (MONAI `Orientationd("RAS")`); returns the volume and the transform used. */
export function reorientToRas(vol: Volume): { volume: Volume; transform: AxisTransform } {
  const transform = rasTransform(vol.affine)
  return { volume: transformVolume(vol, transform), transform }
}

// ---------------------------------------------------------------------------------------------
// spacing (MONAI 0.9.1 Spacing, diagonal=False)

function cholesky3Upper(m: number[][]): number[][] {
  // m = U^T U with U upper triangular, positive diagonal.
  const L = [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ]
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j <= i; j++) {
      let s = m[i][j]
      for (let k = 0; k < j; k++) s -= L[i][k] * L[j][k]
      if (i === j) {
        if (s <= 0)
          throw new DsdError(
            'GEOMETRY_SINGULAR',
            'the affine is degenerate (Cholesky failed); fix the file header',
            {},
          )
        L[i][j] = Math.sqrt(s)
      } else L[i][j] = s / L[j][j]
    }
  }
  return [0, 1, 2].map((r) => [0, 1, 2].map((c) => L[c][r]))
}

/**
 * The output grid of MONAI's `Spacing(pixdim)` (diagonal=False): same direction cosines,
 * the new voxel size, shape = round(extent / new + 1) per axis, and the origin at the input
 * corner that is minimal in the new grid (voxel 0 for a direction-preserving resample).
 */
export function spacingGrid(g: Grid, pixdim: Vec3): Grid {
  const A = g.affine
  const rzs = [0, 1, 2].map((r) => [0, 1, 2].map((c) => A[r][c]))
  const spacing = spacingOf(A)
  const scale = pixdim.map((p, i) => (p > 0 ? p : spacing[i]))
  // zoom_affine: rzs = rotation · zs (zs upper-triangular from Cholesky of rzsᵀ·rzs).
  const rtr = [0, 1, 2].map((i) =>
    [0, 1, 2].map((j) => rzs[0][i] * rzs[0][j] + rzs[1][i] * rzs[1][j] + rzs[2][i] * rzs[2][j]),
  )
  const zs = cholesky3Upper(rtr)
  const zsi = inv3(zs)
  const rot = [0, 1, 2].map((r) =>
    [0, 1, 2].map((c) => rzs[r][0] * zsi[0][c] + rzs[r][1] * zsi[1][c] + rzs[r][2] * zsi[2][c]),
  )
  const s = [0, 1, 2].map((i) => Math.sign(zs[i][i]) * Math.abs(scale[i]))
  const newAffine: Mat4 = [
    [rot[0][0] * s[0], rot[0][1] * s[1], rot[0][2] * s[2], 0],
    [rot[1][0] * s[0], rot[1][1] * s[1], rot[1][2] * s[2], 0],
    [rot[2][0] * s[0], rot[2][1] * s[1], rot[2][2] * s[2], 0],
    [0, 0, 0, 1],
  ]
  // compute_shape_offset
  const inv = inv4(newAffine)
  const corners: Vec3[] = []
  for (const x of [0, g.shape[0] - 1])
    for (const y of [0, g.shape[1] - 1])
      for (const z of [0, g.shape[2] - 1]) corners.push([x, y, z])
  const world = corners.map((c) => voxelToWorld(A, c))
  const inNew = world.map((w) => voxelToWorld(inv, w))
  const shape = [0, 1, 2].map((d) => {
    const vals = inNew.map((p) => p[d])
    return Math.round(Math.max(...vals) - Math.min(...vals) + 1)
  }) as Vec3
  let k = 0
  for (let i = 0; i < corners.length; i++) {
    const ok = [0, 1, 2].every((d) => {
      const mins = Math.min(...inNew.map((p) => p[d] - inNew[i][d]))
      return Math.abs(mins) <= 1e-6
    })
    if (ok) {
      k = i
      break
    }
  }
  for (let r = 0; r < 3; r++) newAffine[r][3] = world[k][r]
  return { shape, affine: newAffine }
}

function roundHalfEven(x: number): number {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** True when two grids are the same (shape equal, affine within `tol` mm). */
export function sameGrid(a: Grid, b: Grid, tol = 1e-4): boolean {
  if (a.shape.some((v, i) => v !== b.shape[i])) return false
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++) if (Math.abs(a.affine[r][c] - b.affine[r][c]) > tol) return false
  return true
}

/**
 * Resample a volume onto another grid: each output voxel takes the input value at its world
 * position (trilinear or nearest with round-half-to-even, coordinates clamped to the input
 * extent = MONAI/`grid_sample` "border" padding). Linear output is Float32Array; nearest keeps
 * the input's array type.
 */
export function resampleToGrid(vol: Volume, target: Grid, mode: Interp): Volume {
  const T = matMul4(inv4(vol.affine), target.affine)
  const [nx, ny, nz] = vol.shape
  const [ox, oy, oz] = target.shape
  const n = nx * ny * nz
  const on = ox * oy * oz
  const src = vol.data
  const out: VoxelArray =
    mode === 'linear'
      ? new Float32Array(on * vol.channels)
      : new (src.constructor as new (n: number) => VoxelArray)(on * vol.channels)
  const mx = nx - 1
  const my = ny - 1
  const mz = nz - 1
  const sxy = nx * ny
  for (let k = 0; k < oz; k++) {
    for (let j = 0; j < oy; j++) {
      let px = T[0][1] * j + T[0][2] * k + T[0][3]
      let py = T[1][1] * j + T[1][2] * k + T[1][3]
      let pz = T[2][1] * j + T[2][2] * k + T[2][3]
      const dx = T[0][0]
      const dy = T[1][0]
      const dz = T[2][0]
      const row = (k * oy + j) * ox
      for (let i = 0; i < ox; i++, px += dx, py += dy, pz += dz) {
        const x = px < 0 ? 0 : px > mx ? mx : px
        const y = py < 0 ? 0 : py > my ? my : py
        const z = pz < 0 ? 0 : pz > mz ? mz : pz
        if (mode === 'nearest') {
          const idx = roundHalfEven(x) + roundHalfEven(y) * nx + roundHalfEven(z) * sxy
          for (let c = 0; c < vol.channels; c++) out[c * on + row + i] = src[c * n + idx]
          continue
        }
        const x0 = Math.floor(x)
        const y0 = Math.floor(y)
        const z0 = Math.floor(z)
        const fx = x - x0
        const fy = y - y0
        const fz = z - z0
        const x1 = x0 < mx ? 1 : 0
        const y1 = y0 < my ? nx : 0
        const z1 = z0 < mz ? sxy : 0
        const b = x0 + y0 * nx + z0 * sxy
        for (let c = 0; c < vol.channels; c++) {
          const o = c * n + b
          const c00 = src[o] * (1 - fx) + src[o + x1] * fx
          const c10 = src[o + y1] * (1 - fx) + src[o + y1 + x1] * fx
          const c01 = src[o + z1] * (1 - fx) + src[o + z1 + x1] * fx
          const c11 = src[o + z1 + y1] * (1 - fx) + src[o + z1 + y1 + x1] * fx
          const c0 = c00 * (1 - fy) + c10 * fy
          const c1 = c01 * (1 - fy) + c11 * fy
          out[c * on + row + i] = c0 * (1 - fz) + c1 * fz
        }
      }
    }
  }
  return {
    shape: [...target.shape] as Vec3,
    channels: vol.channels,
    spacing: spacingOf(target.affine),
    affine: cloneAffine(target.affine),
    datatype: mode === 'linear' ? 'float32' : vol.datatype,
    data: out,
    source: vol.source,
  }
}

/**
 * MONAI `Spacing(pixdim)`: resample to a target voxel size keeping the direction cosines.
 * When the grid would not change, the volume is returned as it is (as MONAI does).
 */
export function resampleToSpacing(vol: Volume, pixdim: Vec3, mode: Interp): Volume {
  const g = spacingGrid(vol, pixdim)
  if (isIdentityResample(vol, g)) return vol
  return resampleToGrid(vol, g, mode)
}

/** MONAI's "no resampling" test: same shape and inv(in)·out within 1e-3 of the identity. */
export function isIdentityResample(from: Grid, to: Grid): boolean {
  if (from.shape.some((v, i) => v !== to.shape[i])) return false
  const T = matMul4(inv4(from.affine), to.affine)
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) if (Math.abs(T[r][c] - (r === c ? 1 : 0)) > 1e-3) return false
  return true
}
