/**
 * Differentiable primitives that work on every backend the app offers (JS CPU, WASM,
 * WebGPU on Dawn, tfjs-node). Stock tfjs-backend-webgpu breaks on rank-5 tensors outside
 * convolution (broadcast binary ops, `where`/`select` as used by the LeakyReLU gradient,
 * transposes above rank 6), so every elementwise op here runs on a flattened `[n, c]` view
 * and reshapes back. Volumes are channels-last `[b, d, h, w, c]`.
 *
 * Only the convolutions themselves see rank-5 tensors. `tf.conv3dTranspose` has no gradient
 * in TF.js 4.22, so the two transposed convolutions the networks need are written as a
 * matrix multiply (+ a depth-to-space with rank-4 transposes for the 2×2×2 stride-2 case).
 */
import { tf } from './tf'
import { useFused, useWasmKernels } from './kernels/dispatch'
import { addRowVectorFused } from './kernels/bias'
import { conv3dFused, convT2Fused } from './kernels/conv3d'
import { concatLastFused } from './kernels/cpu/concat'
import { addLeakyReluFused, instanceNormActFused, leakyReluFused } from './kernels/norm'
// WebGPU: the engine's WGSL kernels (kernels/webgpu/), on unless DSD_KERNELS=stock
import * as gpu from './kernels/webgpu'

type T = tf.Tensor
type T5 = tf.Tensor5D

/** Padding for {@link conv3d}: TF 'same' / 'valid', or an explicit symmetric pad (PyTorch `padding=p`). */
export type Conv3dPad = 'same' | 'valid' | number

/** Number of elements per last-axis row: `x` viewed as `[n, c]`. */
function lastDim(x: T): number {
  return x.shape[x.rank - 1] ?? 1
}

/**
 * Run `fn` on the `[n, c]` view of `x` (c = last axis) and reshape the result back to
 * `x`'s shape (with the last axis taken from the result). This is what makes elementwise
 * work WebGPU-safe.
 */
export function onFlat(x: T, fn: (x2: tf.Tensor2D) => T): T {
  const c = lastDim(x)
  const y2 = fn(tf.reshape(x, [-1, c]) as tf.Tensor2D)
  return tf.reshape(y2, [...x.shape.slice(0, -1), y2.shape[1]!])
}

/** `x` viewed as `[n, c]` (c = last axis). */
export function flat2d(x: T): tf.Tensor2D {
  return tf.reshape(x, [-1, lastDim(x)]) as tf.Tensor2D
}

/**
 * Column sums of `x2 [n, c]` → `[c]`, reduced as `[1, n, c]` over axis 1. TF.js reduces a
 * non-inner axis by transposing first; a 2-D transpose uses WebGPU's tiled shared-memory
 * program whose 2-D dispatch overflows the 65,535-workgroup limit beyond ~1M rows, while
 * the rank-3 transpose uses a flat dispatch that the backend can fold.
 */
export function sumRows(x2: tf.Tensor2D): tf.Tensor1D {
  return tf.reshape(tf.sum(tf.reshape(x2, [1, x2.shape[0], x2.shape[1]]), 1), [-1]) as tf.Tensor1D
}

/**
 * `x2 [n, c] + b [c]` broadcast over rows, with the bias gradient taken by {@link sumRows}
 * (TF.js's own broadcast gradient reduces over axis 0 of the 2-D tensor: see above).
 */
export function addRowVector(x2: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  if (useFused()) return addRowVectorFused(x2, b)
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xa, ba] = args as [tf.Tensor2D, tf.Tensor1D]
    return {
      value: tf.add(xa, tf.reshape(ba, [1, -1])) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D) => [dy, sumRows(dy)],
    }
  })
  return f(x2, b) as tf.Tensor2D
}

/**
 * `x2 [n, c] · g [c]` broadcast over rows, gradient of `g` by {@link sumRows}.
 */
export function mulRowVector(x2: tf.Tensor2D, g: tf.Tensor1D): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xa, ga, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc]
    save([xa, ga])
    return {
      value: tf.mul(xa, tf.reshape(ga, [1, -1])) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [xs, gs] = saved as [tf.Tensor2D, tf.Tensor1D]
        return [tf.mul(dy, tf.reshape(gs, [1, -1])), sumRows(tf.mul(dy, xs) as tf.Tensor2D)]
      },
    }
  })
  return f(x2, g) as tf.Tensor2D
}

/** Rows per matmul call: keeps WebGPU matmul dispatches (rows / tile height, tiles ≥ 8 rows) under 65,535 workgroups. */
export const MATMUL_ROW_CHUNK = 1 << 19

