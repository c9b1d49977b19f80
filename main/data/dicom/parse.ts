/**
 * DICOM parsing shared by the series reader, the SEG reader and the SEG writer: dcmjs (typed
 * here), Part 10 detection, header/pixel parsing with a completeness check of PixelData,
 * transfer-syntax support, value helpers and the small 3-vector geometry the others use.
 */
import { open, readFile } from 'node:fs/promises'
// @ts-expect-error -- dcmjs ships no type declarations; the few calls used are typed below
import dcmjsUntyped from 'dcmjs'
import { DsdError } from '../../errors'
import type { Mat4 } from '../volume'

/** The part of dcmjs used here. */
interface DicomDictLike {
  meta: Record<string, { Value?: unknown[] }>
  dict: Record<string, unknown>
}
export const dcmjs = dcmjsUntyped as {
  data: {
    DicomMessage: {
      readFile(
        buf: ArrayBuffer,
        opts?: { ignoreErrors?: boolean; untilTag?: string | null; noCopy?: boolean },
      ): DicomDictLike
    }
    DicomMetaDictionary: {
      naturalizeDataset(dict: Record<string, unknown>): Ds
      denaturalizeDataset(ds: Ds): Record<string, unknown>
      uid(): string
    }
    DicomDict: new (meta: Record<string, unknown>) => {
      dict: Record<string, unknown>
      write(opts?: Record<string, unknown>): ArrayBuffer
    }
  }
  log?: {
    setLevel?(level: string): void
    getLogger?(name: string): { setLevel?(level: string): void }
  }
}
try {
  // dcmjs logs every odd VR (e.g. implicit-VR "xs" tags) to the console; errors reach us as throws
  dcmjs.log?.setLevel?.('error')
  dcmjs.log?.getLogger?.('validation.dcmjs')?.setLevel?.('silent')
} catch {
  /* logging level is cosmetic */
}

/** A naturalized dcmjs dataset (keyword → value). */
export type Ds = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

export const SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4'
const NATIVE_SYNTAXES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
}
const SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian (retired)',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
}

// ---------------------------------------------------------------------------------------------
// parsing

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
}

export function isPart10(b: Uint8Array): boolean {
  return b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d
}

interface Parsed {
  ds: Ds
  syntax: string
}

export function parseDicom(file: string, buf: Buffer, headerOnly: boolean): Parsed {
  checkComplete(file, buf)
  const ab = toArrayBuffer(buf)
  const untilTag = headerOnly ? '7FE00010' : null
  let dd: DicomDictLike
  try {
    dd = dcmjs.data.DicomMessage.readFile(ab, { untilTag, ignoreErrors: false })
  } catch (err) {
    const msg = (err as Error).message ?? String(err)
    if (/character set/i.test(msg)) {
      dd = dcmjs.data.DicomMessage.readFile(ab, { untilTag, ignoreErrors: true })
    } else {
      throw new DsdError(
        'DICOM_CORRUPT',
        `${file}: cannot parse the DICOM file (${msg}); it is truncated or damaged — re-export it from the PACS/scanner`,
        { file, error: msg },
      )
    }
  }
  const syntax = String(dd.meta['00020010']?.Value?.[0] ?? '')
  keepMalformedNumbers(dd.dict)
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dd.dict)
  return { ds, syntax }
}

/**
 * dcmjs turns a DS/IS value that is not a number (e.g. "abc") into null, which would read as
 * "absent" and silently fall back to a default. Put the raw text back so the field checks see
 * it and name it.
 */
function keepMalformedNumbers(dict: Record<string, unknown>): void {
  for (const el of Object.values(dict)) {
    const e = el as { vr?: string; Value?: unknown[]; _rawValue?: unknown[] }
    if (!e || typeof e !== 'object' || !Array.isArray(e.Value)) continue
    if (e.vr === 'SQ') {
      for (const item of e.Value)
        if (item && typeof item === 'object') keepMalformedNumbers(item as Record<string, unknown>)
    } else if ((e.vr === 'DS' || e.vr === 'IS') && Array.isArray(e._rawValue)) {
      const raw = e._rawValue
      e.Value = e.Value.map((v, i) => {
        const text = typeof raw[i] === 'string' ? (raw[i] as string).trim() : ''
        return (v === null || (typeof v === 'number' && Number.isNaN(v))) && text !== '' ? text : v
      })
    }
  }
}

/** VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length. */
const LONG_VRS = new Set([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV',
])
const UNDEFINED = 0xffffffff

/**
 * Walk the element structure of a little-endian file and check that every element's declared
 * length fits in the file. dcmjs reads a value cut short by the end of the file as if it were
 * complete (a truncated header silently loses its later fields, a truncated PixelData is
 * padded), so truncation is detected here. Files in syntaxes that cannot be walked (deflated,
 * big endian) are left to dcmjs.
 */
function checkComplete(file: string, buf: Uint8Array): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const n = buf.length
  const tagName = (g: number, e: number) =>
    `(${g.toString(16).padStart(4, '0').toUpperCase()},${e.toString(16).padStart(4, '0').toUpperCase()})`
  const cut = (g: number, e: number, need: number, have: number): DsdError => {
    const pixel = g === 0x7fe0 && e === 0x0010
    return new DsdError(
      'DICOM_TRUNCATED',
      pixel
        ? `${file}: PixelData needs ${need.toLocaleString('en-US')} bytes but the file ends after ${Math.max(0, have).toLocaleString('en-US')}; the file is truncated — re-export or re-copy it`
        : `${file}: element ${tagName(g, e)} needs ${need.toLocaleString('en-US')} bytes but the file ends after ${Math.max(0, have).toLocaleString('en-US')}; the file is truncated — re-export or re-copy it`,
      { file, tag: tagName(g, e), expectedBytes: need, actualBytes: Math.max(0, have) },
    )
  }
  /** Walk elements from `pos` up to `end` (or a delimiter when `end` is undefined). */
  const walk = (
    pos: number,
    end: number | undefined,
    explicitVr: boolean,
    depth: number,
  ): number => {
    if (depth > 32)
      throw new DsdError(
        'DICOM_CORRUPT',
        `${file}: sequences nested more than 32 deep; the file is damaged — re-export it`,
        { file },
      )
    while (end === undefined || pos < end) {
      if (end === undefined && pos >= n) throw cut(0xfffe, 0xe0dd, 8, 0)
      if (pos + 8 > n)
        throw cut(
          pos + 4 <= n ? dv.getUint16(pos, true) : 0,
          pos + 4 <= n ? dv.getUint16(pos + 2, true) : 0,
          8,
          n - pos,
        )
      const g = dv.getUint16(pos, true)
      const e = dv.getUint16(pos + 2, true)
      if (g === 0xfffe) {
        const len = dv.getUint32(pos + 4, true)
        pos += 8
        if (e === 0xe00d || e === 0xe0dd) return pos // item / sequence delimiter
        if (len === UNDEFINED) pos = walk(pos, undefined, explicitVr, depth + 1)
        else if (pos + len > n) throw cut(g, e, len, n - pos)
        else pos += len
        continue
      }
      let len: number
      let hdr: number
      let vr = ''
      if (explicitVr && g !== 0xfffe) {
        vr = String.fromCharCode(buf[pos + 4], buf[pos + 5])
        if (LONG_VRS.has(vr)) {
          if (pos + 12 > n) throw cut(g, e, 12, n - pos)
          len = dv.getUint32(pos + 8, true)
          hdr = 12
        } else {
          len = dv.getUint16(pos + 6, true)
          hdr = 8
        }
      } else {
        len = dv.getUint32(pos + 4, true)
        hdr = 8
      }
      pos += hdr
      // SQ or encapsulated pixels; an undefined-length UN holds implicit-VR elements
      if (len === UNDEFINED) pos = walk(pos, undefined, explicitVr && vr !== 'UN', depth + 1)
      else if (pos + len > n) throw cut(g, e, len, n - pos)
      else pos += len
    }
    return pos
  }
  // the file meta group (always explicit VR little endian): its elements run while the group
  // is 0002; TransferSyntaxUID (0002,0010) says how the dataset is encoded
  let pos = 132
  let syntax = ''
  while (pos + 8 <= n && dv.getUint16(pos, true) === 0x0002) {
    const e = dv.getUint16(pos + 2, true)
    const vr = String.fromCharCode(buf[pos + 4], buf[pos + 5])
    const long = LONG_VRS.has(vr)
    if (long && pos + 12 > n) throw cut(0x0002, e, 12, n - pos)
    const len = long ? dv.getUint32(pos + 8, true) : dv.getUint16(pos + 6, true)
    const at = pos + (long ? 12 : 8)
    if (at + len > n) throw cut(0x0002, e, len, n - at)
    if (e === 0x0010 && len <= 64)
      syntax = String.fromCharCode(...buf.subarray(at, at + len)).replace(/[\0 ]+$/, '')
    pos = at + len
  }
  // deflated and big-endian datasets cannot be walked here
  if (syntax === '1.2.840.10008.1.2.1.99' || syntax === '1.2.840.10008.1.2.2') return
  walk(pos, n, syntax !== '1.2.840.10008.1.2', 0)
}

