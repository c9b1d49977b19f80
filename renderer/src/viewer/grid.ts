/**
 * Voxel-grid helpers of the viewer, pure (no Cornerstone import; unit-tested in Node): the
 * FP/FN map of two label-map blocks, and views aligned with the voxel grid.
 */
import type { Orientation } from './settings'

type Point3 = [number, number, number]

/** A label map block of the full grid (the data channel crops label maps to their labels). */
export interface LabelBlock {
  data: ArrayLike<number>
  dims: [number, number, number]
  offset: [number, number, number]
}

/**
 * The FP/FN map of two label maps of one grid, over the union of their blocks: 1 = false
 * positive, 2 = false negative, 3 = different labels, 0 = agreement.
 */
export function errorMap(gt: LabelBlock, pred: LabelBlock): LabelBlock {
  const lo = [0, 1, 2].map((a) => Math.min(gt.offset[a], pred.offset[a])) as [number, number, number]
  const hi = [0, 1, 2].map((a) => Math.max(gt.offset[a] + gt.dims[a], pred.offset[a] + pred.dims[a]))
  const dims = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]] as [number, number, number]
  const out = new Uint8Array(dims[0] * dims[1] * dims[2])
  const at = (b: LabelBlock, i: number, j: number, k: number) => {
    const x = i - b.offset[0]
    const y = j - b.offset[1]
    const z = k - b.offset[2]
    if (x < 0 || y < 0 || z < 0 || x >= b.dims[0] || y >= b.dims[1] || z >= b.dims[2]) return 0
    return b.data[(z * b.dims[1] + y) * b.dims[0] + x]
  }
  for (let k = 0, p = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, p++) {
        const g = at(gt, i + lo[0], j + lo[1], k + lo[2])
        const q = at(pred, i + lo[0], j + lo[1], k + lo[2])
        if (g !== q) out[p] = g === 0 ? 1 : q === 0 ? 2 : 3
      }
  return { data: out, dims, offset: lo }
}

/** Cornerstone's camera vectors of the standard views (constants/mprCameraValues). */
const MPR = {
  axial: { viewPlaneNormal: [0, 0, -1], viewUp: [0, -1, 0] },
  sagittal: { viewPlaneNormal: [1, 0, 0], viewUp: [0, 0, 1] },
  coronal: { viewPlaneNormal: [0, -1, 0], viewUp: [0, 0, 1] },
} as const

/**
 * The view along the voxel grid closest to a standard one (as ITK-SNAP shows data): the
 * volume axis nearest the standard normal and the one nearest its up vector, with their signs.
 * For an axis-aligned scan this is the standard view; for an oblique one it avoids reslicing
 * (and label maps are drawn slice by slice, which needs grid-aligned views).
 */
export function gridOrientation(direction: number[], o: Orientation): { viewPlaneNormal: Point3; viewUp: Point3 } {
  const axes = [direction.slice(0, 3), direction.slice(3, 6), direction.slice(6, 9)]
  const snap = (v: readonly number[], skip: number) => {
    let best = -1
    let dot = 0
    axes.forEach((a, n) => {
      const d = a[0] * v[0] + a[1] * v[1] + a[2] * v[2]
      if (n !== skip && Math.abs(d) > Math.abs(dot)) [best, dot] = [n, d]
    })
    return { axis: best, v: axes[best].map((x) => x * Math.sign(dot)) as Point3 }
  }
  const n = snap(MPR[o].viewPlaneNormal, -1)
  const up = snap(MPR[o].viewUp, n.axis)
  return { viewPlaneNormal: n.v, viewUp: up.v }
}

