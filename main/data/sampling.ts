/**
 * Patch sampling (dsd-spec §4): reflect-padding to the patch size (MONAI `SpatialPadd`
 * mode "reflect" = numpy "reflect", no edge repeat, symmetric split) and
 * `RandCropByPosNegLabeld` (a crop centred on a random foreground voxel with probability
 * pos/(pos+neg), else on a background voxel whose image is above the threshold; the centre is
 * clamped so the crop fits). Arrays are channels-last `[nz][ny][nx][C]`, i fastest; the
 * patch size is given as [px, py, pz] along i, j, k. All randomness comes from the `Rng`.
 */
import { DsdError } from '../errors'
import type { Vec3 } from './volume'

/** What sampling needs from a random generator (main/engine/random.ts `Rng` satisfies it). */
export interface Rng {
  /** Uniform float in [0, 1). */
  random(): number
  /** Uniform integer in [0, n). */
  int(n: number): number
}

/** An image (+ label) on a spatial grid, channels-last. */
export interface Sample {
  shape: Vec3
  channels: number
  image: Float32Array
  label: Uint8Array | null
}

/** numpy "reflect" index for position p in an axis of length n (p may be out of range). */
export function reflectIndex(p: number, n: number): number {
  if (n === 1) return 0
  const period = 2 * (n - 1)
  let m = p % period
  if (m < 0) m += period
  return m >= n ? period - m : m
}

/**
 * Pad every spatial axis shorter than `size` to exactly `size` (before = floor(d/2),
 * after = the rest), with numpy-reflect values for image and label. Larger axes are kept.
 * Returns the sample itself when nothing needs padding.
 */
export function padToSize(s: Sample, size: Vec3): Sample {
  if (s.shape.every((n, a) => n >= size[a])) return s
  const shape = s.shape.map((n, a) => Math.max(n, size[a])) as Vec3
  const before = s.shape.map((n, a) => Math.floor((shape[a] - n) / 2))
  const [nx, ny] = s.shape
  const [ox, oy, oz] = shape
  const C = s.channels
  const image = new Float32Array(ox * oy * oz * C)
  const label = s.label ? new Uint8Array(ox * oy * oz) : null
  const xs = Int32Array.from({ length: ox }, (_, i) => reflectIndex(i - before[0], s.shape[0]))
  const ys = Int32Array.from({ length: oy }, (_, j) => reflectIndex(j - before[1], s.shape[1]))
  const zs = Int32Array.from({ length: oz }, (_, k) => reflectIndex(k - before[2], s.shape[2]))
  let o = 0
  for (let k = 0; k < oz; k++) {
    for (let j = 0; j < oy; j++) {
      const rowIn = (zs[k] * ny + ys[j]) * nx
      for (let i = 0; i < ox; i++, o++) {
        const src = rowIn + xs[i]
        for (let c = 0; c < C; c++) image[o * C + c] = s.image[src * C + c]
        if (label) label[o] = s.label![src]
      }
    }
  }
  return { shape, channels: C, image, label }
}

/** Options of `RandCropByPosNegLabel`. */
export interface CropOptions {
  /** Patch size [px, py, pz]. */
  patch: Vec3
  /** Crops per volume (`num_samples`, 2 in the paper). */
  numSamples: number
  /** pos / (pos + neg) is the chance a crop centres on foreground (paper: pos 1, neg 0). */
  pos?: number
  neg?: number
  /** Background centres need some channel > this (`image_threshold`, 0). */
  imageThreshold?: number
}

/** One crop: its centre and start (voxel indices on the padded grid) and the data. */
export interface Patch extends Sample {
  center: Vec3
  start: Vec3
  foreground: boolean
}

/**
 * Precomputes foreground/background voxel indices of one (padded) case, then draws crops.
 * Reuse one sampler per case across epochs.
 */
export class CropSampler {
  readonly sample: Sample
  readonly fg: Int32Array
  readonly bg: Int32Array

