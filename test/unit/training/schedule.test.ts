/**
 * A run's learning-rate schedule: the config's union (old files without a kind read as StepLR),
 * the per-step warm-up + poly curve of the quick-start recipe, and the scheduler state a
 * checkpoint restores (a resumed run continues the same curve; a state of another kind is refused).
 */
import { describe, expect, it } from 'vitest'
import { RunConfig } from '../../../main/contract'
import { StepLR, WarmupPolyLR } from '../../../main/engine/optimizer'
import { createScheduler, endEpoch, restoreScheduler, setStepLr } from '../../../main/training/schedule'
import { runConfigs } from '../../../main/training/run-config'

const [poly] = runConfigs({ datasetId: 'ds', split: 'k5', folds: [0], preset: 'quick' }, 5)
const [step] = runConfigs({ datasetId: 'ds', split: 'k5', folds: [0], epochs: 6, stepSize: 2 }, 5)

describe('run schedules', () => {
  it('reads a config written before schedules had a kind as StepLR, and refuses unknown kinds', () => {
    const old = { ...step, schedule: { stepSize: 2, gamma: 0.5 } }
    expect(RunConfig.parse(old).schedule).toEqual({ kind: 'step', stepSize: 2, gamma: 0.5 })
    expect(RunConfig.safeParse({ ...step, schedule: { kind: 'cosine' } }).success).toBe(false)
    expect(RunConfig.safeParse({ ...step, schedule: { kind: 'poly', warmupSteps: 20, power: 0.9, gamma: 0.5 } }).success).toBe(false)
  })

  it('sets the quick start rate per global step: linear warm-up over 20 steps, then poly 0.9', () => {
    const steps = 30
    const s = createScheduler(poly, steps)
    expect(s).toBeInstanceOf(WarmupPolyLR)
    const opt = { lr: 0 }
    const rates: number[] = []
    for (let e = 1; e <= poly.epochs; e++) {
      for (let k = 0; k < steps; k++) rates.push(setStepLr(s, opt, e, k, steps))
      endEpoch(s, opt, e, steps)
    }
    expect(rates).toHaveLength(300)
    expect(rates[0]).toBeCloseTo(1e-2 / 20, 12)
    expect(rates[19]).toBeCloseTo(1e-2, 12)
    expect(rates[20]).toBeCloseTo(1e-2, 12)
    expect(rates[160]).toBeCloseTo(1e-2 * 0.5 ** 0.9, 12)
    expect(rates[299]).toBeCloseTo(1e-2 * (1 / 280) ** 0.9, 12)
    expect(opt.lr).toBe(0) // the end of the last epoch moves to step 300, where the rate is 0
    // Resuming from a checkpoint after epoch 4 continues the same curve.
    const mid = createScheduler(poly, steps)
    for (let e = 1; e <= 4; e++) endEpoch(mid, opt, e, steps)
    const restored = restoreScheduler(JSON.parse(JSON.stringify(mid.state())), poly, 'last.ckpt')
    expect(restored.state()).toEqual(mid.state())
    expect(restored.lrAt()).toBe(rates[120])
    expect(setStepLr(restored, opt, 5, 7, steps)).toBe(rates[127])
  })

  it('keeps StepLR once per epoch and refuses a checkpoint state of another kind', () => {
    const s = createScheduler(step, 10)
    expect(s).toBeInstanceOf(StepLR)
    const opt = { lr: 0 }
    const perEpoch: number[] = []
    for (let e = 1; e <= 6; e++) {
      perEpoch.push(setStepLr(s, opt, e, 0, 10))
      expect(setStepLr(s, opt, e, 9, 10)).toBe(perEpoch[e - 1])
      endEpoch(s, opt, e, 10)
    }
    expect(perEpoch).toEqual([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
    expect(() => restoreScheduler(s.state(), poly, 'runs/q/checkpoints/last.ckpt')).toThrow(
      /runs\/q\/checkpoints\/last\.ckpt: the checkpoint's learning-rate schedule is "steplr" but the run's config\.json says "poly"/,
    )
  })

  it('warms up over all but the last step of a run shorter than its warm-up', () => {
    const [tiny] = runConfigs({ datasetId: 'ds', split: 'k5', folds: [0], preset: 'quick', epochs: 1, stepsPerEpoch: 5 }, 5)
    const s = createScheduler(tiny, 5) as WarmupPolyLR
    expect([s.warmupSteps, s.totalSteps]).toEqual([4, 5])
    expect(s.lrAt(3)).toBeCloseTo(1e-2, 12)
  })
})
