/**
 * Column sums `[n, c] → [c]` (bias gradients): a tree of "sum row chunks" passes, each one
 * dispatch, until one chunk is left.
 *
 * A pass splits the rows into Z chunks and runs one 256-wide workgroup per (chunk, channel
 * group). Invocation `lid` owns channel lane `lid % CL` of row lane `lid / CL` (CL = channels,
 * or 256 when there are more), so consecutive invocations read consecutive addresses (whole
 * rows: coalesced) and every invocation keeps one channel, in 4 independent accumulators
 * (4 loads in flight). Where `c % 4 == 0` the rows are read as `vec4<f32>` (4 channels per
 * invocation, 16-byte loads). The row lanes of a workgroup are summed through workgroup memory,
 * so a pass writes `[Z, c]`; the next pass sums those Z rows the same way.
 *
 * Z is chosen so that about {@link targetGroups} workgroups run (thousands on a GPU, a few
 * dozen on a CPU adapter) but every invocation still reads at least {@link MIN_ITER} rows:
 * a 2 × 96³ × 8 column sum is 864 workgroups (221 k invocations, 16 vec4 loads each), then
 * one workgroup for the 864 partial rows. The traffic is one read of `x` plus Z·c partials.
 * The order of the additions depends only on the shape and the device class, so results
 * are deterministic.
 */
import { reduceChunks } from './conv-direct'
import { targetGroups } from './occupancy'
import { defineKernel, runKernel } from './register'
import {
  bindings,
  fold,
  MAIN_ARGS,
  memo,
  newOutput,
  Params,
  run,
  WG_LINEAR,
  type WebGPUBackendLike,
} from './runner'
import { tf } from '../../tf'

const WG = 256
/** Fewest rows an invocation sums in one pass (fewer would only add partial rows). */
export const MIN_ITER = 16

/** One pass of a column sum: Z chunks of `rpc` rows, `CG` channel groups, `RL` row lanes. */
export interface SumPass {
  vec: boolean
  /** channels in units of the load type (c/4 when vec) */
  cv: number
  CG: number
  CL: number
  RL: number
  Z: number
  rpc: number
}

/** The geometry of one pass over `n` rows of `c` channels with about `target` workgroups. */
export function sumPass(n: number, c: number, target: number): SumPass {
  const vec = c % 4 === 0
  const cv = vec ? c / 4 : c
  const CG = Math.ceil(cv / WG)
  const CL = Math.min(cv, WG)
  const RL = Math.floor(WG / CL)
  const want = Math.max(1, Math.min(Math.ceil(target / CG), Math.ceil(n / (RL * MIN_ITER))))
  const rpc = Math.max(1, Math.ceil(n / want))
  return { vec, cv, CG, CL, RL, Z: Math.max(1, Math.ceil(n / rpc)), rpc }
}

const SUM = new Params(['n', 'cv', 'Z', 'CG', 'CL', 'RL', 'rpc', 'half'])

function sumCode(vec: boolean): string {
  const T = vec ? 'vec4<f32>' : 'f32'
  return `
${bindings([{ name: 'x', type: T }], [{ name: 'part', type: T }], SUM.members())}
var<workgroup> acc: array<${T}, ${WG}>;
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${SUM.lets()}
  let g = i32(${WG_LINEAR});
  let z = g / CG;
  let cg = g % CG;
  let l = i32(lid);
  let rl = l / CL;
  let ch = cg * ${WG} + l % CL;
  let live = z < Z && rl < RL && ch < cv;
  var s0 = ${T}(0.0); var s1 = ${T}(0.0); var s2 = ${T}(0.0); var s3 = ${T}(0.0);
  if (live) {
    let r1 = min((z + 1) * rpc, n);
    var r = z * rpc + rl;
    for (; r + 3 * RL < r1; r += 4 * RL) {
      s0 += x[r * cv + ch];
      s1 += x[(r + RL) * cv + ch];
      s2 += x[(r + 2 * RL) * cv + ch];
      s3 += x[(r + 3 * RL) * cv + ch];
    }
    for (; r < r1; r += RL) { s0 += x[r * cv + ch]; }
  }
  acc[l] = (s0 + s1) + (s2 + s3);
  workgroupBarrier();
  for (var st = half; st > 0; st = st / 2) {
    if (rl < st && rl + st < RL) { acc[l] += acc[l + st * CL]; }
    workgroupBarrier();
  }
  if (live && rl == 0) { part[z * cv + ch] = acc[l]; }
}`
}

/** Half the smallest power of two ≥ `n` (0 for n ≤ 1): the first stride of the lane tree. */
export function halfPow2(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p >> 1
}

/**
 * Column sums of `x` viewed as `[n, c]`, on the GPU (returns a new `[c]` tensor info).
 * `target`: workgroups per pass (default: the device's {@link targetGroups}).
 */
export function columnSumsInfo(
  backend: WebGPUBackendLike,
  x: tf.TensorInfo,
  n: number,
  c: number,
  target = targetGroups(),
): tf.TensorInfo {
  let src = x
  let rows = n
  for (;;) {
    const p = sumPass(rows, c, target)
    const out = newOutput(backend, p.Z === 1 ? [c] : [p.Z, c])
    run(backend, {
      name: src === x ? 'sum.partial' : 'sum.reduce',
      code: memo(`sum/${p.vec}`, () => sumCode(p.vec)),
      dispatch: fold(p.Z * p.CG),
      uniforms: SUM.pack({
        n: rows,
        cv: p.cv,
        Z: p.Z,
        CG: p.CG,
        CL: p.CL,
        RL: p.RL,
        rpc: p.rpc,
        half: halfPow2(p.RL),
      }),
      inputs: [src],
      outputs: [out],
    })
    if (src !== x) backend.disposeData(src.dataId)
    if (p.Z === 1) return out
    src = out
    rows = p.Z
  }
}

/**
 * Sums `Z` chunks of `n` partial sums (`part`, `[Z, n]`) into `out` (`[n]`) in one dispatch and
 * frees `part`: the second pass of every split-K reduction.
 */
export function reduceInto(
  backend: WebGPUBackendLike,
  name: string,
  part: tf.TensorInfo,
  out: tf.TensorInfo,
  n: number,
  Z: number,
): tf.TensorInfo {
  const r = reduceChunks(n, Z)
  run(backend, { name, code: r.code, dispatch: r.dispatch, uniforms: r.uniforms, inputs: [part], outputs: [out] })
  backend.disposeData(part.dataId)
  return out
}

defineKernel('DsdColumnSum', (inputs, backend, attrs) => {
  const x = inputs.x!
  const c = x.shape[x.shape.length - 1]!
  const n = x.shape.reduce((a, b) => a * b, 1) / c
  const target = typeof attrs.target === 'number' && attrs.target > 0 ? attrs.target : undefined
  return columnSumsInfo(backend, x, n, c, target)
})

/**
 * `x [..., c]` summed over every axis but the last → `[c]` (WebGPU kernels). `target`
 * overrides the workgroups per pass (tests: the GPU geometry on a CPU adapter).
 */
export function columnSums(x: tf.Tensor, target?: number): tf.Tensor1D {
  return runKernel<tf.Tensor1D>('DsdColumnSum', { x }, target ? { target } : {})
}
