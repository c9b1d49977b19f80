/**
 * Training runs in the contract: the one definition of a run's configuration (`config.json`),
 * of the run form (what the Training page and `dsd train` ask for), of the run state
 * (`state.json`) and of a line of the epoch log (`log.jsonl`). The types are inferred from these
 * schemas; the workspace, the training loop, the CLI and the renderer all use them.
 *
 * A form becomes configs in exactly one place, main/training/run-config.ts (`runConfigs`), which
 * fills what the form leaves out from RUN_DEFAULTS and RUN_PRESETS below and the model presets
 * of main/engine/presets.ts. The renderer reads these defaults through `runs.defaults`.
 */
import { z } from 'zod'
import { BackendName, id } from './shapes'

/** The DSD variants (the paper's Table 1) and `custom` (your own η, α1, α2). */
export const Variant = z.enum(['Basic', 'DS', 'SDD', 'SDE', 'DSD', 'custom'])
export type Variant = z.infer<typeof Variant>

export const Backbone = z.enum(['dynunet', 'unetr'])
export type Backbone = z.infer<typeof Backbone>

/**
 * Model presets (main/engine/presets.ts): `small` and `quick` (DynUNet only) for CPUs, the
 * paper's `mmwhs` and `brats`.
 */
export const ModelPreset = z.enum(['small', 'quick', 'mmwhs', 'brats'])
export type ModelPreset = z.infer<typeof ModelPreset>

/** `auto` picks from the backend ladder, as the About page shows. */
export const BackendChoice = z.enum(['auto', ...BackendName.options])
export type BackendChoice = z.infer<typeof BackendChoice>

/**
 * Arithmetic precision of training: `f32` (the default and the reference) or `f16` (the WebGPU
 * kernels round operands to half precision where the device offers `shader-f16`, with f32
 * accumulation and dynamic loss scaling; elsewhere the run falls back to f32 and says why).
 */
export const Precision = z.enum(['f32', 'f16'])
export type Precision = z.infer<typeof Precision>

/** Preprocessing presets of main/data/preprocess.ts. */
export const PreprocessPreset = z.enum(['mri', 'mmwhs', 'brats'])
export type PreprocessPreset = z.infer<typeof PreprocessPreset>

/** Augmentation presets of main/data/augment.ts. */
export const AugmentPreset = z.enum(['mmwhs', 'brats', 'none'])
export type AugmentPreset = z.infer<typeof AugmentPreset>

/** Loss weights: η (deep supervision), α1 (encoder KL), α2 (decoder KL). */
export const LossWeights = z
  .object({ eta: z.number().min(0).max(100), alpha1: z.number().min(0).max(100), alpha2: z.number().min(0).max(100) })
  .strict()
export type LossWeights = z.infer<typeof LossWeights>

const positiveInt = z.number().int().positive()
/** Each patch axis is a multiple of this (the networks downsample 4 times by 2). */
export const PATCH_MULTIPLE = 16
/** A training patch [d, h, w] in voxels. */
const Patch = z.tuple([positiveInt, positiveInt, positiveInt])
/** DynUNet channels per level (5 levels). */
const Filters = z.array(positiveInt).length(5)
const Batch = z.number().int().min(1).max(64)
const Epochs = z.number().int().min(1).max(100000)
const Overlap = z.number().min(0).max(0.95)
const Gamma = z.number().positive().max(1)
const WarmupSteps = z.number().int().min(0)
const Power = z.number().positive().max(10)

/** The learning-rate schedules a run can use (names as the CLI's `--schedule`). */
export const ScheduleKind = z.enum(['step', 'poly'])
export type ScheduleKind = z.infer<typeof ScheduleKind>

/**
 * A run's learning-rate schedule:
 * - `step`: StepLR, stepped once per epoch (`lr · γ^⌊(epoch − 1) / stepSize⌋`); stepSize 0 = constant;
 * - `poly`: set before every step `s` (0-based, counted over the whole run): a linear warm-up
 *   `lr · (s + 1) / warmupSteps`, then `lr · (1 − t)^power` with
 *   `t = (s − warmupSteps) / (totalSteps − warmupSteps)` (nnU-Net's poly; docs/quickstart-recipe.md).
 * Config files written before schedules had a kind read as `step`.
 */
