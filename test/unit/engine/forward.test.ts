import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { tf } from '../../../main/engine/tf'
import {
  createModel,
  OUTPUT_NAMES,
  type DsdModel,
  type ModelConfig,
} from '../../../main/engine/model'
import { ROOT } from '../../helpers/shared'

interface RefOutput {
  shape: number[]
  sum: number
  absSum: number
  sampleStride: number
  samples: number[]
}
interface RefModel {
  seed: number
  inputSeed: number
  params: { name: string; shape: number[] }[]
  outputs: Record<string, RefOutput>
}
const REF = JSON.parse(
  readFileSync(join(ROOT, 'test/unit/engine/fixtures/reference.json'), 'utf8'),
) as Record<'dynunet' | 'unetr', RefModel>

/** The LCG of fixtures/reference.py: (s − 2³¹)/2³¹. */
function lcg(seed: number, n: number): Float64Array {
  const out = new Float64Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = (s - 2 ** 31) / 2 ** 31
  }
  return out
}

/** Fill a model's variables exactly as reference.py does (same stream, same scales). */
function fillLikeReference(m: DsdModel, ref: RefModel): void {
  let s = ref.seed >>> 0
  for (const { name, shape } of ref.params) {
    const n = shape.reduce((a, b) => a * b, 1)
    const u = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0
      u[i] = (s - 2 ** 31) / 2 ** 31
    }
    const isNormGamma = name.includes('norm') && name.endsWith('.weight') && shape.length === 1
    const scale =
      name.endsWith('.bias') || name.endsWith('position_embeddings') || isNormGamma
        ? 0.1
        : 1 / Math.sqrt(shape.slice(0, -1).reduce((a, b) => a * b, 1))
    const vals = Float32Array.from(u, (v) => v * scale + (isNormGamma ? 1 : 0))
    m.variables[name]!.assign(tf.tensor(vals, shape))
  }
}

const TINY: Record<'dynunet' | 'unetr', ModelConfig> = {
  dynunet: {
    backbone: 'dynunet',
    inChannels: 2,
    numClasses: 3,
    patch: [16, 16, 16],
    filters: [2, 3, 4, 4, 5],
  },
  unetr: {
    backbone: 'unetr',
    inChannels: 1,
    numClasses: 2,
    patch: [32, 16, 16],
    featureSize: 1,
    hidden: 4,
    layers: 2,
    heads: 2,
    mlp: 6,
    taps: [0, 1, 1],
  },
}

beforeAll(async () => {
  await tf.setBackend('cpu')
})

describe('forward pass against an independent float64 NumPy reference (fixtures/reference.py)', () => {
  for (const key of ['dynunet', 'unetr'] as const) {
    it(`${key}: nine outputs match`, async () => {
      const ref = REF[key]
      const m = createModel(TINY[key])
      try {
        // same parameter names and shapes as the MONAI-named reference
        const ours = Object.fromEntries(Object.entries(m.variables).map(([n, v]) => [n, v.shape]))
        expect(ours).toEqual(Object.fromEntries(ref.params.map((p) => [p.name, p.shape])))
        fillLikeReference(m, ref)
        const shape: number[] = [1, ...m.config.patch, m.config.inChannels]
        const x = tf.tensor(
          Float32Array.from(
            lcg(
              ref.inputSeed,
              shape.reduce((a, b) => a * b, 1),
            ),
          ),
          shape as [number, number, number, number, number],
        ) as tf.Tensor5D
        const out = m.forward(x, { training: true })
        expect(Object.keys(out).sort()).toEqual([...OUTPUT_NAMES].sort())
        for (const name of OUTPUT_NAMES) {
          const r = ref.outputs[name]!
          const t = out[name]
          expect(t.shape, name).toEqual(r.shape)
          const data = (await t.data()) as Float32Array
          let worst = 0
          r.samples.forEach((v, i) => {
            worst = Math.max(worst, Math.abs(data[i * r.sampleStride]! - v) / (1 + Math.abs(v)))
          })
          expect(worst, `${name}: worst relative error of sampled values`).toBeLessThan(2e-4)
          const absSum = data.reduce((a, b) => a + Math.abs(b), 0)
          expect(Math.abs(absSum - r.absSum) / r.absSum, `${name}: |x| sum`).toBeLessThan(1e-4)
        }
        tf.dispose([x, out as unknown as tf.Tensor[]])
      } finally {
        m.dispose()
      }
    })
  }
})

