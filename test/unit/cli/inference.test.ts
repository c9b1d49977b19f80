/** The predict / evaluate / export commands, in process, on golden predictions folders. */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { CliError } from '../../../main/cli/args'
import * as evaluate from '../../../main/cli/evaluate'
import * as exp from '../../../main/cli/export'
import * as predict from '../../../main/cli/predict'
import { tmpDir } from '../../helpers/shared'
import { goldenFolder } from '../../helpers/inference'

const TMP = tmpDir('infer-cli')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

let dir = ''
beforeAll(async () => {
  dir = await goldenFolder(TMP, 'preds', 'msd-task04-hippocampus', 3, 0, [
    { id: 'hippocampus_001', pred: 'hippocampus_001_shift1', gt: 'hippocampus_001' },
    { id: 'hippocampus_243', pred: 'hippocampus_243_drop_l2', gt: 'hippocampus_243' },
  ])
})

function capture() {
  const out: string[] = []
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')))
  const write = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((s) => (out.push(String(s)), true))
  return {
    out,
    restore() {
      log.mockRestore()
      write.mockRestore()
    },
  }
}

describe('dsd evaluate / export / predict', () => {
  it('evaluate --dir writes the tables and prints the summary', async () => {
    const c = capture()
    try {
      expect(await evaluate.run(['--dir', dir, '--voxel-units', '--out', join(TMP, 'm')])).toBe(0)
    } finally {
      c.restore()
    }
    expect(c.out.join('\n')).toMatch(/1 L1\s+0\.9494 ± 0\.0716/) // mean ± sample std of 0.8988 and 1.0
    for (const f of [
      'preds-original.csv',
      'preds-original.summary.csv',
      'preds-original.summary-voxel.csv',
      'preds-original.json',
    ]) {
      expect(existsSync(join(TMP, 'm', f))).toBe(true)
    }
    const csv = readFileSync(join(TMP, 'm', 'preds-original.csv'), 'utf8')
    expect(csv.trim().split('\n')).toHaveLength(1 + 4)
  })

  it('export --dir writes masks and says why DICOM SEG is not available', async () => {
    const c = capture()
    const err = vi.spyOn(console, 'error').mockImplementation(() => {})
    try {
      expect(
        await exp.run([
          '--dir',
          dir,
          '--out',
          join(TMP, 'x'),
          '--format',
          'nifti,dicom-seg',
          '--json',
        ]),
      ).toBe(0)
    } finally {
      c.restore()
      err.mockRestore()
    }
    const res = JSON.parse(c.out.join(''))
    expect(res.written).toContain(join(TMP, 'x', 'hippocampus_001.nii.gz'))
    expect(res.notAvailable).toHaveLength(2)
    expect(res.notAvailable[0]).toMatch(/dicom-seg: not available/)
  })

  it('rejects bad options with a CliError naming them', async () => {
    await expect(predict.run([])).rejects.toBeInstanceOf(CliError)
    await expect(predict.run(['--run', 'x', '--blend', 'cubic'])).rejects.toThrow(/--blend/)
    await expect(predict.run(['--run', 'x', '--overlap', '1.5'])).rejects.toThrow(/--overlap/)
    await expect(predict.run(['--model', 'm.ckpt', '--image', 'a.nii.gz'])).rejects.toThrow(
      /--preprocess/,
    )
    await expect(evaluate.run(['--dir', dir, '--grid', 'raw'])).rejects.toThrow(/--grid/)
    await expect(evaluate.run(['--a', 'x'])).rejects.toThrow(/--b/)
    await expect(exp.run(['--dir', dir])).rejects.toThrow(/--out/)
    await expect(exp.run(['--dir', dir, '--out', TMP, '--values', 'raw'])).rejects.toThrow(
      /--values/,
    )
  })
})
