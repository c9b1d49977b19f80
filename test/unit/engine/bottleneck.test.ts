import { beforeAll, describe, expect, test } from 'vitest'
import { Bottleneck, initWeightArrays, paramCount } from '../../../main/engine/bottleneck'
import { Rng } from '../../../main/engine/random'
import { initBackend } from '../../../main/engine/backends'
import { tf } from '../../../main/engine/tf'
import { bottleneckGolden, expectClose } from './golden'

const golden = bottleneckGolden()

beforeAll(async () => {
  await initBackend('cpu')
})

describe('DSD bottleneck (DeepUp) against golden/dsd/bottleneck.json', () => {
  test('golden covers s = 1, 2, 4, 8', () => {
    expect(golden.modules.map((m) => m.scale)).toEqual([1, 2, 4, 8])
  })

  for (const m of golden.modules) {
    test(`s = ${m.scale}: C_in ${m.in_channels} → K ${m.classes}, input [${m.input.shape}]`, () => {
      tf.tidy(() => {
        const b = new Bottleneck(
          {
            convW: tf.tensor5d(m.conv_kernel.data, m.conv_kernel.shape as never),
            convB: tf.tensor1d(m.conv_bias),
            upW: tf.tensor5d(m.up_kernel.data, m.up_kernel.shape as never),
            upB: tf.tensor1d(m.up_bias),
          },
          m.scale,
        )
        const x = tf.tensor5d(m.input.data, m.input.shape as never)
        const y = b.forward(x)
        expect(y.shape).toEqual(m.output.shape)
        expectClose(y.dataSync(), m.output.data, 1e-5, 1e-5, `s=${m.scale} output`)
        expect(b.paramCount()).toBe(
          m.in_channels * m.classes +
            m.classes +
            m.classes ** 2 * (m.scale === 1 ? 1 : 8) +
            m.classes,
        )
      })
    })
  }

  test('parameter counts reproduce the spec §6 per-module numbers (K = 8)', () => {
    // UNETR MMWHS: ×1 on 32 ch, ×2 on 64, ×4 on 128, ×8 on 256, ×16 on 768; nnU-Net ×16 on 320
    expect(paramCount(32, 8, 1)).toBe(336)
    expect(paramCount(64, 8, 2)).toBe(1040)
    expect(paramCount(128, 8, 4)).toBe(1552)
    expect(paramCount(256, 8, 8)).toBe(2576)
    expect(paramCount(768, 8, 16)).toBe(6672)
    expect(paramCount(320, 8, 16)).toBe(3088)
    const unetr = 336 + 1040 + 1552 + 2576 + (6672 + 2576 + 1552 + 1040)
    expect(unetr).toBe(17344)
    expect(3088 + 2576 + 1552 + 1040 + 336).toBe(8592)
    expect(() => paramCount(8, 4, 3)).toThrow(/power of two/)
  })

  test('the same up weights are applied log2(s) times and gradients reach all four weights', () => {
    tf.tidy(() => {
      const rng = new Rng(7)
      const b = Bottleneck.create(3, 2, 4, rng, 'pytorch')
      const x = tf.tensor5d(rng.normalArray(2 * 2 * 1 * 2 * 3), [2, 2, 1, 2, 3])
      const y = b.forward(x)
      expect(y.shape).toEqual([2, 8, 4, 8, 2])
      // manual: conv then twice the same transposed conv via tf.conv3dTranspose
      const { convW, convB, upW, upB } = b.weights
      let h = tf.add(tf.conv3d(x, convW, 1, 'valid'), convB) as tf.Tensor5D
      for (let i = 0; i < 2; i++) {
        const [n, d, hh, w] = h.shape
        h = tf.add(
          tf.conv3dTranspose(h, upW, [n, 2 * d, 2 * hh, 2 * w, 2], 2, 'valid'),
          upB,
        ) as tf.Tensor5D
      }
      expectClose(y.dataSync(), h.dataSync(), 1e-5, 1e-6, 'manual forward')
      const { grads } = tf.variableGrads(
        () => tf.sum(tf.square(b.forward(x))) as tf.Scalar,
        [...(Object.values(b.weights) as tf.Variable[])],
      )
      expect(Object.keys(grads)).toHaveLength(4)
      for (const g of Object.values(grads))
        expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0)
      b.dispose()
    })
  })

  test('initialisation: PyTorch-default bounds and Kaiming(a=0.01) spread with zero bias', () => {
    const cin = 64
    const k = 8
    const p = initWeightArrays(cin, k, 2, new Rng(1), 'pytorch')
    const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
    expect(maxAbs(p.convW)).toBeLessThanOrEqual(1 / Math.sqrt(cin))
    expect(maxAbs(p.convW)).toBeGreaterThan(0.9 / Math.sqrt(cin))
    expect(maxAbs(p.upW)).toBeLessThanOrEqual(1 / Math.sqrt(k * 8))
    expect(maxAbs(p.upB)).toBeLessThanOrEqual(1 / Math.sqrt(k * 8))
    const q = initWeightArrays(256, 16, 2, new Rng(2), 'kaiming')
    const std = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length)
    const gain = Math.sqrt(2 / (1 + 1e-4))
    // 4096 samples: the sample std is within ~5 % of the target
    expect(Math.abs(std(q.convW) / (gain / Math.sqrt(256)) - 1)).toBeLessThan(0.05)
    expect(Math.abs(std(q.upW) / (gain / Math.sqrt(16 * 8)) - 1)).toBeLessThan(0.05)
    expect(q.convB.every((v) => v === 0) && q.upB.every((v) => v === 0)).toBe(true)
    // deterministic for a seed
    expect(initWeightArrays(cin, k, 2, new Rng(1), 'pytorch').upW).toEqual(p.upW)
  })

  test('shape errors name the weight', () => {
    expect(
      () =>
        new Bottleneck(
          {
            convW: tf.zeros([1, 1, 1, 4, 3]) as tf.Tensor5D,
            convB: tf.zeros([3]) as tf.Tensor1D,
            upW: tf.zeros([1, 1, 1, 3, 3]) as tf.Tensor5D,
            upB: tf.zeros([3]) as tf.Tensor1D,
          },
          2,
        ),
    ).toThrow(/upW must be \[2,2,2,3,3\]/)
  })
})
