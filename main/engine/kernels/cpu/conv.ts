/**
 * Convolutions on the WebAssembly CPU kernels (kernels.c), on plain Float32Arrays in the
 * channels-last layouts of the engine:
 *
 * - `conv3d`: x `[B, D, H, W, CI]`, filter `[KD, KH, KW, CI, CO]`, any stride, per-axis front
 *   padding and output size (so TF 'same', 'valid' and PyTorch symmetric padding all fit);
 *   forward, data gradient and filter gradient.
 * - `convT2`: the 2×2×2 stride-2 transposed convolution, filter `[2, 2, 2, CO, CI]` (the
 *   `tf.conv3dTranspose` layout); forward, data gradient and filter gradient.
 *
 * All of them are indirect GEMMs (see kernels.c) run on every core by the runtime.
 */
import { MAX_TASKS, withArena, type CpuRuntime, type Ptr } from './runtime'

export type V3 = [number, number, number]

const OP_ICONV = 1
const OP_WGRAD = 2
const OP_WREDUCE = 3
const MR = 4
const NR = 8
/** Grid points per filter-gradient chunk (fixed by the shape, never by the thread count). */
const WCHUNK = 2048
const WCHUNK_MAX = 4096

/** Geometry of one 3D convolution. */
export interface ConvGeometry {
  batch: number
  /** Input spatial size [D, H, W]. */
  in: V3
  inChannels: number
  /** Kernel size [KD, KH, KW]. */
  kernel: V3
  outChannels: number
  stride: V3
  /** Zero padding before each axis (the padding after follows from `out`). */
  padFront: V3
  /** Output spatial size [OD, OH, OW]. */
  out: V3
}

/** Output size per axis for input `n`, kernel `k`, stride `s`, front pad `p` and back pad `q`. */
export function convOutLen(n: number, k: number, s: number, p: number, q: number): number {
  return Math.floor((n + p + q - k) / s) + 1
}

interface IConvJob {
  batch: number
  grid: V3
  out: Ptr
  outDims: V3
  n: number
  first: V3
  step: V3
  a: Ptr
  aDims: V3
  kc: number
  alpha: V3
  /** Per tap: the A-coordinate offsets [d, h, w]. */
  beta: number[][]
  b: Ptr
  bias?: Ptr
  accumulate?: boolean
}

/** Split an indirect GEMM of `M` grid points × `nblocks` output blocks into tasks. */
function iconvTiles(rt: CpuRuntime, M: number, nblocks: number, macsPerPoint: number) {
  const work = M * macsPerPoint
  const threads = rt.threads
  if (threads <= 1 || work < 1 << 18) return { rows: roundUp(Math.max(M, 1), MR), nb: nblocks }
  // enough tasks for load balancing on a shared machine, each still a few hundred µs of work
  const want = Math.min(Math.max(Math.ceil(work / (1 << 20)), 2 * threads), 16 * threads)
  let nb = nblocks
  let rows = roundUp(Math.ceil(M / want), MR)
  if (Math.ceil(M / rows) < 2 * threads && nblocks > 1) {
    // few grid points (deep levels): split the output channels as well
    nb = Math.max(1, Math.floor(nblocks / Math.ceil((2 * threads) / Math.ceil(M / rows))))
  }
  rows = Math.max(rows, roundUp(Math.ceil(M / Math.floor(MAX_TASKS / Math.ceil(nblocks / nb))), MR))
  return { rows, nb }
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m
}

function runIConv(rt: CpuRuntime, j: IConvJob): void {
  const T = j.beta.length
  const M = j.batch * j.grid[0] * j.grid[1] * j.grid[2]
  if (M === 0 || T === 0) return
  const nblocks = Math.ceil(j.n / NR)
  const { rows, nb } = iconvTiles(rt, M, nblocks, T * j.kc * j.n)
  const betaPtr = rt.putInt(j.beta.flat())
  const zero = rt.zeros(Math.max(j.kc, 4))
  const fields = [
    j.batch,
    ...j.grid,
    j.out,
    ...j.outDims,
    j.n,
    ...j.first,
    ...j.step,
    j.a,
    ...j.aDims,
    j.kc,
    ...j.alpha,
    T,
    betaPtr,
    j.b,
    zero,
    rows,
    nb,
    j.bias ?? 0,
    j.accumulate ? 1 : 0,
  ]
  const ntasks = Math.ceil(M / rows) * Math.ceil(nblocks / nb)
  rt.run(OP_ICONV, fields, ntasks)
}

/** Pack `T` taps of a `K × N` matrix (element (t, k, n) at `toff[t] + k·sk + n·sn`) for the micro-kernel. */
function packB(
  rt: CpuRuntime,
  src: Ptr,
  toff: number[],
  K: number,
  N: number,
  sk: number,
  sn: number,
): Ptr {
  const T = toff.length
  const dst = rt.alloc(Math.ceil(N / NR) * T * K * NR * 4)
  const offs = rt.putInt(toff)
  rt.exports.pack_b(dst, src, T, offs, K, N, sk, sn)
  return dst
}

