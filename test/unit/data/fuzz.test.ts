/**
 * Seeded fuzzing of the volume readers with mutations of real files from ../shared/data:
 * truncation, appended bytes, flipped header bytes, extreme / NaN / Inf header fields, wrong
 * datatypes, malformed DICOM fields, damaged slices in a series, and decompression bombs.
 *
 * Every mutated file is either read correctly or rejected with a DsdError whose code belongs
 * to the reader and whose message names the file. "Read correctly" means: the volume is
 * self-consistent (whole positive shape, data length = voxels × channels, finite
 * non-degenerate affine, positive spacing) and, where the mutation touched nothing that
 * decides geometry or voxel values, identical to the original. A case must finish within a
 * time bound, and the bombs within a memory bound. The same seed gives the same cases.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { DsdError } from '../../../main/errors'
import { readDicomSeries } from '../../../main/data/dicom'
import { dcmjs, type Ds } from '../../../main/data/dicom/parse'
import { readNifti } from '../../../main/data/nifti'
import { readNrrd } from '../../../main/data/nrrd'
import type { Volume } from '../../../main/data/volume'
import { sharedPath, tmpDir } from '../../helpers/shared'

const SEED = 0x5eed2024
const TMP = tmpDir('fuzz')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

/** mulberry32: a small, fixed PRNG so every run makes the same cases. */
function prng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T,>(a: readonly T[]): T => a[Math.floor(next() * a.length)],
  }
}

/** Per-case time bound (ms); the machine is slow and shared, so this is generous. */
const CASE_MS = 10_000
const tally = { read: 0, rejected: 0, codes: new Map<string, number>() }
let caseNo = 0

type Outcome = { ok: true; volume: Volume } | { ok: false; error: DsdError }

/** Run one read: it must succeed, or fail with a DsdError of the reader naming the file. */
async function attempt(what: string, file: string, codes: RegExp, read: () => Promise<Volume>): Promise<Outcome> {
  const t0 = performance.now()
  let out: Outcome
  try {
    out = { ok: true, volume: await read() }
    tally.read++
  } catch (err) {
    if (!(err instanceof DsdError)) {
      throw new Error(`${what}: the reader threw a non-specific ${(err as Error)?.name}: ${(err as Error)?.message}`)
    }
    expect(err.code, `${what}: ${err.message}`).toMatch(codes)
    expect(err.message, `${what}: the message must name the file`).toContain(basename(file))
    tally.rejected++
    tally.codes.set(err.code, (tally.codes.get(err.code) ?? 0) + 1)
    out = { ok: false, error: err }
  }
  const ms = performance.now() - t0
  expect(ms, `${what} took ${ms.toFixed(0)} ms`).toBeLessThan(CASE_MS)
  return out
}

/** A volume that is consistent with itself: what any successful read must give. */
function consistent(what: string, v: Volume): void {
  for (const n of v.shape) expect(Number.isInteger(n) && n >= 1, `${what}: shape ${v.shape}`).toBe(true)
  expect(Number.isInteger(v.channels) && v.channels >= 1, `${what}: channels`).toBe(true)
  expect(v.data.length, `${what}: data length`).toBe(v.shape[0] * v.shape[1] * v.shape[2] * v.channels)
  for (const row of v.affine) for (const x of row) expect(Number.isFinite(x), `${what}: affine ${JSON.stringify(v.affine)}`).toBe(true)
  for (const s of v.spacing) expect(s > 0 && Number.isFinite(s), `${what}: spacing ${v.spacing}`).toBe(true)
  const m = v.affine
  const det =
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
  expect(Math.abs(det), `${what}: degenerate affine`).toBeGreaterThan(1e-6 * v.spacing[0] * v.spacing[1] * v.spacing[2])
}

function sameData(what: string, v: Volume, ref: Volume): void {
  expect(v.shape, what).toEqual(ref.shape)
  expect(v.channels, what).toBe(ref.channels)
  expect(v.data.length, what).toBe(ref.data.length)
  let diff = -1
  for (let i = 0; i < v.data.length; i++) {
    if (!Object.is(v.data[i], ref.data[i])) {
      diff = i
      break
    }
  }
  expect(diff, `${what}: voxel ${diff} differs`).toBe(-1)
}

