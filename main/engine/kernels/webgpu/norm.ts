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
 * chunk, channel group), so every pass reads whole rows and no barrier is needed. The stats
 * are an extra kernel output that the tape saves for the backward (a few floats).
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
}

function layout(B: number, S: number, C: number): Layout {
  const CG = C >= WG ? Math.ceil(C / WG) : 1
  const RL = C >= WG ? 1 : Math.floor(WG / C)
  const CL = Math.min(C, WG)
  const Z = Math.max(1, Math.min(S, 256, Math.round(targetGroups() / (B * CG))))
  const rpc = Math.ceil(S / Z)
  return { B, S, C, Z: Math.ceil(S / rpc), CG, RL, CL, rpc, P: Math.ceil(S / rpc) * RL }
}

const ROWS = ['B', 'S', 'C', 'Z', 'CG', 'RL', 'CL', 'rpc', 'P']

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
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${STATS.lets()}
  ${LANE}
  ${rep(T, (t) => `var n${t} = 0.0; var m${t} = 0.0; var q${t} = 0.0;`, ' ')}
  for (var row = z * rpc + rl; row < r1; row += RL) {
    let o = base + row * C;
    ${rep(T, (t) => `{ let v = ${names[t]}[o]; n${t} += 1.0; let d = v - m${t}; m${t} += d / n${t}; q${t} += d * (v - m${t}); }`)}
  }
  let p = z * RL + rl;
  ${rep(T, (t) => `{ let o = (((${t} * B + b) * P + p) * 3) * C + ch; part[o] = n${t}; part[o + C] = m${t}; part[o + 2 * C] = q${t}; }`)}
}`
}

const FIN = new Params(['B', 'C', 'P', 'S', 'n'], 0, ['eps'])

const FIN_CODE = `
${bindings([{ name: 'part' }], [{ name: 'stats' }], FIN.members())}
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${FIN.lets()}
  let i = i32(${WG_LINEAR} * ${WG}u + lid);
  if (i >= n) { return; }
  let c = i % C;
  let tb = i / C;
  var cnt = 0.0; var mean = 0.0; var m2 = 0.0;
  for (var p = 0; p < P; p++) {
    let o = ((tb * P + p) * 3) * C + c;
    let nb = part[o];
    if (nb > 0.0) {
      let mb = part[o + C];
      let tot = cnt + nb;
      let d = mb - mean;
      mean += d * (nb / tot);
      m2 += part[o + 2 * C] + d * d * (cnt * nb / tot);
      cnt = tot;
    }
  }
  stats[tb * 2 * C + c] = mean;
  stats[tb * 2 * C + C + c] = inverseSqrt(max(m2 / f32(S), 0.0) + eps);
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

/** Backward partial sums: s0 = Σg, s1 = Σg·x̂_h, s2 = Σg·x̂_r. */
function bwdPartialCode(T: number, hasR: boolean, act: boolean): string {
  const ins = hasR ? ['dy', 'h', 'r', 'stats'] : ['dy', 'h', 'stats']
  const K = T === 2 ? 3 : 2
  return `
${normHead(ins, 'part', BPART, T)}
  var s0 = 0.0; var s1 = 0.0; var s2 = 0.0;
  for (var row = z * rpc + rl; row < r1; row += RL) {
    let o = base + row * C;
    let xh = (h[o] - mh) * rh;
    ${T === 2 ? 'let xr = (r[o] - mr) * rr;' : ''}
    let pre = xh${hasR ? (T === 2 ? ' + xr' : ' + r[o]') : ''};
    let gg = dy[o]${act ? ' * select(slope, 1.0, pre > 0.0)' : ''};
    s0 += gg; s1 += gg * xh;${T === 2 ? ' s2 += gg * xr;' : ''}
  }
  let o = ((b * P + z * RL + rl) * ${K}) * C + ch;
  part[o] = s0; part[o + C] = s1;${T === 2 ? ' part[o + 2 * C] = s2;' : ''}
}`
}

const BFIN = new Params(['B', 'C', 'P', 'S', 'K', 'n'])

const BFIN_CODE = `
${bindings([{ name: 'part' }], [{ name: 'coef' }], BFIN.members())}
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${BFIN.lets()}
  let i = i32(${WG_LINEAR} * ${WG}u + lid);
  if (i >= n) { return; }
  let c = i % C;
  let k = (i / C) % K;
  let b = i / (C * K);
  var s = 0.0;
  for (var p = 0; p < P; p++) { s += part[((b * P + p) * K + k) * C + c]; }
  coef[(b * K + k) * C + c] = s / f32(S);
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
    let o = base + row * C;
    let xh = (h[o] - mh) * rh;
    ${T === 2 ? 'let xr = (r[o] - mr) * rr;' : ''}
    let pre = xh${hasR ? (T === 2 ? ' + xr' : ' + r[o]') : ''};
    let gg = dy[o]${act ? ' * select(slope, 1.0, pre > 0.0)' : ''};
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
  const rows = { B, S, C, Z: l.Z, CG: l.CG, RL: l.RL, CL: l.CL, rpc: l.rpc, P: l.P }
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
    dispatch: fold(Math.ceil(n / WG)),
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
  const rows = { B, S, C, Z: l.Z, CG: l.CG, RL: l.RL, CL: l.CL, rpc: l.rpc, P: l.P }
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
    dispatch: fold(Math.ceil(n / WG)),
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
