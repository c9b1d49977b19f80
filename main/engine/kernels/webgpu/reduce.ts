/**
 * Column sums `[n, c] → [c]` (bias gradients) in two dispatches: partial sums over row
 * chunks, then {@link reduceChunks}. An invocation owns one channel of one row lane (row
 * lanes × channels fill the 64-wide workgroup), so a workgroup reads whole rows (coalesced on
 * a GPU) and needs no barrier.
 */
import { reduceChunks } from './conv-direct'
import { defineKernel, runKernel } from './register'
import {
  bindings,
  fold,
  MAIN_ARGS,
  newOutput,
  Params,
  run,
  WG_LINEAR,
  type WebGPUBackendLike,
} from './runner'
import { tf } from '../../tf'

const WG = 64

/** Row lanes per workgroup for `c` channels (channels ≥ 64: one row lane, 64-wide groups). */
export function rowLanes(c: number): number {
  return c >= WG ? 1 : Math.floor(WG / c)
}

/** Number of row chunks so that about `target` workgroups run. */
export function rowChunks(n: number, groupsPerChunk: number, target: number): number {
  return Math.max(1, Math.min(n, 1024, Math.round(target / groupsPerChunk)))
}

const SUM = new Params(['n', 'c', 'Z', 'CG', 'RL', 'CL', 'rowsPerChunk'])

const SUM_CODE = `
${bindings([{ name: 'x' }], [{ name: 'part' }], SUM.members())}
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${SUM.lets()}
  let g = i32(${WG_LINEAR});
  let z = g / CG;
  let cg = g % CG;
  let rl = i32(lid) / CL;
  let ch = cg * ${WG} + i32(lid) % CL;
  if (z >= Z || rl >= RL || ch >= c) { return; }
  let r1 = min((z + 1) * rowsPerChunk, n);
  var s = 0.0;
  for (var r = z * rowsPerChunk + rl; r < r1; r += RL) { s += x[r * c + ch]; }
  part[(z * RL + rl) * c + ch] = s;
}`

/** Column sums of `x` viewed as `[n, c]`, on the GPU (returns a new `[c]` tensor info). */
export function columnSumsInfo(
  backend: WebGPUBackendLike,
  x: tf.TensorInfo,
  n: number,
  c: number,
  target = 32,
): tf.TensorInfo {
  const CG = c >= WG ? Math.ceil(c / WG) : 1
  const Z = rowChunks(n, CG, target)
  const RL = rowLanes(c)
  const rowsPerChunk = Math.ceil(n / Z)
  const part = newOutput(backend, [Z * RL, c])
  run(backend, {
    name: 'sum.partial',
    code: SUM_CODE,
    dispatch: fold(Z * CG),
    uniforms: SUM.pack({ n, c, Z, CG, RL, CL: Math.min(c, WG), rowsPerChunk }),
    inputs: [x],
    outputs: [part],
  })
  return reduceInto(backend, 'sum.reduce', part, newOutput(backend, [c]), c, Z * RL)
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

defineKernel('DsdColumnSum', (inputs, backend) => {
  const x = inputs.x!
  const c = x.shape[x.shape.length - 1]!
  const n = x.shape.reduce((a, b) => a * b, 1) / c
  return columnSumsInfo(backend, x, n, c)
})

/** `x [..., c]` summed over every axis but the last → `[c]` (WebGPU kernels). */
export function columnSums(x: tf.Tensor): tf.Tensor1D {
  return runKernel<tf.Tensor1D>('DsdColumnSum', { x })
}
