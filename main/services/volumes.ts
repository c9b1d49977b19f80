/**
 * The viewer's volume data channel. A volume is named by a path the main side made itself
 * (`review.case` answers them) and parses again on every request; no file path ever comes
 * from the renderer:
 *
 *   dataset/<datasetId>/<caseId>/image/<channel>      a dataset case's image channel
 *   dataset/<datasetId>/<caseId>/label                its ground truth, as class indices
 *   run/<runId>/<set>/<caseId>/prediction             a run's prediction of the case
 *   run/<runId>/<set>/<caseId>/{label,image/<c>}      the files the prediction was made from
 *   ensemble/<name>/<caseId>/…                        the same for an ensemble set
 *
 * (each segment URL-encoded). Files are located through the dataset manifest or the set's
 * `predictions.json`, read with the app's own readers (main/data/volume-io.ts, which keeps the
 * geometry exact) and sent as the compact binary of {@link ViewerVolumeHeader}: a JSON header
 * with dims, spacing, origin and direction in LPS, then the raw voxels in a type Cornerstone3D
 * accepts. Reading never writes.
 */
import { stat } from 'node:fs/promises'
import { totalmem } from 'node:os'
import { basename } from 'node:path'
import { isSafeId } from '../contract/ids'
import type { PredictionSetRef, ViewerVolumeHeader } from '../contract/review'
import { applyLabelMap, classCount, type LabelMap } from '../data/labels'
import { readVolume } from '../data/volume-io'
import type { Mat4, Volume, VoxelArray } from '../data/volume'
import { DsdError, toErrorShape } from '../errors'
import { resolveInside } from '../safe-path'
import { readManifest } from '../workspace/datasets'
import { readSet } from './prediction-sets'

/** What a volume path names. */
export type VolumeSource = { kind: 'dataset'; datasetId: string } | PredictionSetRef

export interface VolumeRef {
  source: VolumeSource
  caseId: string
  what: 'image' | 'label' | 'prediction'
  /** Image channel (0 for labels and predictions). */
  channel: number
}


function bad(path: string, why: string): DsdError {
  return new DsdError('VOLUME_PATH_INVALID', `volume path "${path}": ${why}`, { path })
}

/** The path of a volume (URL-encoded segments, no leading slash). */
export function volumePath(ref: VolumeRef): string {
  const s = ref.source
  const head =
    s.kind === 'dataset' ? ['dataset', s.datasetId] : s.kind === 'run' ? ['run', s.runId, s.set] : ['ensemble', s.name]
  const tail = ref.what === 'image' ? ['image', String(ref.channel)] : [ref.what]
  return [...head, ref.caseId, ...tail].map(encodeURIComponent).join('/')
}

/** Parse and check a volume path (the part after `volume/`). */
export function parseVolumePath(path: string): VolumeRef {
  const raw = path.replace(/^\/+/, '').split('/')
  let seg: string[]
  try {
    seg = raw.map((s) => decodeURIComponent(s))
  } catch {
    throw bad(path, 'malformed percent-encoding')
  }
  if (seg.some((s) => s.length === 0 || s.length > 256 || s.includes('\0'))) throw bad(path, 'empty or too long segment')
  const idAt = (i: number, what: string) => {
    if (!isSafeId(seg[i])) throw bad(path, `${what} "${seg[i]}" is not an id`)
    return seg[i]
  }
  let source: VolumeSource
  let rest: string[]
  if (seg[0] === 'dataset' && seg.length >= 4) {
    source = { kind: 'dataset', datasetId: idAt(1, 'dataset') }
    rest = seg.slice(2)
  } else if (seg[0] === 'run' && seg.length >= 5) {
    source = { kind: 'run', runId: idAt(1, 'run'), set: idAt(2, 'set') }
    rest = seg.slice(3)
  } else if (seg[0] === 'ensemble' && seg.length >= 4) {
    source = { kind: 'ensemble', name: idAt(1, 'ensemble') }
    rest = seg.slice(2)
  } else {
    throw bad(path, 'expected dataset/…, run/… or ensemble/…')
  }
  const [caseId, what, channel, ...extra] = rest
  if (extra.length) throw bad(path, 'too many segments')
  if (what === 'image') {
    if (!/^\d{1,3}$/.test(channel ?? '')) throw bad(path, 'image needs a channel number')
    return { source, caseId, what, channel: Number(channel) }
  }
  if (channel !== undefined) throw bad(path, 'too many segments')
  if (what === 'label') return { source, caseId, what, channel: 0 }
  if (what === 'prediction' && source.kind !== 'dataset') return { source, caseId, what, channel: 0 }
  throw bad(path, `unknown volume "${what}"`)
}