function sameGeometry(what: string, v: Volume, ref: Volume): void {
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(v.affine[r][c], `${what}: affine`).toBe(ref.affine[r][c])
}

function put(name: string, bytes: Uint8Array | string): string {
  const file = join(TMP, `${String(caseNo++).padStart(4, '0')}-${name}`)
  writeFileSync(file, bytes)
  return file
}

/** Peak growth of ArrayBuffer memory while `fn` runs (sampled every 2 ms). */
async function peakArrayBuffers<T>(fn: () => Promise<T>): Promise<{ result: T; peak: number }> {
  const base = process.memoryUsage().arrayBuffers
  let peak = 0
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base)
  }, 2)
  try {
    const result = await fn()
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base)
    return { result, peak }
  } finally {
    clearInterval(timer)
  }
}

/** 1 MiB of zeros gzipped once and repeated: `mib` MiB when inflated, ~1 KiB per MiB on disk. */
function zeroBomb(mib: number): Buffer {
  const member = gzipSync(Buffer.alloc(1 << 20), { level: 9 })
  return Buffer.concat(Array.from({ length: mib }, () => member))
}

// ---------------------------------------------------------------------------------------------
// NIfTI

const NIFTI_CODES = /^(NIFTI_[A-Z_]+|NOT_FOUND)$/

/** NIfTI-1 header fields: offset, type, and what they decide. */
type Role = 'voxels' | 'geometry' | 'none'
const N1_FIELDS: { name: string; off: number; type: 'i16' | 'i32' | 'f32' | 'u8'; role: Role }[] = [
  { name: 'sizeof_hdr', off: 0, type: 'i32', role: 'voxels' },
  ...Array.from({ length: 8 }, (_, k) => ({ name: `dim[${k}]`, off: 40 + 2 * k, type: 'i16' as const, role: 'voxels' as const })),
  { name: 'intent_p1', off: 56, type: 'f32', role: 'none' },
  { name: 'intent_code', off: 68, type: 'i16', role: 'none' },
  { name: 'datatype', off: 70, type: 'i16', role: 'voxels' },
  { name: 'bitpix', off: 72, type: 'i16', role: 'voxels' },
  { name: 'slice_start', off: 74, type: 'i16', role: 'none' },
  { name: 'pixdim[0]', off: 76, type: 'f32', role: 'geometry' },
  ...[1, 2, 3].map((k) => ({ name: `pixdim[${k}]`, off: 76 + 4 * k, type: 'f32' as const, role: 'geometry' as const })),
  { name: 'pixdim[4]', off: 92, type: 'f32', role: 'none' },
  { name: 'vox_offset', off: 108, type: 'f32', role: 'voxels' },
  { name: 'scl_slope', off: 112, type: 'f32', role: 'voxels' },
  { name: 'scl_inter', off: 116, type: 'f32', role: 'voxels' },
  { name: 'xyzt_units', off: 123, type: 'u8', role: 'none' },
  { name: 'cal_max', off: 124, type: 'f32', role: 'none' },
  { name: 'cal_min', off: 128, type: 'f32', role: 'none' },
  { name: 'toffset', off: 136, type: 'f32', role: 'none' },
  { name: 'qform_code', off: 252, type: 'i16', role: 'geometry' },
  { name: 'sform_code', off: 254, type: 'i16', role: 'geometry' },
  ...['quatern_b', 'quatern_c', 'quatern_d', 'qoffset_x', 'qoffset_y', 'qoffset_z'].map((name, k) => ({
    name,
    off: 256 + 4 * k,
    type: 'f32' as const,
    role: 'geometry' as const,
  })),
  ...Array.from({ length: 12 }, (_, k) => ({ name: `srow[${k}]`, off: 280 + 4 * k, type: 'f32' as const, role: 'geometry' as const })),
]

/** The role of the byte at `off` of a NIfTI-1 header (voxels > geometry > none). */
function roleOf(off: number): Role {
  if (off < 4 || (off >= 40 && off < 56) || (off >= 70 && off < 74) || (off >= 108 && off < 120) || (off >= 344 && off < 348)) return 'voxels'
  if ((off >= 76 && off < 92) || (off >= 252 && off < 328)) return 'geometry'
  return 'none'
}

