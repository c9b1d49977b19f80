/**
 * A minimal NRRD reader (`.nrrd` attached or `.nhdr` + detached data; raw, gzip and ascii
 * encodings; 3D, or 4D with one non-spatial axis as channels). Geometry comes from
 * `space directions` / `space origin` (LPS or RAS spaces), else from `spacings`.
 *
 * Every header field is checked (whole positive sizes, numeric skips, finite non-degenerate
 * directions, positive spacings), the data size implied by the header is checked against the
 * limit before anything is allocated, gzip data is inflated as a stream that stops at that
 * size, and data longer or shorter than the header says is an error naming the file.
 */
import { open, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join } from 'node:path'
import { DsdError } from '../errors'
import { ByteStream, StreamError } from './byte-stream'
import { allocVoxels, spacingFromAffine } from './nifti'
import {
  MAX_VOLUME_BYTES,
  type DataType,
  type Mat4,
  type Vec3,
  type Volume,
  type VoxelArray,
} from './volume'

/** A volume read from NRRD, with the header fields as written. */
export interface NrrdVolume extends Volume {
  fields: Record<string, string>
}

export interface ReadNrrdOptions {
  /** Largest voxel data accepted, in bytes (default MAX_VOLUME_BYTES); checked from the header. */
  maxBytes?: number
}

const TYPES: Record<string, DataType> = {}
for (const [t, names] of Object.entries({
  int8: ['signed char', 'int8', 'int8_t'],
  uint8: ['uchar', 'unsigned char', 'uint8', 'uint8_t'],
  int16: ['short', 'short int', 'signed short', 'signed short int', 'int16', 'int16_t'],
  uint16: ['ushort', 'unsigned short', 'unsigned short int', 'uint16', 'uint16_t'],
  int32: ['int', 'signed int', 'int32', 'int32_t'],
  uint32: ['uint', 'unsigned int', 'uint32', 'uint32_t'],
  float32: ['float'],
  float64: ['double'],
})) {
  for (const n of names) TYPES[n] = t as DataType
}
const BYTES: Record<DataType, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
  float64: 8,
}
const RANGE: Partial<Record<DataType, [number, number]>> = {
  uint8: [0, 255],
  int8: [-128, 127],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
}

/** Largest NRRD header (bytes) before the blank line that ends it. */
const MAX_HEADER_BYTES = 1 << 20

function bad(
  file: string,
  field: string,
  what: string,
  details: Record<string, unknown> = {},
): DsdError {
  return new DsdError('NRRD_BAD_HEADER', `${file}: ${what}`, { file, field, ...details })
}

/** A number field that must be a whole number ≥ `min`. */
function intField(
  file: string,
  fields: Record<string, string>,
  key: string,
  dflt: number,
  min: number,
): number {
  const raw = fields[key]
  if (raw === undefined) return dflt
  const v = Number(raw)
  if (!/^[-+]?\d+$/.test(raw.trim()) || !Number.isSafeInteger(v) || v < min) {
    throw bad(
      file,
      key,
      `"${key}: ${raw}" is not a whole number ≥ ${min}; the header is corrupt — re-save the file`,
    )
  }
  return v
}

/** "(x,y,z)" → three finite numbers, or null for "none"; throws otherwise. */
function vector(file: string, key: string, s: string): number[] | null {
  const t = s.trim()
  if (t === 'none') return null
  const m = /^\((.*)\)$/.exec(t)
  const parts = m ? m[1].split(',').map((x) => x.trim()) : []
  const v = parts.map((x) => (x === '' ? NaN : Number(x)))
  if (v.length !== 3 || !v.every(Number.isFinite)) {
    throw bad(
      file,
      key,
      `cannot read "${key}: ${s}" (3 finite numbers in parentheses expected); the header is corrupt — re-save it from 3D Slicer or ITK`,
    )
  }
  return v
}

function splitVectors(s: string): string[] {
  const out: string[] = []
  const re = /\([^)]*\)|none/g
  let m: RegExpExecArray | null
  while ((m = re.exec(s))) out.push(m[0])
  return out
}

function det3(c: number[][]): number {
  return (
    c[0][0] * (c[1][1] * c[2][2] - c[2][1] * c[1][2]) -
    c[1][0] * (c[0][1] * c[2][2] - c[2][1] * c[0][2]) +
    c[2][0] * (c[0][1] * c[1][2] - c[1][1] * c[0][2])
  )
}