describe('output shapes on small configurations', () => {
  const cases: ModelConfig[] = [
    {
      backbone: 'dynunet',
      inChannels: 1,
      numClasses: 2,
      patch: [16, 16, 16],
      filters: [2, 2, 4, 4, 4],
    },
    {
      backbone: 'dynunet',
      inChannels: 4,
      numClasses: 5,
      patch: [32, 16, 16],
      filters: [2, 2, 4, 4, 4],
    },
    {
      backbone: 'unetr',
      inChannels: 4,
      numClasses: 3,
      patch: [16, 32, 16],
      featureSize: 2,
      hidden: 8,
      layers: 3,
      heads: 2,
      mlp: 8,
    },
    {
      backbone: 'unetr',
      preset: 'small',
      inChannels: 1,
      numClasses: 4,
      patch: [16, 16, 16],
      featureSize: 2,
    },
  ]
  for (const cfg of cases) {
    it(`${cfg.backbone} in ${cfg.inChannels} K ${cfg.numClasses} patch ${cfg.patch}: training 9 outputs, inference Y only`, () => {
      const m = createModel(cfg)
      const before = tf.memory().numTensors
      try {
        const b = 2
        const x = tf.randomNormal([b, ...cfg.patch!, cfg.inChannels!]) as tf.Tensor5D
        const train = m.forward(x, { training: true })
        expect(Object.keys(train)).toEqual([...OUTPUT_NAMES])
        for (const t of Object.values(train))
          expect(t.shape).toEqual([b, ...cfg.patch!, cfg.numClasses!])
        const infer = m.forward(x)
        expect(Object.keys(infer)).toEqual(['Y'])
        expect(infer.Y.shape).toEqual([b, ...cfg.patch!, cfg.numClasses!])
        // Y is the same in both modes (instance norm has no running statistics)
        const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(infer.Y, train.Y))).dataSync()[0]!)
        expect(diff).toBeLessThan(1e-5)
        tf.dispose([x, infer.Y, train as unknown as tf.Tensor[]])
        expect(tf.memory().numTensors).toBe(before)
      } finally {
        m.dispose()
      }
    })
  }

  it('inference never reads a DSD module: it runs with the DSD weights disposed, training does not', () => {
    const m = createModel({
      backbone: 'dynunet',
      inChannels: 1,
      numClasses: 2,
      patch: [16, 16, 16],
      filters: [2, 2, 2, 2, 2],
    })
    try {
      expect(m.dsdNames.size).toBe(20) // 5 shared modules × (conv w, b, up w, b)
      for (const n of m.dsdNames) m.variables[n]!.dispose()
      const x = tf.randomNormal([1, 16, 16, 16, 1]) as tf.Tensor5D
      const { Y } = m.forward(x)
      expect(Y.shape).toEqual([1, 16, 16, 16, 2])
      expect(() => m.forward(x, { training: true })).toThrow(/disposed/)
      tf.dispose([x, Y])
    } finally {
      m.dispose()
    }
  })

  it('rejects a wrong input with a message that says what is expected', () => {
    const m = createModel({
      backbone: 'unetr',
      preset: 'small',
      patch: [16, 16, 16],
      featureSize: 2,
    })
    try {
      const x = tf.zeros([1, 32, 16, 16, 1]) as tf.Tensor5D
      expect(() => m.forward(x)).toThrow(/built for patch \[16, 16, 16\].*got \[32, 16, 16\]/)
      const y = tf.zeros([1, 16, 16, 16, 2]) as tf.Tensor5D
      expect(() => m.forward(y)).toThrow(/\[b, d, h, w, 1\]/)
      tf.dispose([x, y])
    } finally {
      m.dispose()
    }
    const d = createModel({
      backbone: 'dynunet',
      inChannels: 1,
      numClasses: 2,
      filters: [2, 2, 2, 2, 2],
    })
    const z = tf.zeros([1, 24, 16, 16, 1]) as tf.Tensor5D
    expect(() => d.forward(z)).toThrow(/multiple of 16/)
    d.dispose()
    expect(() => d.forward(z)).toThrow(/after dispose/)
    z.dispose()
  })

  it('initialisation is deterministic in the seed and matches the scheme statistics', async () => {
    const cfg: ModelConfig = {
      backbone: 'dynunet',
      preset: 'mmwhs',
      inChannels: 1,
      numClasses: 8,
      filters: [8, 16, 16, 16, 16],
      seed: 3,
    }
    const a = createModel(cfg)
    const b = createModel(cfg)
    const c = createModel({ ...cfg, seed: 4 })
    try {
      const w = 'upsamples.0.conv_block.conv1.weight' // [3,3,3,32,16], fan_in 32·27
      const va = (await a.variables[w]!.data()) as Float32Array
      expect(Array.from(await b.variables[w]!.data())).toEqual(Array.from(va))
      expect(Array.from(await c.variables[w]!.data())).not.toEqual(Array.from(va))
      const mean = va.reduce((s, v) => s + v, 0) / va.length
      const std = Math.sqrt(va.reduce((s, v) => s + (v - mean) ** 2, 0) / va.length)
      const expected = Math.sqrt(2 / (1 + 0.01 ** 2)) / Math.sqrt(32 * 27)
      expect(Math.abs(mean)).toBeLessThan(0.1 * expected)
      expect(Math.abs(std / expected - 1)).toBeLessThan(0.05)
      expect(Array.from(await a.variables['deep_2.up.bias']!.data())).toEqual(new Array(8).fill(0))
    } finally {
      a.dispose()
      b.dispose()
      c.dispose()
    }
  })
})
