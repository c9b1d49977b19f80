/**
 * The preprocessing cache: `datasets/<id>/cache/<settingsHash>/<case>.bin` (Float32 image
 * channels-last, then the Uint8 label) + `<case>.json` (geometry, inverse mapping, source
 * hashes, sha256 of the .bin). The key includes the settings, the label map and the code
 * version, so changing any of them uses a fresh folder; an entry whose source files changed
 * (different sha256) or whose data is damaged is ignored and rebuilt.
 */
import { createHash } from 'node:crypto'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { isSafeId } from '../contract/ids'
import type { PreparedCase, PreprocessSettings } from '../data/preprocess'
import { atomicWriteFile, atomicWriteJson, readJsonFile } from './atomic'
import { cacheDir } from './datasets'

interface CacheMeta {
  format: 'dsd-cache'
  version: 1
  id: string
  shape: PreparedCase['shape']
  channels: number
  spacing: PreparedCase['spacing']
  affine: PreparedCase['affine']
  inverse: PreparedCase['inverse']
  hasLabel: boolean
  /** sha256 of the source files (images…, label) the entry was built from. */
  sources: string[]
  binSha256: string
}

/** The entry's path; a case id that is not a safe file name is replaced by its hash. */
const entryBase = (ws: string, datasetId: string, key: string, caseId: string) =>
  join(
    cacheDir(ws, datasetId),
    key,
    isSafeId(caseId) ? caseId : `case-${createHash('sha256').update(caseId).digest('hex').slice(0, 24)}`,
  )

/** Store a prepared case. */
export async function writeCacheEntry(
  ws: string,
  datasetId: string,
  key: string,
  settings: PreprocessSettings,
  sources: string[],
  c: PreparedCase,
): Promise<void> {
  const base = entryBase(ws, datasetId, key, c.id)
  const img = new Uint8Array(c.image.buffer, c.image.byteOffset, c.image.byteLength)
  const bin = new Uint8Array(img.length + (c.label?.length ?? 0))
  bin.set(img, 0)
  if (c.label) bin.set(c.label, img.length)
  const meta: CacheMeta = {
    format: 'dsd-cache',
    version: 1,
    id: c.id,
    shape: c.shape,
    channels: c.channels,
    spacing: c.spacing,
    affine: c.affine,
    inverse: c.inverse,
    hasLabel: !!c.label,
    sources,
    binSha256: createHash('sha256').update(bin).digest('hex'),
  }
  await atomicWriteJson(join(cacheDir(ws, datasetId), key, 'settings.json'), settings)
  await atomicWriteFile(base + '.bin', bin)
  await atomicWriteJson(base + '.json', meta)
}

/** A cached case, or null when missing, stale (sources changed) or damaged. */
export async function readCacheEntry(
  ws: string,
  datasetId: string,
  key: string,
  caseId: string,
  sources: string[],
): Promise<PreparedCase | null> {
  const base = entryBase(ws, datasetId, key, caseId)
  let meta: CacheMeta
  let bin: Buffer
  try {
    meta = (await readJsonFile(base + '.json')) as CacheMeta
    bin = await readFile(base + '.bin')
  } catch {
    return null
  }
  if (meta.format !== 'dsd-cache' || meta.version !== 1 || meta.id !== caseId) return null
  if (meta.sources.length !== sources.length || meta.sources.some((s, i) => s !== sources[i]))
    return null
  const n = meta.shape[0] * meta.shape[1] * meta.shape[2]
  const imgBytes = n * meta.channels * 4
  if (bin.length !== imgBytes + (meta.hasLabel ? n : 0)) return null
  if (createHash('sha256').update(bin).digest('hex') !== meta.binSha256) return null
  const image = new Float32Array(n * meta.channels)
  new Uint8Array(image.buffer).set(bin.subarray(0, imgBytes))
  const label = meta.hasLabel ? new Uint8Array(bin.subarray(imgBytes)) : null
  return {
    id: caseId,
    shape: meta.shape,
    channels: meta.channels,
    spacing: meta.spacing,
    affine: meta.affine,
    image,
    label,
    inverse: meta.inverse,
  }
}

/** Delete cache folders of a dataset, except `keep` (a settings hash). */
export async function pruneCache(ws: string, datasetId: string, keep?: string): Promise<string[]> {
  const dir = cacheDir(ws, datasetId)
  let keys: string[]
  try {
    keys = await readdir(dir)
  } catch {
    return []
  }
  const removed = keys.filter((k) => k !== keep)
  for (const k of removed) await rm(join(dir, k), { recursive: true, force: true })
  return removed
}
