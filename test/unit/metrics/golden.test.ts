import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Vec3 } from '../../../main/data/volume'
import { readNifti, writeNifti } from '../../../main/data/nifti'
import type { Mat4 } from '../../../main/data/volume'
import { computeMetrics, type LabelMetrics } from '../../../main/metrics'
import { ROOT, SHARED, sharedPath, tmpDir } from '../../helpers/shared'

type GoldenLabel = {
  dice: number | null
  hd95: number | null
  assd: number | null
  nsd: number | null
  empty_prediction?: boolean
}
interface GoldenCase {
  prediction: string
  ground_truth: string
  spacing_mm: Vec3
  nsd_tolerance_mm: number
  labels: Record<string, GoldenLabel>
  labels_voxel_units: Record<string, GoldenLabel>
}

const golden = JSON.parse(readFileSync(sharedPath('golden/metrics/expected.json'), 'utf8')) as {
  cases: GoldenCase[]
}
const KEYS = ['dice', 'hd95', 'assd', 'nsd'] as const

function expectLabels(
  got: Record<string, LabelMetrics | GoldenLabel>,
  want: Record<string, GoldenLabel>,
) {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort())
  for (const [label, w] of Object.entries(want)) {
    const g = got[label]
    for (const k of KEYS) {
      if (w[k] === null) expect(g[k], `label ${label} ${k}`).toBeNull()
      else
        expect(
          Math.abs((g[k] as number) - w[k]!),
          `label ${label} ${k}: ${g[k]} vs ${w[k]}`,
        ).toBeLessThan(1e-4)
    }
    const empty = 'emptyPrediction' in g ? g.emptyPrediction : (g as GoldenLabel).empty_prediction
    expect(Boolean(empty), `label ${label} empty prediction flag`).toBe(Boolean(w.empty_prediction))
  }
}

describe('golden metrics (shared/golden/metrics/expected.json)', () => {
  it('has the cases this test expects', () => {
    expect(golden.cases.length).toBeGreaterThanOrEqual(8)
  })

  for (const c of golden.cases) {
    it(`library reproduces ${c.prediction.split('/').pop()} in mm and voxel units to 1e-4`, async () => {
      const [pred, gt] = await Promise.all([
        readNifti(join(SHARED, c.prediction)),
        readNifti(join(SHARED, c.ground_truth)),
      ])
      expect(pred.shape).toEqual(gt.shape)
      const common = { shape: gt.shape, spacing: c.spacing_mm, nsdTolerance: c.nsd_tolerance_mm }
      const mm = computeMetrics(pred.data, gt.data, common)
      expect(mm.units).toBe('mm')
      expectLabels(mm.labels, c.labels)
      const vox = computeMetrics(pred.data, gt.data, { ...common, voxelUnits: true })
      expect(vox.units).toBe('voxel')
      expectLabels(vox.labels, c.labels_voxel_units)
      // nothing that would serialise as NaN/Infinity
      expect(JSON.stringify(mm)).not.toMatch(/NaN|Infinity/)
    })
  }

  // Runs the real command (a tsx process start: a few seconds each).
  const cli = (args: string[]) =>
    JSON.parse(
      execFileSync(process.execPath, [join(ROOT, 'bin/dsd.mjs'), 'metrics', ...args, '--json'], {
        cwd: ROOT,
        encoding: 'utf8',
      }),
    ) as { labels: Record<string, GoldenLabel>; units: string; prediction_reordered: boolean }

  it('`dsd metrics --json` reproduces the anisotropic, oblique case in mm and voxels', () => {
    const c = golden.cases.find(
      (x) => x.prediction.includes('PGBM') && x.prediction.includes('slice_shift'),
    )!
    const args = ['--pred', join(SHARED, c.prediction), '--label', join(SHARED, c.ground_truth)]
    const mm = cli([...args, '--nsd-tolerance', String(c.nsd_tolerance_mm)])
    expect(mm.units).toBe('mm')
    expectLabels(mm.labels, c.labels)
    const vox = cli([...args, '--voxel-units'])
    expect(vox.units).toBe('voxel')
    expectLabels(vox.labels, c.labels_voxel_units)
  })

  it('`dsd metrics --json` reports an empty prediction like expected.json', () => {
    const c = golden.cases.find((x) => Object.values(x.labels).some((l) => l.empty_prediction))!
    const out = cli(['--pred', join(SHARED, c.prediction), '--label', join(SHARED, c.ground_truth)])
    expectLabels(out.labels, c.labels)
    expect(JSON.stringify(out)).not.toContain('NaN')
  })

  it('`dsd metrics` reorders a prediction stored with a flipped i axis onto the label grid', async () => {
    const c = golden.cases.find((x) => x.prediction.includes('hippocampus_033_swap_block'))!
    const pred = await readNifti(join(SHARED, c.prediction))
    const [nx, ny, nz] = pred.shape
    const flipped = new Uint8Array(pred.data.length)
    for (let k = 0, o = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++, o++) flipped[o] = pred.data[(k * ny + j) * nx + (nx - 1 - i)]
    const A = pred.affine
    const affine = A.map((row, r) =>
      r < 3 ? [-row[0], row[1], row[2], row[3] + (nx - 1) * row[0]] : [...row],
    ) as Mat4
    const dir = tmpDir('metrics-flip')
    mkdirSync(dir, { recursive: true })
    try {
      const file = join(dir, 'pred_flipped.nii.gz')
      await writeNifti(file, { ...pred, data: flipped, affine, datatype: 'uint8' })
      const out = cli(['--pred', file, '--label', join(SHARED, c.ground_truth)])
      expect(out.prediction_reordered).toBe(true)
      expectLabels(out.labels, c.labels)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('`dsd metrics` refuses label maps on different grids, naming both files', () => {
    const r = spawnSync(
      process.execPath,
      [
        join(ROOT, 'bin/dsd.mjs'),
        'metrics',
        '--pred',
        sharedPath('golden/metrics/pred_hippocampus_243_drop_l2.nii.gz'),
        '--label',
        sharedPath('data/msd-task04-hippocampus/labelsTr/hippocampus_001.nii.gz'),
      ],
      { cwd: ROOT, encoding: 'utf8' },
    )
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('METRICS_GRID_MISMATCH')
    expect(r.stderr).toContain('pred_hippocampus_243_drop_l2.nii.gz')
    expect(r.stderr).toContain('hippocampus_001.nii.gz')
    expect(r.stderr).toMatch(/34×53×24.*35×51×35/)
  })
})
