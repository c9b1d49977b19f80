/**
 * Workgroup-memory tiled implicit-GEMM convolution kernels for discrete GPUs (the default on
 * hardware adapters; `DSD_WEBGPU_CONV=tiled` forces them anywhere, which is how the tests run
 * them on lavapipe).
 *
 * One workgroup computes a BM × BN block of the GEMM; the reduction runs in chunks of BK: the
 * A block (BM × BK, gathered from the input volume through the implicit im2col mapping, zero
 * outside the volume) and the B block (BK × BN) are staged in workgroup memory, then every
 * invocation accumulates a TM × TN register tile. Global loads are arranged so that
 * consecutive invocations read consecutive addresses (the channel axis is innermost in
 * channels-last tensors): along k for the forward and input-gradient A blocks (k = (tap,
 * channel)), along m for the filter-gradient A block (m = (tap, channel)), along n for every
 * B block.
 *
 * The block and register-tile shapes come from a named tile table ({@link TILE_TABLES},
 * chosen with `DSD_CONV_TILE=<name>` or {@link setConvTile}; `base` is the default), so that a
 * GPU run can sweep them. Two layouts:
 * - scalar (`vec: false`): register tiles interleaved (rows ty + i·TY, columns tx + j·TX), so
 *   a warp reads consecutive workgroup-memory words of B and one broadcast word of A per
 *   step; blocks padded by one word so that k-fastest stores do not hit one bank;
 * - vec4 (`vec: true`, TM and TN multiples of 4): every invocation owns TM consecutive rows and
 *   TN consecutive columns and reads them from workgroup memory as vec4s (a quarter of the
 *   load instructions, which bound the scalar layout), and every loader writes whole vec4s
 *   (4 consecutive rows or columns at one k), so no two invocations write parts of one vector.
 *
 * With `webgpuPrecision() === 'f16'` (shader-f16) the blocks are stored as f16 in workgroup
 * memory (operands rounded to half precision, half the workgroup memory and its traffic);
 * products and sums stay f32, as do all tensors in global memory.
 *
 * Filter gradient: split-K over the output voxels into Z chunks (about `splitK` workgroups in
 * all, partial buffer ≤ 16 M floats), then {@link reducePartials}. Shapes come in a uniform
 * block, so one pipeline serves every layer with the same tile.
 */
import { type ConvGeom } from './conv-geom'
import { GEOM, phaseTable, PHASE_LETS, type Kernel } from './conv-direct'
import { webgpuPrecision } from './mode'
import { bindings, fold, MAIN_ARGS, memo, Params, rep, WG_LINEAR } from './runner'

export interface TiledShape {
  /** Block rows (GEMM M). */
  BM: number
  /** Block columns (GEMM N). */
  BN: number
  /** Register tile rows per invocation. */
  TM: number
  /** Register tile columns per invocation. */
  TN: number
  /** Reduction chunk staged per barrier. */
  BK: number
  /** vec4 workgroup layout (TM, TN multiples of 4). */
  vec: boolean
}

/** Invocations per workgroup of a shape. */
export function threadsOf(sh: TiledShape): number {
  return (sh.BM / sh.TM) * (sh.BN / sh.TN)
}

/** A named choice of tile shapes per GEMM width N, and the filter gradient's split-K target. */
export interface TileTable {
  name: string
  describe: string
  /**
   * Tile for a GEMM whose N (output channels; input channels for the input gradient) is `n`;
   * `f16`: blocks stored as f16 (half the workgroup memory, so BK = 32 fits more blocks).
   */
  shape(n: number, f16: boolean): TiledShape
  /** Workgroups the filter-gradient split-K aims for (an H200 has 132 SMs). */
  splitK: number
}

const S = (BM: number, BN: number, TM: number, TN: number, BK = 16, vec = false): TiledShape => ({
  BM,
  BN,
  TM,
  TN,
  BK,
  vec,
})

/** Today's default: scalar layout, BK = 16, 256 invocations, BM = 128. */
function baseShape(n: number): TiledShape {
  if (n >= 128) return S(128, 128, 8, 8)
  if (n >= 64) return S(128, 64, 4, 8)
  if (n >= 32) return S(128, 32, 4, 4)
  if (n >= 16) return S(128, 16, 2, 4)
  return S(128, 8, 1, 4)
}

