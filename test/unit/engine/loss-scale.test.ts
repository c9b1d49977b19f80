/**
 * Dynamic loss scaling (main/engine/loss-scale.ts) with real tensors and real training steps:
 * the finiteness probe, exact unscaling, the halve/double schedule, checkpoint state; a step
 * whose gradients overflow is skipped with weights and AdamW state untouched; at a scale that
 * does not overflow, scaled steps give bit for bit the weights of unscaled ones (the scales are
 * powers of two). On WebGPU (lavapipe) with precision f16 asked for, a short run with the
 * scaler lowers the loss (skipped without an adapter; DSD_REQUIRE_WEBGPU=1 makes that a failure).
 */
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest'
import { initBackend } from '../../../main/engine/backends'
import { precisionStatus, setWebgpuPrecision } from '../../../main/engine/kernels/webgpu/mode'
import { LossScaler } from '../../../main/engine/loss-scale'
import { createModel, type DsdModel, type ModelConfig } from '../../../main/engine/model'
import { AdamW } from '../../../main/engine/optimizer'
import { tf } from '../../../main/engine/tf'
import { trainStep } from '../../../main/engine/train-step'
import { skipUnlessWebgpu as skipIf, webgpuUnavailable } from '../../helpers/webgpu'
import { sphereBatch, SPHERE_N } from '../../helpers/sphere'

const N = SPHERE_N
const batch = () => sphereBatch()

const CFG: ModelConfig = {
  backbone: 'dynunet',
  inChannels: 1,
  numClasses: 2,
  patch: [N, N, N],
  filters: [4, 8, 8, 8, 8],
  seed: 3,
}

async function snapshot(model: DsdModel, opt: AdamW): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>()
  for (const [k, v] of Object.entries(model.variables)) out.set(k, (await v.data()) as Float32Array)
  const st = opt.exportState()
  for (const [k, t] of Object.entries(st.tensors)) out.set(`opt/${k}`, (await t.data()) as Float32Array)
  tf.dispose(Object.values(st.tensors))
  out.set('opt/step', new Float32Array([opt.step]))
  return out
}

function expectSame(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort())
  for (const [k, v] of a) {
    const w = b.get(k)!
    const diff = v.findIndex((x, i) => !Object.is(x, w[i]))
    expect(diff, `${k}[${diff}]: ${v[diff]} vs ${w[diff]}`).toBe(-1)
  }
}

beforeAll(async () => {
  await initBackend('cpu')
})

afterAll(async () => {
  setWebgpuPrecision(null)
  await initBackend('cpu')
})

describe('LossScaler', () => {
  it('finds Inf and NaN in any gradient, and unscales exactly', async () => {
    const s = new LossScaler({ initScale: 2 ** 10 })
    const a = tf.tensor([1e30, -3, 0.5])
    const b = tf.tensor([[2, 4], [8, 16]])
    expect(await s.allFinite([a, b])).toBe(true)
    const inf = tf.tensor([1, Infinity, 2])
    const nan = tf.tensor([NaN])
    expect(await s.allFinite([a, inf])).toBe(false)
    expect(await s.allFinite([nan, b])).toBe(false)
    expect(await s.allFinite([tf.tensor([-Infinity])])).toBe(false)
    const u = s.unscale({ b })
    expect(Array.from(await u.b!.data())).toEqual([2 / 1024, 4 / 1024, 8 / 1024, 16 / 1024])
    tf.dispose([a, b, inf, nan, u.b!])
  })

  it('halves on overflow, doubles after growthInterval finite steps, fails below minScale', () => {
    const s = new LossScaler({ initScale: 8, growthInterval: 3, minScale: 2 })
    s.update(true)
    s.update(true)
    expect(s.state()).toEqual({ scale: 8, goodSteps: 2 })
    s.update(false)
    expect(s.state()).toEqual({ scale: 4, goodSteps: 0 })
    s.update(true)
    s.update(true)
    s.update(true)
    expect(s.state()).toEqual({ scale: 8, goodSteps: 0 })
    s.update(false)
    s.update(false)
    expect(s.scale).toBe(2)
    expect(() => s.update(false)).toThrow(/Inf\/NaN even at loss scale 2/)
    expect(() => new LossScaler({ initScale: 1000 })).toThrow(/powers of two/)
  })

  it('restores a saved state and refuses a malformed one, naming the file', () => {
    const s = new LossScaler()
    s.restore({ scale: 2 ** 12, goodSteps: 17 }, 'last.ckpt')
    expect(s.state()).toEqual({ scale: 4096, goodSteps: 17 })
    expect(() => s.restore({ scale: 3, goodSteps: 0 }, 'last.ckpt')).toThrow(/last\.ckpt/)
    expect(() => s.restore(null, 'x.ckpt')).toThrow(/x\.ckpt/)
  })
})

