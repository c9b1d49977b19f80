/**
 * The WebAssembly CPU kernels (main/engine/kernels/cpu) against the JS CPU backend, the
 * reference: convolutions (forward and both gradients) on random shapes, strides, paddings
 * and channel counts (1, odd, not divisible by the vector width, and wide enough for the
 * runtime-channel path), the transposed convolution, instance norm, the loss terms, concat,
 * LeakyReLU, the fast elementwise kernels and AdamW. Also: results do not depend on the number
 * of threads (bit for bit), the pool works from inside a worker thread and never keeps a
 * process alive, an over-large operation fails with a clear error, and the committed
 * kernels.wasm is the one kernels.c builds.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { afterAll, afterEach, describe, expect, test } from 'vitest'
import { initBackend } from '../../../main/engine/backends'
import { tf } from '../../../main/engine/tf'
import * as ops from '../../../main/engine/ops'
import { AdamW } from '../../../main/engine/optimizer'
import { setFusedKernels } from '../../../main/engine/kernels/dispatch'
import { diceCEFused, klDistillFused } from '../../../main/engine/kernels/loss'
import { instanceNormActFused } from '../../../main/engine/kernels/norm'
import * as C from '../../../main/engine/kernels/cpu/conv'
import { KERNELS_WASM_BASE64 } from '../../../main/engine/kernels/cpu/kernels-wasm'
import { cpuRuntime, shutdownCpuRuntime } from '../../../main/engine/kernels/cpu/runtime'
import {
  checkTrainingMemory,
  estimateTrainingBytes,
  isAllocationFailure,
  type MemoryModel,
} from '../../../main/engine/kernels/cpu/memory'
import { createModel, describeModel } from '../../../main/engine/model'
import { trainStep } from '../../../main/engine/train-step'
import { totalmem } from 'node:os'
import { ROOT } from '../../helpers/shared'

type V3 = [number, number, number]

afterAll(async () => {
  setFusedKernels(null)
  await shutdownCpuRuntime()
  delete process.env.DSD_CPU_THREADS
  await initBackend('cpu')
})

/** max |a − b| / max(1, max |b|). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length)
  let m = 0
  let scale = 1
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!))
    scale = Math.max(scale, Math.abs(b[i]!))
  }
  return m / scale
}

/** Deterministic pseudo-random values in [-1, 1). */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = s / 2 ** 31 - 1
  }
  return out
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  )
}

interface ConvCase {
  batch: number
  in: V3
  ci: number
  co: number
  k: V3
  s: V3
  front: V3
  back: V3
}

const CONV_CASES: ConvCase[] = [
  // 1 input channel, PyTorch-style symmetric padding, stride 2 (the first down block)
  {
    batch: 2,
    in: [9, 8, 7],
    ci: 1,
    co: 4,
    k: [3, 3, 3],
    s: [2, 2, 2],
    front: [1, 1, 1],
    back: [1, 1, 1],
  },
  // odd channel counts, TF 'same' at stride 1
  {
    batch: 1,
    in: [6, 7, 5],
    ci: 3,
    co: 5,
    k: [3, 3, 3],
    s: [1, 1, 1],
    front: [1, 1, 1],
    back: [1, 1, 1],
  },
  // 7 → 9 channels, mixed strides, asymmetric padding (TF 'same' at stride 2 pads at the end)
  {
    batch: 2,
    in: [7, 9, 6],
    ci: 7,
    co: 9,
    k: [3, 3, 3],
    s: [2, 1, 2],
    front: [1, 1, 0],
    back: [1, 1, 1],
  },
  // even kernel, no padding, 13 output channels (not a multiple of 4 or 8)
  {
    batch: 1,
    in: [5, 6, 7],
    ci: 2,
    co: 13,
    k: [2, 3, 2],
    s: [1, 2, 1],
    front: [0, 0, 0],
    back: [0, 0, 0],
  },
  // 1×1×1 at stride 2 (residual path): voxels no tap reaches get a zero gradient
  {
    batch: 2,
    in: [6, 5, 6],
    ci: 8,
    co: 12,
    k: [1, 1, 1],
    s: [2, 2, 2],
    front: [0, 0, 0],
    back: [0, 0, 0],
  },
  // wide channels: the runtime-channel micro-kernel (no compile-time specialisation)
  {
    batch: 1,
    in: [5, 4, 6],
    ci: 37,
    co: 20,
    k: [3, 3, 3],
    s: [1, 1, 1],
    front: [1, 1, 1],
    back: [1, 1, 1],
  },
  // large enough to be split into many tasks on every thread
  {
    batch: 2,
    in: [16, 16, 16],
    ci: 8,
    co: 8,
    k: [3, 3, 3],
    s: [1, 1, 1],
    front: [1, 1, 1],
    back: [1, 1, 1],
  },
]

