/**
 * `dsd inspect` and `dsd convert` on real files: the real CLI (bin/dsd.mjs) once end to end,
 * the rest in-process through the commands' `run`.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { run as convertRun } from '../../../main/cli/convert'
import { inspect, run as inspectRun } from '../../../main/cli/inspect'
import { main } from '../../../main/cli'
import { axcodes, readNifti } from '../../../main/data/nifti'
import { ROOT, sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('cli')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

async function captured(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  let out = ''
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk)
    return true
  })
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out += a.join(' ') + '\n'
  })
  try {
    const code = await fn()
    return { code, out }
  } finally {
    spy.mockRestore()
    log.mockRestore()
  }
}

describe('dsd inspect', () => {
  it('bin/dsd.mjs inspect FILE --json prints the geometry and values nibabel reports', () => {
    const file = sharedPath(
      'data',
      'tcia-brain-tumor-progression',
      'imagesTr',
      'PGBM-001_19920402.nii.gz',
    )
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/dsd.mjs'), 'inspect', file, '--json'], {
      encoding: 'utf8',
      cwd: ROOT,
    })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const j = JSON.parse(r.stdout)
    // cases.tsv: 260x320x24, 0.6875x0.6875x6.5, LAS, int16, min 0, max 2505, mean 360.291
    expect(j.shape).toEqual([260, 320, 24])
    expect(j.spacing.map((s: number) => +s.toFixed(4))).toEqual([0.6875, 0.6875, 6.5])
    expect(j.axcodes).toBe('LAS')
    expect(j.datatype).toBe('int16')
    expect(j.channels).toBe(1)
    expect(j.min).toBe(0)
    expect(j.max).toBe(2505)
    expect(j.mean).toBeCloseTo(360.291, 3)
    expect(j.affine).toHaveLength(4)
    expect(j.affine[3]).toEqual([0, 0, 0, 1])
    expect(j.affine[0][0]).toBeLessThan(0) // L
    expect(j.labels).toBeNull()
    expect(j.nifti).toMatchObject({
      version: 1,
      sformCode: 1,
      qformCode: 1,
      qfac: -1,
      gzipped: true,
    })
  })

  it('lists label values with voxel counts for a label map', async () => {
    const file = sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', 'hippocampus_003.nii.gz')
    const j = await inspect(file)
    // cases.tsv: float32 labels, 1550 / 1803 voxels, 34x52x35
    expect(j.datatype).toBe('float32')
    expect(j.labels).toEqual([
      { value: 0, voxels: 34 * 52 * 35 - 1550 - 1803 },
      { value: 1, voxels: 1550 },
      { value: 2, voxels: 1803 },
    ])
  })

  it('text output, header-only mode, DICOM folders and SEG files', async () => {
    const file = sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', 'hippocampus_001.nii.gz')
    const t = await captured(() => inspectRun([file]))
    expect(t.code).toBe(0)
    expect(t.out).toMatch(/shape\s+35 × 51 × 35/)
    expect(t.out).toMatch(/labels\s+0: 59527, 1: 1324, 2: 1624/)
    const h = await inspect(file, { headerOnly: true })
    expect(h.shape).toEqual([35, 51, 35])
    expect(h.min).toBeUndefined()
    const mr = sharedPath('data', 'dicom-samples', 'tcia-brain-tumor-progression_PGBM-001_19911119')
    const listed = await inspect(mr)
    expect(listed.format).toBe('dicom-folder')
    expect((listed.series as unknown[]).length).toBe(2)
    const seg = await inspect(
      sharedPath('data', 'dicom-samples', 'dcmqi_ct-3slice_liver-seg', 'liver_seg.dcm'),
    )
    expect(seg).toMatchObject({
      format: 'dicom-seg',
      frames: 3,
      segments: [{ number: 1, label: 'Liver' }],
    })
  })
})

describe('dsd convert', () => {
  it('DICOM series folder → NIfTI equal to the dcm2niix reference', async () => {
    const out = join(TMP, 't1.nii.gz')
    const src = sharedPath(
      'data',
      'dicom-samples',
      'tcia-brain-tumor-progression_PGBM-001_19911119',
      'T1post',
    )
    const r = await captured(() => convertRun([src, out]))
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/wrote .*t1\.nii\.gz: 260×320×25 int16, 0\.6875×0\.6875×6\.5 mm, LAS/)
    const got = await readNifti(out)
    const ref = await readNifti(
      sharedPath('data', 'tcia-brain-tumor-progression', 'imagesTr', 'PGBM-001_19911119.nii.gz'),
    )
    expect(got.datatype).toBe('int16')
    expect(Buffer.from(got.data.buffer).equals(Buffer.from(ref.data.buffer))).toBe(true)
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 4; j++)
        expect(Math.abs(got.affine[i][j] - ref.affine[i][j])).toBeLessThan(1e-4)
  })

  it('DICOM SEG + --reference → label map; errors for a missing --reference and several series', async () => {
    const dir = sharedPath('data', 'dicom-samples', 'dcmqi_ct-3slice_liver-seg')
    const out = join(TMP, 'liver.nii.gz')
    const r = await captured(() =>
      convertRun([join(dir, 'liver_seg.dcm'), out, '--reference', join(dir, 'ct'), '--json']),
    )
    expect(r.code).toBe(0)
    const j = JSON.parse(r.out)
    expect(j.segments[0]).toMatchObject({ number: 1, label: 'Liver', voxels: 107098 })
    const lab = await readNifti(out)
    expect(lab.datatype).toBe('uint8')
    expect(axcodes(lab.affine)).toBe('LAS')
    let n = 0
    for (const v of lab.data) n += v
    expect(n).toBe(107098)

    const errs: string[] = []
    const err = vi
      .spyOn(console, 'error')
      .mockImplementation((...a: unknown[]) => void errs.push(a.join(' ')))
    try {
      expect(await main(['convert', join(dir, 'liver_seg.dcm'), join(TMP, 'x.nii.gz')])).toBe(2)
      expect(errs.pop()).toMatch(/is a DICOM SEG: pass --reference/)
      const mr = sharedPath(
        'data',
        'dicom-samples',
        'tcia-brain-tumor-progression_PGBM-001_19911119',
      )
      expect(await main(['convert', mr, join(TMP, 'x.nii.gz')])).toBe(1)
      expect(errs.pop()).toMatch(/\[DICOM_MULTIPLE_SERIES\].*--series/)
      expect(await main(['convert', mr, join(TMP, 'x.nrrd')])).toBe(2)
      expect(errs.pop()).toMatch(/must be a \.nii\.gz or \.nii/)
    } finally {
      err.mockRestore()
    }
  })

  it('label NIfTI → DICOM SEG (.dcm output) → NIfTI gives the same labels', async () => {
    const mr = sharedPath(
      'data',
      'dicom-samples',
      'tcia-brain-tumor-progression_PGBM-001_19911119',
      'T1post',
    )
    const labelsFile = sharedPath(
      'data',
      'tcia-brain-tumor-progression',
      'labelsTr',
      'PGBM-001_19911119.nii.gz',
    )
    const seg = join(TMP, 'tumour.dcm')
    const r = await captured(() =>
      convertRun([labelsFile, seg, '--reference', mr, '--labels', '1=Tumour', '--json']),
    )
    expect(r.code).toBe(0)
    const j = JSON.parse(r.out)
    expect(j).toMatchObject({ format: 'dicom-seg', segments: [1] })
    expect(j.frames).toBeGreaterThan(0)
    const back = join(TMP, 'tumour.nii.gz')
    expect((await captured(() => convertRun([seg, back, '--reference', mr]))).code).toBe(0)
    const a = await readNifti(back)
    const b = await readNifti(labelsFile)
    expect(Buffer.from(a.data.buffer).equals(Buffer.from(b.data.buffer))).toBe(true)
    await expect(convertRun([labelsFile, join(TMP, 'y.dcm')])).rejects.toThrow(/pass --reference/)
    await expect(
      convertRun([labelsFile, join(TMP, 'y.dcm'), '--reference', mr, '--labels', 'x']),
    ).rejects.toThrow(/"x" is not "value=name"/)
  })

  it('NRRD → NIfTI with --datatype keeps the LPS-stored grid', async () => {
    const out = join(TMP, 'nrrd.nii')
    const src = sharedPath('data', 'dicom-samples', 'dcmqi_ct-3slice_liver-seg', 'liver_seg.nrrd')
    const r = await captured(() => convertRun([src, out, '--datatype', 'uint8']))
    expect(r.code).toBe(0)
    const v = await readNifti(out)
    expect(v.datatype).toBe('uint8')
    expect(axcodes(v.affine)).toBe('LPS')
    expect(v.affine[0][3]).toBeCloseTo(235.2, 4)
    expect(v.affine[1][3]).toBeCloseTo(226.8, 4)
  })
})