  constructor(
    sample: Sample,
    readonly opts: CropOptions,
  ) {
    if (!sample.label)
      throw new DsdError(
        'SAMPLING_NO_LABEL',
        'RandCropByPosNegLabel needs a label map; this case has none',
        {},
      )
    if (opts.patch.some((p) => !Number.isInteger(p) || p < 1)) {
      throw new DsdError(
        'SAMPLING_BAD_PATCH',
        `patch size ${opts.patch.join('×')} must be positive integers`,
        { patch: opts.patch },
      )
    }
    this.sample = padToSize(sample, opts.patch)
    const lab = this.sample.label!
    const C = this.sample.channels
    const img = this.sample.image
    const thr = opts.imageThreshold ?? 0
    let nf = 0
    for (let v = 0; v < lab.length; v++) if (lab[v] > 0) nf++
    const fg = new Int32Array(nf)
    const bgTmp = new Int32Array(lab.length - nf)
    let f = 0
    let b = 0
    for (let v = 0; v < lab.length; v++) {
      if (lab[v] > 0) fg[f++] = v
      else {
        let above = false
        for (let c = 0; c < C; c++) if (img[v * C + c] > thr) above = true
        if (above) bgTmp[b++] = v
      }
    }
    this.fg = fg
    this.bg = bgTmp.slice(0, b)
    if (this.fg.length === 0 && this.bg.length === 0) {
      throw new DsdError(
        'SAMPLING_NO_CENTRES',
        'no foreground voxels and no background voxels above the image threshold; the case cannot be cropped (check the label and image)',
        {},
      )
    }
  }

  /** MONAI `correct_crop_centers`: clamp a centre so the crop lies inside the volume. */
  clampCenter(c: Vec3): Vec3 {
    const p = this.opts.patch
    const shape = this.sample.shape
    return c.map((v, a) => {
      const start = Math.floor(p[a] / 2)
      let end = Math.trunc(shape[a] + 1 - p[a] / 2)
      if (start === end) end += 1
      if (v < start) return start
      if (v >= end) return end - 1
      return v
    }) as Vec3
  }

  /** Draw `numSamples` crops. */
  draw(rng: Rng): Patch[] {
    const pos = this.opts.pos ?? 1
    const neg = this.opts.neg ?? 0
    let ratio = pos + neg > 0 ? pos / (pos + neg) : 1
    if (this.fg.length === 0) ratio = 0
    else if (this.bg.length === 0) ratio = 1
    const [nx, ny] = this.sample.shape
    const out: Patch[] = []
    for (let s = 0; s < this.opts.numSamples; s++) {
      const useFg = rng.random() < ratio
      const list = useFg ? this.fg : this.bg
      const v = list[rng.int(list.length)]
      const raw: Vec3 = [v % nx, Math.floor(v / nx) % ny, Math.floor(v / (nx * ny))]
      const center = this.clampCenter(raw)
      out.push({ ...cropAt(this.sample, center, this.opts.patch), foreground: useFg })
    }
    return out
  }
}

/** Crop a patch whose centre is `center` (start = center − floor(size/2)); must fit. */
export function cropAt(s: Sample, center: Vec3, patch: Vec3): Omit<Patch, 'foreground'> {
  const start = center.map((c, a) => c - Math.floor(patch[a] / 2)) as Vec3
  for (let a = 0; a < 3; a++) {
    if (start[a] < 0 || start[a] + patch[a] > s.shape[a]) {
      throw new DsdError(
        'SAMPLING_OUT_OF_BOUNDS',
        `crop at ${center.join(',')} of size ${patch.join('×')} leaves the ${s.shape.join('×')} volume; pad first`,
        {},
      )
    }
  }
  const [nx, ny] = s.shape
  const [px, py, pz] = patch
  const C = s.channels
  const image = new Float32Array(px * py * pz * C)
  const label = s.label ? new Uint8Array(px * py * pz) : null
  let o = 0
  for (let k = 0; k < pz; k++) {
    for (let j = 0; j < py; j++) {
      const src = ((start[2] + k) * ny + start[1] + j) * nx + start[0]
      image.set(s.image.subarray(src * C, (src + px) * C), o * C)
      if (label) label.set(s.label!.subarray(src, src + px), o)
      o += px
    }
  }
  return { shape: [...patch] as Vec3, channels: C, image, label, center, start }
}
