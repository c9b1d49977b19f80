/**
 * The viewer's pure voxel-grid helpers (renderer/src/viewer/grid.ts): the FP/FN map of two
 * cropped label-map blocks, and views aligned with the voxel grid.
 */
import { describe, expect, it } from 'vitest'
import { errorMap, gridOrientation, type LabelBlock } from '../../../renderer/src/viewer/grid'

/** A block of `dims` at `offset` from a function of the full-grid index. */
function block(offset: [number, number, number], dims: [number, number, number], f: (i: number, j: number, k: number) => number): LabelBlock {
  const data = new Uint8Array(dims[0] * dims[1] * dims[2])
  for (let k = 0, p = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, p++) data[p] = f(i + offset[0], j + offset[1], k + offset[2])
  return { data, dims, offset }
}

describe('errorMap', () => {
  it('marks false positives, false negatives and swapped labels over the union of the blocks', () => {
    // Full grid 10×8×6; ground truth label 1 in x 2..4, label 2 at x 5; prediction label 1 in x 3..6.
    const gtF = (i: number, j: number, k: number) => (j === 3 && k === 2 ? (i >= 2 && i <= 4 ? 1 : i === 5 ? 2 : 0) : 0)
    const prF = (i: number, j: number, k: number) => (j === 3 && k === 2 && i >= 3 && i <= 6 ? 1 : 0)
    const gt = block([1, 2, 1], [6, 3, 3], gtF)
    const pred = block([2, 3, 2], [6, 1, 1], prF)
    const e = errorMap(gt, pred)
    expect(e.offset).toEqual([1, 2, 1])
    expect(e.dims).toEqual([7, 3, 3])
    for (let k = 0; k < 3; k++)
      for (let j = 0; j < 3; j++)
        for (let i = 0; i < 7; i++) {
          const [x, y, z] = [i + 1, j + 2, k + 1]
          const g = gtF(x, y, z)
          const q = prF(x, y, z)
          const want = g === q ? 0 : g === 0 ? 1 : q === 0 ? 2 : 3
          expect(e.data[(k * 3 + j) * 7 + i], `${x},${y},${z}`).toBe(want)
        }
    // x 2 is a false negative, 3–4 agree, 5 is the swapped label, 6 a false positive.
    const row = [2, 3, 4, 5, 6].map((x) => e.data[(1 * 3 + 1) * 7 + x - 1])
    expect(row).toEqual([2, 0, 0, 3, 1])
  })
})

describe('gridOrientation', () => {
  it('gives the standard views for an axis-aligned grid', () => {
    const lps = [1, 0, 0, 0, 1, 0, 0, 0, 1]
    expect(gridOrientation(lps, 'axial')).toEqual({ viewPlaneNormal: [-0, -0, -1], viewUp: [-0, -1, -0] })
    expect(gridOrientation(lps, 'sagittal')).toEqual({ viewPlaneNormal: [1, 0, 0], viewUp: [0, 0, 1] })
    expect(gridOrientation(lps, 'coronal')).toEqual({ viewPlaneNormal: [-0, -1, -0], viewUp: [0, 0, 1] })
  })

  it('snaps to the nearest voxel axes of an oblique grid (distinct axes, signs kept)', () => {
    const c = Math.cos(0.3)
    const s = Math.sin(0.3)
    // i along −x, j tilted between y and z, k tilted the other way (right-handed).
    const dir = [-1, 0, 0, 0, c, s, 0, s, -c]
    const ax = gridOrientation(dir, 'axial')
    expect(ax.viewPlaneNormal).toEqual([0, s, -c]) // k, pointing like [0, 0, −1]
    expect(ax.viewUp.map((v) => +v.toFixed(12))).toEqual([0, -c, -s].map((v) => +v.toFixed(12))) // −j
    const sag = gridOrientation(dir, 'sagittal')
    expect(sag.viewPlaneNormal).toEqual([1, -0, -0]) // −i
  })
})
