/**
 * The WebGPU reductions with a GPU's workgroup geometry, run on this adapter. The column sum
 * (`DsdColumnSum`, bias gradients) against float64 sums on the host:
 * one channel, odd channel counts (scalar loads), multiples of 4 (vec4 loads), more channels
 * than a workgroup is wide (channel groups), row counts that are not a multiple of the chunk,
 * both with this adapter's workgroup target and with a GPU's (2048 workgroups per pass, so the
 * partial rows are themselves summed in further passes). The instance norm's statistics and
 * gradient sums (norm.ts) at 2048 target workgroups — more chunks than a merge workgroup has
 * lanes, row lanes merged in workgroup memory — against the JS CPU backend. Skipped without a WebGPU adapter
 * (DSD_REQUIRE_WEBGPU=1 makes that a failure).
 */
import { afterAll, beforeAll, describe, expect, test, type TestContext } from 'vitest'
import { initBackend } from '../../../main/engine/backends'
import { setTargetGroups } from '../../../main/engine/kernels/webgpu/occupancy'
import { columnSums, MIN_ITER, sumPass } from '../../../main/engine/kernels/webgpu/reduce'
import * as ops from '../../../main/engine/ops'
import { Rng } from '../../../main/engine/random'
import { tf } from '../../../main/engine/tf'
import { skipUnlessWebgpu as skipIf, webgpuUnavailable } from '../../helpers/webgpu'

let why: string | undefined

beforeAll(async () => {
  why = await webgpuUnavailable()
  if (!why) await initBackend('webgpu')
})

afterAll(async () => {
  setTargetGroups(null)
  await initBackend('cpu')
})

const skipUnlessWebgpu = (ctx: TestContext) => skipIf(ctx, why)

describe('column sums on WebGPU', () => {
  const rng = new Rng(77)
  const cases: [number, number][] = [
    [1000, 1],
    [4099, 3],
    [777, 4],
    [20_001, 8],
    [513, 13],
    [300, 70],
    [37, 300],
    [50, 301],
    [19, 1028],
    [1, 5],
  ]
  for (const [n, c] of cases) {
    test(`[${n}, ${c}]`, async (ctx) => {
      if (skipUnlessWebgpu(ctx)) return
      // offset per channel, so that a sum landing in the wrong channel shows
      const data = rng.normalArray(n * c).map((v, i) => v + (i % c))
      const ref = new Float64Array(c)
      const mag = new Float64Array(c)
      for (let i = 0; i < n * c; i++) {
        ref[i % c]! += data[i]!
        mag[i % c]! += Math.abs(data[i]!)
      }
      for (const target of [undefined, 2048]) {
        const x = tf.tensor2d(data, [n, c])
        const s = columnSums(x, target)
        expect(s.shape).toEqual([c])
        const got = await s.data()
        x.dispose()
        s.dispose()
        for (let j = 0; j < c; j++) {
          const err = Math.abs(got[j]! - ref[j]!)
          if (err > 1e-6 * mag[j]! + 1e-6) {
            expect.fail(`[${n}, ${c}] target ${target}: channel ${j}: ${got[j]} vs ${ref[j]}`)
          }
        }
      }
    })
  }

  test('a 5-D gradient [2, 3, 4, 5, 6] sums over every axis but the last', async (ctx) => {
    if (skipUnlessWebgpu(ctx)) return
    const x = tf.tensor(rng.normalArray(720), [2, 3, 4, 5, 6])
    const want = await tf.sum(x, [0, 1, 2, 3]).data()
    const got = await columnSums(x).data()
    x.dispose()
    for (let j = 0; j < 6; j++) expect(got[j]).toBeCloseTo(want[j]!, 4)
  })
})

describe('instance norm at a GPU geometry', () => {
  const rng = new Rng(91)
  const shapes: [number, number, number, number, number][] = [
    [2, 12, 12, 12, 70],
    [1, 32, 32, 24, 3],
  ]
  for (const shape of shapes) {
    test(`[${shape}]: values and gradients (+ normalised residual, LeakyReLU) equal the cpu backend`, async (ctx) => {
      if (skipUnlessWebgpu(ctx)) return
      const size = shape.reduce((a, b) => a * b, 1)
      const h = rng.normalArray(size).map((v, i) => (i % 2 ? v : v + 30))
      const r = rng.normalArray(size)
      const g = rng.normalArray(size)
      const run = async (backend: 'cpu' | 'webgpu') => {
        await initBackend(backend)
        const prev = setTargetGroups(backend === 'webgpu' ? 2048 : null)
        try {
          const out = tf.tidy(() => {
            const f = (a: tf.Tensor, b: tf.Tensor) =>
              tf.sum(tf.mul(ops.instanceNormAddLeakyRelu(a as tf.Tensor5D, b as tf.Tensor5D, true, 0.01), tf.tensor(g, shape)))
            const { value, grads } = tf.valueAndGrads(f)([tf.tensor(h, shape), tf.tensor(r, shape)])
            const y = ops.instanceNormLeakyRelu(tf.tensor(h, shape) as tf.Tensor5D, 0.01)
            return [value, grads[0]!, grads[1]!, y]
          })
          const data = await Promise.all(out.map((t) => t.data()))
          tf.dispose(out)
          return data as Float32Array[]
        } finally {
          setTargetGroups(prev)
        }
      }
      const want = await run('cpu')
      const got = await run('webgpu')
      for (let k = 0; k < want.length; k++) {
        const ref = want[k]!
        const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
        const worst = ref.reduce((m, v, i) => Math.max(m, Math.abs(v - got[k]![i]!)), 0)
        expect(worst / scale, `output ${k}`).toBeLessThan(1e-4)
      }
    })
  }
})

describe('column sum geometry', () => {
  test('a 2 × 96³ × 8 gradient on a GPU: hundreds of 256-wide workgroups, vec4 loads', () => {
    const p = sumPass(2 * 96 ** 3, 8, 2048)
    expect(p.vec).toBe(true)
    expect(p.RL).toBe(128)
    expect(p.Z * p.CG).toBeGreaterThan(500)
    // every invocation reads at least MIN_ITER rows; the partial rows fit one more pass
    expect(Math.ceil(p.rpc / p.RL)).toBeGreaterThanOrEqual(MIN_ITER)
    expect(sumPass(p.Z, 8, 2048).Z).toBe(1)
  })

  test('odd channel counts use scalar loads; more than 256 channels use channel groups', () => {
    expect(sumPass(1000, 3, 2048)).toMatchObject({ vec: false, cv: 3, RL: 85, CG: 1 })
    expect(sumPass(1000, 301, 2048)).toMatchObject({ vec: false, CG: 2, RL: 1 })
    expect(sumPass(1000, 1028, 2048)).toMatchObject({ vec: true, cv: 257, CG: 2 })
  })
})
