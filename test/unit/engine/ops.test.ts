import { beforeAll, describe, expect, test } from 'vitest'
import * as ops from '../../../main/engine/ops'
import { Rng } from '../../../main/engine/random'
import { initBackend } from '../../../main/engine/backends'
import { tf } from '../../../main/engine/tf'
import { expectClose } from './golden'

beforeAll(async () => {
  await initBackend('cpu')
})

const rng = new Rng(1234)
const randn = (shape: number[]) =>
  tf.tensor(
    rng.normalArray(shape.reduce((a, b) => a * b, 1)),
    shape as [number, number, number, number, number],
  ) as tf.Tensor5D

/** erf by its Taylor series in double precision (accurate to ~1e-10 for |x| ≤ 4). */
function erf(x: number): number {
  let term = x
  let sum = x
  for (let n = 1; n < 120; n++) {
    term *= (-x * x) / n
    sum += term / (2 * n + 1)
  }
  return (2 / Math.sqrt(Math.PI)) * sum
}

/** Direct PyTorch-semantics conv3d (channels-last, zero padding p, stride s) in doubles. */
function conv3dRef(
  x: Float32Array,
  [b, d, h, w, ci]: number[],
  f: Float32Array,
  [kd, kh, kw, , co]: number[],
  s: number,
  p: number,
): { data: Float64Array; shape: number[] } {
  const od = Math.floor((d + 2 * p - kd) / s) + 1
  const oh = Math.floor((h + 2 * p - kh) / s) + 1
  const ow = Math.floor((w + 2 * p - kw) / s) + 1
  const out = new Float64Array(b * od * oh * ow * co)
  for (let n = 0; n < b; n++)
    for (let z = 0; z < od; z++)
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++)
          for (let o = 0; o < co; o++) {
            let acc = 0
            for (let a = 0; a < kd; a++)
              for (let c = 0; c < kh; c++)
                for (let e = 0; e < kw; e++) {
                  const zi = z * s + a - p
                  const yi = y * s + c - p
                  const xi = xx * s + e - p
                  if (zi < 0 || yi < 0 || xi < 0 || zi >= d || yi >= h || xi >= w) continue
                  for (let i = 0; i < ci; i++) {
                    acc +=
                      x[(((n * d + zi) * h + yi) * w + xi) * ci + i]! *
                      f[(((a * kh + c) * kw + e) * ci + i) * co + o]!
                  }
                }
            out[(((n * od + z) * oh + y) * ow + xx) * co + o] = acc
          }
  return { data: out, shape: [b, od, oh, ow, co] }
}

