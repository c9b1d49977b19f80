/**
 * The DSD loss (dsd-spec §3) on WebGPU in a handful of passes over the full-resolution
 * outputs, with no readback: the loss value, the 11 terms and the gradients all stay on the
 * GPU, and the backward reads the upstream gradient of every term from a GPU buffer.
 *
 * The outputs are read in three groups, each in one pass per direction:
 *   Y                     Dice-CE
 *   D1 (teacher), D2–D4   Dice-CE on each, τ²·KL(D1‖D4), KL(D1‖D3), KL(D1‖D2)
 *   E4 (teacher), E1–E3   τ²·KL(E4‖E1), KL(E4‖E2), KL(E4‖E3)
 * Forward: per group, one pass accumulates per (sample, chunk) the Dice sums Σp·g and Σp per
 * class, the class counts Σg, the CE sum and the KL sums (each invocation one voxel at a time,
 * all classes in registers, then a workgroup reduction), one pass sums the chunks; a last
 * dispatch turns the sums into the terms, the weighted total and the per-(sample, class)
 * Dice coefficients the backward needs. Backward: one pass per group writes the gradient of
 * every output of the group, summing the contributions of all its terms:
 *
 *   Dice-CE:  ∂/∂l = p ⊙ (γ − ⟨p, γ⟩)·w/(bK) + (p − g)·w/N,   γ_k = (2I + s)/D² − g_k·2/D
 *   KL:       ∂/∂s = w·τ/N·(q − p_t),   ∂/∂t = w·τ/N·p_t ⊙ (log p_t − log q − KL)
 *
 * (N = b·d·h·w voxels, D = P + G + s, w = upstream·weight of the term.) Class counts are
 * small (3–8), so a voxel's classes are unrolled into registers.
 */
import { tf } from '../../tf'
import { targetGroups } from './occupancy'
import { TERM_NAMES } from '../../loss-terms'
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

/** Output names in the order of the `DsdLoss` kernel's tensor inputs. */
export const LOSS_OUTPUTS = ['Y', 'D4', 'D3', 'D2', 'D1', 'E1', 'E2', 'E3', 'E4'] as const
type OutName = (typeof LOSS_OUTPUTS)[number]

/** The 11 terms, in golden/dsd/loss.json order (the kernel's value is [total, ...terms]). */
export const LOSS_TERMS = TERM_NAMES

const SMOOTH = 1e-5

/** One pass: its tensors (teacher first), Dice-CE entries and KL pairs. */
interface Group {
  tensors: OutName[]
  /** [tensor index, term index] */
  dce: [number, number][]
  /** [teacher index, student index, term index] */
  kl: [number, number, number][]
}

/** Which terms are computed (flags per term index) → the groups. */
function groupsFor(terms: boolean[]): Group[] {
  const groups: Group[] = []
  if (terms[0]) groups.push({ tensors: ['Y'], dce: [[0, 0]], kl: [] })
  const dec: Group = { tensors: ['D1', 'D2', 'D3', 'D4'], dce: [], kl: [] }
  // dce_D4..dce_D1 are terms 1..4; kl_dec_D4..D2 terms 5..7
  const di: Record<string, number> = { D1: 0, D2: 1, D3: 2, D4: 3 }
  ;(['D4', 'D3', 'D2', 'D1'] as const).forEach((n, i) => {
    if (terms[1 + i]) dec.dce.push([di[n]!, 1 + i])
  })
  ;(['D4', 'D3', 'D2'] as const).forEach((n, i) => {
    if (terms[5 + i]) dec.kl.push([0, di[n]!, 5 + i])
  })
  const enc: Group = { tensors: ['E4', 'E1', 'E2', 'E3'], dce: [], kl: [] }
  ;[1, 2, 3].forEach((s, i) => {
    if (terms[8 + i]) enc.kl.push([0, s, 8 + i])
  })
  for (const g of [dec, enc]) {
    if (!g.dce.length && !g.kl.length) continue
    const used = new Set<number>([...g.dce.map((d) => d[0]), ...g.kl.flatMap((k) => [k[0], k[1]])])
    const keep = g.tensors.map((_, i) => i).filter((i) => used.has(i))
    const remap = new Map(keep.map((old, i) => [old, i]))
    groups.push({
      tensors: keep.map((i) => g.tensors[i]!),
      dce: g.dce.map(([t, term]) => [remap.get(t)!, term]),
      kl: g.kl.map(([t, s, term]) => [remap.get(t)!, remap.get(s)!, term]),
    })
  }
  return groups
}