function ioError(path: string, err: unknown, what = 'file'): DsdError {
  const e = err as NodeJS.ErrnoException
  if (e.code === 'ENOENT') {
    return new DsdError('NOT_FOUND', `${path}: no such ${what}; check the path`, { file: path })
  }
  return new DsdError('IO_ERROR', `${path}: cannot read the ${what} (${e.message})`, { file: path })
}

/** The header text and where the attached data starts (bounded read). */
async function readHeader(
  path: string,
): Promise<{ text: string; dataStart: number; size: number }> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch (err) {
    throw ioError(path, err)
  }
  try {
    const size = (await fh.stat()).size
    const n = Math.min(size, MAX_HEADER_BYTES + 3)
    const buf = Buffer.alloc(n)
    const { bytesRead } = await fh.read(buf, 0, n, 0)
    const b = buf.subarray(0, bytesRead)
    if (!/^NRRD000[1-5]/.test(b.subarray(0, 8).toString('latin1'))) {
      throw new DsdError(
        'NRRD_BAD_MAGIC',
        `${path}: not a NRRD file (it does not start with "NRRD000x"); check the file type`,
        { file: path },
      )
    }
    // the header ends at the first empty line (attached data) or at the end of the file
    for (let i = 0; i < b.length - 1; i++) {
      if (b[i] !== 0x0a) continue
      if (b[i + 1] === 0x0a)
        return { text: b.subarray(0, i).toString('latin1'), dataStart: i + 2, size }
      if (b[i + 1] === 0x0d && b[i + 2] === 0x0a)
        return { text: b.subarray(0, i).toString('latin1'), dataStart: i + 3, size }
    }
    if (size > MAX_HEADER_BYTES) {
      throw bad(
        path,
        '(header)',
        `no blank line ends the header within its first ${MAX_HEADER_BYTES} bytes; the file is corrupt — re-save it`,
      )
    }
    return { text: b.toString('latin1'), dataStart: size, size }
  } finally {
    await fh.close()
  }
}

const NUMBER_TOKEN = /^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)$/
const SPECIAL_TOKEN: Record<string, number> = {
  nan: NaN,
  inf: Infinity,
  '+inf': Infinity,
  '-inf': -Infinity,
}