const F32_VALUES = [NaN, Infinity, -Infinity, 0, -0, -1, 1e30, -1e30, 1e-30, 0.5, 2.5, 352.5, 3.4e38]
const INT_VALUES = [0, -1, 1, 2, 3, 4, 7, 8, 9, 16, 64, 128, 255, 256, 512, 1024, 32767, -32768, 2 ** 31 - 1, -(2 ** 31)]

function setField(b: Buffer, f: (typeof N1_FIELDS)[number], v: number): void {
  if (f.type === 'f32') b.writeFloatLE(v, f.off)
  else if (f.type === 'i16') b.writeInt16LE(Math.max(-32768, Math.min(32767, Math.trunc(v))), f.off)
  else if (f.type === 'i32') b.writeInt32LE(Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.trunc(v))), f.off)
  else b.writeUInt8(Math.abs(Math.trunc(v)) & 0xff, f.off)
}

describe('fuzz: NIfTI', () => {
  const sources = [
    sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', 'hippocampus_001.nii.gz'),
    sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', 'hippocampus_003.nii.gz'),
    sharedPath('data', 'tcia-brain-tumor-progression', 'labelsTr', 'PGBM-001_19911119.nii.gz'),
  ]

  it('300 mutations of real files: read correctly or refused with a specific error', async () => {
    const rnd = prng(SEED)
    for (const [si, src] of sources.entries()) {
      const raw = gunzipSync(readFileSync(src))
      const ref = await readNifti(src)
      const cases = si === 2 ? 60 : 120
      for (let c = 0; c < cases; c++) {
        const kind = rnd.pick(['field', 'field', 'field', 'flip', 'flip', 'truncate', 'append', 'gzip-truncate', 'gzip-flip'] as const)
        const b = Buffer.from(raw)
        let what: string
        let role: Role
        let file: string
        let mustFail = false
        if (kind === 'field') {
          const f = rnd.pick(N1_FIELDS)
          const v = f.type === 'f32' ? rnd.pick(F32_VALUES) : rnd.pick(INT_VALUES)
          setField(b, f, v)
          what = `${basename(src)}: ${f.name} = ${v}`
          role = f.role
          file = put('field.nii', b)
        } else if (kind === 'flip') {
          const off = rnd.int(0, 351)
          b[off] ^= 1 << rnd.int(0, 7)
          what = `${basename(src)}: header byte ${off} flipped`
          role = roleOf(off)
          file = put('flip.nii', b)
        } else if (kind === 'truncate') {
          const at = rnd.next() < 0.3 ? rnd.int(0, 351) : rnd.int(352, raw.length - 1)
          what = `${basename(src)}: truncated at ${at} of ${raw.length}`
          role = 'voxels'
          mustFail = true
          file = put('cut.nii', b.subarray(0, at))
        } else if (kind === 'append') {
          const n = rnd.int(1, 4096)
          what = `${basename(src)}: ${n} bytes appended`
          role = 'voxels'
          mustFail = true
          file = put('long.nii', Buffer.concat([b, Buffer.alloc(n, rnd.int(0, 255))]))
        } else if (kind === 'gzip-truncate') {
          const gz = gzipSync(b)
          const at = rnd.int(0, gz.length - 1)
          what = `${basename(src)}: gzip truncated at ${at} of ${gz.length}`
          role = 'voxels'
          mustFail = true
          file = put('cut.nii.gz', gz.subarray(0, at))
        } else {
          const gz = gzipSync(b)
          const off = rnd.int(10, gz.length - 1)
          gz[off] ^= 1 << rnd.int(0, 7)
          what = `${basename(src)}: gzip byte ${off} flipped`
          role = 'voxels' // deflate data: the CRC must catch it, or the data is unchanged
          file = put('flip.nii.gz', gz)
        }
        const out = await attempt(what, file, NIFTI_CODES, () => readNifti(file))
        if (mustFail) expect(out.ok, `${what} must be refused`).toBe(false)
        if (!out.ok) {
          expect(role, `${what}: a field that decides nothing was refused (${out.error.message})`).not.toBe('none')
          continue
        }
        consistent(what, out.volume)
        if (role !== 'voxels') sameData(what, out.volume, ref)
        if (role === 'none') sameGeometry(what, out.volume, ref)
        if (kind === 'gzip-flip') sameData(what, out.volume, ref)
      }
    }
    expect(tally.read).toBeGreaterThan(30)
    expect(tally.rejected).toBeGreaterThan(100)
  })

  it('NaN vox_offset, NaN/zero pixdim with the qform, parallel sform axes, bitpix mismatch: each refused by name', async () => {
    const raw = gunzipSync(readFileSync(sources[0]))
    const cases: [string, (b: Buffer) => void, string][] = [
      ['vox_offset', (b) => b.writeFloatLE(NaN, 108), 'NIFTI_BAD_HEADER'],
      ['vox_offset', (b) => b.writeFloatLE(352.5, 108), 'NIFTI_BAD_HEADER'],
      ['pixdim[2]', (b) => (b.writeInt16LE(0, 254), b.writeFloatLE(0, 84)), 'NIFTI_BAD_HEADER'],
      ['pixdim[1]', (b) => (b.writeInt16LE(0, 254), b.writeFloatLE(NaN, 80)), 'NIFTI_BAD_HEADER'],
      ['srow', (b) => (b.writeFloatLE(0, 280), b.writeFloatLE(1, 284), b.writeFloatLE(0, 296), b.writeFloatLE(1, 300)), 'NIFTI_BAD_HEADER'],
      ['srow', (b) => b.writeFloatLE(Infinity, 292), 'NIFTI_BAD_HEADER'],
      ['bitpix', (b) => b.writeInt16LE(16, 72), 'NIFTI_BAD_HEADER'],
      ['quatern', (b) => (b.writeInt16LE(0, 254), b.writeFloatLE(0.9, 256), b.writeFloatLE(0.9, 260)), 'NIFTI_BAD_HEADER'],
      ['scl_slope', (b) => b.writeFloatLE(Infinity, 112), 'NIFTI_BAD_HEADER'],
      ['dim', (b) => (b.writeInt16LE(32767, 42), b.writeInt16LE(32767, 44), b.writeInt16LE(32767, 46)), 'NIFTI_TOO_LARGE'],
    ]
    for (const [field, mutate, code] of cases) {
      const b = Buffer.from(raw)
      mutate(b)
      const file = put('named.nii', b)
      const out = await attempt(field, file, NIFTI_CODES, () => readNifti(file))
      expect(out.ok, field).toBe(false)
      if (!out.ok) {
        expect(out.error.code, out.error.message).toBe(code)
        if (code === 'NIFTI_BAD_HEADER') expect(out.error.message).toContain(field.replace(/\[.*/, ''))
      }
    }
  })

  it('bombs: a 1 GiB gzip and a header claiming 32767³ voxels fail fast without inflating or allocating', async () => {
    const raw = gunzipSync(readFileSync(sources[0]))
    const header = raw.subarray(0, 352)
    // a valid header for 35×51×35 uint8, then 1 GiB of zeros where 62 KB are expected
    const file = put('bomb.nii.gz', Buffer.concat([gzipSync(header), zeroBomb(1024)]))
    const t0 = performance.now()
    const { result, peak } = await peakArrayBuffers(() => attempt('gzip bomb', file, NIFTI_CODES, () => readNifti(file)))
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.error.code).toBe('NIFTI_TOO_LONG')
    expect(performance.now() - t0).toBeLessThan(5000)
    expect(peak, `peak ArrayBuffer growth ${peak} bytes`).toBeLessThan(64 << 20)

    const huge = Buffer.from(header)
    for (const off of [42, 44, 46]) huge.writeInt16LE(32767, off)
    huge.writeInt16LE(64, 70) // float64
    huge.writeInt16LE(64, 72)
    const hf = put('huge.nii.gz', gzipSync(huge))
    const big = await peakArrayBuffers(() => attempt('huge header', hf, NIFTI_CODES, () => readNifti(hf)))
    expect(big.result.ok).toBe(false)
    if (!big.result.ok) expect(big.result.error.code).toBe('NIFTI_TOO_LARGE')
    expect(big.peak).toBeLessThan(16 << 20)
  })
})

