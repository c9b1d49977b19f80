/**
 * Fused instance normalisation on WebGPU (per sample and channel over d·h·w, biased variance,
 * no affine), with the residual join and LeakyReLU of the DynUNet/UNETR blocks folded in:
 *
 *   y = act(x̂_h [+ r | + r̂])        x̂ = (x − mean)·rstd,  act = LeakyReLU(slope) or none
 *
 * Forward, 3 dispatches: per-chunk Welford partials (count, mean, M2) of h (and r), their
 * merge (Chan's formula) into mean/rstd, and one elementwise pass. Backward, 3 dispatches:
 * per-chunk sums of g, g·x̂_h (and g·x̂_r) with g = dy·act'(pre) recomputed from the inputs,
 * their means, and one pass writing dh (and dr):
 *
 *   dh = rstd_h·(g − mean(g) − x̂_h·mean(g·x̂_h)),   dr = r̂ ? the same for r : g
 *
 * Layout: an invocation owns one channel of one row lane; a workgroup covers (sample, row
 * chunk, channel group), so every pass reads whole rows (coalesced). The chunks aim at the
 * device's workgroup target (≈ 2,048 on a GPU, every lane reading ≥ 16 rows). The partial
 * passes merge their row lanes in workgroup memory (one partial per chunk), and the merges
 * run one workgroup per (sample, channel) over the chunks, so neither pass is a long serial
 * loop. The stats are an extra kernel output that the tape saves for the backward (a few floats).
 */
import { tf } from '../../tf'
import { targetGroups } from './occupancy'
import { defineGradient, defineKernel, runKernel } from './register'
import {
  bindings,
  fold,
  MAIN_ARGS,
  memo,
  newOutput,
  Params,
  rep,
  run,
  WG_LINEAR,
  type WebGPUBackendLike,
} from './runner'

const WG = 64

interface Layout {
  B: number
  S: number
  C: number
  Z: number
  CG: number
  RL: number
  CL: number
  rpc: number
  P: number
  half: number
}

/** Fewest rows a lane of the partial-sum passes reads (fewer would only add partials). */
const MIN_ROWS = 16

function layout(B: number, S: number, C: number): Layout {
  const CG = C >= WG ? Math.ceil(C / WG) : 1
  const RL = C >= WG ? 1 : Math.floor(WG / C)
  const CL = Math.min(C, WG)
  // about targetGroups() workgroups over the batch, every lane reading ≥ MIN_ROWS rows
  const want = Math.max(1, Math.min(Math.ceil(targetGroups() / (B * CG)), Math.ceil(S / (RL * MIN_ROWS))))
  const rpc = Math.max(1, Math.ceil(S / want))
  const Z = Math.max(1, Math.ceil(S / rpc))
  // the partial passes sum their row lanes in workgroup memory: one partial per chunk
  return { B, S, C, Z, CG, RL, CL, rpc, P: Z, half: halfPow2(RL) }
}

const ROWS = ['B', 'S', 'C', 'Z', 'CG', 'RL', 'CL', 'rpc', 'P', 'half']

/** WGSL preamble that maps the invocation to (b, z, ch, rl) and the row range; returns if idle. */
const LANE = `
  let g = i32(${WG_LINEAR});
  let b = g / (Z * CG);
  let z = (g / CG) % Z;
  let cg = g % CG;
  let rl = i32(lid) / CL;
  let ch = cg * ${WG} + i32(lid) % CL;
  if (b >= B || rl >= RL || ch >= C) { return; }
  let r1 = min((z + 1) * rpc, S);
  let base = b * S * C + ch;`

/**
 * Preamble of the partial-sum passes: like {@link LANE} but every invocation stays (they meet
 * at barriers); `live` says whether it owns a row lane, `bb`/`cc` are clamped indices.
 */
const LIVE = `
  let g = i32(${WG_LINEAR});
  let b = g / (Z * CG);
  let z = (g / CG) % Z;
  let cg = g % CG;
  let l = i32(lid);
  let rl = l / CL;
  let ch = cg * ${WG} + l % CL;
  let live = b < B && rl < RL && ch < C;
  let bb = min(b, B - 1);
  let cc = min(ch, C - 1);
  let r1 = min((z + 1) * rpc, S);
  let base = bb * S * C + cc;`

