/**
 * Sliding-window inference with MONAI 0.9.1 `sliding_window_inference` semantics (dsd-spec §5):
 *
 * - the image is zero-padded (constant `cval`, default 0) to at least the ROI on each axis,
 *   `diff // 2` before and the rest after;
 * - window starts per axis: `scan_interval = int(roi · (1 − overlap))` (at least 1; the ROI
 *   itself when the padded size equals the ROI), as many windows as needed, the last one
 *   aligned to the end (`start −= max(start + roi − size, 0)`); windows run in C order
 *   (first axis slowest), `swBatch` of them per predictor call;
 * - every window's output is multiplied by an importance map (constant 1, or MONAI's Gaussian:
 *   a discrete erf Gaussian with σ = sigmaScale · roi, truncated at 4σ, centred at roi // 2,
 *   divided by its maximum, zeros clamped to the smallest non-zero value), summed, and divided
 *   by the summed importance;
 * - the result is cropped back to the image.
 *
 * Output is either the blended softmax probabilities (default) or the blended raw logits
 * (`output: 'logits'`, exactly MONAI's behaviour with a model that returns logits). Mirror
 * test-time augmentation averages the 8 flip combinations of the three spatial axes
 * (nnU-Net style) per window before blending.
 *
 * Data layout: channels-last `[d, h, w, c]` with w fastest, i.e. the `PreparedCase.image`
 * layout (d = nz, h = ny, w = nx). Windows are cut, flipped and blended in JavaScript on the
 * CPU; only `[b, d, h, w, c]` window batches go through TensorFlow.js, so no rank-5
 * elementwise op ever runs on a backend that lacks it (WebGPU) and the full-size volume never
 * has to fit in GPU memory.
 */
import { DsdError } from '../errors'
import { tf } from './tf'

/** `(x [b, d, h, w, c]) → logits [b, d, h, w, K]` (channels-last). */
export type Predictor = (x: tf.Tensor5D) => tf.Tensor5D

/** A channels-last Float32 volume `[d, h, w, channels]`, w fastest. */
export interface ChannelsLastVolume {
  data: Float32Array
  /** Spatial shape [d, h, w]. */
  shape: [number, number, number]
  channels: number
}

/** Window blending: uniform (MONAI default) or Gaussian. */
export type BlendMode = 'constant' | 'gaussian'

/** Progress of one sliding-window run. */
export interface SlidingWindowProgress {
  /** Predictor evaluations done (windows × flips), and in total. */
  done: number
  total: number
  windows: number
}

/** Options of {@link slidingWindowInference}. */
export interface SlidingWindowOptions {
  /** Fraction of the ROI that neighbouring windows share, in [0, 1); default 0.25. */
  overlap?: number
  /** Default 'constant'. */
  blend?: BlendMode
  /** Gaussian σ as a fraction of the ROI (per axis); default 0.125. */
  sigmaScale?: number
  /** Average the 8 flip combinations of the spatial axes (test-time augmentation). */
  mirror?: boolean
  /** Windows per predictor call; default 1. */
  swBatch?: number
  /** Padding value when the image is smaller than the ROI; default 0. */
  cval?: number
  /** 'probabilities' (softmax per window, blended; default) or 'logits' (raw, blended). */
  output?: 'probabilities' | 'logits'
  onProgress?: (p: SlidingWindowProgress) => void
  signal?: AbortSignal
}

/** The blended output: `[d, h, w, K]` channels-last (per batch item, batch slowest). */
export interface SlidingWindowResult {
  data: Float32Array
  /** Spatial shape [d, h, w] (the input's). */
  shape: [number, number, number]
  classes: number
  batch: number
  output: 'probabilities' | 'logits'
  /** Window start positions on the padded grid, [d, h, w] each, in run order. */
  windows: [number, number, number][]
  /** Padding applied before each axis (when the image is smaller than the ROI). */
  padBefore: [number, number, number]
}

type V3 = [number, number, number]

/** MONAI `_get_scan_interval` for one axis of the (padded) image. */
export function scanInterval(size: number, roi: number, overlap: number): number {
  if (roi === size) return roi
  const interval = Math.trunc(roi * (1 - overlap))
  return interval > 0 ? interval : 1
}

/**
 * Window start positions along one axis of an image of `size` (already padded to ≥ roi):
 * MONAI 0.9.1 `dense_patch_slices`.
 */
