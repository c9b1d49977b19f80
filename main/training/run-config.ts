/**
 * The one place where a run form becomes run configs: the app's `runs.create`, `dsd train` and
 * the tests all call `runConfigs`, so the same choices give the same `config.json` everywhere.
 * What the form leaves out comes from the contract's RUN_DEFAULTS and RUN_PRESETS and from the
 * engine's model presets; a named variant records its fixed weights, which the trainer then uses
 * as they are.
 */
import { toSafeId } from '../contract/ids'
import {
  RUN_DEFAULTS,
  RUN_PRESETS,
  RunForm,
  type ModelPreset,
  type RunConfig,
  type RunFormDefaults,
  type RunFormInput,
  type Variant,
} from '../contract/runs'
import { PREPROCESS_PRESETS, type PreprocessSettings } from '../data/preprocess'
import { ABLATIONS, modelPreset, PRESETS, type AblationName, type PresetName } from '../engine/presets'
import { DsdError } from '../errors'

// Checked when compiling: the contract's variant and preset names are the engine's.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
export const NAMES_AGREE: [Same<Exclude<Variant, 'custom'>, AblationName>, Same<ModelPreset, PresetName>] = [true, true]

/** A run's folder name: `<prefix>-<variant>-fold<k>`. */
export function runId(prefix: string, variant: Variant, fold: number): string {
  return toSafeId(`${prefix}-${variant}-fold${fold}`)
}

