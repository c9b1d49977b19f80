import { beforeAll, describe, expect, test } from 'vitest'
import { AdamW, StepLR, WarmupPolyLR } from '../../../main/engine/optimizer'
import { initBackend } from '../../../main/engine/backends'
import { tf } from '../../../main/engine/tf'
import { expectClose } from './golden'

beforeAll(async () => {
  await initBackend('cpu')
})

/** torch.optim.AdamW (amsgrad=False) for one parameter vector, in plain double arithmetic. */
function torchAdamW(
  p: number[],
  gradsPerStep: number[][],
  lrPerStep: number[],
  wd: number,
  b1 = 0.9,
  b2 = 0.999,
  eps = 1e-8,
): number[] {
  const m = p.map(() => 0)
  const v = p.map(() => 0)
  const q = [...p]
  gradsPerStep.forEach((g, k) => {
    const t = k + 1
    const lr = lrPerStep[k]!
    for (let i = 0; i < q.length; i++) {
      q[i] = q[i]! * (1 - lr * wd)
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!
      const bc1 = 1 - b1 ** t
      const bc2 = 1 - b2 ** t
      const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + eps
      q[i] = q[i]! - (lr / bc1) * (m[i]! / denom)
    }
  })
  return q
}

describe('AdamW (PyTorch semantics)', () => {
  test('first step by hand: p ← p(1 − lr·wd) − lr·sign(g) (bias-corrected m/√v = ±1)', () => {
    const p = tf.variable(tf.tensor1d([1, -2, 0.5]), true, 'adamw-hand/p')
    const opt = new AdamW({ lr: 0.1, weightDecay: 0.01 })
    opt.applyGradients({ 'adamw-hand/p': tf.tensor1d([0.3, -4, 0]) })
    // g = 0: m = v = 0 → update 0 (only decay); otherwise m̂/√v̂ = g/|g| (eps negligible)
    expectClose(p.dataSync(), [1 * 0.999 - 0.1, -2 * 0.999 + 0.1, 0.5 * 0.999], 1e-6, 0, 'step 1')
    expect(opt.step).toBe(1)
    p.dispose()
    opt.dispose()
  })

  test('three steps with changing gradients and a rank-5 variable match torch.optim.AdamW', () => {
    const shape = [1, 2, 1, 2, 2]
    const p0 = [0.5, -1.25, 2, 0.01, -0.3, 0.7, 1.1, -2.2]
    const grads = [
      [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8],
      [-0.05, 0.4, 0.2, 0.0, -1.5, 0.25, 0.1, 0.9],
      [1e-3, -3, 0.6, 0.2, 0.2, -0.1, -0.7, 0.05],
    ]
    const lrs = [1e-3, 1e-3, 5e-4]
    const p = tf.variable(tf.tensor(p0, shape), true, 'adamw-3/p')
    const opt = new AdamW({ lr: 1e-3, weightDecay: 1e-5 })
    grads.forEach((g, k) => {
      opt.lr = lrs[k]!
      opt.applyGradients({ 'adamw-3/p': tf.tensor(g, shape) }, { 'adamw-3/p': p })
    })
    expect(p.shape).toEqual(shape)
    expectClose(p.dataSync(), torchAdamW(p0, grads, lrs, 1e-5), 1e-6, 1e-7, 'after 3 steps')
    p.dispose()
    opt.dispose()
  })

  test('export/import state: a resumed optimizer continues bit-exactly like an uninterrupted one', () => {
    const g = (k: number) => tf.tensor1d([Math.sin(k), Math.cos(3 * k), 0.1 * k])
    const a = tf.variable(tf.tensor1d([1, 2, 3]), true, 'exact/a')
    const opt = new AdamW({ lr: 0.01, weightDecay: 0.1 })
    for (let k = 0; k < 3; k++) opt.applyGradients({ 'exact/a': g(k) })
    const state = opt.exportState()
    const saved = tf.clone(a)
    for (let k = 3; k < 6; k++) opt.applyGradients({ 'exact/a': g(k) })
    const expected = Array.from(a.dataSync())
    // rewind the variable and resume with a fresh optimizer from the exported state
    a.assign(saved)
    const opt2 = new AdamW({ lr: 0.5, weightDecay: 0.1 })
    opt2.importState(state)
    expect(opt2.lr).toBe(0.01)
    for (let k = 3; k < 6; k++) opt2.applyGradients({ 'exact/a': g(k) })
    expect(Array.from(a.dataSync())).toEqual(expected)
    expect(() => opt2.importState({ ...state, tensors: {} })).toThrow(/lacks its m\/v tensors/)
  })

  test('bad options and unknown variables are clear errors', () => {
    expect(() => new AdamW({ lr: -1, weightDecay: 0 })).toThrow(/lr must be/)
    const opt = new AdamW({ lr: 1e-3, weightDecay: 0 })
    expect(() => opt.applyGradients({ 'no-such-variable': tf.scalar(1) })).toThrow(
      /no variable named no-such-variable/,
    )
  })
})