export function windowStarts(size: number, roi: number, overlap: number): number[] {
  if (roi > size) throw new Error(`windowStarts: roi ${roi} exceeds the padded size ${size}`)
  const interval = scanInterval(size, roi, overlap)
  const num = Math.ceil(size / interval)
  let scanNum = 1
  for (let d = 0; d < num; d++) {
    if (d * interval + roi >= size) {
      scanNum = d + 1
      break
    }
  }
  const starts: number[] = []
  for (let i = 0; i < scanNum; i++) {
    const s = i * interval
    starts.push(s - Math.max(s + roi - size, 0))
  }
  return starts
}

/** All window starts `[d, h, w]` for a padded image, first axis slowest (numpy meshgrid 'ij'). */
export function windowGrid(size: V3, roi: V3, overlap: number): V3[] {
  const [a, b, c] = [0, 1, 2].map((k) => windowStarts(size[k], roi[k], overlap))
  const out: V3[] = []
  for (const x of a) for (const y of b) for (const z of c) out.push([x, y, z])
  return out
}

/** erfc(z) for z ≥ 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
function erfcPos(z: number): number {
  const t = 1 / (1 + 0.5 * z)
  const poly =
    -1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t *
                      (0.27886807 +
                        t *
                          (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
  return t * Math.exp(-z * z + poly)
}

/** erf(b) − erf(a) for a ≤ b, computed through erfc so that tails keep their precision. */
function erfDiff(a: number, b: number): number {
  if (a >= 0) return erfcPos(a) - erfcPos(b)
  if (b <= 0) return erfcPos(-b) - erfcPos(-a)
  return 2 - erfcPos(-a) - erfcPos(b)
}

/** MONAI `gaussian_1d(sigma, truncated=4, approx='erf')` evaluated at integer offset `x`. */
function gaussian1d(sigma: number, x: number): number {
  const tail = Math.trunc(Math.max(sigma * 4, 0.5) + 0.5)
  if (Math.abs(x) > tail) return 0
  const t = 0.70710678 / Math.abs(sigma)
  return Math.max(0, 0.5 * erfDiff(t * (x - 0.5), t * (x + 0.5)))
}

/**
 * The importance map of one window, `[d, h, w]` flat (w fastest): all ones for 'constant';
 * for 'gaussian' MONAI 0.9.1 `compute_importance_map` (a delta at roi // 2 smoothed by the
 * separable erf Gaussian, divided by the maximum, zeros raised to the smallest non-zero value).
 */
export function importanceMap(roi: V3, blend: BlendMode, sigmaScale = 0.125): Float32Array {
  const n = roi[0] * roi[1] * roi[2]
  const map = new Float32Array(n)
  if (blend === 'constant') return map.fill(1)
  if (blend !== 'gaussian') {
    throw new DsdError(
      'INFER_BAD_OPTION',
      `sliding window: blend must be "constant" or "gaussian", got "${blend}"`,
    )
  }
  if (!(sigmaScale > 0)) {
    throw new DsdError(
      'INFER_BAD_OPTION',
      `sliding window: sigmaScale must be > 0, got ${sigmaScale}`,
    )
  }
  const axes = roi.map((r) => {
    const sigma = r * sigmaScale
    const c = Math.floor(r / 2)
    const g = new Float64Array(r)
    for (let i = 0; i < r; i++) g[i] = gaussian1d(sigma, i - c)
    const peak = g[c]
    for (let i = 0; i < r; i++) g[i] /= peak
    return g
  })
  let minNonZero = Infinity
  for (let z = 0, p = 0; z < roi[0]; z++) {
    for (let y = 0; y < roi[1]; y++) {
      const zy = axes[0][z] * axes[1][y]
      for (let x = 0; x < roi[2]; x++, p++) {
        const v = Math.fround(zy * axes[2][x])
        map[p] = v
        if (v > 0 && v < minNonZero) minNonZero = v
      }
    }
  }
  for (let p = 0; p < n; p++) if (map[p] < minNonZero) map[p] = minNonZero
  return map
}

/** The 8 flip combinations of the spatial axes [d, h, w]; the identity first. */
export const MIRROR_FLIPS: readonly (readonly [boolean, boolean, boolean])[] = [
  [false, false, false],
  [false, false, true],
  [false, true, false],
  [false, true, true],
  [true, false, false],
  [true, false, true],
  [true, true, false],
  [true, true, true],
]

