/**
 * NIfTI-1 and NIfTI-2 read and write (`.nii`, `.nii.gz`, and `.hdr`/`.img` pairs for reading).
 *
 * Geometry follows nibabel: the voxel-to-world affine is the sform when sform_code > 0, else
 * the qform when qform_code > 0, else nibabel's fallback (pixdim diagonal, x flipped, origin at
 * the centre). Data is converted with typed-array views; scl_slope/scl_inter are applied when
 * they change values (slope 0 or NaN means "no scaling").
 */
import { gzip } from 'node:zlib'
import { promisify } from 'node:util'
import { atomicWriteFile } from '../atomic-file'
import { DsdError } from '../errors'
import { ByteStream, StreamError } from './byte-stream'
import { MAX_VOLUME_BYTES, type DataType, type Mat4, type Vec3, type Volume, type VolumeHeader, type VoxelArray } from './volume'

const gzipAsync = promisify(gzip)

/** Every header field that matters, decoded from either NIfTI version and byte order. */
export interface NiftiHeader {
  version: 1 | 2
  littleEndian: boolean
  /** 'n+1' / 'n+2' (single file) or 'ni1' / 'ni2' (.hdr/.img pair). */
  magic: string
  /** dim[0..7] as stored (dim[0] = number of dimensions). */
  dim: number[]
  /** NIfTI datatype code (2 = uint8, 4 = int16, 16 = float32, …). */
  datatypeCode: number
  bitpix: number
  /** pixdim[0..7] as stored (pixdim[0] = qfac). */
  pixdim: number[]
  voxOffset: number
  sclSlope: number
  sclInter: number
  calMin: number
  calMax: number
  dimInfo: number
  sliceCode: number
  sliceStart: number
  sliceEnd: number
  sliceDuration: number
  toffset: number
  xyztUnits: number
  intentCode: number
  intentP: [number, number, number]
  intentName: string
  descrip: string
  auxFile: string
  qformCode: number
  sformCode: number
  quatern: [number, number, number]
  qoffset: [number, number, number]
  /** srow_x, srow_y, srow_z. */
  srow: [number[], number[], number[]]
  /** True when the 4 bytes after the header flag extensions. */
  hasExtensions: boolean
}

/** A volume read from NIfTI, with the parsed header. */
export interface NiftiVolume extends Volume {
  header: NiftiHeader
}

/** What `readNiftiHeader` returns: the header plus the derived geometry, without the voxels. */
export interface NiftiHeaderInfo extends VolumeHeader {
  header: NiftiHeader
  /** True when the file on disk is gzip-compressed. */
  gzipped: boolean
  source: string
}

export interface ReadNiftiOptions {
  /** Accept files with fewer than 3 dimensions (they get nz = 1). Default false: throw NIFTI_NOT_3D. */
  allow2D?: boolean
  /** Largest voxel data accepted, in bytes (default MAX_VOLUME_BYTES); checked from the header. */
  maxBytes?: number
}

export interface WriteNiftiOptions {
  /** 1 (default) or 2. */
  version?: 1 | 2
  /** Default true (little-endian). */
  littleEndian?: boolean
  /**
   * On-disk datatype. Default: the volume's `datatype` when its data array has that type,
   * else the data array's own type (e.g. scaled Float32Array data is written as float32).
   */
  datatype?: DataType
  /** scl_slope/scl_inter to store; integer datatypes then hold round((v - inter) / slope). */
  sclSlope?: number
  sclInter?: number
  /** Default: the codes of the NIfTI header the volume was read with when > 0, else 1 (scanner). */
  qformCode?: number
  sformCode?: number
  /** Up to 79 characters. */
  descrip?: string
  /** Gzip the file; default: the path ends in `.gz`. */
  gzip?: boolean
  /** zlib level 1–9 (default 6). */
  gzipLevel?: number
}

// ---------------------------------------------------------------------------------------------
// datatypes

interface DtypeInfo {
  code: number
  bytes: number
  ctor: {
    new (buf: ArrayBuffer): VoxelArray
    new (n: number): VoxelArray
    BYTES_PER_ELEMENT: number
  }
  integer: boolean
  min: number
  max: number
}

const DTYPES: Record<DataType, DtypeInfo> = {
  uint8: { code: 2, bytes: 1, ctor: Uint8Array, integer: true, min: 0, max: 255 },
  int16: { code: 4, bytes: 2, ctor: Int16Array, integer: true, min: -32768, max: 32767 },
  int32: { code: 8, bytes: 4, ctor: Int32Array, integer: true, min: -(2 ** 31), max: 2 ** 31 - 1 },
  float32: {
    code: 16,
    bytes: 4,
    ctor: Float32Array,
    integer: false,
    min: -Infinity,
    max: Infinity,
  },
  float64: {
    code: 64,
    bytes: 8,
    ctor: Float64Array,
    integer: false,
    min: -Infinity,
    max: Infinity,
  },
  int8: { code: 256, bytes: 1, ctor: Int8Array, integer: true, min: -128, max: 127 },
  uint16: { code: 512, bytes: 2, ctor: Uint16Array, integer: true, min: 0, max: 65535 },
  uint32: { code: 768, bytes: 4, ctor: Uint32Array, integer: true, min: 0, max: 2 ** 32 - 1 },
}

const CODE_TO_DTYPE = new Map<number, DataType>(
  (Object.keys(DTYPES) as DataType[]).map((k) => [DTYPES[k].code, k]),
)

const UNSUPPORTED_CODES: Record<number, string> = {
  1: 'binary (1 bit)',
  32: 'complex64',
  128: 'RGB24',
  1024: 'int64',
  1280: 'uint64',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'RGBA32',
}