/** A file to read, which channel of it, and the label map for labels. */
interface Located {
  file: string
  channel: number
  labelMap: LabelMap | null
}

function noCase(where: string, caseId: string): DsdError {
  return new DsdError('CASE_NOT_FOUND', `${where} has no case "${caseId}"; list the cases with predictions.list`, {
    caseId,
  })
}

function channelOf(files: string[], channelsPerFile: number[], c: number, where: string): Located {
  let k = c
  for (let f = 0; f < files.length; f++) {
    const n = channelsPerFile[f] ?? 1
    if (k < n) return { file: files[f], channel: k, labelMap: null }
    k -= n
  }
  throw new DsdError('CHANNEL_NOT_FOUND', `${where} has no image channel ${c}`, { channel: c })
}

/** Find the file behind a volume reference (reads only manifests). */
export async function locateVolume(workspace: string, ref: VolumeRef): Promise<Located> {
  const s = ref.source
  if (s.kind === 'dataset') {
    const m = await readManifest(workspace, s.datasetId)
    const c = m.cases.find((x) => x.id === ref.caseId)
    if (!c) throw noCase(`dataset ${s.datasetId}`, ref.caseId)
    if (ref.what === 'label') {
      if (!c.label) {
        throw new DsdError('LABEL_NOT_FOUND', `case ${ref.caseId} of dataset ${s.datasetId} has no ground truth`, {
          caseId: ref.caseId,
        })
      }
      return { file: c.label.path, channel: 0, labelMap: m.labelMap }
    }
    return channelOf(
      c.images.map((f) => f.path),
      c.images.map((_, i) => c.imageGeometry[i]?.channels ?? 1),
      ref.channel,
      `case ${ref.caseId} of dataset ${s.datasetId}`,
    )
  }
  const { dir, manifest } = await readSet(workspace, s)
  const c = manifest.cases.find((x) => x.caseId === ref.caseId)
  const where = `prediction set ${dir}`
  if (!c) throw noCase(where, ref.caseId)
  if (ref.what === 'prediction') {
    // The file name comes from the set's own manifest; it must still stay inside the set.
    return { file: resolveInside(dir, c.file), channel: 0, labelMap: null }
  }
  if (ref.what === 'label') {
    if (!c.label) {
      throw new DsdError('LABEL_NOT_FOUND', `case ${ref.caseId} of ${where} was predicted without a ground truth`, {
        caseId: ref.caseId,
      })
    }
    return { file: c.label, channel: 0, labelMap: manifest.labelMap }
  }
  // One file per channel, or one 4D file holding every channel (unknown until it is read).
  if (c.images.length > 1) return channelOf(c.images, c.images.map(() => 1), ref.channel, where)
  return { file: c.images[0], channel: ref.channel, labelMap: null }
}

// ---------------------------------------------------------------------------------------------
// encoding

/** NIfTI (RAS) → Cornerstone (LPS): origin, spacing and the unit i, j, k directions. */
export function lpsGeometry(affine: Mat4, dims: [number, number, number]) {
  const col = (c: number) => [-affine[0][c], -affine[1][c], affine[2][c]]
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[0][c], affine[1][c], affine[2][c])) as [number, number, number]
  const dirs = [0, 1, 2].map((c) => col(c).map((v) => v / (spacing[c] || 1)))
  const origin = col(3) as [number, number, number]
  const [a, b, k] = dirs
  const det =
    a[0] * (b[1] * k[2] - b[2] * k[1]) - a[1] * (b[0] * k[2] - b[2] * k[0]) + a[2] * (b[0] * k[1] - b[1] * k[0])
  // A left-handed grid (e.g. LAS) is walked with k reversed: same voxel centres, right-handed.
  const flipK = det < 0
  if (flipK) {
    for (let r = 0; r < 3; r++) origin[r] += (dims[2] - 1) * spacing[2] * k[r]
    dirs[2] = k.map((v) => -v)
  }
  return { spacing, origin, direction: dirs.flat(), flipK }
}

function reverseSlices<T extends VoxelArray>(data: T, dims: [number, number, number]): T {
  const n = dims[0] * dims[1]
  const out = new (data.constructor as new (n: number) => T)(data.length)
  for (let k = 0; k < dims[2]; k++) out.set(data.subarray((dims[2] - 1 - k) * n, (dims[2] - k) * n), k * n)
  return out
}

