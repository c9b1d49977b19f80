/**
 * `dsd demo --json` end to end with the real engine on its default backend, on a budget (10
 * training steps instead of the quick start's 300): the bundled sample is imported into an empty
 * workspace, split, trained, its held-out fold predicted and scored. Checks the exit code, the
 * last stdout line's shape, and that its Dice values are those `dsd evaluate` computes from the
 * predictions the demo wrote. (The full quick start's Dice and time are measured by hand and
 * recorded in the README; no timed or accuracy assertion here.)
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { prepareQuickStart } from '../../../main/services/quickstart'
import { ROOT, tmpDir } from '../../helpers/shared'

const workspace = tmpDir('demo-ws')
const env = { ...process.env }
delete env.DSD_BACKEND

function dsd(args: string[]) {
  return spawnSync(process.execPath, [join(ROOT, 'bin/dsd.mjs'), ...args, '--workspace', workspace], { encoding: 'utf8', env, timeout: 1_200_000 })
}

describe('dsd demo', () => {
  it('imports, splits, trains, predicts and scores the held-out fold; --json ends with the Dice line', { timeout: 1_500_000 }, () => {
    const r = dsd(['demo', '--json', '--steps', '10'])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/imported the bundled sample as "hippocampus-sample"/)
    expect(r.stderr).toMatch(/created split "quick-k5" \(5 folds, seed 0\)/)
    const lines = r.stdout.trim().split('\n')
    const last = JSON.parse(lines[lines.length - 1])
    expect(Object.keys(last).sort()).toEqual(['backend', 'dice', 'meanDice', 'seconds'])
    expect(Object.keys(last.dice).sort()).toEqual(['Anterior', 'Posterior'])
    for (const v of [last.meanDice, ...Object.values(last.dice)]) {
      expect(v).toBeTypeOf('number')
      expect(v).toBeGreaterThanOrEqual(0)
      expect(v).toBeLessThanOrEqual(1)
    }
    expect(last.seconds).toBeGreaterThan(0)
    // The backend `auto` picks, as `dsd info` reports it.
    const info = spawnSync(process.execPath, [join(ROOT, 'bin/dsd.mjs'), 'info', '--json'], { encoding: 'utf8', env })
    expect(last.backend).toBe(JSON.parse(info.stdout).backend.name)
    // The human-readable table comes before it.
    expect(r.stdout).toMatch(/Held-out Dice of 8 case\(s\), run quick-start-DSD-fold0/)

    // The run: the quick preset, shortened to one epoch of 10 steps, no validation inside the run.
    const runDir = join(workspace, 'runs', 'quick-start-DSD-fold0')
    const cfg = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'))
    expect(cfg).toMatchObject({
      split: 'quick-k5',
      fold: 0,
      variant: 'DSD',
      model: { preset: 'quick', patch: [32, 32, 32] },
      epochs: 1,
      stepsPerEpoch: 10,
      optimizer: { lr: 0.01 },
      schedule: { kind: 'poly', warmupSteps: 20, power: 0.9 },
      augment: 'none',
      validateEvery: 0,
    })
    expect(readdirSync(join(runDir, 'predictions', 'last')).filter((f) => f.endsWith('.nii.gz'))).toHaveLength(8)

    // `dsd evaluate` on the predictions the demo wrote gives exactly the demo's figures.
    const ev = dsd(['evaluate', '--run', 'quick-start-DSD-fold0', '--name', 'check', '--json'])
    expect(ev.status, ev.stderr).toBe(0)
    const table = JSON.parse(ev.stdout)
    expect(table.summary.overall.dice.mean).toBe(last.meanDice)
    expect(table.summary.labels['1'].dice.mean).toBe(last.dice.Anterior)
    expect(table.summary.labels['2'].dice.mean).toBe(last.dice.Posterior)
    const written = JSON.parse(readFileSync(join(runDir, 'metrics', 'last-original.json'), 'utf8'))
    expect(written.summary.overall.dice.mean).toBe(last.meanDice)

    expect(existsSync(join(runDir, 'checkpoints', 'last.ckpt'))).toBe(true)
  })

  it('a second quick start keeps the first run and its split, and makes the next free run id', async () => {
    const before = readFileSync(join(workspace, 'datasets', 'hippocampus-sample', 'splits', 'quick-k5.json'), 'utf8')
    const lines: string[] = []
    const r = await prepareQuickStart(workspace, {}, (l) => lines.push(l))
    expect(r).toEqual({ runId: 'quick-start-2-DSD-fold0', datasetId: 'hippocampus-sample' })
    expect(lines).toEqual([])
    expect(readFileSync(join(workspace, 'datasets', 'hippocampus-sample', 'splits', 'quick-k5.json'), 'utf8')).toBe(before)
    const cfg = JSON.parse(readFileSync(join(workspace, 'runs', r.runId, 'config.json'), 'utf8'))
    expect([cfg.epochs, cfg.stepsPerEpoch, cfg.seed]).toEqual([10, 30, 0])
  })
})