/** Workgroup memory WebGPU guarantees (maxComputeWorkgroupStorageSize's default). */
const WG_BYTES = 32768

/** Bytes of the A and B blocks of a shape in workgroup memory (padding included). */
export function blockBytes(sh: TiledShape, f16: boolean): number {
  return sh.BK * (sh.BM + sh.BN + 8) * (f16 ? 2 : 4)
}

/** Gathered A elements per invocation per chunk above which BK stays 16. */
const MAX_A_SLOTS = 16

/**
 * `sh` with chunk BK, or 16 where the blocks would exceed {@link WG_BYTES} or an invocation
 * would gather more than {@link MAX_A_SLOTS} A elements per chunk (each keeps its own im2col
 * index state in registers; lavapipe's LLVM also takes minutes over such kernels).
 */
function withBK(sh: TiledShape, BK: number, f16: boolean): TiledShape {
  const big = { ...sh, BK }
  const tooBig = blockBytes(big, f16) > WG_BYTES || (sh.BM * BK) / threadsOf(sh) > MAX_A_SLOTS
  return { ...sh, BK: tooBig ? 16 : BK }
}

/** `base` with chunk BK (16 for blocks too large for BK = 32). */
function baseK(n: number, BK: number, f16: boolean): TiledShape {
  return withBK(baseShape(n), BK, f16)
}

/**
 * vec4 layout, same blocks as `base` for N ≥ 32. Narrower GEMMs keep the scalar `base`
 * tiles: a vec4 register tile there means few invocations per block and 16–32 gathered A
 * elements per invocation per chunk (slow to load, and minutes of LLVM time on lavapipe).
 */
function v4Shape(n: number, BK: number, f16: boolean): TiledShape {
  if (n >= 128) return withBK(S(128, 128, 8, 8, BK, true), BK, f16)
  if (n >= 64) return withBK(S(128, 64, 4, 8, BK, true), BK, f16)
  if (n >= 32) return withBK(S(128, 32, 4, 4, BK, true), BK, f16)
  return baseK(n, BK, f16)
}

/** vec4 layout with 8 × 8 (N ≥ 64, 128 invocations) and 8 × 4 (N = 32) register tiles. */
function v4bigShape(n: number, BK: number, f16: boolean): TiledShape {
  if (n >= 128) return withBK(S(128, 128, 8, 8, BK, true), BK, f16)
  if (n >= 64) return withBK(S(128, 64, 8, 8, BK, true), BK, f16)
  if (n >= 32) return withBK(S(256, 32, 8, 4, BK, true), BK, f16)
  return baseK(n, BK, f16)
}

/**
 * vec4 layout with BM = 64: twice the workgroups of `v4` where the voxel axis is short (the
 * deep layers: 2 × 6³ = 432 rows give 4 row blocks of 128).
 */
function m64Shape(n: number, f16: boolean): TiledShape {
  if (n >= 128) return withBK(S(64, 128, 4, 8, 16, true), 16, f16)
  if (n >= 64) return withBK(S(64, 64, 4, 4, 16, true), 16, f16)
  if (n >= 32) return withBK(S(64, 32, 4, 4, 16, true), 16, f16) // 128 invocations
  return baseK(n, 16, f16)
}

export const TILE_TABLES: Readonly<Record<string, TileTable>> = {
  base: {
    name: 'base',
    describe: 'scalar, BK 16, 256 invocations (128×128 8×8 … 128×8 1×4); split-K 2048',
    shape: baseShape,
    splitK: 2048,
  },
  k32: {
    name: 'k32',
    describe: 'base with BK 32 (16 where 32 KiB of workgroup memory is too little); split-K 1024',
    shape: (n, f16) => baseK(n, 32, f16),
    splitK: 1024,
  },
  v4: {
    name: 'v4',
    describe: 'vec4 workgroup layout for N ≥ 32 (base below), BK 16',
    shape: (n, f16) => v4Shape(n, 16, f16),
    splitK: 2048,
  },
  v4k32: {
    name: 'v4k32',
    describe: 'vec4 layout for N ≥ 32, BK 32 (16 where it does not fit); split-K 1024',
    shape: (n, f16) => v4Shape(n, 32, f16),
    splitK: 1024,
  },
  m64: {
    name: 'm64',
    describe: 'vec4 layout with 64-row blocks (64×128 4×8, 64×64 4×4, 64×32 4×4), base below',
    shape: (n, f16) => m64Shape(n, f16),
    splitK: 2048,
  },
  v4big: {
    name: 'v4big',
    describe:
      'vec4, 8×8 tiles for N ≥ 64 (128 invocations), 256×32 8×4 for N = 32 (base below), BK 16',
    shape: (n, f16) => v4bigShape(n, 16, f16),
    splitK: 2048,
  },
}

