/**
 * 3-D convolution on WebGPU as implicit GEMM (channels-last, no im2col buffer), registered as
 * three TF.js kernels of the `webgpu` backend:
 *
 * - `DsdConv3D` (x, filter[, bias]) → y: forward, any kernel size, stride and front/back pads;
 * - `DsdConv3DBackpropInput` (dy, filter[, bias]) → dx: the input gradient, split into the
 *   sub-pixel phases of the stride (also the transposed convolution: with k = s = 2, p = 0 it
 *   is the 2×2×2 stride-2 up-convolution of the decoders and DSD heads, depth-to-space store
 *   included);
 * - `DsdConv3DBackpropFilter` (x, dy) → dW: split-K over the output voxels plus a reduction.
 *
 * Each has its gradient registered in terms of the others, so forward, both gradients and the
 * transposed convolution's gradients all run on these kernels. Bias gradients are column sums.
 */
import { tf } from '../../tf'
import { backPads, convGeom, type ConvGeom, type V3 } from './conv-geom'
import {
  convDwDirect,
  convDxDirect,
  convFwdDirect,
  directTile,
  dwPlan,
  type Kernel,
} from './conv-direct'
import { convDwTiled, convDxTiled, convFwdTiled, reducePartials } from './conv-tiled'
import { convVariant } from './mode'
import { columnSums, reduceInto } from './reduce'
import { defineGradient, defineKernel, runKernel } from './register'
import { newOutput, run, type WebGPUBackendLike } from './runner'

type T5 = tf.Tensor5D

function v3(a: unknown, what: string): V3 {
  if (!Array.isArray(a) || a.length !== 3) throw new Error(`conv3d kernel: bad ${what}`)
  return a as V3
}

function fwd(
  backend: WebGPUBackendLike,
  g: ConvGeom,
  x: tf.TensorInfo,
  w: tf.TensorInfo,
  bias: tf.TensorInfo | undefined,
): tf.TensorInfo {
  const y = newOutput(backend, [g.B, ...g.outSize, g.CO])
  const k =
    convVariant() === 'direct'
      ? convFwdDirect(g, !!bias, directTile(g.CO, g.outSize[2]))
      : convFwdTiled(g, !!bias)
  run(backend, {
    name: 'conv3d.fwd',
    code: k.code,
    dispatch: k.dispatch,
    uniforms: k.uniforms,
    inputs: bias ? [x, w, bias] : [x, w],
    outputs: [y],
  })
  return y
}

function dx(
  backend: WebGPUBackendLike,
  g: ConvGeom,
  dy: tf.TensorInfo,
  w: tf.TensorInfo,
  bias: tf.TensorInfo | undefined,
): tf.TensorInfo {
  const out = newOutput(backend, [g.B, ...g.inSize, g.CI])
  const k =
    convVariant() === 'direct'
      ? convDxDirect(g, !!bias, directTile(g.CI, Math.ceil(g.inSize[2] / g.s[2])))
      : convDxTiled(g, !!bias)
  run(backend, {
    name: g.s.some((s) => s > 1) ? 'conv3d.dx.strided' : 'conv3d.dx',
    code: k.code,
    dispatch: k.dispatch,
    uniforms: k.uniforms,
    inputs: bias ? [dy, w, bias] : [dy, w],
    outputs: [out],
  })
  return out
}

function dw(
  backend: WebGPUBackendLike,
  g: ConvGeom,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
): tf.TensorInfo {
  const R = g.k[0] * g.k[1] * g.k[2] * g.CI
  const n = R * g.CO
  const direct = convVariant() === 'direct'
  let k: Kernel
  let Z: number
  if (direct) {
    const plan = dwPlan(g, 32)
    k = convDwDirect(g, plan)
    Z = plan.split.Z * plan.NSEG
  } else {
    const t = convDwTiled(g)
    k = t
    Z = t.Z
  }
  const out = newOutput(backend, [...g.k, g.CI, g.CO])
  const call = { name: 'conv3d.dw', code: k.code, dispatch: k.dispatch, uniforms: k.uniforms }
  if (Z === 1) {
    run(backend, { ...call, inputs: [x, dy], outputs: [out] })
    return out
  }
  const part = newOutput(backend, [Z, n])
  run(backend, { ...call, inputs: [x, dy], outputs: [part] })
  if (direct) return reduceInto(backend, 'conv3d.dw.reduce', part, out, n, Z)
  const r = reducePartials(n, Z)
  run(backend, { name: 'conv3d.dw.reduce', ...r, inputs: [part], outputs: [out] })
  backend.disposeData(part.dataId)
  return out
}

defineKernel('DsdConv3D', (inputs, backend, attrs) => {
  const { x, filter, bias } = inputs
  const g = convGeom(
    x!.shape,
    filter!.shape,
    v3(attrs.strides, 'strides'),
    v3(attrs.padFront, 'padFront'),
    v3(attrs.padBack, 'padBack'),
  )
  return fwd(backend, g, x!, filter!, bias)
})