function geometry(c: ConvCase): C.ConvGeometry {
  const out = [0, 1, 2].map((ax) =>
    C.convOutLen(c.in[ax]!, c.k[ax]!, c.s[ax]!, c.front[ax]!, c.back[ax]!),
  ) as V3
  return {
    batch: c.batch,
    in: c.in,
    inChannels: c.ci,
    kernel: c.k,
    outChannels: c.co,
    stride: c.s,
    padFront: c.front,
    out,
  }
}

/** Reference value and gradients of a conv on the JS CPU backend. */
function convReference(c: ConvCase, x: Float32Array, w: Float32Array, dy: Float32Array) {
  return tf.tidy(() => {
    const xt = tf.tensor5d(x, [c.batch, ...c.in, c.ci])
    const wt = tf.tensor5d(w, [...c.k, c.ci, c.co])
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      tf.conv3d(
        ops.pad3d(a as tf.Tensor5D, [
          [c.front[0], c.back[0]],
          [c.front[1], c.back[1]],
          [c.front[2], c.back[2]],
        ]),
        b as tf.Tensor5D,
        c.s,
        'valid',
      )
    const y = f(xt, wt)
    const dyt = tf.tensor(dy, y.shape)
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), dyt)))([
      xt,
      wt,
    ])
    return { y: y.dataSync().slice(), dx: dx!.dataSync().slice(), dw: dw!.dataSync().slice() }
  })
}

describe('WebAssembly convolution kernels equal the JS CPU backend', () => {
  test.each(CONV_CASES.map((c) => [JSON.stringify(c), c] as const))(
    'conv3d %s: y, dx, dW',
    async (_name, c) => {
      await initBackend('cpu')
      const g = geometry(c)
      const x = rand(c.batch * c.in[0] * c.in[1] * c.in[2] * c.ci, 1)
      const w = rand(c.k[0] * c.k[1] * c.k[2] * c.ci * c.co, 2)
      const dy = rand(c.batch * g.out[0] * g.out[1] * g.out[2] * c.co, 3)
      const ref = convReference(c, x, w, dy)
      expect(relErr(C.conv3dForward(x, w, g), ref.y), 'y').toBeLessThan(1e-4)
      expect(relErr(C.conv3dInputGrad(dy, w, g), ref.dx), 'dx').toBeLessThan(1e-4)
      expect(relErr(C.conv3dFilterGrad(x, dy, g), ref.dw), 'dW').toBeLessThan(1e-4)
    },
  )

  test.each([
    [2, [3, 4, 5], 5, 3],
    [1, [4, 4, 4], 1, 9],
    [1, [6, 5, 4], 20, 7],
  ] as [number, V3, number, number][])(
    '2×2×2 stride-2 transposed conv, batch %i, %j, %i → %i channels',
    async (batch, dims, ci, co) => {
      await initBackend('cpu')
      const g = { batch, in: dims, inChannels: ci, outChannels: co }
      const x = rand(batch * dims[0] * dims[1] * dims[2] * ci, 4)
      const w = rand(8 * co * ci, 5)
      const bias = rand(co, 6)
      const dy = rand(batch * 8 * dims[0] * dims[1] * dims[2] * co, 7)
      const ref = tf.tidy(() => {
        const xt = tf.tensor5d(x, [batch, ...dims, ci])
        const wt = tf.tensor5d(w, [2, 2, 2, co, ci])
        const bt = tf.tensor1d(bias)
        const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          ops.convTranspose3dK2S2(a as tf.Tensor5D, b as tf.Tensor5D, c as tf.Tensor1D)
        const y = f(xt, wt, bt)
        const direct = tf.conv3dTranspose(
          xt,
          wt,
          [batch, 2 * dims[0], 2 * dims[1], 2 * dims[2], co],
          2,
          'valid',
        )
        expect(relErr(y.dataSync(), tf.add(direct, bt).dataSync())).toBeLessThan(1e-5)
        const dyt = tf.tensor(dy, y.shape)
        const gr = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.sum(tf.mul(f(a, b, c), dyt)),
        )([xt, wt, bt])
        return {
          y: y.dataSync().slice(),
          dx: gr[0]!.dataSync().slice(),
          dw: gr[1]!.dataSync().slice(),
        }
      })
      expect(relErr(C.convT2Forward(x, w, g, bias), ref.y), 'y').toBeLessThan(1e-4)
      expect(relErr(C.convT2InputGrad(dy, w, g), ref.dx), 'dx').toBeLessThan(1e-4)
      expect(relErr(C.convT2FilterGrad(x, dy, g), ref.dw), 'dW').toBeLessThan(1e-4)
    },
  )
})