export const DEFAULT_TILE = 'base'

let forcedTile: string | null = null

/** The tile table in use: {@link setConvTile}, else `DSD_CONV_TILE`, else `base`. */
export function convTile(): TileTable {
  const name =
    forcedTile ??
    (typeof process !== 'undefined' ? process.env?.DSD_CONV_TILE?.trim() : undefined) ??
    DEFAULT_TILE
  const t = TILE_TABLES[name || DEFAULT_TILE]
  if (!t) {
    throw new Error(
      `DSD_CONV_TILE=${name} is not a tile table; use one of ${Object.keys(TILE_TABLES).join(', ')}`,
    )
  }
  return t
}

/** Force a tile table by name (`null`: back to `DSD_CONV_TILE`/the default). Returns the previous one. */
export function setConvTile(name: string | null): string | null {
  if (name !== null && !TILE_TABLES[name]) {
    throw new Error(
      `conv tile table ${name} does not exist (${Object.keys(TILE_TABLES).join(', ')})`,
    )
  }
  const prev = forcedTile
  forcedTile = name
  return prev
}

/** Back-compat for callers that take the default split-K target. */
export const TILED_SPLITK_TARGET = TILE_TABLES.base!.splitK

/** The tile shape for GEMM width `n` under the active table (exported for tests and logs). */
export function tiledShape(
  n: number,
  table: TileTable = convTile(),
  f16 = webgpuPrecision() === 'f16',
): TiledShape {
  return table.shape(n, f16)
}

function shapeKey(sh: TiledShape, f16: boolean): string {
  return `${sh.BM}x${sh.BN}/${sh.TM}x${sh.TN}/k${sh.BK}/${sh.vec ? 'v' : 's'}/${f16 ? 'h' : 'f'}`
}

interface GemmParts {
  params: Params
  /** Start of `main` after the params: must define m0, n0, MM, NN (i32) and may return early. */
  setup: string
  /** A block layout: `k` fastest (forward, input gradient) or `m` fastest (filter gradient). */
  aMFast: boolean
  /** B block layout: `n` fastest (forward, filter gradient) or `k` fastest (input gradient). */
  bKFast: boolean
  /**
   * Per-invocation code before the K loop (row data of A slot `i`: `mA{i}`, `rowOk{i}`,
   * `ak{i}`; state). `lead(i)`: the first slot of slot i's vector group (same k as slot i).
   */
  pre: (lead: (i: number) => number) => string
  /** Statements loading A[mA{i}, kA] into `aval` (kA < kEnd and the row valid). */
  aLoad: (i: number, lead: (i: number) => number) => string
  /** Statements loading B[kB, nB{i}] into `bval` (kB < kEnd and the column valid). */
  bLoad: (i: number) => string
  /** Code at the end of every K chunk (advance incremental index state by BK). */
  post: (lead: (i: number) => number) => string
  /** Statements storing accumulator `acc` of row `m`, column `n` (both valid). */
  store: string
  /** Reduction range of this workgroup (i32 expressions). */
  kBegin: string
  kEnd: string
}

/** Slots of one operand block: `count` scalar slots per invocation in groups of `V`. */
function slots(
  V: number,
  threads: number,
  rows: number,
  BK: number,
  rowFast: boolean,
  pre: string,
): { n: number; decl: string } {
  const groups = (rows * BK) / V
  const per = Math.ceil(groups / threads)
  const decl = rep(per, (j) => {
    const e = `(t + ${threads * j})`
    const rk = rowFast
      ? `let ${pre}r4_${j} = ${e} % ${rows / V}; let ${pre}k_${j} = ${e} / ${rows / V};`
      : `let ${pre}k_${j} = ${e} % ${BK}; let ${pre}r4_${j} = ${e} / ${BK};`
    return `${rk} let ${pre}on${j} = ${e} < ${groups};`
  })
  return { n: per * V, decl }
}

