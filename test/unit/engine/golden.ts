/** Golden-file loaders and float comparison helpers for the engine-core tests. */
import { readFileSync } from 'node:fs'
import { expect } from 'vitest'
import { sharedPath } from '../../helpers/shared'

export interface Arr {
  shape: number[]
  data: number[]
}

export interface LossCase {
  name: string
  batch: number
  classes: number
  spatial: number[]
  temperature: number
  label: Arr
  logits: Record<string, Arr>
  terms: Record<string, number>
  variants: Record<
    string,
    { eta: number; alpha1: number; alpha2: number; loss: number; grad: Record<string, Arr> }
  >
}

export interface BottleneckCase {
  in_channels: number
  classes: number
  scale: number
  input: Arr
  conv_kernel: Arr
  conv_bias: number[]
  up_kernel: Arr
  up_bias: number[]
  output: Arr
}

export function lossGolden(): { cases: LossCase[] } {
  return JSON.parse(readFileSync(sharedPath('golden', 'dsd', 'loss.json'), 'utf8'))
}

export function bottleneckGolden(): { modules: BottleneckCase[] } {
  return JSON.parse(readFileSync(sharedPath('golden', 'dsd', 'bottleneck.json'), 'utf8'))
}

/**
 * Elementwise |a − b| ≤ rtol·|b| + atol·max|b| (float32 results against float64 references).
 * Reports the worst element on failure.
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-5,
  atol = 1e-5,
  what = '',
): void {
  expect(actual.length, `${what} length`).toBe(expected.length)
  let scale = 0
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!))
  let worst = -1
  let worstExcess = 0
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!
    const b = expected[i]!
    const excess = Math.abs(a - b) - (rtol * Math.abs(b) + atol * scale)
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(a))) {
      worst = i
      worstExcess = excess
    }
  }
  if (worst >= 0) {
    expect.fail(
      `${what}: element ${worst} is ${actual[worst]} but expected ${expected[worst]} (scale ${scale}, rtol ${rtol}, atol ${atol})`,
    )
  }
}
