/**
 * `createModel(config)`: a DSD network (SelfDistilDynUNet or SelfDistilUNETR) with its
 * weights as named `tf.variable`s, a training forward returning the nine DSD outputs and an
 * inference forward returning only `Y`.
 *
 * `describeModel(config)` gives the same layer summary and parameter counts without
 * allocating anything (used by `dsd model` and the parameter-count tests at 96³).
 */
import { tf } from './tf'
import { DsdError } from '../errors'
import { ModelBuilder, sizeOf, type Init, type LayerRow, type ParamSpec } from './layers'
import { OUTPUT_NAMES, SelfDistilDynUNet, type OutputName, type TrainOutputs } from './dynunet'
import { SelfDistilUNETR, defaultTaps } from './unetr'
import { Rng } from './random'

export { OUTPUT_NAMES, type OutputName, type TrainOutputs }

/** Backbone families. */
export type Backbone = 'dynunet' | 'unetr'

/** What `createModel` accepts: a backbone, an optional preset and overrides. */
export interface ModelConfig {
  backbone: Backbone
  /** Preset name (`mmwhs`, `brats`, `small`); default `small`. */
  preset?: string
  /** Input channels (modalities); default from the preset. */
  inChannels?: number
  /** Classes K including background; default from the preset. */
  numClasses?: number
  /** Training patch `[d, h, w]` (a multiple of 16 on each axis); default from the preset. */
  patch?: [number, number, number]
  /** Seed of the weight initialisation (default 100, the reference `freeze_seed(100)`). */
  seed?: number
  /** DynUNet: channels per level (5 entries). */
  filters?: number[]
  /** UNETR: feature size F. */
  featureSize?: number
  /** UNETR: ViT hidden size. */
  hidden?: number
  /** UNETR: ViT layers. */
  layers?: number
  /** UNETR: ViT heads. */
  heads?: number
  /** UNETR: ViT MLP width. */
  mlp?: number
  /** UNETR: ViT blocks feeding encoder2/3/4. */
  taps?: [number, number, number]
}

/** A config with every field resolved. */
export interface ResolvedModelConfig {
  backbone: Backbone
  preset: string
  inChannels: number
  numClasses: number
  patch: [number, number, number]
  seed: number
  /** DynUNet only. */
  filters?: number[]
  /** UNETR only. */
  featureSize?: number
  hidden?: number
  layers?: number
  heads?: number
  mlp?: number
  taps?: [number, number, number]
}

interface Preset {
  description: string
  inChannels: number
  numClasses: number
  patch: number
  filters?: number[]
  featureSize?: number
  hidden?: number
  layers?: number
  heads?: number
  mlp?: number
}

/** Presets per backbone (spec §1, §4, §6). */
export const PRESETS: Record<Backbone, Record<string, Preset>> = {
  dynunet: {
    mmwhs: {
      description: 'MMWHS CT (spec): filters 32-64-128-256-320, 96³, 1 in, 8 classes',
      inChannels: 1,
      numClasses: 8,
      patch: 96,
      filters: [32, 64, 128, 256, 320],
    },
    brats: {
      description: 'MSD BraTS (spec): filters 16-32-64-128-256, 128³, 4 in, 4 classes',
      inChannels: 4,
      numClasses: 4,
      patch: 128,
      filters: [16, 32, 64, 128, 256],
    },
    small: {
      description: 'CPU-friendly: filters 4-8-16-32-64, 32³, 1 in, 3 classes (hippocampus crops)',
      inChannels: 1,
      numClasses: 3,
      patch: 32,
      filters: [4, 8, 16, 32, 64],
    },
    quick: {
      description: 'Quick start on a CPU: filters 8-16-32-64-128, 32³, 1 in, 3 classes (docs/quickstart-recipe.md)',
      inChannels: 1,
      numClasses: 3,
      patch: 32,
      filters: [8, 16, 32, 64, 128],
    },
  },
  unetr: {
    mmwhs: {
      description: 'MMWHS CT (spec): F 32, ViT 768/12 layers/12 heads/3072, 96³, 1 in, 8 classes',
      inChannels: 1,
      numClasses: 8,
      patch: 96,
      featureSize: 32,
      hidden: 768,
      layers: 12,
      heads: 12,
      mlp: 3072,
    },
    brats: {
      description: 'MSD BraTS (spec): F 16, ViT 768/12/12/3072, 128³, 4 in, 4 classes',
      inChannels: 4,
      numClasses: 4,
      patch: 128,
      featureSize: 16,
      hidden: 768,
      layers: 12,
      heads: 12,
      mlp: 3072,
    },
    small: {
      description: 'CPU-friendly: F 4, ViT 96/4 layers/4 heads/384, 32³, 1 in, 3 classes',
      inChannels: 1,
      numClasses: 3,
      patch: 32,
      featureSize: 4,
      hidden: 96,
      layers: 4,
      heads: 4,
      mlp: 384,
    },
  },
}

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw new DsdError('MODEL_CONFIG', message, details)
}

function posInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    bad(`model config: ${name} must be a positive integer, got ${JSON.stringify(v)}`, {
      field: name,
    })
  }
  return v
}

/** Fill a config from its preset and check it; throws `DsdError('MODEL_CONFIG')` naming the field. */
export function resolveConfig(config: ModelConfig): ResolvedModelConfig {
  const backbone = config.backbone
  if (backbone !== 'dynunet' && backbone !== 'unetr') {
    bad(`model config: backbone must be "dynunet" or "unetr", got ${JSON.stringify(backbone)}`, {
      field: 'backbone',
    })
  }
  const presetName = config.preset ?? 'small'
  const preset = PRESETS[backbone][presetName]
  if (!preset) {
    bad(
      `model config: unknown ${backbone} preset "${presetName}"; choose one of ${Object.keys(PRESETS[backbone]).join(', ')}`,
      { field: 'preset' },
    )
  }
  const patch = config.patch ?? [preset.patch, preset.patch, preset.patch]
  if (!Array.isArray(patch) || patch.length !== 3)
    bad(`model config: patch must be [d, h, w], got ${JSON.stringify(patch)}`)
  patch.forEach((s, i) => posInt(`patch[${i}]`, s))
  if (patch.some((s) => s % 16 !== 0)) {
    bad(
      `model config: patch [${patch.join(', ')}] must be a multiple of 16 on every axis (the network downsamples 4 times by 2${backbone === 'unetr' ? ' and the ViT uses 16³ patches' : ''}); use e.g. [${patch.map((s) => Math.max(16, Math.round(s / 16) * 16)).join(', ')}]`,
      { field: 'patch' },
    )
  }
  const seed = config.seed ?? 100
  if (!Number.isSafeInteger(seed))
    bad(`model config: seed must be an integer, got ${seed}`, { field: 'seed' })
  const base = {
    backbone,
    preset: presetName,
    inChannels: posInt('inChannels', config.inChannels ?? preset.inChannels),
    numClasses: posInt('numClasses', config.numClasses ?? preset.numClasses),
    patch: [...patch] as [number, number, number],
    seed,
  }
  if (base.numClasses < 2)
    bad(`model config: numClasses must be at least 2 (background + 1), got ${base.numClasses}`)
  if (backbone === 'dynunet') {
    const filters = config.filters ?? preset.filters!
    if (!Array.isArray(filters) || filters.length !== 5) {
      bad(
        `model config: filters must list 5 channel counts (one per level), got ${JSON.stringify(filters)}`,
        {
          field: 'filters',
        },
      )
    }
    filters.forEach((f, i) => posInt(`filters[${i}]`, f))
    return { ...base, filters: [...filters] }
  }
  const layers = posInt('layers', config.layers ?? preset.layers)
  const hidden = posInt('hidden', config.hidden ?? preset.hidden)
  const heads = posInt('heads', config.heads ?? preset.heads)
  if (hidden % heads !== 0)
    bad(`model config: hidden ${hidden} must be divisible by heads ${heads}`, { field: 'heads' })
  const taps = config.taps ?? defaultTaps(layers)
  if (taps.length !== 3 || taps.some((t) => !Number.isInteger(t) || t < 0 || t >= layers)) {
    bad(
      `model config: taps must be 3 ViT block indices in 0..${layers - 1}, got ${JSON.stringify(taps)}`,
      {
        field: 'taps',
      },
    )
  }
  return {
    ...base,
    featureSize: posInt('featureSize', config.featureSize ?? preset.featureSize),
    hidden,
    layers,
    heads,
    mlp: posInt('mlp', config.mlp ?? preset.mlp),
    taps: [...taps] as [number, number, number],
  }
}

type Network = SelfDistilDynUNet | SelfDistilUNETR

function build(cfg: ResolvedModelConfig): { mb: ModelBuilder; net: Network } {
  if (cfg.backbone === 'dynunet') {
    const mb = new ModelBuilder('kaiming')
    const net = new SelfDistilDynUNet(mb, {
      inChannels: cfg.inChannels,
      numClasses: cfg.numClasses,
      filters: cfg.filters!,
    })
    return { mb, net }
  }
  const mb = new ModelBuilder('torch')
  const net = new SelfDistilUNETR(mb, {
    inChannels: cfg.inChannels,
    numClasses: cfg.numClasses,
    patch: cfg.patch,
    featureSize: cfg.featureSize!,
    hidden: cfg.hidden!,
    layers: cfg.layers!,
    heads: cfg.heads!,
    mlp: cfg.mlp!,
    taps: cfg.taps,
  })
  return { mb, net }
}