type ViewerArray = Uint8Array | Int16Array | Uint16Array | Float32Array

/** Image voxels in a type Cornerstone accepts: Int16 whenever the values are integers that fit. */
function viewerImageArray(data: VoxelArray): ViewerArray {
  if (data instanceof Uint8Array || data instanceof Int16Array || data instanceof Uint16Array) return data
  let integral = true
  let lo = Infinity
  let hi = -Infinity
  for (let i = 0; i < data.length; i++) {
    const v = data[i]
    if (v < lo) lo = v
    if (v > hi) hi = v
    if (integral && !Number.isInteger(v)) integral = false
  }
  if (integral && lo >= -32768 && hi <= 32767) return Int16Array.from(data)
  return data instanceof Float32Array ? data : Float32Array.from(data)
}

/** Class indices (uint8) of a prediction file: integers 0–255 only. */
function classArray(data: VoxelArray, file: string): Uint8Array {
  if (data instanceof Uint8Array) return data
  const out = new Uint8Array(data.length)
  for (let i = 0; i < data.length; i++) {
    const v = data[i]
    if (!(Number.isInteger(v) && v >= 0 && v <= 255)) {
      throw new DsdError('LABEL_UNMAPPED', `${file}: value ${v} is not a class index 0–255; predict it again`, {
        file,
        value: v,
      })
    }
    out[i] = v
  }
  return out
}

/** Min and max (NaN skipped); typed loops, so a CT volume takes a fraction of a second. */
function minMax(data: ViewerArray): { min: number; max: number; count: number } {
  let min = Infinity
  let max = -Infinity
  let count = data.length
  if (data instanceof Float32Array) {
    count = 0
    for (let i = 0; i < data.length; i++) {
      const v = data[i]
      if (v !== v) continue
      if (v < min) min = v
      if (v > max) max = v
      count++
    }
  } else {
    for (let i = 0; i < data.length; i++) {
      const v = data[i]
      if (v < min) min = v
      if (v > max) max = v
    }
  }
  return count ? { min, max, count } : { min: 0, max: 0, count }
}

/**
 * Min and max (exact), and the 1st / 99th percentiles (integer types: exact values, floats: 4096
 * bins; from every voxel up to 4 M voxels, else from a regular sample of ~4 M).
 */
export function valueRange(data: ViewerArray): { min: number; max: number; p1: number; p99: number } {
  const { min, max, count } = minMax(data)
  if (count === 0 || min === max) return { min, max, p1: min, p99: max }
  const integral = !(data instanceof Float32Array)
  const bins = integral ? max - min + 1 : 4096
  const hist = new Uint32Array(bins)
  // The percentiles of a window need no more than ~4 M voxels: a regular stride of them.
  const stride = Math.max(1, Math.floor(data.length / 4_000_000))
  let sampled = 0
  if (integral) {
    for (let i = 0; i < data.length; i += stride) hist[data[i] - min]++
    sampled = Math.ceil(data.length / stride)
  } else {
    const scale = bins / (max - min)
    for (let i = 0; i < data.length; i += stride) {
      const v = data[i]
      if (v === v) {
        hist[Math.min(bins - 1, ((v - min) * scale) | 0)]++
        sampled++
      }
    }
  }
  const width = integral ? 1 : (max - min) / bins
  const at = (q: number) => {
    const target = q * (sampled - 1)
    let seen = 0
    for (let b = 0; b < bins; b++) {
      seen += hist[b]
      if (seen > target) return min + b * width
    }
    return max
  }
  return { min, max, p1: at(0.01), p99: at(0.99) }
}

/**
 * Ground-truth voxels as class indices: a uint8 file whose values are already classes (no
 * remapping, all below the class count) is used as it is; anything else goes through the
 * dataset's label map (which names any value it cannot map).
 */
function labelClasses(data: VoxelArray, map: LabelMap, file: string): Uint8Array {
  if (data instanceof Uint8Array && !map.remap) {
    const k = classCount(map)
    let max = 0
    for (let i = 0; i < data.length; i++) if (data[i] > max) max = data[i]
    if (max < k) return data
  }
  return applyLabelMap(data, map, file)
}

/** Voxels of background kept around the labels (outlines need a neighbour outside). */
const LABEL_MARGIN = 2

