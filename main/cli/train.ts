import type { WorkerMessage } from '../workers/protocol'
import { createDatasetService } from '../services/datasets'
import { JobQueue } from '../services/jobs'
import { readRunState } from '../workspace/runs'
import { createRuns, RUN_DEFAULTS } from '../services/training'
import type { RunConfig, RunState, Variant } from '../workspace/run-layout'
import { workspaceRoot } from '../services/workspace-root'
import { CliError, intOption, numberOption, parse, printJson } from './args'

export const summary = 'Train runs (one fold or all folds × DSD variants) in worker threads'
export const usage = `Usage: dsd train --dataset ID [options]

  --dataset ID            an imported dataset (dsd import)
  --split NAME            split file (dsd split); default: the only split, or a new 5-fold seed-0 split "default"
  --folds all|0,1,…       folds to train (0-based); default all
  --variant LIST          Basic, DS, SDD, SDE, DSD, custom or "all" (comma-separated); default DSD
  --backbone dynunet|unetr  (default dynunet)      --preset NAME   (default small)
  --patch N|DxHxW         training patch, multiples of 16 (default 32)
  --filters a,b,c,d,e     DynUNet channels per level, overriding the preset
  --batch N               patches per step (default 2)
  --epochs N              (default 300)            --steps-per-epoch N (default: one pass)
  --lr X --weight-decay X AdamW (default 1e-3, 1e-5)
  --step-size N --gamma X StepLR per epoch (default epochs/6, 0.5)
  --temperature X         KL temperature τ (default 3)
  --eta X --alpha1 X --alpha2 X
                          a custom variant (run id …-custom-foldN): η weighs deep supervision,
                          α1 the encoder and α2 the decoder distillation (DSD = 1, 1, 1)
  --seed N                (default 100)            --backend auto|cpu|wasm|webgpu|tfjs-node|tfjs-node-gpu
  --validate-every N      sliding-window validation every N epochs and at the last one (default 1; 0 = never)
  --overlap X             sliding-window overlap (default 0.25)
  --preprocess mri|mmwhs|brats   (default mri)     --augment mmwhs|brats|none (default mmwhs)
  --name PREFIX           run-id prefix             --workspace DIR
  --json                  print the final states as JSON

Runs are queued and executed one at a time, each in a worker thread. Each epoch writes an
atomic checkpoint; a killed run continues with \`dsd resume <run>\`.`

const VARIANTS: Variant[] = ['Basic', 'DS', 'SDD', 'SDE', 'DSD']

function patchOf(v: string | undefined): [number, number, number] {
  if (!v) return [...RUN_DEFAULTS.model.patch]
  const parts = v.split(/[x×,]/).map(Number)
  const p = parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts
  if (p.length !== 3 || p.some((n) => !Number.isInteger(n) || n <= 0 || n % 16)) {
    throw new CliError(`--patch must be N or DxHxW with multiples of 16, got "${v}"`)
  }
  return p as [number, number, number]
}


/** Print worker progress to stderr (steps at most every 2 s). */
export function progressPrinter(): (runId: string, m: WorkerMessage) => void {
  let last = 0
  // DSD_PROGRESS_INTERVAL_MS: minimum time between step lines (default 2000; 0 = every step).
  const interval = Number(process.env.DSD_PROGRESS_INTERVAL_MS ?? 2000)
  return (runId, m) => {
    const now = Date.now()
    if (m.type === 'started') {
      console.error(`[${runId}] backend ${m.backend.name}${m.backend.device ? ` (${m.backend.device})` : ''} — ${m.backend.reason}${m.resumedFrom ? `; resuming after epoch ${m.resumedFrom}` : ''}`)
    } else if (m.type === 'step' && (now - last >= interval || m.step === m.steps)) {
      last = now
      const eta = m.etaSeconds > 90 ? `${Math.round(m.etaSeconds / 60)} min` : `${Math.round(m.etaSeconds)} s`
      const total = Object.entries(m.loss).find(([k]) => k === 'total')?.[1]
      console.error(`[${runId}] epoch ${m.epoch} step ${m.step}/${m.steps} loss ${total?.toFixed(4) ?? '?'} lr ${m.lr.toExponential(2)} ${Math.round(m.voxelsPerSecond)} vox/s ETA ${eta}`)
    } else if (m.type === 'epoch') {
      const dice = m.log.valMeanDice !== undefined ? ` val Dice ${m.log.valMeanDice.toFixed(4)} (${Object.entries(m.log.valDice ?? {}).map(([k, v]) => `${k}: ${v === null ? '–' : v.toFixed(3)}`).join(', ')})` : ''
      console.error(`[${runId}] epoch ${m.log.epoch} done in ${m.timing.seconds.toFixed(1)} s, loss ${m.log.loss.total?.toFixed(4)}${dice}`)
    } else if (m.type === 'state') {
      console.error(`[${runId}] ${m.state.status}: ${m.state.message}`)
    } else if (m.type === 'error') {
      console.error(`[${runId}] FAILED [${m.error.code}] ${m.error.message}`)
    }
  }
}

