/**
 * Where a DSD training step's time goes on the default CPU backend (`wasm`): times `--steps`
 * training steps of a DynUNet preset on random data and prints, per step, the wall clock, the
 * process's CPU time (both threads; the measure least disturbed by other load), the time
 * inside the kernel pool and the caller's waiting for claimed tasks, then the kernel ops by
 * time (`DSD_CPU_STATS`, kernels/cpu/runtime.ts).
 *
 *   npx tsx bench/cpu/profile-step.ts [--preset mmwhs] [--patch 64] [--batch 2] [--steps 2]
 */
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'

process.env.DSD_CPU_STATS ??= '1' // read when the runtime starts
const { initBackend } = await import('../../main/engine/backends')
const { createModel } = await import('../../main/engine/model')
const { AdamW } = await import('../../main/engine/optimizer')
const { tf } = await import('../../main/engine/tf')
const { trainStep } = await import('../../main/engine/train-step')
const { cpuRuntime, shutdownCpuRuntime } = await import('../../main/engine/kernels/cpu/runtime')

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'mmwhs' },
    patch: { type: 'string', default: '64' },
    batch: { type: 'string', default: '2' },
    steps: { type: 'string', default: '2' },
  },
})
/** Op codes of kernels/cpu (conv.ts, norm.ts, loss.ts, concat.ts, adamw.ts, runtime.ts). */
const OPS: Record<number, string> = {
  1: 'conv forward / input gradient',
  2: 'conv filter gradient',
  3: 'filter gradient reduction',
  10: 'norm statistics',
  12: 'norm apply',
  13: 'norm backward sums',
  14: 'norm backward apply',
  19: 'log-softmax',
  20: 'Dice-CE forward',
  21: 'Dice-CE backward',
  22: 'KL forward',
  23: 'KL backward',
  30: 'LeakyReLU',
  31: 'add + LeakyReLU',
  32: 'LeakyReLU gradient',
  33: 'column sums (bias gradient)',
  34: 'copy (concat / split)',
  35: 'AdamW',
  40: 'grouped sub-jobs (input-gradient classes, concat parts)',
}
await initBackend('wasm')
const p = Number(values.patch)
const batch = Number(values.batch)
const model = createModel({ backbone: 'dynunet', preset: values.preset!, patch: [p, p, p] })
const classes = model.config.numClasses
const opt = new AdamW({ lr: 1e-3, weightDecay: 1e-5 })
const x = tf.randomNormal([
  batch,
  p,
  p,
  p,
  model.config.inChannels,
]) as import('../../main/engine/tf').tf.Tensor5D
const y = tf.randomUniform([batch, p, p, p], 0, classes, 'int32')
const rt = cpuRuntime()
const stats = rt.stats!
const pool = rt.pool!
console.log(`dynunet ${values.preset}, ${batch} × ${p}³, DSD, wasm on ${rt.threads} threads`)
for (let i = 0; i < Number(values.steps); i++) {
  for (const k of Object.keys(stats)) delete stats[Number(k)]
  Object.assign(pool, { jobs: 0, tasks: 0, callerTasks: 0, waitMs: 0 })
  const load = loadavg()[0]!
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  await trainStep(model, opt, x, y, 'DSD')
  const ms = performance.now() - t0
  const c = process.cpuUsage(c0)
  const inPool = Object.values(stats).reduce((s, v) => s + v.ms, 0)
  console.log(
    `step ${i + 1}: ${ms.toFixed(0)} ms wall, ${((c.user + c.system) / 1000).toFixed(0)} ms process CPU, load ${load.toFixed(1)}; ${pool.jobs} parallel jobs; in pool jobs ${inPool.toFixed(0)} ms (${((100 * inPool) / ms).toFixed(0)} %), caller waiting ${pool.waitMs.toFixed(0)} ms`,
  )
  for (const [op, v] of Object.entries(stats).sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(
      `  ${OPS[Number(op)] ?? `op ${op}`}: ${v.ms.toFixed(0)} ms, ${v.jobs} jobs, ${v.tasks} tasks`,
    )
  }
}
tf.dispose([x, y])
opt.dispose()
model.dispose()
await shutdownCpuRuntime()