/** Stats per group: per Dice entry K inter + K psum + 1 ce, then K gsum (if any Dice), then 1 per KL. */
function statCount(g: Group, K: number): number {
  return g.dce.length * (2 * K + 1) + (g.dce.length ? K : 0) + g.kl.length
}

const FWD = new Params(['B', 'S', 'Z', 'rpc'], 0, ['invT'])

/** WGSL: load a voxel's K logits of tensor `t` into `l{t}_{k}` (scaled by `scale`). */
function loadRow(name: string, K: number, prefix: string, scale = ''): string {
  return rep(K, (k) => `let ${prefix}${k} = ${name}[o + ${k}]${scale};`, ' ')
}

/** WGSL: log-softmax of `${src}k` into `${dst}k` (and the log-sum-exp shift). */
function logSoftmax(K: number, src: string, dst: string): string {
  const mx = `${dst}mx`
  return `let ${mx} = max(${rep(K, (k) => `${src}${k}`, ', ')
    .split(', ')
    .reduce((a, b) => `max(${a}, ${b})`)}, ${src}0);
    let ${dst}se = ${rep(K, (k) => `exp(${src}${k} - ${mx})`, ' + ')};
    let ${dst}lse = ${mx} + log(${dst}se);
    ${rep(K, (k) => `let ${dst}${k} = ${src}${k} - ${dst}lse;`, ' ')}`
}

function forwardCode(g: Group, K: number, WG: number): string {
  const NS = statCount(g, K)
  const names = g.tensors.map((_, i) => `t${i}`)
  const acc: string[] = []
  const lines: string[] = []
  const gsumBase = g.dce.length * (2 * K + 1)
  g.dce.forEach(([t], d) => {
    const base = d * (2 * K + 1)
    lines.push(`{ ${logSoftmax(K, `l${t}_`, `ls${d}_`)}
      ${rep(K, (k) => `let p${k} = exp(ls${d}_${k}); s${base + K + k} += p${k}; s${base + k} += select(0.0, p${k}, lab == ${k});`, ' ')}
      ${rep(K, (k) => `if (lab == ${k}) { s${base + 2 * K} -= ls${d}_${k}; }`, ' ')} }`)
  })
  if (g.dce.length) lines.push(rep(K, (k) => `if (lab == ${k}) { s${gsumBase + k} += 1.0; }`, ' '))
  g.kl.forEach(([t, s], j) => {
    lines.push(`{ ${rep(K, (k) => `let a${k} = l${t}_${k} * invT; let c${k} = l${s}_${k} * invT;`, ' ')}
      ${logSoftmax(K, 'a', 'lt')}
      ${logSoftmax(K, 'c', 'lq')}
      s${gsumBase + (g.dce.length ? K : 0) + j} += ${rep(K, (k) => `exp(lt${k}) * (lt${k} - lq${k})`, ' + ')}; }`)
  })
  for (let i = 0; i < NS; i++) acc.push(`var s${i} = 0.0;`)
  const needLab = g.dce.length > 0
  return `
${bindings([...(needLab ? [{ name: 'labels', type: 'i32' }] : []), ...names.map((name) => ({ name }))], [{ name: 'part' }], FWD.members())}
var<workgroup> red: array<f32, ${WG * NS}>;
@compute @workgroup_size(${WG}) fn main(${MAIN_ARGS}) {
  ${FWD.lets()}
  let g = i32(${WG_LINEAR});
  let b = g / Z;
  let z = g % Z;
  ${acc.join(' ')}
  if (b < B) {
    let r1 = min((z + 1) * rpc, S);
    for (var row = z * rpc + i32(lid); row < r1; row += ${WG}) {
      let v = b * S + row;
      let o = v * ${K};
      ${needLab ? 'let lab = labels[v];' : ''}
      ${g.tensors.map((_, t) => loadRow(`t${t}`, K, `l${t}_`)).join('\n      ')}
      ${lines.join('\n      ')}
    }
  }
  ${rep(NS, (i) => `red[${i} * ${WG} + i32(lid)] = s${i};`, ' ')}
  workgroupBarrier();
  if (b >= B) { return; }
  for (var i = i32(lid); i < ${NS}; i += ${WG}) {
    var t = 0.0;
    for (var l = 0; l < ${WG}; l++) { t += red[i * ${WG} + l]; }
    part[(b * Z + z) * ${NS} + i] = t;
  }
}`
}

