/**
 * "Direct" implicit-GEMM convolution kernels: every invocation keeps a TM × TN register tile
 * of outputs (TM voxels along the innermost spatial axis × TN channels) and reads its
 * operands straight from the storage buffers, with no workgroup memory and no barrier.
 *
 * This is the variant for CPU adapters (Mesa lavapipe/llvmpipe, SwiftShader): there every
 * storage or workgroup-memory load costs about as much as 20 multiply-adds (each lane's load
 * is a separate bounds-checked gather), and barriers are coroutine switches, so the lever is
 * the number of loads per multiply-add, (TM + TN) / (TM · TN). The channel group of a
 * workgroup comes from `workgroup_id.z`, so filter loads are uniform across the workgroup.
 * Discrete GPUs use the workgroup-memory tiles of `conv-tiled.ts`.
 *
 * Shapes come in a uniform block (one pipeline per tile shape, not per layer; constant loop
 * bounds would make LLVM unroll the tap loops and take seconds per pipeline).
 */
import { axisPhases, type ConvGeom } from './conv-geom'
import { bindings, fold, MAIN_ARGS, memo, Params, rep, WG_LINEAR } from './runner'

/** Register tile of one invocation. */
export interface Tile {
  /** Outputs along the innermost spatial axis (or filter rows for the filter gradient). */
  TM: number
  /** Channels. */
  TN: number
}

const WG = 64

export interface Kernel {
  /** Pipeline cache key part: the WGSL source. */
  code: string
  dispatch: [number, number, number]
  uniforms: ArrayBuffer
}

function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b)
}

/**
 * Register tile for `channels` output channels and `spatial` outputs along the innermost axis
 * on a CPU adapter: TN ∈ {4, 8, 16} covers the channels, TM brings the tile to 64–128
 * accumulators (fewer when the axis is short).
 */
export function directTile(channels: number, spatial: number): Tile {
  const TN = channels <= 4 ? 4 : channels <= 8 ? 8 : 16
  let TM = TN === 16 ? 8 : 16
  while (TM > 4 && TM / 2 >= spatial) TM /= 2
  return { TM, TN }
}

/** The uniform names of a convolution's geometry, shared by the direct and tiled kernels. */
export const GEOM = [
  'B',
  'D',
  'H',
  'W',
  'CI',
  'OD',
  'OH',
  'OW',
  'CO',
  'KD',
  'KH',
  'KW',
  'SD',
  'SH',
  'SW',
  'PD',
  'PH',
  'PW',
]

function geomValues(g: ConvGeom): Record<string, number> {
  return {
    B: g.B,
    D: g.inSize[0],
    H: g.inSize[1],
    W: g.inSize[2],
    CI: g.CI,
    OD: g.outSize[0],
    OH: g.outSize[1],
    OW: g.outSize[2],
    CO: g.CO,
    KD: g.k[0],
    KH: g.k[1],
    KW: g.k[2],
    SD: g.s[0],
    SH: g.s[1],
    SW: g.s[2],
    PD: g.p[0],
    PH: g.p[1],
    PW: g.p[2],
  }
}

const FWD = new Params([...GEOM, 'lanes', 'OWG'])

/**
 * Forward: `y[b, o, co] = Σ x[b, o·s − p + k, ci] · w[k, ci, co] (+ bias[co])`.
 * The TM outputs of an invocation are consecutive along W, so for each (kd, kh, ci) their
 * KW taps read a window of (TM − 1)·SW + KW input values, loaded once: per window
 * (WIN + KW·TN) loads feed KW·TM·TN multiply-adds. KW and SW are WGSL constants (they shape
 * the unrolled window); everything else is uniform. Bindings: x, w, [bias], y.
 */