export const Schedule = z.preprocess(
  (v) => (v !== null && typeof v === 'object' && !('kind' in v) ? { kind: 'step', ...v } : v),
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('step'), stepSize: z.number().int().min(0), gamma: Gamma }).strict(),
    z.object({ kind: z.literal('poly'), warmupSteps: WarmupSteps, power: Power }).strict(),
  ]),
)
export type Schedule = z.infer<typeof Schedule>

/**
 * The settings that do not depend on the preset. The form's defaults, the CLI's and the UI's
 * initial values are these.
 */
export const RUN_DEFAULTS = {
  variants: ['DSD'] as Variant[],
  backbone: 'dynunet',
  preset: 'small',
  batch: 2,
  lr: 1e-3,
  weightDecay: 1e-5,
  /** Learning-rate schedule (a preset may set another). */
  schedule: 'step' as ScheduleKind,
  /** StepLR factor; the step size defaults to max(1, ⌊epochs / 6⌋). */
  gamma: 0.5,
  /** Poly schedule: linear warm-up steps and decay power. */
  warmupSteps: 20,
  power: 0.9,
  temperature: 3,
  /** The custom variant's starting weights (those of DSD). */
  weights: { eta: 1, alpha1: 1, alpha2: 1 },
  seed: 100,
  backend: 'auto',
  validateEvery: 1,
  overlap: 0.25,
  precision: 'f32' as Precision,
} as const satisfies Record<string, unknown>

/** What a run preset sets besides the model. */
export interface RunPreset {
  preprocess: PreprocessPreset
  augment: AugmentPreset
  epochs: Record<Backbone, number>
  /** Steps per epoch (default: one pass over the training cases). */
  stepsPerEpoch?: number
  /** Peak learning rate (default RUN_DEFAULTS.lr). */
  lr?: number
  /** Schedule (default RUN_DEFAULTS.schedule, with its warm-up and power). */
  schedule?: ScheduleKind
  warmupSteps?: number
  /** Validate every N epochs and at the last (default RUN_DEFAULTS.validateEvery; 0 = never). */
  validateEvery?: number
}

/**
 * What a preset sets besides the model (spec §3, §4): preprocessing, augmentation and the
 * paper's epoch counts per backbone; the quick start also its steps, rate and schedule. The patch
 * comes with the model preset. The form's own values win over these.
 */
export const RUN_PRESETS: Record<ModelPreset, RunPreset> = {
  small: { preprocess: 'mri', augment: 'mmwhs', epochs: { dynunet: 50, unetr: 50 } },
  // docs/quickstart-recipe.md: 8-16-32-64-128, no augmentation, 300 steps (10 epochs × 30) of
  // AdamW 1e-2 with a 20-step warm-up and poly 0.9 per step, validated once at the end.
  quick: {
    preprocess: 'mri',
    augment: 'none',
    epochs: { dynunet: 10, unetr: 10 },
    stepsPerEpoch: 30,
    lr: 1e-2,
    schedule: 'poly',
    warmupSteps: 20,
    validateEvery: 10,
  },
  mmwhs: { preprocess: 'mmwhs', augment: 'mmwhs', epochs: { dynunet: 300, unetr: 600 } },
  brats: { preprocess: 'brats', augment: 'brats', epochs: { dynunet: 300, unetr: 325 } },
}

/**
 * A run (`runs/<id>/config.json`): dataset + split + fold + model + variant + optimisation +
 * seed + backend. Written once when the run is created; the trainer trains with exactly it.
 */
