/**
 * `dsd demo`: the app's quick start, headless. Imports the bundled sample if needed, creates
 * its split if needed, trains the quick-start preset on fold 0, predicts and evaluates the
 * held-out cases (main/services/quickstart.ts, the same `quickstart` job the app's button runs)
 * and prints their per-class Dice.
 */
import { QUICK_START, RUN_PRESETS, type QuickStartResult } from '../contract'
import { createJobSystem } from '../services/jobs'
import { prepareQuickStart } from '../services/quickstart'
import { workspaceRoot } from '../services/workspace-root'
import { CliError, intOption, parse } from './args'
import { progressPrinter } from './train'

const q = RUN_PRESETS.quick
export const summary = 'The quick start headless: train on the bundled sample, predict and score the held-out cases'
export const usage = `Usage: dsd demo [--json] [--seed N] [--workspace DIR]

Imports the bundled hippocampus sample (if it is not in the workspace), creates the split
"${QUICK_START.split.name}" (${QUICK_START.split.folds} folds, seed ${QUICK_START.split.seed}) if missing, trains a new run ${QUICK_START.name}[-N]-${QUICK_START.variant}-fold${QUICK_START.fold}
(preset "${QUICK_START.preset}": ${q.epochs.dynunet} epochs × ${q.stepsPerEpoch} steps, ${q.schedule} schedule, lr ${q.lr}, no augmentation),
predicts the held-out fold with the last checkpoint and evaluates it on the original grid, as
\`dsd predict --run\` and \`dsd evaluate --run\` would (runs/<id>/predictions/last,
runs/<id>/metrics/${'last-original'}.*). Prints the per-class Dice of the held-out cases.

  --json          the last line of stdout is
                  {"meanDice": x, "dice": {"<label>": x}, "seconds": t, "backend": "…"}
  --seed N        weights and crops seed (default ${QUICK_START.seed})
  --workspace DIR (default: DSD_WORKSPACE or the user-data folder)

Advanced (a shorter run, e.g. to check an installation; not the quick start's figures):
  --steps N       train N steps in one epoch instead of the preset's ${q.epochs.dynunet} × ${q.stepsPerEpoch}

Ctrl+C cancels (the run keeps its last checkpoint; \`dsd resume\` continues it).`

export async function run(args: string[]): Promise<number> {
  const t0 = performance.now()
  const { values } = parse(args, {
    json: { type: 'boolean' },
    seed: { type: 'string' },
    steps: { type: 'string' },
    workspace: { type: 'string' },
  })
  const steps = values.steps === undefined ? undefined : intOption('steps', values.steps, 1)
  if (steps !== undefined && steps < 1) throw new CliError('--steps must be ≥ 1')
  const workspace = workspaceRoot(values.workspace)
  const { runId } = await prepareQuickStart(
    workspace,
    {
      ...(values.seed !== undefined ? { seed: intOption('seed', values.seed, 0) } : {}),
      ...(steps ? { epochs: 1, stepsPerEpoch: steps } : {}),
    },
    (line) => console.error(line),
  )
  console.error(`quick start: run ${runId}`)
  const print = progressPrinter()
  const jobs = createJobSystem(workspace, { onRunMessage: print })
  let lastLine = 0
  jobs.on('progress', (p) => {
    // Training prints through the run messages; the held-out stage through the job's progress.
    const now = Date.now()
    if (!/held-out/.test(p.message) || now - lastLine < 2000) return
    lastLine = now
    console.error(`[${runId}] ${p.message}`)
  })
  const job = jobs.start('quickstart', { runId })
  const onSigint = () => {
    console.error('\ncancelling (the last checkpoint is kept; `dsd resume <run>` continues the training)…')
    jobs.control(job.jobId, 'cancel')
  }
  process.once('SIGINT', onSigint)
  try {
    const info = await jobs.wait(job.jobId)
    if (info.status !== 'completed') {
      console.error(`quick start ${info.status}: ${info.error?.message ?? info.message}`)
      return info.status === 'cancelled' ? 130 : 1
    }
    const r = info.result as QuickStartResult
    const seconds = (performance.now() - t0) / 1000
    const fmt = (v: number | null) => (v === null ? '–' : v.toFixed(4))
    console.log(`Held-out Dice of ${r.cases} case(s), run ${r.runId} (${r.backend}):`)
    for (const [label, d] of Object.entries(r.dice)) console.log(`  ${label.padEnd(12)} ${fmt(d)}`)
    console.log(`  ${'mean'.padEnd(12)} ${fmt(r.meanDice)}`)
    console.log(`Trained in ${r.trainSeconds.toFixed(0)} s, predicted and scored in ${r.predictSeconds.toFixed(0)} s, ${seconds.toFixed(0)} s in all.`)
    console.log(`Table: ${r.table}; review: the prediction set ${r.predictionSet}`)
    if (values.json) console.log(JSON.stringify({ meanDice: r.meanDice, dice: r.dice, seconds, backend: r.backend }))
    return 0
  } finally {
    process.off('SIGINT', onSigint)
    await jobs.close()
  }
}