describe('training steps with loss scaling (cpu backend)', () => {
  it('at a scale that does not overflow, the weights and AdamW state equal unscaled steps bit for bit', async () => {
    const run = async (scaler: LossScaler | null) => {
      const model = createModel(CFG)
      const opt = new AdamW({ lr: 1e-2, weightDecay: 1e-5 })
      const losses: number[] = []
      for (let i = 0; i < 2; i++) {
        const { x, y } = batch()
        const r = await trainStep(model, opt, x, y, 'DSD', scaler)
        losses.push(r.loss)
        if (scaler) expect(r).toMatchObject({ skipped: false, lossScale: 2 ** 16 })
        tf.dispose([x, y])
      }
      const snap = await snapshot(model, opt)
      model.dispose()
      opt.dispose()
      return { losses, snap }
    }
    const plain = await run(null)
    const scaled = await run(new LossScaler())
    expect(scaled.losses).toEqual(plain.losses)
    expectSame(scaled.snap, plain.snap)
  })

  it('an Inf gradient skips the step (weights, moments and step unchanged) and halves the scale', async () => {
    const model = createModel(CFG)
    const opt = new AdamW({ lr: 1e-2, weightDecay: 1e-5 })
    const { x, y } = batch()
    const scaler = new LossScaler({ initScale: 2 ** 15, growthInterval: 2000 })
    const first = await trainStep(model, opt, x, y, 'DSD', scaler)
    expect(first).toMatchObject({ skipped: false, lossScale: 2 ** 15 })
    expect(scaler.state()).toEqual({ scale: 2 ** 15, goodSteps: 1 })
    const before = await snapshot(model, opt)
    // the real gradients of the next batch, one element of one of them made Inf
    const { grads } = tf.variableGrads(() => {
      const out = model.forward(x, { training: true, outputs: ['Y'] })
      return tf.mul(tf.mean(out.Y!), tf.scalar(scaler.scale)) as tf.Scalar
    }, Object.values(model.variables))
    const byName: Record<string, tf.Tensor> = {}
    for (const [k, v] of Object.entries(model.variables)) if (grads[v.name]) byName[k] = grads[v.name]!
    const victim = Object.keys(byName)[3]!
    const vals = Float32Array.from(await byName[victim]!.data())
    vals[vals.length >> 1] = Infinity
    const bad = tf.tensor(vals, byName[victim]!.shape)
    byName[victim] = bad
    const tensorsBefore = tf.memory().numTensors
    expect(await scaler.applyGradients(opt, byName, model.variables)).toBe(false)
    expect(scaler.state()).toEqual({ scale: 2 ** 14, goodSteps: 0 })
    expect(tf.memory().numTensors).toBe(tensorsBefore)
    expectSame(await snapshot(model, opt), before)
    // the same gradients without the Inf are applied (the step counts)
    byName[victim] = grads[model.variables[victim]!.name]!
    expect(await scaler.applyGradients(opt, byName, model.variables)).toBe(true)
    expect(opt.step).toBe(2)
    expect(scaler.state()).toEqual({ scale: 2 ** 14, goodSteps: 1 })
    tf.dispose([x, y, bad, ...Object.values(grads)])
    model.dispose()
    opt.dispose()
  })
})

describe('f16 on WebGPU', () => {
  let why: string | undefined
  beforeAll(async () => {
    why = await webgpuUnavailable()
  })
  const skipUnlessWebgpu = (ctx: TestContext) => skipIf(ctx, why)

  it('precision status: f16 where the device offers shader-f16, f32 with the reason elsewhere', async (ctx) => {
    if (skipUnlessWebgpu(ctx)) return
    setWebgpuPrecision('f16')
    try {
      await initBackend('cpu')
      expect(precisionStatus()).toMatchObject({ requested: 'f16', effective: 'f32', reason: expect.stringMatching(/cpu backend/) })
      await initBackend('webgpu')
      const features = (tf.backend() as unknown as { device: GPUDevice }).device.features
      const st = precisionStatus()
      if (features.has('shader-f16')) expect(st).toEqual({ requested: 'f16', effective: 'f16' })
      else expect(st).toMatchObject({ effective: 'f32', reason: expect.stringMatching(/shader-f16/) })
      setWebgpuPrecision('f32')
      expect(precisionStatus()).toEqual({ requested: 'f32', effective: 'f32' })
    } finally {
      setWebgpuPrecision(null)
      await initBackend('cpu')
    }
  })

  it('a short run at f16 with the scaler lowers the loss', async (ctx) => {
    if (skipUnlessWebgpu(ctx)) return
    setWebgpuPrecision('f16')
    try {
      await initBackend('webgpu')
      const model = createModel(CFG)
      const opt = new AdamW({ lr: 1e-2, weightDecay: 1e-5 })
      const scaler = new LossScaler()
      const losses: number[] = []
      for (let i = 0; i < 6; i++) {
        const { x, y } = batch()
        const r = await trainStep(model, opt, x, y, 'DSD', scaler)
        expect(r.lossScale).toBeGreaterThan(0)
        losses.push(r.loss)
        tf.dispose([x, y])
      }
      model.dispose()
      opt.dispose()
      expect(losses.every(Number.isFinite)).toBe(true)
      expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.9)
    } finally {
      setWebgpuPrecision(null)
      await initBackend('cpu')
    }
  })
})