/** A header field that is present but wrong: names the file, the field and the fix. */
export function badField(
  file: string,
  field: string,
  problem: string,
  details: Record<string, unknown> = {},
): DsdError {
  return new DsdError(
    'DICOM_BAD_HEADER',
    `${file}: ${field} ${problem}; the header is corrupt — re-export the series from the scanner or PACS`,
    { file, field, ...details },
  )
}

function isAbsent(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0)
}

function toNumber(v: unknown): number {
  if (Array.isArray(v)) v = v[0]
  if (typeof v === 'number') return v
  if (typeof v === 'string' && v.trim() !== '') return Number(v)
  return NaN
}

/** A number that may be absent (undefined), but when present must be finite. */
export function optionalNumber(file: string, field: string, v: unknown): number | undefined {
  if (isAbsent(v)) return undefined
  const n = toNumber(v)
  if (!Number.isFinite(n))
    throw badField(
      file,
      field,
      `is "${String(Array.isArray(v) ? v[0] : v).slice(0, 40)}", not a number`,
    )
  return n
}

/** A whole number in [min, max]; `dflt` when absent (undefined: the field is required). */
export function wholeNumber(
  file: string,
  field: string,
  v: unknown,
  min: number,
  max: number,
  dflt?: number,
): number {
  if (isAbsent(v)) {
    if (dflt !== undefined) return dflt
    throw badField(file, field, 'is missing')
  }
  const n = toNumber(v)
  if (!(Number.isInteger(n) && n >= min && n <= max)) {
    throw badField(
      file,
      field,
      `is ${String(Array.isArray(v) ? v[0] : v).slice(0, 40)}, not a whole number in ${min}…${max}`,
      { value: n },
    )
  }
  return n
}

/** `count` finite numbers, or undefined when absent; throws when present but malformed. */
export function numberList(
  file: string,
  field: string,
  v: unknown,
  count: number,
): number[] | undefined {
  if (isAbsent(v)) return undefined
  const a = (Array.isArray(v) ? v : [v]).map(toNumber)
  if (a.length !== count || !a.every(Number.isFinite)) {
    throw badField(file, field, `is ${JSON.stringify(v).slice(0, 80)}, not ${count} numbers`)
  }
  return a
}

/** What the Image Pixel module says about the stored pixels, every field checked. */
export interface PixelModule {
  rows: number
  columns: number
  frames: number
  bitsAllocated: number
  signed: boolean
  /** PixelData bytes (all frames). */
  bytes: number
}

