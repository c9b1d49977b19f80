/**
 * The engine's WGSL kernels (main/engine/kernels/webgpu/) against the JS CPU backend, on
 * random inputs: convolution forward and both gradients (channel counts 1, odd and not
 * divisible by the register/workgroup tiles; stride 1 and 2; 1³ and 3³ kernels; TF 'same'
 * and PyTorch padding), the 2×2×2 stride-2 and 1×1×1 transposed convolutions with both
 * gradients, the fused instance norm (+ residual, + LeakyReLU) with gradients, the fused DSD
 * loss for every variant (with labels outside [0, K)), AdamW over several steps, and the
 * switch to TensorFlow.js's stock kernels (DSD_KERNELS=stock). Both convolution variants
 * run: `direct` (the default on CPU adapters such as lavapipe) and `tiled` (the default on
 * GPUs). Relative error ≤ 1e-4 in float32 (elementwise, scaled by the largest reference
 * value).
 *
 * WebGPU runs on Mesa lavapipe in CI; without an adapter every case prints
 * "webgpu: not run: <reason>" and is skipped (DSD_REQUIRE_WEBGPU=1 makes that a failure).
 * Shapes are tiny: lavapipe compiles each pipeline with LLVM (seconds each), which is most of
 * this file's time.
 */
import { afterAll, beforeAll, describe, expect, test, type TestContext } from 'vitest'
import { initBackend } from '../../../main/engine/backends'
import * as gpu from '../../../main/engine/kernels/webgpu'
import { setLossStorageLimit } from '../../../main/engine/kernels/webgpu/loss'
import {
  ablation,
  dsdLoss,
  requiredOutputs,
  TERM_NAMES,
  type DsdOutputName,
} from '../../../main/engine/loss'
import * as ops from '../../../main/engine/ops'
import { AdamW } from '../../../main/engine/optimizer'
import { Rng } from '../../../main/engine/random'
import { tf } from '../../../main/engine/tf'
import { readNifti } from '../../../main/data/nifti'
import { createModel } from '../../../main/engine/model'
import { trainStep } from '../../../main/engine/train-step'
import { sharedPath } from '../../helpers/shared'
import { expectClose } from './golden'
import { runOn, skipUnlessWebgpu as skipWithout, webgpuUnavailable } from '../../helpers/webgpu'

let why: string | undefined

beforeAll(async () => {
  why = await webgpuUnavailable()
})

afterAll(async () => {
  gpu.setConvVariant(null)
  gpu.setWebgpuKernels(null)
  await initBackend('cpu')
})

const skipUnlessWebgpu = (ctx: TestContext) => skipWithout(ctx, why)

const rng = new Rng(2024)
const randn = (shape: number[]) => ({
  shape,
  data: rng.normalArray(shape.reduce((a, b) => a * b, 1)),
})
type Arr = ReturnType<typeof randn>
const T = (a: Arr) => tf.tensor(a.data, a.shape)


function compare(
  got: Record<string, Float32Array>,
  ref: Record<string, Float32Array>,
  what: string,
): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort())
  for (const k of Object.keys(ref)) expectClose(got[k]!, ref[k]!, 1e-4, 1e-4, `${what}: ${k}`)
}

/** Value and gradients of `Σ f(inputs)·g` for a fixed random `g` (every input differentiated). */
function withGrads(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Arr[],
  gSeed: number,
): Record<string, tf.Tensor> {
  const xs = inputs.map(T)
  const y = f(...xs)
  const g = tf.tensor(new Rng(gSeed).normalArray(y.size), y.shape)
  const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), g)))(xs)
  const out: Record<string, tf.Tensor> = { y }
  grads.forEach((d, i) => (out[`d${i}`] = d))
  return out
}

interface ConvCase {
  name: string
  x: number[]
  k: number
  co: number
  s: number
  pad: ops.Conv3dPad
  bias: boolean
  tiled: boolean
}