/**
 * A predictor that averages the softmax of several predictors (a fold ensemble). It returns
 * `log(mean softmax)`, whose softmax is exactly the mean probability, so it composes with
 * {@link slidingWindowInference} like a single model.
 */
export function ensemblePredictor(predictors: Predictor[]): Predictor {
  if (predictors.length === 0) throw new DsdError('INFER_NO_MODEL', 'ensemble: no predictor given')
  if (predictors.length === 1) return predictors[0]
  return (x) =>
    tf.tidy(() => {
      let sum: tf.Tensor2D | null = null
      let shape = x.shape
      for (const p of predictors) {
        const y = p(x)
        shape = y.shape
        const prob = tf.softmax(tf.reshape(y, [-1, y.shape[4]]) as tf.Tensor2D) as tf.Tensor2D
        sum = sum ? (tf.add(sum, prob) as tf.Tensor2D) : prob
      }
      const mean = tf.div(sum!, tf.scalar(predictors.length))
      return tf.reshape(tf.log(tf.maximum(mean, tf.scalar(1e-30))), shape) as tf.Tensor5D
    })
}

function badOption(message: string, details: Record<string, unknown> = {}): never {
  throw new DsdError('INFER_BAD_OPTION', `sliding window: ${message}`, details)
}

function cancelled(): never {
  throw new DsdError('CANCELLED', 'sliding-window inference was cancelled', {})
}

/** Copy window `start` of the padded image (flipped per `flip`) into `dst` at `offset`. */
function cutWindow(
  src: Float32Array,
  size: V3,
  pad: V3,
  C: number,
  start: V3,
  roi: V3,
  flip: readonly boolean[],
  cval: number,
  dst: Float32Array,
  offset: number,
): void {
  const [D, H, W] = size
  for (let z = 0; z < roi[0]; z++) {
    const sz = start[0] + (flip[0] ? roi[0] - 1 - z : z) - pad[0]
    for (let y = 0; y < roi[1]; y++) {
      const sy = start[1] + (flip[1] ? roi[1] - 1 - y : y) - pad[1]
      const rowOut = offset + (z * roi[1] + y) * roi[2] * C
      if (sz < 0 || sz >= D || sy < 0 || sy >= H) {
        dst.fill(cval, rowOut, rowOut + roi[2] * C)
        continue
      }
      const rowIn = (sz * H + sy) * W
      for (let x = 0; x < roi[2]; x++) {
        const sx = start[2] + (flip[2] ? roi[2] - 1 - x : x) - pad[2]
        const o = rowOut + x * C
        if (sx < 0 || sx >= W) {
          for (let c = 0; c < C; c++) dst[o + c] = cval
        } else {
          const i = (rowIn + sx) * C
          for (let c = 0; c < C; c++) dst[o + c] = src[i + c]
        }
      }
    }
  }
}

/** In-place softmax over the last axis of `[n, K]` values at `offset`. */
function softmaxRows(a: Float32Array, offset: number, n: number, K: number): void {
  for (let r = 0; r < n; r++) {
    const o = offset + r * K
    let m = -Infinity
    for (let k = 0; k < K; k++) if (a[o + k] > m) m = a[o + k]
    let s = 0
    for (let k = 0; k < K; k++) {
      const e = Math.exp(a[o + k] - m)
      a[o + k] = e
      s += e
    }
    for (let k = 0; k < K; k++) a[o + k] /= s
  }
}

/**
 * Sliding-window inference over one volume (or each item of a `[b, d, h, w, c]` tensor).
 * `roi` is the window `[d, h, w]` (the training patch). Returns the blended class
 * probabilities (or logits) on the input grid. Throws `DsdError('CANCELLED')` when `signal`
 * aborts. Tensors created here are disposed; the input tensor is left to the caller.
 */