/**
 * Check Rows, Columns, NumberOfFrames, BitsAllocated, PixelRepresentation and SamplesPerPixel,
 * and that PixelData holds exactly Rows × Columns × frames × BitsAllocated bits (one padding
 * byte allowed): a file whose pixels are shorter is truncated, longer means a wrong header.
 */
export function checkPixelModule(
  file: string,
  ds: Ds,
  bitsAllowed: number[],
  maxBytes: number,
): PixelModule {
  const rows = wholeNumber(file, 'Rows', ds.Rows, 1, 65535)
  const columns = wholeNumber(file, 'Columns', ds.Columns, 1, 65535)
  const frames = wholeNumber(file, 'NumberOfFrames', ds.NumberOfFrames, 1, 2 ** 31 - 1, 1)
  const bitsAllocated = wholeNumber(file, 'BitsAllocated', ds.BitsAllocated, 1, 64)
  if (!bitsAllowed.includes(bitsAllocated)) {
    throw new DsdError(
      'DICOM_UNSUPPORTED_PIXELS',
      `${file}: BitsAllocated is ${bitsAllocated}; only ${bitsAllowed.join(', ')}-bit pixels can be read here`,
      { file, bitsAllocated },
    )
  }
  const representation = wholeNumber(file, 'PixelRepresentation', ds.PixelRepresentation, 0, 1, 0)
  const spp = wholeNumber(file, 'SamplesPerPixel', ds.SamplesPerPixel, 1, 4, 1)
  if (spp !== 1) {
    throw new DsdError(
      'DICOM_UNSUPPORTED_PIXELS',
      `${file}: SamplesPerPixel is ${spp} (colour); only greyscale series can be imported — pick a greyscale series`,
      { file, samplesPerPixel: spp },
    )
  }
  const expected = Math.ceil((rows * columns * frames * bitsAllocated) / 8)
  if (expected > maxBytes) {
    throw new DsdError(
      'DICOM_TOO_LARGE',
      `${file}: ${rows}×${columns} pixels × ${frames} frames of ${bitsAllocated} bits is ${expected.toLocaleString('en-US')} bytes, more than the ${maxBytes.toLocaleString('en-US')}-byte limit; NumberOfFrames or the image size is wrong — re-export the file`,
      { file, expectedBytes: expected, maxBytes },
    )
  }
  const pd = ds.PixelData
  const parts: ArrayBuffer[] = Array.isArray(pd) ? pd : pd ? [pd] : []
  if (!parts.length) {
    throw new DsdError(
      'DICOM_NO_PIXELS',
      `${file}: the file has no PixelData; it is not an image — pick an image series`,
      { file },
    )
  }
  const bytes = parts.reduce((n, p) => n + p.byteLength, 0)
  if (bytes < expected) {
    throw new DsdError(
      'DICOM_TRUNCATED',
      `${file}: ${rows}×${columns} pixels × ${frames} frame(s) of ${bitsAllocated} bits need ${expected.toLocaleString('en-US')} bytes but PixelData has ${bytes.toLocaleString('en-US')}; the file is truncated (or NumberOfFrames is wrong) — re-export it`,
      { file, expectedBytes: expected, actualBytes: bytes },
    )
  }
  if (bytes > expected + 1) {
    throw new DsdError(
      'DICOM_TOO_LONG',
      `${file}: PixelData has ${bytes.toLocaleString('en-US')} bytes, but Rows × Columns × NumberOfFrames × BitsAllocated (${rows}×${columns}×${frames}×${bitsAllocated}) is ${expected.toLocaleString('en-US')}; the header does not describe the pixels — re-export the file`,
      { file, expectedBytes: expected, actualBytes: bytes },
    )
  }
  return { rows, columns, frames, bitsAllocated, signed: representation === 1, bytes }
}

