/**
 * The engine's named settings, free of TensorFlow.js so that the app, the CLI and the run-form
 * code can read them without loading a backend: the model presets per backbone (spec §1, §4,
 * §6) and the loss weights of the DSD variants (the paper's Table 1, spec §8).
 */
import { DsdError } from '../errors'

/** Backbone families. */
export type Backbone = 'dynunet' | 'unetr'

/** The sizes of a network's parts (DynUNet: `filters`; UNETR: the rest). */
export interface ArchitectureSizes {
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
}

/** What a model preset fixes (the rest of a ModelConfig comes from the caller). */
export interface Preset extends ArchitectureSizes {
  description: string
  inChannels: number
  numClasses: number
  /** Patch side in voxels (cubic). */
  patch: number
}

/**
 * Model preset names: `small` and `quick` for CPUs (`quick`: DynUNet only,
 * docs/quickstart-recipe.md), the paper's `mmwhs` and `brats`.
 */
export type PresetName = 'small' | 'quick' | 'mmwhs' | 'brats'

/** Presets per backbone (spec §1, §4, §6). */
export const PRESETS = {
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
} satisfies Record<Backbone, Partial<Record<PresetName, Preset>>>

/** The preset `name` of a backbone, or undefined when that backbone has none of that name. */
export function modelPreset(backbone: Backbone, name: string): Preset | undefined {
  return (PRESETS[backbone] as Partial<Record<string, Preset>>)[name]
}

/**
 * The variants of the paper's Table 1 (spec §8), spelled as everywhere else (run configs, the
 * contract, the CLI and the UI): Basic, DS, SDD, SDE, DSD.
 */
export type AblationName = 'Basic' | 'DS' | 'SDD' | 'SDE' | 'DSD'

/** Loss weights: η (deep supervision), α1 (encoder KL), α2 (decoder KL). */
export interface LossWeights {
  eta: number
  alpha1: number
  alpha2: number
}

export const ABLATIONS: Record<AblationName, LossWeights> = {
  Basic: { eta: 0, alpha1: 0, alpha2: 0 },
  DS: { eta: 1, alpha1: 0, alpha2: 0 },
  SDD: { eta: 1, alpha1: 0, alpha2: 1 },
  SDE: { eta: 1, alpha1: 1, alpha2: 0 },
  DSD: { eta: 1, alpha1: 1, alpha2: 1 },
}

/** The canonical name of a variant typed in any case (`dsd` → `DSD`), or null. */
export function variantName(name: string): AblationName | null {
  const key = name.trim().toLowerCase()
  return (Object.keys(ABLATIONS) as AblationName[]).find((v) => v.toLowerCase() === key) ?? null
}

/** Weights of a variant by name (any case: Basic, DS, SDD, SDE, DSD). */
export function ablation(name: string): LossWeights {
  const key = variantName(name)
  if (!key) {
    throw new DsdError('LOSS_VARIANT', `unknown DSD variant "${name}"; use one of ${Object.keys(ABLATIONS).join(', ')}`, { name })
  }
  return { ...ABLATIONS[key] }
}
