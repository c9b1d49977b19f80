/**
 * Correctness check of every tiled convolution tile table (and f16 where the device offers
 * shader-f16) against the JS CPU backend, on small shapes covering odd channel counts,
 * Cin = 1, stride 2, 1³ kernels, the 2×2×2 transposed convolution and more than one K chunk.
 * Forward, input gradient and filter gradient (and bias gradient) of `Σ conv(x, w)·g`.
 *
 * Run on the GPU host by bench/device/run.sh before any timing (bundled by prepare.sh as
 * dist/device/conv-check.mjs), and locally on lavapipe:
 *
 *   npx tsx bench/device/conv-check.ts [--tables base,v4] [--quick] [--f16]
 *
 * Prints one JSON line per (table, precision) with the largest relative error (elementwise
 * difference over the largest reference magnitude) per case, and a final JSON summary
 * `{ "ok": [...], "failed": [...] }`; exit code 1 when a table fails. Bounds: 1e-4 for f32;
 * for f16 operands, 1e-4 against the CPU on inputs already rounded to f16 (the kernels must
 * then agree to f32 accuracy), and 1e-2 on unrounded inputs.
 */
import { initBackend } from '../../main/engine/backends'
import * as gpu from '../../main/engine/kernels/webgpu'
import { setConvTile, TILE_TABLES } from '../../main/engine/kernels/webgpu/conv-tiled'
import { roundF16 } from '../../main/engine/kernels/webgpu/f16'
import { deviceFeatures, setWebgpuPrecision } from '../../main/engine/kernels/webgpu/mode'
import * as ops from '../../main/engine/ops'
import { Rng } from '../../main/engine/random'
import { tf } from '../../main/engine/tf'

interface Case {
  name: string
  x: number[]
  k: number
  co: number
  s: number
  pad: ops.Conv3dPad
  bias: boolean
  transposed?: boolean
}

const QUICK: Case[] = [
  { name: '3³ s1 p1 3→5 bias', x: [2, 5, 4, 6, 3], k: 3, co: 5, s: 1, pad: 1, bias: true },
  { name: "3³ s1 'same' 1→4", x: [2, 4, 4, 5, 1], k: 3, co: 4, s: 1, pad: 'same', bias: false },
  { name: '3³ s2 p1 6→130 bias', x: [1, 3, 4, 3, 6], k: 3, co: 130, s: 2, pad: 1, bias: true },
  { name: '3³ s1 p1 20→33', x: [1, 4, 4, 4, 20], k: 3, co: 33, s: 1, pad: 1, bias: false },
]

const FULL: Case[] = [
  ...QUICK,
  { name: '3³ s2 p1 4→8', x: [1, 5, 7, 6, 4], k: 3, co: 8, s: 2, pad: 1, bias: false },
  { name: '1³ s2 5→6', x: [1, 6, 5, 7, 5], k: 1, co: 6, s: 2, pad: 0, bias: false },
  { name: '3³ s1 p1 130→20', x: [1, 3, 3, 4, 130], k: 3, co: 20, s: 1, pad: 1, bias: false },
  {
    name: '3³ s1 p1 32→32 (many K chunks)',
    x: [2, 10, 9, 8, 32],
    k: 3,
    co: 32,
    s: 1,
    pad: 1,
    bias: true,
  },
  { name: '3³ s1 p1 64→64', x: [1, 6, 7, 6, 64], k: 3, co: 64, s: 1, pad: 1, bias: false },
  {
    name: 'transposed 2³ s2 3→5 bias',
    x: [2, 3, 2, 4, 3],
    k: 2,
    co: 5,
    s: 2,
    pad: 0,
    bias: true,
    transposed: true,
  },
]

interface Inputs {
  x: Float32Array
  w: Float32Array
  b: Float32Array
  g: Float32Array
}

function inputsFor(c: Case, seed: number, f16: boolean): Inputs {
  const rng = new Rng(seed)
  const n = (shape: number[]) => rng.normalArray(shape.reduce((a, b) => a * b, 1))
  const ci = c.x[4]!
  const wShape = c.transposed ? [c.k, c.k, c.k, c.co, ci] : [c.k, c.k, c.k, ci, c.co]
  const r = (a: Float32Array) => (f16 ? roundF16(a) : a)
  return { x: r(n(c.x)), w: r(n(wShape)), b: n([c.co]), g: new Float32Array(0) }
}

function outShape(c: Case): number[] {
  return tf.tidy(() => forward(c, tf.zeros(c.x), tf.zeros(wShapeOf(c)), null).shape)
}

function wShapeOf(c: Case): number[] {
  const ci = c.x[4]!
  return c.transposed ? [c.k, c.k, c.k, c.co, ci] : [c.k, c.k, c.k, ci, c.co]
}

function forward(c: Case, x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null): tf.Tensor {
  if (c.transposed)
    return ops.convTranspose3dK2S2(x as tf.Tensor5D, w as tf.Tensor5D, b as tf.Tensor1D)
  return ops.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, b as tf.Tensor1D | null, c.s, c.pad)
}