describe('WebGPU-safe ops on the CPU backend', () => {
  test('convTranspose3dK2S2 equals tf.conv3dTranspose (stride 2, valid) with and without bias', () => {
    tf.tidy(() => {
      const x = randn([2, 3, 2, 4, 5])
      const f = randn([2, 2, 2, 3, 5])
      const bias = tf.tensor1d([0.5, -1, 2])
      const ours = ops.convTranspose3dK2S2(x, f)
      const ref = tf.conv3dTranspose(x, f, [2, 6, 4, 8, 3], 2, 'valid')
      expect(ours.shape).toEqual([2, 6, 4, 8, 3])
      expectClose(ours.dataSync(), ref.dataSync(), 1e-6, 1e-7, 'no bias')
      const withBias = ops.convTranspose3dK2S2(x, f, bias)
      expectClose(withBias.dataSync(), tf.add(ref, bias).dataSync(), 1e-6, 1e-7, 'bias')
    })
  })

  test('convTranspose3dK1 equals tf.conv3dTranspose (1×1×1, stride 1)', () => {
    tf.tidy(() => {
      const x = randn([1, 2, 3, 4, 6])
      const f = randn([1, 1, 1, 4, 6])
      const ours = ops.convTranspose3dK1(x, f, tf.tensor1d([1, 2, 3, 4]))
      const ref = tf.add(
        tf.conv3dTranspose(x, f, [1, 2, 3, 4, 4], 1, 'valid'),
        tf.tensor1d([1, 2, 3, 4]),
      )
      expectClose(ours.dataSync(), ref.dataSync(), 1e-6, 1e-7, 'k1')
    })
  })

  test('convTranspose3dK2S2 gradients match central differences (x and filter)', () => {
    // L = Σ w⊙y + ½Σ y² is quadratic in x and in f separately, so central differences are
    // exact up to float32 rounding of L.
    const x0 = rng.normalArray(1 * 2 * 1 * 2 * 3)
    const f0 = rng.normalArray(2 * 2 * 2 * 2 * 3)
    const w0 = rng.normalArray(1 * 4 * 2 * 4 * 2)
    const L = (xa: tf.Tensor, fa: tf.Tensor) => {
      const y = ops.convTranspose3dK2S2(xa as tf.Tensor5D, fa as tf.Tensor5D)
      return tf.add(
        tf.sum(tf.mul(y, tf.tensor(w0, y.shape))),
        tf.mul(tf.sum(tf.square(y)), 0.5),
      ) as tf.Scalar
    }
    const xs = [1, 2, 1, 2, 3]
    const fs = [2, 2, 2, 2, 3]
    const [gx, gf] = tf
      .grads(L)([tf.tensor(x0, xs), tf.tensor(f0, fs)])
      .map((g) => g.dataSync())
    const evalL = (xa: Float32Array, fa: Float32Array) =>
      tf.tidy(() => L(tf.tensor(xa, xs), tf.tensor(fa, fs)).dataSync()[0]!)
    const eps = 0.125
    const numeric = (which: 'x' | 'f') => {
      const base = which === 'x' ? x0 : f0
      return Array.from(base, (_, i) => {
        const plus = Float32Array.from(base)
        const minus = Float32Array.from(base)
        plus[i]! += eps
        minus[i]! -= eps
        const lp = which === 'x' ? evalL(plus, f0) : evalL(x0, plus)
        const lm = which === 'x' ? evalL(minus, f0) : evalL(x0, minus)
        return (lp - lm) / (2 * eps)
      })
    }
    expectClose(gx!, numeric('x'), 1e-3, 1e-3, 'dL/dx')
    expectClose(gf!, numeric('f'), 1e-3, 1e-3, 'dL/df')
  })

  test('conv3d: numeric pad reproduces PyTorch padding (stride 1 and 2); TF same/valid pass through', () => {
    tf.tidy(() => {
      const xs = [1, 5, 4, 6, 2]
      const fs = [3, 3, 3, 2, 3]
      const x = randn(xs)
      const f = randn(fs)
      const xa = x.dataSync() as Float32Array
      const fa = f.dataSync() as Float32Array
      for (const s of [1, 2]) {
        const ours = ops.conv3d(x, f, null, s, 1)
        const ref = conv3dRef(xa, xs, fa, fs, s, 1)
        expect(ours.shape).toEqual(ref.shape)
        expectClose(ours.dataSync(), ref.data, 1e-5, 1e-6, `pad 1 stride ${s}`)
      }
      const bias = tf.tensor1d([1, -2, 3])
      const same = ops.conv3d(x, f, bias, 1, 'same')
      expectClose(
        same.dataSync(),
        tf.add(tf.conv3d(x, f, 1, 'same'), bias).dataSync(),
        1e-6,
        1e-7,
        'same',
      )
      expect(ops.conv3d(x, f, null, 1, 'valid').shape).toEqual([1, 3, 2, 4, 3])
    })
  })

  test('instanceNorm: per sample and channel over d·h·w, biased variance, eps 1e-5', () => {
    tf.tidy(() => {
      const shape = [2, 3, 2, 4, 3]
      const x = randn(shape)
      const xa = x.dataSync()
      const y = ops.instanceNorm(x).dataSync()
      const [b, , , , c] = shape as [number, number, number, number, number]
      const n = 3 * 2 * 4
      const expected = new Float64Array(xa.length)
      for (let s = 0; s < b; s++)
        for (let ch = 0; ch < c; ch++) {
          let mean = 0
          for (let v = 0; v < n; v++) mean += xa[(s * n + v) * c + ch]!
          mean /= n
          let varc = 0
          for (let v = 0; v < n; v++) varc += (xa[(s * n + v) * c + ch]! - mean) ** 2
          varc /= n
          for (let v = 0; v < n; v++) {
            const i = (s * n + v) * c + ch
            expected[i] = (xa[i]! - mean) / Math.sqrt(varc + 1e-5)
          }
        }
      expectClose(y, expected, 1e-5, 1e-5, 'instanceNorm')
    })
  })

  test('layerNorm over the last axis with gamma/beta', () => {
    tf.tidy(() => {
      const x = tf.tensor2d([
        [1, 2, 3, 4],
        [2, 2, 2, 2.5],
      ])
      const g = tf.tensor1d([1, 2, 0.5, -1])
      const bt = tf.tensor1d([0, 1, 0, 0.25])
      const y = ops.layerNorm(tf.reshape(x, [1, 2, 4]), g, bt).dataSync()
      const exp: number[] = []
      for (const row of [
        [1, 2, 3, 4],
        [2, 2, 2, 2.5],
      ]) {
        const m = row.reduce((a, v) => a + v, 0) / 4
        const v = row.reduce((a, q) => a + (q - m) ** 2, 0) / 4
        row.forEach((q, i) =>
          exp.push(((q - m) / Math.sqrt(v + 1e-5)) * [1, 2, 0.5, -1][i]! + [0, 1, 0, 0.25][i]!),
        )
      }
      expectClose(y, exp, 1e-5, 1e-6, 'layerNorm')
    })
  })

  test('gelu (exact erf), leakyRelu (0.01), softmax/logSoftmax over the class axis', () => {
    tf.tidy(() => {
      const vals = [-4, -2.5, -1, -0.3, 0, 0.2, 0.7, 1.5, 3, 3.9]
      const x = tf.tensor(vals, [1, 1, 2, 5, 1]) as tf.Tensor5D
      expectClose(
        ops.gelu(x).dataSync(),
        vals.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))),
        1e-5,
        1e-6,
        'gelu',
      )
      expectClose(
        ops.leakyRelu(x).dataSync(),
        vals.map((v) => (v > 0 ? v : 0.01 * v)),
        1e-6,
        0,
        'leakyRelu',
      )
      const z = tf.tensor(vals, [1, 1, 1, 2, 5]) as tf.Tensor5D
      const sm = ops.softmaxLast(z).dataSync()
      const lsm = ops.logSoftmaxLast(z).dataSync()
      for (const r of [0, 1]) {
        const row = vals.slice(r * 5, r * 5 + 5)
        const mx = Math.max(...row)
        const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0))
        expectClose(
          sm.slice(r * 5, r * 5 + 5),
          row.map((v) => Math.exp(v - lse)),
          1e-5,
          1e-7,
          'softmax',
        )
        expectClose(
          lsm.slice(r * 5, r * 5 + 5),
          row.map((v) => v - lse),
          1e-5,
          1e-6,
          'logSoftmax',
        )
      }
    })
  })

  test('addBias, add, concatLast, pointwise, linear keep shapes and values', () => {
    tf.tidy(() => {
      const a = randn([1, 2, 2, 2, 3])
      const b = randn([1, 2, 2, 2, 2])
      const cat = ops.concatLast([a, b])
      expect(cat.shape).toEqual([1, 2, 2, 2, 5])
      expectClose(cat.dataSync(), tf.concat([a, b], 4).dataSync(), 0, 0, 'concat')
      expectClose(ops.add(a, a).dataSync(), tf.mul(a, 2).dataSync(), 0, 0, 'add')
      expect(() => ops.add(a, b)).toThrow(/shapes differ/)
      const w = randn([1, 1, 1, 3, 4])
      expectClose(
        ops.pointwise(a, w, tf.tensor1d([1, 2, 3, 4])).dataSync(),
        tf.add(tf.conv3d(a, w, 1, 'valid'), tf.tensor1d([1, 2, 3, 4])).dataSync(),
        1e-6,
        1e-7,
        'pointwise',
      )
      const lw = tf.reshape(w, [3, 4]) as tf.Tensor2D
      expectClose(
        ops.linear(a, lw).dataSync(),
        tf.conv3d(a, w, 1, 'valid').dataSync(),
        1e-6,
        1e-7,
        'linear',
      )
      expectClose(ops.scale(a, 3).dataSync(), tf.mul(a, 3).dataSync(), 1e-7, 0, 'scale')
    })
  })
})