/** Two orthonormal direction cosines (row, then column), or DICOM_BAD_HEADER. */
export function checkOrientation(file: string, field: string, o: number[]): void {
  const r = o.slice(0, 3)
  const c = o.slice(3, 6)
  const nr = Math.hypot(r[0], r[1], r[2])
  const nc = Math.hypot(c[0], c[1], c[2])
  const d = r[0] * c[0] + r[1] * c[1] + r[2] * c[2]
  if (!(Math.abs(nr - 1) <= 0.01 && Math.abs(nc - 1) <= 0.01 && Math.abs(d) <= 0.01)) {
    throw badField(
      file,
      field,
      `${o.join('\\')} is not two perpendicular unit vectors (lengths ${nr.toFixed(4)}, ${nc.toFixed(4)}, cosine between them ${d.toFixed(4)})`,
    )
  }
}

export function num(v: unknown, fallback = NaN): number {
  if (Array.isArray(v)) v = v[0]
  const n = typeof v === 'number' ? v : Number(v)
  return Number.isFinite(n) ? n : fallback
}

export function nums(v: unknown): number[] | undefined {
  if (v === undefined || v === null) return undefined
  const a = Array.isArray(v) ? v : [v]
  const out = a.map((x) => Number(x))
  return out.every(Number.isFinite) ? out : undefined
}

export function str(v: unknown): string {
  if (Array.isArray(v)) v = v[0]
  if (v === undefined || v === null) return ''
  if (typeof v === 'object') return String((v as { Alphabetic?: string }).Alphabetic ?? '')
  return String(v)
}

// ---------------------------------------------------------------------------------------------
// geometry helpers

export type V3 = [number, number, number]
export const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
export const cross = (a: number[], b: number[]): V3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
]
export const norm = (a: number[]) => Math.hypot(a[0], a[1], a[2])
export const unit = (a: number[]): V3 => {
  const n = norm(a) || 1
  return [a[0] / n, a[1] / n, a[2] / n]
}

/** LPS affine → RAS affine (negate the x and y rows). */
export function lpsToRas(a: Mat4): Mat4 {
  return [a[0].map((v) => -v), a[1].map((v) => -v), [...a[2]], [...a[3]]]
}

export function seqItem(v: unknown): Ds | undefined {
  return Array.isArray(v) ? (v[0] as Ds) : (v as Ds | undefined)
}

export function checkSyntax(file: string, syntax: string): void {
  if (NATIVE_SYNTAXES[syntax]) return
  const name = SYNTAX_NAMES[syntax] ?? 'a compressed or unsupported transfer syntax'
  throw new DsdError(
    'DICOM_UNSUPPORTED_SYNTAX',
    `${file}: pixel data uses ${name} (${syntax}), which this reader cannot decode; convert the series to uncompressed little endian first (dcmtk: \`dcmdjpeg in.dcm out.dcm\` or \`dcmconv +te\`; gdcm: \`gdcmconv --raw\`) or convert it to NIfTI with dcm2niix`,
    { file, transferSyntax: syntax },
  )
}

export function orientationClose(a: number[], b: number[], tol = 1e-3): boolean {
  return a.every((v, i) => Math.abs(v - b[i]) <= tol)
}

/** True when `file` starts like a DICOM Part 10 file. */
export async function isDicomFile(file: string): Promise<boolean> {
  const fh = await open(file, 'r')
  try {
    const b = Buffer.alloc(132)
    const { bytesRead } = await fh.read(b, 0, 132, 0)
    return bytesRead === 132 && isPart10(b)
  } finally {
    await fh.close()
  }
}

/** Read the header (no pixels) of one DICOM file as a naturalized dataset. */
export async function readDicomHeader(
  file: string,
): Promise<{ dataset: Ds; transferSyntax: string }> {
  const buf = await readFile(file)
  if (!isPart10(buf)) {
    throw new DsdError(
      'DICOM_BAD_MAGIC',
      `${file}: not a DICOM Part 10 file (no "DICM" marker at byte 128); pass a .dcm file`,
      { file },
    )
  }
  const { ds, syntax } = parseDicom(file, buf, true)
  return { dataset: ds, transferSyntax: syntax }
}
