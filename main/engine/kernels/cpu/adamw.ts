/**
 * One AdamW update of a flat parameter in a single pass over p, g, m and v, in WebAssembly on
 * every core, for the `wasm` backend. Every op is a float32 op, which rounds exactly as the
 * tf-op chain in optimizer.ts does (each op there is computed in double and rounded to float32,
 * with float32 scalars; +, −, ×, ÷ and √ of float32 values are exact in double before that
 * single rounding), so a run's numbers do not depend on which of the two ran (tested bit for
 * bit); it only avoids eleven full-size passes and their intermediate tensors.
 */
import { withArena, PARALLEL_ELEMENTS } from './runtime'

const OP_ADAMW = 35
const CHUNK = 1 << 16

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

const f32bits = (v: number) => new Int32Array(Float32Array.of(v).buffer)[0]!

/** New `[p, m, v]` arrays from the current ones and the gradient `g`. */
export function adamwUpdate(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  s: AdamWStep,
): [Float32Array, Float32Array, Float32Array] {
  const n = p.length
  return withArena((rt) => {
    const pp = rt.put(p)
    const mp = rt.put(m)
    const vp = rt.put(v)
    const gp = rt.put(g)
    const scalars = [
      s.beta1,
      1 - s.beta1,
      s.beta2,
      1 - s.beta2,
      s.sqrtBc2,
      s.eps,
      s.decay,
      s.stepSize,
    ]
    rt.run(
      OP_ADAMW,
      [pp, mp, vp, gp, n, CHUNK, ...scalars.map(f32bits), s.decay !== 1 ? 1 : 0],
      Math.ceil(n / CHUNK),
      n >= 2 * PARALLEL_ELEMENTS,
    )
    return [rt.read(pp, n), rt.read(mp, n), rt.read(vp, n)]
  })
}
