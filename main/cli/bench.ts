/**
 * `dsd bench`: time DSD training steps and inference forwards of a network on one or every
 * compute backend, and print numbers made for side-by-side comparison (docs/benchmarks.md).
 */
import { cpus, totalmem } from 'node:os'
import {
  initBackend,
  isBackendName,
  probeBackends,
  type BackendChoice,
  type BackendName,
} from '../engine/backends'
import { ABLATIONS, variantName } from '../engine/presets'
import {
  createModel,
  describeModel,
  type ModelConfig,
  type ResolvedModelConfig,
} from '../engine/model'
import { AdamW } from '../engine/optimizer'
import { Rng } from '../engine/random'
import { tf } from '../engine/tf'
import { trainStep } from '../engine/train-step'
// WebGPU: kernel choice, GPU memory peak and per-kernel profile (engine/kernels/webgpu)
import {
  convVariant,
  deviceFeatures,
  precisionStatus,
  setWebgpuPrecision,
  useWebgpuKernels,
  type PrecisionStatus,
  type WebgpuPrecision,
} from '../engine/kernels/webgpu'
import { LossScaler } from '../engine/loss-scale'
import {
  profileKernels,
  trackGpuMemory,
  type KernelProfile,
} from '../engine/kernels/webgpu/profile'
import { CliError, intOption, parse, printJson } from './args'
import { MODEL_OPTIONS, modelConfigFromOptions } from './model'

export const summary =
  'Benchmark training steps and inference of a DSD network on one or all backends'

export const usage = `Usage: dsd bench [--backbone dynunet|unetr] [--preset NAME] [--patch N|DxHxW] [--batch B]
                 [--backend auto|all|cpu|wasm|webgpu|tfjs-node|tfjs-node-gpu]
                 [--steps N] [--warmup N] [--variant DSD|Basic|DS|SDD|SDE] [--no-train|--no-infer]
                 [--precision f32|f16] [--profile] [--json]

Runs --warmup untimed and --steps timed training steps (forward, DSD loss, gradients, AdamW)
on random data, then the same for inference forwards (Y only), and reports medians.
Model options as in \`dsd model\` (--in, --classes, --filters, --feature-size, ...).
--precision f16 runs the WebGPU kernels at half precision (shader-f16) with dynamic loss
scaling, as \`dsd train --precision f16\` does; default: DSD_PRECISION, else f32.

Output (JSON, one object; an array for --backend all):
  backend, device, software, backbone, preset, patch, batch, variant, params,
  trainStepMs (median), trainStepMsAll, inferMs (median), inferMsAll,
  voxelsPerSecond (training), inferVoxelsPerSecond,
  peakBytes (live tensors at the peak of one profiled training step, tf.profile),
  gpuPeakBytes, gpuPooledBytes (webgpu: peak of live GPU buffers during that step, and the
    bytes held by the buffer pool after it), webgpuKernels ('engine' or 'stock' with
    DSD_KERNELS=stock), convVariant ('direct' on CPU adapters, 'tiled' on GPUs),
  precision { requested, effective, reason (why f16 fell back to f32) }, webgpuFeatures
    (the device's features: shader-f16, subgroups, …), lossScale and
    skippedSteps (f16 only: the scale after the timed steps, steps skipped for Inf/NaN),
  profile (--profile: GPU time per kernel and per dispatch kind over one more training step,
    from WebGPU timestamp queries; other backends: their own per-kernel clock),
  tensorBytes (tf.memory after the run), maxRssBytes (process peak RSS), host, node, startedAt
A backend that fails in --backend all is reported as { backend, error }.

Default: dynunet small, patch from the preset, batch 2 (the recipe's 2 patches per step),
3 steps after 1 warm-up, variant DSD, backend auto.`