/** Chan's merge of two (count, mean, M2) partials. */
const CHAN = `
fn chan(a: vec3<f32>, c: vec3<f32>) -> vec3<f32> {
  if (c.x == 0.0) { return a; }
  let tot = a.x + c.x;
  let d = c.y - a.y;
  return vec3<f32>(tot, a.y + d * (c.x / tot), a.z + c.z + d * d * (a.x * c.x / tot));
}`

/** Sum the row lanes of a workgroup in `w<t>` (tree over lanes rl, rl + st, …) with `op`. */
function laneTree(T: number, op: (a: string, b: string) => string): string {
  return `
  workgroupBarrier();
  for (var st = half; st > 0; st = st / 2) {
    if (rl < st && rl + st < RL) { ${rep(T, (t) => `w${t}[l] = ${op(`w${t}[l]`, `w${t}[l + st * CL]`)};`, ' ')} }
    workgroupBarrier();
  }`
}

/** Half the smallest power of two ≥ n (0 for n ≤ 1): the first stride of a lane tree. */
function halfPow2(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p >> 1
}

function rowsDispatch(l: Layout): [number, number, number] {
  return fold(l.B * l.Z * l.CG)
}

const STATS = new Params(ROWS)

function statsCode(T: number): string {
  const names = T === 2 ? ['h', 'r'] : ['h']
  return `
${bindings(
  names.map((name) => ({ name })),
  [{ name: 'part' }],
  STATS.members(),
)}
${CHAN}
${rep(T, (t) => `var<workgroup> w${t}: array<vec3<f32>, ${WG}>;`)}
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${STATS.lets()}
  ${LIVE}
  ${rep(T, (t) => `var n${t} = 0.0; var m${t} = 0.0; var q${t} = 0.0;`, ' ')}
  if (live) {
    for (var row = z * rpc + rl; row < r1; row += RL) {
      let o = base + row * C;
      ${rep(T, (t) => `{ let v = ${names[t]}[o]; n${t} += 1.0; let d = v - m${t}; m${t} += d / n${t}; q${t} += d * (v - m${t}); }`)}
    }
  }
  ${rep(T, (t) => `w${t}[l] = vec3<f32>(n${t}, m${t}, q${t});`, ' ')}
  ${laneTree(T, (x, y) => `chan(${x}, ${y})`)}
  if (live && rl == 0) {
    ${rep(T, (t) => `{ let o = (((${t} * B + b) * P + z) * 3) * C + ch; let v = w${t}[l]; part[o] = v.x; part[o + C] = v.y; part[o + 2 * C] = v.z; }`)}
  }
}`
}

const FIN = new Params(['B', 'C', 'P', 'S', 'n'], 0, ['eps'])

/** One workgroup per (t, b, c): its lanes merge a stride of the P partials, then a tree. */
const FIN_CODE = `
${bindings([{ name: 'part' }], [{ name: 'stats' }], FIN.members())}
${CHAN}
var<workgroup> w: array<vec3<f32>, ${WG}>;
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${FIN.lets()}
  let i = i32(${WG_LINEAR});
  let ii = min(i, n - 1);
  let c = ii % C;
  let tb = ii / C;
  var acc = vec3<f32>(0.0, 0.0, 0.0);
  for (var p = i32(lid); p < P; p += ${WG}) {
    let o = ((tb * P + p) * 3) * C + c;
    acc = chan(acc, vec3<f32>(part[o], part[o + C], part[o + 2 * C]));
  }
  w[lid] = acc;
  workgroupBarrier();
  for (var st = ${WG / 2}u; st > 0u; st = st / 2u) {
    if (lid < st) { w[lid] = chan(w[lid], w[lid + st]); }
    workgroupBarrier();
  }
  if (i < n && lid == 0u) {
    let v = w[0];
    stats[tb * 2 * C + c] = v.y;
    stats[tb * 2 * C + C + c] = inverseSqrt(max(v.z / f32(S), 0.0) + eps);
  }
}`

/**
 * Bindings and the start of `main` of the per-row passes: the invocation's lane, and the mean /
 * inverse SD of h (and of r when T = 2) it normalises with.
 */
function normHead(ins: string[], outs: string | string[], P: Params, T: number): string {
  return `${bindings(
    ins.map((name) => ({ name })),
    (typeof outs === 'string' ? [outs] : outs).map((name) => ({ name })),
    P.members(),
  )}
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${P.lets()}
  ${LANE}
  let mh = stats[b * 2 * C + ch]; let rh = stats[b * 2 * C + C + ch];
  ${T === 2 ? 'let mr = stats[(B + b) * 2 * C + ch]; let rr = stats[(B + b) * 2 * C + C + ch];' : ''}`
}