/** Scalar A (or B) slots per invocation of a shape (what {@link gemm} declares). */
function slotCount(sh: TiledShape, which: 'A' | 'B'): number {
  const V = sh.vec ? 4 : 1
  const rows = which === 'A' ? sh.BM : sh.BN
  return Math.ceil((rows * sh.BK) / V / threadsOf(sh)) * V
}

/**
 * The shared GEMM skeleton. Index decoding of the implicit im2col happens once per invocation
 * and advances incrementally per chunk.
 */
function gemm(sh: TiledShape, f16: boolean, io: string, p: GemmParts): string {
  const { BM, BN, TM, TN, BK, vec } = sh
  const THREADS = threadsOf(sh)
  const TX = BN / TN // invocations along N
  const TY = BM / TM // invocations along M
  if (!Number.isInteger(TX) || !Number.isInteger(TY) || THREADS % BK !== 0 || THREADS > 256) {
    throw new Error('tiled conv: bad tile shape')
  }
  if (vec && (TM % 4 || TN % 4)) throw new Error('tiled conv: vec4 tiles need TM, TN % 4 = 0')
  const V = vec ? 4 : 1
  const h = f16 ? 'f16' : 'f32'
  const elem = vec ? `vec4<${h}>` : h
  // row stride in elements of the block arrays (one element of padding)
  const SA = BM / V + 1
  const SB = BN / V + 1
  const A = slots(V, THREADS, BM, BK, p.aMFast, 'a')
  const B = slots(V, THREADS, BN, BK, !p.bKFast, 'b')
  const lead = (i: number): number => i - (i % V)
  const aSlotDecl = rep(
    A.n,
    (i) =>
      `let ak${i} = ak_${Math.floor(i / V)}; let am${i} = ar4_${Math.floor(i / V)} * ${V} + ${i % V}; let mA${i} = m0 + am${i}; let rowOk${i} = mA${i} < MM;`,
  )
  const bSlotDecl = rep(
    B.n,
    (i) =>
      `let bk${i} = bk_${Math.floor(i / V)}; let nB${i} = n0 + br4_${Math.floor(i / V)} * ${V} + ${i % V};`,
  )
  const pack = (q: string): string => {
    const vals = Array.from({ length: V }, (_, l) => `${q}${l}`)
    if (vec) return `${elem}(${vals.map((v) => (f16 ? `${h}(${v})` : v)).join(', ')})`
    return f16 ? `${h}(${vals[0]})` : vals[0]!
  }
  const aStore = rep(A.n / V, (j) => {
    const body = rep(
      V,
      (l) => {
        const i = j * V + l
        return `var aq${l} = 0.0; if (kA < kEnd && rowOk${i}) { var aval = 0.0; ${p.aLoad(i, lead)} aq${l} = aval; }`
      },
      ' ',
    )
    return `if (aon${j}) { let kA = k0 + ak_${j}; ${body} As[ak_${j} * ${SA} + ar4_${j}] = ${pack('aq')}; }`
  })
  const bStore = rep(B.n / V, (j) => {
    const body = rep(
      V,
      (l) => {
        const i = j * V + l
        return `var bq${l} = 0.0; if (kB < kEnd && nB${i} < NN) { var bval = 0.0; ${p.bLoad(i)} bq${l} = bval; }`
      },
      ' ',
    )
    return `if (bon${j}) { let kB = k0 + bk_${j}; ${body} Bs[bk_${j} * ${SB} + br4_${j}] = ${pack('bq')}; }`
  })
  const cvt = (e: string): string => (f16 ? (vec ? `vec4<f32>(${e})` : `f32(${e})`) : e)
  const step = (q: string): string =>
    vec
      ? `${rep(TM / 4, (i) => `let a${i} = ${cvt(`As[(kk + ${q}) * ${SA} + ty * ${TM / 4} + ${i}]`)};`, ' ')}
      ${rep(TN / 4, (j) => `let b${j} = ${cvt(`Bs[(kk + ${q}) * ${SB} + tx * ${TN / 4} + ${j}]`)};`, ' ')}
      ${rep(TM, (i) => rep(TN, (j) => `c${i}_${j} = fma(a${i >> 2}[${i & 3}], b${j >> 2}[${j & 3}], c${i}_${j});`, ' '))}`
      : `${rep(TM, (i) => `let a${i} = ${cvt(`As[(kk + ${q}) * ${SA} + ty + ${i * TY}]`)};`, ' ')}
      ${rep(TN, (j) => `let b${j} = ${cvt(`Bs[(kk + ${q}) * ${SB} + tx + ${j * TX}]`)};`, ' ')}
      ${rep(TM, (i) => rep(TN, (j) => `c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`, ' '))}`
  const row = (i: number): string => (vec ? `ty * ${TM} + ${i}` : `ty + ${i * TY}`)
  const col = (j: number): string => (vec ? `tx * ${TN} + ${j}` : `tx + ${j * TX}`)
  return `${f16 ? 'enable f16;\n' : ''}
${io}
var<workgroup> As: array<${elem}, ${BK * SA}>;
var<workgroup> Bs: array<${elem}, ${BK * SB}>;
@compute @workgroup_size(${THREADS}) fn main(${MAIN_ARGS}) {
  ${p.params.lets()}
  let t = i32(lid);
  let tx = t % ${TX};
  let ty = t / ${TX};
  ${p.setup}
  ${A.decl}
  ${aSlotDecl}
  ${B.decl}
  ${bSlotDecl}
  ${p.pre(lead)}
  ${rep(TM, (i) => rep(TN, (j) => `var c${i}_${j} = 0.0;`, ' '))}
  let kEnd = ${p.kEnd};
  for (var k0 = ${p.kBegin}; k0 < kEnd; k0 += ${BK}) {
    ${aStore}
    ${bStore}
    ${p.post(lead)}
    workgroupBarrier();
    for (var kk = 0; kk < ${BK}; kk += 4) {
      ${rep(4, (q) => `{\n      ${step(String(q))}\n      }`)}
    }
    workgroupBarrier();
  }
  ${rep(
    TM,
    (i) => `{ let m = m0 + ${row(i)}; if (m < MM) {
    ${rep(TN, (j) => `{ let n = n0 + ${col(j)}; if (n < NN) { let acc = c${i}_${j}; ${p.store} } }`)}
  } }`,
  )}
}`
}