/** Read a NRRD file into a Volume with a RAS affine. */
export async function readNrrd(path: string, opts: ReadNrrdOptions = {}): Promise<NrrdVolume> {
  const maxBytes = opts.maxBytes ?? MAX_VOLUME_BYTES
  const { text, dataStart, size: fileSize } = await readHeader(path)
  const fields: Record<string, string> = {}
  for (const raw of text.split(/\r?\n/).slice(1)) {
    const line = raw.trimEnd()
    if (!line || line.startsWith('#')) continue
    const kv = line.indexOf(':=')
    const colon = line.indexOf(': ')
    if (colon < 0 || (kv >= 0 && kv < colon)) continue // key/value pairs are kept out
    fields[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 2).trim()
  }
  const dtype = TYPES[(fields.type ?? '').toLowerCase()]
  if (!dtype) {
    throw bad(
      path,
      'type',
      `NRRD type "${fields.type}" is not supported; save it as (u)int8/16/32, float or double`,
    )
  }
  const dimension = intField(path, fields, 'dimension', NaN, 1)
  const sizeText = (fields.sizes ?? '').trim()
  const sizes = sizeText
    ? sizeText.split(/\s+/).map((x) => (/^\d+$/.test(x) ? Number(x) : NaN))
    : []
  if (
    !(dimension >= 2 && dimension <= 4) ||
    sizes.length !== dimension ||
    sizes.some((s) => !(Number.isSafeInteger(s) && s >= 1))
  ) {
    throw bad(
      path,
      'sizes',
      `dimension ${fields.dimension} with sizes "${fields.sizes}" is not a 3D or 4D volume of whole positive sizes; save a 3D volume`,
    )
  }
  const kinds = (fields.kinds ?? '').split(/\s+/).filter(Boolean)
  const dirsRaw = fields['space directions'] ? splitVectors(fields['space directions']) : []
  if (fields['space directions'] && dirsRaw.length !== dimension) {
    throw bad(
      path,
      'space directions',
      `"space directions: ${fields['space directions']}" has ${dirsRaw.length} entries for ${dimension} axes; the header is corrupt — re-save it`,
    )
  }
  // which axis is not spatial (channels)
  let chanAxis = -1
  if (dimension === 4) {
    chanAxis = dirsRaw.findIndex((d) => d === 'none')
    if (chanAxis < 0) chanAxis = kinds.findIndex((k) => !/domain|space/i.test(k))
    if (chanAxis < 0) chanAxis = 3
    if (chanAxis > 0 && chanAxis < 3 && sizes[chanAxis] > 1) {
      throw bad(
        path,
        'kinds',
        `the channel axis is axis ${chanAxis}; only the first or last axis can hold channels — re-save it`,
      )
    }
  }
  const spatial = [0, 1, 2, 3].slice(0, dimension).filter((a) => a !== chanAxis)
  if (spatial.length === 2) spatial.push(-1)
  const shape = spatial.map((a) => (a < 0 ? 1 : sizes[a])) as Vec3
  const channels = chanAxis >= 0 ? sizes[chanAxis] : 1
  const count = shape[0] * shape[1] * shape[2] * channels
  const nbytes = count * BYTES[dtype]
  if (!Number.isSafeInteger(nbytes) || nbytes > maxBytes) {
    throw new DsdError(
      'NRRD_TOO_LARGE',
      `${path}: the header says ${sizes.join('×')} ${dtype}, ${nbytes.toLocaleString('en-US')} bytes of voxels, more than the ${maxBytes.toLocaleString('en-US')}-byte limit; crop or downsample it first, or the header is corrupt — re-save it`,
      { file: path, dataBytes: nbytes, maxBytes },
    )
  }
  // geometry
  const space = (fields.space ?? '').toLowerCase()
  const lps = /left-posterior-superior|^lps$|scanner-xyz|3d-left-handed/.test(space)
  const las = /left-anterior-superior|^las$/.test(space)
  const ras = /right-anterior-superior|^ras$|3d-right-handed/.test(space)
  let affine: Mat4
  if (dirsRaw.length) {
    const dirs = dirsRaw.map((d) => vector(path, 'space directions', d))
    const origin = fields['space origin']
      ? vector(path, 'space origin', fields['space origin'])
      : [0, 0, 0]
    if (!origin)
      throw bad(path, 'space origin', `"space origin: none" is not a position; re-save the file`)
    const cols = spatial.map((a) => (a < 0 ? null : dirs[a]))
    if (spatial.some((a, i) => a >= 0 && !cols[i])) {
      throw bad(
        path,
        'space directions',
        `a spatial axis has direction "none" in "space directions: ${fields['space directions']}"; the header is corrupt — re-save it`,
      )
    }
    // a 2D image gets a unit normal for its single slice
    if (!cols[2]) {
      const [a, b] = [cols[0]!, cols[1]!]
      const n = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
      const len = Math.hypot(n[0], n[1], n[2]) || 1
      cols[2] = n.map((x) => x / len)
    }
    const c = cols as number[][]
    const norms = c.map((v) => Math.hypot(v[0], v[1], v[2]))
    const det = det3(c)
    if (!(norms.every((n) => n > 0) && Math.abs(det) > 1e-6 * norms[0] * norms[1] * norms[2])) {
      throw bad(
        path,
        'space directions',
        `"space directions: ${fields['space directions']}" is degenerate (an axis has length 0 or two axes are parallel); the header is corrupt — re-save it`,
      )
    }
    affine = [
      [c[0][0], c[1][0], c[2][0], origin[0]],
      [c[0][1], c[1][1], c[2][1], origin[1]],
      [c[0][2], c[1][2], c[2][2], origin[2]],
      [0, 0, 0, 1],
    ]
    if (lps) affine = [affine[0].map((v) => -v), affine[1].map((v) => -v), affine[2], affine[3]]
    else if (las) affine = [affine[0].map((v) => -v), affine[1], affine[2], affine[3]]
    else if (!ras) {
      throw bad(
        path,
        'space',
        `space "${fields.space}" is not LPS, LAS or RAS, so the world orientation is unknown; re-save it from 3D Slicer or ITK`,
      )
    }
  } else {
    const spText = (fields.spacings ?? '').trim()
    if (!spText) {
      throw bad(
        path,
        'spacings',
        `the header has neither "space directions" nor "spacings", so the voxel size is unknown; re-save it from 3D Slicer or ITK (they write both)`,
      )
    }
    const sp = spText.split(/\s+/).map((x) => (x.toLowerCase() === 'nan' ? NaN : Number(x)))
    if (sp.length !== dimension) {
      throw bad(
        path,
        'spacings',
        `"spacings: ${spText}" has ${sp.length} values for ${dimension} axes; the header is corrupt — re-save it`,
      )
    }
    const s = spatial.map((a) => (a < 0 ? 1 : sp[a]))
    if (!s.every((v) => Number.isFinite(v) && v > 0)) {
      throw bad(
        path,
        'spacings',
        `"spacings: ${spText}" gives a spatial axis a spacing that is not a positive number; the header is corrupt — re-save it`,
      )
    }
    affine = [
      [s[0], 0, 0, 0],
      [0, s[1], 0, 0],
      [0, 0, s[2], 0],
      [0, 0, 0, 1],
    ]
  }
  // data
  const endianRaw = (fields.endian ?? 'little').toLowerCase()
  if (endianRaw !== 'little' && endianRaw !== 'big') {
    throw bad(
      path,
      'endian',
      `"endian: ${fields.endian}" is neither little nor big; re-save the file`,
    )
  }
  const encoding = (fields.encoding ?? 'raw').toLowerCase()
  const gzip = encoding === 'gzip' || encoding === 'gz'
  const ascii = encoding === 'ascii' || encoding === 'text' || encoding === 'txt'
  if (!gzip && !ascii && encoding !== 'raw') {
    throw bad(
      path,
      'encoding',
      `encoding "${encoding}" is not supported; re-save with raw or gzip encoding`,
    )
  }
  const lineSkip = intField(path, fields, 'line skip', 0, 0)
  const byteSkip = intField(path, fields, 'byte skip', 0, -1)
  if (byteSkip === -1 && encoding !== 'raw') {
    throw bad(
      path,
      'byte skip',
      `"byte skip: -1" is only allowed with raw encoding (encoding is ${encoding}); re-save the file`,
    )
  }
  let dataFile = path
  let start = dataStart
  let available = fileSize - dataStart
  const detached = fields['data file'] ?? fields.datafile
  if (detached !== undefined) {
    const name = detached.trim()
    if (/^LIST|%/.test(name))
      throw bad(
        path,
        'data file',
        `multi-file data ("data file: ${name}") is not supported; save a single .nrrd`,
      )
    dataFile = isAbsolute(name) ? name : join(dirname(path), name)
    try {
      const st = await stat(dataFile)
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' })
      available = st.size
      start = 0
    } catch (err) {
      throw new DsdError(
        'NOT_FOUND',
        `${path}: its data file ${dataFile} is missing (${(err as Error).message}); keep the data file beside the .nhdr`,
        { file: path, dataFile },
      )
    }
  }
  // "line skip" counts lines of the file as stored; "byte skip" bytes of the decoded data
  if (lineSkip > 0) {
    let lines: ByteStream
    try {
      lines = await ByteStream.open(dataFile, { start, gzip: false, chunkSize: 1 << 16 })
    } catch (err) {
      throw ioError(dataFile, err, 'data file')
    }
    try {
      for (let n = 0; n < lineSkip;) {
        const b = await lines.take(1)
        if (!b.length) throw truncated(path, dataFile, nbytes, 0)
        if (b[0] === 0x0a) n++
      }
      start += lines.position
      available -= lines.position
    } finally {
      lines.close()
    }
  }
  let stream: ByteStream
  try {
    stream = await ByteStream.open(dataFile, { start, gzip })
  } catch (err) {
    throw ioError(dataFile, err, 'data file')
  }
  let values: VoxelArray
  try {
    if (ascii) values = await readAscii(stream, path, dataFile, dtype, count)
    else {
      if (byteSkip === -1) {
        const skip = available - stream.position - nbytes
        if (skip < 0) throw truncated(path, dataFile, nbytes, available - stream.position)
        await stream.skip(skip)
      } else if ((await stream.skip(byteSkip)) < byteSkip) {
        throw truncated(path, dataFile, nbytes, 0)
      }
      const bytes = new Uint8Array(nbytes)
      const got = await stream.readInto(bytes)
      if (got < nbytes) throw truncated(path, dataFile, nbytes, got)
      const extra = await stream.remaining()
      if (extra > 0) {
        throw new DsdError(
          'NRRD_TOO_LONG',
          `${dataFile}: ${extra >= 1 << 20 ? 'more than ' : ''}${extra.toLocaleString('en-US')} bytes follow the ${nbytes.toLocaleString('en-US')} bytes of ${sizes.join('×')} ${dtype} data the header describes; the header (sizes, type or byte skip) does not match the data — re-save the file`,
          { file: path, dataFile, expectedBytes: nbytes, extraBytes: extra },
        )
      }
      const size = BYTES[dtype]
      if (endianRaw === 'big' && size > 1) {
        for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse()
      }
      values = allocVoxels(dtype, 0)
      values = new (values.constructor as new (b: ArrayBuffer) => VoxelArray)(
        bytes.buffer as ArrayBuffer,
      )
    }
  } catch (err) {
    if (err instanceof StreamError) {
      throw new DsdError(
        'NRRD_GZIP_CORRUPT',
        `${dataFile}: the gzip data is corrupt or truncated (${err.message}); re-export the file`,
        { file: dataFile },
      )
    }
    throw err
  } finally {
    stream.close()
  }
  // channels on the first axis are interleaved: move them to the slowest axis
  if (chanAxis === 0 && channels > 1) {
    const out = allocVoxels(dtype, count)
    const nvox = count / channels
    for (let p = 0; p < nvox; p++)
      for (let c = 0; c < channels; c++) out[c * nvox + p] = values[p * channels + c]
    values = out
  }
  return {
    shape,
    channels,
    spacing: spacingFromAffine(affine),
    affine,
    datatype: dtype,
    data: values,
    source: path,
    fields,
  }
}