// ---------------------------------------------------------------------------------------------
// NRRD

const NRRD_CODES = /^(NRRD_[A-Z_]+|NOT_FOUND)$/

describe('fuzz: NRRD', () => {
  const src = sharedPath('data', 'dicom-samples', 'dcmqi_ct-3slice_liver-seg', 'liver_seg.nrrd')
  const whole = readFileSync(src)
  const split = whole.indexOf('\n\n') + 2
  const headerLines = whole.subarray(0, split - 2).toString('latin1').split('\n')
  const gzData = whole.subarray(split)
  const rawData = gunzipSync(gzData)

  const VALUES: Record<string, string[]> = {
    type: ['short', 'float', 'double', 'uchar', 'block', 'int64', ''],
    dimension: ['3', '2', '4', '1', '0', '3.5', 'x', '-3'],
    sizes: ['512 512 3', '512 512 3.5', '512 512 0', '512 512 -3', '512 512', '512 512 3 1', '99999999 99999999 99999999', 'a b c', '512 512 6', '512 256 6'],
    endian: ['little', 'big', 'middle', ''],
    encoding: ['raw', 'gzip', 'ascii', 'bzip2', 'hex'],
    space: ['left-posterior-superior', 'right-anterior-superior', 'scanner-xyz', 'unknown', ''],
    'space directions': ['(1,0,0) (0,1,0) (0,0,1)', '(0,0,0) (0,1,0) (0,0,1)', '(1,0,0) (1,0,0) (0,0,1)', '(NaN,0,0) (0,1,0) (0,0,1)', '(1,0,0) (0,1,0)', 'none none none', '(1,0) (0,1,0) (0,0,1)', '(inf,0,0) (0,1,0) (0,0,1)'],
    'space origin': ['(0,0,0)', '(NaN,0,0)', '(1,2)', 'none', '(a,b,c)'],
    'byte skip': ['0', '-1', '10', 'x', '1.5', '-2', '99999999999'],
    'line skip': ['0', '1', 'x', '-1'],
    kinds: ['domain domain domain', 'space space space', 'list domain domain', 'x'],
    spacings: ['1 1 1', '0 1 1', 'nan 1 1', '1 1', 'x y z'],
  }
  const IRRELEVANT = new Set(['kinds'])

  function build(fields: Map<string, string | null>, data: Buffer): Buffer {
    const lines = [headerLines[0]]
    for (const l of headerLines.slice(1)) {
      if (l.startsWith('#')) {
        lines.push(l)
        continue
      }
      const key = l.slice(0, l.indexOf(':')).trim()
      if (fields.has(key)) {
        const v = fields.get(key)
        if (v !== null) lines.push(`${key}: ${v}`)
        fields.delete(key)
      } else lines.push(l)
    }
    for (const [k, v] of fields) if (v !== null) lines.push(`${k}: ${v}`)
    return Buffer.concat([Buffer.from(lines.join('\n') + '\n\n', 'latin1'), data])
  }

  it('160 mutations of the dcmqi label map: read correctly or refused with a specific error', async () => {
    const rnd = prng(SEED + 1)
    const ref = await readNrrd(src)
    for (let c = 0; c < 160; c++) {
      const kind = rnd.pick(['field', 'field', 'field', 'remove', 'truncate', 'append', 'raw'] as const)
      const fields = new Map<string, string | null>()
      let data: Buffer = gzData
      let what: string
      let relevant = true
      let mustFail = false
      if (kind === 'field') {
        const key = rnd.pick(Object.keys(VALUES))
        const v = rnd.pick(VALUES[key])
        fields.set(key, v)
        what = `${key}: ${v}`
        relevant = !IRRELEVANT.has(key)
      } else if (kind === 'remove') {
        const key = rnd.pick(['space directions', 'space origin', 'space', 'endian', 'encoding', 'kinds', 'sizes', 'type'])
        fields.set(key, null)
        what = `no ${key}`
        relevant = !IRRELEVANT.has(key)
      } else if (kind === 'truncate') {
        const at = rnd.int(0, gzData.length - 1)
        data = gzData.subarray(0, at)
        what = `gzip data truncated at ${at}`
        mustFail = true
      } else if (kind === 'append') {
        data = Buffer.concat([gzData, gzipSync(Buffer.alloc(rnd.int(1, 5000)))])
        what = 'a second gzip member appended'
        mustFail = true
      } else {
        // the same voxels stored raw, with a random change of length
        const delta = rnd.pick([0, 0, -1, 1, -1000, 2, 7])
        data = delta >= 0 ? Buffer.concat([rawData, Buffer.alloc(delta)]) : rawData.subarray(0, rawData.length + delta)
        fields.set('encoding', 'raw')
        what = `raw data ${delta >= 0 ? '+' : ''}${delta} bytes`
        relevant = delta !== 0
        mustFail = delta !== 0
      }
      const file = put('m.nrrd', build(fields, data))
      const out = await attempt(what, file, NRRD_CODES, () => readNrrd(file))
      if (mustFail) expect(out.ok, `${what} must be refused`).toBe(false)
      if (!out.ok) {
        expect(relevant, `${what}: refused though it decides nothing (${out.error.message})`).toBe(true)
        continue
      }
      consistent(what, out.volume)
      if (!relevant) {
        sameData(what, out.volume, ref)
        sameGeometry(what, out.volume, ref)
      }
    }
  })

  it('ASCII data: non-numeric, fractional or out-of-range values and wrong counts are refused', async () => {
    const head = 'NRRD0004\ntype: short\ndimension: 3\nsizes: 2 2 2\nspacings: 1 1 2\nencoding: ascii\n\n'
    const good = await attempt('ascii', put('a.nrrd', head + '1 2 3 4 5 6 7 8\n'), NRRD_CODES, () => readNrrd(join(TMP, `${String(caseNo - 1).padStart(4, '0')}-a.nrrd`)))
    expect(good.ok).toBe(true)
    for (const [body, code] of [
      ['1 2 3 4 5 6 7 x\n', 'NRRD_BAD_DATA'],
      ['1 2 3 4 5 6 7 8.5\n', 'NRRD_BAD_DATA'],
      ['1 2 3 4 5 6 7 99999\n', 'NRRD_BAD_DATA'],
      ['1 2 3 4 5 6 7 nan\n', 'NRRD_BAD_DATA'],
      ['1 2 3 4 5 6 7\n', 'NRRD_TRUNCATED'],
      ['1 2 3 4 5 6 7 8 9\n', 'NRRD_TOO_LONG'],
    ] as const) {
      const file = put('a.nrrd', head + body)
      const out = await attempt(body, file, NRRD_CODES, () => readNrrd(file))
      expect(out.ok ? 'read' : out.error.code, body).toBe(code)
    }
  })

  it('bombs: 1 GiB of gzip data and sizes claiming 10¹⁸ bytes fail fast within a memory bound', async () => {
    const file = put('bomb.nrrd', build(new Map(), zeroBomb(1024)))
    const { result, peak } = await peakArrayBuffers(() => attempt('nrrd bomb', file, NRRD_CODES, () => readNrrd(file)))
    expect(result.ok ? 'read' : result.error.code).toBe('NRRD_TOO_LONG')
    expect(peak).toBeLessThan(64 << 20)
    const huge = put('huge.nrrd', build(new Map([['sizes', '1000000 1000000 1000000']]), gzData))
    const big = await attempt('huge sizes', huge, NRRD_CODES, () => readNrrd(huge))
    expect(big.ok ? 'read' : big.error.code).toBe('NRRD_TOO_LARGE')
  })
})

