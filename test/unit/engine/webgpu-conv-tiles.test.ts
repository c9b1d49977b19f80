/**
 * Every tile table of the tiled WGSL convolution (`DSD_CONV_TILE`, conv-tiled.ts) against the
 * JS CPU backend, forward and both gradients, on shapes that reach each table's distinct
 * blocks: N ≥ 128 (6→130), 64 ≤ N < 128 (70→64 and its input gradient with N = 70),
 * 32 ≤ N < 64 (20→33, 40→36), N < 32 (the input gradients of 6→130 and 20→33), stride 2
 * and a bias. `base`, the default, also runs every case of webgpu-kernels.test.ts.
 *
 * The f16 path (shader-f16: operands rounded to half precision in workgroup memory, f32
 * products and sums; one table and case here, bench/device/conv-check.ts runs them all on
 * the GPU): on inputs that are already f16 values it must agree with the CPU to
 * float32 accuracy (1e-4); on ordinary inputs its error must show the rounding (above 1e-6)
 * and stay within 1e-2 of the largest value.
 *
 * Runs on Mesa lavapipe; without an adapter the cases print "webgpu: not run: <reason>" and
 * skip (DSD_REQUIRE_WEBGPU=1 makes that a failure).
 */
import { afterAll, beforeAll, describe, expect, test, type TestContext } from 'vitest'
import { initBackend } from '../../../main/engine/backends'
import * as gpu from '../../../main/engine/kernels/webgpu'
import {
  blockBytes,
  convTile,
  setConvTile,
  TILE_TABLES,
  tiledShape,
  threadsOf,
} from '../../../main/engine/kernels/webgpu/conv-tiled'
import { roundF16 } from '../../../main/engine/kernels/webgpu/f16'
import {
  deviceFeatures,
  setWebgpuPrecision,
  webgpuPrecision,
} from '../../../main/engine/kernels/webgpu/mode'
import * as ops from '../../../main/engine/ops'
import { Rng } from '../../../main/engine/random'
import { tf } from '../../../main/engine/tf'
import { expectClose } from './golden'
import { runOn, skipUnlessWebgpu as skipWithout, webgpuUnavailable } from '../../helpers/webgpu'

let why: string | undefined

beforeAll(async () => {
  why = await webgpuUnavailable()
})

afterAll(async () => {
  setConvTile(null)
  setWebgpuPrecision(null)
  gpu.setConvVariant(null)
  await initBackend('cpu')
})

const skipUnlessWebgpu = (ctx: TestContext) => skipWithout(ctx, why)

interface Case {
  name: string
  x: number[]
  co: number
  s: number
  bias: boolean
}

const CASES: Case[] = [
  { name: '3³ s2 p1, 6→130, bias', x: [1, 3, 4, 3, 6], co: 130, s: 2, bias: true },
  { name: '3³ s1 p1, 20→33', x: [1, 4, 4, 4, 20], co: 33, s: 1, bias: false },
  { name: '3³ s1 p1, 40→36', x: [1, 4, 5, 4, 40], co: 36, s: 1, bias: false },
  { name: '3³ s1 p1, 70→64, bias', x: [1, 3, 4, 3, 70], co: 64, s: 1, bias: true },
]

type Data = { x: Float32Array; w: Float32Array; b: Float32Array; g: Float32Array }

function data(c: Case, seed: number, f16: boolean): Data {
  const rng = new Rng(seed)
  const n = (shape: number[]) => rng.normalArray(shape.reduce((a, b) => a * b, 1))
  const r = (a: Float32Array) => (f16 ? roundF16(a) : a)
  const od = c.x.slice(1, 4).map((v) => Math.floor((v + 2 - 3) / c.s) + 1)
  return {
    x: r(n(c.x)),
    w: r(n([3, 3, 3, c.x[4]!, c.co])),
    b: n([c.co]),
    g: r(n([c.x[0]!, ...od, c.co])),
  }
}

/** y, dx, dW (and db) of Σ conv(x, w)·g on `backend`. */
async function run(
  backend: 'cpu' | 'webgpu',
  c: Case,
  d: Data,
): Promise<Record<string, Float32Array>> {
  return runOn(backend, () => {
    const xs = [tf.tensor(d.x, c.x), tf.tensor(d.w, [3, 3, 3, c.x[4]!, c.co])]
    if (c.bias) xs.push(tf.tensor(d.b, [c.co]))
    const f = (...a: tf.Tensor[]) =>
      ops.conv3d(
        a[0] as tf.Tensor5D,
        a[1] as tf.Tensor5D,
        c.bias ? (a[2] as tf.Tensor1D) : null,
        c.s,
        1,
      )
    const y = f(...xs)
    const g = tf.tensor(d.g, y.shape)
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), g)))(xs)
    const out: Record<string, tf.Tensor> = { y }
    grads.forEach((t, i) => (out[['dx', 'dw', 'db'][i]!] = t))
    return out
  })
}