/** The box of the non-zero voxels, grown by `margin` (inside the grid); one voxel when empty. */
export function labelBox(
  data: Uint8Array,
  dims: [number, number, number],
  margin: number,
): { offset: [number, number, number]; dims: [number, number, number] } {
  const [nx, ny, nz] = dims
  let x0 = nx
  let y0 = ny
  let z0 = nz
  let x1 = -1
  let y1 = -1
  let z1 = -1
  for (let k = 0, p = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const row = p
      p += nx
      // Most rows are empty: find the first and last labelled voxel of the row.
      let i = 0
      while (i < nx && data[row + i] === 0) i++
      if (i === nx) continue
      let e = nx - 1
      while (data[row + e] === 0) e--
      if (i < x0) x0 = i
      if (e > x1) x1 = e
      if (j < y0) y0 = j
      if (j > y1) y1 = j
      if (k < z0) z0 = k
      if (k > z1) z1 = k
    }
  }
  if (x1 < 0) return { offset: [0, 0, 0], dims: [1, 1, 1] }
  const lo = [x0, y0, z0].map((v) => Math.max(0, v - margin)) as [number, number, number]
  const hi = [x1, y1, z1].map((v, a) => Math.min(dims[a] - 1, v + margin))
  return { offset: lo, dims: [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1] }
}

function cropBlock(
  data: Uint8Array,
  dims: [number, number, number],
  offset: [number, number, number],
  size: [number, number, number],
): Uint8Array {
  if (size[0] === dims[0] && size[1] === dims[1] && size[2] === dims[2]) return data
  const out = new Uint8Array(size[0] * size[1] * size[2])
  for (let k = 0; k < size[2]; k++)
    for (let j = 0; j < size[1]; j++) {
      const src = ((k + offset[2]) * dims[1] + j + offset[1]) * dims[0] + offset[0]
      out.set(data.subarray(src, src + size[0]), (k * size[1] + j) * size[0])
    }
  return out
}

const DTYPE: Record<string, ViewerVolumeHeader['dtype']> = {
  Uint8Array: 'uint8',
  Int16Array: 'int16',
  Uint16Array: 'uint16',
  Float32Array: 'float32',
}

/** The header bytes and the voxel bytes (two parts, so large voxel buffers are not copied). */
export interface EncodedVolume {
  header: ViewerVolumeHeader
  parts: [Uint8Array, Uint8Array]
  bytes: number
}

/** Encode one channel of a volume for the viewer. */
export function encodeViewerVolume(
  vol: Volume,
  kind: ViewerVolumeHeader['kind'],
  channel: number,
  labelMap: LabelMap | null,
  file: string,
): EncodedVolume {
  const dims = [...vol.shape] as [number, number, number]
  const n = dims[0] * dims[1] * dims[2]
  if (channel >= vol.channels) {
    throw new DsdError('CHANNEL_NOT_FOUND', `${file} has ${vol.channels} channel(s), not channel ${channel}`, {
      file,
      channel,
    })
  }
  const raw = vol.data.subarray(channel * n, (channel + 1) * n) as VoxelArray
  let data: ViewerArray
  if (kind === 'image') data = viewerImageArray(raw)
  else if (labelMap) data = labelClasses(raw, labelMap, file)
  else data = classArray(raw, file)
  const geo = lpsGeometry(vol.affine, dims)
  if (geo.flipK) data = reverseSlices(data, dims)
  let offset: [number, number, number] = [0, 0, 0]
  let blockDims = dims
  if (kind !== 'image') {
    // Label maps are mostly background: send the box around their labels (exact, same lattice).
    const box = labelBox(data as Uint8Array, dims, LABEL_MARGIN)
    offset = box.offset
    blockDims = box.dims
    data = cropBlock(data as Uint8Array, dims, box.offset, box.dims)
    for (let r = 0; r < 3; r++) {
      geo.origin[r] += offset.reduce((acc, o, c) => acc + o * geo.spacing[c] * geo.direction[c * 3 + r], 0)
    }
  }
  // Percentiles only for images (the "auto" window); label maps need just their range.
  const mm = kind === 'image' ? null : minMax(data)
  const range = mm ? { min: mm.min, max: mm.max, p1: mm.min, p99: mm.max } : valueRange(data)
  const header: ViewerVolumeHeader = {
    format: 'dsd-volume',
    version: 1,
    kind,
    dims: blockDims,
    offset,
    gridDims: dims,
    spacing: geo.spacing,
    origin: geo.origin,
    direction: geo.direction,
    dtype: DTYPE[data.constructor.name],
    ...range,
    channel,
    channels: vol.channels,
    source: basename(file),
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8)
  const head = new Uint8Array(8 + Buffer.byteLength(json))
  head.set([0x44, 0x53, 0x44, 0x56]) // DSDV
  new DataView(head.buffer).setUint32(4, head.length - 8, true)
  Buffer.from(head.buffer).write(json, 8, 'utf8')
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return { header, parts: [head, body], bytes: head.length + body.length }
}

