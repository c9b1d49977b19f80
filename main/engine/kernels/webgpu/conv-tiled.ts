/**
 * Workgroup-memory tiled implicit-GEMM convolution kernels for discrete GPUs (the default on
 * hardware adapters; `DSD_WEBGPU_CONV=tiled` forces them anywhere, which is how the tests run
 * them on lavapipe).
 *
 * One workgroup of 256 invocations computes a BM × BN block of the GEMM; the reduction runs in
 * chunks of BK = 16: the A block (BM × 16, gathered from the input volume through the
 * implicit im2col mapping, zero outside the volume) and the B block (16 × BN) are staged in
 * workgroup memory, then every invocation accumulates a TM × TN register tile. Global loads
 * are arranged so that consecutive invocations read consecutive addresses (the channel axis
 * is innermost in channels-last tensors): along k for the forward and input-gradient A
 * blocks (k = (tap, channel)), along m for the filter-gradient A block (m = (tap, channel)),
 * along n for every B block.
 *
 * Tile choice by the GEMM's N (output channels; input channels for the input gradient):
 *   N ≥ 128: 128 × 128, 8 × 8 per invocation (16 KiB of workgroup memory)
 *   N ≥ 64:  128 × 64,  4 × 8      N ≥ 32: 128 × 32, 4 × 4
 *   N ≥ 16:  128 × 16,  2 × 4      N < 16: 128 × 8,  1 × 4
 * 128 × 128 × 16 with 8 × 8 per invocation is the known-good SGEMM shape for WebGPU; smaller N
 * keeps BM = 128 so that the voxel dimension (millions of rows) fills the GPU.
 *
 * Filter gradient: split-K over the output voxels into Z chunks (about {@link
 * TILED_SPLITK_TARGET} workgroups in all, partial buffer ≤ 16 M floats), then a reduction.
 * Shapes come in a uniform block, so one pipeline serves every layer with the same tile.
 */
import { type ConvGeom } from './conv-geom'
import { GEOM, phaseTable, PHASE_LETS, type Kernel } from './conv-direct'
import { bindings, fold, memo, Params, rep, WG_LINEAR } from './runner'

const THREADS = 256
const BK = 16

/** Workgroups the filter-gradient split-K aims for (an H200 has 132 SMs). */
export const TILED_SPLITK_TARGET = 2048

export interface TiledShape {
  BM: number
  BN: number
  TM: number
  TN: number
}

export function tiledShape(n: number): TiledShape {
  if (n >= 128) return { BM: 128, BN: 128, TM: 8, TN: 8 }
  if (n >= 64) return { BM: 128, BN: 64, TM: 4, TN: 8 }
  if (n >= 32) return { BM: 128, BN: 32, TM: 4, TN: 4 }
  if (n >= 16) return { BM: 128, BN: 16, TM: 2, TN: 4 }
  return { BM: 128, BN: 8, TM: 1, TN: 4 }
}

interface GemmParts {
  params: Params
  /** Start of `main` after the params: must define m0, n0, MM, NN (i32) and may return early. */
  setup: string
  /** A block layout: `k` fastest (forward, input gradient) or `m` fastest (filter gradient). */
  aMFast: boolean
  /** B block layout: `n` fastest (forward, filter gradient) or `k` fastest (input gradient). */
  bKFast: boolean
  /** Per-invocation code before the K loop (row data of A slot `i`: `mA{i}`, `rowOk{i}`; state). */
  pre: string
  /** Statements loading A[mA{i}, kA] into `aval` (kA < kEnd and the row valid). */
  aLoad: (i: number) => string
  /** Statements loading B[kB, nB{i}] into `bval` (kB < kEnd and the column valid). */
  bLoad: (i: number) => string
  /** Code at the end of every K chunk (advance incremental index state by BK). */
  post: string
  /** Statements storing accumulator `acc` of row `m`, column `n` (both valid). */
  store: string
  /** Reduction range of this workgroup (i32 expressions). */
  kBegin: string
  kEnd: string
}

/**
 * The shared GEMM skeleton. Register tiles are interleaved (rows ty + i·TY, columns
 * tx + j·TX), so a warp reads consecutive workgroup-memory words of the B block and one
 * broadcast word of the A block per step, and stores consecutive output channels; the blocks
 * are padded by one column so the k-fastest stores do not hit one bank. Index decoding of the
 * implicit im2col happens once per invocation and advances incrementally per chunk.
 */