// ---------------------------------------------------------------------------------------------
// DICOM

const DICOM_CODES = /^(DICOM_[A-Z_]+|NOT_FOUND)$/

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
}

describe('fuzz: DICOM', () => {
  const t1 = sharedPath('data', 'dicom-samples', 'tcia-brain-tumor-progression_PGBM-001_19911119', 'T1post')
  const slices = readdirSync(t1).sort()
  const M = dcmjs.data.DicomMetaDictionary

  function parse(file: string): { meta: Record<string, unknown>; ds: Ds } {
    const dd = dcmjs.data.DicomMessage.readFile(toArrayBuffer(readFileSync(file)), {})
    return { meta: dd.meta, ds: M.naturalizeDataset(dd.dict) }
  }
  function write(meta: Record<string, unknown>, ds: Ds): Buffer {
    const dict = new dcmjs.data.DicomDict(meta)
    dict.dict = M.denaturalizeDataset(ds)
    return Buffer.from(dict.write())
  }
  /** A folder holding the given files (name → bytes). */
  function folder(files: [string, Uint8Array][]): string {
    const dir = join(TMP, `${String(caseNo++).padStart(4, '0')}-series`)
    mkdirSync(dir)
    for (const [n, b] of files) writeFileSync(join(dir, n), b)
    return dir
  }

  const MUTATIONS: [string, unknown, boolean][] = [
    // field, value, decides geometry or voxels
    ['Rows', 0, true],
    ['Rows', 65535, true],
    ['Rows', 160, true],
    ['Columns', 0, true],
    ['Columns', 1, true],
    ['NumberOfFrames', 1e9, true],
    ['NumberOfFrames', 2, true],
    ['NumberOfFrames', 0, true],
    ['BitsAllocated', 0, true],
    ['BitsAllocated', 12, true],
    ['BitsAllocated', 8, true],
    ['BitsAllocated', 32, true],
    ['PixelRepresentation', 2, true],
    ['PixelRepresentation', 1, true],
    ['SamplesPerPixel', 3, true],
    ['PixelSpacing', [0, 0], true],
    ['PixelSpacing', [-1, 0.6875], true],
    ['PixelSpacing', ['abc', 0.6875], true],
    ['PixelSpacing', undefined, true],
    ['PixelSpacing', [1e-3, 1e-3], true],
    ['ImageOrientationPatient', [0, 0, 0, 0, 0, 0], true],
    ['ImageOrientationPatient', [1, 0, 0, 1, 0, 0], true],
    ['ImageOrientationPatient', [2, 0, 0, 0, 2, 0], true],
    ['ImageOrientationPatient', ['abc', 0, 0, 0, 1, 0], true],
    ['ImageOrientationPatient', [0, 1, 0, 0, 0, -1], true],
    ['ImagePositionPatient', ['abc', 0, 0], true],
    ['ImagePositionPatient', undefined, true],
    ['ImagePositionPatient', [1e6, -1e6, 0], true],
    ['RescaleSlope', 'abc', true],
    ['RescaleSlope', 0, true],
    ['RescaleSlope', 2, true],
    ['RescaleIntercept', 'abc', true],
    ['RescaleIntercept', -1024, true],
    ['PatientName', 'Fuzz^Test', false],
    ['SeriesDescription', 'renamed', false],
    ['InstitutionName', undefined, false],
  ]

  it('field mutations, pixel data of the wrong length, truncations and flipped bytes of real slices', async () => {
    const rnd = prng(SEED + 2)
    const base = slices.slice(10, 12)
    const refs = await Promise.all(base.map((n) => readDicomSeries(folder([[n, readFileSync(join(t1, n))]]))))
    for (let c = 0; c < 110; c++) {
      const which = rnd.int(0, base.length - 1)
      const name = base[which]
      const original = readFileSync(join(t1, name))
      const kind = rnd.pick(['field', 'field', 'field', 'pixels', 'truncate', 'flip'] as const)
      let bytes: Buffer
      let what: string
      let relevant = true
      let mustFail = false
      if (kind === 'field') {
        const [field, value, rel] = rnd.pick(MUTATIONS)
        const { meta, ds } = parse(join(t1, name))
        if (value === undefined) delete ds[field]
        else ds[field] = value
        bytes = write(meta, ds)
        what = `${name}: ${field} = ${JSON.stringify(value)}`
        relevant = rel
      } else if (kind === 'pixels') {
        const { meta, ds } = parse(join(t1, name))
        const px = new Uint8Array(ds.PixelData[0] as ArrayBuffer)
        const delta = rnd.pick([-2, -512, 2, 512, 520 * 2])
        const out = new Uint8Array(px.length + delta)
        out.set(delta < 0 ? px.subarray(0, out.length) : px)
        ds.PixelData = [out.buffer]
        bytes = write(meta, ds)
        what = `${name}: PixelData ${delta > 0 ? '+' : ''}${delta} bytes`
        mustFail = true
      } else if (kind === 'truncate') {
        const at = rnd.int(0, original.length - 1)
        bytes = original.subarray(0, at)
        what = `${name}: truncated at ${at} of ${original.length}`
        mustFail = true
      } else {
        bytes = Buffer.from(original)
        const off = rnd.int(132, Math.min(original.length - 1, 2000))
        bytes[off] ^= 1 << rnd.int(0, 7)
        what = `${name}: byte ${off} flipped`
      }
      const dir = folder([[name, bytes]])
      const out = await attempt(what, dir, DICOM_CODES, () => readDicomSeries(dir))
      if (mustFail) expect(out.ok, `${what} must be refused`).toBe(false)
      if (!out.ok) {
        expect(relevant, `${what}: refused though it decides nothing (${out.error.message})`).toBe(true)
        continue
      }
      consistent(what, out.volume)
      if (!relevant) {
        sameData(what, out.volume, refs[which])
        sameGeometry(what, out.volume, refs[which])
      }
    }
  })

  it('a series with a damaged, emptied, missing or extra-long slice is refused, naming the slice', async () => {
    // in slice order (the files are named in scrambled order)
    const ordered = (await readDicomSeries(t1)).dicom.files.map((f) => basename(f))
    const all = ordered.map((n) => [n, readFileSync(join(t1, n))] as [string, Buffer])
    const mid = all[12][0]
    const cases: [string, [string, Uint8Array][], string, string][] = [
      ['truncated to 100 bytes', all.map(([n, b]) => [n, n === mid ? b.subarray(0, 100) : b]), 'DICOM_UNREADABLE_FILE', mid],
      ['emptied', all.map(([n, b]) => [n, n === mid ? new Uint8Array(0) : b]), 'DICOM_UNREADABLE_FILE', mid],
      ['cut in the pixels', all.map(([n, b]) => [n, n === mid ? b.subarray(0, b.length - 1000) : b]), 'DICOM_TRUNCATED', mid],
      ['cut in the header', all.map(([n, b]) => [n, n === mid ? b.subarray(0, 700) : b]), 'DICOM_TRUNCATED', mid],
      ['missing (middle)', all.filter(([n]) => n !== mid), 'DICOM_UNEVEN_SPACING', `${all[11][0]} and `],
      ['every other slice missing', all.filter((_, i) => i % 2 === 0), 'DICOM_MISSING_SLICES', all[0][0]],
      ['two slices 13 mm apart', [all[0], all[2]], 'DICOM_MISSING_SLICES', all[0][0]],
    ]
    for (const [what, files, code, named] of cases) {
      const dir = folder(files)
      const out = await attempt(what, dir, DICOM_CODES, () => readDicomSeries(dir))
      expect(out.ok ? 'read' : out.error.code, what).toBe(code)
      if (!out.ok) expect(out.error.message, what).toContain(named)
    }
  })

  it('a NumberOfFrames of 10⁹ is refused at once, without building a billion frames', async () => {
    const { meta, ds } = parse(join(t1, slices[0]))
    ds.NumberOfFrames = 1e9
    const dir = folder([['a.dcm', write(meta, ds)]])
    const t0 = performance.now()
    const { result, peak } = await peakArrayBuffers(() => attempt('1e9 frames', dir, DICOM_CODES, () => readDicomSeries(dir)))
    expect(result.ok ? 'read' : result.error.code).toMatch(/^DICOM_(TOO_LARGE|TRUNCATED)$/)
    expect(performance.now() - t0).toBeLessThan(3000)
    expect(peak).toBeLessThan(32 << 20)
    // a file larger than any volume within the limit could need is refused before it is read
    const small = await attempt('limit', t1, DICOM_CODES, () => readDicomSeries(t1, { maxBytes: 50_000 }))
    expect(small.ok ? 'read' : small.error.code).toBe('DICOM_TOO_LARGE')
  })

  it('tally', () => {
    // the mix is part of what is tested: hundreds of cases, most refused, some read
    const total = tally.read + tally.rejected
    console.log(`fuzz: ${total} cases, ${tally.read} read, ${tally.rejected} refused: ${[...tally.codes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`)
    expect(total).toBeGreaterThanOrEqual(500)
  })
})