export function convFwdDirect(g: ConvGeom, bias: boolean, tile: Tile): Kernel {
  const { TM, TN } = tile
  const KW = g.k[2]
  const SW = g.s[2]
  const WIN = (TM - 1) * SW + KW
  const OWG = ceilDiv(g.outSize[2], TM)
  const lanes = g.B * g.outSize[0] * g.outSize[1] * OWG
  const NG = ceilDiv(g.CO, TN)
  const acc = (m: number, n: number) => `a${m}_${n}`
  const code = memo(
    `fwd/${TM}/${TN}/${KW}/${SW}/${bias}`,
    () => `
${bindings([{ name: 'x' }, { name: 'w' }, ...(bias ? [{ name: 'bias' }] : [])], [{ name: 'y' }], FWD.members())}
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${FWD.lets()}
  let lane = i32(${WG_LINEAR} * ${WG}u + lid);
  if (lane >= lanes) { return; }
  let co0 = i32(wid.z) * ${TN};
  let owg = lane % OWG;
  var r = lane / OWG;
  let oh = r % OH;
  r = r / OH;
  let od = r % OD;
  let b = r / OD;
  let ow0 = owg * ${TM};
  let iw0 = ow0 * ${SW} - PW;
  ${rep(TM, (m) => rep(TN, (n) => `var ${acc(m, n)} = 0.0;`, ' '))}
  ${rep(TN, (n) => `let wc${n} = min(co0 + ${n}, CO - 1);`, ' ')}
  ${rep(WIN, (j) => `let ok${j} = iw0 + ${j} >= 0 && iw0 + ${j} < W;`, ' ')}
  for (var kd = 0; kd < KD; kd++) {
    let id = od * SD + kd - PD;
    if (id < 0 || id >= D) { continue; }
    for (var kh = 0; kh < KH; kh++) {
      let ih = oh * SH + kh - PH;
      if (ih < 0 || ih >= H) { continue; }
      let row = ((b * D + id) * H + ih) * W;
      ${rep(WIN, (j) => `let xo${j} = (row + clamp(iw0 + ${j}, 0, W - 1)) * CI;`, ' ')}
      let wt = (kd * KH + kh) * ${KW};
      for (var ci = 0; ci < CI; ci++) {
        ${rep(WIN, (j) => `let v${j} = select(0.0, x[xo${j} + ci], ok${j});`, ' ')}
        ${rep(
          KW,
          (kw) => `{
          let wo = ((wt + ${kw}) * CI + ci) * CO;
          ${rep(TN, (n) => `let w${n} = w[wo + wc${n}];`, ' ')}
          ${rep(TM, (m) => rep(TN, (n) => `${acc(m, n)} += v${m * SW + kw} * w${n};`, ' '))}
        }`,
        )}
      }
    }
  }
  ${bias ? rep(TN, (n) => `let bv${n} = bias[wc${n}];`, ' ') : ''}
  let yb = ((b * OD + od) * OH + oh) * OW;
  ${rep(
    TM,
    (m) => `if (ow0 + ${m} < OW) {
    let yo = (yb + ow0 + ${m}) * CO + co0;
    ${rep(TN, (n) => `if (co0 + ${n} < CO) { y[yo + ${n}] = ${acc(m, n)}${bias ? ` + bv${n}` : ''}; }`, ' ')}
  }`,
  )}
}`,
  )
  return {
    code,
    dispatch: fold(ceilDiv(lanes, WG), NG),
    uniforms: FWD.pack({ ...geomValues(g), lanes, OWG }),
  }
}

/** Per-phase table rows of the input-gradient kernels (4 vec4 per phase). */
export function phaseTable(g: ConvGeom): { table: number[]; phases: number; counts: number[][] } {
  const ph = [0, 1, 2].map((a) => axisPhases(g.inSize[a]!, g.k[a]!, g.s[a]!, g.p[a]!))
  const table: number[] = []
  const counts: number[][] = []
  for (let d = 0; d < g.s[0]; d++) {
    for (let h = 0; h < g.s[1]; h++) {
      for (let w = 0; w < g.s[2]; w++) {
        const [A, Bq, C] = [ph[0]![d]!, ph[1]![h]!, ph[2]![w]!]
        table.push(
          A.e,
          Bq.e,
          C.e,
          A.n,
          Bq.n,
          C.n,
          A.t,
          Bq.t,
          C.t,
          A.c,
          Bq.c,
          C.c,
          A.r,
          Bq.r,
          C.r,
          0,
        )
        counts.push([A.n, Bq.n, C.n])
      }
    }
  }
  return { table, phases: counts.length, counts }
}

/** WGSL that unpacks phase `phase` of the table into e*, n*, t*, c*, r* lets. */
export const PHASE_LETS = `let q0 = params.tab[phase * 4u]; let q1 = params.tab[phase * 4u + 1u]; let q2 = params.tab[phase * 4u + 2u]; let q3 = params.tab[phase * 4u + 3u];
  let ED = q0.x; let EH = q0.y; let EW = q0.z; let ND = q0.w; let NH = q1.x; let NW = q1.y;
  let TD = q1.z; let TH = q1.w; let TW = q2.x; let CD = q2.y; let CH = q2.z; let CW = q2.w;
  let RD = q3.x; let RH = q3.y; let RW = q3.z;`

const DX = new Params([...GEOM, 'NG'], 32)