function geomValues(g: ConvGeom): Record<string, number> {
  const [D, H, W] = g.inSize
  const [OD, OH, OW] = g.outSize
  const [KD, KH, KW] = g.k
  const [SD, SH, SW] = g.s
  const [PD, PH, PW] = g.p
  return { B: g.B, D, H, W, CI: g.CI, OD, OH, OW, CO: g.CO, KD, KH, KW, SD, SH, SW, PD, PH, PW }
}

const FWD = new Params([...GEOM, 'M', 'K', 'tilesN', 'tiles'])

/** WGSL: advance a mixed-radix index (digits low → high) by `step`; the last digit is unbounded. */
function advance(step: number | string, digits: [string, string][]): string {
  // digits: [variable, radix]; e.g. [['ci', 'CI'], ['kw', 'KW'], ['kh', 'KH'], ['kd', '']]
  const [first, ...rest] = digits
  let carry = ''
  for (let i = rest.length - 1; i >= 0; i--) {
    const [v, radix] = rest[i]!
    carry = radix ? `${v} += 1; if (${v} == ${radix}) { ${v} = 0; ${carry} }` : `${v} += 1;`
  }
  return `${first![0]} += ${step}; loop { if (${first![0]} < ${first![1]}) { break; } ${first![0]} -= ${first![1]}; ${carry} }`
}