/** `a [n, k] @ w [k, m]`, split into row chunks of {@link MATMUL_ROW_CHUNK} for huge n. */
export function matMulRows(a: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const n = a.shape[0]
  if (n <= MATMUL_ROW_CHUNK) return tf.matMul(a, w)
  const parts: tf.Tensor2D[] = []
  for (let start = 0; start < n; start += MATMUL_ROW_CHUNK) {
    const rows = Math.min(MATMUL_ROW_CHUNK, n - start)
    parts.push(tf.matMul(tf.slice(a, [start, 0], [rows, a.shape[1]]), w))
  }
  return tf.concat(parts, 0)
}

/** Add a per-channel bias `[c]` to `x` `[..., c]`. */
export function addBias<R extends T>(x: R, bias: tf.Tensor1D): R {
  return onFlat(x, (x2) => addRowVector(x2, bias)) as R
}

/** Elementwise `a + b` for two tensors of the same shape (residual connections). */
export function add<R extends T>(a: R, b: T): R {
  if (a.shape.join() !== b.shape.join()) {
    throw new Error(`ops.add: shapes differ: [${a.shape}] vs [${b.shape}]`)
  }
  return tf.reshape(tf.add(flat2d(a), flat2d(b)), a.shape) as R
}

/** Elementwise `a · s` with a scalar `s`. */
export function scale<R extends T>(a: R, s: number): R {
  return tf.reshape(tf.mul(flat2d(a), tf.scalar(s)), a.shape) as R
}

/** Concatenate channels-last tensors along the last axis (decoder skip connections). */
export function concatLast(xs: T[]): T {
  if (xs.length === 0) throw new Error('ops.concatLast: no tensors')
  if (useWasmKernels()) return concatLastFused(xs) // CPU kernels (kernels/cpu)
  const first = xs[0]!
  const lead = first.shape.slice(0, -1)
  const parts = xs.map((x) => flat2d(x))
  const y = tf.concat(parts, 1)
  return tf.reshape(y, [...lead, y.shape[1]!])
}

/** Per-axis `[front, back]` zero padding of the three spatial axes. */
export type Pad3 = [[number, number], [number, number], [number, number]]

/**
 * Zero-pad the three spatial axes of `[b, d, h, w, c]`: by `p` on both sides, or per axis
 * `[[front, back] × 3]`. Done one axis at a time on rank-3 views (WebGPU's pad shader fails
 * on rank 5).
 */
export function pad3d(x: T5, p: number | Pad3): T5 {
  const pads: Pad3 =
    typeof p === 'number'
      ? [
          [p, p],
          [p, p],
          [p, p],
        ]
      : p
  if (pads.every(([f, e]) => f === 0 && e === 0)) return x
  const [b, d, h, w, c] = x.shape
  const axis = (pair: [number, number]): [number, number][] => [[0, 0], pair, [0, 0]]
  let y: T = tf.pad(tf.reshape(x, [b, d, h * w * c]), axis(pads[0]))
  const d2 = d + pads[0][0] + pads[0][1]
  y = tf.pad(tf.reshape(y, [b * d2, h, w * c]), axis(pads[1]))
  const h2 = h + pads[1][0] + pads[1][1]
  y = tf.pad(tf.reshape(y, [b * d2 * h2, w, c]), axis(pads[2]))
  return tf.reshape(y, [b, d2, h2, w + pads[2][0] + pads[2][1], c]) as T5
}

/**
 * Insert `s − 1` zeros between neighbours along each spatial axis:
 * `[b, d, h, w, c] → [b, (d−1)·s_d + 1, …]` (rank ≤ 4 ops only).
 */
export function dilate3d(x: T5, s: [number, number, number]): T5 {
  let y: T = x
  for (let ax = 0; ax < 3; ax++) {
    const st = s[ax]!
    if (st === 1) continue
    const shape = y.shape
    const n = shape[ax + 1]!
    const lead = shape.slice(0, ax + 1).reduce((q, v) => q * v, 1)
    const rest = shape.slice(ax + 2).reduce((q, v) => q * v, 1)
    const v4 = tf.reshape(y, [lead, n, 1, rest])
    const z = tf.concat([v4, tf.zeros([lead, n, st - 1, rest])], 2)
    const long = tf.slice(
      tf.reshape(z, [lead, n * st, rest]),
      [0, 0, 0],
      [lead, (n - 1) * st + 1, rest],
    )
    const next = [...shape]
    next[ax + 1] = (n - 1) * st + 1
    y = tf.reshape(long, next)
  }
  return y as T5
}