function truncated(file: string, dataFile: string, nbytes: number, have: number): DsdError {
  return new DsdError(
    'NRRD_TRUNCATED',
    `${dataFile}: the header needs ${nbytes.toLocaleString('en-US')} bytes of data but the data has ${Math.max(0, have).toLocaleString('en-US')}; the file is truncated — re-export it`,
    { file, dataFile, expectedBytes: nbytes, actualBytes: Math.max(0, have) },
  )
}

/** ASCII data: exactly `count` numbers, each valid for the type. */
async function readAscii(
  stream: ByteStream,
  file: string,
  dataFile: string,
  dtype: DataType,
  count: number,
): Promise<VoxelArray> {
  // at most ~40 characters per value; more text than that cannot be a valid file
  const limit = count * 40 + 4096
  const buf = await stream.take(limit + 1)
  if (buf.length > limit) {
    throw new DsdError(
      'NRRD_TOO_LONG',
      `${dataFile}: more than ${limit.toLocaleString('en-US')} characters of ASCII data for ${count} values; the header (sizes) does not match the data — re-save the file`,
      { file, dataFile },
    )
  }
  const text = Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('latin1').trim()
  const tokens = text ? text.split(/[\s,]+/) : []
  if (tokens.length !== count) {
    throw new DsdError(
      tokens.length < count ? 'NRRD_TRUNCATED' : 'NRRD_TOO_LONG',
      `${dataFile}: ${tokens.length} ASCII values but the header needs ${count}; re-export it`,
      { file, dataFile, expected: count, actual: tokens.length },
    )
  }
  const values = allocVoxels(dtype, count)
  const range = RANGE[dtype]
  for (let i = 0; i < count; i++) {
    const t = tokens[i]
    const special = SPECIAL_TOKEN[t.toLowerCase()]
    const v = NUMBER_TOKEN.test(t) ? Number(t) : range ? undefined : special
    if (v === undefined || (range && !(Number.isInteger(v) && v >= range[0] && v <= range[1]))) {
      throw new DsdError(
        'NRRD_BAD_DATA',
        `${dataFile}: ASCII value ${i + 1} is "${t.slice(0, 40)}", not ${range ? `a whole number in ${range[0]}…${range[1]} (type ${dtype})` : 'a number'}; the data is corrupt — re-export it`,
        { file, dataFile, index: i, token: t.slice(0, 40) },
      )
    }
    values[i] = v
  }
  return values
}