const CONV: ConvCase[] = [
  {
    name: '3³ s1 p1, 3→5 channels',
    x: [2, 5, 4, 6, 3],
    k: 3,
    co: 5,
    s: 1,
    pad: 1,
    bias: true,
    tiled: true,
  },
  {
    name: '3³ s2 p1 (PyTorch), 4→8',
    x: [1, 5, 7, 6, 4],
    k: 3,
    co: 8,
    s: 2,
    pad: 1,
    bias: false,
    tiled: true,
  },
  {
    name: "3³ s1 'same', 1 input channel",
    x: [2, 4, 4, 5, 1],
    k: 3,
    co: 4,
    s: 1,
    pad: 'same',
    bias: false,
    tiled: false,
  },
  {
    name: '1³ s2, 5→6 (residual downsample)',
    x: [1, 6, 5, 7, 5],
    k: 1,
    co: 6,
    s: 2,
    pad: 0,
    bias: false,
    tiled: true,
  },
  {
    name: "3³ s2 'same', 9→17",
    x: [1, 6, 6, 6, 9],
    k: 3,
    co: 17,
    s: 2,
    pad: 'same',
    bias: true,
    tiled: false,
  },
  {
    name: '3³ s1 p1, 20→33 (more than one channel tile)',
    x: [1, 4, 4, 4, 20],
    k: 3,
    co: 33,
    s: 1,
    pad: 1,
    bias: false,
    tiled: true,
  },
  {
    name: '3³ s2 p1, 6→130 (the 128-wide tiles)',
    x: [1, 3, 4, 3, 6],
    k: 3,
    co: 130,
    s: 2,
    pad: 1,
    bias: true,
    tiled: true,
  },
  {
    name: '3³ s1 p1, 130→20',
    x: [1, 3, 3, 4, 130],
    k: 3,
    co: 20,
    s: 1,
    pad: 1,
    bias: false,
    tiled: true,
  },
]