/** NIfTI datatype code of a DataType (2, 4, 8, 16, 64, 256, 512, 768). */
export function niftiDatatypeCode(t: DataType): number {
  return DTYPES[t].code
}

/** The DataType whose typed array `data` is. */
export function dataTypeOfArray(data: VoxelArray): DataType {
  if (data instanceof Uint8Array) return 'uint8'
  if (data instanceof Int8Array) return 'int8'
  if (data instanceof Int16Array) return 'int16'
  if (data instanceof Uint16Array) return 'uint16'
  if (data instanceof Int32Array) return 'int32'
  if (data instanceof Uint32Array) return 'uint32'
  if (data instanceof Float32Array) return 'float32'
  return 'float64'
}

/** True for the integer datatypes. */
export function isIntegerType(t: DataType): boolean {
  return DTYPES[t].integer
}

/** A new typed array of `n` elements of type `t`. */
export function allocVoxels(t: DataType, n: number): VoxelArray {
  return new DTYPES[t].ctor(n)
}

// ---------------------------------------------------------------------------------------------
// header parsing

const NIFTI2_MAGIC_TAIL = [0x0d, 0x0a, 0x1a, 0x0a]

function cstr(bytes: Uint8Array, off: number, len: number): string {
  let end = off
  while (end < off + len && bytes[end] !== 0) end++
  let s = ''
  for (let i = off; i < end; i++) s += String.fromCharCode(bytes[i])
  return s
}

function fmtBytes(n: number): string {
  return n.toLocaleString('en-US')
}

/**
 * Parse a NIfTI-1 or NIfTI-2 header from the first bytes of an (uncompressed) file.
 * `file` is only used in error messages.
 */
export function parseNiftiHeader(bytes: Uint8Array, file: string): NiftiHeader {
  if (bytes.length < 4) {
    throw new DsdError(
      'NIFTI_TRUNCATED',
      `${file}: the file has only ${bytes.length} bytes, less than a NIfTI header (348 bytes); it is empty or truncated — re-export or re-download it`,
      { file, bytes: bytes.length },
    )
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const le = dv.getInt32(0, true)
  const be = dv.getInt32(0, false)
  let version: 1 | 2
  let littleEndian: boolean
  if (le === 348 || be === 348) {
    version = 1
    littleEndian = le === 348
  } else if (le === 540 || be === 540) {
    version = 2
    littleEndian = le === 540
  } else {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ')
    throw new DsdError(
      'NIFTI_BAD_MAGIC',
      `${file}: not a NIfTI file (the first 4 bytes are ${head}, but a NIfTI header starts with its size, 348 or 540); check that this is a .nii/.nii.gz file and not another format or a damaged download`,
      { file, head },
    )
  }
  const hsize = version === 1 ? 348 : 540
  if (bytes.length < hsize) {
    throw new DsdError(
      'NIFTI_TRUNCATED',
      `${file}: the file ends at byte ${fmtBytes(bytes.length)} inside the ${hsize}-byte NIfTI-${version} header; the file is truncated — re-export or re-download it`,
      { file, bytes: bytes.length, headerBytes: hsize },
    )
  }
  const L = littleEndian
  const i16 = (o: number) => dv.getInt16(o, L)
  const i32 = (o: number) => dv.getInt32(o, L)
  const f32 = (o: number) => dv.getFloat32(o, L)
  const f64 = (o: number) => dv.getFloat64(o, L)
  const i64 = (o: number) => Number(dv.getBigInt64(o, L))
  const ext = bytes.length >= hsize + 4 && bytes[hsize] !== 0

  if (version === 1) {
    const magic = cstr(bytes, 344, 4)
    if (magic !== 'n+1' && magic !== 'ni1') {
      throw new DsdError(
        'NIFTI_BAD_MAGIC',
        magic === ''
          ? `${file}: the header has no NIfTI magic ("n+1"); it looks like an Analyze 7.5 file, which has no reliable orientation — convert it to NIfTI (e.g. with nibabel or ITK-SNAP) and import that`
          : `${file}: the NIfTI-1 magic is "${magic}", expected "n+1" or "ni1"; the header is corrupt — re-export the file`,
        { file, magic },
      )
    }
    const dim = Array.from({ length: 8 }, (_, k) => i16(40 + 2 * k))
    const pixdim = Array.from({ length: 8 }, (_, k) => f32(76 + 4 * k))
    return {
      version,
      littleEndian,
      magic,
      dim,
      datatypeCode: i16(70),
      bitpix: i16(72),
      pixdim,
      voxOffset: f32(108),
      sclSlope: f32(112),
      sclInter: f32(116),
      calMax: f32(124),
      calMin: f32(128),
      dimInfo: bytes[39],
      sliceCode: bytes[122],
      sliceStart: i16(74),
      sliceEnd: i16(120),
      sliceDuration: f32(132),
      toffset: f32(136),
      xyztUnits: bytes[123],
      intentCode: i16(68),
      intentP: [f32(56), f32(60), f32(64)],
      intentName: cstr(bytes, 328, 16),
      descrip: cstr(bytes, 148, 80),
      auxFile: cstr(bytes, 228, 24),
      qformCode: i16(252),
      sformCode: i16(254),
      quatern: [f32(256), f32(260), f32(264)],
      qoffset: [f32(268), f32(272), f32(276)],
      srow: [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => f32(280 + 16 * r + 4 * c))) as [
        number[],
        number[],
        number[],
      ],
      hasExtensions: ext,
    }
  }
  const magic = cstr(bytes, 4, 4)
  const tailOk = NIFTI2_MAGIC_TAIL.every((b, k) => bytes[8 + k] === b)
  if ((magic !== 'n+2' && magic !== 'ni2') || !tailOk) {
    throw new DsdError(
      'NIFTI_BAD_MAGIC',
      `${file}: the NIfTI-2 magic is "${magic}"${tailOk ? '' : ' with a damaged tail'}, expected "n+2" or "ni2"; the header is corrupt (or was transferred in text mode) — re-export the file`,
      { file, magic },
    )
  }
  return {
    version,
    littleEndian,
    magic,
    dim: Array.from({ length: 8 }, (_, k) => i64(16 + 8 * k)),
    datatypeCode: i16(12),
    bitpix: i16(14),
    pixdim: Array.from({ length: 8 }, (_, k) => f64(104 + 8 * k)),
    voxOffset: i64(168),
    sclSlope: f64(176),
    sclInter: f64(184),
    calMax: f64(192),
    calMin: f64(200),
    dimInfo: bytes[524],
    sliceCode: i32(496),
    sliceStart: i64(224),
    sliceEnd: i64(232),
    sliceDuration: f64(208),
    toffset: f64(216),
    xyztUnits: i32(500),
    intentCode: i32(504),
    intentP: [f64(80), f64(88), f64(96)],
    intentName: cstr(bytes, 508, 16),
    descrip: cstr(bytes, 240, 80),
    auxFile: cstr(bytes, 320, 24),
    qformCode: i32(344),
    sformCode: i32(348),
    quatern: [f64(352), f64(360), f64(368)],
    qoffset: [f64(376), f64(384), f64(392)],
    srow: [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => f64(400 + 32 * r + 8 * c))) as [
      number[],
      number[],
      number[],
    ],
    hasExtensions: ext,
  }
}