const SUM = new Params(['Z', 'n', 'NS'])

const SUM_CODE = `
${bindings([{ name: 'part' }], [{ name: 'sums' }], SUM.members())}
@compute @workgroup_size(64) fn main(${MAIN_ARGS}) {
  ${SUM.lets()}
  let i = i32(${WG_LINEAR} * 64u + lid);
  if (i >= n) { return; }
  let b = i / NS;
  let s = i % NS;
  var t = 0.0;
  for (var z = 0; z < Z; z++) { t += part[(b * Z + z) * NS + s]; }
  sums[i] = t;
}`

/** Uniform names of the 11 term weights. */
const TERM_WEIGHTS = LOSS_TERMS.map((_, i) => `w${i}`)

const TERMS = new Params(['B', 'K'], 0, [
  'N',
  'tau2',
  ...TERM_WEIGHTS,
])

/** Terms, total and the Dice coefficients (A = (2I+s)/D², G = 2/D per entry, sample, class). */
function termsCode(groups: Group[], K: number): string {
  const body: string[] = []
  let coefEntry = 0
  groups.forEach((g, gi) => {
    const NS = statCount(g, K)
    const gsumBase = g.dce.length * (2 * K + 1)
    g.dce.forEach(([, term], d) => {
      const base = d * (2 * K + 1)
      body.push(`{ var dice = 0.0; var ce = 0.0;
    for (var b = 0; b < B; b++) {
      let o = b * ${NS};
      ce += sums${gi}[o + ${base + 2 * K}];
      for (var k = 0; k < K; k++) {
        let inter = sums${gi}[o + ${base} + k]; let ps = sums${gi}[o + ${base + K} + k]; let gs = sums${gi}[o + ${gsumBase} + k];
        let den = ps + gs + ${SMOOTH};
        dice += 1.0 - (2.0 * inter + ${SMOOTH}) / den;
        let co = ((${coefEntry} * B + b) * K + k) * 2;
        coef[co] = (2.0 * inter + ${SMOOTH}) / (den * den);
        coef[co + 1] = 2.0 / den;
      }
    }
    val[${1 + term}] = dice / f32(B * K) + ce / N; }`)
      coefEntry++
    })
    g.kl.forEach(([, , term], j) => {
      const s = gsumBase + (g.dce.length ? K : 0) + j
      body.push(
        `{ var t = 0.0; for (var b = 0; b < B; b++) { t += sums${gi}[b * ${NS} + ${s}]; } val[${1 + term}] = t / N * tau2; }`,
      )
    })
  })
  const w = (i: number) => `w${i}`
  return `
${bindings(
  groups.map((_, i) => ({ name: `sums${i}` })),
  [{ name: 'val' }, { name: 'coef' }],
  TERMS.members(),
)}
@compute @workgroup_size(1) fn main() {
  ${TERMS.lets()}
  for (var i = 0; i < 12; i++) { val[i] = 0.0; }
  ${body.join('\n  ')}
  var total = 0.0;
  ${rep(11, (i) => `total += ${w(i)} * val[${1 + i}];`, ' ')}
  val[0] = total;
}`
}

