/**
 * Bad input: each damaged file gets a specific DsdError naming the file, the problem and the
 * fix. The damaged files are made from real data in ../shared/data.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { DsdError } from '../../../main/errors'
import { encodeNifti, readNifti, readNiftiHeader } from '../../../main/data/nifti'
import { readNrrd } from '../../../main/data/nrrd'
import { readVolume } from '../../../main/data/volume-io'
import { sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('bad-input')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

const GZ = sharedPath(
  'data',
  'tcia-brain-tumor-progression',
  'imagesTr',
  'PGBM-001_19911119.nii.gz',
)
const RAW = gunzipSync(readFileSync(GZ)) // 260×320×25 int16 + 352-byte header

async function failure(p: Promise<unknown>): Promise<DsdError> {
  const err = await p.then(
    () => null,
    (e) => e,
  )
  expect(err, 'expected the read to fail').toBeInstanceOf(DsdError)
  return err as DsdError
}

function put(name: string, bytes: Uint8Array): string {
  const file = join(TMP, name)
  writeFileSync(file, bytes)
  return file
}

describe('NIfTI', () => {
  it('truncated .nii: names the shape, datatype and byte counts', async () => {
    const file = put('truncated.nii', RAW.subarray(0, 352 + 1200))
    const err = await failure(readNifti(file))
    expect(err.code).toBe('NIFTI_TRUNCATED')
    expect(err.message).toBe(
      `${file}: header says 260×320×25 int16 (4,160,000 bytes) but the file has 1,200 bytes of data; the file is truncated — re-export it`,
    )
    // the header alone is intact
    expect((await readNiftiHeader(file)).shape).toEqual([260, 320, 25])
  })

  it('truncated .nii.gz: gzip stream ends early', async () => {
    const gz = readFileSync(GZ)
    const file = put('truncated.nii.gz', gz.subarray(0, Math.floor(gz.length / 2)))
    const err = await failure(readNifti(file))
    expect(err.code).toBe('NIFTI_GZIP_TRUNCATED')
    expect(err.message).toMatch(/truncated\.nii\.gz: the gzip stream ends early .*re-download/)
    // header-only reads still work on the intact start
    expect((await readNiftiHeader(file)).datatype).toBe('int16')
  })

  it('corrupt gzip data', async () => {
    const gz = Buffer.from(readFileSync(GZ))
    for (let i = 2000; i < 2400; i++) gz[i] ^= 0x5a
    const file = put('corrupt.nii.gz', gz)
    const err = await failure(readNifti(file))
    expect(err.code).toBe('NIFTI_GZIP_CORRUPT')
    expect(err.message).toMatch(
      /corrupt\.nii\.gz: the gzip data is corrupt \(.+\); re-export or re-download/,
    )
  })

  it('flipped magic, garbage header size, Analyze without magic', async () => {
    const flipped = Buffer.from(RAW)
    flipped.write('n+9', 344, 'latin1')
    let err = await failure(readNifti(put('magic.nii', flipped)))
    expect(err.code).toBe('NIFTI_BAD_MAGIC')
    expect(err.message).toMatch(/magic\.nii: the NIfTI-1 magic is "n\+9", expected "n\+1" or "ni1"/)

    const notNifti = Buffer.from(RAW)
    notNifti.writeInt32LE(1234, 0)
    err = await failure(readNifti(put('size.nii', notNifti)))
    expect(err.code).toBe('NIFTI_BAD_MAGIC')
    expect(err.message).toMatch(/size\.nii: not a NIfTI file \(the first 4 bytes are d2 04 00 00/)

    const analyze = Buffer.from(RAW)
    analyze.fill(0, 344, 348)
    err = await failure(readNifti(put('analyze.nii', analyze)))
    expect(err.message).toMatch(/Analyze 7\.5/)

    // a PNG renamed .nii.gz is "not gzip" → still a clear magic error
    err = await failure(
      readNifti(put('png.nii.gz', Buffer.from('\x89PNG\r\n\x1a\n' + 'x'.repeat(400), 'latin1'))),
    )
    expect(err.code).toBe('NIFTI_BAD_MAGIC')
  })

  it('2D file where 3D is needed (and accepted with allow2D)', async () => {
    const bytes = encodeNifti({
      shape: [6, 5, 1],
      channels: 1,
      spacing: [1, 1, 1],
      affine: [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
      ],
      datatype: 'uint8',
      data: new Uint8Array(30),
    })
    new DataView(bytes.buffer).setInt16(40, 2, true) // dim[0] = 2
    const file = put('slice.nii', bytes)
    const err = await failure(readNifti(file))
    expect(err.code).toBe('NIFTI_NOT_3D')
    expect(err.message).toBe(
      `${file}: the image is 2D (6×5), but a 3D volume is needed; export the whole volume, not a single slice`,
    )
    const v = await readNifti(file, { allow2D: true })
    expect(v.shape).toEqual([6, 5, 1])
    expect((await readNiftiHeader(file)).ndim).toBe(2)
  })

  it('unsupported datatype, bad dim, empty file, missing file, a folder', async () => {
    const rgb = Buffer.from(RAW.subarray(0, 352 + 100))
    rgb.writeInt16LE(128, 70)
    let err = await failure(readNifti(put('rgb.nii', rgb)))
    expect(err.code).toBe('NIFTI_UNSUPPORTED_DATATYPE')
    expect(err.message).toMatch(/RGB24 \(code 128\) is not supported; convert/)

    const dim = Buffer.from(RAW)
    dim.writeInt16LE(-3, 44)
    err = await failure(readNifti(put('dim.nii', dim)))
    expect(err.code).toBe('NIFTI_BAD_HEADER')
    expect(err.message).toMatch(/dim\[2\] is -3/)

    err = await failure(readNifti(put('empty.nii', new Uint8Array(0))))
    expect(err.code).toBe('NIFTI_TRUNCATED')

    err = await failure(readNifti(join(TMP, 'nope.nii.gz')))
    expect(err.code).toBe('NOT_FOUND')
    err = await failure(readNifti(TMP))
    expect(err.code).toBe('NIFTI_IS_DIRECTORY')
  })

  it('a gzip file with a plain .nii name, and a plain file named .nii.gz, both read', async () => {
    const a = await readNifti(put('really-gz.nii', gzipSync(RAW)))
    const b = await readNifti(put('really-plain.nii.gz', RAW))
    expect(a.shape).toEqual([260, 320, 25])
    expect(b.data.length).toBe(a.data.length)
  })
})

describe('NRRD and readVolume', () => {
  it('truncated NRRD data and an unknown format', async () => {
    const nrrd = readFileSync(
      sharedPath('data', 'dicom-samples', 'dcmqi_ct-3slice_liver-seg', 'liver_seg.nrrd'),
    )
    let err = await failure(readNrrd(put('cut.nrrd', nrrd.subarray(0, nrrd.length - 500))))
    expect(err.code).toBe('NRRD_GZIP_CORRUPT')
    expect(err.message).toMatch(/cut\.nrrd: the gzip data is corrupt or truncated/)
    err = await failure(readVolume(put('notes.txt', Buffer.from('hello'))))
    expect(err.code).toBe('UNKNOWN_FORMAT')
    expect(err.message).toMatch(/notes\.txt: unknown volume format; use \.nii/)
  })
})
