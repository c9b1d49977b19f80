/**
 * A minimal NRRD reader (`.nrrd` attached or `.nhdr` + detached data; raw, gzip and ascii
 * encodings; 3D, or 4D with one non-spatial axis as channels). Geometry comes from
 * `space directions` / `space origin` (LPS or RAS spaces), else from `spacings`.
 */
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, join } from 'node:path'
import { gunzip } from 'node:zlib'
import { promisify } from 'node:util'
import { DsdError } from '../errors'
import { allocVoxels, spacingFromAffine } from './nifti'
import type { DataType, Mat4, Vec3, Volume, VoxelArray } from './volume'

const gunzipAsync = promisify(gunzip)

/** A volume read from NRRD, with the header fields as written. */
export interface NrrdVolume extends Volume {
  fields: Record<string, string>
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

function vec(s: string): number[] | null {
  const t = s.trim()
  if (t === 'none') return null
  return t
    .replace(/^\(|\)$/g, '')
    .split(',')
    .map((x) => Number(x.trim()))
}

function splitVectors(s: string): string[] {
  const out: string[] = []
  const re = /\([^)]*\)|none/g
  let m: RegExpExecArray | null
  while ((m = re.exec(s))) out.push(m[0])
  return out
}

function bad(file: string, what: string, details: Record<string, unknown> = {}): DsdError {
  return new DsdError('NRRD_BAD_HEADER', `${file}: ${what}`, { file, ...details })
}

