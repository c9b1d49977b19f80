import { describe, expect, it } from 'vitest'
import { tf } from '../../../main/engine/tf'
import {
  argmaxClasses,
  ensemblePredictor,
  importanceMap,
  MIRROR_FLIPS,
  slidingWindowInference,
  windowGrid,
  windowStarts,
  type BlendMode,
  type Predictor,
} from '../../../main/engine/sliding-window'
import { DsdError } from '../../../main/errors'

type V3 = [number, number, number]

/** Deterministic pseudo-random numbers in [-1, 1). */
function rand(n: number, seed: number): Float32Array {
  let a = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0
    out[i] = a / 2 ** 31 - 1
  }
  return out
}

/** A small conv net: 3×3×3 'same' conv C → K with bias. Not flip-equivariant, and window
 * borders matter (zero padding inside the conv), so blending is visible in the output. */
function convPredictor(
  C: number,
  K: number,
  seed: number,
): { predictor: Predictor; dispose(): void } {
  const kernel = tf.tensor5d(rand(27 * C * K, seed), [3, 3, 3, C, K])
  const bias = tf.tensor1d(rand(K, seed + 1))
  return {
    predictor: (x) => tf.tidy(() => tf.add(tf.conv3d(x, kernel, 1, 'same'), bias) as tf.Tensor5D),
    dispose() {
      kernel.dispose()
      bias.dispose()
    },
  }
}

/**
 * Brute-force reference: pad with tf.pad, cut each window with tf.slice, flip with tf.reverse,
 * softmax with tf.softmax, then accumulate voxel by voxel. Window starts are given by hand.
 */