/** Run queued runs to their end, printing progress; Ctrl+C cancels (the checkpoint stays). */
export async function runQueued(workspace: string, runIds: string[]): Promise<RunState[]> {
  const queue = new JobQueue(workspace)
  queue.on('message', progressPrinter())
  const onSigint = () => {
    console.error('\ncancelling (the last checkpoint is kept; `dsd resume <run>` continues)…')
    for (const id of [queue.running, ...queue.queued]) if (id) queue.cancel(id)
  }
  process.once('SIGINT', onSigint)
  try {
    const states: RunState[] = []
    for (const id of runIds) states.push(await queue.enqueue(id))
    return states
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
      'step-size': { type: 'string' },
      gamma: { type: 'string' },
      temperature: { type: 'string' },
      eta: { type: 'string' },
      alpha1: { type: 'string' },
      alpha2: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
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
  const customWeights = values.eta !== undefined || values.alpha1 !== undefined || values.alpha2 !== undefined
  const variants: Variant[] = !values.variant
    ? [customWeights ? 'custom' : 'DSD']
    : values.variant === 'all'
      ? VARIANTS
      : values.variant.split(',').map((v) => {
          const hit = [...VARIANTS, 'custom' as const].find((x) => x.toLowerCase() === v.trim().toLowerCase())
          if (!hit) throw new CliError(`--variant: unknown "${v}"; use ${VARIANTS.join(', ')}, custom or all`)
          return hit
        })
  if (customWeights && !variants.includes('custom'))
    throw new CliError('--eta/--alpha1/--alpha2 set the weights of the custom variant; add "custom" to --variant or leave --variant out')
  const weight = (name: 'eta' | 'alpha1' | 'alpha2') => numberOption(name, values[name], 1, { min: 0, max: 100 })
  const epochs = intOption('epochs', values.epochs, RUN_DEFAULTS.epochs)
  const backbone = (values.backbone ?? 'dynunet') as 'dynunet' | 'unetr'
  if (backbone !== 'dynunet' && backbone !== 'unetr') throw new CliError('--backbone must be dynunet or unetr')
  const augment = (values.augment ?? RUN_DEFAULTS.augment) as RunConfig['augment']
  if (!['mmwhs', 'brats', 'none'].includes(augment)) throw new CliError('--augment must be mmwhs, brats or none')
  const configs = await createRuns(workspace, {
    datasetId: values.dataset,
    split,
    folds: values.folds && values.folds !== 'all' ? values.folds.split(',').map((f) => intOption('folds', f, 0)) : undefined,
    variants,
    name: values.name,
    model: {
      backbone,
      preset: values.preset ?? 'small',
      patch: patchOf(values.patch),
      ...(values.filters
        ? { filters: values.filters.split(',').map((f) => intOption('filters', f, 1)) }
        : {}),
    },
    loss: { eta: weight('eta'), alpha1: weight('alpha1'), alpha2: weight('alpha2'), temperature: numberOption('temperature', values.temperature, 3, { min: 1e-6 }) },
    batch: intOption('batch', values.batch, RUN_DEFAULTS.batch),
    epochs,
    ...(values['steps-per-epoch'] ? { stepsPerEpoch: intOption('steps-per-epoch', values['steps-per-epoch'], 1) } : {}),
    optimizer: { lr: numberOption('lr', values.lr, 1e-3, { min: 1e-12 }), weightDecay: numberOption('weight-decay', values['weight-decay'], 1e-5, { min: 0 }) },
    schedule: { stepSize: intOption('step-size', values['step-size'], Math.max(1, Math.floor(epochs / 6))), gamma: numberOption('gamma', values.gamma, 0.5, { min: 1e-12, max: 1 }) },
    seed: intOption('seed', values.seed, RUN_DEFAULTS.seed),
    backend: (values.backend ?? 'auto') as RunConfig['backend'],
    validateEvery: intOption('validate-every', values['validate-every'], 1),
    inference: { overlap: numberOption('overlap', values.overlap, 0.25, { min: 0, max: 1, maxExclusive: true }), blend: 'constant', mirror: false },
    preprocessing: { preset: values.preprocess ?? 'mri' },
    augment,
  })
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