/** Read a NRRD file into a Volume with a RAS affine. */
export async function readNrrd(path: string): Promise<NrrdVolume> {
  let buf: Buffer
  try {
    buf = await readFile(path)
  } catch {
    throw new DsdError('NOT_FOUND', `${path}: no such file; check the path`, { file: path })
  }
  const magic = buf.subarray(0, 8).toString('latin1')
  if (!/^NRRD000[1-5]/.test(magic)) {
    throw new DsdError(
      'NRRD_BAD_MAGIC',
      `${path}: not a NRRD file (it does not start with "NRRD000x"); check the file type`,
      { file: path },
    )
  }
  // header ends at the first empty line (attached data) or at the end of the file
  let end = -1
  let dataStart = buf.length
  for (let i = 0; i < buf.length - 1; i++) {
    if (buf[i] === 0x0a && buf[i + 1] === 0x0a) {
      end = i
      dataStart = i + 2
      break
    }
    if (buf[i] === 0x0a && buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) {
      end = i
      dataStart = i + 3
      break
    }
  }
  const headerText = buf.subarray(0, end < 0 ? buf.length : end).toString('latin1')
  const fields: Record<string, string> = {}
  for (const raw of headerText.split(/\r?\n/).slice(1)) {
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
      `NRRD type "${fields.type}" is not supported; save it as (u)int8/16/32, float or double`,
    )
  }
  const dimension = Number(fields.dimension)
  const sizes = (fields.sizes ?? '').split(/\s+/).map(Number)
  if (
    !(dimension >= 2 && dimension <= 4) ||
    sizes.length !== dimension ||
    sizes.some((s) => !(s >= 1))
  ) {
    throw bad(
      path,
      `dimension ${fields.dimension} with sizes "${fields.sizes}" is not a 3D or 4D volume; save a 3D volume`,
    )
  }
  const kinds = (fields.kinds ?? '').split(/\s+/).filter(Boolean)
  const dirsRaw = fields['space directions'] ? splitVectors(fields['space directions']) : []
  // which axis is not spatial (channels)
  let chanAxis = -1
  if (dimension === 4) {
    chanAxis = dirsRaw.findIndex((d) => d === 'none')
    if (chanAxis < 0) chanAxis = kinds.findIndex((k) => !/domain|space/i.test(k))
    if (chanAxis < 0) chanAxis = 3
  }
  const spatial = [0, 1, 2, 3].slice(0, dimension).filter((a) => a !== chanAxis)
  if (spatial.length === 2) spatial.push(-1)
  const shape = spatial.map((a) => (a < 0 ? 1 : sizes[a])) as Vec3
  const channels = chanAxis >= 0 ? sizes[chanAxis] : 1
  // geometry
  const space = (fields.space ?? '').toLowerCase()
  const lps = /left-posterior-superior|^lps$|scanner-xyz|3d-left-handed/.test(space)
  const las = /left-anterior-superior|^las$/.test(space)
  const ras = /right-anterior-superior|^ras$|3d-right-handed/.test(space)
  let affine: Mat4
  if (dirsRaw.length) {
    const dirs = dirsRaw.map(vec)
    const origin = fields['space origin'] ? (vec(fields['space origin']) ?? [0, 0, 0]) : [0, 0, 0]
    const cols = spatial.map((a) => (a < 0 ? [0, 0, 1] : (dirs[a] ?? [0, 0, 1])))
    if (cols.some((c) => !c || c.length !== 3 || c.some((x) => !Number.isFinite(x)))) {
      throw bad(
        path,
        `cannot read "space directions: ${fields['space directions']}"; the header is corrupt`,
      )
    }
    affine = [
      [cols[0]![0], cols[1]![0], cols[2]![0], origin[0]],
      [cols[0]![1], cols[1]![1], cols[2]![1], origin[1]],
      [cols[0]![2], cols[1]![2], cols[2]![2], origin[2]],
      [0, 0, 0, 1],
    ]
    if (lps) affine = [affine[0].map((v) => -v), affine[1].map((v) => -v), affine[2], affine[3]]
    else if (las) affine = [affine[0].map((v) => -v), affine[1], affine[2], affine[3]]
    else if (!ras) {
      throw bad(
        path,
        `space "${fields.space}" is not LPS, LAS or RAS, so the world orientation is unknown; re-save it from 3D Slicer or ITK`,
      )
    }
  } else {
    const sp = (fields.spacings ?? '').split(/\s+/).map(Number)
    const s = spatial.map((a) => (a >= 0 && Number.isFinite(sp[a]) ? sp[a] : 1))
    affine = [
      [s[0], 0, 0, 0],
      [0, s[1], 0, 0],
      [0, 0, s[2], 0],
      [0, 0, 0, 1],
    ]
  }
  // data
  let bytes: Uint8Array
  let dataFile = path
  if (fields['data file'] || fields.datafile) {
    const name = (fields['data file'] ?? fields.datafile).trim()
    if (/^LIST|%/.test(name))
      throw bad(
        path,
        `multi-file data ("data file: ${name}") is not supported; save a single .nrrd`,
      )
    dataFile = isAbsolute(name) ? name : join(dirname(path), name)
    try {
      const b = await readFile(dataFile)
      bytes = new Uint8Array(b.buffer, b.byteOffset, b.length)
    } catch {
      throw new DsdError(
        'NOT_FOUND',
        `${path}: its data file ${dataFile} is missing; keep the .raw beside the .nhdr`,
        {
          file: path,
          dataFile,
        },
      )
    }
  } else {
    bytes = new Uint8Array(buf.buffer, buf.byteOffset + dataStart, buf.length - dataStart)
  }
  const lineSkip = Number(fields['line skip'] ?? 0)
  for (let i = 0, n = 0; n < lineSkip && i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      n++
      if (n === lineSkip) bytes = bytes.subarray(i + 1)
    }
  }
  const encoding = (fields.encoding ?? 'raw').toLowerCase()
  const count = shape[0] * shape[1] * shape[2] * channels
  const nbytes = count * BYTES[dtype]
  let values: VoxelArray
  if (encoding === 'gzip' || encoding === 'gz') {
    try {
      const out = await gunzipAsync(bytes)
      bytes = new Uint8Array(out.buffer, out.byteOffset, out.length)
    } catch (err) {
      throw new DsdError(
        'NRRD_GZIP_CORRUPT',
        `${dataFile}: the gzip data is corrupt or truncated (${(err as Error).message}); re-export the file`,
        { file: dataFile },
      )
    }
  } else if (encoding === 'ascii' || encoding === 'text' || encoding === 'txt') {
    const nums = Buffer.from(bytes)
      .toString('latin1')
      .trim()
      .split(/[\s,]+/)
      .map(Number)
    if (nums.length < count) {
      throw new DsdError(
        'NRRD_TRUNCATED',
        `${dataFile}: ${nums.length} values but the header needs ${count}; re-export it`,
        {
          file: dataFile,
        },
      )
    }
    values = allocVoxels(dtype, count)
    for (let i = 0; i < count; i++) values[i] = nums[i]
    return finish(values)
  } else if (encoding !== 'raw') {
    throw bad(path, `encoding "${encoding}" is not supported; re-save with raw or gzip encoding`)
  }
  const skip = Number(fields['byte skip'] ?? 0)
  const start = skip === -1 ? bytes.length - nbytes : skip
  if (start < 0 || bytes.length < start + nbytes) {
    throw new DsdError(
      'NRRD_TRUNCATED',
      `${dataFile}: header says ${sizes.join('×')} ${dtype} (${nbytes} bytes) but the data has ${Math.max(0, bytes.length - Math.max(0, start))} bytes; the file is truncated — re-export it`,
      { file: dataFile, expectedBytes: nbytes },
    )
  }
  const copy = bytes.slice(start, start + nbytes)
  const bigEndian = (fields.endian ?? 'little').toLowerCase() === 'big'
  const size = BYTES[dtype]
  if (bigEndian && size > 1) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse()
  }
  values = allocVoxels(dtype, 0)
  values = new (values.constructor as new (b: ArrayBuffer) => VoxelArray)(copy.buffer)
  return finish(values)

  function finish(v: VoxelArray): NrrdVolume {
    // channels on the first axis are interleaved: move them to the slowest axis
    if (chanAxis === 0 && channels > 1) {
      const out = allocVoxels(dtype, count)
      const nvox = count / channels
      for (let p = 0; p < nvox; p++)
        for (let c = 0; c < channels; c++) out[c * nvox + p] = v[p * channels + c]
      v = out
    } else if (chanAxis > 0 && chanAxis < 3 && channels > 1) {
      throw bad(
        path,
        `the channel axis is axis ${chanAxis}; only the first or last axis can hold channels — re-save it`,
      )
    }
    return {
      shape,
      channels,
      spacing: spacingFromAffine(affine),
      affine,
      datatype: dtype,
      data: v,
      source: path,
      fields,
    }
  }
}
