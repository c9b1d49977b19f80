/**
 * The fused CPU/WASM kernels (main/engine/kernels) against the tf-op versions they replace:
 * forward values and gradients on both backends, within float32 rounding.
 */
import { afterAll, describe, expect, test } from 'vitest'
import { initBackend } from '../../../main/engine/backends'
import { tf } from '../../../main/engine/tf'
import * as ops from '../../../main/engine/ops'
import { diceCE, klDistill, klDistillTf, oneHotFloat } from '../../../main/engine/loss'
import { setFusedKernels, useFused } from '../../../main/engine/kernels/dispatch'
import { diceCEFused, labelArray } from '../../../main/engine/kernels/loss'
import { conv3dFused } from '../../../main/engine/kernels/conv3d'

afterAll(async () => {
  setFusedKernels(null)
  await initBackend('cpu')
})

/** Max |a − b| relative to max(1, max |b|). */
function relErr(a: tf.Tensor, b: tf.Tensor): number {
  const av = a.dataSync()
  const bv = b.dataSync()
  expect(a.shape).toEqual(b.shape)
  let m = 0
  let scale = 1
  for (let i = 0; i < av.length; i++) {
    m = Math.max(m, Math.abs(av[i]! - bv[i]!))
    scale = Math.max(scale, Math.abs(bv[i]!))
  }
  return m / scale
}

/** Value and gradients of `f` with the fused kernels on and off. */
function both(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[]): tf.Tensor[][] {
  const run = (on: boolean) => {
    setFusedKernels(on)
    expect(useFused()).toBe(on)
    const y = f(...xs)
    const w = tf.randomUniform(y.shape, 0.5, 1.5, 'float32', 11)
    const gs = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), w)))(xs)
    return [y, ...gs]
  }
  const fused = run(true)
  const plain = run(false)
  setFusedKernels(null)
  return [fused, plain]
}