/** Backbone and DSD parameter counts (shared modules counted once). */
export interface ParamCounts {
  backbone: number
  dsd: number
}

/** A model described without allocation. */
export interface ModelDescription {
  config: ResolvedModelConfig
  params: ParamSpec[]
  layers: LayerRow[]
  counts: ParamCounts
  /** DSD parameters as a percentage of the backbone's. */
  overheadPercent: number
}

function countParams(params: ParamSpec[]): ParamCounts {
  const counts = { backbone: 0, dsd: 0 }
  for (const p of params) counts[p.group] += sizeOf(p.shape)
  return counts
}

/** Layer rows and parameter counts of a config, without creating any tensor. */
export function describeModel(config: ModelConfig): ModelDescription {
  const cfg = resolveConfig(config)
  const { mb } = build(cfg)
  const counts = countParams(mb.params)
  return {
    config: cfg,
    params: mb.params,
    layers: mb.rows,
    counts,
    overheadPercent: (100 * counts.dsd) / counts.backbone,
  }
}

/** Options of {@link DsdModel.forward}. */
export interface ForwardOptions {
  /** Training forward: DSD heads are computed. Default false (inference: only `Y`). */
  training?: boolean
  /**
   * Training only: compute just these outputs (`Y` is always included), e.g. the ones a
   * loss variant reads (`requiredOutputs` of loss.ts). Default: all nine.
   */
  outputs?: readonly OutputName[]
}

/** A DSD network with allocated weights. */
export interface DsdModel {
  readonly config: ResolvedModelConfig
  /**
   * Training forward: `x` `[b, d, h, w, inChannels]` → the nine outputs
   * `{ Y, D4, D3, D2, D1, E1, E2, E3, E4 }`, each `[b, d, h, w, K]` logits.
   */
  forward(x: tf.Tensor5D, options: { training: true; outputs?: undefined }): TrainOutputs
  /** Inference forward: only `{ Y }`; the DSD heads are not computed. */
  forward(x: tf.Tensor5D, options?: { training?: false }): { Y: tf.Tensor5D }
  /** Training forward restricted to `outputs` (plus `Y`). */
  forward(x: tf.Tensor5D, options: ForwardOptions): Partial<TrainOutputs> & { Y: tf.Tensor5D }
  /** Weights by model-local name (e.g. `downsamples.0.conv1.weight`, `deep_3.up.bias`). */
  readonly variables: Record<string, tf.Variable>
  /** Names of the DSD-module parameters (the rest is backbone). */
  readonly dsdNames: ReadonlySet<string>
  countParams(): ParamCounts
  /** One row per block (shared DSD modules once). */
  summary(): LayerRow[]
  /** Release every weight. The model must not be used afterwards. */
  dispose(): void
}

let modelCounter = 0
const NO_HEADS: ReadonlySet<OutputName> = new Set()
const ALL_HEADS: ReadonlySet<OutputName> = new Set(OUTPUT_NAMES)

/**
 * Initial values of one parameter, deterministic in (seed, parameter name): each parameter
 * draws from its own engine-core {@link Rng} stream `Rng.derive(seed, 'init/<name>')`, so
 * adding or renaming one parameter does not change the others.
 */
export function initialValues(spec: ParamSpec, seed: number): Float32Array {
  const n = sizeOf(spec.shape)
  const init: Init = spec.init
  if (init.kind === 'zeros') return new Float32Array(n)
  if (init.kind === 'ones') return new Float32Array(n).fill(1)
  const rng = Rng.derive(seed, `init/${spec.name}`)
  if (init.kind === 'uniform') return rng.uniformArray(n, -init.bound, init.bound)
  if (init.kind === 'kaiming-normal') {
    return rng.normalArray(n, 0, Math.sqrt(2 / (1 + init.a * init.a)) / Math.sqrt(init.fanIn))
  }
  // truncated normal on [-2, 2] (absolute bounds, as torch.nn.init.trunc_normal_)
  const out = new Float32Array(n)
  for (let i = 0; i < n;) {
    const v = rng.normal(0, init.std)
    if (v >= -2 && v <= 2) out[i++] = v
  }
  return out
}

/**
 * Create a model: resolve the config, describe the network and allocate every weight as a
 * trainable `tf.variable` (global name `dsd<N>/<local name>`, unique per model instance).
 */
