/**
 * Patch augmentation (dsd-spec §4), applied independently to each crop in this order:
 * `RandFlipd` on spatial axes 0, 1, 2 separately (each with its own probability),
 * `RandRotate90d(max_k=3, axes (0, 1))` (k drawn from 1..3), `RandShiftIntensityd` (one
 * uniform offset added to the whole image). Flips and rotations move image and label alike;
 * the shift touches the image only. Spatial axes 0, 1, 2 are i, j, k of the channels-last
 * `[nz][ny][nx][C]` arrays. Deterministic given the `Rng` state.
 */
import type { Rng, Sample } from './sampling'
import type { Vec3 } from './volume'

/** Probabilities and ranges of the random transforms. */
export interface AugmentSettings {
  /** Flip probability per spatial axis (i, j, k). */
  flipProb: [number, number, number]
  rot90Prob: number
  /** k is drawn uniformly from 1..maxK (MONAI max_k = 3). */
  rot90MaxK: number
  /** Offset drawn from [−shiftOffset, shiftOffset]. */
  shiftOffset: number
  shiftProb: number
}

/** The two paper pipelines (spec §4). */
export const AUGMENT_PRESETS: Record<string, AugmentSettings> = {
  mmwhs: {
    flipProb: [0.1, 0.1, 0.1],
    rot90Prob: 0.1,
    rot90MaxK: 3,
    shiftOffset: 0.1,
    shiftProb: 0.5,
  },
  brats: {
    flipProb: [0.5, 0.5, 0.5],
    rot90Prob: 0.1,
    rot90MaxK: 3,
    shiftOffset: 0.1,
    shiftProb: 1.0,
  },
  none: { flipProb: [0, 0, 0], rot90Prob: 0, rot90MaxK: 3, shiftOffset: 0, shiftProb: 0 },
}

/** What was applied to one patch (for logs and tests). */
export interface AugmentRecord {
  flips: [boolean, boolean, boolean]
  rot90: number
  shift: number
}

/** Reverse a sample along spatial axis `axis` (0 = i, 1 = j, 2 = k). */
export function flipAxis(s: Sample, axis: number): Sample {
  const [nx, ny, nz] = s.shape
  const C = s.channels
  const image = new Float32Array(s.image.length)
  const label = s.label ? new Uint8Array(s.label.length) : null
  for (let k = 0; k < nz; k++) {
    const kk = axis === 2 ? nz - 1 - k : k
    for (let j = 0; j < ny; j++) {
      const jj = axis === 1 ? ny - 1 - j : j
      for (let i = 0; i < nx; i++) {
        const ii = axis === 0 ? nx - 1 - i : i
        const o = (k * ny + j) * nx + i
        const src = (kk * ny + jj) * nx + ii
        for (let c = 0; c < C; c++) image[o * C + c] = s.image[src * C + c]
        if (label) label[o] = s.label![src]
      }
    }
  }
  return { shape: [...s.shape] as Vec3, channels: C, image, label }
}

/**
 * `np.rot90(x, k, axes=(0, 1))` on the spatial axes i, j (rotation from axis 0 towards
 * axis 1). For odd k the i and j sizes swap.
 */
export function rot90(s: Sample, k: number): Sample {
  k = ((k % 4) + 4) % 4
  if (k === 0) return s
  const [nx, ny, nz] = s.shape
  const C = s.channels
  const shape: Vec3 = k % 2 ? [ny, nx, nz] : [nx, ny, nz]
  const [ox, oy] = shape
  const image = new Float32Array(s.image.length)
  const label = s.label ? new Uint8Array(s.label.length) : null
  for (let z = 0; z < nz; z++) {
    for (let b = 0; b < oy; b++) {
      for (let a = 0; a < ox; a++) {
        // out[a, b] = in[si, sj]
        let si: number
        let sj: number
        if (k === 1) {
          si = b
          sj = ny - 1 - a
        } else if (k === 2) {
          si = nx - 1 - a
          sj = ny - 1 - b
        } else {
          si = nx - 1 - b
          sj = a
        }
        const o = (z * oy + b) * ox + a
        const src = (z * ny + sj) * nx + si
        for (let c = 0; c < C; c++) image[o * C + c] = s.image[src * C + c]
        if (label) label[o] = s.label![src]
      }
    }
  }
  return { shape, channels: C, image, label }
}

/** Apply the random transforms to one patch; returns the new sample and what was done. */
export function augmentPatch(
  s: Sample,
  settings: AugmentSettings,
  rng: Rng,
): { sample: Sample; applied: AugmentRecord } {
  const applied: AugmentRecord = { flips: [false, false, false], rot90: 0, shift: 0 }
  let out = s
  for (let axis = 0; axis < 3; axis++) {
    if (rng.random() < settings.flipProb[axis]) {
      out = flipAxis(out, axis)
      applied.flips[axis] = true
    }
  }
  // MONAI RandRotate90: k = randint(max_k) + 1 is drawn first, then the probability check.
  const k = rng.int(Math.max(1, settings.rot90MaxK)) + 1
  if (rng.random() < settings.rot90Prob) {
    out = rot90(out, k)
    applied.rot90 = k
  }
  const offset = -settings.shiftOffset + 2 * settings.shiftOffset * rng.random()
  if (rng.random() < settings.shiftProb) {
    const image = out === s ? new Float32Array(out.image) : out.image
    for (let i = 0; i < image.length; i++) image[i] += offset
    out = { ...out, image }
    applied.shift = offset
  }
  return { sample: out, applied }
}