/** Value and gradients of `f` on the `cpu` and on the `wasm` backend (same inputs). */
async function bothBackends(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: { values: Float32Array | Int32Array; shape: number[]; dtype?: 'float32' | 'int32' }[],
  differentiable = inputs.length,
): Promise<{ cpu: Float32Array[]; wasm: Float32Array[] }> {
  const run = async (backend: 'cpu' | 'wasm') => {
    await initBackend(backend)
    return tf.tidy(() => {
      const xs = inputs.map((i) => tf.tensor(i.values, i.shape, i.dtype ?? 'float32'))
      const y = f(...xs)
      const wy = tf.tensor(rand(y.size, 99), y.shape)
      const gs = tf.grads((...a: tf.Tensor[]) =>
        tf.sum(tf.mul(f(...a, ...xs.slice(differentiable)), wy)),
      )(xs.slice(0, differentiable))
      return [y, ...gs].map((t) => Float32Array.from(t.dataSync()))
    })
  }
  return { cpu: await run('cpu'), wasm: await run('wasm') }
}

describe('WebAssembly norm, loss and elementwise kernels equal the JS CPU backend', () => {
  test.each([
    [[2, 5, 4, 3, 1], null],
    [[1, 13, 7, 9, 3], 0.01],
    [[2, 6, 5, 7, 5], 0.2],
    [[2, 32, 32, 32, 4], 0.01], // 32 768 voxels per sample: many chunks, every thread
  ] as [number[], number | null][])(
    'instance norm on %j, LeakyReLU slope %s',
    async (shape, slope) => {
      const n = shape.reduce((a, b) => a * b, 1)
      const x = rand(n, 11).map((v, i) => v * 3 + (i % 7) - 2)
      const { cpu, wasm } = await bothBackends(
        (a) => instanceNormActFused(a as tf.Tensor5D, 1e-5, slope),
        [{ values: x, shape }],
      )
      for (let i = 0; i < cpu.length; i++)
        expect(relErr(wasm[i]!, cpu[i]!), `output ${i}`).toBeLessThan(1e-4)
    },
  )

  test.each([
    [2, 37, 2],
    [2, 1001, 3],
    [1, 333, 5],
    [2, 4099, 8],
    [2, 32768, 3], // many chunks, every thread
  ])('DiceCE, batch %i × %i voxels, %i classes (labels out of range included)', async (b, v, k) => {
    const logits = rand(b * v * k, 21).map((x) => x * 4)
    const labels = Int32Array.from({ length: b * v }, (_, i) =>
      i % 17 === 0 ? k : i % 23 === 0 ? -1 : (i * 7) % k,
    )
    const { cpu, wasm } = await bothBackends(
      (x, l) => diceCEFused(x!, l!.dataSync() as Int32Array),
      [
        { values: logits, shape: [b, v, k] },
        { values: labels, shape: [b * v], dtype: 'int32' },
      ],
      1,
    )
    for (let i = 0; i < cpu.length; i++)
      expect(relErr(wasm[i]!, cpu[i]!), `output ${i}`).toBeLessThan(1e-4)
  })

  test.each([
    [38, 2],
    [1003, 3],
    [4101, 8],
    [65536, 3],
  ])('τ²·KL(teacher ‖ student), %i voxels, %i classes: value and both gradients', async (v, k) => {
    const s = rand(v * k, 31).map((x) => x * 5)
    const t = rand(v * k, 32).map((x) => x * 5)
    const { cpu, wasm } = await bothBackends(
      (a, b) => klDistillFused(a!, b!, 3),
      [
        { values: s, shape: [v, k] },
        { values: t, shape: [v, k] },
      ],
    )
    for (let i = 0; i < cpu.length; i++)
      expect(relErr(wasm[i]!, cpu[i]!), `output ${i}`).toBeLessThan(1e-4)
  })

  test('one teacher, three students: the cached teacher gives the same KL terms and gradients', async () => {
    const t = rand(999 * 4, 41)
    const students = [42, 43, 44].map((seed) => rand(999 * 4, seed))
    const { cpu, wasm } = await bothBackends(
      (a, b, c, d) =>
        tf.addN([klDistillFused(b!, a!, 3), klDistillFused(c!, a!, 3), klDistillFused(d!, a!, 3)]),
      [t, ...students].map((values) => ({ values, shape: [999, 4] })),
    )
    for (let i = 0; i < cpu.length; i++)
      expect(relErr(wasm[i]!, cpu[i]!), `output ${i}`).toBeLessThan(1e-4)
  })

  test('concat on the channel axis, LeakyReLU and the residual join', async () => {
    const a = rand(2 * 9 * 8 * 7 * 3, 51)
    const b = rand(2 * 9 * 8 * 7 * 5, 52)
    const c = rand(2 * 9 * 8 * 7 * 3, 53)
    const shape = (ch: number) => [2, 9, 8, 7, ch]
    const cat = await bothBackends(
      (x, y) => ops.concatLast([x!, y!]),
      [
        { values: a, shape: shape(3) },
        { values: b, shape: shape(5) },
      ],
    )
    const act = await bothBackends(
      (x, y) => ops.addLeakyRelu(ops.leakyRelu(x!, 0.01), y!, 0.01),
      [
        { values: a, shape: shape(3) },
        { values: c, shape: shape(3) },
      ],
    )
    for (const r of [cat, act])
      for (let i = 0; i < r.cpu.length; i++)
        expect(relErr(r.wasm[i]!, r.cpu[i]!)).toBeLessThan(1e-6)
  })

  test('fast elementwise kernels give the CPU backend’s float32 values bit for bit', async () => {
    const a = rand(1000, 61)
    const b = rand(1000, 62).map((v) => v + 1.5)
    const run = async (backend: 'cpu' | 'wasm') => {
      await initBackend(backend)
      return tf.tidy(() => {
        const x = tf.tensor(a)
        const y = tf.tensor(b)
        const s = tf.scalar(0.37)
        return [
          tf.add(x, y),
          tf.sub(x, s),
          tf.mul(s, y),
          tf.div(x, y),
          tf.div(s, y),
          tf.add(tf.reshape(x, [10, 100]), tf.reshape(y, [10, 100])),
          tf.mul(tf.reshape(x, [10, 100]), tf.reshape(tf.slice(y, 0, 100), [1, 100])),
        ].map((t) => Float32Array.from(t.dataSync()))
      })
    }
    const cpu = await run('cpu')
    const wasm = await run('wasm')
    for (let i = 0; i < cpu.length; i++) expect(sameBits(wasm[i]!, cpu[i]!), `op ${i}`).toBe(true)
  })

  test('AdamW takes the same steps as on the CPU backend, bit for bit', async () => {
    // a small variable (vector and scalar tail paths) and a large one (many chunks, every thread)
    const shapes = [
      [7, 111],
      [300, 1001],
    ]
    const run = async (backend: 'cpu' | 'wasm') => {
      await initBackend(backend)
      const vars = shapes.map((shape, i) =>
        tf.variable(
          tf.tensor(rand(shape[0]! * shape[1]!, 71 + i), shape),
          true,
          `adamw-${backend}-${i}`,
        ),
      )
      const opt = new AdamW({ lr: 1e-2, weightDecay: 1e-3 })
      for (let step = 0; step < 3; step++) {
        const grads = Object.fromEntries(
          shapes.map((shape, i) => [
            `w${i}`,
            tf.tensor(rand(shape[0]! * shape[1]!, 80 + 10 * step + i), shape),
          ]),
        )
        opt.applyGradients(grads, Object.fromEntries(vars.map((v, i) => [`w${i}`, v])))
        tf.dispose(Object.values(grads))
      }
      const state = opt.exportState()
      const out = [...vars, ...Object.values(state.tensors)].map((t) =>
        Float32Array.from(t.dataSync()),
      )
      tf.dispose([...vars, ...Object.values(state.tensors)])
      opt.dispose()
      return out
    }
    const cpu = await run('cpu')
    const wasm = await run('wasm')
    expect(wasm).toHaveLength(6)
    for (let i = 0; i < cpu.length; i++)
      expect(sameBits(wasm[i]!, cpu[i]!), `tensor ${i}`).toBe(true)
  })
})