const APPLY = new Params(ROWS, 0, ['slope'])

function applyCode(T: number, hasR: boolean, act: boolean): string {
  const ins = hasR ? ['h', 'r', 'stats'] : ['h', 'stats']
  return `
${normHead(ins, 'y', APPLY, T)}
  for (var row = z * rpc + rl; row < r1; row += RL) {
    let o = base + row * C;
    var v = (h[o] - mh) * rh;
    ${hasR ? (T === 2 ? 'v += (r[o] - mr) * rr;' : 'v += r[o];') : ''}
    y[o] = ${act ? 'select(v * slope, v, v > 0.0)' : 'v'};
  }
}`
}

const BPART = new Params(ROWS, 0, ['slope'])

/**
 * The row loop's body shared by the backward passes: element `o`, its normalised input x̂_h
 * (and x̂_r), the pre-activation and the incoming gradient through the LeakyReLU, `gg`.
 */
function rowGrad(T: number, hasR: boolean, act: boolean): string {
  return `let o = base + row * C;
    let xh = (h[o] - mh) * rh;
    ${T === 2 ? 'let xr = (r[o] - mr) * rr;' : ''}
    let pre = xh${hasR ? (T === 2 ? ' + xr' : ' + r[o]') : ''};
    let gg = dy[o]${act ? ' * select(slope, 1.0, pre > 0.0)' : ''};`
}

/** Backward partial sums: s0 = Σg, s1 = Σg·x̂_h, s2 = Σg·x̂_r. */
function bwdPartialCode(T: number, hasR: boolean, act: boolean): string {
  const ins = hasR ? ['dy', 'h', 'r', 'stats'] : ['dy', 'h', 'stats']
  const K = T === 2 ? 3 : 2
  return `
${bindings(
  ins.map((name) => ({ name })),
  [{ name: 'part' }],
  BPART.members(),
)}
var<workgroup> w0: array<vec3<f32>, ${WG}>;
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${BPART.lets()}
  ${LIVE}
  let mh = stats[bb * 2 * C + cc]; let rh = stats[bb * 2 * C + C + cc];
  ${T === 2 ? 'let mr = stats[(B + bb) * 2 * C + cc]; let rr = stats[(B + bb) * 2 * C + C + cc];' : ''}
  var s0 = 0.0; var s1 = 0.0; var s2 = 0.0;
  if (live) {
    for (var row = z * rpc + rl; row < r1; row += RL) {
      ${rowGrad(T, hasR, act)}
      s0 += gg; s1 += gg * xh;${T === 2 ? ' s2 += gg * xr;' : ''}
    }
  }
  w0[l] = vec3<f32>(s0, s1, s2);
  ${laneTree(1, (x, y) => `${x} + ${y}`)}
  if (live && rl == 0) {
    let v = w0[l];
    let o = ((b * P + z) * ${K}) * C + ch;
    part[o] = v.x; part[o + C] = v.y;${T === 2 ? ' part[o + 2 * C] = v.z;' : ''}
  }
}`
}

const BFIN = new Params(['B', 'C', 'P', 'S', 'K', 'n'])

/** One workgroup per (b, k, c): its lanes sum a stride of the P partials, then a tree. */
const BFIN_CODE = `
${bindings([{ name: 'part' }], [{ name: 'coef' }], BFIN.members())}
var<workgroup> w: array<f32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${BFIN.lets()}
  let i = i32(${WG_LINEAR});
  let ii = min(i, n - 1);
  let c = ii % C;
  let k = (ii / C) % K;
  let b = ii / (C * K);
  var s = 0.0;
  for (var p = i32(lid); p < P; p += ${WG}) { s += part[((b * P + p) * K + k) * C + c]; }
  w[lid] = s;
  workgroupBarrier();
  for (var st = ${WG / 2}u; st > 0u; st = st / 2u) {
    if (lid < st) { w[lid] += w[lid + st]; }
    workgroupBarrier();
  }
  if (i < n && lid == 0u) { coef[(b * K + k) * C + c] = w[0] / f32(S); }
}`

const BAPPLY = new Params(ROWS, 0, ['slope'])