const BWD = new Params(['B', 'S', 'K', 'lanes'], 0, [
  'N',
  'invT',
  'tau',
  ...TERM_WEIGHTS,
])

function backwardCode(g: Group, K: number, coefBase: number, write: number[]): string {
  const needLab = g.dce.length > 0
  const T = g.tensors.length
  const lines: string[] = []
  lines.push(rep(T, (t) => rep(K, (k) => `var d${t}_${k} = 0.0;`, ' ')))
  g.dce.forEach(([t, term], d) => {
    lines.push(`{ let wt = dy[0] * w${term} + dy[${1 + term}];
      let cd = wt / f32(B * K); let cc = wt / N;
      ${logSoftmax(K, `l${t}_`, `ls${d}_`)}
      ${rep(K, (k) => `let p${k} = exp(ls${d}_${k});`, ' ')}
      ${rep(K, (k) => `let co${k} = ((${coefBase + d} * B + b) * K + ${k}) * 2; let gm${k} = coef[co${k}] - select(0.0, coef[co${k} + 1], lab == ${k});`, ' ')}
      let dot = ${rep(K, (k) => `p${k} * gm${k}`, ' + ')};
      ${rep(K, (k) => `d${t}_${k} += cd * p${k} * (gm${k} - dot) + cc * (select(0.0, p${k}, lab >= 0 && lab < K) - select(0.0, 1.0, lab == ${k}));`, ' ')} }`)
  })
  g.kl.forEach(([t, s, term]) => {
    lines.push(`{ let wt = dy[0] * w${term} + dy[${1 + term}];
      let c = wt * tau / N;
      ${rep(K, (k) => `let a${k} = l${t}_${k} * invT; let e${k} = l${s}_${k} * invT;`, ' ')}
      ${logSoftmax(K, 'a', 'lt')}
      ${logSoftmax(K, 'e', 'lq')}
      let kl = ${rep(K, (k) => `exp(lt${k}) * (lt${k} - lq${k})`, ' + ')};
      ${rep(K, (k) => `{ let pt = exp(lt${k}); d${s}_${k} += c * (exp(lq${k}) - pt); d${t}_${k} += c * pt * (lt${k} - lq${k} - kl); }`, ' ')} }`)
  })
  const names = g.tensors.map((_, i) => `t${i}`)
  return `
${bindings(
  [
    ...(needLab ? [{ name: 'labels', type: 'i32' }] : []),
    ...names.map((name) => ({ name })),
    { name: 'coef' },
    { name: 'dy' },
  ],
  write.map((i) => ({ name: `g${i}` })),
  BWD.members(),
)}
@compute @workgroup_size(64) fn main(${MAIN_ARGS}) {
  ${BWD.lets()}
  let v = i32(${WG_LINEAR} * 64u + lid);
  if (v >= lanes) { return; }
  let b = v / S;
  let o = v * ${K};
  ${needLab ? 'let lab = labels[v];' : ''}
  ${g.tensors.map((_, t) => loadRow(`t${t}`, K, `l${t}_`)).join('\n  ')}
  ${lines.join('\n  ')}
  ${write.map((t) => rep(K, (k) => `g${t}[o + ${k}] = d${t}_${k};`, ' ')).join('\n  ')}
}`
}

let storageOverride: number | null = null

/** Storage buffers one dispatch may bind on this device. */
function storageLimit(backend: WebGPUBackendLike): number {
  return storageOverride ?? backend.device.limits.maxStorageBuffersPerShaderStage
}

/** Pretend the device binds only `n` storage buffers per dispatch (tests); `null` resets. */
export function setLossStorageLimit(n: number | null): void {
  storageOverride = n
}

interface LossAttrs {
  K: number
  terms: boolean[]
  weights: number[]
  temperature: number
}

function attrsOf(a: Record<string, unknown>): LossAttrs {
  return {
    K: Number(a.K),
    terms: (a.terms as number[]).map((v) => v !== 0),
    weights: a.weights as number[],
    temperature: Number(a.temperature),
  }
}

