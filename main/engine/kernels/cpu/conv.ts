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
import {
  MAX_TASKS,
  withArena,
  type CpuRuntime,
  type Ptr,
  PARALLEL_MACS,
  PARALLEL_ELEMENTS,
} from './runtime'

export type V3 = [number, number, number]

const OP_ICONV = 1
const OP_WGRAD = 2
const OP_WREDUCE = 3
/** Grid points per filter-gradient chunk (fixed by the shape, never by the thread count). */
const WCHUNK = 2048
const WCHUNK_MAX = 8192
/** Floats of one filter-gradient strip row (kernels.c WSTRIP): taps per group × channels. */
const WSTRIP = 1024

/** Output channels per register block: 8 (tile of 4 rows) or 4 (tile of 8 rows), whichever wastes less. */
function blockWidth(n: number): 4 | 8 {
  return n % 8 === 0 || n % 8 > 4 ? 8 : 4
}

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

/** A tensor copied into the arena with zero padding: coordinate c is stored at c + lo. */
interface Padded {
  ptr: Ptr
  /** Padded spatial size. */
  dims: V3
  lo: V3
  channels: number
}

/** Padding so that every coordinate alpha·j + beta (j < grid, any beta of any list) is stored. */
function paddingFor(
  dims: V3,
  uses: { grid: V3; alpha: V3; beta: number[][] }[],
): { lo: V3; size: V3 } {
  const lo: V3 = [0, 0, 0]
  const size: V3 = [0, 0, 0]
  for (let ax = 0; ax < 3; ax++) {
    let min = 0
    let max = dims[ax]! - 1
    for (const u of uses) {
      if (u.grid[ax] === 0) continue
      for (const b of u.beta) {
        min = Math.min(min, b[ax]!)
        max = Math.max(max, u.alpha[ax]! * (u.grid[ax]! - 1) + b[ax]!)
      }
    }
    lo[ax] = -min
    size[ax] = max + 1 - min
  }
  return { lo, size }
}

/** Copy `x [batch, dims, c]` into the arena, zero-padded (`lo` before, up to `size` per axis). */
function putPadded(
  rt: CpuRuntime,
  x: Float32Array,
  batch: number,
  dims: V3,
  c: number,
  lo: V3,
  size: V3,
): Padded {
  // slack after the end: a tile reads up to 8 points past a row's end (values it then drops)
  const slack = 16 * c + 64
  const total = batch * size[0] * size[1] * size[2] * c
  if (lo.every((v) => v === 0) && size.every((v, i) => v === dims[i])) {
    const ptr = rt.alloc((total + slack) * 4)
    rt.F32.set(x, ptr >> 2)
    return { ptr, dims: size, lo, channels: c }
  }
  const ptr = rt.zeros(total + slack)
  const F = rt.F32
  const row = dims[2] * c
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < dims[0]; d++) {
      for (let h = 0; h < dims[1]; h++) {
        const src = ((b * dims[0] + d) * dims[1] + h) * row
        const dst = (((b * size[0] + d + lo[0]) * size[1] + h + lo[1]) * size[2] + lo[2]) * c
        F.set(x.subarray(src, src + row), (ptr >> 2) + dst)
      }
    }
  }
  return { ptr, dims: size, lo, channels: c }
}

interface IConvJob {
  batch: number
  grid: V3
  out: Ptr
  outDims: V3
  n: number
  first: V3
  step: V3
  /** Output taps: offsets added to the output coordinate (default one, [0, 0, 0]). */
  obeta?: number[][]
  /** The input, padded by {@link putPadded} for this grid, alpha and beta. */
  a: Padded
  alpha: V3
  /** Per tap: the A-coordinate offsets [d, h, w]. */
  beta: number[][]
  /** B packed by {@link packB} with the same `nr` (one pack per output tap, concatenated). */
  b: Ptr
  nr: 4 | 8
  bias?: Ptr
  accumulate?: boolean
}

/** Per-tap offsets (in floats) of coordinate offsets `beta` in a padded tensor. */
function tapOffsets(a: Padded, beta: number[][]): number[] {
  return beta.map((b) => ((b[0]! * a.dims[1] + b[1]!) * a.dims[2] + b[2]!) * a.channels)
}