/** One benchmark result. */
export interface BenchResult {
  backend: BackendName
  device: string
  software: boolean
  backbone: string
  preset: string
  patch: [number, number, number]
  batch: number
  variant: string
  params: { backbone: number; dsd: number }
  steps: number
  warmup: number
  trainStepMs: number | null
  trainStepMsAll: number[]
  inferMs: number | null
  inferMsAll: number[]
  voxelsPerSecond: number | null
  inferVoxelsPerSecond: number | null
  peakBytes: number | null
  gpuPeakBytes: number | null
  gpuPooledBytes: number | null
  webgpuKernels: 'engine' | 'stock' | null
  convVariant: string | null
  precision: PrecisionStatus
  /** webgpu: the device's features (shader-f16, subgroups, timestamp-query, …). */
  webgpuFeatures: string[] | null
  lossScale?: number
  skippedSteps?: number
  profile?: KernelProfile
  tensorBytes: number
  maxRssBytes: number
  host: { cpu: string; cores: number; memoryBytes: number; platform: string }
  node: string
  startedAt: string
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

interface BenchOptions {
  model: ModelConfig
  batch: number
  steps: number
  warmup: number
  variant: string
  train: boolean
  infer: boolean
  profile: boolean
  /** Sets the kernels' precision for the run (absent: DSD_PRECISION, else f32). */
  precision?: WebgpuPrecision
  log: (line: string) => void
}

function inputs(cfg: ResolvedModelConfig, batch: number): { x: Float32Array; y: Int32Array } {
  const n = batch * cfg.patch[0] * cfg.patch[1] * cfg.patch[2]
  const rng = new Rng(cfg.seed, 1)
  const y = new Int32Array(n)
  for (let i = 0; i < n; i++) y[i] = rng.int(cfg.numClasses)
  return { x: rng.normalArray(n * cfg.inChannels), y }
}

/** Benchmark on the backend that is active now (`choice`). */
export async function benchOnBackend(
  choice: BackendChoice,
  software: boolean,
  o: BenchOptions,
): Promise<BenchResult> {
  const startedAt = new Date().toISOString()
  const desc = describeModel(o.model)
  const cfg = desc.config
  const data = inputs(cfg, o.batch)
  const model = createModel(o.model)
  const opt = new AdamW({ lr: 1e-3, weightDecay: 1e-5 })
  const x = tf.tensor5d(data.x, [o.batch, ...cfg.patch, cfg.inChannels])
  const y = tf.tensor4d(data.y, [o.batch, ...cfg.patch], 'int32')
  const syncVar = Object.values(model.variables).at(-1)!
  const train: number[] = []
  const infer: number[] = []
  let peakBytes: number | null = null
  const webgpu = choice.name === 'webgpu'
  let gpuMem: ReturnType<ReturnType<typeof trackGpuMemory>> | null = null
  let profile: KernelProfile | undefined
  const prevPrecision = o.precision ? setWebgpuPrecision(o.precision) : undefined
  const precision = precisionStatus()
  if (precision.reason) o.log(`${choice.name}: precision ${precision.requested} asked, ${precision.effective} used: ${precision.reason}`)
  // as in training: half precision trains with dynamic loss scaling
  const scaler = precision.effective === 'f16' ? new LossScaler() : null
  let skipped = 0
  const step = async () => {
    const r = await trainStep(model, opt, x, y, o.variant, scaler)
    if (r.skipped) skipped++
  }
  try {
    if (o.train) {
      for (let i = 0; i < o.warmup + o.steps; i++) {
        const t0 = performance.now()
        await step()
        await syncVar.data() // the AdamW update has finished
        const ms = performance.now() - t0
        o.log(
          `${choice.name}: train step ${i + 1}/${o.warmup + o.steps}${i < o.warmup ? ' (warm-up)' : ''}: ${ms.toFixed(1)} ms`,
        )
        if (i >= o.warmup) train.push(ms)
      }
      const readGpu = webgpu ? trackGpuMemory() : null
      const prof = await tf.profile(step)
      peakBytes = prof.peakBytes
      gpuMem = readGpu ? readGpu() : null
      if (o.profile) {
        o.log(`${choice.name}: profiling one training step`)
        profile = await profileKernels(step)
      }
    }
    if (o.infer) {
      for (let i = 0; i < o.warmup + o.steps; i++) {
        const t0 = performance.now()
        const { Y } = model.forward(x)
        await Y.data()
        Y.dispose()
        const ms = performance.now() - t0
        o.log(
          `${choice.name}: inference ${i + 1}/${o.warmup + o.steps}${i < o.warmup ? ' (warm-up)' : ''}: ${ms.toFixed(1)} ms`,
        )
        if (i >= o.warmup) infer.push(ms)
      }
    }
  } finally {
    tf.dispose([x, y])
    opt.dispose()
    model.dispose()
    if (prevPrecision !== undefined) setWebgpuPrecision(prevPrecision)
  }
  const voxels = o.batch * cfg.patch[0] * cfg.patch[1] * cfg.patch[2]
  const trainMs = train.length ? median(train) : null
  const inferMs = infer.length ? median(infer) : null
  const round = (v: number | null, d = 2) => (v === null ? null : Number(v.toFixed(d)))
  return {
    backend: choice.name,
    device: choice.device ?? 'unknown',
    software,
    backbone: cfg.backbone,
    preset: cfg.preset,
    patch: cfg.patch,
    batch: o.batch,
    variant: o.variant,
    params: desc.counts,
    steps: o.steps,
    warmup: o.warmup,
    trainStepMs: round(trainMs),
    trainStepMsAll: train.map((v) => Number(v.toFixed(2))),
    inferMs: round(inferMs),
    inferMsAll: infer.map((v) => Number(v.toFixed(2))),
    voxelsPerSecond: trainMs === null ? null : Math.round((voxels * 1000) / trainMs),
    inferVoxelsPerSecond: inferMs === null ? null : Math.round((voxels * 1000) / inferMs),
    peakBytes,
    gpuPeakBytes: gpuMem?.peakBytes ?? null,
    gpuPooledBytes: gpuMem?.pooledBytes ?? null,
    webgpuKernels: webgpu ? (useWebgpuKernels() ? 'engine' : 'stock') : null,
    convVariant: webgpu && useWebgpuKernels() ? convVariant() : null,
    precision,
    webgpuFeatures: webgpu ? [...deviceFeatures()].sort() : null,
    ...(scaler ? { lossScale: scaler.scale, skippedSteps: skipped } : {}),
    ...(profile ? { profile } : {}),
    tensorBytes: tf.memory().numBytes,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    host: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryBytes: totalmem(),
      platform: process.platform,
    },
    node: process.version,
    startedAt,
  }
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      ...MODEL_OPTIONS,
      batch: { type: 'string' },
      backend: { type: 'string' },
      steps: { type: 'string' },
      warmup: { type: 'string' },
      variant: { type: 'string' },
      'no-train': { type: 'boolean' },
      'no-infer': { type: 'boolean' },
      profile: { type: 'boolean' },
      precision: { type: 'string' },
      json: { type: 'boolean' },
    },
    false,
  )
  const model = modelConfigFromOptions(values)
  const precision = values.precision?.trim().toLowerCase()
  if (precision !== undefined && precision !== 'f32' && precision !== 'f16') {
    throw new CliError(`--precision must be f32 or f16, got "${values.precision}"`)
  }
  try {
    describeModel(model)
  } catch (err) {
    const e = err as { code?: string; message?: string }
    if (e.code === 'MODEL_CONFIG') throw new CliError(e.message!.replace(/^model config: /, ''))
    throw err
  }
  const batch = intOption('batch', values.batch, 2)
  const steps = intOption('steps', values.steps, 3)
  const warmup = intOption('warmup', values.warmup, 1)
  if (batch < 1) throw new CliError(`--batch must be ≥ 1, got ${batch}`)
  if (steps < 1) throw new CliError(`--steps must be ≥ 1, got ${steps}`)
  if (warmup < 0) throw new CliError(`--warmup must be ≥ 0, got ${warmup}`)
  const variant = variantName(values.variant ?? 'DSD')
  if (!variant) throw new CliError(`--variant: unknown DSD variant "${values.variant}"; use one of ${Object.keys(ABLATIONS).join(', ')}`)
  if (values['no-train'] && values['no-infer'])
    throw new CliError('--no-train and --no-infer leave nothing to measure')
  const json = values.json === true
  const opts: BenchOptions = {
    model,
    batch,
    steps,
    warmup,
    variant,
    train: !values['no-train'],
    profile: values.profile === true,
    infer: !values['no-infer'],
    ...(precision ? { precision: precision as WebgpuPrecision } : {}),
    // progress goes to stderr so that stdout stays pure JSON
    log: (line) => process.stderr.write(line + '\n'),
  }
  const requested = (values.backend ?? 'auto').toLowerCase()
  if (requested !== 'all' && requested !== 'auto' && !isBackendName(requested)) {
    throw new CliError(
      `--backend must be auto, all, cpu, wasm, webgpu, tfjs-node or tfjs-node-gpu, got "${requested}"`,
    )
  }
  if (requested !== 'all') {
    const probes = await probeBackends()
    const choice = await initBackend(requested as BackendName | 'auto')
    const software = probes.find((p) => p.name === choice.name)?.software === true
    const r = await benchOnBackend(choice, software, opts)
    if (json) printJson(r)
    else console.log(formatResults([r]))
    return 0
  }
  const results: (BenchResult | { backend: BackendName; error: string })[] = []
  for (const p of await probeBackends()) {
    if (!p.available) {
      opts.log(`${p.name}: skipped: ${p.reason}`)
      continue
    }
    try {
      const choice = await initBackend(p.name)
      results.push(await benchOnBackend(choice, p.software === true, opts))
    } catch (err) {
      const msg = (err as Error).message ?? String(err)
      opts.log(`${p.name}: failed: ${msg}`)
      results.push({ backend: p.name, error: msg })
    }
  }
  if (json) printJson(results)
  else console.log(formatResults(results))
  return results.some((r) => 'error' in r) ? 1 : 0
}