// ---------------------------------------------------------------------------------------------
// geometry

/** The sform as a 4×4 matrix. */
export function sformAffine(h: NiftiHeader): Mat4 {
  return [[...h.srow[0]], [...h.srow[1]], [...h.srow[2]], [0, 0, 0, 1]]
}

/** The qform as a 4×4 matrix (nibabel's `get_qform`: quaternion, pixdim, qfac, qoffset). */
export function qformAffine(h: NiftiHeader): Mat4 {
  const [b, c, d] = h.quatern
  // nibabel fillpositive with the float32 threshold
  let w2 = 1 - (b * b + c * c + d * d)
  if (w2 < 0) w2 = 0
  const a = Math.sqrt(w2)
  const R = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
  ]
  const vox = [1, 2, 3].map((k) => {
    const p = Math.abs(h.pixdim[k])
    return p > 0 && Number.isFinite(p) ? p : 1
  })
  const qfac = h.pixdim[0] === -1 ? -1 : 1
  vox[2] *= qfac
  return [
    [R[0][0] * vox[0], R[0][1] * vox[1], R[0][2] * vox[2], h.qoffset[0]],
    [R[1][0] * vox[0], R[1][1] * vox[1], R[1][2] * vox[2], h.qoffset[1]],
    [R[2][0] * vox[0], R[2][1] * vox[1], R[2][2] * vox[2], h.qoffset[2]],
    [0, 0, 0, 1],
  ]
}

/** nibabel's fallback affine when both codes are 0 (`get_base_affine`). */
export function baseAffine(h: NiftiHeader): Mat4 {
  const shape = [1, 2, 3].map((k) => (k <= h.dim[0] ? Math.max(1, h.dim[k]) : 1))
  const zooms = [1, 2, 3].map((k) => (k <= h.dim[0] ? h.pixdim[k] : 1))
  zooms[0] *= -1
  const origin = shape.map((s) => (s - 1) / 2)
  return [
    [zooms[0], 0, 0, -origin[0] * zooms[0]],
    [0, zooms[1], 0, -origin[1] * zooms[1]],
    [0, 0, zooms[2], -origin[2] * zooms[2]],
    [0, 0, 0, 1],
  ]
}

/** The voxel-to-world (RAS+) affine nibabel reports: sform, else qform, else the fallback. */
export function affineFromHeader(h: NiftiHeader): Mat4 {
  if (h.sformCode > 0) return sformAffine(h)
  if (h.qformCode > 0) return qformAffine(h)
  return baseAffine(h)
}

/** Voxel size: the column norms of the affine's 3×3 part. */
export function spacingFromAffine(a: Mat4): Vec3 {
  const n = (c: number) => Math.hypot(a[0][c], a[1][c], a[2][c])
  return [n(0), n(1), n(2)]
}

function det3(m: number[][]): number {
  return (
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
  )
}