describe('webgpu kernels against the cpu backend', () => {
  for (const c of CONV) {
    test(`conv3d ${c.name}: value, dx, dW${c.bias ? ', db' : ''}`, async (ctx) => {
      if (skipUnlessWebgpu(ctx)) return
      const x = randn(c.x)
      const w = randn([c.k, c.k, c.k, c.x[4]!, c.co])
      const b = randn([c.co])
      const f = (...a: tf.Tensor[]) =>
        ops.conv3d(
          a[0] as tf.Tensor5D,
          a[1] as tf.Tensor5D,
          c.bias ? (a[2] as tf.Tensor1D) : null,
          c.s,
          c.pad,
        )
      const inputs = c.bias ? [x, w, b] : [x, w]
      const ref = await runOn('cpu', () => withGrads(f, inputs, 7))
      for (const variant of c.tiled ? (['direct', 'tiled'] as const) : (['direct'] as const)) {
        gpu.setConvVariant(variant)
        const got = await runOn('webgpu', () => withGrads(f, inputs, 7))
        compare(got, ref, `${c.name} (${variant})`)
      }
      gpu.setConvVariant(null)
    })
  }

  test('pointwise (1³ conv as GEMM) with bias, 7→3 channels', async (ctx) => {
    if (skipUnlessWebgpu(ctx)) return
    const inputs = [randn([1, 3, 5, 4, 7]), randn([7, 3]), randn([3])]
    const f = (...a: tf.Tensor[]) => ops.pointwise(a[0] as tf.Tensor5D, a[1]!, a[2] as tf.Tensor1D)
    const ref = await runOn('cpu', () => withGrads(f, inputs, 8))
    compare(await runOn('webgpu', () => withGrads(f, inputs, 8)), ref, 'pointwise')
  })

  for (const [k, cin, cout, tiled] of [
    [2, 3, 5, true],
    [2, 8, 4, false],
    [2, 1, 6, false],
    [1, 3, 3, false],
  ] as const) {
    test(`transposed conv ${k}×${k}×${k} stride ${k}, ${cin}→${cout}: value, dx, dW, db`, async (ctx) => {
      if (skipUnlessWebgpu(ctx)) return
      const inputs = [randn([2, 3, 2, 4, cin]), randn([k, k, k, cout, cin]), randn([cout])]
      const f = (...a: tf.Tensor[]) =>
        k === 2
          ? ops.convTranspose3dK2S2(a[0] as tf.Tensor5D, a[1] as tf.Tensor5D, a[2] as tf.Tensor1D)
          : ops.convTranspose3dK1(a[0] as tf.Tensor5D, a[1] as tf.Tensor5D, a[2] as tf.Tensor1D)
      const ref = await runOn('cpu', () => withGrads(f, inputs, 9))
      for (const variant of tiled ? (['direct', 'tiled'] as const) : (['direct'] as const)) {
        gpu.setConvVariant(variant)
        compare(await runOn('webgpu', () => withGrads(f, inputs, 9)), ref, `convT k${k} (${variant})`)
      }
      gpu.setConvVariant(null)
    })
  }

  for (const C of [1, 3, 70]) {
    test(`instance norm (+ LeakyReLU, + residual) with ${C} channels: values and gradients`, async (ctx) => {
      if (skipUnlessWebgpu(ctx)) return
      const h = randn([2, 3, 4, 5, C])
      const r = randn([2, 3, 4, 5, C])
      // shift one input so that mean ≫ std for some channels (the variance must not cancel)
      h.data.forEach((v, i) => (h.data[i] = i % 2 ? v : v + 50))
      const cases: [string, (...a: tf.Tensor[]) => tf.Tensor, Arr[]][] = [
        ['norm', (a) => ops.instanceNorm(a as tf.Tensor5D), [h]],
        ['norm+lrelu', (a) => ops.instanceNormLeakyRelu(a as tf.Tensor5D, 0.01), [h]],
        [
          'norm+norm(res)+lrelu',
          (a, b) => ops.instanceNormAddLeakyRelu(a as tf.Tensor5D, b as tf.Tensor5D, true, 0.01),
          [h, r],
        ],
        [
          'norm+res+lrelu',
          (a, b) => ops.instanceNormAddLeakyRelu(a as tf.Tensor5D, b as tf.Tensor5D, false, 0.2),
          [h, r],
        ],
      ]
      for (const [name, f, inputs] of cases) {
        const ref = await runOn('cpu', () => withGrads(f, inputs, 11))
        compare(await runOn('webgpu', () => withGrads(f, inputs, 11)), ref, `${name}, C=${C}`)
      }
    })
  }

  test('DSD loss, every variant and allTerms: total, 11 terms, gradients of the outputs the total reads', async (ctx) => {
    if (skipUnlessWebgpu(ctx)) return
    const K = 4
    const shape = [2, 3, 2, 3, K]
    const names: DsdOutputName[] = ['Y', 'D4', 'D3', 'D2', 'D1', 'E1', 'E2', 'E3', 'E4']
    const logits = names.map(() => randn(shape))
    const labels = Array.from({ length: 2 * 3 * 2 * 3 }, (_, i) =>
      i % 7 === 3 ? K : i % 11 === 5 ? -1 : (i * 5) % K,
    )
    for (const variant of ['basic', 'ds', 'sdd', 'sde', 'dsd']) {
      for (const allTerms of [false, true]) {
        // gradients with respect to the outputs the variant's total reads
        const need = requiredOutputs(ablation(variant))
        const f = () => {
          const xs = logits.map(T)
          const lab = tf.tensor(labels, shape.slice(0, 4), 'int32')
          const loss = (...a: tf.Tensor[]) => {
            const outs = Object.fromEntries(names.map((n, i) => [n, xs[i]!]))
            need.forEach((n, i) => (outs[n] = a[i]!))
            return dsdLoss(outs, lab, { ...ablation(variant), temperature: 3, allTerms }).total
          }
          const { value, grads } = tf.valueAndGrads(loss)(need.map((n) => xs[names.indexOf(n)]!))
          const terms = dsdLoss(Object.fromEntries(names.map((n, i) => [n, xs[i]!])), lab, {
            ...ablation(variant),
            temperature: 3,
            allTerms,
          }).terms
          const out: Record<string, tf.Tensor> = { total: value }
          for (const t of TERM_NAMES) if (terms[t]) out[t] = terms[t]!
          grads.forEach((g, i) => (out[`d${need[i]}`] = g))
          return out
        }
        const ref = await runOn('cpu', f)
        compare(await runOn('webgpu', f), ref, `${variant}${allTerms ? ' allTerms' : ''}`)
        if (variant === 'dsd' && !allTerms) {
          // a device with 8 storage buffers per dispatch: the gradient pass runs per subset
          setLossStorageLimit(8)
          try {
            compare(await runOn('webgpu', f), ref, 'dsd, 8 storage buffers')
          } finally {
            setLossStorageLimit(null)
          }
        }
      }
    }
  })

  test('AdamW: three steps with weight decay equal the cpu backend', async (ctx) => {
    if (skipUnlessWebgpu(ctx)) return
    const p0 = randn([3, 7, 5])
    const gs = [randn([3, 7, 5]), randn([3, 7, 5]), randn([3, 7, 5])]
    const run = async (backend: 'cpu' | 'webgpu') => {
      await initBackend(backend)
      const p = tf.variable(T(p0), true, `adamw-test-${backend}`)
      const opt = new AdamW({ lr: 0.05, weightDecay: 0.1 })
      for (const g of gs) tf.tidy(() => opt.applyGradients({ p: T(g) }, { p }))
      const st = opt.exportState()
      const out = {
        p: (await p.data()) as Float32Array,
        m: (await st.tensors['m/p']!.data()) as Float32Array,
        v: (await st.tensors['v/p']!.data()) as Float32Array,
      }
      tf.dispose(Object.values(st.tensors))
      p.dispose()
      opt.dispose()
      return out
    }
    const ref = await run('cpu')
    compare(await run('webgpu'), ref, 'adamw')
  })

  test('DSD_KERNELS=stock selects the stock TF.js kernels; the default is the engine kernels', async (ctx) => {
    if (skipUnlessWebgpu(ctx)) return
    await initBackend('webgpu')
    const names = async () => {
      const prof = await tf.profile(() => {
        const y = ops.conv3d(
          tf.ones([1, 4, 4, 4, 2]) as tf.Tensor5D,
          tf.ones([3, 3, 3, 2, 2]) as tf.Tensor5D,
          null,
          1,
          'same',
        )
        return ops.instanceNormLeakyRelu(y)
      })
      return prof.kernels.map((k) => k.name)
    }
    const prev = process.env.DSD_KERNELS
    try {
      delete process.env.DSD_KERNELS
      expect(gpu.useWebgpuKernels()).toBe(true)
      expect(await names()).toEqual(expect.arrayContaining(['DsdConv3D', 'DsdNormAct']))
      process.env.DSD_KERNELS = 'stock'
      expect(gpu.useWebgpuKernels()).toBe(false)
      const stock = await names()
      expect(stock).toContain('Conv3D')
      expect(stock.some((n) => n.startsWith('Dsd'))).toBe(false)
    } finally {
      if (prev === undefined) delete process.env.DSD_KERNELS
      else process.env.DSD_KERNELS = prev
    }
  })

  test('a short DSD training run on a hippocampus case gives the cpu loss curve (float32 drift)', async (ctx) => {
    if (skipUnlessWebgpu(ctx)) return
    const dir = sharedPath('data', 'msd-task04-hippocampus')
    const img = await readNifti(`${dir}/imagesTr/hippocampus_001.nii.gz`)
    const lab = await readNifti(`${dir}/labelsTr/hippocampus_001.nii.gz`)
    const [nx, ny, nz] = img.shape
    const N = 16
    // a 16³ crop around the labelled structure's centroid, z-scored
    let cx = 0
    let cy = 0
    let cz = 0
    let cnt = 0
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++)
          if (Number(lab.data[i + nx * (j + ny * k)]) > 0) {
            cx += i
            cy += j
            cz += k
            cnt++
          }
    const start = [cx, cy, cz].map((c, a) =>
      Math.max(0, Math.min([nx, ny, nz][a]! - N, Math.round(c / cnt) - N / 2)),
    )
    const x = new Float32Array(N ** 3)
    const y = new Int32Array(N ** 3)
    for (let d = 0; d < N; d++)
      for (let h = 0; h < N; h++)
        for (let w = 0; w < N; w++) {
          const src = start[0]! + w + nx * (start[1]! + h + ny * (start[2]! + d))
          x[(d * N + h) * N + w] = Number(img.data[src])
          y[(d * N + h) * N + w] = Number(lab.data[src])
        }
    const mean = x.reduce((a, b) => a + b, 0) / x.length
    const std = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length)
    for (let i = 0; i < x.length; i++) x[i] = (x[i]! - mean) / std
    expect(new Set(y)).toEqual(new Set([0, 1, 2]))
    const curve = async (backend: 'cpu' | 'webgpu') => {
      await initBackend(backend)
      const model = createModel({
        backbone: 'dynunet',
        inChannels: 1,
        numClasses: 3,
        patch: [N, N, N],
        filters: [4, 8, 8, 8, 8],
        seed: 3,
      })
      const opt = new AdamW({ lr: 3e-3, weightDecay: 1e-5 })
      const xt = tf.tensor5d(x, [1, N, N, N, 1])
      const yt = tf.tensor4d(y, [1, N, N, N], 'int32')
      const losses: number[] = []
      for (let s = 0; s < 6; s++) losses.push((await trainStep(model, opt, xt, yt, 'dsd')).loss)
      tf.dispose([xt, yt])
      opt.dispose()
      model.dispose()
      return losses
    }
    const ref = await curve('cpu')
    const got = await curve('webgpu')
    console.info(`hippocampus DSD losses, cpu: ${ref.map((v) => v.toFixed(5)).join(' ')}`)
    console.info(`hippocampus DSD losses, webgpu: ${got.map((v) => v.toFixed(5)).join(' ')}`)
    expect(ref.at(-1)!).toBeLessThan(ref[0]!)
    ref.forEach((r, i) => expect(Math.abs(got[i]! - r) / r, `step ${i + 1}`).toBeLessThan(1e-3))
  })
})