/** Split an indirect GEMM of `M` grid points × `nblocks` output blocks into tasks. */
function iconvTiles(rt: CpuRuntime, M: number, nblocks: number, macsPerPoint: number, mr: number) {
  const work = M * macsPerPoint
  const threads = rt.threads
  if (threads <= 1 || work < PARALLEL_MACS)
    return { rows: roundUp(Math.max(M, 1), mr), nb: nblocks }
  // enough tasks for load balancing on a shared machine, each still a few hundred µs of work
  const want = Math.min(Math.max(Math.ceil(work / (1 << 20)), 4 * threads), 32 * threads)
  let nb = nblocks
  let rows = roundUp(Math.ceil(M / want), mr)
  if (Math.ceil(M / rows) < 4 * threads && nblocks > 1) {
    // few grid points (deep levels): split the output channels as well
    nb = Math.max(1, Math.floor(nblocks / Math.ceil((4 * threads) / Math.ceil(M / rows))))
  }
  rows = Math.max(rows, roundUp(Math.ceil(M / Math.floor(MAX_TASKS / Math.ceil(nblocks / nb))), mr))
  return { rows, nb }
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m
}

/** Write the descriptor of an indirect-conv job into the arena; null when it has no work. */
function iconvJob(rt: CpuRuntime, j: IConvJob): { job: Ptr; ntasks: number } | null {
  const T = j.beta.length
  const M = j.batch * j.grid[0] * j.grid[1] * j.grid[2]
  if (M === 0 || T === 0) return null
  const obeta = j.obeta ?? [[0, 0, 0]]
  const kc = j.a.channels
  const mr = j.nr === 8 ? 4 : 8
  const nblocks = Math.ceil(j.n / j.nr) * obeta.length
  const { rows, nb } = iconvTiles(rt, M, nblocks, T * kc * j.n * obeta.length, mr)
  const offPtr = rt.putInt(tapOffsets(j.a, j.beta))
  const obetaPtr = rt.putInt(obeta.flat())
  const job = rt.job(OP_ICONV, [
    j.batch,
    ...j.grid,
    j.out,
    ...j.outDims,
    j.n,
    ...j.first,
    ...j.step,
    obeta.length,
    obetaPtr,
    j.a.ptr,
    ...j.a.dims,
    kc,
    ...j.alpha,
    ...j.a.lo,
    T,
    offPtr,
    j.b,
    rows,
    nb,
    j.bias ?? 0,
    j.accumulate ? 1 : 0,
    j.nr,
  ])
  return { job, ntasks: Math.ceil(M / rows) * Math.ceil(nblocks / nb) }
}

/** Run independent indirect-conv jobs as one parallel job. */
function runIConvs(rt: CpuRuntime, jobs: IConvJob[]): void {
  const built = jobs.map((j) => iconvJob(rt, j)).filter((j) => j !== null)
  const t0 = performance.now()
  rt.runMany(built)
  if (DETAIL) {
    const j = jobs[0]!
    const key = `iconv kc${j.a.channels} n${j.n} T${j.beta.length} ×${jobs.length} o${(j.obeta ?? [0]).length} M${j.batch * j.grid[0] * j.grid[1] * j.grid[2]} a${j.alpha.join('')}`
    const d = (DETAIL[key] ??= { calls: 0, ms: 0, gflop: 0 })
    d.calls++
    d.ms += performance.now() - t0
    for (const x of jobs) {
      const M = x.batch * x.grid[0] * x.grid[1] * x.grid[2]
      d.gflop += (2 * M * x.beta.length * x.a.channels * x.n * (x.obeta ?? [0]).length) / 1e9
    }
  }
}

function runIConv(rt: CpuRuntime, j: IConvJob): void {
  runIConvs(rt, [j])
}

/** Per-shape timings when DSD_CPU_STATS=detail (profiling aid). */
export const DETAIL: Record<string, { calls: number; ms: number; gflop: number }> | null =
  process.env.DSD_CPU_STATS === 'detail' ? {} : null

/**
 * Pack `T` taps of a `K × N` matrix (element (t, k, n) at `toff[t] + k·sk + n·sn`) into
 * `[ceil(N / nr)][T][K][nr]` blocks for the micro-kernels; `groups` packs several such
 * matrices back to back (one per output tap), each with its own tap offsets.
 */
function packB(
  rt: CpuRuntime,
  src: Ptr,
  groups: number[][],
  K: number,
  N: number,
  sk: number,
  sn: number,
  nr: 4 | 8,
): Ptr {
  const T = groups[0]!.length
  const per = Math.ceil(N / nr) * T * K * nr
  const dst = rt.alloc(per * groups.length * 4)
  groups.forEach((toff, i) => {
    const offs = rt.putInt(toff)
    rt.exports.pack_b(dst + i * per * 4, src, T, offs, K, N, sk, sn, nr)
  })
  return dst
}