/** Forward: M = B·OD·OH·OW voxels, N = CO, K = taps·CI. Bindings: x, w, [bias], y. */
export function convFwdTiled(g: ConvGeom, bias: boolean, table = convTile()): Kernel {
  const f16 = webgpuPrecision() === 'f16'
  const sh = tiledShape(g.CO, table, f16)
  const M = g.B * g.outSize[0] * g.outSize[1] * g.outSize[2]
  const K = g.k[0] * g.k[1] * g.k[2] * g.CI
  const tilesN = Math.ceil(g.CO / sh.BN)
  const tiles = Math.ceil(M / sh.BM) * tilesN
  const io = bindings(
    [{ name: 'x' }, { name: 'w' }, ...(bias ? [{ name: 'bias' }] : [])],
    [{ name: 'y' }],
    FWD.members(),
  )
  const code = memo(`tfwd/${shapeKey(sh, f16)}/${bias}`, () =>
    gemm(sh, f16, io, {
      params: FWD,
      setup: `let lin = i32(${WG_LINEAR}); if (lin >= tiles) { return; }
  let m0 = (lin / tilesN) * ${sh.BM}; let n0 = (lin % tilesN) * ${sh.BN}; let MM = M; let NN = CO;`,
      aMFast: false,
      bKFast: false,
      // every A slot of an invocation has the same k offset (t % 16): one (ci, kw, kh, kd) state
      pre: () => `${rep(slotCount(sh, 'A'), (i) => `let mv${i} = min(mA${i}, M - 1); let owA${i} = mv${i} % OW * SW - PW; let ohA${i} = (mv${i} / OW) % OH * SH - PH; let odA${i} = (mv${i} / (OW * OH)) % OD * SD - PD; let xbA${i} = mv${i} / (OW * OH * OD) * D;`, '\n  ')}
  var ci = ak0 % CI; var tap = ak0 / CI; var kw = tap % KW; var kh = (tap / KW) % KH; var kd = tap / (KW * KH);`,
      aLoad: (i: number) =>
        `let id = odA${i} + kd; let ih = ohA${i} + kh; let iw = owA${i} + kw;
      if (id >= 0 && id < D && ih >= 0 && ih < H && iw >= 0 && iw < W) { aval = x[(((xbA${i} + id) * H + ih) * W + iw) * CI + ci]; }`,
      bLoad: (i) => `bval = w[kB * CO + nB${i}];`,
      post: () =>
        advance(sh.BK, [
          ['ci', 'CI'],
          ['kw', 'KW'],
          ['kh', 'KH'],
          ['kd', ''],
        ]),
      store: `y[m * CO + n] = acc${bias ? ' + bias[n]' : ''};`,
      kBegin: '0',
      kEnd: 'K',
    }),
  )
  return {
    code,
    dispatch: fold(tiles),
    uniforms: FWD.pack({ ...geomValues(g), M, K, tilesN, tiles }),
  }
}

const DX = new Params([...GEOM, 'tilesN', 'tiles'], 32)

/**
 * Input gradient, per sub-pixel phase (`workgroup_id.z`): M = the phase's input voxels,
 * N = CI, K = (phase taps)·CO. A (dy) and B (w) are both loaded k-fastest (co is innermost in
 * both), so one (co, tw, th, td) state serves every slot. Bindings: dy, w, [bias], dx.
 */
export function convDxTiled(g: ConvGeom, bias: boolean, tileTable = convTile()): Kernel {
  const f16 = webgpuPrecision() === 'f16'
  const sh = tiledShape(g.CI, tileTable, f16)
  const { table, phases, counts } = phaseTable(g)
  const maxM = Math.max(...counts.map(([a, b, c]) => g.B * a! * b! * c!))
  const tilesN = Math.ceil(g.CI / sh.BN)
  const tiles = Math.max(1, Math.ceil(maxM / sh.BM)) * tilesN
  const io = bindings(
    [{ name: 'dy' }, { name: 'w' }, ...(bias ? [{ name: 'bias' }] : [])],
    [{ name: 'dx' }],
    DX.members(),
  )
  const code = memo(`tdx/${shapeKey(sh, f16)}/${bias}`, () =>
    gemm(sh, f16, io, {
      params: DX,
      setup: `let phase = wid.z;
  ${PHASE_LETS}
  let MM = B * ND * NH * NW; let NN = CI;
  let KK = TD * TH * TW * CO;
  let lin = i32(${WG_LINEAR}); if (lin >= tiles) { return; }
  let m0 = (lin / tilesN) * ${sh.BM}; let n0 = (lin % tilesN) * ${sh.BN};
  if (m0 >= MM) { return; }`,
      aMFast: false,
      bKFast: true,
      pre: () => `${rep(slotCount(sh, 'A'), (i) => `let mv${i} = min(mA${i}, max(MM, 1) - 1); let jwA${i} = CW + mv${i} % NW; let jhA${i} = CH + (mv${i} / NW) % NH; let jdA${i} = CD + (mv${i} / (NW * NH)) % ND; let obA${i} = mv${i} / (NW * NH * ND) * OD;`, '\n  ')}
  var co = ak0 % CO; var tp = ak0 / CO; var tw = tp % TW; var th = (tp / TW) % TH; var td = tp / (TW * TH);`,
      aLoad: (i: number) =>
        `let od = jdA${i} - td; let oh = jhA${i} - th; let ow = jwA${i} - tw;
      if (od >= 0 && od < OD && oh >= 0 && oh < OH && ow >= 0 && ow < OW) { aval = dy[(((obA${i} + od) * OH + oh) * OW + ow) * CO + co]; }`,
      bLoad: (i) =>
        `bval = w[((((RD + SD * td) * KH + RH + SH * th) * KW + RW + SW * tw) * CI + nB${i}) * CO + co];`,
      post: () =>
        advance(sh.BK, [
          ['co', 'CO'],
          ['tw', 'TW'],
          ['th', 'TH'],
          ['td', ''],
        ]),
      store: `let jw = m % NW; let jh = (m / NW) % NH; let jd = (m / (NW * NH)) % ND; let bb = m / (NW * NH * ND);
      let o = ((bb * D + ED + SD * jd) * H + EH + SH * jh) * W + EW + SW * jw;
      dx[o * CI + n] = acc${bias ? ' + bias[n]' : ''};`,
      kBegin: '0',
      kEnd: 'KK',
    }),
  )
  return {
    code,
    dispatch: fold(tiles, phases),
    uniforms: DX.pack({ ...geomValues(g), tilesN, tiles }, table),
  }
}