/**
 * Input gradient: `dx[b, i, ci] = Σ_{k, co} dy[b, (i + p − k)/s, co] · w[k, ci, co]` over the
 * taps with `i + p − k ≡ 0 (mod s)`, split into the `s_d·s_h·s_w` sub-pixel phases
 * (`workgroup_id.z = phase · groups + channel group`) so no multiply-add touches an inserted
 * zero. With k = s = 2 and p = 0 this is the 2×2×2 stride-2 transposed convolution.
 * An invocation's TM input voxels are consecutive within the phase along W; for each
 * (kd, kh, co) their W taps read a window of TM + TWMAX − 1 values of dy, loaded once
 * (TWMAX = ⌈KW/SW⌉ is a WGSL constant). Bindings: dy, w, [bias over ci], dx.
 */
export function convDxDirect(g: ConvGeom, bias: boolean, tile: Tile): Kernel {
  const { TM, TN } = tile
  const TWMAX = ceilDiv(g.k[2], g.s[2])
  const WIN = TM + TWMAX - 1
  const { table, phases, counts } = phaseTable(g)
  const maxLanes = Math.max(...counts.map(([a, b, c]) => g.B * a! * b! * ceilDiv(c!, TM)))
  const NG = ceilDiv(g.CI, TN)
  const acc = (m: number, n: number) => `a${m}_${n}`
  const code = memo(
    `dx/${TM}/${TN}/${TWMAX}/${bias}`,
    () => `
${bindings([{ name: 'dy' }, { name: 'w' }, ...(bias ? [{ name: 'bias' }] : [])], [{ name: 'dx' }], DX.members())}
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${DX.lets()}
  let phase = wid.z / u32(NG);
  ${PHASE_LETS}
  let ci0 = i32(wid.z % u32(NG)) * ${TN};
  let nwq = (NW + ${TM - 1}) / ${TM};
  let lane = i32(${WG_LINEAR} * ${WG}u + lid);
  if (lane >= B * ND * NH * nwq) { return; }
  let jwg = lane % nwq;
  var r = lane / nwq;
  let jh = r % NH;
  r = r / NH;
  let jd = r % ND;
  let b = r / ND;
  let jw0 = jwg * ${TM};
  let ow0 = CW + jw0 - ${TWMAX - 1};
  ${rep(TM, (m) => rep(TN, (n) => `var ${acc(m, n)} = 0.0;`, ' '))}
  ${rep(TN, (n) => `let wc${n} = min(ci0 + ${n}, CI - 1);`, ' ')}
  ${rep(WIN, (j) => `let ok${j} = ow0 + ${j} >= 0 && ow0 + ${j} < OW;`, ' ')}
  for (var td = 0; td < TD; td++) {
    let od = CD + jd - td;
    if (od < 0 || od >= OD) { continue; }
    let kd = RD + SD * td;
    for (var th = 0; th < TH; th++) {
      let oh = CH + jh - th;
      if (oh < 0 || oh >= OH) { continue; }
      let kh = RH + SH * th;
      let row = ((b * OD + od) * OH + oh) * OW;
      ${rep(WIN, (j) => `let go${j} = (row + clamp(ow0 + ${j}, 0, OW - 1)) * CO;`, ' ')}
      let wt = (kd * KH + kh) * KW + RW;
      for (var co = 0; co < CO; co++) {
        ${rep(WIN, (j) => `let v${j} = select(0.0, dy[go${j} + co], ok${j});`, ' ')}
        ${rep(
          TWMAX,
          (tw) => `if (${tw} < TW) {
          let wo = (wt + SW * ${tw}) * CI * CO + co;
          ${rep(TN, (n) => `let w${n} = w[wo + wc${n} * CO];`, ' ')}
          ${rep(TM, (m) => rep(TN, (n) => `${acc(m, n)} += v${m - tw + TWMAX - 1} * w${n};`, ' '))}
        }`,
        )}
      }
    }
  }
  ${bias ? rep(TN, (n) => `let bv${n} = bias[wc${n}];`, ' ') : ''}
  let xb = ((b * D + ED + SD * jd) * H + EH + SH * jh) * W;
  ${rep(
    TM,
    (m) => `if (jw0 + ${m} < NW) {
    let xo = (xb + EW + SW * (jw0 + ${m})) * CI + ci0;
    ${rep(TN, (n) => `if (ci0 + ${n} < CI) { dx[xo + ${n}] = ${acc(m, n)}${bias ? ` + bv${n}` : ''}; }`, ' ')}
  }`,
  )}
}`,
  )
  return {
    code,
    dispatch: fold(ceilDiv(Math.max(1, maxLanes), WG), phases * NG),
    uniforms: DX.pack({ ...geomValues(g), NG }, table),
  }
}

