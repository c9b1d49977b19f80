import type { TrainMessage } from '../training/loop'
import { RUN_DEFAULTS, RUN_PRESETS, type RunFormInput, type RunState, type Variant } from '../contract/runs'
import { ABLATIONS, variantName } from '../engine/presets'
import { DsdError } from '../errors'
import { createDatasetService } from '../services/datasets'
import { createJobSystem } from '../services/jobs'
import { createRuns } from '../services/training'
import { workspaceRoot } from '../services/workspace-root'
import { sweepOnce } from '../workspace/sweep'
import { parseRunForm } from '../training/run-config'
import { readRunState } from '../workspace/runs'
import { CliError, intOption, numberOption, parse, printJson } from './args'

export const summary = 'Train runs (one fold or all folds × DSD variants) in worker threads'
export const usage = `Usage: dsd train --dataset ID [options]

  --dataset ID            an imported dataset (dsd import)
  --split NAME            split file (dsd split); default: the only split, or a new 5-fold seed-0 split "default"
  --folds all|0,1,…       folds to train (0-based); default all
  --variant LIST          ${Object.keys(ABLATIONS).join(', ')}, custom or "all" (comma-separated); default ${RUN_DEFAULTS.variants.join(',')}
  --backbone dynunet|unetr  (default ${RUN_DEFAULTS.backbone})    --preset ${Object.keys(RUN_PRESETS).join('|')} (default ${RUN_DEFAULTS.preset})
  --patch N|DxHxW         training patch, multiples of 16 (default: the preset's, e.g. 32 for small)
  --filters a,b,c,d,e     DynUNet channels per level, overriding the preset
  --batch N               patches per step (default ${RUN_DEFAULTS.batch})
  --epochs N              (default: the preset's — ${Object.entries(RUN_PRESETS).map(([k, p]) => `${k} ${p.epochs.dynunet}`).join(', ')} for dynunet)
  --steps-per-epoch N     (default: one pass over the training cases)
  --lr X --weight-decay X AdamW (default ${RUN_DEFAULTS.lr}, ${RUN_DEFAULTS.weightDecay})
  --schedule step|poly    learning-rate schedule (default: the preset's, else ${RUN_DEFAULTS.schedule}):
                          step = StepLR per epoch; poly = linear warm-up, then (1 − t)^power per step
  --step-size N --gamma X StepLR per epoch (default epochs/6, ${RUN_DEFAULTS.gamma})
  --warmup N --power P    poly: warm-up steps and decay power (default ${RUN_DEFAULTS.warmupSteps}, ${RUN_DEFAULTS.power})
  --temperature X         KL temperature τ (default ${RUN_DEFAULTS.temperature})
  --eta X --alpha1 X --alpha2 X
                          a custom variant (run id …-custom-foldN): η weighs deep supervision,
                          α1 the encoder and α2 the decoder distillation (DSD = 1, 1, 1)
  --seed N                (default ${RUN_DEFAULTS.seed})            --backend auto|cpu|wasm|webgpu|tfjs-node|tfjs-node-gpu
  --precision f32|f16     arithmetic precision (default ${RUN_DEFAULTS.precision}); f16 runs the WebGPU kernels at half
                          precision with dynamic loss scaling where the device offers shader-f16,
                          else falls back to f32 (the log says why)
  --validate-every N      sliding-window validation every N epochs and at the last one (default ${RUN_DEFAULTS.validateEvery}; 0 = never)
  --overlap X             sliding-window overlap (default ${RUN_DEFAULTS.overlap})
  --preprocess mri|mmwhs|brats   --augment mmwhs|brats|none   (default: the preset's)
  --name PREFIX           run-id prefix             --workspace DIR
  --json                  print the final states as JSON

The Training page's form takes the same settings with the same defaults (main/contract/runs.ts).
Runs are queued and executed one at a time, each in a worker thread. Each epoch writes an
atomic checkpoint; a killed run continues with \`dsd resume <run>\`.`

function patchOf(v: string | undefined): [number, number, number] | undefined {
  if (!v) return undefined
  const parts = v.split(/[x×,]/).map(Number)
  const p = parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts
  if (p.length !== 3 || p.some((n) => !Number.isInteger(n) || n <= 0 || n % 16)) {
    throw new CliError(`--patch must be N or DxHxW with multiples of 16, got "${v}"`)
  }
  return p as [number, number, number]
}