export function createModel(config: ModelConfig): DsdModel {
  const cfg = resolveConfig(config)
  const { mb, net } = build(cfg)
  const id = ++modelCounter
  const variables: Record<string, tf.Variable> = {}
  const dsdNames = new Set<string>()
  try {
    for (const spec of mb.params) {
      const values = initialValues(spec, cfg.seed)
      variables[spec.name] = tf.tidy(() =>
        tf.variable(tf.tensor(values, spec.shape, 'float32'), true, `dsd${id}/${spec.name}`),
      )
      if (spec.group === 'dsd') dsdNames.add(spec.name)
    }
  } catch (err) {
    for (const v of Object.values(variables)) v.dispose()
    throw err
  }
  const counts = countParams(mb.params)
  const lookup = (name: string): tf.Tensor => {
    const v = variables[name]
    if (!v) throw new Error(`model: no parameter "${name}"`)
    if (v.isDisposed) {
      throw new DsdError(
        'MODEL_DISPOSED',
        `model: parameter "${name}" was disposed; create the model again`,
      )
    }
    return v
  }
  let disposed = false
  const checkInput = (x: tf.Tensor5D) => {
    if (disposed)
      throw new DsdError(
        'MODEL_DISPOSED',
        'model: forward() called after dispose(); create the model again',
      )
    if (x.rank !== 5 || x.shape[4] !== cfg.inChannels) {
      throw new DsdError(
        'MODEL_INPUT',
        `model: input must be [b, d, h, w, ${cfg.inChannels}] (channels-last), got [${x.shape.join(', ')}]`,
        { shape: x.shape },
      )
    }
    const [, d, h, w] = x.shape
    if (cfg.backbone === 'unetr') {
      if (d !== cfg.patch[0] || h !== cfg.patch[1] || w !== cfg.patch[2]) {
        throw new DsdError(
          'MODEL_INPUT',
          `model: UNETR was built for patch [${cfg.patch.join(', ')}] (its position embedding is fixed) but got [${d}, ${h}, ${w}]; crop or pad to the patch`,
          { shape: x.shape },
        )
      }
    } else if (d % 16 || h % 16 || w % 16) {
      throw new DsdError(
        'MODEL_INPUT',
        `model: input grid [${d}, ${h}, ${w}] must be a multiple of 16 on every axis (4 stride-2 levels); pad it`,
        { shape: x.shape },
      )
    }
  }
  function forward(x: tf.Tensor5D, options: ForwardOptions = {}) {
    checkInput(x)
    if (!options.training) return net.apply(lookup, x, NO_HEADS)
    if (!options.outputs) return net.apply(lookup, x, ALL_HEADS)
    for (const o of options.outputs) {
      if (!(OUTPUT_NAMES as readonly string[]).includes(o)) {
        throw new DsdError(
          'MODEL_OUTPUT',
          `model: unknown output "${o}"; use ${OUTPUT_NAMES.join(', ')}`,
        )
      }
    }
    return net.apply(lookup, x, new Set(options.outputs))
  }
  return {
    config: cfg,
    forward: forward as DsdModel['forward'],
    variables,
    dsdNames,
    countParams: () => ({ ...counts }),
    summary: () => mb.rows.map((r) => ({ ...r })),
    dispose() {
      if (disposed) return
      disposed = true
      for (const v of Object.values(variables)) v.dispose()
    },
  }
}

/**
 * Copy named weights (e.g. `unpackTrainingState(loadCheckpoint(path)).weights`) into a
 * model. Every model parameter must be present with the same shape; extra names are
 * reported. `source` names the file in error messages.
 */
export function loadWeights(
  model: DsdModel,
  weights: Record<string, tf.Tensor>,
  source = 'checkpoint',
): void {
  const missing = Object.keys(model.variables).filter((n) => !(n in weights))
  const extra = Object.keys(weights).filter((n) => !(n in model.variables))
  const wrong = Object.entries(model.variables)
    .filter(([n, v]) => n in weights && weights[n]!.shape.join() !== v.shape.join())
    .map(([n, v]) => `${n}: file [${weights[n]!.shape.join(', ')}], model [${v.shape.join(', ')}]`)
  if (missing.length || extra.length || wrong.length) {
    const parts = [
      missing.length ? `${missing.length} missing (e.g. ${missing.slice(0, 3).join(', ')})` : '',
      extra.length ? `${extra.length} unknown (e.g. ${extra.slice(0, 3).join(', ')})` : '',
      wrong.length
        ? `${wrong.length} with another shape (e.g. ${wrong.slice(0, 2).join('; ')})`
        : '',
    ].filter(Boolean)
    throw new DsdError(
      'MODEL_WEIGHTS',
      `${source}: weights do not fit this ${model.config.backbone} (${model.config.preset}) model: ${parts.join(', ')}; the file was saved for another configuration — create the model with the configuration stored in the run`,
      { missing, extra, wrong },
    )
  }
  for (const [n, v] of Object.entries(model.variables)) v.assign(weights[n]!)
}