/** A human-readable table of results. */
function formatResults(results: (BenchResult | { backend: BackendName; error: string })[]): string {
  const lines: string[] = []
  for (const r of results) {
    if ('error' in r) {
      lines.push(`${r.backend}: FAILED: ${r.error}`)
      continue
    }
    const mb = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 20).toFixed(1)} MiB`)
    lines.push(
      `${r.backend} (${r.device}${r.software ? ', software' : ''}): ${r.backbone}/${r.preset} ${r.batch}×${r.patch.join('×')} ${r.variant}`,
      `  training step ${r.trainStepMs ?? 'n/a'} ms (median of ${r.trainStepMsAll.length}), ${r.voxelsPerSecond?.toLocaleString('en-US') ?? 'n/a'} voxels/s`,
      `  inference     ${r.inferMs ?? 'n/a'} ms (median of ${r.inferMsAll.length}), ${r.inferVoxelsPerSecond?.toLocaleString('en-US') ?? 'n/a'} voxels/s`,
      `  peak tensors ${mb(r.peakBytes)}, process peak RSS ${mb(r.maxRssBytes)}`,
    )
    if (r.gpuPeakBytes !== null) {
      lines.push(
        `  GPU buffers: peak ${mb(r.gpuPeakBytes)} in use during a step, ${mb(r.gpuPooledBytes)} held by the pool; ${r.webgpuKernels} kernels${r.convVariant ? ` (${r.convVariant} convolutions)` : ''}`,
      )
    }
    const pr = r.precision
    lines.push(
      `  precision ${pr.effective}${pr.reason ? ` (${pr.requested} asked: ${pr.reason})` : ''}${r.lossScale !== undefined ? `, loss scale ${r.lossScale}, ${r.skippedSteps} step(s) skipped` : ''}`,
    )
    if (r.profile) lines.push(...formatProfile(r.profile))
  }
  return lines.join('\n')
}

/** The --profile table: GPU time per kernel and per dispatch kind. */
function formatProfile(p: KernelProfile): string[] {
  const out = [
    `  kernel profile of one training step (${p.timer}; total ${p.totalMs.toFixed(1)} ms, includes a timed pass per dispatch):`,
  ]
  const table = (title: string, rows: KernelProfile['byKernel']) => {
    out.push(`    ${title}`)
    for (const r of rows.slice(0, 20)) {
      const pct = p.totalMs > 0 ? ((100 * r.ms) / p.totalMs).toFixed(1) : '0'
      out.push(
        `      ${r.name.padEnd(30)} ${String(r.calls).padStart(5)} calls ${r.ms.toFixed(1).padStart(10)} ms ${pct.padStart(5)} %`,
      )
    }
  }
  table('by kernel', p.byKernel)
  if (p.byDispatch.length) table('by dispatch', p.byDispatch)
  return out
}