/** The flag that sets a form field (for error messages). */
function flagOf(path: PropertyKey[]): string {
  const [head, sub] = path.map(String)
  if (head === 'weights' && sub) return `--${sub}`
  const names: Record<string, string> = { datasetId: 'dataset', variants: 'variant', preprocess: 'preprocess', warmupSteps: 'warmup' }
  return `--${names[head] ?? head.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
}

/** Check a form as the app does (the contract's schema); problems name the flags. */
function checkForm(form: RunFormInput): void {
  try {
    parseRunForm(form)
  } catch (err) {
    const issues = (err as DsdError).details?.issues as { path: PropertyKey[]; message: string }[] | undefined
    if (!issues) throw err
    throw new CliError(issues.map((i) => `${flagOf(i.path)}: ${i.message}`).join('; '))
  }
}


/** Print worker progress to stderr (steps at most every 2 s). */
export function progressPrinter(): (runId: string, m: TrainMessage) => void {
  let last = 0
  // DSD_PROGRESS_INTERVAL_MS: minimum time between step lines (default 2000; 0 = every step).
  const interval = Number(process.env.DSD_PROGRESS_INTERVAL_MS ?? 2000)
  return (runId, m) => {
    const now = Date.now()
    if (m.type === 'started') {
      console.error(`[${runId}] backend ${m.backend.name}${m.backend.device ? ` (${m.backend.device})` : ''} — ${m.backend.reason}${m.resumedFrom ? `; resuming after epoch ${m.resumedFrom}` : ''}`)
      const p = m.precision
      if (p.requested !== 'f32') console.error(`[${runId}] precision ${p.effective}${p.reason ? ` (${p.requested} asked: ${p.reason})` : ' with dynamic loss scaling'}`)
    } else if (m.type === 'step' && (now - last >= interval || m.step === m.steps)) {
      last = now
      const eta = m.etaSeconds > 90 ? `${Math.round(m.etaSeconds / 60)} min` : `${Math.round(m.etaSeconds)} s`
      const total = Object.entries(m.loss).find(([k]) => k === 'total')?.[1]
      console.error(`[${runId}] epoch ${m.epoch} step ${m.step}/${m.steps} loss ${total?.toFixed(4) ?? '?'} lr ${m.lr.toExponential(2)} ${Math.round(m.voxelsPerSecond)} vox/s ETA ${eta}`)
    } else if (m.type === 'epoch') {
      const dice = m.log.valMeanDice !== undefined ? ` val Dice ${m.log.valMeanDice.toFixed(4)} (${Object.entries(m.log.valDice ?? {}).map(([k, v]) => `${k}: ${v === null ? '–' : v.toFixed(3)}`).join(', ')})` : ''
      const scale = m.log.lossScale !== undefined ? `, loss scale ${m.log.lossScale}, ${m.log.skippedSteps ?? 0} step(s) skipped` : ''
      console.error(`[${runId}] epoch ${m.log.epoch} done in ${m.timing.seconds.toFixed(1)} s, loss ${m.log.loss.total?.toFixed(4)}${scale}${dice}`)
    } else if (m.type === 'state') {
      console.error(`[${runId}] ${m.state.status}: ${m.state.message}`)
    } else if (m.type === 'error') {
      console.error(`[${runId}] FAILED [${m.error.code}] ${m.error.message}`)
    }
  }
}

/**
 * Run runs to their end one at a time (the app's job system and training job kind, without the
 * stored job list), printing progress; Ctrl+C cancels (the checkpoint stays).
 */
export async function runQueued(workspace: string, runIds: string[]): Promise<RunState[]> {
  const jobs = createJobSystem(workspace, { onRunMessage: progressPrinter() })
  const started = runIds.map((runId) => jobs.start('train', { runId }))
  const onSigint = () => {
    console.error('\ncancelling (the last checkpoint is kept; `dsd resume <run>` continues)…')
    for (const job of [...started].reverse()) jobs.control(job.jobId, 'cancel')
  }
  process.once('SIGINT', onSigint)
  try {
    await Promise.all(started.map((job) => jobs.wait(job.jobId)))
    return Promise.all(runIds.map((id) => readRunState(workspace, id)))
  } finally {
    process.off('SIGINT', onSigint)
  }
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      dataset: { type: 'string' },
      split: { type: 'string' },
      folds: { type: 'string' },
      variant: { type: 'string' },
      backbone: { type: 'string' },
      preset: { type: 'string' },
      filters: { type: 'string' },
      patch: { type: 'string' },
      batch: { type: 'string' },
      epochs: { type: 'string' },
      'steps-per-epoch': { type: 'string' },
      lr: { type: 'string' },
      'weight-decay': { type: 'string' },
      schedule: { type: 'string' },
      'step-size': { type: 'string' },
      warmup: { type: 'string' },
      power: { type: 'string' },
      gamma: { type: 'string' },
      temperature: { type: 'string' },
      eta: { type: 'string' },
      alpha1: { type: 'string' },
      alpha2: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      precision: { type: 'string' },
      'validate-every': { type: 'string' },
      overlap: { type: 'string' },
      preprocess: { type: 'string' },
      augment: { type: 'string' },
      name: { type: 'string' },
      workspace: { type: 'string' },
      json: { type: 'boolean' },
    },
    false,
  )
  if (!values.dataset) throw new CliError('--dataset is required (an id from `dsd import`)')
  const workspace = workspaceRoot(values.workspace)
  await sweepOnce(workspace) // what killed processes left (staging folders, temp files)
  const datasets = createDatasetService(workspace)
  await datasets.getDataset(values.dataset)
  let split = values.split
  if (!split) {
    const splits = await datasets.listSplits(values.dataset)
    if (splits.length === 1) split = splits[0].name
    else if (splits.length === 0) {
      split = (await datasets.createSplit(values.dataset, { folds: 5, seed: 0, name: 'default' })).name
      console.error(`created split "${split}" (5 folds, seed 0)`)
    } else throw new CliError(`dataset "${values.dataset}" has several splits (${splits.map((s) => s.name).join(', ')}); choose one with --split`)
  }
  const int = (name: keyof typeof values) => (values[name] === undefined ? undefined : intOption(name, values[name] as string, 0))
  const num = (name: keyof typeof values) => (values[name] === undefined ? undefined : numberOption(name, values[name] as string, 0))
  const customWeights = values.eta !== undefined || values.alpha1 !== undefined || values.alpha2 !== undefined
  const variants: Variant[] | undefined = !values.variant
    ? customWeights
      ? ['custom']
      : undefined
    : values.variant === 'all'
      ? (Object.keys(ABLATIONS) as Variant[])
      : values.variant.split(',').map((v) => {
          const hit = v.trim().toLowerCase() === 'custom' ? 'custom' : variantName(v)
          if (!hit) throw new CliError(`--variant: unknown "${v}"; use ${Object.keys(ABLATIONS).join(', ')}, custom or all`)
          return hit
        })
  if (customWeights && !variants?.includes('custom'))
    throw new CliError('--eta/--alpha1/--alpha2 set the weights of the custom variant; add "custom" to --variant or leave --variant out')
  const form: RunFormInput = {
    datasetId: values.dataset,
    split,
    ...(values.folds && values.folds !== 'all' ? { folds: values.folds.split(',').map((f) => intOption('folds', f, 0)) } : {}),
    ...(variants ? { variants } : {}),
    name: values.name,
    backbone: values.backbone as RunFormInput['backbone'],
    preset: values.preset as RunFormInput['preset'],
    patch: patchOf(values.patch),
    filters: values.filters?.split(',').map((f) => intOption('filters', f, 1)),
    batch: int('batch'),
    epochs: int('epochs'),
    stepsPerEpoch: int('steps-per-epoch'),
    lr: num('lr'),
    weightDecay: num('weight-decay'),
    schedule: values.schedule as RunFormInput['schedule'],
    stepSize: int('step-size'),
    gamma: num('gamma'),
    warmupSteps: int('warmup'),
    power: num('power'),
    temperature: num('temperature'),
    ...(customWeights
      ? { weights: { eta: num('eta') ?? RUN_DEFAULTS.weights.eta, alpha1: num('alpha1') ?? RUN_DEFAULTS.weights.alpha1, alpha2: num('alpha2') ?? RUN_DEFAULTS.weights.alpha2 } }
      : {}),
    seed: int('seed'),
    backend: values.backend as RunFormInput['backend'],
    precision: values.precision as RunFormInput['precision'],
    validateEvery: int('validate-every'),
    overlap: num('overlap'),
    preprocess: values.preprocess as RunFormInput['preprocess'],
    augment: values.augment as RunFormInput['augment'],
  }
  // Unset flags stay out of the form, so the contract's defaults apply as in the app.
  for (const k of Object.keys(form) as (keyof RunFormInput)[]) if (form[k] === undefined) delete form[k]
  checkForm(form)
  const configs = await createRuns(workspace, form)
  console.error(`queued ${configs.length} run(s): ${configs.map((c) => c.id).join(', ')}`)
  const states = await runQueued(workspace, configs.map((c) => c.id))
  return report(workspace, configs.map((c) => c.id), states, values.json)
}

export async function report(workspace: string, ids: string[], states: RunState[], json?: boolean): Promise<number> {
  const rows = await Promise.all(ids.map(async (id, i) => ({ run: id, ...(states[i] ?? (await readRunState(workspace, id))) })))
  if (json) printJson({ runs: rows })
  else for (const r of rows) console.log(`${r.run}\t${r.status}\tepoch ${r.epoch}/${r.epochs}\tbest val Dice ${r.bestMeanDice?.toFixed(4) ?? '–'} (epoch ${r.bestEpoch ?? '–'})\t${r.message}`)
  return rows.every((r) => r.status === 'completed') ? 0 : 1
}
