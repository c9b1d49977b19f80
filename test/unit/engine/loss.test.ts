import { beforeAll, describe, expect, test } from 'vitest'
import {
  ablation,
  dsdLoss,
  requiredOutputs,
  TERM_NAMES,
  type DsdOutputName,
} from '../../../main/engine/loss'
import { initBackend } from '../../../main/engine/backends'
import { tf } from '../../../main/engine/tf'
import { expectClose, lossGolden } from './golden'

const golden = lossGolden()
const GRAD_NAMES = ['Y', 'D1', 'D2', 'E4', 'E1'] as const

beforeAll(async () => {
  await initBackend('cpu')
})

function outputsOf(c: (typeof golden.cases)[number]): Record<DsdOutputName, tf.Tensor> {
  const out = {} as Record<DsdOutputName, tf.Tensor>
  for (const [k, a] of Object.entries(c.logits))
    out[k as DsdOutputName] = tf.tensor(a.data, a.shape, 'float32')
  return out
}

describe('DSD loss against golden/dsd/loss.json (float64 PyTorch)', () => {
  test('golden file has 3 cases × 5 variants and the 11 term names', () => {
    expect(golden.cases).toHaveLength(3)
    for (const c of golden.cases) {
      expect(Object.keys(c.terms).sort()).toEqual([...TERM_NAMES].sort())
      expect(Object.keys(c.variants).sort()).toEqual(['basic', 'ds', 'dsd', 'sdd', 'sde'])
    }
  })

  for (const c of golden.cases) {
    test(`${c.name}: every term (${c.batch}×${c.spatial.join('×')}, K=${c.classes})`, () => {
      tf.tidy(() => {
        const outputs = outputsOf(c)
        const labels = tf.tensor(c.label.data, c.label.shape, 'int32')
        const { terms } = dsdLoss(outputs, labels, {
          ...ablation('DSD'),
          temperature: c.temperature,
        })
        for (const name of TERM_NAMES) {
          const v = terms[name]!.dataSync()[0]!
          expect(Math.abs(v - c.terms[name]!), `${name}: ${v} vs ${c.terms[name]}`).toBeLessThan(
            1e-5 * Math.abs(c.terms[name]!) + 1e-6,
          )
        }
      })
    })

    for (const [variant, ref] of Object.entries(c.variants)) {
      test(`${c.name}: ${variant} total and gradients w.r.t. Y, D1, D2, E4, E1`, () => {
        const w = ablation(variant)
        expect(w).toEqual({ eta: ref.eta, alpha1: ref.alpha1, alpha2: ref.alpha2 })
        tf.tidy(() => {
          const all = outputsOf(c)
          const need = requiredOutputs(w)
          // pass only what the variant needs: Basic must work with Y alone
          const outputs: Partial<Record<DsdOutputName, tf.Tensor>> = {}
          for (const n of need) outputs[n] = all[n]
          const labels = tf.tensor(c.label.data, c.label.shape, 'int32')
          const wrt = GRAD_NAMES.filter((n) => need.includes(n))
          const f = (...xs: tf.Tensor[]) => {
            const o = { ...outputs }
            wrt.forEach((n, i) => (o[n] = xs[i]))
            return dsdLoss(o, labels, { ...w, temperature: c.temperature }).total
          }
          const { value, grads } = tf.valueAndGrads(f)(wrt.map((n) => all[n]))
          const total = value.dataSync()[0]!
          expect(Math.abs(total - ref.loss), `total ${total} vs ${ref.loss}`).toBeLessThan(
            1e-5 * ref.loss,
          )
          for (const n of GRAD_NAMES) {
            const i = wrt.indexOf(n)
            if (i < 0) {
              // not an input of this variant: the reference gradient must be exactly zero
              expect(
                ref.grad[n]!.data.every((v) => v === 0),
                `${variant} grad ${n} should be 0`,
              ).toBe(true)
              continue
            }
            expectClose(
              grads[i]!.dataSync(),
              ref.grad[n]!.data,
              1e-5,
              1e-5,
              `${c.name} ${variant} dL/d${n}`,
            )
          }
        })
      })
    }
  }

  test('teachers get gradient through the KL terms (not detached)', () => {
    const c = golden.cases[0]!
    const d1 = c.variants.dsd!.grad.D1!.data
    const d1ds = c.variants.ds!.grad.D1!.data
    // golden: the DSD gradient at D1 differs from the DS one (KL flows into the teacher)
    expect(d1.some((v, i) => Math.abs(v - d1ds[i]!) > 1e-6)).toBe(true)
    tf.tidy(() => {
      const all = outputsOf(c)
      const labels = tf.tensor(c.label.data, c.label.shape, 'int32')
      const g = tf.grad(
        (e4: tf.Tensor) =>
          dsdLoss({ ...all, E4: e4 }, labels, { ...ablation('sde'), temperature: 3 }).total,
      )(all.E4)
      expectClose(g.dataSync(), c.variants.sde!.grad.E4!.data, 1e-5, 1e-5, 'dL/dE4 (SDE)')
    })
  })

  test('weights: α1 is the encoder pairs, α2 the decoder pairs; η scales the decoder DCE', () => {
    const c = golden.cases[1]!
    tf.tidy(() => {
      const all = outputsOf(c)
      const labels = tf.tensor(c.label.data, c.label.shape, 'int32')
      const t = c.terms
      const total = dsdLoss(all, labels, {
        eta: 0.5,
        alpha1: 2,
        alpha2: 0.25,
        temperature: 3,
      }).total
      const expected =
        t.dce_Y! +
        0.5 * (t.dce_D4! + t.dce_D3! + t.dce_D2! + t.dce_D1!) +
        0.25 * (t.kl_dec_D4! + t.kl_dec_D3! + t.kl_dec_D2!) +
        2 * (t.kl_enc_E1! + t.kl_enc_E2! + t.kl_enc_E3!)
      expect(Math.abs(total.dataSync()[0]! - expected)).toBeLessThan(1e-5 * expected)
    })
  })

  test('labels may carry a trailing channel axis of 1', () => {
    const c = golden.cases[0]!
    tf.tidy(() => {
      const labels = tf.tensor(c.label.data, [...c.label.shape, 1], 'int32')
      const v = dsdLoss({ Y: outputsOf(c).Y }, labels, ablation('Basic')).total.dataSync()[0]!
      expect(Math.abs(v - c.variants.basic!.loss)).toBeLessThan(1e-5 * v)
    })
  })

  test('allTerms reports zero-weight terms without changing the total', () => {
    const c = golden.cases[2]!
    tf.tidy(() => {
      const labels = tf.tensor(c.label.data, c.label.shape, 'int32')
      const r = dsdLoss(outputsOf(c), labels, {
        ...ablation('ds'),
        temperature: c.temperature,
        allTerms: true,
      })
      expect(Object.keys(r.terms).sort()).toEqual([...TERM_NAMES].sort())
      expect(Math.abs(r.total.dataSync()[0]! - c.variants.ds!.loss)).toBeLessThan(
        1e-5 * c.variants.ds!.loss,
      )
      expect(Math.abs(r.terms.kl_enc_E2!.dataSync()[0]! - c.terms.kl_enc_E2!)).toBeLessThan(1e-5)
    })
  })

  test('clear errors: missing output, mismatched labels, unknown variant', () => {
    const c = golden.cases[0]!
    tf.tidy(() => {
      const all = outputsOf(c)
      const labels = tf.tensor(c.label.data, c.label.shape, 'int32')
      expect(() => dsdLoss({ Y: all.Y, D4: all.D4 }, labels, ablation('ds'))).toThrow(
        /output D3 is missing/,
      )
      expect(() => dsdLoss({ ...all }, tf.zeros([2, 6, 5, 3], 'int32'), ablation('DSD'))).toThrow(
        /labels \[2,6,5,3\] do not match/,
      )
      expect(() =>
        dsdLoss({ ...all, E1: tf.zeros([2, 3, 5, 4, 4]) }, labels, ablation('DSD')),
      ).toThrow(/output E1 has shape/)
    })
    expect(() => ablation('full')).toThrow(/unknown DSD variant "full"/)
    expect(ablation('SDD')).toEqual({ eta: 1, alpha1: 0, alpha2: 1 })
  })
})