export const RunConfig = z
  .object({
    /** Folder name under runs/. */
    id,
    datasetId: id,
    /** Split file name under datasets/<id>/splits/ (without .json). */
    split: id,
    /**
     * `sha256:<hex>` of the split's partition when the run was created: predict and evaluate
     * refuse the run once the split file holds another partition (absent in runs created
     * before it was recorded; their manifest.json's split hash is used instead).
     */
    splitHash: z.string().optional(),
    /** 0-based fold index. */
    fold: z.number().int().min(0),
    model: z.object({
      backbone: Backbone,
      preset: ModelPreset,
      /** [d, h, w] training patch (a multiple of 16 on each axis). */
      patch: Patch,
      /** DynUNet channels per level, overriding the preset. */
      filters: Filters.optional(),
    }),
    variant: Variant,
    /** The weights the run trains with (a named variant's fixed ones, or the custom ones). */
    loss: LossWeights.extend({ temperature: z.number().positive() }),
    /** Patches per step (RandCropByPosNegLabel num_samples from one volume). */
    batch: Batch,
    epochs: Epochs,
    /** Steps per epoch; default: one pass over the training volumes. */
    stepsPerEpoch: z.number().int().min(1).optional(),
    optimizer: z.object({ lr: z.number().positive(), weightDecay: z.number().min(0) }),
    /** The learning-rate schedule (see Schedule). */
    schedule: Schedule,
    seed: z.number().int().min(0),
    backend: BackendChoice,
    /** Training precision (see Precision); absent = f32 (configs written before it existed, and every f32 run). */
    precision: Precision.optional(),
    /** Validate every N epochs and at the last one (sliding window on the validation fold); 0 = never. */
    validateEvery: z.number().int().min(0),
    /** Sliding-window settings used for validation and prediction. */
    inference: z.object({ overlap: Overlap, blend: z.enum(['constant', 'gaussian']), mirror: z.boolean() }),
    /**
     * `{ preset: 'mri' | 'mmwhs' | 'brats' }` or full PreprocessSettings (main/data/preprocess.ts);
     * hashed for the cache key.
     */
    preprocessing: z.record(z.string(), z.unknown()),
    augment: AugmentPreset,
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const p = cfg.model.patch
    if (p.some((axis) => axis % PATCH_MULTIPLE !== 0)) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'patch'],
        message: `patch ${p.join('×')} must be a multiple of 16 on each axis (the networks downsample 4 times).`,
      })
    } else if (cfg.augment !== 'none' && p[1] !== p[2]) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'patch'],
        message: `in-plane 90° rotations need a square in-plane patch (h = w), got ${p.join('×')}; use e.g. ${p[0]}×${p[2]}×${p[2]} or augment "none".`,
      })
    }
  })
export type RunConfig = z.infer<typeof RunConfig>

/**
 * The run form: one run, or every chosen fold × every chosen variant. What it leaves out comes
 * from RUN_DEFAULTS, the preset (RUN_PRESETS and the model preset) and the split.
 */
export const RunForm = z
  .object({
    datasetId: id,
    split: id,
    /** Folds to train (0-based); default every fold of the split. */
    folds: z.array(z.number().int().min(0)).min(1).max(50).optional(),
    variants: z.array(Variant).min(1).default(RUN_DEFAULTS.variants),
    /** Run-id prefix; default `<dataset>-<backbone>-<preset>`. */
    name: id.optional(),
    backbone: Backbone.default(RUN_DEFAULTS.backbone),
    preset: ModelPreset.default(RUN_DEFAULTS.preset),
    /** Default: the preset's patch, cubic. */
    patch: Patch.optional(),
    filters: Filters.optional(),
    batch: Batch.default(RUN_DEFAULTS.batch),
    /** Default: the preset's epochs for the backbone. */
    epochs: Epochs.optional(),
    stepsPerEpoch: z.number().int().min(1).optional(),
    /** Peak rate; default the preset's, else RUN_DEFAULTS.lr. */
    lr: z.number().positive().optional(),
    weightDecay: z.number().min(0).default(RUN_DEFAULTS.weightDecay),
    /** Default the preset's, else RUN_DEFAULTS.schedule. */
    schedule: ScheduleKind.optional(),
    /** StepLR step in epochs; default max(1, ⌊epochs / 6⌋); 0 = constant LR. */
    stepSize: z.number().int().min(0).optional(),
    gamma: Gamma.default(RUN_DEFAULTS.gamma),
    /** Poly: linear warm-up steps (default the preset's, else RUN_DEFAULTS.warmupSteps). */
    warmupSteps: WarmupSteps.optional(),
    /** Poly: decay power (default RUN_DEFAULTS.power). */
    power: Power.default(RUN_DEFAULTS.power),
    temperature: z.number().positive().default(RUN_DEFAULTS.temperature),
    /** Required with the 'custom' variant, ignored by the named ones (their weights are fixed). */
    weights: LossWeights.optional(),
    seed: z.number().int().min(0).default(RUN_DEFAULTS.seed),
    backend: BackendChoice.default(RUN_DEFAULTS.backend),
    /** f16 only takes effect on the webgpu backend with shader-f16 (else f32, said in the log). */
    precision: Precision.default(RUN_DEFAULTS.precision),
    /** Default the preset's, else RUN_DEFAULTS.validateEvery. */
    validateEvery: z.number().int().min(0).optional(),
    overlap: Overlap.default(RUN_DEFAULTS.overlap),
    /** Default: the preset's. */
    preprocess: PreprocessPreset.optional(),
    /** Default: the preset's. */
    augment: AugmentPreset.optional(),
  })
  .strict()
  .refine((f) => !f.variants.includes('custom') || f.weights !== undefined, {
    message: "the 'custom' variant needs weights { eta, alpha1, alpha2 }",
    path: ['weights'],
  })
