/**
 * WebGPU training step: the engine's WGSL kernels against TensorFlow.js's stock WebGPU
 * kernels, side by side in one run on the same adapter (docs/benchmarks.md, "WebGPU").
 *
 *   npx tsx bench/webgpu-step.ts [--preset small] [--patch 32] [--batch 2] [--variant dsd]
 *                                [--steps 2] [--warmup 1] [--stock-steps N] [--modes new,stock]
 *                                [--filters a,b,c,d,e] [--json]
 *
 * Each mode builds the same network (same seed, so the same initial weights) on the same
 * random batch, runs `--warmup` untimed steps (shader compilation) and `--steps` timed ones
 * (each ends when the AdamW update has finished), and reports the median step time (wall
 * clock and the process's CPU time — on a CPU adapter such as lavapipe the CPU time is the
 * work itself and is far less disturbed by other load on a shared machine) and every step's
 * loss. Step 1 starts from identical weights, so its loss must agree between the modes to
 * float32 rounding; later steps may drift by float32 rounding amplified by AdamW.
 * Prints a table (or one JSON object with --json) with both numbers and the ratios.
 */
import { parseArgs } from 'node:util'
import { cpus, loadavg } from 'node:os'
import { initBackend } from '../main/engine/backends'
import { createModel, describeModel } from '../main/engine/model'
import { AdamW } from '../main/engine/optimizer'
import { Rng } from '../main/engine/random'
import { tf } from '../main/engine/tf'
import { trainStep } from '../main/engine/train-step'
import { setWebgpuKernels, convVariant } from '../main/engine/kernels/webgpu'

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'small' },
    patch: { type: 'string', default: '32' },
    batch: { type: 'string', default: '2' },
    variant: { type: 'string', default: 'dsd' },
    steps: { type: 'string', default: '2' },
    'stock-steps': { type: 'string' },
    warmup: { type: 'string', default: '1' },
    modes: { type: 'string', default: 'new,stock' },
    filters: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
})

const patch = Number(values.patch)
const batch = Number(values.batch)
const steps = Number(values.steps)
const stockSteps = Number(values['stock-steps'] ?? values.steps)
const warmup = Number(values.warmup)
const modes = values.modes!.split(',') as ('new' | 'stock')[]
const log = (s: string) => process.stderr.write(s + '\n')

const chosen = await initBackend('webgpu')
const config = {
  backbone: 'dynunet' as const,
  preset: values.preset!,
  patch: [patch, patch, patch] as [number, number, number],
  ...(values.filters ? { filters: values.filters.split(',').map(Number) } : {}),
}
const desc = describeModel(config)
const cfg = desc.config
const n = batch * patch ** 3
const rng = new Rng(cfg.seed, 1)
const labels = new Int32Array(n)
for (let i = 0; i < n; i++) labels[i] = rng.int(cfg.numClasses)
const input = rng.normalArray(n * cfg.inChannels)

interface ModeResult {
  mode: string
  /** the machine's 1-minute load average before the mode's first step */
  load: number
  stepMs: number
  stepCpuMs: number
  stepMsAll: number[]
  stepCpuMsAll: number[]
  losses: number[]
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function runMode(mode: 'new' | 'stock'): Promise<ModeResult> {
  const load = Number(loadavg()[0]!.toFixed(2))
  setWebgpuKernels(mode === 'new')
  const model = createModel(config)
  const opt = new AdamW({ lr: 1e-3, weightDecay: 1e-5 })
  const x = tf.tensor5d(input, [batch, patch, patch, patch, cfg.inChannels])
  const y = tf.tensor4d(labels, [batch, patch, patch, patch], 'int32')
  const sync = Object.values(model.variables).at(-1)!
  const wall: number[] = []
  const cpu: number[] = []
  const losses: number[] = []
  const timed = mode === 'stock' ? stockSteps : steps
  try {
    for (let i = 0; i < warmup + timed; i++) {
      const t0 = performance.now()
      const c0 = process.cpuUsage()
      const r = await trainStep(model, opt, x, y, values.variant)
      await sync.data()
      const ms = performance.now() - t0
      const c = process.cpuUsage(c0)
      const cms = (c.user + c.system) / 1000
      losses.push(r.loss)
      log(
        `${mode}: step ${i + 1}/${warmup + timed}${i < warmup ? ' (warm-up)' : ''}: ${ms.toFixed(0)} ms (CPU ${cms.toFixed(0)} ms), loss ${r.loss}`,
      )
      if (i >= warmup) {
        wall.push(ms)
        cpu.push(cms)
      }
    }
  } finally {
    tf.dispose([x, y])
    opt.dispose()
    model.dispose()
    setWebgpuKernels(null)
  }
  return {
    mode,
    load,
    stepMs: median(wall),
    stepCpuMs: median(cpu),
    stepMsAll: wall.map((v) => Math.round(v)),
    stepCpuMsAll: cpu.map((v) => Math.round(v)),
    losses,
  }
}

const results: ModeResult[] = []
for (const m of modes) results.push(await runMode(m))
const byMode = Object.fromEntries(results.map((r) => [r.mode, r]))
const fresh = byMode.new
const stock = byMode.stock
const out = {
  device: chosen.device,
  convVariant: convVariant(),
  network: `dynunet ${cfg.preset} (filters ${cfg.filters?.join('-') ?? 'default'}, ${cfg.numClasses} classes)`,
  batch,
  patch,
  variant: values.variant,
  warmup,
  host: `${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}`,
  date: new Date().toISOString(),
  results,
  ratioWall: fresh && stock ? stock.stepMs / fresh.stepMs : null,
  ratioCpu: fresh && stock ? stock.stepCpuMs / fresh.stepCpuMs : null,
  firstLossRelDiff:
    fresh && stock
      ? Math.abs(fresh.losses[0]! - stock.losses[0]!) / Math.abs(stock.losses[0]!)
      : null,
}
if (values.json) {
  console.log(JSON.stringify(out, null, 2))
} else {
  console.log(
    `WebGPU training step, ${out.network}, ${batch} × ${patch}³, ${out.variant}, on ${out.device} (${out.convVariant} convolutions), host ${out.host}, ${out.date}`,
  )
  for (const r of results) {
    console.log(
      `  ${r.mode === 'new' ? 'engine kernels' : 'stock TF.js  '}: ${r.stepMs.toFixed(0)} ms per step (CPU ${r.stepCpuMs.toFixed(0)} ms; steps ${r.stepMsAll.join(', ')} ms; load ${r.load}), losses ${r.losses.map((l) => l.toFixed(6)).join(', ')}`,
    )
  }
  if (out.ratioWall !== null) {
    console.log(
      `  speed-up: ${out.ratioWall.toFixed(1)}× wall clock, ${out.ratioCpu!.toFixed(1)}× CPU time (issue 12's target on a CPU adapter: ≥ 20×, ${out.ratioWall >= 20 ? 'met' : 'not met'} on wall clock)`,
    )
    console.log(
      `  step-1 loss: engine ${fresh!.losses[0]} vs stock ${stock!.losses[0]} (relative difference ${out.firstLossRelDiff!.toExponential(2)})`,
    )
  }
}