describe('the kernel runtime', () => {
  afterEach(async () => {
    await shutdownCpuRuntime()
    delete process.env.DSD_CPU_THREADS
  })

  test('results are bit-identical on 1 and 2 threads (fixed partition, no float atomics)', async () => {
    const c = CONV_CASES.at(-1)!
    const g = geometry(c)
    const x = rand(c.batch * c.in[0] * c.in[1] * c.in[2] * c.ci, 91)
    const w = rand(27 * c.ci * c.co, 92)
    const dy = rand(c.batch * g.out[0] * g.out[1] * g.out[2] * c.co, 93)
    const compute = async (threads: number) => {
      await shutdownCpuRuntime()
      process.env.DSD_CPU_THREADS = String(threads)
      expect(cpuRuntime().threads).toBe(threads)
      const conv = [
        C.conv3dForward(x, w, g),
        C.conv3dInputGrad(dy, w, g),
        C.conv3dFilterGrad(x, dy, g),
      ]
      const step = await bothBackends(
        (a) => instanceNormActFused(a as tf.Tensor5D, 1e-5, 0.01),
        [{ values: x, shape: [c.batch, ...c.in, c.ci] }],
      )
      const loss = await bothBackends(
        (a, l) => diceCEFused(a!, l!.dataSync() as Int32Array),
        [
          { values: x.subarray(0, 2 * 8192 * 4), shape: [2, 8192, 4] },
          {
            values: Int32Array.from({ length: 2 * 8192 }, (_, i) => i % 4),
            shape: [2 * 8192],
            dtype: 'int32',
          },
        ],
        1,
      )
      if (threads > 1) expect(cpuRuntime().workerCount).toBe(threads - 1)
      return [...conv, ...step.wasm, ...loss.wasm]
    }
    const one = await compute(1)
    const two = await compute(2)
    for (let i = 0; i < one.length; i++)
      expect(sameBits(two[i]!, one[i]!), `result ${i}`).toBe(true)
  })

  test('an operation whose scratch memory exceeds the 4 GB heap fails with a clear error', () => {
    const rt = cpuRuntime()
    expect(() => rt.alloc(5 * 2 ** 30)).toThrow(
      /needs 5\.\d\d GB of scratch memory.*4 GB.*smaller patch or batch/,
    )
  })

  test('the pool works inside a worker thread, which then exits on its own', async () => {
    const entry = join(ROOT, 'test/unit/engine/fixtures/cpu-kernels-worker.ts')
    const c = CONV_CASES.at(-1)!
    const g = geometry(c)
    const x = rand(c.batch * c.in[0] * c.in[1] * c.in[2] * c.ci, 94)
    const w = rand(27 * c.ci * c.co, 95)
    const expected = C.conv3dForward(x, w, g)
    const worker = new Worker(new URL('../../../main/workers/bootstrap.mjs', import.meta.url), {
      workerData: { entry: new URL(`file://${entry}`).href, x, w, g },
    })
    const result = await new Promise<{ y: Float32Array; workers: number }>((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    expect(result.workers).toBe(1)
    expect(sameBits(result.y, expected)).toBe(true)
    const code = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the worker did not exit within 20 s: its pool keeps it alive')),
        20_000,
      )
      worker.once('exit', (n) => {
        clearTimeout(timer)
        resolve(n)
      })
    })
    expect(code).toBe(0)
  })

  test('a process that used the pool exits without shutting it down', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import('./main/engine/kernels/cpu/conv.ts').then((C) => {
           const g = { batch: 2, in: [16, 16, 16], inChannels: 8, kernel: [3, 3, 3], outChannels: 8, stride: [1, 1, 1], padFront: [1, 1, 1], out: [16, 16, 16] }
           const y = C.conv3dForward(new Float32Array(2 * 4096 * 8).fill(1), new Float32Array(27 * 64).fill(1), g)
           console.log('done', y[0])
         })`,
      ],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, DSD_CPU_THREADS: '2' },
      },
    )
    expect(r.error, 'the process did not exit (a pool worker keeps it alive)').toBeUndefined()
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('done 64') // a corner voxel sees 2·2·2 taps × 8 channels of ones
  })
})

describe('memory: a configuration that cannot fit fails with a clear error', () => {
  const described = (preset: string, patch: number): MemoryModel => {
    const d = describeModel({ backbone: 'dynunet', preset, patch: [patch, patch, patch] })
    return { config: d.config, rows: d.layers, params: d.counts.backbone + d.counts.dsd }
  }

  test('the estimate grows with the patch volume and the batch, and matches the measured peak', () => {
    const m64 = estimateTrainingBytes(described('mmwhs', 64), 2)
    // measured peak resident memory of a wasm step at 2 × 64³: 3.7 GB
    expect(m64 / 2 ** 30).toBeGreaterThan(3)
    expect(m64 / 2 ** 30).toBeLessThan(4.5)
    expect(estimateTrainingBytes(described('mmwhs', 128), 2)).toBeGreaterThan(6 * m64)
    expect(estimateTrainingBytes(described('mmwhs', 64), 4)).toBeGreaterThan(1.8 * m64)
  })

  test('checkTrainingMemory names the memory needed, the machine’s, and the options', () => {
    const m = described('mmwhs', 96)
    expect(() => checkTrainingMemory(m, 2, 8 * 2 ** 30)).toThrow(
      /patch 96×96×96 × batch 2 needs about 1\d\.\d GB .* this machine has 8\.0 GB: use a smaller patch \(e\.g\. --patch 80×80×80\) or batch \(--batch 1\), a smaller preset .*GPU backend/,
    )
    expect(() => checkTrainingMemory(described('small', 32), 2, 8 * 2 ** 30)).not.toThrow()
  })

  test('allocation failures are recognised', () => {
    let err: unknown = null
    try {
      new Float32Array(2 ** 40)
    } catch (e) {
      err = e
    }
    expect(isAllocationFailure(err)).toBe(true)
    expect(isAllocationFailure(new Error('shape mismatch'))).toBe(false)
  })

  test('trainStep on the wasm backend refuses a step larger than this machine before allocating it', async (ctx) => {
    const cfg = { backbone: 'dynunet' as const, preset: 'mmwhs', patch: [256, 256, 256] as V3 }
    const need = estimateTrainingBytes(described('mmwhs', 256), 1)
    if (need <= totalmem()) {
      console.warn(
        `memory refusal: not run: this machine has ${totalmem()} bytes, more than the ${need} the test needs to exceed`,
      )
      ctx.skip()
      return
    }
    await initBackend('wasm')
    const model = createModel(cfg)
    const opt = new AdamW({ lr: 1e-3, weightDecay: 1e-5 })
    const x = tf.zeros([1, 256, 256, 256, 1]) as tf.Tensor5D
    const y = tf.zeros([1, 256, 256, 256], 'int32')
    try {
      await expect(trainStep(model, opt, x, y, 'dsd')).rejects.toMatchObject({
        code: 'OUT_OF_MEMORY',
        message: expect.stringMatching(
          /needs about \d+\.\d GB of memory on the CPU backend and this machine has/,
        ),
      })
    } finally {
      tf.dispose([x, y])
      opt.dispose()
      model.dispose()
    }
  })
})

describe('kernels.wasm', () => {
  test('kernels-wasm.ts holds exactly the committed kernels.wasm', () => {
    const wasm = readFileSync(join(ROOT, 'main/engine/kernels/cpu/kernels.wasm'))
    expect(Buffer.compare(Buffer.from(KERNELS_WASM_BASE64, 'base64'), wasm)).toBe(0)
  })

  test('kernels.wasm is what kernels.c builds (when clang and wasm-ld are installed)', (ctx) => {
    const clang = spawnSync('clang', ['--version'], { encoding: 'utf8' })
    const ld = spawnSync('wasm-ld', ['--version'], { encoding: 'utf8' })
    if (clang.status !== 0 || ld.status !== 0) {
      console.warn('kernels.wasm build check: not run: clang or wasm-ld is not installed')
      ctx.skip()
      return
    }
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'main/engine/kernels/cpu/build.mjs'), '--check'],
      {
        encoding: 'utf8',
        timeout: 120_000,
      },
    )
    expect(r.status, r.stderr + r.stdout).toBe(0)
  })
})
