/**
 * writeDicomSeg: a label map on a DICOM series' grid → BINARY SEG → readDicomSeg gives the
 * same labels back; dcmtk's dcmdump (an independent parser) reads the file.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  readDicomSeg,
  readDicomSeries,
  writeDicomSeg,
  type DicomVolume,
} from '../../../main/data/dicom'
import type { Mat4 } from '../../../main/data/volume'
import { sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('seg-write')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))
const MR = sharedPath('data', 'dicom-samples', 'tcia-brain-tumor-progression_PGBM-001_19911119')

let t1: DicomVolume
let labels: Uint8Array
beforeAll(async () => {
  t1 = await readDicomSeries(join(MR, 'T1post'))
  const mask = await readDicomSeries(join(MR, 'MaskTumor'))
  // tumour = 1, plus a block labelled 3 in the first rows (j small: tests the row flip)
  labels = Uint8Array.from(mask.data)
  const [nx, ny] = t1.shape
  for (let k = 2; k < 5; k++)
    for (let j = 0; j < 10; j++) for (let i = 20; i < 40; i++) labels[(k * ny + j) * nx + i] = 3
})

describe('writeDicomSeg', () => {
  it('round trips a two-segment label map on an oblique MR grid', async () => {
    const file = join(TMP, 'seg.dcm')
    const vol = { ...t1, datatype: 'uint8' as const, data: labels }
    const r = await writeDicomSeg(file, vol, t1, {
      segments: [
        { number: 1, label: 'Tumour' },
        { number: 3, label: 'Block', description: 'synthetic' },
      ],
      algorithmType: 'AUTOMATIC',
    })
    expect(r.segments).toEqual([1, 3])
    const back = await readDicomSeg(file, t1)
    expect(back.framesByUid).toBe(r.frames)
    expect(back.segments.map((s) => [s.number, s.label, s.voxels])).toEqual([
      [1, 'Tumour', 2641],
      [3, 'Block', 600],
    ])
    let diff = 0
    for (let i = 0; i < labels.length; i++) if (back.volume.data[i] !== labels[i]) diff++
    expect(diff).toBe(0)
    // frames are matched by position too (UIDs hidden)
    const noUid = {
      ...t1,
      dicom: { ...t1.dicom, sopInstanceUIDs: t1.dicom.sopInstanceUIDs.map(() => 'x') },
    }
    const byPos = await readDicomSeg(file, noUid)
    expect(byPos.framesByPosition).toBe(r.frames)

    const dump = spawnSync(
      'dcmdump',
      ['+P', '0028,0008', '+P', '0062,0001', '+P', '0020,0052', file],
      {
        encoding: 'utf8',
      },
    )
    if (dump.error)
      throw new Error(
        `dcmdump (dcmtk) is needed for this check: ${dump.error.message}; install dcmtk`,
      )
    expect(dump.status).toBe(0)
    expect(dump.stdout).toContain(`IS [${r.frames}]`)
    expect(dump.stdout).toContain('CS [BINARY]')
    expect(dump.stdout).toContain(t1.dicom.frameOfReferenceUID!)
  })

  it('FRACTIONAL SEG (8-bit) round trips too', async () => {
    const file = join(TMP, 'frac.dcm')
    const vol = { ...t1, datatype: 'uint8' as const, data: labels }
    const r = await writeDicomSeg(file, vol, t1, { fractional: true })
    const back = await readDicomSeg(file, t1)
    expect(back.segmentationType).toBe('FRACTIONAL')
    expect(back.framesByUid).toBe(r.frames)
    expect(back.segments.map((s) => s.label)).toEqual(['Segment 1', 'Segment 3'])
    let diff = 0
    for (let i = 0; i < labels.length; i++) if (back.volume.data[i] !== labels[i]) diff++
    expect(diff).toBe(0)
  })

  it('refuses labels on another grid and an empty label map', async () => {
    const shifted = {
      ...t1,
      datatype: 'uint8' as const,
      data: labels,
      affine: t1.affine.map((r) => [...r]) as Mat4,
    }
    shifted.affine[0][3] += 2
    await expect(writeDicomSeg(join(TMP, 'bad.dcm'), shifted, t1)).rejects.toMatchObject({
      code: 'DICOM_SEG_MISMATCH',
      message: expect.stringMatching(/affine differs .* by 2\.0000 mm/),
    })
    const empty = { ...t1, datatype: 'uint8' as const, data: new Uint8Array(labels.length) }
    await expect(writeDicomSeg(join(TMP, 'empty.dcm'), empty, t1)).rejects.toMatchObject({
      code: 'DICOM_SEG_EMPTY',
    })
  })
})