function weightUniforms(w: number[]): Record<string, number> {
  const out: Record<string, number> = {}
  w.forEach((v, i) => (out[`w${i}`] = v))
  return out
}

/** The labels, the voxel count N, the batch B and the voxels per sample S of a loss call. */
function lossDims(inputs: Record<string, tf.TensorInfo>): { labels: tf.TensorInfo; N: number; B: number; S: number } {
  const labels = inputs.labels!
  const N = labels.shape.reduce((a, b) => a * b, 1)
  const any = LOSS_OUTPUTS.map((n) => inputs[n]).find((t) => t)!
  const B = any.shape[0]!
  return { labels, N, B, S: N / B }
}

function forward(
  backend: WebGPUBackendLike,
  inputs: Record<string, tf.TensorInfo>,
  at: LossAttrs,
): tf.TensorInfo[] {
  const { K } = at
  const { labels, N, B, S } = lossDims(inputs)
  const groups = groupsFor(at.terms)
  const sums: tf.TensorInfo[] = []
  for (const g of groups) {
    const NS = statCount(g, K)
    const WG = NS <= 128 ? 64 : NS <= 256 ? 32 : 16
    if (WG * NS > 8192) throw new Error(`DSD loss kernel: ${K} classes are too many for one pass`)
    const Z = Math.max(1, Math.min(S, 1024, Math.round(targetGroups() / B)))
    const rpc = Math.ceil(S / Z)
    const Zc = Math.ceil(S / rpc)
    const part = newOutput(backend, [B, Zc, NS])
    const ins = [...(g.dce.length ? [labels] : []), ...g.tensors.map((n) => inputs[n]!)]
    run(backend, {
      name: 'loss.fwd',
      code: memo(`loss.fwd/${JSON.stringify(g)}/${K}/${WG}`, () => forwardCode(g, K, WG)),
      dispatch: fold(B * Zc),
      uniforms: FWD.pack({ B, S, Z: Zc, rpc, invT: 1 / at.temperature }),
      inputs: ins,
      outputs: [part],
    })
    const sum = newOutput(backend, [B, NS])
    run(backend, {
      name: 'loss.sum',
      code: SUM_CODE,
      dispatch: fold(Math.ceil((B * NS) / 64)),
      uniforms: SUM.pack({ Z: Zc, n: B * NS, NS }),
      inputs: [part],
      outputs: [sum],
    })
    backend.disposeData(part.dataId)
    sums.push(sum)
  }
  const entries = groups.reduce((n, g) => n + g.dce.length, 0)
  const val = newOutput(backend, [12])
  const coef = newOutput(backend, [Math.max(1, entries), B, K, 2])
  run(backend, {
    name: 'loss.terms',
    code: memo(`loss.terms/${JSON.stringify(groups)}/${K}`, () => termsCode(groups, K)),
    dispatch: [1, 1, 1],
    uniforms: TERMS.pack({
      B,
      K,
      N,
      tau2: at.temperature * at.temperature,
      ...weightUniforms(at.weights),
    }),
    inputs: sums,
    outputs: [val, coef],
  })
  for (const s of sums) backend.disposeData(s.dataId)
  return [val, coef]
}