interface WGradJob {
  batch: number
  grid: V3
  p: Ptr
  pDims: V3
  pc: number
  alpha: V3
  beta: number[][]
  q: Ptr
  qc: number
}

/** out[t][pc][qc] = Σ_j P_t(j) ⊗ Q(j) as a Float32Array, deterministic for any thread count. */
function runWGrad(rt: CpuRuntime, j: WGradJob): Float32Array {
  const T = j.beta.length
  const M = j.batch * j.grid[0] * j.grid[1] * j.grid[2]
  const out = new Float32Array(T * j.pc * j.qc)
  if (M === 0) return out
  let chunk = Math.min(WCHUNK, M)
  if (Math.ceil(M / chunk) * T > MAX_TASKS) chunk = Math.min(WCHUNK_MAX, M)
  const chunks = Math.ceil(M / chunk)
  if (chunks * T > MAX_TASKS)
    throw new Error(`cpu kernels: filter gradient too large (${M} points × ${T} taps)`)
  const pcp = roundUp(j.pc, MR)
  const qcp = roundUp(j.qc, NR)
  const partial = rt.alloc(chunks * T * pcp * qcp * 4)
  const betaPtr = rt.putInt(j.beta.flat())
  rt.run(
    OP_WGRAD,
    [j.batch, ...j.grid, j.p, ...j.pDims, j.pc, ...j.alpha, T, betaPtr, j.q, j.qc, partial, chunk],
    chunks * T,
  )
  const dst = rt.alloc(out.length * 4)
  const rowsTotal = T * j.pc
  const small = chunks * rowsTotal * j.qc < 1 << 16
  const rowsPerTask = small ? rowsTotal : Math.max(1, Math.ceil(rowsTotal / (4 * rt.threads)))
  rt.run(
    OP_WREDUCE,
    [partial, dst, chunks, T, j.pc, j.qc, rowsPerTask],
    Math.ceil(rowsTotal / rowsPerTask),
  )
  out.set(rt.F32.subarray(dst >> 2, (dst >> 2) + out.length))
  return out
}

function taps(kernel: V3): V3[] {
  const out: V3[] = []
  for (let kd = 0; kd < kernel[0]; kd++)
    for (let kh = 0; kh < kernel[1]; kh++)
      for (let kw = 0; kw < kernel[2]; kw++) out.push([kd, kh, kw])
  return out
}

function tapIndex(kernel: V3, k: V3): number {
  return (k[0] * kernel[1] + k[1]) * kernel[2] + k[2]
}

/** y `[B, OD, OH, OW, CO]` = conv3d(x, w) (+ bias). */
export function conv3dForward(
  x: Float32Array,
  w: Float32Array,
  g: ConvGeometry,
  bias?: Float32Array | null,
): Float32Array {
  return withArena((rt) => {
    const [OD, OH, OW] = g.out
    const ci = g.inChannels
    const co = g.outChannels
    const xp = rt.put(x)
    const wp = rt.put(w)
    const ts = taps(g.kernel)
    const b = packB(
      rt,
      wp,
      ts.map((_, t) => t * ci * co),
      ci,
      co,
      co,
      1,
    )
    const n = g.batch * OD * OH * OW * co
    const y = rt.alloc(n * 4)
    runIConv(rt, {
      batch: g.batch,
      grid: g.out,
      out: y,
      outDims: g.out,
      n: co,
      first: [0, 0, 0],
      step: [1, 1, 1],
      a: xp,
      aDims: g.in,
      kc: ci,
      alpha: g.stride,
      beta: ts.map((k) => [k[0] - g.padFront[0], k[1] - g.padFront[1], k[2] - g.padFront[2]]),
      b,
      bias: bias ? rt.put(bias) : 0,
    })
    return rt.read(y, n)
  })
}

/** dx `[B, D, H, W, CI]` of conv3d given dy `[B, OD, OH, OW, CO]` and the filter. */
export function conv3dInputGrad(dy: Float32Array, w: Float32Array, g: ConvGeometry): Float32Array {
  return withArena((rt) => {
    const ci = g.inChannels
    const co = g.outChannels
    const s = g.stride
    const dyp = rt.put(dy)
    const wp = rt.put(w)
    const n = g.batch * g.in[0] * g.in[1] * g.in[2] * ci
    const dx = rt.alloc(n * 4)
    let covered = 0
    const classes = taps(s)
    const jobs: (() => void)[] = []
    for (const c of classes) {
      const first = [0, 0, 0] as V3
      const grid = [0, 0, 0] as V3
      const perAxis: number[][] = [[], [], []]
      for (let ax = 0; ax < 3; ax++) {
        const f = (((c[ax]! - g.padFront[ax]!) % s[ax]!) + s[ax]!) % s[ax]!
        first[ax] = f
        grid[ax] = f < g.in[ax]! ? Math.ceil((g.in[ax]! - f) / s[ax]!) : 0
        for (let k = 0; k < g.kernel[ax]!; k++) if (k % s[ax]! === c[ax]) perAxis[ax]!.push(k)
      }
      const ks: V3[] = []
      for (const kd of perAxis[0]!)
        for (const kh of perAxis[1]!) for (const kw of perAxis[2]!) ks.push([kd, kh, kw])
      if (ks.length === 0 || grid.some((v) => v === 0)) continue
      covered += grid[0] * grid[1] * grid[2]
      jobs.push(() => {
        const mark = rt.mark()
        const b = packB(
          rt,
          wp,
          ks.map((k) => tapIndex(g.kernel, k) * ci * co),
          co,
          ci,
          1,
          co,
        )
        runIConv(rt, {
          batch: g.batch,
          grid,
          out: dx,
          outDims: g.in,
          n: ci,
          first,
          step: s,
          a: dyp,
          aDims: g.out,
          kc: co,
          alpha: [1, 1, 1],
          beta: ks.map((k) =>
            [0, 1, 2].map((ax) => (first[ax]! + g.padFront[ax]! - k[ax]!) / s[ax]!),
          ),
          b,
        })
        rt.reset(mark)
      })
    }
    // voxels that no tap reaches (e.g. a 1×1×1 kernel at stride 2) get a zero gradient
    if (covered < g.in[0] * g.in[1] * g.in[2]) rt.F32.fill(0, dx >> 2, (dx >> 2) + n)
    for (const job of jobs) job()
    return rt.read(dx, n)
  })
}