function gemm(sh: TiledShape, io: string, p: GemmParts): string {
  const { BM, BN, TM, TN } = sh
  const TX = BN / TN // invocations along N
  const TY = BM / TM // invocations along M
  if (TX * TY !== THREADS) throw new Error('tiled conv: bad tile shape')
  const SA = BM + 1
  const SB = BN + 1
  const aSlots = Math.ceil((BM * BK) / THREADS)
  const bSlots = Math.ceil((BK * BN) / THREADS)
  return `
${io}
var<workgroup> As: array<f32, ${BK * SA}>;
var<workgroup> Bs: array<f32, ${BK * SB}>;
@compute @workgroup_size(${THREADS}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${p.params.lets()}
  let t = i32(lid);
  let tx = t % ${TX};
  let ty = t / ${TX};
  ${p.setup}
  ${rep(aSlots, (i) => {
    const e = `(t + ${THREADS * i})`
    const mk = p.aMFast
      ? `let am${i} = ${e} % ${BM}; let ak${i} = ${e} / ${BM};`
      : `let ak${i} = ${e} % ${BK}; let am${i} = ${e} / ${BK};`
    return `${mk} let aon${i} = ${e} < ${BM * BK}; let mA${i} = m0 + am${i}; let rowOk${i} = mA${i} < MM;`
  })}
  ${rep(bSlots, (i) => {
    const e = `(t + ${THREADS * i})`
    const nk = p.bKFast
      ? `let bk${i} = ${e} % ${BK}; let bn${i} = ${e} / ${BK};`
      : `let bn${i} = ${e} % ${BN}; let bk${i} = ${e} / ${BN};`
    return `${nk} let bon${i} = ${e} < ${BK * BN}; let nB${i} = n0 + bn${i};`
  })}
  ${p.pre}
  ${rep(TM, (i) => rep(TN, (j) => `var c${i}_${j} = 0.0;`, ' '))}
  let kEnd = ${p.kEnd};
  for (var k0 = ${p.kBegin}; k0 < kEnd; k0 += ${BK}) {
    ${rep(aSlots, (i) => `if (aon${i}) { let kA = k0 + ak${i}; var aval = 0.0; if (kA < kEnd && rowOk${i}) { ${p.aLoad(i)} } As[ak${i} * ${SA} + am${i}] = aval; }`)}
    ${rep(bSlots, (i) => `if (bon${i}) { let kB = k0 + bk${i}; var bval = 0.0; if (kB < kEnd && nB${i} < NN) { ${p.bLoad(i)} } Bs[bk${i} * ${SB} + bn${i}] = bval; }`)}
    ${p.post}
    workgroupBarrier();
    for (var kk = 0; kk < ${BK}; kk += 4) {
      ${rep(
        4,
        (q) => `{
      ${rep(TM, (i) => `let a${i} = As[(kk + ${q}) * ${SA} + ty + ${i * TY}];`, ' ')}
      ${rep(TN, (j) => `let b${j} = Bs[(kk + ${q}) * ${SB} + tx + ${j * TX}];`, ' ')}
      ${rep(TM, (i) => rep(TN, (j) => `c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`, ' '))}
      }`,
      )}
    }
    workgroupBarrier();
  }
  ${rep(
    TM,
    (i) => `{ let m = m0 + ty + ${i * TY}; if (m < MM) {
    ${rep(TN, (j) => `{ let n = n0 + tx + ${j * TX}; if (n < NN) { let acc = c${i}_${j}; ${p.store} } }`)}
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
export function convFwdTiled(g: ConvGeom, bias: boolean): Kernel {
  const sh = tiledShape(g.CO)
  const M = g.B * g.outSize[0] * g.outSize[1] * g.outSize[2]
  const K = g.k[0] * g.k[1] * g.k[2] * g.CI
  const tilesN = Math.ceil(g.CO / sh.BN)
  const tiles = Math.ceil(M / sh.BM) * tilesN
  const aSlots = Math.ceil((sh.BM * BK) / THREADS)
  const io = bindings(
    [{ name: 'x' }, { name: 'w' }, ...(bias ? [{ name: 'bias' }] : [])],
    [{ name: 'y' }],
    FWD.members(),
  )
  const code = memo(`tfwd/${sh.BN}/${bias}`, () =>
    gemm(sh, io, {
      params: FWD,
      setup: `let lin = i32(${WG_LINEAR}); if (lin >= tiles) { return; }
  let m0 = (lin / tilesN) * ${sh.BM}; let n0 = (lin % tilesN) * ${sh.BN}; let MM = M; let NN = CO;`,
      aMFast: false,
      bKFast: false,
      // every A slot of an invocation has the same k offset (t % 16): one (ci, kw, kh, kd) state
      pre: `${rep(aSlots, (i) => `let mv${i} = min(mA${i}, M - 1); let owA${i} = mv${i} % OW * SW - PW; let ohA${i} = (mv${i} / OW) % OH * SH - PH; let odA${i} = (mv${i} / (OW * OH)) % OD * SD - PD; let xbA${i} = mv${i} / (OW * OH * OD) * D;`, '\n  ')}
  var ci = ak0 % CI; var tap = ak0 / CI; var kw = tap % KW; var kh = (tap / KW) % KH; var kd = tap / (KW * KH);`,
      aLoad: (i) =>
        `let id = odA${i} + kd; let ih = ohA${i} + kh; let iw = owA${i} + kw;
      if (id >= 0 && id < D && ih >= 0 && ih < H && iw >= 0 && iw < W) { aval = x[(((xbA${i} + id) * H + ih) * W + iw) * CI + ci]; }`,
      bLoad: (i) => `bval = w[kB * CO + nB${i}];`,
      post: advance(BK, [
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
export function convDxTiled(g: ConvGeom, bias: boolean): Kernel {
  const sh = tiledShape(g.CI)
  const { table, phases, counts } = phaseTable(g)
  const maxM = Math.max(...counts.map(([a, b, c]) => g.B * a! * b! * c!))
  const tilesN = Math.ceil(g.CI / sh.BN)
  const tiles = Math.max(1, Math.ceil(maxM / sh.BM)) * tilesN
  const aSlots = Math.ceil((sh.BM * BK) / THREADS)
  const io = bindings(
    [{ name: 'dy' }, { name: 'w' }, ...(bias ? [{ name: 'bias' }] : [])],
    [{ name: 'dx' }],
    DX.members(),
  )
  const code = memo(`tdx/${sh.BN}/${bias}`, () =>
    gemm(sh, io, {
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
      pre: `${rep(aSlots, (i) => `let mv${i} = min(mA${i}, max(MM, 1) - 1); let jwA${i} = CW + mv${i} % NW; let jhA${i} = CH + (mv${i} / NW) % NH; let jdA${i} = CD + (mv${i} / (NW * NH)) % ND; let obA${i} = mv${i} / (NW * NH * ND) * OD;`, '\n  ')}
  var co = ak0 % CO; var tp = ak0 / CO; var tw = tp % TW; var th = (tp / TW) % TH; var td = tp / (TW * TH);`,
      aLoad: (i) =>
        `let od = jdA${i} - td; let oh = jhA${i} - th; let ow = jwA${i} - tw;
      if (od >= 0 && od < OD && oh >= 0 && oh < OH && ow >= 0 && ow < OW) { aval = dy[(((obA${i} + od) * OH + oh) * OW + ow) * CO + co]; }`,
      bLoad: (i) =>
        `bval = w[((((RD + SD * td) * KH + RH + SH * th) * KW + RW + SW * tw) * CI + nB${i}) * CO + co];`,
      post: advance(BK, [
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

/**
 * Filter gradient: M = taps·CI filter rows, N = CO, K = output voxels split into Z chunks
 * (`workgroup_id.y`). A (x) is loaded m-fastest (consecutive channels), each slot keeping its
 * own (ow, oh, od, b) voxel state. Writes `part[z, m, n]`. Bindings: x, dy, part.
 */
export function convDwTiled(g: ConvGeom, target: number): Kernel & { Z: number } {
  const sh = tiledShape(g.CO)
  const R = g.k[0] * g.k[1] * g.k[2] * g.CI
  const V = g.B * g.outSize[0] * g.outSize[1] * g.outSize[2]
  const tilesN = Math.ceil(g.CO / sh.BN)
  const tiles = Math.ceil(R / sh.BM) * tilesN
  const maxZ = Math.max(1, Math.min(4096, Math.floor(16_777_216 / (R * g.CO)), Math.ceil(V / BK)))
  let Z = Math.max(1, Math.min(maxZ, Math.round(target / tiles)))
  const perChunk = Math.ceil(Math.ceil(V / Z) / BK) * BK
  Z = Math.ceil(V / perChunk)
  const aSlots = Math.ceil((sh.BM * BK) / THREADS)
  const io = bindings([{ name: 'x' }, { name: 'dy' }], [{ name: 'part' }], DW.members())
  const code = memo(`tdw/${sh.BN}`, () =>
    gemm(sh, io, {
      params: DW,
      setup: `let lin = i32(wid.x); let z = i32(wid.y);
  let m0 = (lin / tilesN) * ${sh.BM}; let n0 = (lin % tilesN) * ${sh.BN}; let MM = R; let NN = CO;`,
      aMFast: true,
      bKFast: false,
      pre: rep(
        aSlots,
        (
          i,
        ) => `let rv${i} = min(mA${i}, R - 1); let ciA${i} = rv${i} % CI; let tapA${i} = rv${i} / CI;
  let kdA${i} = tapA${i} / (KH * KW) - PD; let khA${i} = (tapA${i} / KW) % KH - PH; let kwA${i} = tapA${i} % KW - PW;
  let v${i} = z * perChunk + ak${i}; var ow${i} = v${i} % OW; var oh${i} = (v${i} / OW) % OH; var od${i} = (v${i} / (OW * OH)) % OD; var b${i} = v${i} / (OW * OH * OD);`,
        '\n  ',
      ),
      aLoad: (i) =>
        `let id = od${i} * SD + kdA${i}; let ih = oh${i} * SH + khA${i}; let iw = ow${i} * SW + kwA${i};
      if (id >= 0 && id < D && ih >= 0 && ih < H && iw >= 0 && iw < W) { aval = x[(((b${i} * D + id) * H + ih) * W + iw) * CI + ciA${i}]; }`,
      bLoad: (i) => `bval = dy[kB * CO + nB${i}];`,
      post: rep(
        aSlots,
        (i) =>
          `{ ${advance(BK, [
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