/** Geometry of the convolution whose input has `inShape` and output `dyShape`. */
function geomFrom(
  inShape: readonly number[],
  filterShape: readonly number[],
  dyShape: readonly number[],
  s: V3,
  p: V3,
): ConvGeom {
  const [B, D, H, W, CI] = inShape as number[]
  const [kd, kh, kw, fci, CO] = filterShape as number[]
  if (fci !== CI || dyShape[4] !== CO || dyShape[0] !== B) {
    throw new Error(
      `conv3d gradient: shapes do not agree (input [${inShape}], filter [${filterShape}], output [${dyShape}])`,
    )
  }
  return {
    B: B!,
    inSize: [D!, H!, W!],
    CI: CI!,
    outSize: [dyShape[1]!, dyShape[2]!, dyShape[3]!],
    CO: CO!,
    k: [kd!, kh!, kw!],
    s,
    p,
  }
}

defineKernel('DsdConv3DBackpropInput', (inputs, backend, attrs) => {
  const { dy, filter, bias } = inputs
  const g = geomFrom(
    attrs.inShape as number[],
    filter!.shape,
    dy!.shape,
    v3(attrs.strides, 'strides'),
    v3(attrs.padFront, 'padFront'),
  )
  return dx(backend, g, dy!, filter!, bias)
})

defineKernel('DsdConv3DBackpropFilter', (inputs, backend, attrs) => {
  const { x, dy } = inputs
  const g = geomFrom(
    x!.shape,
    attrs.filterShape as number[],
    dy!.shape,
    v3(attrs.strides, 'strides'),
    v3(attrs.padFront, 'padFront'),
  )
  return dw(backend, g, x!, dy!)
})

defineGradient('DsdConv3D', ['x', 'filter'], (dy, saved, attrs) => {
  const [x, filter] = saved as [T5, T5]
  const g = dy as T5
  const common = { strides: attrs.strides, padFront: attrs.padFront }
  return {
    x: () =>
      runKernel('DsdConv3DBackpropInput', { dy: g, filter }, { ...common, inShape: x.shape }),
    filter: () =>
      runKernel('DsdConv3DBackpropFilter', { x, dy: g }, { ...common, filterShape: filter.shape }),
    bias: () => columnSums(g),
  }
})

defineGradient('DsdConv3DBackpropInput', ['dy', 'filter'], (ddx, saved, attrs) => {
  const [dy, filter] = saved as [T5, T5]
  const g = ddx as T5
  const geom = geomFrom(
    g.shape,
    filter.shape,
    dy.shape,
    v3(attrs.strides, 'strides'),
    v3(attrs.padFront, 'padFront'),
  )
  const common = { strides: attrs.strides, padFront: attrs.padFront }
  return {
    dy: () => runKernel('DsdConv3D', { x: g, filter }, { ...common, padBack: backPads(geom) }),
    filter: () =>
      runKernel('DsdConv3DBackpropFilter', { x: g, dy }, { ...common, filterShape: filter.shape }),
    bias: () => columnSums(g),
  }
})

/**
 * `conv3d(x [b, d, h, w, ci], filter [kd, kh, kw, ci, co])` with stride `s`, zero pads
 * `front`/`back` per axis and an optional bias `[co]`; differentiable in all three.
 */
export function conv3dGpu(
  x: T5,
  filter: T5,
  bias: tf.Tensor1D | null | undefined,
  s: V3,
  front: V3,
  back: V3,
): T5 {
  const inputs: Record<string, tf.Tensor> = { x, filter }
  if (bias) inputs.bias = bias
  return runKernel<T5>('DsdConv3D', inputs, { strides: s, padFront: front, padBack: back })
}

/**
 * Transposed convolution with kernel = stride (`filter [k, k, k, out, in]`, the
 * `tf.conv3dTranspose` layout, k ∈ {1, 2}), no padding: output `k×` the input per axis.
 */
export function convTransposeGpu(x: T5, filter: T5, bias: tf.Tensor1D | null | undefined): T5 {
  const [b, d, h, w, cin] = x.shape
  const [k0, k1, k2, cout, fin] = filter.shape
  if (fin !== cin) {
    throw new Error(
      `convTranspose: input has ${cin} channels but filter [${filter.shape}] expects ${fin}`,
    )
  }
  const inputs: Record<string, tf.Tensor> = { dy: x, filter }
  if (bias) inputs.bias = bias
  return runKernel<T5>('DsdConv3DBackpropInput', inputs, {
    inShape: [b, d * k0, h * k1, w * k2, cout],
    strides: [k0, k1, k2],
    padFront: [0, 0, 0],
  })
}
