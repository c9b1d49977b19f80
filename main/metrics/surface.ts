/**
 * Segmentation surfaces: mask XOR its binary erosion with the 6-connected structuring element,
 * where everything outside the array counts as background (SciPy's `binary_erosion` default
 * `border_value=0`, as MONAI uses it). A foreground voxel is on the surface when it touches the
 * array border or has a background face neighbour.
 *
 * Layout: i-fastest `[nx, ny, nz]`, as in main/data/volume.ts.
 */
import type { Vec3 } from '../data/volume'

/**
 * Surface voxels of a binary mask (nonzero = foreground) as a 0/1 Uint8Array, plus their count.
 * Cutting a mask to a box that holds all its foreground gives the same surface inside the box,
 * because voxels outside the box are background either way.
 */
export function surface(
  mask: Uint8Array,
  shape: Vec3,
  out: Uint8Array = new Uint8Array(mask.length),
): { surface: Uint8Array; count: number } {
  const [nx, ny, nz] = shape
  const plane = nx * ny
  if (mask.length !== plane * nz)
    throw new RangeError(
      `surface: mask has ${mask.length} voxels but shape [${shape}] needs ${plane * nz}`,
    )
  if (out.length < mask.length) throw new RangeError('surface: output buffer is too small')
  let count = 0
  for (let k = 0, idx = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, idx++) {
        if (mask[idx] === 0) {
          out[idx] = 0
          continue
        }
        const interior =
          i > 0 &&
          i < nx - 1 &&
          j > 0 &&
          j < ny - 1 &&
          k > 0 &&
          k < nz - 1 &&
          mask[idx - 1] !== 0 &&
          mask[idx + 1] !== 0 &&
          mask[idx - nx] !== 0 &&
          mask[idx + nx] !== 0 &&
          mask[idx - plane] !== 0 &&
          mask[idx + plane] !== 0
        if (interior) out[idx] = 0
        else {
          out[idx] = 1
          count++
        }
      }
    }
  }
  return { surface: out, count }
}

/** Inclusive voxel box: [i0, j0, k0] … [i1, j1, k1]. */
export interface Box {
  lo: Vec3
  hi: Vec3
}

/** Any typed array (or plain array) of label values. */
export type LabelData = ArrayLike<number>

/**
 * Marks with `bit` in `flags` (box-local, i-fastest, size of the box) the surface voxels of
 * `labels === value`, looking at the full volume `labels` of shape `shape`. The box must hold
 * every voxel of the label (the caller's bounding box); neighbours outside the volume count as
 * background. Returns the number of surface voxels.
 */
export function markLabelSurface(
  labels: LabelData,
  shape: Vec3,
  value: number,
  box: Box,
  flags: Uint8Array,
  bit: number,
): number {
  const [nx, ny, nz] = shape
  const plane = nx * ny
  const [i0, j0, k0] = box.lo
  const [i1, j1, k1] = box.hi
  let count = 0
  let o = 0
  for (let k = k0; k <= k1; k++) {
    const kIn = k > 0 && k < nz - 1
    for (let j = j0; j <= j1; j++) {
      const jkIn = kIn && j > 0 && j < ny - 1
      let idx = k * plane + j * nx + i0
      for (let i = i0; i <= i1; i++, idx++, o++) {
        if (labels[idx] !== value) continue
        const interior =
          jkIn &&
          i > 0 &&
          i < nx - 1 &&
          labels[idx - 1] === value &&
          labels[idx + 1] === value &&
          labels[idx - nx] === value &&
          labels[idx + nx] === value &&
          labels[idx - plane] === value &&
          labels[idx + plane] === value
        if (!interior) {
          flags[o] |= bit
          count++
        }
      }
    }
  }
  return count
}