function inv3(m: number[][]): number[][] {
  const d = det3(m)
  return [
    [
      (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / d,
      (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / d,
      (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / d,
    ],
    [
      (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / d,
      (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / d,
      (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / d,
    ],
    [
      (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / d,
      (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / d,
      (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / d,
    ],
  ]
}

/** The orthogonal matrix closest to `m` (polar decomposition, Newton iteration). */
export function closestRotation(m: number[][]): number[][] {
  let r = m.map((row) => [...row])
  for (let it = 0; it < 100; it++) {
    const it3 = inv3(r)
    const next = r.map((row, i) => row.map((v, j) => 0.5 * (v + it3[j][i])))
    let diff = 0
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) diff += Math.abs(next[i][j] - r[i][j])
    r = next
    if (diff < 1e-15) break
  }
  return r
}

/**
 * Axis codes of an affine, like nibabel's `aff2axcodes`: for each voxel axis the world
 * direction it points to, e.g. 'RAS', 'LAS', 'LPS'.
 */
export function axcodes(affine: Mat4): string {
  const labels = [
    ['L', 'R'],
    ['P', 'A'],
    ['I', 'S'],
  ]
  const rzs = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r][c]))
  const zooms = [0, 1, 2].map((c) => Math.hypot(rzs[0][c], rzs[1][c], rzs[2][c]) || 1)
  const rs = rzs.map((row) => row.map((v, c) => v / zooms[c]))
  const R = Math.abs(det3(rs)) > 1e-8 ? closestRotation(rs) : rs
  let out = ''
  for (let c = 0; c < 3; c++) {
    let best = -1
    let bestAbs = 0
    for (let r = 0; r < 3; r++) {
      if (Math.abs(R[r][c]) > bestAbs) {
        bestAbs = Math.abs(R[r][c])
        best = r
      }
    }
    if (best < 0 || bestAbs < 1e-8) {
      out += '?'
      continue
    }
    out += labels[best][R[best][c] < 0 ? 0 : 1]
    for (let k = 0; k < 3; k++) R[best][k] = 0
  }
  return out
}

/** Quaternion (b, c, d), qfac and zooms of an affine, as NIfTI's qform stores it. */
export function affineToQuatern(affine: Mat4): {
  quatern: [number, number, number]
  qoffset: [number, number, number]
  zooms: Vec3
  qfac: 1 | -1
} {
  const m = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r][c]))
  const zooms = [0, 1, 2].map((c) => Math.hypot(m[0][c], m[1][c], m[2][c])) as Vec3
  for (let c = 0; c < 3; c++) if (!(zooms[c] > 0)) zooms[c] = 1
  let R = m.map((row) => row.map((v, c) => v / zooms[c]))
  let qfac: 1 | -1 = 1
  if (det3(R) < 0) {
    qfac = -1
    for (let r = 0; r < 3; r++) R[r][2] = -R[r][2]
  }
  if (Math.abs(det3(R)) > 1e-8) R = closestRotation(R)
  else
    R = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]
  const [r11, r12, r13] = R[0]
  const [r21, r22, r23] = R[1]
  const [r31, r32, r33] = R[2]
  let a = r11 + r22 + r33 + 1
  let b: number, c: number, d: number
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a)
    b = (0.25 * (r32 - r23)) / a
    c = (0.25 * (r13 - r31)) / a
    d = (0.25 * (r21 - r12)) / a
  } else {
    const xd = 1 + r11 - (r22 + r33)
    const yd = 1 + r22 - (r11 + r33)
    const zd = 1 + r33 - (r11 + r22)
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd)
      c = (0.25 * (r12 + r21)) / b
      d = (0.25 * (r13 + r31)) / b
      a = (0.25 * (r32 - r23)) / b
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd)
      b = (0.25 * (r12 + r21)) / c
      d = (0.25 * (r23 + r32)) / c
      a = (0.25 * (r13 - r31)) / c
    } else {
      d = 0.5 * Math.sqrt(zd)
      b = (0.25 * (r13 + r31)) / d
      c = (0.25 * (r23 + r32)) / d
      a = (0.25 * (r21 - r12)) / d
    }
    if (a < 0) {
      b = -b
      c = -c
      d = -d
    }
  }
  return { quatern: [b, c, d], qoffset: [affine[0][3], affine[1][3], affine[2][3]], zooms, qfac }
}

// ---------------------------------------------------------------------------------------------
// reading

function gzipError(file: string, err: unknown): DsdError {
  const msg = (err as Error).message ?? String(err)
  const truncated = /unexpected end/i.test(msg)
  return new DsdError(
    truncated ? 'NIFTI_GZIP_TRUNCATED' : 'NIFTI_GZIP_CORRUPT',
    truncated
      ? `${file}: the gzip stream ends early (${msg}); the file is truncated — re-export or re-download it`
      : `${file}: the gzip data is corrupt (${msg}); re-export or re-download the file, or check it with \`gzip -t\``,
    { file, zlib: msg },
  )
}

function badHeader(file: string, field: string, problem: string, details: Record<string, unknown> = {}): DsdError {
  return new DsdError(
    'NIFTI_BAD_HEADER',
    `${file}: header field ${field} ${problem}; the header is corrupt — re-export the file (e.g. with nibabel or ITK-SNAP)`,
    { file, field, ...details },
  )
}

interface Layout {
  ndim: number
  shape: Vec3
  channels: number
  datatype: DataType
  dataOffset: number
  dataBytes: number
}

/** Largest extension block (bytes between the header and vox_offset) a reader skips over. */
const MAX_EXTENSION_BYTES = 256 << 20