// Multi-channel files are read once for all their channels: a small cache of decoded volumes
// (keyed by path, size and mtime), two entries at most.
const recent: { key: string; vol: Volume }[] = []

async function readCached(file: string): Promise<Volume> {
  const s = await stat(file).catch(() => null)
  const key = s ? `${file}\0${s.size}\0${s.mtimeMs}` : null
  const hit = key ? recent.find((r) => r.key === key) : undefined
  if (hit) return hit.vol
  const vol = await readVolume(file)
  if (key && vol.channels > 1) {
    recent.unshift({ key, vol })
    recent.length = Math.min(recent.length, 2)
  }
  return vol
}

/**
 * Recently sent volumes, encoded (reopening a case, or comparing two runs on it, then costs no
 * read or decode). Keyed by the path and the file's size and mtime, so a changed file is read
 * again; bounded in bytes (DSD_VOLUME_CACHE_MB, default 1024 or an eighth of the RAM if less).
 */
const encodedCache = new Map<string, EncodedVolume>()
let encodedBytes = 0
function cacheLimit(): number {
  const env = Number(process.env.DSD_VOLUME_CACHE_MB)
  if (env >= 0 && process.env.DSD_VOLUME_CACHE_MB) return env * 2 ** 20
  return Math.min(2 ** 30, totalmem() / 8)
}

/** Read the volume a path names and encode it for the viewer. */
export async function readViewerVolume(workspace: string, path: string): Promise<EncodedVolume> {
  const ref = parseVolumePath(path)
  const loc = await locateVolume(workspace, ref)
  const s = await stat(loc.file).catch(() => null)
  const key = s ? `${volumePath(ref)}\0${loc.file}\0${s.size}\0${s.mtimeMs}` : null
  const hit = key ? encodedCache.get(key) : undefined
  if (hit) {
    encodedCache.delete(key!)
    encodedCache.set(key!, hit) // most recent last
    return hit
  }
  const vol = await readCached(loc.file)
  const enc = encodeViewerVolume(vol, ref.what, loc.channel, ref.what === 'label' ? loc.labelMap : null, loc.file)
  const limit = cacheLimit()
  if (key && enc.bytes <= limit) {
    encodedCache.set(key, enc)
    encodedBytes += enc.bytes
    for (const [k, v] of encodedCache) {
      if (encodedBytes <= limit) break
      encodedCache.delete(k)
      encodedBytes -= v.bytes
    }
  }
  return enc
}

/** Forget the encoded volumes (tests). */
export function clearVolumeCache(): void {
  encodedCache.clear()
  encodedBytes = 0
}

const STATUS: Record<string, number> = {
  VOLUME_PATH_INVALID: 400,
  BAD_PATH: 400,
  VALIDATION: 400,
  CASE_NOT_FOUND: 404,
  CHANNEL_NOT_FOUND: 404,
  LABEL_NOT_FOUND: 404,
  NOT_FOUND: 404,
  DATASET_NOT_FOUND: 404,
  PREDICTIONS_NOT_FOUND: 404,
}

/**
 * The HTTP answer for a volume path, for both transports (the browser-mode server and the
 * Electron `dsd-data://volume/…` protocol): 200 with the binary, or an error status with the
 * contract's `{ code, message, details }` as JSON.
 */
export async function volumeResponse(
  workspace: string,
  path: string,
): Promise<{ status: number; headers: Record<string, string>; body: Uint8Array[] }> {
  try {
    const v = await readViewerVolume(workspace, path)
    return {
      status: 200,
      headers: {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(v.bytes),
        'Cache-Control': 'no-store',
        'X-Content-Type-Options': 'nosniff',
      },
      body: v.parts,
    }
  } catch (err) {
    const e = toErrorShape(err)
    return {
      status: STATUS[e.code] ?? 500,
      headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' },
      body: [new TextEncoder().encode(JSON.stringify(e))],
    }
  }
}