/** Largest elementwise difference over the largest reference magnitude. */
function relErr(got: Float32Array, ref: Float32Array): number {
  expect(got.length).toBe(ref.length)
  let scale = 0
  let e = 0
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]!))
    e = Math.max(e, Math.abs(got[i]! - ref[i]!))
  }
  return e / scale
}

const refs = new Map<string, Record<string, Float32Array>>()
async function reference(c: Case, i: number, f16: boolean) {
  const key = `${c.name}/${f16}`
  if (!refs.has(key)) refs.set(key, await run('cpu', c, data(c, 50 + i, f16)))
  return refs.get(key)!
}

describe('tiled conv tile tables', () => {
  test('every table gives valid shapes; DSD_CONV_TILE picks one, an unknown name is an error', () => {
    for (const t of Object.values(TILE_TABLES)) {
      for (const f16 of [false, true]) {
        for (const n of [1, 8, 16, 20, 32, 33, 64, 100, 128, 320]) {
          const sh = tiledShape(n, t, f16)
          const what = `${t.name}${f16 ? '/f16' : ''} n=${n}`
          expect(threadsOf(sh), what).toBeLessThanOrEqual(256)
          expect(threadsOf(sh) % sh.BK, what).toBe(0)
          expect(blockBytes(sh, f16), `${what}: workgroup memory`).toBeLessThanOrEqual(32768)
          expect((sh.BM * sh.BK) / threadsOf(sh), `${what}: A gathers`).toBeLessThanOrEqual(16)
          if (sh.vec) expect([sh.TM % 4, sh.TN % 4]).toEqual([0, 0])
        }
      }
    }
    // f16 blocks take half the memory: BK = 32 fits the 128 × 128 block
    expect(tiledShape(128, TILE_TABLES.k32!, false).BK).toBe(16)
    expect(tiledShape(128, TILE_TABLES.k32!, true).BK).toBe(32)
    const prev = process.env.DSD_CONV_TILE
    try {
      process.env.DSD_CONV_TILE = 'v4big'
      expect(convTile().name).toBe('v4big')
      process.env.DSD_CONV_TILE = 'nope'
      expect(() => convTile()).toThrow(/DSD_CONV_TILE=nope is not a tile table; use one of base/)
      delete process.env.DSD_CONV_TILE
      expect(convTile().name).toBe('base')
    } finally {
      if (prev === undefined) delete process.env.DSD_CONV_TILE
      else process.env.DSD_CONV_TILE = prev
    }
  })

  // one test per table and case: each compiles its own pipelines (seconds each on lavapipe)
  for (const table of Object.keys(TILE_TABLES).filter((t) => t !== 'base')) {
    for (const [i, c] of CASES.entries()) {
      test(
        `${table}, ${c.name}: value, dx, dW${c.bias ? ', db' : ''} equal the cpu backend`,
        { timeout: 300_000 },
        async (ctx) => {
          if (skipUnlessWebgpu(ctx)) return
          const ref = await reference(c, i, false)
          gpu.setConvVariant('tiled')
          setConvTile(table)
          try {
            const got = await run('webgpu', c, data(c, 50 + i, false))
            for (const k of Object.keys(ref)) {
              expectClose(got[k]!, ref[k]!, 1e-4, 1e-4, `${table} ${c.name}: ${k}`)
            }
          } finally {
            setConvTile(null)
            gpu.setConvVariant(null)
          }
        },
      )
    }
  }

  // one case and one table: lavapipe takes ~20 s of LLVM time per f16 pipeline (20→33 has a
  // vec4 forward and filter gradient and a scalar input gradient: both layouts)
  for (const table of ['v4']) {
    test(
      `${table} with f16 operands: exact on f16 inputs, rounding-sized error otherwise`,
      { timeout: 600_000 },
      async (ctx) => {
        if (skipUnlessWebgpu(ctx)) return
        await initBackend('webgpu')
        if (!deviceFeatures().has('shader-f16')) {
          console.warn('webgpu: f16 not run: the adapter has no shader-f16')
          ctx.skip()
          return
        }
        for (const i of [1]) {
          const c = CASES[i]!
          const refR = await reference(c, i, true)
          const refX = await reference(c, i, false)
          gpu.setConvVariant('tiled')
          setConvTile(table)
          setWebgpuPrecision('f16')
          try {
            const gotR = await run('webgpu', c, data(c, 50 + i, true))
            expect(webgpuPrecision()).toBe('f16')
            const gotX = await run('webgpu', c, data(c, 50 + i, false))
            for (const k of ['y', 'dx', 'dw']) {
              expectClose(gotR[k]!, refR[k]!, 1e-4, 1e-4, `${table}/f16 ${c.name}: ${k}`)
              const e = relErr(gotX[k]!, refX[k]!)
              expect(e, `${table}/f16 ${c.name}: ${k} on f32 inputs`).toBeGreaterThan(1e-6)
              expect(e, `${table}/f16 ${c.name}: ${k} on f32 inputs`).toBeLessThan(1e-2)
            }
          } finally {
            setWebgpuPrecision(null)
            setConvTile(null)
            gpu.setConvVariant(null)
          }
        }
      },
    )
  }
})
