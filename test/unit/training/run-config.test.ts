/**
 * One run config: a form becomes configs in one place (main/training/run-config.ts), with one
 * set of defaults. The same choices made through `dsd train` and through the contract (what the
 * Training page sends) write byte-identical config.json files.
 */
import { spawn } from 'node:child_process'
import { cpSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { commands, RUN_DEFAULTS, RUN_PRESETS } from '../../../main/contract'
import { ABLATIONS, PRESETS } from '../../../main/engine/presets'
import { createApp } from '../../../main/services/app'
import { runConfigs, runFormDefaults } from '../../../main/training/run-config'
import { dsdCli, ROOT, tmpDir } from '../../helpers/shared'

const base = { datasetId: 'ds', split: 'k5' }

describe('run forms become configs in one place', () => {
  it('fills what the form leaves out from the defaults and the preset', () => {
    const [cfg] = runConfigs({ ...base, folds: [2] }, 5)
    expect(cfg).toEqual({
      id: 'ds-dynunet-small-DSD-fold2',
      datasetId: 'ds',
      split: 'k5',
      fold: 2,
      model: { backbone: 'dynunet', preset: 'small', patch: [32, 32, 32] },
      variant: 'DSD',
      loss: { eta: 1, alpha1: 1, alpha2: 1, temperature: 3 },
      batch: 2,
      epochs: 50,
      optimizer: { lr: 1e-3, weightDecay: 1e-5 },
      schedule: { kind: 'step', stepSize: 8, gamma: 0.5 },
      seed: 100,
      backend: 'auto',
      validateEvery: 1,
      inference: { overlap: 0.25, blend: 'constant', mirror: false },
      preprocessing: { preset: 'mri' },
      augment: 'mmwhs',
    })
    // A paper preset brings its patch, pipelines and epochs (per backbone).
    const [mm] = runConfigs({ ...base, folds: [0], preset: 'mmwhs', backbone: 'unetr' }, 5)
    expect(mm.model.patch).toEqual([96, 96, 96])
    expect(mm.epochs).toBe(600)
    expect(mm.schedule).toEqual({ kind: 'step', stepSize: 100, gamma: 0.5 })
    expect(mm.preprocessing).toEqual({ preset: 'mmwhs' })
    const [br] = runConfigs({ ...base, folds: [0], preset: 'brats' }, 5)
    expect([br.model.patch[0], br.epochs, br.augment]).toEqual([128, 300, 'brats'])
    // The quick-start preset (DynUNet only): the recipe of docs/quickstart-recipe.md.
    const [q] = runConfigs({ ...base, folds: [0], preset: 'quick' }, 5)
    expect([q.model.preset, q.model.patch[0], q.epochs, q.stepsPerEpoch, q.augment, q.validateEvery]).toEqual(['quick', 32, 10, 30, 'none', 10])
    expect(q.optimizer).toEqual({ lr: 1e-2, weightDecay: 1e-5 })
    expect(q.schedule).toEqual({ kind: 'poly', warmupSteps: 20, power: 0.9 })
    // The form's own values win over the preset's.
    const [q2] = runConfigs({ ...base, folds: [0], preset: 'quick', lr: 3e-3, schedule: 'step', stepsPerEpoch: 5, validateEvery: 1 }, 5)
    expect([q2.optimizer.lr, q2.schedule, q2.stepsPerEpoch, q2.validateEvery]).toEqual([3e-3, { kind: 'step', stepSize: 1, gamma: 0.5 }, 5, 1])
    const [p] = runConfigs({ ...base, folds: [0], schedule: 'poly', warmupSteps: 5, power: 2 }, 5)
    expect(p.schedule).toEqual({ kind: 'poly', warmupSteps: 5, power: 2 })
    expect(() => runConfigs({ ...base, folds: [0], preset: 'quick', backbone: 'unetr' }, 5)).toThrow(
      /the unetr backbone has no "quick" preset; choose one of mmwhs, brats, small/,
    )
  })

  it('records the fixed weights of named variants and the given ones of custom, folds outermost', () => {
    const configs = runConfigs(
      { ...base, variants: ['Basic', 'SDD', 'custom'], weights: { eta: 0.5, alpha1: 0, alpha2: 2 }, temperature: 2 },
      2,
    )
    expect(configs.map((c) => c.id)).toEqual([
      'ds-dynunet-small-Basic-fold0',
      'ds-dynunet-small-SDD-fold0',
      'ds-dynunet-small-custom-fold0',
      'ds-dynunet-small-Basic-fold1',
      'ds-dynunet-small-SDD-fold1',
      'ds-dynunet-small-custom-fold1',
    ])
    expect(configs[0].loss).toEqual({ eta: 0, alpha1: 0, alpha2: 0, temperature: 2 })
    expect(configs[1].loss).toEqual({ eta: 1, alpha1: 0, alpha2: 1, temperature: 2 })
    expect(configs[2].loss).toEqual({ eta: 0.5, alpha1: 0, alpha2: 2, temperature: 2 })
  })

  it('refuses folds outside the split and a custom variant without weights', () => {
    expect(() => runConfigs({ ...base, folds: [5] }, 5)).toThrow(/split "k5" has folds 0–4; fold 5 does not exist/)
    expect(() => runConfigs({ ...base, variants: ['custom'] }, 5)).toThrow(/custom' variant needs weights/)
    expect(() => runConfigs({ ...base, patch: [24, 24, 24] }, 5)).not.toThrow() // checked when the run is written
  })

  it('runs.defaults answers the same defaults and presets the form is filled from', () => {
    const d = runFormDefaults()
    expect(commands['runs.defaults'].response.parse(d)).toEqual(d)
    expect(d.defaults.batch).toBe(RUN_DEFAULTS.batch)
    expect(d.presets.small).toMatchObject({ patch: PRESETS.dynunet.small.patch, epochs: RUN_PRESETS.small.epochs })
    expect(d.presets.mmwhs.epochs).toEqual({ dynunet: 300, unetr: 600 })
    expect(Object.keys(d.presets.quick.description)).toEqual(['dynunet'])
    expect(d.variants.SDE).toEqual(ABLATIONS.SDE)
  })
})

describe('the same run from the CLI and from the app', () => {
  const cliWs = tmpDir('same-cli')
  const appWs = tmpDir('same-app')

  beforeAll(() => {
    const imp = dsdCli(cliWs, ['import', join(ROOT, 'resources/sample/hippocampus')])
    expect(imp.status, imp.stderr).toBe(0)
    const split = dsdCli(cliWs, ['split', 'hippocampus-sample', '--folds', '10', '--seed', '0', '--name', 'k10'])
    expect(split.status, split.stderr).toBe(0)
    cpSync(cliWs, appWs, { recursive: true })
  })

  it('writes byte-identical config.json files', { timeout: 300_000 }, async () => {
    // `dsd train` with only the choices made (everything else its defaults); it is stopped
    // once it has written the runs, which is all this test needs.
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin/dsd.mjs'), 'train', '--dataset', 'hippocampus-sample', '--split', 'k10', '--folds', '1',
        '--variant', 'Basic,custom', '--eta', '0.5', '--alpha1', '0', '--alpha2', '2', '--backend', 'cpu',
        '--name', 'same', '--workspace', cliWs],
      { env: { ...process.env, DSD_BACKEND: 'cpu' }, stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    const queued = await new Promise<boolean>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString()
        if (/queued 2 run\(s\)/.test(stderr)) resolve(true)
      })
      child.on('exit', () => resolve(false))
    })
    child.kill('SIGKILL')
    expect(queued, stderr).toBe(true)

    // The same choices as the Training page sends them through the contract.
    const app = createApp({ workspace: appWs, transport: 'in-process', validateResponses: true })
    try {
      const { runIds } = await app.bridge.api().invoke('runs.create', {
        datasetId: 'hippocampus-sample',
        split: 'k10',
        folds: [1],
        variants: ['Basic', 'custom'],
        weights: { eta: 0.5, alpha1: 0, alpha2: 2 },
        backend: 'cpu',
        name: 'same',
      })
      expect(runIds).toEqual(['same-Basic-fold1', 'same-custom-fold1'])
    } finally {
      await app.close()
    }
    for (const id of ['same-Basic-fold1', 'same-custom-fold1']) {
      const cli = readFileSync(join(cliWs, 'runs', id, 'config.json'), 'utf8')
      const fromApp = readFileSync(join(appWs, 'runs', id, 'config.json'), 'utf8')
      expect(fromApp).toBe(cli)
    }
    const custom = JSON.parse(readFileSync(join(cliWs, 'runs', 'same-custom-fold1', 'config.json'), 'utf8'))
    expect(custom).toMatchObject({ epochs: RUN_PRESETS.small.epochs.dynunet, loss: { eta: 0.5, alpha1: 0, alpha2: 2, temperature: 3 } })
  })
})