/** Shape, datatype and where the data lies, every field checked (throws NIFTI_BAD_HEADER …). */
function layoutOf(h: NiftiHeader, file: string, maxBytes = MAX_VOLUME_BYTES): Layout {
  const ndim = h.dim[0]
  if (!(Number.isInteger(ndim) && ndim >= 1 && ndim <= 7)) {
    throw new DsdError(
      'NIFTI_BAD_HEADER',
      `${file}: dim[0] is ${ndim}, but a NIfTI file has 1 to 7 dimensions; the header is corrupt (or the byte order is wrong) — re-export the file`,
      { file, field: 'dim[0]', dim: h.dim },
    )
  }
  const d = (k: number) => (k <= ndim ? h.dim[k] : 1)
  for (let k = 1; k <= ndim; k++) {
    if (!(Number.isSafeInteger(h.dim[k]) && h.dim[k] >= 1)) {
      throw new DsdError(
        'NIFTI_BAD_HEADER',
        `${file}: dim[${k}] is ${h.dim[k]}; every dimension must be at least 1 — the header is corrupt, re-export the file`,
        { file, field: `dim[${k}]`, dim: h.dim },
      )
    }
  }
  let channels = 1
  for (let k = 4; k <= ndim; k++) channels *= d(k)
  const datatype = CODE_TO_DTYPE.get(h.datatypeCode)
  if (!datatype) {
    const what = UNSUPPORTED_CODES[h.datatypeCode]
    throw new DsdError(
      'NIFTI_UNSUPPORTED_DATATYPE',
      what
        ? `${file}: datatype ${what} (code ${h.datatypeCode}) is not supported; convert the file to uint8, int16, uint16, int32, float32 or float64 (e.g. with nibabel or c3d)`
        : `${file}: unknown NIfTI datatype code ${h.datatypeCode}; the header is corrupt — re-export the file`,
      { file, datatypeCode: h.datatypeCode },
    )
  }
  const info = DTYPES[datatype]
  if (h.bitpix !== info.bytes * 8) {
    throw badHeader(file, 'bitpix', `is ${h.bitpix} but datatype ${datatype} has ${info.bytes * 8} bits per voxel`, {
      bitpix: h.bitpix,
      datatype,
    })
  }
  const shape: Vec3 = [d(1), d(2), d(3)]
  const single = h.magic === 'n+1' || h.magic === 'n+2'
  const minOffset = h.version === 1 ? 352 : 544
  const off = h.voxOffset
  if (!(Number.isSafeInteger(off) && off >= 0 && off <= MAX_EXTENSION_BYTES)) {
    throw badHeader(file, 'vox_offset', `is ${off}, not a whole number of bytes between 0 and ${MAX_EXTENSION_BYTES}`, {
      voxOffset: off,
    })
  }
  if (single && off > 0 && off < minOffset) {
    throw badHeader(file, 'vox_offset', `is ${off}, inside the ${minOffset}-byte header of a single-file NIfTI-${h.version}`, {
      voxOffset: off,
    })
  }
  // vox_offset 0 in a single file means "right after the header" (old writers).
  const dataOffset = single ? Math.max(off, minOffset) : off
  const voxels = shape[0] * shape[1] * shape[2] * channels
  const dataBytes = voxels * info.bytes
  if (!Number.isSafeInteger(dataBytes) || dataBytes > maxBytes) {
    throw new DsdError(
      'NIFTI_TOO_LARGE',
      `${file}: the header says ${[...shape, ...(channels > 1 ? [channels] : [])].join('×')} ${datatype}, ${fmtBytes(dataBytes)} bytes of voxels, more than the ${fmtBytes(maxBytes)}-byte limit; if the size is real, crop or downsample the volume first, else the header is corrupt — re-export the file`,
      { file, dataBytes, maxBytes },
    )
  }
  return { ndim, shape, channels, datatype, dataOffset, dataBytes }
}

function describeShape(l: Layout): string {
  return [...l.shape.slice(0, Math.min(l.ndim, 3)), ...(l.channels > 1 ? [l.channels] : [])].join(
    '×',
  )
}

/**
 * The voxel-to-world affine after checking the fields it is built from: finite values, a unit
 * quaternion, positive voxel sizes (qform / fallback) and a non-degenerate 3×3 part.
 */
function checkedAffine(h: NiftiHeader, file: string, ndim: number): Mat4 {
  const finite = (v: number[]) => v.every(Number.isFinite)
  const zooms = (upTo: number) => {
    for (let k = 1; k <= upTo; k++) {
      if (!(Number.isFinite(h.pixdim[k]) && h.pixdim[k] > 0)) {
        throw badHeader(file, `pixdim[${k}]`, `is ${h.pixdim[k]}; a voxel size must be a positive number of mm`, {
          pixdim: h.pixdim,
        })
      }
    }
  }
  let which: string
  if (h.sformCode > 0) {
    which = 'srow_x/srow_y/srow_z (sform)'
    if (!h.srow.every(finite)) throw badHeader(file, which, `holds a non-finite value (${h.srow.map((r) => r.join(' ')).join(' | ')})`)
  } else if (h.qformCode > 0) {
    which = 'quatern_b/c/d (qform)'
    zooms(3)
    if (!finite([...h.quatern, ...h.qoffset])) {
      throw badHeader(file, 'quatern_b/c/d / qoffset_x/y/z', `holds a non-finite value (${[...h.quatern, ...h.qoffset].join(', ')})`)
    }
    const [b, c, dq] = h.quatern
    if (b * b + c * c + dq * dq > 1 + 1e-6) {
      throw badHeader(file, which, `is not a unit quaternion (b²+c²+d² = ${(b * b + c * c + dq * dq).toFixed(6)} > 1)`)
    }
  } else {
    which = 'pixdim'
    zooms(Math.min(3, ndim))
  }
  const a = affineFromHeader(h)
  const m = [0, 1, 2].map((r) => [0, 1, 2].map((col) => a[r][col]))
  const norms = [0, 1, 2].map((col) => Math.hypot(m[0][col], m[1][col], m[2][col]))
  const det = det3(m)
  if (!(norms.every((n) => n > 0 && Number.isFinite(n)) && Math.abs(det) > 1e-6 * norms[0] * norms[1] * norms[2])) {
    throw badHeader(file, which, `gives a degenerate voxel-to-world matrix (voxel sizes ${norms.map((n) => +n.toPrecision(6)).join(', ')}, determinant ${det.toPrecision(4)}): two axes are parallel or an axis has length 0`)
  }
  return a
}

