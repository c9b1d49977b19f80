/**
 * Custom loss weights (η, α1, α2): the contract refuses a custom variant without weights, the
 * CLI refuses weights next to a named variant, and a real `dsd train --eta … --alpha1 …
 * --alpha2 …` run records the weights and trains exactly the terms they switch on.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { commands } from '../../../main/contract'
import { dsdCli, ROOT, tmpDir } from '../../helpers/shared'

const workspace = tmpDir('custom-ws')
const dsd = (args: string[]) => dsdCli(workspace, args)

const TINY = ['--dataset', 'hippocampus-sample', '--split', 'k10', '--folds', '0', '--filters', '4,4,8,8,8',
  '--patch', '16', '--epochs', '1', '--steps-per-epoch', '1', '--validate-every', '0', '--backend', 'cpu']

describe('custom DSD weights', () => {
  beforeAll(() => {
    expect(dsd(['import', join(ROOT, 'resources/sample/hippocampus')]).status).toBe(0)
    expect(dsd(['split', 'hippocampus-sample', '--folds', '10', '--seed', '0', '--name', 'k10']).status).toBe(0)
  })

  it('the contract needs weights for the custom variant and bounds them', () => {
    const form = { datasetId: 'd', split: 's', folds: [0], variants: ['custom'] }
    const missing = commands['runs.create'].request.safeParse(form)
    expect(missing.success).toBe(false)
    expect(JSON.stringify(missing.error?.issues)).toMatch(/custom.*needs weights/)
    expect(commands['runs.create'].request.safeParse({ ...form, weights: { eta: 1, alpha1: 0, alpha2: -1 } }).success).toBe(false)
    const ok = commands['runs.create'].request.parse({ ...form, weights: { eta: 0.5, alpha1: 0, alpha2: 2 } })
    expect(ok.weights).toEqual({ eta: 0.5, alpha1: 0, alpha2: 2 })
    // Named variants need no weights.
    expect(commands['runs.create'].request.safeParse({ ...form, variants: ['DSD'] }).success).toBe(true)
  })

  it('the CLI refuses weights next to a named variant and out-of-range weights', () => {
    const mixed = dsd(['train', ...TINY, '--variant', 'Basic', '--eta', '0.5'])
    expect(mixed.status).toBe(2)
    expect(mixed.stderr).toMatch(/--eta\/--alpha1\/--alpha2 set the weights of the custom variant/)
    const negative = dsd(['train', ...TINY, '--alpha1=-1'])
    expect(negative.status).toBe(2)
    expect(negative.stderr).toMatch(/--alpha1: Too small: expected number to be >=0/)
  })

  it('trains a custom run with exactly the terms its weights switch on', { timeout: 600_000 }, () => {
    const r = dsd(['train', ...TINY, '--variant', 'Basic,custom', '--eta', '0.5', '--alpha1', '0', '--alpha2', '2', '--name', 'w'])
    expect(r.status, r.stderr).toBe(0)
    // The named variant in the same batch records (and trains with) its own fixed weights.
    const basic = JSON.parse(readFileSync(join(workspace, 'runs', 'w-Basic-fold0', 'config.json'), 'utf8'))
    expect(basic.loss).toEqual({ eta: 0, alpha1: 0, alpha2: 0, temperature: 3 })
    const dir = join(workspace, 'runs', 'w-custom-fold0')
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
    expect(config.variant).toBe('custom')
    expect(config.loss).toEqual({ eta: 0.5, alpha1: 0, alpha2: 2, temperature: 3 })
    const [epoch] = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    // η > 0: deep supervision heads; α2 > 0: decoder KL; α1 = 0: no encoder KL.
    expect(Object.keys(epoch.loss).sort()).toEqual(
      ['dce_D1', 'dce_D2', 'dce_D3', 'dce_D4', 'dce_Y', 'kl_dec_D2', 'kl_dec_D3', 'kl_dec_D4', 'total'].sort(),
    )
    const l = epoch.loss
    const expected = l.dce_Y + 0.5 * (l.dce_D1 + l.dce_D2 + l.dce_D3 + l.dce_D4) + 2 * (l.kl_dec_D2 + l.kl_dec_D3 + l.kl_dec_D4)
    expect(l.total).toBeCloseTo(expected, 4)
  })
})