export async function slidingWindowInference(
  image: tf.Tensor5D | ChannelsLastVolume,
  roi: [number, number, number],
  predictor: Predictor,
  options: SlidingWindowOptions = {},
): Promise<SlidingWindowResult> {
  const overlap = options.overlap ?? 0.25
  const blend = options.blend ?? 'constant'
  const mirror = options.mirror ?? false
  const swBatch = options.swBatch ?? 1
  const cval = options.cval ?? 0
  const output = options.output ?? 'probabilities'
  if (!(overlap >= 0 && overlap < 1))
    badOption(`overlap must be in [0, 1), got ${overlap}`, { overlap })
  if (!Number.isInteger(swBatch) || swBatch < 1)
    badOption(`swBatch must be a positive integer, got ${swBatch}`)
  if (output !== 'probabilities' && output !== 'logits')
    badOption(`output must be "probabilities" or "logits", got "${output}"`)
  if (roi.length !== 3 || roi.some((r) => !Number.isInteger(r) || r < 1)) {
    badOption(`roi must be 3 positive integers [d, h, w], got [${roi.join(', ')}]`, { roi })
  }

  // Input as per-batch-item Float32 arrays, channels-last.
  let items: Float32Array[]
  let shape: V3
  let C: number
  if (image instanceof tf.Tensor) {
    if (image.rank !== 5)
      badOption(`the image tensor must be [b, d, h, w, c], got [${image.shape.join(', ')}]`)
    const [b, d, h, w, c] = image.shape
    shape = [d, h, w]
    C = c
    const all = (await image.data()) as Float32Array
    const per = d * h * w * c
    items = []
    for (let i = 0; i < b; i++) items.push(Float32Array.from(all.subarray(i * per, (i + 1) * per)))
  } else {
    shape = [...image.shape] as V3
    C = image.channels
    if (image.data.length !== shape[0] * shape[1] * shape[2] * C) {
      badOption(
        `the volume is ${shape.join('×')}×${C} (${shape[0] * shape[1] * shape[2] * C} values) but its data has ${image.data.length}`,
      )
    }
    items = [image.data]
  }
  if (shape.some((s) => !(s >= 1)) || !(C >= 1)) badOption(`empty image ${shape.join('×')}×${C}`)

  // Padding (MONAI: diff // 2 before, the rest after) and window positions.
  const size = shape.map((s, k) => Math.max(s, roi[k])) as V3
  const padBefore = shape.map((s, k) => Math.floor(Math.max(roi[k] - s, 0) / 2)) as V3
  const windows = windowGrid(size, roi, overlap)
  const weights = importanceMap(roi, blend, options.sigmaScale ?? 0.125)
  const flips = mirror ? MIRROR_FLIPS : MIRROR_FLIPS.slice(0, 1)
  const roiVox = roi[0] * roi[1] * roi[2]
  const total = items.length * windows.length * flips.length
  let done = 0

  // Count map: the importance summed per voxel of the padded grid (the same for every item).
  const [PD, PH, PW] = size
  const padVox = PD * PH * PW
  const count = new Float32Array(padVox)
  for (const s of windows) {
    for (let z = 0, p = 0; z < roi[0]; z++) {
      for (let y = 0; y < roi[1]; y++) {
        const row = ((s[0] + z) * PH + s[1] + y) * PW + s[2]
        for (let x = 0; x < roi[2]; x++, p++) count[row + x] += weights[p]
      }
    }
  }

  let K = 0
  const results: Float32Array[] = []
  const input = new Float32Array(swBatch * roiVox * C)
  for (const src of items) {
    let acc: Float32Array | null = null
    for (let w0 = 0; w0 < windows.length; w0 += swBatch) {
      if (options.signal?.aborted) cancelled()
      const batch = windows.slice(w0, w0 + swBatch)
      let sum: Float32Array | null = null
      for (const flip of flips) {
        for (let i = 0; i < batch.length; i++) {
          cutWindow(src, shape, padBefore, C, batch[i], roi, flip, cval, input, i * roiVox * C)
        }
        const x = tf.tensor5d(
          input.subarray(0, batch.length * roiVox * C),
          [batch.length, roi[0], roi[1], roi[2], C],
          'float32',
        )
        let y: tf.Tensor5D
        try {
          y = tf.tidy(() => predictor(x))
        } finally {
          x.dispose()
        }
        let out: Float32Array
        try {
          const ys = y.shape
          if (
            y.rank !== 5 ||
            ys[0] !== batch.length ||
            ys[1] !== roi[0] ||
            ys[2] !== roi[1] ||
            ys[3] !== roi[2]
          ) {
            badOption(
              `the predictor returned [${ys.join(', ')}] for a window batch [${batch.length}, ${roi.join(', ')}, ${C}]; it must return [b, d, h, w, K] logits on the window grid`,
              { shape: ys },
            )
          }
          if (K === 0) K = ys[4]
          else if (ys[4] !== K) badOption(`the predictor returned ${ys[4]} classes after ${K}`)
          out = (await y.data()) as Float32Array
          if (out === null || out.length !== batch.length * roiVox * K)
            badOption('the predictor output has the wrong size')
          out = out instanceof Float32Array ? out : Float32Array.from(out)
        } finally {
          y.dispose()
        }
        if (output === 'probabilities') {
          // `data()` may hand out the backend's own buffer: copy before changing it.
          out = Float32Array.from(out)
          softmaxRows(out, 0, batch.length * roiVox, K)
        }
        if (flips.length === 1) {
          // No mirroring: the output is the sum (copied: `data()` may share the backend's buffer).
          sum = output === 'probabilities' ? out : Float32Array.from(out)
          done += batch.length
          options.onProgress?.({ done, total, windows: windows.length })
          continue
        }
        if (!sum) sum = new Float32Array(batch.length * roiVox * K)
        // Un-flip while summing.
        for (let i = 0; i < batch.length; i++) {
          const base = i * roiVox * K
          for (let z = 0; z < roi[0]; z++) {
            const fz = flip[0] ? roi[0] - 1 - z : z
            for (let yy = 0; yy < roi[1]; yy++) {
              const fy = flip[1] ? roi[1] - 1 - yy : yy
              for (let xx = 0; xx < roi[2]; xx++) {
                const fx = flip[2] ? roi[2] - 1 - xx : xx
                const o = base + ((z * roi[1] + yy) * roi[2] + xx) * K
                const s = base + ((fz * roi[1] + fy) * roi[2] + fx) * K
                for (let k = 0; k < K; k++) sum[o + k] += out[s + k]
              }
            }
          }
        }
        done += batch.length
        options.onProgress?.({ done, total, windows: windows.length })
      }
      // Blend into the padded accumulator.
      if (!acc) acc = new Float32Array(padVox * K)
      const inv = 1 / flips.length
      for (let i = 0; i < batch.length; i++) {
        const s = batch[i]
        const base = i * roiVox * K
        for (let z = 0, p = 0; z < roi[0]; z++) {
          for (let yy = 0; yy < roi[1]; yy++) {
            const row = ((s[0] + z) * PH + s[1] + yy) * PW + s[2]
            for (let xx = 0; xx < roi[2]; xx++, p++) {
              const wgt = weights[p] * inv
              const o = (row + xx) * K
              const q = base + p * K
              for (let k = 0; k < K; k++) acc[o + k] += wgt * sum![q + k]
            }
          }
        }
      }
      // Let other work (cancel messages, progress events) run between batches.
      await new Promise((r) => setTimeout(r, 0))
    }
    // Normalise and crop to the input grid, in place: every output index is ≤ the padded index
    // it reads from, and both grow monotonically, so no value is overwritten before it is read.
    const [d, h, w] = shape
    const a = acc!
    for (let z = 0; z < d; z++) {
      for (let yy = 0; yy < h; yy++) {
        const pr = ((z + padBefore[0]) * PH + yy + padBefore[1]) * PW + padBefore[2]
        const or = (z * h + yy) * w
        for (let xx = 0; xx < w; xx++) {
          const pv = pr + xx
          const c = count[pv]
          const o = (or + xx) * K
          const q = pv * K
          for (let k = 0; k < K; k++) a[o + k] = a[q + k] / c
        }
      }
    }
    const n = d * h * w * K
    const res = a.length === n ? a : a.slice(0, n)
    results.push(res)
  }
  let data: Float32Array
  if (results.length === 1) data = results[0]
  else {
    data = new Float32Array(results.reduce((s, r) => s + r.length, 0))
    let off = 0
    for (const r of results) {
      data.set(r, off)
      off += r.length
    }
  }
  return { data, shape, classes: K, batch: items.length, output, windows, padBefore }
}

/** Argmax over classes of a `[..., K]` channels-last array (first maximum wins, like torch). */
export function argmaxClasses(data: Float32Array, classes: number): Uint8Array {
  if (classes > 256)
    throw new DsdError(
      'INFER_TOO_MANY_CLASSES',
      `argmax: ${classes} classes do not fit a uint8 label map`,
    )
  const n = data.length / classes
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const o = i * classes
    let best = 0
    let bv = data[o]
    for (let k = 1; k < classes; k++) {
      if (data[o + k] > bv) {
        bv = data[o + k]
        best = k
      }
    }
    out[i] = best
  }
  return out
}