function checkedScaling(h: NiftiHeader, file: string): void {
  if (h.sclSlope === Infinity || h.sclSlope === -Infinity) {
    throw badHeader(file, 'scl_slope', `is ${h.sclSlope}`)
  }
  if (Number.isFinite(h.sclSlope) && h.sclSlope !== 0 && (h.sclInter === Infinity || h.sclInter === -Infinity)) {
    throw badHeader(file, 'scl_inter', `is ${h.sclInter}`)
  }
}

function openError(path: string, err: StreamError | NodeJS.ErrnoException): DsdError {
  const code = err.code
  if (code === 'ENOENT') {
    return new DsdError('NOT_FOUND', `${path}: no such file; check the path`, { file: path })
  }
  if (code === 'EISDIR') {
    return new DsdError(
      'NIFTI_IS_DIRECTORY',
      `${path}: is a folder, not a NIfTI file; pass a .nii or .nii.gz file (a DICOM folder is read with readVolume/\`dsd convert\`)`,
      { file: path },
    )
  }
  return new DsdError('IO_ERROR', `${path}: cannot read the file (${err.message})`, { file: path })
}

/** Run `fn` on the opened stream of `path`, mapping I/O and gzip errors to DsdErrors. */
async function withStream<T>(path: string, fn: (s: ByteStream) => Promise<T>, chunkSize?: number): Promise<T> {
  let s: ByteStream
  try {
    s = await ByteStream.open(path, { chunkSize })
  } catch (err) {
    throw openError(path, err as StreamError)
  }
  try {
    return await fn(s)
  } catch (err) {
    if (err instanceof StreamError) throw err.kind === 'gzip' ? gzipError(path, err) : openError(path, err)
    throw err
  } finally {
    s.close()
  }
}

/** The header bytes (plus the 4 extension-flag bytes when present) from the stream's start. */
async function takeHeader(s: ByteStream, file: string): Promise<Uint8Array> {
  const first = await s.take(4)
  const dv = new DataView(first.buffer, first.byteOffset, first.byteLength)
  const v2 = first.length === 4 && (dv.getInt32(0, true) === 540 || dv.getInt32(0, false) === 540)
  const rest = await s.take((v2 ? 540 : 348) + 4 - first.length)
  const bytes = new Uint8Array(first.length + rest.length)
  bytes.set(first)
  bytes.set(rest, first.length)
  parseNiftiHeader(bytes, file) // throws on a short or foreign header
  return bytes
}

function infoFrom(
  header: NiftiHeader,
  l: Layout,
  gzipped: boolean,
  source: string,
): NiftiHeaderInfo {
  const affine = checkedAffine(header, source, l.ndim)
  checkedScaling(header, source)
  return {
    header,
    ndim: l.ndim,
    shape: l.shape,
    channels: l.channels,
    spacing: spacingFromAffine(affine),
    affine,
    datatype: l.datatype,
    gzipped,
    source,
  }
}

/**
 * Read only the header (the first bytes, inflated partially for .nii.gz), check every field
 * that geometry and data depend on, and derive the geometry. Hundreds of files per second.
 */
export async function readNiftiHeader(path: string, opts: ReadNiftiOptions = {}): Promise<NiftiHeaderInfo> {
  return withStream(path, async (s) => {
    const header = parseNiftiHeader(await takeHeader(s, path), path)
    return infoFrom(header, layoutOf(header, path, opts.maxBytes), s.gzipped, path)
  }, 4096)
}

function imgPathFor(hdrPath: string): string {
  if (/\.hdr\.gz$/i.test(hdrPath)) return hdrPath.replace(/\.hdr\.gz$/i, '.img.gz')
  return hdrPath.replace(/\.hdr$/i, '.img')
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return
  const n = bytes.length
  if (size === 2) {
    for (let i = 0; i < n; i += 2) {
      const t = bytes[i]
      bytes[i] = bytes[i + 1]
      bytes[i + 1] = t
    }
  } else if (size === 4) {
    for (let i = 0; i < n; i += 4) {
      let t = bytes[i]
      bytes[i] = bytes[i + 3]
      bytes[i + 3] = t
      t = bytes[i + 1]
      bytes[i + 1] = bytes[i + 2]
      bytes[i + 2] = t
    }
  } else {
    for (let i = 0; i < n; i += 8) {
      for (let k = 0; k < 4; k++) {
        const t = bytes[i + k]
        bytes[i + k] = bytes[i + 7 - k]
        bytes[i + 7 - k] = t
      }
    }
  }
}

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** The scaling that changes values, or null ("no scaling", as nibabel decides it). */
export function effectiveScaling(h: NiftiHeader): { slope: number; inter: number } | null {
  const slope = h.sclSlope
  if (!Number.isFinite(slope) || slope === 0) return null
  const inter = Number.isFinite(h.sclInter) ? h.sclInter : 0
  if (slope === 1 && inter === 0) return null
  return { slope, inter }
}

/**
 * Read the voxel data from the stream positioned at `start`: skip to the data offset, fill an
 * array of exactly the declared size, and refuse a stream that ends early or runs on.
 */