const DW = new Params([...GEOM, 'R', 'V', 'perChunk', 'tilesN'])

/** Split-K plan of the filter gradient: Z chunks of `perChunk` output voxels. */
export function dwSplit(
  g: ConvGeom,
  sh: TiledShape,
  target: number,
): { Z: number; perChunk: number } {
  const R = g.k[0] * g.k[1] * g.k[2] * g.CI
  const V = g.B * g.outSize[0] * g.outSize[1] * g.outSize[2]
  const tiles = Math.ceil(R / sh.BM) * Math.ceil(g.CO / sh.BN)
  const maxZ = Math.max(
    1,
    Math.min(4096, Math.floor(16_777_216 / (R * g.CO)), Math.ceil(V / sh.BK)),
  )
  let Z = Math.max(1, Math.min(maxZ, Math.round(target / tiles)))
  const perChunk = Math.ceil(Math.ceil(V / Z) / sh.BK) * sh.BK
  Z = Math.ceil(V / perChunk)
  return { Z, perChunk }
}

/**
 * Filter gradient: M = taps·CI filter rows, N = CO, K = output voxels split into Z chunks
 * (`workgroup_id.y`). A (x) is loaded m-fastest (consecutive channels); each vector group of
 * slots (one k) keeps one (ow, oh, od, b) voxel state. Writes `part[z, m, n]`. Bindings: x,
 * dy, part.
 */