async function bruteForce(
  img: Float32Array,
  shape: V3,
  C: number,
  roi: V3,
  predictor: Predictor,
  starts: [number[], number[], number[]],
  opts: {
    blend: BlendMode
    mirror: boolean
    output: 'probabilities' | 'logits'
    sigmaScale?: number
  },
): Promise<{ data: Float32Array; K: number }> {
  const pads = shape.map((s, k) => {
    const diff = Math.max(roi[k] - s, 0)
    return [Math.floor(diff / 2), diff - Math.floor(diff / 2)]
  })
  const P = shape.map((s, k) => s + pads[k][0] + pads[k][1]) as V3
  const x = tf.tensor5d(img, [1, ...shape, C])
  const padded = tf.pad(x, [[0, 0], pads[0], pads[1], pads[2], [0, 0]] as [number, number][])
  const w = importanceMap(roi, opts.blend, opts.sigmaScale ?? 0.125)
  let K = 0
  let acc: Float64Array | null = null
  const cnt = new Float64Array(P[0] * P[1] * P[2])
  const flips = opts.mirror ? MIRROR_FLIPS : [MIRROR_FLIPS[0]]
  for (const a of starts[0])
    for (const b of starts[1])
      for (const c of starts[2]) {
        const win = tf.slice(padded, [0, a, b, c, 0], [1, ...roi, C]) as tf.Tensor5D
        let mean: Float32Array | null = null
        for (const f of flips) {
          const axes = [1, 2, 3].filter((_, i) => f[i])
          const y = tf.tidy(() => {
            const xin = axes.length ? tf.reverse(win, axes) : win
            let out = predictor(xin as tf.Tensor5D) as tf.Tensor
            if (axes.length) out = tf.reverse(out, axes)
            return opts.output === 'probabilities' ? tf.softmax(out) : out
          })
          K = y.shape[4]!
          const v = y.dataSync() as Float32Array
          y.dispose()
          if (!mean) mean = new Float32Array(v.length)
          for (let i = 0; i < v.length; i++) mean[i] += v[i] / flips.length
        }
        win.dispose()
        if (!acc) acc = new Float64Array(P[0] * P[1] * P[2] * K)
        for (let z = 0; z < roi[0]; z++)
          for (let yy = 0; yy < roi[1]; yy++)
            for (let xx = 0; xx < roi[2]; xx++) {
              const p = (z * roi[1] + yy) * roi[2] + xx
              const v = ((a + z) * P[1] + b + yy) * P[2] + c + xx
              cnt[v] += w[p]
              for (let k = 0; k < K; k++) acc[v * K + k] += w[p] * mean![p * K + k]
            }
      }
  x.dispose()
  padded.dispose()
  const out = new Float32Array(shape[0] * shape[1] * shape[2] * K)
  for (let z = 0; z < shape[0]; z++)
    for (let yy = 0; yy < shape[1]; yy++)
      for (let xx = 0; xx < shape[2]; xx++) {
        const v = ((z + pads[0][0]) * P[1] + yy + pads[1][0]) * P[2] + xx + pads[2][0]
        const o = ((z * shape[1] + yy) * shape[2] + xx) * K
        for (let k = 0; k < K; k++) out[o + k] = acc![v * K + k] / cnt[v]
      }
  return { data: out, K }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

describe('MONAI 0.9.1 window positions', () => {
  // Written out by hand from dense_patch_slices / _get_scan_interval:
  //   interval = int(roi·(1−overlap)) (roi itself when size == roi, at least 1),
  //   n = first d with d·interval + roi ≥ size, plus one; start −= max(start + roi − size, 0).
  it('matches hand-computed starts', () => {
    expect(windowStarts(100, 32, 0.25)).toEqual([0, 24, 48, 68]) // interval 24; 72+32 ≥ 100
    expect(windowStarts(35, 32, 0.25)).toEqual([0, 3]) // 24 → 24 − (56 − 35) = 3
    expect(windowStarts(32, 32, 0.25)).toEqual([0]) // size == roi: one window
    expect(windowStarts(40, 16, 0.5)).toEqual([0, 8, 16, 24]) // interval 8
    expect(windowStarts(50, 32, 0)).toEqual([0, 18]) // interval 32; 32 → 18
    expect(windowStarts(200, 96, 0.25)).toEqual([0, 72, 104]) // interval 72; 144 → 104
    expect(windowStarts(3, 2, 0.9)).toEqual([0, 1]) // int(0.2) = 0 → interval 1
    expect(windowStarts(13, 8, 0.25)).toEqual([0, 5]) // interval 6; 6 → 5
  })

  it('orders windows with the first axis slowest', () => {
    expect(windowGrid([13, 6, 5], [8, 6, 4], 0.25)).toEqual([
      [0, 0, 0],
      [0, 0, 1],
      [5, 0, 0],
      [5, 0, 1],
    ])
  })
})

describe('importance maps', () => {
  it('constant blending weighs every voxel 1', () => {
    const m = importanceMap([4, 3, 2], 'constant')
    expect(m.length).toBe(24)
    expect([...m].every((v) => v === 1)).toBe(true)
  })

  it('gaussian blending matches MONAI compute_importance_map (erf kernel, σ = roi/8)', () => {
    // Reference values: MONAI 0.9.1's algorithm evaluated in float64 with Python's math.erf
    // (gaussian_1d(σ, truncated=4, approx='erf') on a delta at roi // 2, / max, float32).
    const roi: V3 = [8, 6, 5]
    const m = importanceMap(roi, 'gaussian')
    const at = (z: number, y: number, x: number) => m[(z * roi[1] + y) * roi[2] + x]
    expect(at(4, 3, 2)).toBe(1)
    const expected: [V3, number][] = [
      [[0, 0, 0], 7.326055762035821e-9],
      [[7, 5, 4], 9.973112355510239e-6],
      [[4, 3, 0], 0.014169733971357346],
      [[2, 1, 3], 0.0025217311922460794],
      [[0, 3, 2], 0.0005986327887512743],
    ]
    // float32 relative precision
    for (const [[z, y, x], v] of expected) expect(Math.abs(at(z, y, x) - v) / v).toBeLessThan(1e-6)
    // Every value is relative to the centre, so the map is ≤ 1 and peaks once.
    expect(Math.max(...m)).toBe(1)
    expect([...m].filter((v) => v === 1).length).toBe(1)
  })

  it('gaussian zeros beyond the 4σ truncation are raised to the smallest non-zero weight', () => {
    const m = importanceMap([16, 4, 4], 'gaussian', 0.03)
    const min = Math.min(...m)
    expect(min).toBeGreaterThan(0)
    expect(min).toBeCloseTo(3.022648e-13, 17)
    expect(m[(8 * 4 + 2) * 4 + 2]).toBe(1)
    expect(m[(6 * 4 + 2) * 4 + 2]).toBeCloseTo(0.0012655002, 8)
    expect([...m].filter((v) => v === min).length).toBe(219)
  })
})

describe('slidingWindowInference against a brute-force reference', () => {
  const C = 2
  const K = 3
  const shape: V3 = [13, 10, 7]
  const roi: V3 = [8, 6, 4]
  const img = rand(shape[0] * shape[1] * shape[2] * C, 7)
  const net = convPredictor(C, K, 11)

  const cases: {
    blend: BlendMode
    overlap: number
    output: 'probabilities' | 'logits'
    swBatch: number
    starts: [number[], number[], number[]]
  }[] = [
    // overlap 0.25: intervals 6, 4, 3 → [0, 5], [0, 4], [0, 3]
    {
      blend: 'constant',
      overlap: 0.25,
      output: 'probabilities',
      swBatch: 1,
      starts: [
        [0, 5],
        [0, 4],
        [0, 3],
      ],
    },
    {
      blend: 'gaussian',
      overlap: 0.25,
      output: 'probabilities',
      swBatch: 3,
      starts: [
        [0, 5],
        [0, 4],
        [0, 3],
      ],
    },
    // overlap 0.5: intervals 4, 3, 2 → [0, 4, 5], [0, 3, 4], [0, 2, 3]
    {
      blend: 'constant',
      overlap: 0.5,
      output: 'logits',
      swBatch: 4,
      starts: [
        [0, 4, 5],
        [0, 3, 4],
        [0, 2, 3],
      ],
    },
    {
      blend: 'gaussian',
      overlap: 0.5,
      output: 'logits',
      swBatch: 2,
      starts: [
        [0, 4, 5],
        [0, 3, 4],
        [0, 2, 3],
      ],
    },
  ]
  for (const c of cases) {
    it(`${c.blend} blending, overlap ${c.overlap}, ${c.output}, swBatch ${c.swBatch}`, async () => {
      const before = tf.memory().numTensors
      const res = await slidingWindowInference(
        { data: img, shape, channels: C },
        roi,
        net.predictor,
        c,
      )
      expect(tf.memory().numTensors).toBe(before)
      expect(res.windows.length).toBe(c.starts[0].length * c.starts[1].length * c.starts[2].length)
      expect(res.classes).toBe(K)
      expect(res.shape).toEqual(shape)
      const ref = await bruteForce(img, shape, C, roi, net.predictor, c.starts, {
        ...c,
        mirror: false,
      })
      expect(maxAbsDiff(res.data, ref.data)).toBeLessThan(2e-5)
      if (c.output === 'probabilities') {
        for (let v = 0; v < 20; v++) {
          const s = res.data[v * K] + res.data[v * K + 1] + res.data[v * K + 2]
          expect(s).toBeCloseTo(1, 5)
        }
      }
    })
  }

  it('gaussian and constant blending give different results where windows overlap', async () => {
    const a = await slidingWindowInference({ data: img, shape, channels: C }, roi, net.predictor, {
      blend: 'constant',
      output: 'logits',
    })
    const b = await slidingWindowInference({ data: img, shape, channels: C }, roi, net.predictor, {
      blend: 'gaussian',
      output: 'logits',
    })
    expect(maxAbsDiff(a.data, b.data)).toBeGreaterThan(1e-3)
    // A voxel covered by exactly one window gets that window's value either way.
    const v = 0 // (0, 0, 0) lies only in the first window
    for (let k = 0; k < K; k++) expect(a.data[v * K + k]).toBeCloseTo(b.data[v * K + k], 5)
  })

  it('mirror TTA averages the 8 flips (brute force with tf.reverse)', async () => {
    const before = tf.memory().numTensors
    const progress: number[] = []
    const res = await slidingWindowInference(
      { data: img, shape, channels: C },
      roi,
      net.predictor,
      {
        mirror: true,
        blend: 'gaussian',
        swBatch: 3,
        onProgress: (p) => {
          progress.push(p.done)
          expect(p.total).toBe(8 * 8)
        },
      },
    )
    expect(tf.memory().numTensors).toBe(before)
    expect(progress.at(-1)).toBe(64)
    const ref = await bruteForce(
      img,
      shape,
      C,
      roi,
      net.predictor,
      [
        [0, 5],
        [0, 4],
        [0, 3],
      ],
      {
        blend: 'gaussian',
        mirror: true,
        output: 'probabilities',
      },
    )
    expect(maxAbsDiff(res.data, ref.data)).toBeLessThan(2e-5)
    const plain = await slidingWindowInference(
      { data: img, shape, channels: C },
      roi,
      net.predictor,
      { blend: 'gaussian' },
    )
    expect(maxAbsDiff(res.data, plain.data)).toBeGreaterThan(1e-3)
  })

  it('mirror TTA changes nothing for a flip-equivariant (voxel-wise) predictor', async () => {
    const w = tf.tensor2d(rand(C * K, 5), [C, K])
    const pointwise: Predictor = (x) =>
      tf.tidy(() => {
        const [b, d, h, ww] = x.shape
        return tf.reshape(tf.matMul(tf.reshape(x, [-1, C]), w), [b, d, h, ww, K])
      })
    const a = await slidingWindowInference({ data: img, shape, channels: C }, roi, pointwise, {
      mirror: true,
    })
    const b = await slidingWindowInference({ data: img, shape, channels: C }, roi, pointwise, {
      mirror: false,
    })
    expect(maxAbsDiff(a.data, b.data)).toBeLessThan(1e-6)
    w.dispose()
  })
})

describe('padding when the image is smaller than the ROI', () => {
  it('pads with zeros (diff // 2 before) and crops back exactly', async () => {
    const C = 1
    const shape: V3 = [5, 9, 3] // roi [8, 6, 4]: pads d by 1+2, w by 0+1; h needs 2 windows
    const roi: V3 = [8, 6, 4]
    const img = rand(shape[0] * shape[1] * shape[2], 3)
    // Identity "logits": the blended output must equal the input voxel for voxel, which only
    // holds if every window is cut and put back at the right place.
    const identity: Predictor = (x) => tf.tidy(() => tf.mul(x, tf.scalar(1)) as tf.Tensor5D)
    const res = await slidingWindowInference({ data: img, shape, channels: C }, roi, identity, {
      output: 'logits',
      blend: 'gaussian',
    })
    expect(res.padBefore).toEqual([1, 0, 0])
    expect(res.windows).toEqual([
      [0, 0, 0],
      [0, 3, 0],
    ])
    expect(maxAbsDiff(res.data, img)).toBeLessThan(1e-6)
    // The padding is zeros: a predictor that sums its window sees them.
    const net = convPredictor(C, 2, 21)
    const out = await slidingWindowInference(
      { data: img, shape, channels: C },
      roi,
      net.predictor,
      { output: 'logits' },
    )
    const ref = await bruteForce(img, shape, C, roi, net.predictor, [[0], [0, 3], [0]], {
      blend: 'constant',
      mirror: false,
      output: 'logits',
    })
    expect(maxAbsDiff(out.data, ref.data)).toBeLessThan(2e-5)
    net.dispose()
  })
})

describe('inputs, ensembles, cancellation and errors', () => {
  const C = 1
  const shape: V3 = [9, 8, 6]
  const roi: V3 = [8, 8, 4]
  const img = rand(shape[0] * shape[1] * shape[2], 9)

  it('accepts a [b, d, h, w, c] tensor and handles each batch item', async () => {
    const net = convPredictor(C, 2, 31)
    const other = rand(img.length, 10)
    const both = new Float32Array(img.length * 2)
    both.set(img)
    both.set(other, img.length)
    const x = tf.tensor5d(both, [2, ...shape, C])
    const res = await slidingWindowInference(x, roi, net.predictor)
    expect(x.isDisposed).toBe(false)
    x.dispose()
    expect(res.batch).toBe(2)
    const a = await slidingWindowInference({ data: img, shape, channels: C }, roi, net.predictor)
    const b = await slidingWindowInference({ data: other, shape, channels: C }, roi, net.predictor)
    const n = a.data.length
    expect(maxAbsDiff(res.data.subarray(0, n), a.data)).toBe(0)
    expect(maxAbsDiff(res.data.subarray(n), b.data)).toBe(0)
    net.dispose()
  })

  it('an ensemble averages the softmax of its members', async () => {
    const n1 = convPredictor(C, 3, 41)
    const n2 = convPredictor(C, 3, 42)
    const before = tf.memory().numTensors
    const ens = await slidingWindowInference(
      { data: img, shape, channels: C },
      roi,
      ensemblePredictor([n1.predictor, n2.predictor]),
    )
    expect(tf.memory().numTensors).toBe(before)
    const a = await slidingWindowInference({ data: img, shape, channels: C }, roi, n1.predictor)
    const b = await slidingWindowInference({ data: img, shape, channels: C }, roi, n2.predictor)
    const mean = a.data.map((v, i) => (v + b.data[i]) / 2)
    expect(maxAbsDiff(ens.data, mean)).toBeLessThan(1e-5)
    n1.dispose()
    n2.dispose()
  })

  it('argmax picks the first maximum', () => {
    expect([...argmaxClasses(new Float32Array([0.1, 0.7, 0.2, 0.5, 0.5, 0, 0, 0, 1]), 3)]).toEqual([
      1, 0, 2,
    ])
  })

  it('stops with CANCELLED when the signal aborts, leaking no tensor', async () => {
    const net = convPredictor(C, 2, 51)
    const before = tf.memory().numTensors
    const ctrl = new AbortController()
    const run = slidingWindowInference({ data: img, shape, channels: C }, roi, net.predictor, {
      mirror: true,
      onProgress: (p) => {
        if (p.done === 3) ctrl.abort()
      },
      signal: ctrl.signal,
    })
    await expect(run).rejects.toMatchObject({ code: 'CANCELLED' })
    expect(tf.memory().numTensors).toBe(before)
    net.dispose()
  })

  it('rejects bad options and a predictor with the wrong output grid', async () => {
    const vol = { data: img, shape, channels: C }
    const id: Predictor = (x) => tf.tidy(() => tf.mul(x, tf.scalar(1)) as tf.Tensor5D)
    await expect(slidingWindowInference(vol, roi, id, { overlap: 1 })).rejects.toBeInstanceOf(
      DsdError,
    )
    await expect(slidingWindowInference(vol, roi, id, { swBatch: 0 })).rejects.toMatchObject({
      code: 'INFER_BAD_OPTION',
    })
    await expect(slidingWindowInference({ ...vol, channels: 2 }, roi, id)).rejects.toMatchObject({
      code: 'INFER_BAD_OPTION',
    })
    const before = tf.memory().numTensors
    const shrink: Predictor = (x) =>
      tf.tidy(() => tf.slice(x, [0, 0, 0, 0, 0], [-1, 4, 4, 4, -1]) as tf.Tensor5D)
    await expect(slidingWindowInference(vol, roi, shrink)).rejects.toThrow(/window grid/)
    expect(tf.memory().numTensors).toBe(before)
  })
})