async function readData(s: ByteStream, l: Layout, file: string, dataFile: string): Promise<Uint8Array> {
  const skip = l.dataOffset - s.position
  if (skip < 0 || (await s.skip(skip)) < skip) {
    throw new DsdError(
      'NIFTI_TRUNCATED',
      `${dataFile}: the file ends before vox_offset ${l.dataOffset}, where the image data should start; the file is truncated — re-export it`,
      { file, dataFile, voxOffset: l.dataOffset },
    )
  }
  const data = new Uint8Array(l.dataBytes)
  const got = await s.readInto(data)
  if (got < l.dataBytes) {
    throw new DsdError(
      'NIFTI_TRUNCATED',
      `${file}: header says ${describeShape(l)} ${l.datatype} (${fmtBytes(l.dataBytes)} bytes) but the file has ${fmtBytes(got)} bytes of data; the file is truncated — re-export it`,
      { file, expectedBytes: l.dataBytes, actualBytes: got, shape: l.shape, channels: l.channels },
    )
  }
  const extra = await s.remaining()
  if (extra > 0) {
    throw new DsdError(
      'NIFTI_TOO_LONG',
      `${dataFile}: ${extra >= 1 << 20 ? 'more than ' : ''}${fmtBytes(extra)} bytes follow the ${fmtBytes(l.dataBytes)} bytes of ${describeShape(l)} ${l.datatype} data the header describes; the header (dim, datatype or vox_offset) does not match the data — re-export the file`,
      { file, dataFile, expectedBytes: l.dataBytes, extraBytes: extra },
    )
  }
  return data
}

function volumeFrom(header: NiftiHeader, l: Layout, bytes: Uint8Array, gzipped: boolean, file: string): NiftiVolume {
  const g = infoFrom(header, l, gzipped, file)
  const info = DTYPES[l.datatype]
  if (header.littleEndian !== HOST_LE) swapBytes(bytes, info.bytes)
  let data: VoxelArray = new info.ctor(bytes.buffer as ArrayBuffer)
  const scale = effectiveScaling(header)
  if (scale) {
    const out =
      l.datatype === 'float64' ? new Float64Array(data.length) : new Float32Array(data.length)
    const { slope, inter } = scale
    for (let i = 0; i < data.length; i++) out[i] = data[i] * slope + inter
    data = out
  }
  return {
    shape: g.shape,
    channels: g.channels,
    spacing: g.spacing,
    affine: g.affine,
    datatype: g.datatype,
    data,
    source: file,
    header,
  }
}

/**
 * Read a NIfTI-1/-2 volume (`.nii`, `.nii.gz`, or a `.hdr` with its `.img`). The header is
 * checked before any voxel memory is allocated; gzip data is inflated as a stream that stops
 * at the size the header implies. The voxel array owns a fresh, exactly sized ArrayBuffer.
 */
export async function readNifti(path: string, opts: ReadNiftiOptions = {}): Promise<NiftiVolume> {
  const pair = /\.hdr(\.gz)?$/i.test(path)
  const { header, layout, bytes, gzipped } = await withStream(path, async (s) => {
    const header = parseNiftiHeader(await takeHeader(s, path), path)
    const layout = layoutOf(header, path, opts.maxBytes)
    if (layout.ndim < 3 && !opts.allow2D) {
      throw new DsdError(
        'NIFTI_NOT_3D',
        `${path}: the image is ${layout.ndim}D (${describeShape(layout)}), but a 3D volume is needed; export the whole volume, not a single slice`,
        { file: path, dim: header.dim },
      )
    }
    infoFrom(header, layout, s.gzipped, path) // geometry checked before reading the data
    if (pair && (header.magic === 'ni1' || header.magic === 'ni2')) {
      return { header, layout, bytes: null, gzipped: s.gzipped }
    }
    return { header, layout, bytes: await readData(s, layout, path, path), gzipped: s.gzipped }
  })
  if (bytes) return volumeFrom(header, layout, bytes, gzipped, path)
  // .hdr/.img pair: vox_offset is the offset inside the .img file
  const img = imgPathFor(path)
  const data = await withStream(img, (s) => readData(s, layout, path, img))
  return volumeFrom(header, layout, data, gzipped, path)
}

// ---------------------------------------------------------------------------------------------
// writing

function putStr(bytes: Uint8Array, off: number, len: number, s: string): void {
  for (let i = 0; i < Math.min(len - 1, s.length); i++) bytes[off + i] = s.charCodeAt(i) & 0x7f
}

function toDiskArray(
  volume: Volume,
  t: DataType,
  slope: number,
  inter: number,
  file: string,
): VoxelArray {
  const info = DTYPES[t]
  const src = volume.data
  const scaled = slope !== 1 || inter !== 0
  if (!scaled && src instanceof info.ctor) return src
  const out = new info.ctor(src.length)
  if (!info.integer) {
    if (scaled) for (let i = 0; i < src.length; i++) out[i] = (src[i] - inter) / slope
    else (out as Float32Array).set(src)
    return out
  }
  let bad = -1
  for (let i = 0; i < src.length; i++) {
    const v = scaled ? Math.round((src[i] - inter) / slope) : Math.round(src[i])
    if (!(v >= info.min && v <= info.max)) {
      bad = i
      break
    }
    out[i] = v
  }
  if (bad >= 0) {
    throw new DsdError(
      'NIFTI_VALUE_RANGE',
      `${file}: value ${src[bad]} at voxel ${bad} does not fit ${t}${scaled ? ` with scl_slope ${slope} / scl_inter ${inter}` : ''}; write it as float32 (datatype option) or choose a scaling that fits`,
      { file, datatype: t, voxel: bad, value: src[bad] },
    )
  }
  return out
}