/** dh (and dr) from the coefficients: mean(g), mean(g·x̂_h), mean(g·x̂_r). */
function bwdApplyCode(T: number, hasR: boolean, act: boolean): string {
  const ins = hasR ? ['dy', 'h', 'r', 'stats', 'coef'] : ['dy', 'h', 'stats', 'coef']
  const outs = hasR ? ['dh', 'dr'] : ['dh']
  const K = T === 2 ? 3 : 2
  return `
${normHead(ins, outs, BAPPLY, T)}
  let cb = b * ${K} * C + ch;
  let mg = coef[cb]; let mgh = coef[cb + C];${T === 2 ? ' let mgr = coef[cb + 2 * C];' : ''}
  for (var row = z * rpc + rl; row < r1; row += RL) {
    ${rowGrad(T, hasR, act)}
    dh[o] = rh * (gg - mg - xh * mgh);
    ${hasR ? (T === 2 ? 'dr[o] = rr * (gg - mg - xr * mgr);' : 'dr[o] = gg;') : ''}
  }
}`
}

function bsc(shape: readonly number[]): [number, number, number] {
  const C = shape[shape.length - 1]!
  const B = shape[0]!
  const S = shape.reduce((a, b) => a * b, 1) / (B * C)
  return [B, S, C]
}

interface NormAttrs {
  eps: number
  slope: number
  act: boolean
  normR: boolean
}

function attrsOf(a: Record<string, unknown>): NormAttrs {
  return {
    eps: Number(a.eps),
    slope: Number(a.slope),
    act: a.act === true,
    normR: a.normR === true,
  }
}

function forward(
  backend: WebGPUBackendLike,
  h: tf.TensorInfo,
  r: tf.TensorInfo | undefined,
  at: NormAttrs,
): tf.TensorInfo[] {
  const [B, S, C] = bsc(h.shape)
  const T = r && at.normR ? 2 : 1
  const l = layout(B, S, C)
  const rows = { B, S, C, Z: l.Z, CG: l.CG, RL: l.RL, CL: l.CL, rpc: l.rpc, P: l.P, half: l.half }
  const part = newOutput(backend, [T, B, l.P, 3, C])
  run(backend, {
    name: 'norm.stats',
    code: memo(`norm.stats/${T}`, () => statsCode(T)),
    dispatch: rowsDispatch(l),
    uniforms: STATS.pack(rows),
    inputs: T === 2 ? [h, r!] : [h],
    outputs: [part],
  })
  const stats = newOutput(backend, [T, B, 2, C])
  const n = T * B * C
  run(backend, {
    name: 'norm.stats.merge',
    code: FIN_CODE,
    dispatch: fold(n),
    uniforms: FIN.pack({ B, C, P: l.P, S, n, eps: at.eps }),
    inputs: [part],
    outputs: [stats],
  })
  backend.disposeData(part.dataId)
  const y = newOutput(backend, h.shape)
  run(backend, {
    name: 'norm.apply',
    code: memo(`norm.apply/${T}/${!!r}/${at.act}`, () => applyCode(T, !!r, at.act)),
    dispatch: rowsDispatch(l),
    uniforms: APPLY.pack({ ...rows, slope: at.slope }),
    inputs: r ? [h, r, stats] : [h, stats],
    outputs: [y],
  })
  return [y, stats]
}