export function convDwTiled(
  g: ConvGeom,
  table: TileTable = convTile(),
  target = table.splitK,
): Kernel & { Z: number } {
  const f16 = webgpuPrecision() === 'f16'
  const sh = tiledShape(g.CO, table, f16)
  const R = g.k[0] * g.k[1] * g.k[2] * g.CI
  const V = g.B * g.outSize[0] * g.outSize[1] * g.outSize[2]
  const tilesN = Math.ceil(g.CO / sh.BN)
  const tiles = Math.ceil(R / sh.BM) * tilesN
  const { Z, perChunk } = dwSplit(g, sh, target)
  const n = slotCount(sh, 'A')
  const io = bindings([{ name: 'x' }, { name: 'dy' }], [{ name: 'part' }], DW.members())
  const code = memo(`tdw/${shapeKey(sh, f16)}`, () =>
    gemm(sh, f16, io, {
      params: DW,
      setup: `let lin = i32(wid.x); let z = i32(wid.y);
  let m0 = (lin / tilesN) * ${sh.BM}; let n0 = (lin % tilesN) * ${sh.BN}; let MM = R; let NN = CO;`,
      aMFast: true,
      bKFast: false,
      pre: (lead) =>
        rep(
          n,
          (
            i,
          ) => `let rv${i} = min(mA${i}, R - 1); let ciA${i} = rv${i} % CI; let tapA${i} = rv${i} / CI;
  let kdA${i} = tapA${i} / (KH * KW) - PD; let khA${i} = (tapA${i} / KW) % KH - PH; let kwA${i} = tapA${i} % KW - PW;${
    lead(i) === i
      ? `
  let v${i} = z * perChunk + ak${i}; var ow${i} = v${i} % OW; var oh${i} = (v${i} / OW) % OH; var od${i} = (v${i} / (OW * OH)) % OD; var b${i} = v${i} / (OW * OH * OD);`
      : ''
  }`,
          '\n  ',
        ),
      aLoad: (i, lead) => {
        const l = lead(i)
        return `let id = od${l} * SD + kdA${i}; let ih = oh${l} * SH + khA${i}; let iw = ow${l} * SW + kwA${i};
      if (id >= 0 && id < D && ih >= 0 && ih < H && iw >= 0 && iw < W) { aval = x[(((b${l} * D + id) * H + ih) * W + iw) * CI + ciA${i}]; }`
      },
      bLoad: (i) => `bval = dy[kB * CO + nB${i}];`,
      post: (lead) =>
        rep(
          n,
          (i) =>
            lead(i) !== i
              ? ''
              : `{ ${advance(sh.BK, [
                  [`ow${i}`, 'OW'],
                  [`oh${i}`, 'OH'],
                  [`od${i}`, 'OD'],
                  [`b${i}`, ''],
                ])} }`,
          '\n    ',
        ),
      store: `part[(z * R + m) * CO + n] = acc;`,
      kBegin: 'z * perChunk',
      kEnd: 'min((z + 1) * perChunk, V)',
    }),
  )
  if (tiles > 65535 || Z > 65535) throw new Error('conv3d filter gradient: dispatch too large')
  return {
    code,
    dispatch: [tiles, Z, 1],
    uniforms: DW.pack({ ...geomValues(g), R, V, perChunk, tilesN }),
    Z,
  }
}

const RED = new Params(['n4', 'Z', 'groups'])
/** Column vectors per workgroup and z lanes of {@link reducePartials}. */
const RED_COLS = 16
const RED_ZL = 16

/**
 * `out[i] = Σ_z part[z·n + i]`, the split-K reduction of the filter gradient. A workgroup of
 * 16 column lanes × 16 z lanes reads 16 consecutive vec4s (n % 4 = 0) or scalars per z row,
 * each z lane summing every 16th chunk, then the z lanes are summed in workgroup memory: many
 * more loads in flight than one invocation per column walking all Z chunks. Bindings: part,
 * out.
 */
export function reducePartials(n: number, Z: number): Kernel {
  const vec = n % 4 === 0
  const T = vec ? 'vec4<f32>' : 'f32'
  const n4 = vec ? n / 4 : n
  const groups = Math.ceil(n4 / RED_COLS)
  const code = memo(
    `tdw.reduce/${vec}`,
    () => `
${bindings([{ name: 'part', type: T }], [{ name: 'out', type: T }], RED.members())}
var<workgroup> acc: array<${T}, ${RED_COLS * RED_ZL}>;
@compute @workgroup_size(${RED_COLS * RED_ZL}) fn main(${MAIN_ARGS}) {
  ${RED.lets()}
  let g = i32(${WG_LINEAR});
  let c = i32(lid) % ${RED_COLS};
  let zl = i32(lid) / ${RED_COLS};
  let col = g * ${RED_COLS} + c;
  var s = ${T}(0.0);
  if (g < groups && col < n4) {
    var z = zl;
    for (; z + ${RED_ZL} < Z; z += ${2 * RED_ZL}) { s += part[z * n4 + col] + part[(z + ${RED_ZL}) * n4 + col]; }
    if (z < Z) { s += part[z * n4 + col]; }
  }
  acc[lid] = s;
  workgroupBarrier();
  for (var h = ${(RED_COLS * RED_ZL) / 2}u; h >= ${RED_COLS}u; h = h / 2u) {
    if (lid < h) { acc[lid] += acc[lid + h]; }
    workgroupBarrier();
  }
  if (lid < ${RED_COLS}u && g < groups && col < n4) { out[col] = acc[lid]; }
}`,
  )
  return { code, dispatch: fold(groups), uniforms: RED.pack({ n4, Z, groups }) }
}