function expectSame(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], tol = 2e-5): void {
  const [fused, plain] = both(f, xs)
  expect(fused).toHaveLength(plain.length)
  for (let i = 0; i < fused.length; i++) expect(relErr(fused[i]!, plain[i]!)).toBeLessThan(tol)
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`fused kernels equal the tf-op versions on ${backend}`, () => {
    test('instance norm, instance norm + LeakyReLU, add + LeakyReLU, LeakyReLU', async () => {
      await initBackend(backend)
      tf.tidy(() => {
        // a shifted, scaled input so the statistics matter
        const x = tf.add(tf.mul(tf.randomNormal([2, 5, 4, 3, 6], 0, 1, 'float32', 1), 3), 2)
        const r = tf.randomNormal([2, 5, 4, 3, 6], 0, 1, 'float32', 2)
        expectSame((a) => ops.instanceNorm(a as tf.Tensor5D), [x])
        expectSame((a) => ops.instanceNormLeakyRelu(a as tf.Tensor5D, 0.01), [x])
        expectSame((a) => ops.leakyRelu(a, 0.2), [r])
        expectSame((a, b) => ops.addLeakyRelu(a!, b!, 0.01), [x, r])
        // instanceNorm's fused output really is normalised
        setFusedKernels(true)
        const y = ops.instanceNorm(x as tf.Tensor5D)
        const m = tf.mean(tf.reshape(y, [2, 60, 6]), 1).dataSync()
        for (const v of m) expect(Math.abs(v)).toBeLessThan(1e-5)
        setFusedKernels(null)
      })
    })

    test('bias add (addRowVector) and its bias gradient', async () => {
      await initBackend(backend)
      tf.tidy(() => {
        const x = tf.randomNormal([37, 5], 0, 1, 'float32', 3)
        const b = tf.randomNormal([5], 0, 1, 'float32', 4)
        expectSame((a, c) => ops.addRowVector(a as tf.Tensor2D, c as tf.Tensor1D), [x, b])
      })
    })

    test('Dice-CE: value and logit gradient, labels out of range count as empty', async () => {
      await initBackend(backend)
      tf.tidy(() => {
        const logits = tf.mul(tf.randomNormal([2, 4, 3, 3, 4], 0, 1, 'float32', 5), 2)
        const raw = tf.randomUniformInt([2, 4, 3, 3], 0, 4, 6).dataSync()
        const lab = Int32Array.from(raw)
        lab[5] = 7 // outside [0, K)
        lab[40] = -1
        const labels = tf.tensor(lab, [2, 4, 3, 3], 'int32')
        const target = oneHotFloat(labels, 4)
        const ints = labelArray(labels)
        const fv = diceCEFused(logits, ints)
        const pv = diceCE(logits, target)
        expect(relErr(fv, pv)).toBeLessThan(1e-6)
        const gf = tf.grad((a: tf.Tensor) => diceCEFused(a, ints))(logits)
        const gp = tf.grad((a: tf.Tensor) => diceCE(a, target))(logits)
        expect(relErr(gf, gp)).toBeLessThan(1e-5)
        expect(tf.max(tf.abs(gp)).dataSync()[0]).toBeGreaterThan(1e-4)
      })
    })

    test('KL distillation: value and gradients into student AND teacher', async () => {
      await initBackend(backend)
      tf.tidy(() => {
        const s = tf.mul(tf.randomNormal([2, 3, 3, 2, 5], 0, 1, 'float32', 7), 3)
        const t = tf.mul(tf.randomNormal([2, 3, 3, 2, 5], 0, 1, 'float32', 8), 3)
        setFusedKernels(true)
        const fv = klDistill(s, t, 3)
        const [gs, gt] = tf.grads((a: tf.Tensor, b: tf.Tensor) => klDistill(a, b, 3))([s, t])
        setFusedKernels(null)
        const pv = klDistillTf(s, t, 3)
        const [ps, pt] = tf.grads((a: tf.Tensor, b: tf.Tensor) => klDistillTf(a, b, 3))([s, t])
        expect(relErr(fv, pv)).toBeLessThan(1e-6)
        expect(relErr(gs!, ps!)).toBeLessThan(1e-5)
        expect(relErr(gt!, pt!)).toBeLessThan(1e-5)
        expect(tf.max(tf.abs(pt!)).dataSync()[0]).toBeGreaterThan(1e-5)
      })
    })

    test('conv3d (the WebAssembly kernel on wasm): value, dx and dW equal tf.conv3d on the CPU', async () => {
      const cases = [
        {
          st: [1, 1, 1],
          pads: [
            [1, 1, 1],
            [1, 1, 1],
          ],
          mode: 'same',
        },
        {
          st: [2, 2, 2],
          pads: [
            [1, 1, 1],
            [1, 1, 1],
          ],
          mode: 1,
        },
        {
          st: [2, 1, 2],
          pads: [
            [0, 0, 0],
            [0, 0, 0],
          ],
          mode: 'valid',
        },
      ] as const
      for (const c of cases) {
        await initBackend('cpu')
        const xa = tf.randomNormal([2, 7, 6, 5, 3], 0, 1, 'float32', 9)
        const wa = tf.randomNormal([3, 3, 3, 3, 4], 0, 1, 'float32', 10)
        const ref = (a: tf.Tensor, b: tf.Tensor) => {
          const aa = typeof c.mode === 'number' ? ops.pad3d(a as tf.Tensor5D, c.mode) : a
          return tf.conv3d(
            aa as tf.Tensor5D,
            b as tf.Tensor5D,
            c.st as never,
            c.mode === 'same' ? 'same' : 'valid',
          )
        }
        const yr = ref(xa, wa)
        const wy = tf.randomUniform(yr.shape, 0.5, 1.5, 'float32', 12)
        const [dxr, dwr] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(ref(a, b), wy)))([
          xa,
          wa,
        ])
        const expected = [yr, dxr!, dwr!].map((t) => ({ v: t.dataSync().slice(), s: t.shape }))
        const xs = [xa.dataSync().slice(), wa.dataSync().slice(), wy.dataSync().slice()]
        await initBackend(backend)
        const x = tf.tensor(xs[0]!, [2, 7, 6, 5, 3]) as tf.Tensor5D
        const w = tf.tensor(xs[1]!, [3, 3, 3, 3, 4]) as tf.Tensor5D
        const wyb = tf.tensor(xs[2]!, expected[0]!.s)
        const f = (a: tf.Tensor, b: tf.Tensor) =>
          conv3dFused(a as tf.Tensor5D, b as tf.Tensor5D, c.st as never, c.pads as never)
        const y = f(x, w)
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), wyb)))([
          x,
          w,
        ])
        const got = [y, dx!, dw!]
        for (let i = 0; i < 3; i++) {
          expect(relErr(got[i]!, tf.tensor(expected[i]!.v, expected[i]!.s))).toBeLessThan(2e-5)
        }
      }
    })
  })
}