function backward(
  backend: WebGPUBackendLike,
  dy: tf.TensorInfo,
  h: tf.TensorInfo,
  r: tf.TensorInfo | undefined,
  stats: tf.TensorInfo,
  at: NormAttrs,
): tf.TensorInfo[] {
  const [B, S, C] = bsc(h.shape)
  const T = r && at.normR ? 2 : 1
  const K = T === 2 ? 3 : 2
  const l = layout(B, S, C)
  const rows = { B, S, C, Z: l.Z, CG: l.CG, RL: l.RL, CL: l.CL, rpc: l.rpc, P: l.P, half: l.half }
  const part = newOutput(backend, [B, l.P, K, C])
  const ins = r ? [dy, h, r, stats] : [dy, h, stats]
  run(backend, {
    name: 'norm.grad.sums',
    code: memo(`norm.bsum/${T}/${!!r}/${at.act}`, () => bwdPartialCode(T, !!r, at.act)),
    dispatch: rowsDispatch(l),
    uniforms: BPART.pack({ ...rows, slope: at.slope }),
    inputs: ins,
    outputs: [part],
  })
  const coef = newOutput(backend, [B, K, C])
  const n = B * K * C
  run(backend, {
    name: 'norm.grad.merge',
    code: BFIN_CODE,
    dispatch: fold(n),
    uniforms: BFIN.pack({ B, C, P: l.P, S, K, n }),
    inputs: [part],
    outputs: [coef],
  })
  backend.disposeData(part.dataId)
  const dh = newOutput(backend, h.shape)
  const outs = [dh]
  if (r) outs.push(newOutput(backend, r.shape))
  run(backend, {
    name: 'norm.grad.apply',
    code: memo(`norm.bapply/${T}/${!!r}/${at.act}`, () => bwdApplyCode(T, !!r, at.act)),
    dispatch: rowsDispatch(l),
    uniforms: BAPPLY.pack({ ...rows, slope: at.slope }),
    inputs: [...ins, coef],
    outputs: outs,
  })
  backend.disposeData(coef.dataId)
  return outs
}

defineKernel('DsdNormAct', (inputs, backend, attrs) =>
  forward(backend, inputs.h!, undefined, attrsOf(attrs)),
)
defineKernel('DsdNormAddAct', (inputs, backend, attrs) =>
  forward(backend, inputs.h!, inputs.r!, attrsOf(attrs)),
)
defineKernel(
  'DsdNormActGrad',
  (inputs, backend, attrs) =>
    backward(backend, inputs.dy!, inputs.h!, undefined, inputs.stats!, attrsOf(attrs))[0]!,
)
defineKernel('DsdNormAddActGrad', (inputs, backend, attrs) =>
  backward(backend, inputs.dy!, inputs.h!, inputs.r!, inputs.stats!, attrsOf(attrs)),
)

defineGradient(
  'DsdNormAct',
  ['h'],
  (dys, saved, attrs) => {
    const [h, stats] = saved as [tf.Tensor, tf.Tensor]
    const dy = (Array.isArray(dys) ? dys[0] : dys)!
    return { h: () => runKernel('DsdNormActGrad', { dy, h, stats }, attrs) }
  },
  [false, true],
)

defineGradient(
  'DsdNormAddAct',
  ['h', 'r'],
  (dys, saved, attrs) => {
    const [h, r, stats] = saved as [tf.Tensor, tf.Tensor, tf.Tensor]
    const dy = (Array.isArray(dys) ? dys[0] : dys)!
    // both gradients come from one pass; computed here (outside the per-input tidy) so that
    // an unused one is released with the backward pass's scope instead of leaking
    const [dh, dr] = runKernel<tf.Tensor[]>('DsdNormAddActGrad', { dy, h, r, stats }, attrs)
    return { h: () => dh!, r: () => dr! }
  },
  [false, true],
)

function check(x: tf.Tensor, what: string): void {
  if (x.rank < 3) throw new Error(`${what}: expected [b, …, c], got [${x.shape}]`)
}

/**
 * `act(instanceNorm(h))` with `act` = LeakyReLU(`slope`) or none (`slope = null`), on WebGPU.
 */
export function normActGpu<R extends tf.Tensor>(h: R, eps: number, slope: number | null): R {
  check(h, 'instanceNorm')
  const [y] = runKernel<tf.Tensor[]>(
    'DsdNormAct',
    { h },
    {
      eps,
      slope: slope ?? 0,
      act: slope !== null,
      normR: false,
    },
  )
  return y as R
}

/**
 * `act(instanceNorm(h) + (normR ? instanceNorm(r) : r))` on WebGPU (the residual join of
 * `UnetResBlock`), `act` = LeakyReLU(`slope`) or none (`slope = null`).
 */
export function normAddActGpu<R extends tf.Tensor>(
  h: R,
  r: tf.Tensor,
  normR: boolean,
  eps: number,
  slope: number | null,
): R {
  check(h, 'instanceNorm')
  if (h.shape.join() !== r.shape.join()) {
    throw new Error(`instanceNorm + residual: shapes differ: [${h.shape}] vs [${r.shape}]`)
  }
  const [y] = runKernel<tf.Tensor[]>(
    'DsdNormAddAct',
    { h, r },
    {
      eps,
      slope: slope ?? 0,
      act: slope !== null,
      normR,
    },
  )
  return y as R
}