/** y, dx, dw (and db) of Σ conv(x, w)·g on the active backend. */
async function evaluate(c: Case, inp: Inputs): Promise<Record<string, Float32Array>> {
  const kept = tf.tidy(() => {
    const xs = [tf.tensor(inp.x, c.x), tf.tensor(inp.w, wShapeOf(c))]
    if (c.bias) xs.push(tf.tensor(inp.b, [c.co]))
    const f = (...a: tf.Tensor[]) => forward(c, a[0]!, a[1]!, c.bias ? a[2]! : null)
    const y = f(...xs)
    const g = tf.tensor(inp.g, y.shape)
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), g)))(xs)
    const out: Record<string, tf.Tensor> = { y }
    grads.forEach((d, i) => (out[['dx', 'dw', 'db'][i]!] = d))
    for (const t of Object.values(out)) tf.keep(t)
    return out
  })
  const res: Record<string, Float32Array> = {}
  for (const [k, t] of Object.entries(kept)) {
    res[k] = (await t.data()) as Float32Array
    t.dispose()
  }
  await gpu.checkKernelCompilation()
  return res
}

function relErr(got: Float32Array, ref: Float32Array): number {
  if (got.length !== ref.length) return Infinity
  let scale = 0
  for (const v of ref) scale = Math.max(scale, Math.abs(v))
  let e = 0
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i]! - ref[i]!)
    if (!(d <= e)) e = Number.isNaN(d) ? Infinity : Math.max(e, d)
  }
  return e / Math.max(scale, 1e-30)
}

interface Ref {
  c: Case
  inp: Inputs
  ref: Record<string, Float32Array>
}

async function references(cases: Case[], rounded: boolean): Promise<Ref[]> {
  await initBackend('cpu')
  const out: Ref[] = []
  for (const [i, c] of cases.entries()) {
    const inp = inputsFor(c, 100 + i, rounded)
    const ys = outShape(c)
    const g = new Rng(200 + i).normalArray(ys.reduce((a, b) => a * b, 1))
    inp.g = rounded ? roundF16(g) : g
    out.push({ c, inp, ref: await evaluate(c, inp) })
  }
  return out
}

async function main(argv: string[]): Promise<number> {
  const arg = (name: string) => {
    const i = argv.indexOf(name)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const tables = (arg('--tables') ?? Object.keys(TILE_TABLES).join(',')).split(',').filter(Boolean)
  const only = arg('--case')
  const cases = (argv.includes('--quick') ? QUICK : FULL).filter(
    (c) => !only || c.name.includes(only),
  )
  const wantF16 = !argv.includes('--no-f16')
  const exact = await references(cases, false)
  const rounded = wantF16 ? await references(cases, true) : []
  await initBackend('webgpu')
  const features = [...deviceFeatures()].sort()
  const hasF16 = features.includes('shader-f16')
  gpu.setConvVariant('tiled')
  const ok: string[] = []
  const failed: string[] = []
  const runs: { table: string; prec: 'f32' | 'f16'; refs: Ref[]; bound: number; label: string }[] =
    []
  for (const t of tables) {
    runs.push({ table: t, prec: 'f32', refs: exact, bound: 1e-4, label: `${t}/f32` })
    if (wantF16 && hasF16) {
      runs.push({ table: t, prec: 'f16', refs: rounded, bound: 1e-4, label: `${t}/f16` })
      runs.push({ table: t, prec: 'f16', refs: exact, bound: 1e-2, label: `${t}/f16-unrounded` })
    }
  }
  for (const r of runs) {
    setConvTile(r.table)
    setWebgpuPrecision(r.prec)
    const errs: Record<string, number> = {}
    let worst = 0
    let error: string | undefined
    const t0 = Date.now()
    try {
      for (const { c, inp, ref } of r.refs) {
        const got = await evaluate(c, inp)
        for (const k of Object.keys(ref)) {
          const e = relErr(got[k]!, ref[k]!)
          errs[`${c.name}:${k}`] = Number(e.toExponential(2))
          worst = Math.max(worst, e)
        }
      }
    } catch (e) {
      error = (e as Error).message.slice(0, 500)
      worst = Infinity
    }
    const pass = worst <= r.bound
    ;(pass ? ok : failed).push(r.label)
    console.log(
      JSON.stringify({
        check: r.label,
        pass,
        maxRelErr: Number.isFinite(worst) ? Number(worst.toExponential(2)) : null,
        bound: r.bound,
        ms: Date.now() - t0,
        ...(error ? { error } : {}),
        errors: errs,
      }),
    )
  }
  setConvTile(null)
  setWebgpuPrecision(null)
  gpu.setConvVariant(null)
  console.log(JSON.stringify({ summary: true, features, f16: hasF16, ok, failed }))
  return failed.length ? 1 : 0
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e)
    process.exit(2)
  },
)