/** Parse a form (filling the contract's defaults); RUN_CONFIG_INVALID names each problem. */
export function parseRunForm(input: RunFormInput): RunForm {
  const parsed = RunForm.safeParse(input)
  if (!parsed.success) {
    throw new DsdError(
      'RUN_CONFIG_INVALID',
      `run form: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(form)'}: ${i.message}`).join('; ')}`,
      { issues: parsed.error.issues },
    )
  }
  return parsed.data
}

/**
 * The configs of a form, folds outermost (so a comparison of variants on fold 0 is complete
 * first). `foldCount` is the number of folds of the form's split; the form's folds must be
 * among them (default: all of them). Pure: nothing is read or written.
 */
export function runConfigs(input: RunFormInput, foldCount: number): RunConfig[] {
  const form = parseRunForm(input)
  const folds = form.folds ?? Array.from({ length: foldCount }, (_, i) => i)
  for (const f of folds) {
    if (f >= foldCount) {
      throw new DsdError('RUN_FOLD_MISSING', `split "${form.split}" has folds 0–${foldCount - 1}; fold ${f} does not exist`, {})
    }
  }
  const preset = RUN_PRESETS[form.preset]
  const model = modelPreset(form.backbone, form.preset)
  if (!model) {
    const names = Object.keys(PRESETS[form.backbone]).join(', ')
    throw new DsdError('RUN_CONFIG_INVALID', `run form: the ${form.backbone} backbone has no "${form.preset}" preset; choose one of ${names}`, { issues: [{ path: ['preset'], message: `the ${form.backbone} backbone has no "${form.preset}" preset; choose one of ${names}` }] })
  }
  const side = model.patch
  const epochs = form.epochs ?? preset.epochs[form.backbone]
  const stepsPerEpoch = form.stepsPerEpoch ?? preset.stepsPerEpoch
  const kind = form.schedule ?? preset.schedule ?? RUN_DEFAULTS.schedule
  const schedule: RunConfig['schedule'] =
    kind === 'poly'
      ? { kind, warmupSteps: form.warmupSteps ?? preset.warmupSteps ?? RUN_DEFAULTS.warmupSteps, power: form.power }
      : { kind, stepSize: form.stepSize ?? Math.max(1, Math.floor(epochs / 6)), gamma: form.gamma }
  const prefix = form.name ?? `${form.datasetId}-${form.backbone}-${form.preset}`
  const out: RunConfig[] = []
  for (const fold of folds) {
    for (const variant of form.variants) {
      const weights = variant === 'custom' ? form.weights! : ABLATIONS[variant]
      out.push({
        id: runId(prefix, variant, fold),
        datasetId: form.datasetId,
        split: form.split,
        fold,
        model: {
          backbone: form.backbone,
          preset: form.preset,
          patch: form.patch ?? [side, side, side],
          ...(form.filters ? { filters: form.filters } : {}),
        },
        variant,
        loss: { eta: weights.eta, alpha1: weights.alpha1, alpha2: weights.alpha2, temperature: form.temperature },
        batch: form.batch,
        epochs,
        ...(stepsPerEpoch ? { stepsPerEpoch } : {}),
        optimizer: { lr: form.lr ?? preset.lr ?? RUN_DEFAULTS.lr, weightDecay: form.weightDecay },
        schedule,
        seed: form.seed,
        backend: form.backend,
        ...(form.precision === 'f16' ? { precision: form.precision } : {}),
        validateEvery: form.validateEvery ?? preset.validateEvery ?? RUN_DEFAULTS.validateEvery,
        inference: { overlap: form.overlap, blend: 'constant', mirror: false },
        preprocessing: { preset: form.preprocess ?? preset.preprocess },
        augment: form.augment ?? preset.augment,
      })
    }
  }
  return out
}

/** What `runs.defaults` answers: the defaults, and per preset what choosing it sets. */
export function runFormDefaults(): RunFormDefaults {
  const presets = Object.fromEntries(
    Object.entries(RUN_PRESETS).map(([name, p]) => {
      const key = name as ModelPreset
      return [
        key,
        {
          description: Object.fromEntries(
            (['dynunet', 'unetr'] as const).flatMap((b) => {
              const m = modelPreset(b, key)
              return m ? [[b, m.description]] : []
            }),
          ),
          patch: PRESETS.dynunet[key].patch,
          preprocess: p.preprocess,
          augment: p.augment,
          epochs: { ...p.epochs },
          ...(p.stepsPerEpoch ? { stepsPerEpoch: p.stepsPerEpoch } : {}),
          lr: p.lr ?? RUN_DEFAULTS.lr,
          schedule: p.schedule ?? RUN_DEFAULTS.schedule,
          warmupSteps: p.warmupSteps ?? RUN_DEFAULTS.warmupSteps,
          validateEvery: p.validateEvery ?? RUN_DEFAULTS.validateEvery,
        },
      ]
    }),
  ) as RunFormDefaults['presets']
  return {
    defaults: { ...RUN_DEFAULTS, variants: [...RUN_DEFAULTS.variants], weights: { ...RUN_DEFAULTS.weights } },
    presets,
    variants: Object.fromEntries(Object.entries(ABLATIONS).map(([k, w]) => [k, { ...w }])) as RunFormDefaults['variants'],
  }
}

/** The preprocessing a run uses (its config names a preset or gives the settings). */
export function runPreprocessing(cfg: RunConfig): PreprocessSettings {
  const p = cfg.preprocessing as { preset?: string } & Partial<PreprocessSettings>
  if (p.preset) {
    const preset = PREPROCESS_PRESETS[p.preset]
    if (!preset) {
      throw new DsdError('RUN_CONFIG_INVALID', `preprocessing preset "${p.preset}" is unknown; use one of ${Object.keys(PREPROCESS_PRESETS).join(', ')}`, {})
    }
    return preset
  }
  return p as PreprocessSettings
}

/**
 * A run trains with exactly the weights its config records (runConfigs writes a named variant's
 * fixed weights there). A config whose weights contradict its variant name is refused rather
 * than trained under a misleading name (`file` names the config in the message).
 */
export function checkVariantWeights(cfg: RunConfig, file: string): void {
  if (cfg.variant === 'custom') return
  const fixed = ABLATIONS[cfg.variant]
  const w = cfg.loss
  if (fixed.eta !== w.eta || fixed.alpha1 !== w.alpha1 || fixed.alpha2 !== w.alpha2) {
    throw new DsdError(
      'RUN_CONFIG_INVALID',
      `${file}: variant ${cfg.variant} trains with η=${fixed.eta}, α1=${fixed.alpha1}, α2=${fixed.alpha2} but loss records η=${w.eta}, α1=${w.alpha1}, α2=${w.alpha2}; set loss to the variant's weights, or variant to "custom"`,
      { file },
    )
  }
}