function triple(s: number | [number, number, number]): [number, number, number] {
  return typeof s === 'number' ? [s, s, s] : s
}

/** TF 'same' padding as explicit `[front, back]` per axis. */
function samePads(x: T5, filter: T5, s: [number, number, number]): Pad3 {
  const out: [number, number][] = []
  for (let i = 0; i < 3; i++) {
    const n = x.shape[i + 1]!
    const k = filter.shape[i]!
    const o = Math.ceil(n / s[i]!)
    const total = Math.max((o - 1) * s[i]! + k - n, 0)
    out.push([Math.floor(total / 2), total - Math.floor(total / 2)])
  }
  return out as Pad3
}

/**
 * 3D convolution, channels-last. `filter` is `[kd, kh, kw, in, out]`, `bias` `[out]`.
 * `pad` 'same'/'valid' follow TensorFlow; a number pads symmetrically with zeros first and
 * then runs 'valid', which reproduces PyTorch `Conv3d(padding=p)` (TF 'same' with stride 2
 * pads only at the end and samples different voxels than PyTorch).
 */
export function conv3d(
  x: T5,
  filter: T5,
  bias?: tf.Tensor1D | null,
  stride: number | [number, number, number] = 1,
  pad: Conv3dPad = 'same',
): T5 {
  const st = triple(stride)
  if (gpu.useWebgpuKernels()) {
    const [front, back] =
      typeof pad === 'number'
        ? [[pad, pad, pad] as gpu.V3, [pad, pad, pad] as gpu.V3]
        : pad === 'same'
          ? gpu.samePads(
              [x.shape[1], x.shape[2], x.shape[3]],
              [filter.shape[0], filter.shape[1], filter.shape[2]],
              st,
            )
          : [[0, 0, 0] as gpu.V3, [0, 0, 0] as gpu.V3]
    return gpu.conv3dGpu(x, filter, bias, st, front, back)
  }
  // ---- CPU kernels (kernels/cpu): the whole convolution, bias included, in WebAssembly
  if (useWasmKernels()) {
    const p3: Pad3 =
      typeof pad === 'number'
        ? [
            [pad, pad],
            [pad, pad],
            [pad, pad],
          ]
        : pad === 'same'
          ? samePads(x, filter, st)
          : [
              [0, 0],
              [0, 0],
              [0, 0],
            ]
    const front = p3.map((q) => q[0]) as [number, number, number]
    const back = p3.map((q) => q[1]) as [number, number, number]
    return conv3dFused(x, filter, st, [front, back], bias)
  }
  // ---- end CPU kernels
  let input = x
  let mode: 'same' | 'valid'
  if (typeof pad === 'number') {
    if (pad > 0) input = pad3d(x, pad)
    mode = 'valid'
  } else {
    mode = pad
  }
  const y = tf.conv3d(input, filter, st, mode)
  return bias ? addBias(y, bias) : y
}

/**
 * Matrix form `[in, 8·out]` of a `[2, 2, 2, out, in]` transposed-conv filter; column index
 * is `((kd·2 + kh)·2 + kw)·out + co`.
 */
function k2s2Matrix(filter: T5): tf.Tensor2D {
  const [kd, kh, kw, cout, cin] = filter.shape
  if (kd !== 2 || kh !== 2 || kw !== 2) {
    throw new Error(`ops.convTranspose3dK2S2: filter must be [2,2,2,out,in], got [${filter.shape}]`)
  }
  return tf.transpose(tf.reshape(filter, [8 * cout, cin])) as tf.Tensor2D
}

/**
 * 2×2×2 stride-2 transposed convolution with no padding (output = 2× input per axis),
 * channels-last. `filter` is `[2, 2, 2, out, in]` (the `tf.conv3dTranspose` layout; PyTorch
 * `ConvTranspose3d.weight` `[in, out, kd, kh, kw]` permuted), `bias` `[out]`.
 *
 * Computed as a matmul to 8·out channels followed by a depth-to-space built from reshapes
 * and two rank-4 transposes, so it is differentiable on every backend and equals
 * `tf.conv3dTranspose(x, filter, [b, 2d, 2h, 2w, out], 2, 'valid')`.
 */