/** dW `[KD, KH, KW, CI, CO]` of conv3d given x and dy. */
export function conv3dFilterGrad(x: Float32Array, dy: Float32Array, g: ConvGeometry): Float32Array {
  return withArena((rt) =>
    runWGrad(rt, {
      batch: g.batch,
      grid: g.out,
      p: rt.put(x),
      pDims: g.in,
      pc: g.inChannels,
      alpha: g.stride,
      beta: taps(g.kernel).map((k) => [0, 1, 2].map((ax) => k[ax]! - g.padFront[ax]!)),
      q: rt.put(dy),
      qc: g.outChannels,
    }),
  )
}

/** Geometry of a 2×2×2 stride-2 transposed convolution: x `[B, D, H, W, CI]` → `[B, 2D, 2H, 2W, CO]`. */
export interface ConvT2Geometry {
  batch: number
  in: V3
  inChannels: number
  outChannels: number
}

const T2 = taps([2, 2, 2])

function doubled(v: V3): V3 {
  return [2 * v[0], 2 * v[1], 2 * v[2]]
}

/** y = conv3dTranspose(x, w [2,2,2,CO,CI], stride 2) (+ bias). */
export function convT2Forward(
  x: Float32Array,
  w: Float32Array,
  g: ConvT2Geometry,
  bias?: Float32Array | null,
): Float32Array {
  return withArena((rt) => {
    const ci = g.inChannels
    const co = g.outChannels
    const xp = rt.put(x)
    const wp = rt.put(w)
    const od = doubled(g.in)
    const n = g.batch * od[0] * od[1] * od[2] * co
    const y = rt.alloc(n * 4)
    const bp = bias ? rt.put(bias) : 0
    for (const k of T2) {
      const mark = rt.mark()
      const b = packB(rt, wp, [tapIndex([2, 2, 2], k) * co * ci], ci, co, 1, ci)
      runIConv(rt, {
        batch: g.batch,
        grid: g.in,
        out: y,
        outDims: od,
        n: co,
        first: k,
        step: [2, 2, 2],
        a: xp,
        aDims: g.in,
        kc: ci,
        alpha: [1, 1, 1],
        beta: [[0, 0, 0]],
        b,
        bias: bp,
      })
      rt.reset(mark)
    }
    return rt.read(y, n)
  })
}

/** dx `[B, D, H, W, CI]` of the 2×2×2 stride-2 transposed convolution. */
export function convT2InputGrad(
  dy: Float32Array,
  w: Float32Array,
  g: ConvT2Geometry,
): Float32Array {
  return withArena((rt) => {
    const ci = g.inChannels
    const co = g.outChannels
    const dyp = rt.put(dy)
    const wp = rt.put(w)
    const b = packB(
      rt,
      wp,
      T2.map((_, t) => t * co * ci),
      co,
      ci,
      ci,
      1,
    )
    const n = g.batch * g.in[0] * g.in[1] * g.in[2] * ci
    const dx = rt.alloc(n * 4)
    runIConv(rt, {
      batch: g.batch,
      grid: g.in,
      out: dx,
      outDims: g.in,
      n: ci,
      first: [0, 0, 0],
      step: [1, 1, 1],
      a: dyp,
      aDims: doubled(g.in),
      kc: co,
      alpha: [2, 2, 2],
      beta: T2,
      b,
    })
    return rt.read(dx, n)
  })
}

/** dW `[2, 2, 2, CO, CI]` of the 2×2×2 stride-2 transposed convolution. */
export function convT2FilterGrad(
  x: Float32Array,
  dy: Float32Array,
  g: ConvT2Geometry,
): Float32Array {
  return withArena((rt) =>
    runWGrad(rt, {
      batch: g.batch,
      grid: g.in,
      p: rt.put(dy),
      pDims: doubled(g.in),
      pc: g.outChannels,
      alpha: [2, 2, 2],
      beta: T2,
      q: rt.put(x),
      qc: g.inChannels,
    }),
  )
}