interface WGradJob {
  batch: number
  grid: V3
  /** P as a plain array (padded here for the grid, alpha and beta). */
  p: Float32Array
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
  if (j.pc > WSTRIP)
    throw new Error(`cpu kernels: filter gradient with ${j.pc} input channels exceeds ${WSTRIP}`)
  // Everything below depends on the shape only, so the sums are the same for any thread count.
  let chunk = Math.min(WCHUNK, M)
  let chunks = Math.ceil(M / chunk)
  let group = Math.max(1, Math.min(T, Math.floor(WSTRIP / j.pc)))
  if (chunks < 8) group = Math.max(1, Math.min(group, Math.ceil(T / Math.ceil(8 / chunks))))
  let ngroups = Math.ceil(T / group)
  if (chunks * ngroups > MAX_TASKS) {
    chunk = Math.min(WCHUNK_MAX, M)
    chunks = Math.ceil(M / chunk)
  }
  if (chunks * ngroups > MAX_TASKS) {
    group = Math.max(group, Math.ceil(T / Math.floor(MAX_TASKS / chunks)))
    ngroups = Math.ceil(T / group)
  }
  if (chunks * ngroups > MAX_TASKS)
    throw new Error(`cpu kernels: filter gradient too large (${M} points × ${T} taps)`)
  const nr = blockWidth(j.qc)
  const mr = 4 // rows per block (kernels.c wgrad_task)
  const rp = roundUp(group * j.pc, mr)
  const qcp = roundUp(j.qc, nr)
  const partial = rt.alloc(chunks * ngroups * rp * qcp * 4)
  const { lo, size } = paddingFor(j.pDims, [j])
  const P = putPadded(rt, j.p, j.batch, j.pDims, j.pc, lo, size)
  const offPtr = rt.putInt(tapOffsets(P, j.beta))
  const t0 = performance.now()
  rt.run(
    OP_WGRAD,
    [
      j.batch,
      ...j.grid,
      P.ptr,
      ...P.dims,
      j.pc,
      ...j.alpha,
      ...P.lo,
      T,
      offPtr,
      j.q,
      j.qc,
      partial,
      chunk,
      group,
      nr,
    ],
    chunks * ngroups,
    M * T * j.pc * j.qc >= PARALLEL_MACS,
  )
  if (DETAIL) {
    const key = `wgrad pc${j.pc} qc${j.qc} T${T} M${M}`
    const d = (DETAIL[key] ??= { calls: 0, ms: 0, gflop: 0 })
    d.calls++
    d.ms += performance.now() - t0
    d.gflop += (2 * M * T * j.pc * j.qc) / 1e9
  }
  const dst = rt.alloc(out.length * 4)
  const rowsTotal = T * j.pc
  const small = chunks * rowsTotal * j.qc < 1 << 16
  const rowsPerTask = small ? rowsTotal : Math.max(1, Math.ceil(rowsTotal / (4 * rt.threads)))
  rt.run(
    OP_WREDUCE,
    [partial, dst, chunks, T, j.pc, j.qc, rowsPerTask, group, rp, qcp],
    Math.ceil(rowsTotal / rowsPerTask),
    !small,
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
    const ts = taps(g.kernel)
    const use = {
      grid: g.out,
      alpha: g.stride,
      beta: ts.map((k) => [0, 1, 2].map((ax) => k[ax]! - g.padFront[ax]!)),
    }
    const { lo, size } = paddingFor(g.in, [use])
    const a = putPadded(rt, x, g.batch, g.in, ci, lo, size)
    const wp = rt.put(w)
    const nr = blockWidth(co)
    const b = packB(rt, wp, [ts.map((_, t) => t * ci * co)], ci, co, co, 1, nr)
    const n = g.batch * OD * OH * OW * co
    const y = rt.alloc(n * 4)
    runIConv(rt, {
      batch: g.batch,
      out: y,
      outDims: g.out,
      n: co,
      first: [0, 0, 0],
      step: [1, 1, 1],
      a,
      ...use,
      b,
      nr,
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
    // one job per stride-residue class of dx voxels, each visiting only the taps that hit it
    const classes: { first: V3; grid: V3; ks: V3[]; beta: number[][] }[] = []
    let covered = 0
    for (const c of taps(s)) {
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
      const beta = ks.map((k) =>
        [0, 1, 2].map((ax) => (first[ax]! + g.padFront[ax]! - k[ax]!) / s[ax]!),
      )
      classes.push({ first, grid, ks, beta })
    }
    const { lo, size } = paddingFor(
      g.out,
      classes.map((c) => ({ grid: c.grid, alpha: [1, 1, 1] as V3, beta: c.beta })),
    )
    const a = putPadded(rt, dy, g.batch, g.out, co, lo, size)
    const wp = rt.put(w)
    const n = g.batch * g.in[0] * g.in[1] * g.in[2] * ci
    const dx = rt.alloc(n * 4)
    // voxels that no tap reaches (e.g. a 1×1×1 kernel at stride 2) get a zero gradient
    if (covered < g.in[0] * g.in[1] * g.in[2]) rt.F32.fill(0, dx >> 2, (dx >> 2) + n)
    const nr = blockWidth(ci)
    // the classes write disjoint voxels: one parallel job for all of them
    runIConvs(
      rt,
      classes.map((c) => ({
        batch: g.batch,
        grid: c.grid,
        out: dx,
        outDims: g.in,
        n: ci,
        first: c.first,
        step: s,
        a,
        alpha: [1, 1, 1] as V3,
        beta: c.beta,
        b: packB(rt, wp, [c.ks.map((k) => tapIndex(g.kernel, k) * ci * co)], co, ci, 1, co, nr),
        nr,
      })),
    )
    return rt.read(dx, n)
  })
}

/** dW `[KD, KH, KW, CI, CO]` of conv3d given x and dy. */
export function conv3dFilterGrad(x: Float32Array, dy: Float32Array, g: ConvGeometry): Float32Array {
  return withArena((rt) =>
    runWGrad(rt, {
      batch: g.batch,
      grid: g.out,
      p: x,
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
    const a = putPadded(rt, x, g.batch, g.in, ci, [0, 0, 0], g.in)
    const wp = rt.put(w)
    const od = doubled(g.in)
    const n = g.batch * od[0] * od[1] * od[2] * co
    const y = rt.alloc(n * 4)
    const nr = blockWidth(co)
    // one job: each input voxel's tile writes all eight output taps
    const b = packB(
      rt,
      wp,
      T2.map((k) => [tapIndex([2, 2, 2], k) * co * ci]),
      ci,
      co,
      1,
      ci,
      nr,
    )
    runIConv(rt, {
      batch: g.batch,
      grid: g.in,
      out: y,
      outDims: od,
      n: co,
      first: [0, 0, 0],
      step: [2, 2, 2],
      obeta: T2,
      a,
      alpha: [1, 1, 1],
      beta: [[0, 0, 0]],
      b,
      nr,
      bias: bias ? rt.put(bias) : 0,
    })
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
    const a = putPadded(rt, dy, g.batch, doubled(g.in), co, [0, 0, 0], doubled(g.in))
    const wp = rt.put(w)
    const nr = blockWidth(ci)
    const b = packB(rt, wp, [T2.map((_, t) => t * co * ci)], co, ci, ci, 1, nr)
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
      a,
      alpha: [2, 2, 2],
      beta: T2,
      b,
      nr,
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
      p: dy,
      pDims: doubled(g.in),
      pc: g.outChannels,
      alpha: [2, 2, 2],
      beta: T2,
      q: rt.put(x),
      qc: g.inChannels,
    }),
  )
}

const OP_COLSUM = 33
const COLSUM_CHUNK = 1024

/** Column sums of `q [rows, c]` (a bias gradient): float32 within chunks of rows, float64 across, in order. */
export function columnSumsWasm(q: Float32Array, c: number): Float32Array {
  const rows = q.length / c
  return withArena((rt) => {
    const chunks = Math.ceil(rows / COLSUM_CHUNK)
    const partial = rt.alloc(chunks * c * 8)
    rt.run(
      OP_COLSUM,
      [rt.put(q), rows, c, COLSUM_CHUNK, partial],
      chunks,
      q.length >= PARALLEL_ELEMENTS,
    )
    const P = rt.f64(partial, chunks * c)
    const acc = new Float64Array(c)
    for (let k = 0; k < chunks; k++) for (let j = 0; j < c; j++) acc[j]! += P[k * c + j]!
    return Float32Array.from(acc)
  })
}