function backward(
  backend: WebGPUBackendLike,
  inputs: Record<string, tf.TensorInfo>,
  coef: tf.TensorInfo,
  dy: tf.TensorInfo,
  at: LossAttrs,
): Partial<Record<OutName, tf.TensorInfo>> {
  const { K } = at
  const { labels, N, B, S } = lossDims(inputs)
  const out: Partial<Record<OutName, tf.TensorInfo>> = {}
  let coefBase = 0
  for (const g of groupsFor(at.terms)) {
    const grads = g.tensors.map((n) => newOutput(backend, inputs[n]!.shape))
    const ins = [...(g.dce.length ? [labels] : []), ...g.tensors.map((n) => inputs[n]!), coef, dy]
    // one pass writes every gradient of the group when the device binds enough storage
    // buffers (11 for four outputs); otherwise the pass is repeated for subsets of them
    const per = Math.max(1, storageLimit(backend) - ins.length)
    for (let first = 0; first < grads.length; first += per) {
      const write = grads.map((_, i) => i).slice(first, first + per)
      run(backend, {
        name: 'loss.grad',
        code: memo(`loss.grad/${JSON.stringify(g)}/${K}/${coefBase}/${write}`, () =>
          backwardCode(g, K, coefBase, write),
        ),
        dispatch: fold(Math.ceil(N / 64)),
        uniforms: BWD.pack({
          B,
          S,
          K,
          lanes: N,
          N,
          invT: 1 / at.temperature,
          tau: at.temperature,
          ...weightUniforms(at.weights),
        }),
        inputs: ins,
        outputs: write.map((i) => grads[i]!),
      })
    }
    g.tensors.forEach((n, i) => {
      const prev = out[n]
      if (prev) throw new Error(`DSD loss kernel: ${n} appears in two groups`)
      out[n] = grads[i]!
    })
    coefBase += g.dce.length
  }
  return out
}

defineKernel('DsdLoss', (inputs, backend, attrs) => forward(backend, inputs, attrsOf(attrs)))
defineKernel('DsdLossGrad', (inputs, backend, attrs) => {
  const at = attrsOf(attrs)
  const grads = backward(backend, inputs, inputs.coef!, inputs.dy!, at)
  return LOSS_OUTPUTS.filter((n) => inputs[n]).map((n) => grads[n]!)
})

defineGradient(
  'DsdLoss',
  ['labels', ...LOSS_OUTPUTS],
  (dys, saved, attrs) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys)!
    const [labels, ...rest] = saved
    const coef = rest[rest.length - 1]!
    const present = (attrs.present as number[]).map((v) => v !== 0)
    const ins: Record<string, tf.Tensor> = { labels: labels!, coef, dy }
    let j = 0
    LOSS_OUTPUTS.forEach((n, i) => {
      const t = rest[j++]
      if (present[i]) ins[n] = t!
    })
    // every output's gradient comes from the same passes: computed once here (outside the
    // per-input tidy, so unused ones are released with the backward pass)
    const grads = runKernel<tf.Tensor[]>('DsdLossGrad', ins, attrs)
    const map: Record<string, () => tf.Tensor> = {}
    LOSS_OUTPUTS.filter((_, i) => present[i]).forEach((n, i) => (map[n] = () => grads[i]!))
    return map
  },
  [false, true],
)

/**
 * The DSD loss on WebGPU: `outputs` holds the logits the terms need, `labels` int class
 * indices; `terms[i]` says whether term i (golden order) is computed and `weights[i]` its
 * weight in the total. Returns `[total, ...11 terms]` (absent terms 0) as one GPU tensor.
 */
export function dsdLossGpu(
  outputs: Partial<Record<OutName, tf.Tensor>>,
  labels: tf.Tensor,
  terms: boolean[],
  weights: number[],
  temperature: number,
): tf.Tensor1D {
  const first = LOSS_OUTPUTS.map((n) => outputs[n]).find((t) => t)
  if (!first) throw new Error('dsdLossGpu: no outputs')
  const K = first.shape[first.rank - 1]!
  const lab = labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32')
  // the tape saves every input named in inputsToSave: absent outputs are stood in by labels
  const inputs: Record<string, tf.Tensor> = { labels: lab }
  const present = LOSS_OUTPUTS.map((n) => (outputs[n] ? 1 : 0))
  for (const n of LOSS_OUTPUTS) inputs[n] = outputs[n] ?? lab
  const attrs = { K, terms: terms.map((t) => (t ? 1 : 0)), weights, temperature, present }
  // absent outputs must not be bound as logits: the kernel looks them up by name only
  // through the groups, which never name an absent one
  const [val] = runKernel<tf.Tensor[]>('DsdLoss', inputs, attrs)
  return val as tf.Tensor1D
}