export function convTranspose3dK2S2(x: T5, filter: T5, bias?: tf.Tensor1D | null): T5 {
  if (gpu.useWebgpuKernels()) {
    if (filter.shape[0] !== 2 || filter.shape[1] !== 2 || filter.shape[2] !== 2) {
      throw new Error(
        `ops.convTranspose3dK2S2: filter must be [2,2,2,out,in], got [${filter.shape}]`,
      )
    }
    return gpu.convTransposeGpu(x, filter, bias)
  }
  if (useWasmKernels()) return convT2Fused(x, filter, bias) // CPU kernels (kernels/cpu)
  const [b, d, h, w, cin] = x.shape
  const cout = filter.shape[3]
  if (filter.shape[4] !== cin) {
    throw new Error(
      `ops.convTranspose3dK2S2: input has ${cin} channels but filter [${filter.shape}] expects ${filter.shape[4]}`,
    )
  }
  // [b·d·h·w, 8·out], columns ordered (kd, kh, kw, co)
  let y: T = matMulRows(tf.reshape(x, [-1, cin]) as tf.Tensor2D, k2s2Matrix(filter))
  // move kd next to d: [b·d, h·w, kd, kh·kw·co] → [b·d, kd, h·w, kh·kw·co]
  y = tf.transpose(tf.reshape(y, [b * d, h * w, 2, 4 * cout]), [0, 2, 1, 3])
  // move kh next to h: [b·2d·h, w, kh, kw·co] → [b·2d·h, kh, w, kw·co]
  y = tf.transpose(tf.reshape(y, [b * 2 * d * h, w, 2, 2 * cout]), [0, 2, 1, 3])
  // (w, kw, co) is already in place
  let out = tf.reshape(y, [b, 2 * d, 2 * h, 2 * w, cout]) as T5
  if (bias) out = addBias(out, bias)
  return out
}

/**
 * 1×1×1 transposed convolution (stride 1): a per-voxel linear map. `filter` is
 * `[1, 1, 1, out, in]` (tf.conv3dTranspose layout), `bias` `[out]`.
 */
export function convTranspose3dK1(x: T5, filter: T5, bias?: tf.Tensor1D | null): T5 {
  const [, , , cout, cin] = filter.shape
  if (filter.shape[0] !== 1 || filter.shape[1] !== 1 || filter.shape[2] !== 1) {
    throw new Error(`ops.convTranspose3dK1: filter must be [1,1,1,out,in], got [${filter.shape}]`)
  }
  if (gpu.useWebgpuKernels()) return gpu.convTransposeGpu(x, filter, bias)
  if (useWasmKernels()) {
    // CPU kernels (kernels/cpu): a 1×1×1 convolution with the [in, out] filter
    const w = tf.reshape(tf.transpose(tf.reshape(filter, [cout, cin])), [1, 1, 1, cin, cout])
    return conv3dFused(
      x,
      w as T5,
      [1, 1, 1],
      [
        [0, 0, 0],
        [0, 0, 0],
      ],
      bias,
    )
  }
  const wMat = tf.transpose(tf.reshape(filter, [cout, cin])) as tf.Tensor2D
  return onFlat(x, (x2) => {
    const y = matMulRows(x2, wMat)
    return bias ? addRowVector(y, bias) : y
  }) as T5
}

/**
 * 1×1×1 convolution as a matmul: `filter` `[1, 1, 1, in, out]` (conv3d layout) or `[in, out]`.
 * Cheaper than `tf.conv3d` for pointwise heads.
 */
export function pointwise(x: T5, filter: T, bias?: tf.Tensor1D | null): T5 {
  const cout = filter.shape[filter.rank - 1]!
  const cin = filter.shape[filter.rank - 2]!
  if (gpu.useWebgpuKernels()) {
    const f5 = tf.reshape(filter, [1, 1, 1, cin, cout]) as T5
    return gpu.conv3dGpu(x, f5, bias, [1, 1, 1], [0, 0, 0], [0, 0, 0])
  }
  if (useWasmKernels()) {
    // CPU kernels (kernels/cpu): a 1×1×1 convolution
    const w = tf.reshape(filter, [1, 1, 1, cin, cout]) as T5
    return conv3dFused(
      x,
      w,
      [1, 1, 1],
      [
        [0, 0, 0],
        [0, 0, 0],
      ],
      bias,
    )
  }
  const wMat = tf.reshape(filter, [cin, cout]) as tf.Tensor2D
  return onFlat(x, (x2) => {
    const y = matMulRows(x2, wMat)
    return bias ? addRowVector(y, bias) : y
  }) as T5
}

/**
 * Instance normalisation of `[b, d, h, w, c]` per sample and channel over d·h·w, without
 * affine parameters and with the biased variance (PyTorch `InstanceNorm3d`, affine=False).
 */
export function instanceNorm(x: T5, eps = 1e-5): T5 {
  if (gpu.useWebgpuKernels()) return gpu.normActGpu(x, eps, null)
  if (useFused()) return instanceNormActFused(x, eps, null)
  return instanceNormTf(x, eps)
}