describe('dilate3d and pad3d', () => {
  test('dilate3d inserts s − 1 zeros per axis; pad3d pads per axis', () => {
    tf.tidy(() => {
      const x = tf.tensor([1, 2, 3, 4], [1, 2, 2, 1, 1]) as tf.Tensor5D
      const d = ops.dilate3d(x, [2, 3, 1])
      expect(d.shape).toEqual([1, 3, 4, 1, 1])
      expect(Array.from(d.dataSync())).toEqual([1, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 4])
      const p = ops.pad3d(x, [
        [1, 0],
        [0, 2],
        [1, 1],
      ])
      expect(p.shape).toEqual([1, 3, 4, 3, 1])
      expect(tf.sum(p).dataSync()[0]).toBe(10)
      expect(p.dataSync()[(1 * 4 + 0) * 3 + 1]).toBe(1)
    })
  })
})

describe('dispatch-safe helpers (WebGPU 65,535-workgroup limit)', () => {
  test('addRowVector / mulRowVector gradients equal TF.js broadcast gradients', () => {
    tf.tidy(() => {
      const x = tf.tensor2d(rng.normalArray(7 * 3), [7, 3])
      const v = tf.tensor1d([0.5, -2, 3])
      const w = tf.tensor2d(rng.normalArray(7 * 3), [7, 3])
      const loss =
        (f: (a: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.square(f(a as tf.Tensor2D, b as tf.Tensor1D)), w)) as tf.Scalar
      for (const [ours, ref] of [
        [ops.addRowVector, (a: tf.Tensor2D, b: tf.Tensor1D) => tf.add(a, b)],
        [ops.mulRowVector, (a: tf.Tensor2D, b: tf.Tensor1D) => tf.mul(a, b)],
      ] as const) {
        const g1 = tf.grads(loss(ours))([x, v])
        const g2 = tf.grads(loss(ref))([x, v])
        expectClose(g1[0]!.dataSync(), g2[0]!.dataSync(), 1e-6, 1e-7, `${ours.name} dx`)
        expectClose(g1[1]!.dataSync(), g2[1]!.dataSync(), 1e-6, 1e-7, `${ours.name} dv`)
      }
      expect(
        Array.from(
          ops
            .sumRows(
              tf.tensor2d([
                [1, 2],
                [3, 4],
                [5, 6],
              ]),
            )
            .dataSync(),
        ),
      ).toEqual([9, 12])
    })
  })

  test('matMulRows splits beyond MATMUL_ROW_CHUNK rows and equals one matMul', () => {
    tf.tidy(() => {
      const n = ops.MATMUL_ROW_CHUNK + 3
      const a = tf.tensor2d(rng.uniformArray(n * 2, -1, 1), [n, 2])
      const w = tf.tensor2d([1, 2, 3, -1, 0.5, 0.25], [2, 3])
      const y = ops.matMulRows(a, w)
      expect(y.shape).toEqual([n, 3])
      expect(Array.from(y.dataSync())).toEqual(Array.from(tf.matMul(a, w).dataSync()))
    })
  })
})