/** Split-K plan of the filter gradient: `Z` chunks of `rowsPerChunk` (b, od, oh) output rows. */
export interface SplitK {
  Z: number
  rowsPerChunk: number
}

/** Choose the chunking so that about `targetGroups` workgroups run (partial buffer ≤ 16 M floats). */
export function splitK(
  g: ConvGeom,
  groupsPerChunk: number,
  targetGroups: number,
  slices = 1,
): SplitK {
  const rowsTotal = g.B * g.outSize[0] * g.outSize[1]
  const R = g.k[0] * g.k[1] * g.k[2] * g.CI * g.CO * slices
  const maxZ = Math.max(1, Math.min(4096, Math.floor(16_777_216 / R), rowsTotal))
  let Z = Math.max(1, Math.min(maxZ, Math.round(targetGroups / groupsPerChunk)))
  const rowsPerChunk = Math.ceil(rowsTotal / Z)
  Z = Math.ceil(rowsTotal / rowsPerChunk)
  return { Z, rowsPerChunk }
}

/** Filter-gradient plan: channel tiles, W segments per lane group and the split-K chunks. */
export interface DwPlan {
  /** Input channels per invocation. */
  TM: number
  /** Output channels per invocation. */
  TN: number
  /** Segments of the W axis (each a separate partial sum). */
  NSEG: number
  split: SplitK
}

export function dwPlan(g: ConvGeom, targetGroups: number): DwPlan {
  const KW = g.k[2]
  const TN = g.CO <= 4 ? 4 : 8
  let TM = g.CI <= 1 ? 1 : g.CI <= 2 ? 2 : g.CI <= 4 ? 4 : 8
  while (TM > 1 && TM * KW * TN > 96) TM /= 2
  const R2 = g.k[0] * g.k[1] * Math.ceil(g.CI / TM)
  const NSEG = Math.max(1, Math.min(Math.floor(64 / R2), Math.floor(g.outSize[2] / 4)))
  const groups = Math.ceil((NSEG * R2) / 64) * Math.ceil(g.CO / TN)
  return { TM, TN, NSEG, split: splitK(g, groups, targetGroups, NSEG) }
}

const DW = new Params([
  ...GEOM,
  'R2',
  'NCIG',
  'NSEG',
  'segLen',
  'lanes',
  'rowsPerChunk',
  'rowsTotal',
])

/**
 * Filter gradient, split over the output voxels: `partial[z·NSEG + seg, k, ci, co] =
 * Σ x[b, o·s − p + k, ci] · dy[b, o, co]` over the (b, od, oh) rows of chunk z and the W
 * segment seg; {@link reduceChunks} sums the partials. An invocation owns (kd, kh), TM input
 * channels, all KW taps along W and TN output channels; walking along W it keeps the KW·TM
 * input values of the current position in registers and loads only the SW·TM new ones per
 * step (KW and SW are WGSL constants). Bindings: x, dy, partial.
 */