/** {@link instanceNorm} as a chain of tf ops (the WebGPU path and the tests' reference). */
export function instanceNormTf(x: T5, eps = 1e-5): T5 {
  const [b, d, h, w, c] = x.shape
  const x3 = tf.reshape(x, [b, d * h * w, c])
  const mean = tf.mean(x3, 1, true)
  const centred = tf.sub(x3, mean)
  const variance = tf.mean(tf.square(centred), 1, true)
  const y = tf.mul(centred, tf.rsqrt(tf.add(variance, tf.scalar(eps))))
  return tf.reshape(y, [b, d, h, w, c]) as T5
}

/** LeakyReLU (PyTorch default slope 0.01), on the flat view so its gradient runs on WebGPU. */
export function leakyRelu<R extends T>(x: R, alpha = 0.01): R {
  if (useFused()) return leakyReluFused(x, alpha)
  return onFlat(x, (x2) => tf.leakyRelu(x2, alpha)) as R
}

/** `leakyRelu(instanceNorm(x))`, fused into one kernel on the CPU/WASM backends. */
export function instanceNormLeakyRelu(x: T5, alpha = 0.01, eps = 1e-5): T5 {
  if (gpu.useWebgpuKernels()) return gpu.normActGpu(x, eps, alpha)
  if (useFused()) return instanceNormActFused(x, eps, alpha)
  return leakyRelu(instanceNormTf(x, eps), alpha)
}

/**
 * The residual join of `UnetResBlock`: `leakyRelu(instanceNorm(h) + (normR ?
 * instanceNorm(r) : r))`. One fused kernel on WebGPU; elsewhere the ops above.
 */
export function instanceNormAddLeakyRelu(
  h: T5,
  r: T5,
  normR: boolean,
  alpha = 0.01,
  eps = 1e-5,
): T5 {
  if (gpu.useWebgpuKernels()) return gpu.normAddActGpu(h, r, normR, eps, alpha)
  return addLeakyRelu(instanceNorm(h, eps), normR ? instanceNorm(r, eps) : r, alpha)
}

/** `leakyRelu(a + b)` (residual join), fused on the CPU/WASM backends. */
export function addLeakyRelu<R extends T>(a: R, b: T, alpha = 0.01): R {
  if (a.shape.join() !== b.shape.join()) {
    throw new Error(`ops.addLeakyRelu: shapes differ: [${a.shape}] vs [${b.shape}]`)
  }
  if (useFused()) return addLeakyReluFused(a, b, alpha)
  return leakyRelu(add(a, b), alpha)
}

/** ReLU on the flat view. */
export function relu<R extends T>(x: R): R {
  return onFlat(x, (x2) => tf.relu(x2)) as R
}

/** Layer normalisation over the last axis with `gamma`/`beta` `[c]` (PyTorch `LayerNorm`, biased variance). */
export function layerNorm<R extends T>(x: R, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5): R {
  return onFlat(x, (x2) => {
    const mean = tf.mean(x2, 1, true)
    const centred = tf.sub(x2, mean)
    const variance = tf.mean(tf.square(centred), 1, true)
    const n = tf.mul(centred, tf.rsqrt(tf.add(variance, tf.scalar(eps))))
    return addRowVector(mulRowVector(n as tf.Tensor2D, gamma), beta)
  }) as R
}

/** GELU, exact erf form: `0.5·x·(1 + erf(x/√2))` (PyTorch `nn.GELU()` default). */
export function gelu<R extends T>(x: R): R {
  return onFlat(x, (x2) =>
    tf.mul(
      tf.mul(x2, tf.scalar(0.5)),
      tf.add(tf.scalar(1), tf.erf(tf.mul(x2, tf.scalar(Math.SQRT1_2)))),
    ),
  ) as R
}

/**
 * Dense layer over the last axis: `x [..., in] @ w [in, out] + b [out]` (ViT projections).
 * Note PyTorch `nn.Linear.weight` is `[out, in]`: pass its transpose.
 */
export function linear<R extends T>(x: R, w: tf.Tensor2D, b?: tf.Tensor1D | null): R {
  return onFlat(x, (x2) => {
    const y = matMulRows(x2, w)
    return b ? addRowVector(y, b) : y
  }) as R
}

/** Softmax over the last (class) axis. */
export function softmaxLast<R extends T>(x: R): R {
  return onFlat(x, (x2) => tf.softmax(x2, -1)) as R
}

/** Log-softmax over the last (class) axis. */
export function logSoftmaxLast<R extends T>(x: R): R {
  return onFlat(x, (x2) => tf.logSoftmax(x2, -1)) as R
}