/** A form as a caller writes it (defaults may be left out). */
export type RunFormInput = z.input<typeof RunForm>
/** A form with its defaults applied. */
export type RunForm = z.output<typeof RunForm>

/** What the Training page starts from: the defaults and, per preset, what choosing it sets. */
export const RunFormDefaults = z.object({
  defaults: z.object({
    variants: z.array(Variant),
    backbone: Backbone,
    preset: ModelPreset,
    batch: z.number(),
    lr: z.number(),
    weightDecay: z.number(),
    schedule: ScheduleKind,
    gamma: z.number(),
    warmupSteps: z.number(),
    power: z.number(),
    temperature: z.number(),
    weights: LossWeights,
    seed: z.number(),
    backend: BackendChoice,
    validateEvery: z.number(),
    overlap: z.number(),
    precision: Precision,
  }),
  presets: z.record(
    ModelPreset,
    z.object({
      /** The model preset's description per backbone (absent: that backbone has no such preset). */
      description: z.partialRecord(Backbone, z.string()),
      /** Patch side in voxels (cubic). */
      patch: z.number().int(),
      preprocess: PreprocessPreset,
      augment: AugmentPreset,
      epochs: z.record(Backbone, z.number().int()),
      /** Absent: one pass over the training cases. */
      stepsPerEpoch: z.number().int().optional(),
      lr: z.number(),
      schedule: ScheduleKind,
      warmupSteps: z.number().int(),
      validateEvery: z.number().int(),
    }),
  ),
  /** The fixed weights of each named variant. */
  variants: z.record(z.enum(['Basic', 'DS', 'SDD', 'SDE', 'DSD']), LossWeights),
})
export type RunFormDefaults = z.infer<typeof RunFormDefaults>

/** A run's (and a job's) state, one word each: a run that ended well is `completed`. */
export const RunStatus = z.enum(['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'])
export type RunStatus = z.infer<typeof RunStatus>

/** `runs/<id>/state.json`. */
export const RunState = z.object({
  status: RunStatus,
  /** Last completed epoch (0 = none). */
  epoch: z.number().int(),
  epochs: z.number().int(),
  bestEpoch: z.number().int().nullable(),
  bestMeanDice: z.number().nullable(),
  message: z.string(),
  updatedAt: z.string(),
})
export type RunState = z.infer<typeof RunState>

/** One line of `runs/<id>/log.jsonl` (deterministic fields only; timings go to timing.jsonl). */
export const EpochLog = z.object({
  epoch: z.number().int(),
  lr: z.number(),
  /** Mean of every loss term over the epoch's steps, plus `total`. */
  loss: z.record(z.string(), z.number()),
  steps: z.number().int(),
  /** Per-class validation Dice (class value → Dice) when validated this epoch. */
  valDice: z.record(z.string(), z.number().nullable()).optional(),
  valMeanDice: z.number().optional(),
  /** f16 runs: steps skipped for non-finite gradients, and the loss scale at the epoch's end. */
  skippedSteps: z.number().int().optional(),
  lossScale: z.number().optional(),
})
export type EpochLog = z.infer<typeof EpochLog>

/** A run as the runs table lists it. */
export const RunSummary = z.object({
  id: z.string(),
  datasetId: z.string(),
  split: z.string(),
  fold: z.number().int(),
  variant: Variant,
  backbone: Backbone,
  preset: z.string(),
  state: RunState,
  /** When the run first started training (manifest.json), null before it has started. */
  startedAt: z.string().nullable(),
  /** When it ended (its state's time once completed, failed or cancelled), else null. */
  endedAt: z.string().nullable(),
  /** Seconds spent training its finished epochs (timing.jsonl; pauses and queues not counted). */
  trainingSeconds: z.number(),
})
export type RunSummary = z.infer<typeof RunSummary>
