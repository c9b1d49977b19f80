/**
 * NRRD reader: the real dcmqi label map, plus hand-written headers for the variants the reader
 * claims (detached .nhdr, big-endian raw, RAS space, spacings only, vector channels first).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { axcodes } from '../../../main/data/nifti'
import { readNrrd } from '../../../main/data/nrrd'
import { sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('nrrd')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

describe('readNrrd', () => {
  it('reads the dcmqi liver label map (gzip, LPS) as RAS', async () => {
    const v = await readNrrd(
      sharedPath('data', 'dicom-samples', 'dcmqi_ct-3slice_liver-seg', 'liver_seg.nrrd'),
    )
    expect(v.shape).toEqual([512, 512, 3])
    expect(v.datatype).toBe('int16')
    expect(axcodes(v.affine)).toBe('LPS')
    expect(v.affine[0][3]).toBeCloseTo(235.2, 6)
    expect(v.affine[2][3]).toBeCloseTo(-128.69, 6)
    let n = 0
    for (const x of v.data) n += x
    expect(n).toBe(36233 + 35645 + 35220)
  })

  it('detached .nhdr with big-endian raw uint16 in RAS space', async () => {
    const vals = Array.from({ length: 24 }, (_, i) => i * 1000 + 7)
    const raw = Buffer.alloc(48)
    vals.forEach((v, i) => raw.writeUInt16BE(v, 2 * i))
    writeFileSync(join(TMP, 'a.raw'), raw)
    writeFileSync(
      join(TMP, 'a.nhdr'),
      [
        'NRRD0004',
        'type: unsigned short',
        'dimension: 3',
        'space: right-anterior-superior',
        'sizes: 4 3 2',
        'space directions: (2,0,0) (0,3,0) (0,0,4)',
        'space origin: (1,2,3)',
        'endian: big',
        'encoding: raw',
        'data file: a.raw',
        '',
      ].join('\n'),
    )
    const v = await readNrrd(join(TMP, 'a.nhdr'))
    expect(v.datatype).toBe('uint16')
    expect(Array.from(v.data)).toEqual(vals)
    expect(v.affine).toEqual([
      [2, 0, 0, 1],
      [0, 3, 0, 2],
      [0, 0, 4, 3],
      [0, 0, 0, 1],
    ])
    expect(v.spacing).toEqual([2, 3, 4])
  })

  it('4D with the vector axis first: channels move to the slowest axis', async () => {
    // 2 channels interleaved per voxel, 3×2×1 voxels: value = voxel*10 + channel
    const vals: number[] = []
    for (let p = 0; p < 6; p++) for (let c = 0; c < 2; c++) vals.push(p * 10 + c)
    const body = gzipSync(Buffer.from(new Float32Array(vals).buffer))
    const head = [
      'NRRD0005',
      'type: float',
      'dimension: 4',
      'space: left-posterior-superior',
      'sizes: 2 3 2 1',
      'space directions: none (1,0,0) (0,1,0) (0,0,1)',
      'kinds: vector domain domain domain',
      'endian: little',
      'encoding: gzip',
      '',
      '',
    ].join('\n')
    writeFileSync(join(TMP, 'vec.nrrd'), Buffer.concat([Buffer.from(head), body]))
    const v = await readNrrd(join(TMP, 'vec.nrrd'))
    expect(v.shape).toEqual([3, 2, 1])
    expect(v.channels).toBe(2)
    expect(Array.from(v.data)).toEqual([0, 10, 20, 30, 40, 50, 1, 11, 21, 31, 41, 51])
    expect(axcodes(v.affine)).toBe('LPS')
  })

  it('spacings only (no space): a diagonal affine; bad type and magic are refused', async () => {
    writeFileSync(
      join(TMP, 's.nrrd'),
      'NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 2 2\nspacings: 0.5 0.5 2\nencoding: ascii\n\n1 2 3 4 5 6 7 8\n',
    )
    const v = await readNrrd(join(TMP, 's.nrrd'))
    expect(Array.from(v.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    expect(v.spacing).toEqual([0.5, 0.5, 2])
    writeFileSync(join(TMP, 'b.nrrd'), 'NRRD0004\ntype: block\ndimension: 3\nsizes: 2 2 2\n\n')
    await expect(readNrrd(join(TMP, 'b.nrrd'))).rejects.toMatchObject({ code: 'NRRD_BAD_HEADER' })
    writeFileSync(join(TMP, 'm.nrrd'), 'PNRD\n')
    await expect(readNrrd(join(TMP, 'm.nrrd'))).rejects.toMatchObject({ code: 'NRRD_BAD_MAGIC' })
  })
})