export function convDwDirect(g: ConvGeom, plan: DwPlan): Kernel {
  const { TM, TN, NSEG } = plan
  const KW = g.k[2]
  const SW = g.s[2]
  const NCIG = ceilDiv(g.CI, TM)
  const R2 = g.k[0] * g.k[1] * NCIG
  const lanes = R2 * NSEG
  const NG = ceilDiv(g.CO, TN)
  const segLen = ceilDiv(g.outSize[2], NSEG)
  const rowsTotal = g.B * g.outSize[0] * g.outSize[1]
  const { Z, rowsPerChunk } = plan.split
  const shift = KW > SW
  const fresh = shift ? SW : KW // taps loaded per step
  const acc = (m: number, kw: number, n: number) => `a${m}_${kw}_${n}`
  const load = (kw: number, iw: string) =>
    `{ let iw = ${iw} + ${kw}; let okw = rok && iw >= 0 && iw < W; let xo = (xrow + clamp(iw, 0, W - 1)) * CI; ${rep(TM, (m) => `v${m}_${kw} = select(0.0, x[xo + ci${m}], okw);`, ' ')} }`
  const code = memo(
    `dw/${TM}/${TN}/${KW}/${SW}`,
    () => `
${bindings([{ name: 'x' }, { name: 'dy' }], [{ name: 'part' }], DW.members())}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${DW.lets()}
  let lane = i32(wid.x * ${WG}u + lid);
  if (lane >= lanes) { return; }
  let co0 = i32(wid.y) * ${TN};
  let z = i32(wid.z);
  let seg = lane / R2;
  let r2 = lane % R2;
  let cig = r2 % NCIG;
  let kh = (r2 / NCIG) % KH;
  let kd = r2 / (NCIG * KH);
  let cb = cig * ${TM};
  ${rep(TM, (m) => `let ci${m} = min(cb + ${m}, CI - 1);`, ' ')}
  ${rep(TN, (n) => `let dc${n} = min(co0 + ${n}, CO - 1);`, ' ')}
  let owA = seg * segLen;
  let owB = min(owA + segLen, OW);
  ${rep(TM, (m) => rep(KW, (kw) => rep(TN, (n) => `var ${acc(m, kw, n)} = 0.0;`, ' '), ' '))}
  ${rep(TM, (m) => rep(KW, (kw) => `var v${m}_${kw} = 0.0;`, ' '), ' ')}
  let rEnd = min((z + 1) * rowsPerChunk, rowsTotal);
  for (var rw = z * rowsPerChunk; rw < rEnd; rw++) {
    let oh = rw % OH;
    let od = (rw / OH) % OD;
    let b = rw / (OH * OD);
    let id = od * SD + kd - PD;
    let ih = oh * SH + kh - PH;
    let rok = id >= 0 && id < D && ih >= 0 && ih < H;
    let xrow = ((b * D + clamp(id, 0, D - 1)) * H + clamp(ih, 0, H - 1)) * W;
    ${shift ? rep(KW - SW, (kw) => load(kw + SW, `(owA - 1) * ${SW} - PW`)) : ''}
    let gb = rw * OW * CO;
    for (var ow = owA; ow < owB; ow++) {
      let iwb = ow * ${SW} - PW;
      ${shift ? rep(KW - SW, (kw) => rep(TM, (m) => `v${m}_${kw} = v${m}_${kw + SW};`, ' ')) : ''}
      ${rep(fresh, (j) => load(KW - fresh + j, 'iwb'))}
      let go = gb + ow * CO;
      ${rep(TN, (n) => `let g${n} = dy[go + dc${n}];`, ' ')}
      ${rep(TM, (m) => rep(KW, (kw) => rep(TN, (n) => `${acc(m, kw, n)} += v${m}_${kw} * g${n};`, ' '), ' '))}
    }
  }
  let pb = (z * NSEG + seg) * KD * KH * KW * CI * CO;
  ${rep(
    TM,
    (m) => `if (cb + ${m} < CI) {
    ${rep(
      KW,
      (kw) => `{ let po = pb + (((kd * KH + kh) * KW + ${kw}) * CI + cb + ${m}) * CO + co0;
      ${rep(TN, (n) => `if (co0 + ${n} < CO) { part[po + ${n}] = ${acc(m, kw, n)}; }`, ' ')} }`,
    )}
  }`,
  )}
}`,
  )
  if (ceilDiv(lanes, WG) > 65535 || NG > 65535 || Z > 65535) {
    throw new Error('conv3d filter gradient: dispatch too large')
  }
  return {
    code,
    dispatch: [ceilDiv(lanes, WG), NG, Z],
    uniforms: DW.pack({ ...geomValues(g), R2, NCIG, NSEG, segLen, lanes, rowsPerChunk, rowsTotal }),
  }
}

const RED = new Params(['n', 'Z', 'lanes'])

/** `out[i] = Σ_z part[z·n + i]` for i < n (the split-K reduction). Bindings: part, out. */
export function reduceChunks(n: number, Z: number): Kernel {
  const per = 4
  const lanes = ceilDiv(n, per)
  const code = memo(
    `reduce/${per}`,
    () => `
${bindings([{ name: 'part' }], [{ name: 'out' }], RED.members())}
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${RED.lets()}
  let lane = i32(${WG_LINEAR} * ${WG}u + lid);
  if (lane >= lanes) { return; }
  ${rep(per, (j) => `var s${j} = 0.0;`, ' ')}
  let base = lane * ${per};
  ${rep(per, (j) => `let i${j} = min(base + ${j}, n - 1);`, ' ')}
  for (var z = 0; z < Z; z++) {
    let o = z * n;
    ${rep(per, (j) => `s${j} += part[o + i${j}];`, ' ')}
  }
  ${rep(per, (j) => `if (base + ${j} < n) { out[base + ${j}] = s${j}; }`, ' ')}
}`,
  )
  return { code, dispatch: fold(ceilDiv(lanes, WG)), uniforms: RED.pack({ n, Z, lanes }) }
}
