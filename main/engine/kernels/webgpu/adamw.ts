/**
 * One AdamW update (PyTorch semantics, see optimizer.ts) of one parameter tensor in a single
 * dispatch: reads p, g, m, v, writes p', m', v' (new buffers; the variables are re-pointed
 * with `assign`, so no tensor that shares a variable's buffer is ever overwritten).
 *
 *   m' = β1·m + (1 − β1)·g;  v' = β2·v + (1 − β2)·g²
 *   p' = p·(1 − lr·wd) − stepSize · m' / (√v' / √(1 − β2ᵗ) + ε),  stepSize = lr / (1 − β1ᵗ)
 *
 * The step-dependent scalars travel in the uniform block, so one pipeline serves every step
 * and every parameter.
 */
import { tf } from '../../tf'
import { defineKernel, runKernel } from './register'
import { bindings, fold, MAIN_ARGS, newOutput, Params, run, WG_LINEAR } from './runner'

const P = new Params(['n'], 0, ['b1', 'b2', 'stepSize', 'sqrtBc2', 'eps', 'decay'])

const CODE = `
${bindings([{ name: 'p' }, { name: 'g' }, { name: 'm' }, { name: 'v' }], [{ name: 'po' }, { name: 'mo' }, { name: 'vo' }], P.members())}
@compute @workgroup_size(64) fn main(${MAIN_ARGS}) {
  ${P.lets()}
  let i = i32(${WG_LINEAR} * 64u + lid);
  if (i >= n) { return; }
  let gi = g[i];
  let mi = b1 * m[i] + (1.0 - b1) * gi;
  let vi = b2 * v[i] + (1.0 - b2) * gi * gi;
  mo[i] = mi;
  vo[i] = vi;
  po[i] = p[i] * decay - stepSize * (mi / (sqrt(vi) / sqrtBc2 + eps));
}`

defineKernel('DsdAdamW', (inputs, backend, attrs) => {
  const { p, g, m, v } = inputs
  const n = p!.shape.reduce((a, b) => a * b, 1)
  const outs = [
    newOutput(backend, p!.shape),
    newOutput(backend, m!.shape),
    newOutput(backend, v!.shape),
  ]
  run(backend, {
    name: 'adamw',
    code: CODE,
    dispatch: fold(Math.ceil(n / 64)),
    uniforms: P.pack({ n, ...(attrs as Record<string, number>) }),
    inputs: [p!, g!, m!, v!],
    outputs: outs,
  })
  return outs
})

export interface AdamWScalars {
  b1: number
  b2: number
  stepSize: number
  sqrtBc2: number
  eps: number
  decay: number
}

/** `[p', m', v']` for 1-D views `p, g, m, v` of equal size (WebGPU). */
export function adamwGpu(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  s: AdamWScalars,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const [po, mo, vo] = runKernel<tf.Tensor[]>('DsdAdamW', { p, g, m, v }, { ...s })
  return [po!, mo!, vo!]
}
