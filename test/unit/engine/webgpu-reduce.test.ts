/**
 * The WebGPU column sum (`DsdColumnSum`, bias gradients) against float64 sums on the host:
 * one channel, odd channel counts (scalar loads), multiples of 4 (vec4 loads), more channels
 * than a workgroup is wide (channel groups), row counts that are not a multiple of the chunk,
 * both with this adapter's workgroup target and with a GPU's (2048 workgroups per pass, so the
 * partial rows are themselves summed in further passes). Skipped without a WebGPU adapter
 * (DSD_REQUIRE_WEBGPU=1 makes that a failure).
 */
import { afterAll, beforeAll, describe, expect, test, type TestContext } from 'vitest'
import { initBackend, probeBackends } from '../../../main/engine/backends'
import { columnSums, MIN_ITER, sumPass } from '../../../main/engine/kernels/webgpu/reduce'
import { Rng } from '../../../main/engine/random'
import { tf } from '../../../main/engine/tf'

let why: string | undefined

beforeAll(async () => {
  const p = (await probeBackends()).find((q) => q.name === 'webgpu')
  if (!p?.available) why = p?.reason ?? 'webgpu was not probed'
  else await initBackend('webgpu')
})

afterAll(async () => {
  await initBackend('cpu')
})

function skipUnlessWebgpu(ctx: TestContext): boolean {
  if (!why) return false
  const line = `webgpu: not run: ${why}`
  console.warn(`\n!!!!!!!!!! ${line} !!!!!!!!!!\n`)
  if (process.env.DSD_REQUIRE_WEBGPU === '1') expect.fail(line)
  ctx.skip()
  return true
}

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