describe('StepLR (stepped per epoch)', () => {
  test('halves every step_size epochs like torch StepLR(step_size=100, gamma=0.5)', () => {
    const s = new StepLR(1e-3, 100, 0.5)
    const opt = { lr: 1e-3 }
    const seen: number[] = [s.lrAt()]
    for (let e = 1; e <= 350; e++) seen.push(s.stepEpoch(opt))
    expect(seen[0]).toBe(1e-3)
    expect(seen[99]).toBe(1e-3)
    expect(seen[100]).toBe(5e-4)
    expect(seen[199]).toBe(5e-4)
    expect(seen[200]).toBe(2.5e-4)
    expect(seen[350]).toBe(1.25e-4)
    expect(opt.lr).toBe(1.25e-4)
    const r = StepLR.fromState(JSON.parse(JSON.stringify(s.state())))
    expect(r.epoch).toBe(350)
    expect(r.lrAt()).toBe(1.25e-4)
  })

  test('constant schedule (BraTS UNETR) survives a JSON round trip', () => {
    const s = new StepLR(1e-4, Infinity, 0.5)
    for (let e = 0; e < 1000; e++) s.stepEpoch()
    expect(s.lrAt()).toBe(1e-4)
    expect(StepLR.fromState(JSON.parse(JSON.stringify(s.state()))).lrAt()).toBe(1e-4)
    expect(() => new StepLR(1e-3, 0, 0.5)).toThrow(/step size/)
  })
})

describe('WarmupPolyLR (linear warm-up, then poly decay, per step)', () => {
  // Reference values from the quick-start study's PyTorch mirror (bench/quickstart/dsd_recipe.py
  // lr_at with --sched poly --warmup 20 --lr 1e-2 over 300 steps), computed in CPython.
  const cases: [number, number][] = [
    [0, 0.0005],
    [19, 0.01],
    [20, 0.01],
    [160, 0.005358867312681466],
    [299, 6.274191525314209e-5],
  ]
  test.each(cases)('step %i → lr %f', (step, lr) => {
    const s = new WarmupPolyLR(1e-2, 20, 300, 0.9)
    expect(s.lrAt(step)).toBeCloseTo(lr, 15)
  })

  test('stepTo sets the optimizer rate; state round-trips mid-run', () => {
    const s = new WarmupPolyLR(1e-2, 20, 300)
    const opt = { lr: 0 }
    s.stepTo(160, opt)
    expect(opt.lr).toBeCloseTo(0.005358867312681466, 15)
    const r = WarmupPolyLR.fromState(JSON.parse(JSON.stringify(s.state())))
    expect(r.step).toBe(160)
    expect(r.lrAt(161)).toBe(s.lrAt(161))
  })

  test('refuses settings that make no schedule', () => {
    expect(() => new WarmupPolyLR(1e-2, 20, 20)).toThrow(/total steps/)
    expect(() => new WarmupPolyLR(0, 0, 10)).toThrow(/base rate/)
    expect(() => new WarmupPolyLR(1e-2, -1, 10)).toThrow(/warm-up/)
  })
})
