/**
 * One AdamW update of a flat parameter in a single pass over p, g, m and v, for the `wasm`
 * backend. It reproduces the float32 arithmetic of the tf-op chain in optimizer.ts bit for bit
 * (every op there is computed in double and rounded to float32, with float32 scalars), so a
 * run's numbers do not depend on which of the two ran; it only avoids eleven full-size passes
 * and their intermediate tensors.
 */
const f = Math.fround

/** The scalars of one step (as optimizer.ts computes them). */
export interface AdamWStep {
  beta1: number
  beta2: number
  sqrtBc2: number
  eps: number
  /** 1 − lr·weightDecay; exactly 1 skips the decay multiply, as the tf-op version does. */
  decay: number
  stepSize: number
}

/** New `[p, m, v]` arrays from the current ones and the gradient `g`. */
export function adamwUpdate(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  s: AdamWStep,
): [Float32Array, Float32Array, Float32Array] {
  const n = p.length
  const b1 = f(s.beta1)
  const c1 = f(1 - s.beta1)
  const b2 = f(s.beta2)
  const c2 = f(1 - s.beta2)
  const sb = f(s.sqrtBc2)
  const eps = f(s.eps)
  const decay = f(s.decay)
  const decays = s.decay !== 1
  const step = f(s.stepSize)
  const np = new Float32Array(n)
  const nm = new Float32Array(n)
  const nv = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    const gi = g[i]!
    const mi = f(f(m[i]! * b1) + f(gi * c1))
    const vi = f(f(v[i]! * b2) + f(f(gi * gi) * c2))
    const denom = f(f(f(Math.sqrt(vi)) / sb) + eps)
    const pd = decays ? f(p[i]! * decay) : p[i]!
    np[i] = pd - f(f(mi / denom) * step)
    nm[i] = mi
    nv[i] = vi
  }
  return [np, nm, nv]
}