/** Encode a volume as an uncompressed single-file NIfTI (header + 4 extension bytes + data). */
export function encodeNifti(
  volume: Volume,
  opts: WriteNiftiOptions = {},
  file = '<memory>',
): Uint8Array {
  const version = opts.version ?? 1
  const L = opts.littleEndian ?? true
  const t: DataType =
    opts.datatype ??
    (volume.data instanceof DTYPES[volume.datatype].ctor
      ? volume.datatype
      : dataTypeOfArray(volume.data))
  const info = DTYPES[t]
  const [nx, ny, nz] = volume.shape
  const nvox = nx * ny * nz * volume.channels
  if (volume.data.length !== nvox) {
    throw new DsdError(
      'VOLUME_SIZE_MISMATCH',
      `${file}: the volume is ${nx}×${ny}×${nz}×${volume.channels} (${nvox} voxels) but its data has ${volume.data.length} values; the volume was built wrongly`,
      { file, shape: volume.shape, channels: volume.channels, length: volume.data.length },
    )
  }
  const slope = opts.sclSlope ?? 1
  const inter = opts.sclInter ?? 0
  if (!(Number.isFinite(slope) && slope !== 0 && Number.isFinite(inter))) {
    throw new DsdError(
      'VALIDATION',
      `${file}: scl_slope must be a finite non-zero number and scl_inter finite (got ${slope}, ${inter})`,
      { file },
    )
  }
  const disk = toDiskArray(volume, t, slope, inter, file)
  const hsize = version === 1 ? 348 : 540
  const voxOffset = hsize + 4
  const out = new Uint8Array(voxOffset + disk.byteLength)
  const dv = new DataView(out.buffer)
  const q = affineToQuatern(volume.affine)
  const a = volume.affine
  const ndim = volume.channels > 1 ? 4 : 3
  const dim = [ndim, nx, ny, nz, volume.channels, 1, 1, 1]
  const pixdim = [q.qfac, q.zooms[0], q.zooms[1], q.zooms[2], 0, 0, 0, 0]
  // keep the space codes of a volume read from NIfTI (e.g. 4 = MNI), else 1 (scanner)
  const from = (volume as Partial<NiftiVolume>).header
  const qcode = opts.qformCode ?? (from && from.qformCode > 0 ? from.qformCode : 1)
  const scode = opts.sformCode ?? (from && from.sformCode > 0 ? from.sformCode : 1)
  const xyzt = 2 // mm
  const sclSlope = slope === 1 && inter === 0 ? 0 : slope
  const sclInter = slope === 1 && inter === 0 ? 0 : inter
  if (version === 1) {
    dv.setInt32(0, 348, L)
    dim.forEach((v, k) => dv.setInt16(40 + 2 * k, v, L))
    if (dim.some((v) => v > 32767)) {
      throw new DsdError(
        'VALIDATION',
        `${file}: a dimension exceeds 32767, which NIfTI-1 cannot store; write NIfTI-2 (version: 2)`,
        { file, dim },
      )
    }
    dv.setInt16(70, info.code, L)
    dv.setInt16(72, info.bytes * 8, L)
    pixdim.forEach((v, k) => dv.setFloat32(76 + 4 * k, v, L))
    dv.setFloat32(108, voxOffset, L)
    dv.setFloat32(112, sclSlope, L)
    dv.setFloat32(116, sclInter, L)
    out[123] = xyzt
    putStr(out, 148, 80, opts.descrip ?? '')
    dv.setInt16(252, qcode, L)
    dv.setInt16(254, scode, L)
    q.quatern.forEach((v, k) => dv.setFloat32(256 + 4 * k, v, L))
    q.qoffset.forEach((v, k) => dv.setFloat32(268 + 4 * k, v, L))
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 4; c++) dv.setFloat32(280 + 16 * r + 4 * c, a[r][c], L)
    putStr(out, 344, 4, 'n+1')
  } else {
    dv.setInt32(0, 540, L)
    putStr(out, 4, 4, 'n+2')
    NIFTI2_MAGIC_TAIL.forEach((b, k) => (out[8 + k] = b))
    dv.setInt16(12, info.code, L)
    dv.setInt16(14, info.bytes * 8, L)
    dim.forEach((v, k) => dv.setBigInt64(16 + 8 * k, BigInt(v), L))
    pixdim.forEach((v, k) => dv.setFloat64(104 + 8 * k, v, L))
    dv.setBigInt64(168, BigInt(voxOffset), L)
    dv.setFloat64(176, sclSlope, L)
    dv.setFloat64(184, sclInter, L)
    putStr(out, 240, 80, opts.descrip ?? '')
    dv.setInt32(344, qcode, L)
    dv.setInt32(348, scode, L)
    q.quatern.forEach((v, k) => dv.setFloat64(352 + 8 * k, v, L))
    q.qoffset.forEach((v, k) => dv.setFloat64(376 + 8 * k, v, L))
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 4; c++) dv.setFloat64(400 + 32 * r + 8 * c, a[r][c], L)
    dv.setInt32(500, xyzt, L)
  }
  const body = new Uint8Array(disk.buffer, disk.byteOffset, disk.byteLength)
  out.set(body, voxOffset)
  if (L !== HOST_LE) swapBytes(out.subarray(voxOffset), info.bytes)
  return out
}

/**
 * Write a volume as NIfTI, atomically (temp file in the same folder, then rename). A path
 * ending in `.gz` is gzip-compressed. The affine is stored as both sform and qform.
 */
export async function writeNifti(
  path: string,
  volume: Volume,
  opts: WriteNiftiOptions = {},
): Promise<void> {
  const raw = encodeNifti(volume, opts, path)
  const doGzip = opts.gzip ?? /\.gz$/i.test(path)
  const bytes = doGzip ? await gzipAsync(raw, { level: opts.gzipLevel ?? 6 }) : raw
  await atomicWriteFile(path, bytes, { mkdir: false })
}
