/**
 * Dataset manifests in the workspace: `datasets/<id>/manifest.json` records where the data is
 * (the source is never modified), its layout, every case's files with byte sizes and sha256
 * content hashes, geometry from the headers, the label values found, the declared labels and
 * the label map (remapping) applied on load, channel names and patient groups. Reading
 * validates the structure; a damaged manifest is an error, never silently used.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { isSafeId, SafeId, SAFE_ID_RULE } from '../contract/ids'
import { DsdError } from '../errors'
import { atomicWriteJson, readJsonFile } from './atomic'
import { createEntry, moveToTrash } from './entries'

/** One file of a case. */
export interface ManifestFile {
  /** Absolute path at import time. */
  path: string
  /** Path relative to the dataset source folder (forward slashes). */
  rel: string
  bytes: number
  /** Hex sha256 of the file's bytes as stored (compressed for .nii.gz). */
  sha256: string
}

/** Geometry read from a header. */
export interface FileGeometry {
  shape: [number, number, number]
  channels: number
  spacing: [number, number, number]
  affine: number[][]
  datatype: string
  /** nibabel-style axis codes, e.g. 'RAS', 'LAS'. */
  axcodes: string
}

/** One imported case. */
export interface ManifestCase {
  id: string
  patient?: string
  images: ManifestFile[]
  label: ManifestFile | null
  imageGeometry: FileGeometry[]
  labelGeometry: FileGeometry | null
  /** Distinct raw values in the label file (before remapping). */
  labelValues: number[] | null
}

/** A problem found while importing (same shape as an audit finding). */
export interface ImportProblem {
  caseId: string | null
  severity: 'error' | 'warning' | 'info'
  code: string
  message: string
}

/** A case that could not be read at import: its files fail the same checks as the audit's. */
export interface UnreadableCase {
  caseId: string
  /** The file that failed. */
  file: string
  /** The reader's error code (NIFTI_TRUNCATED, DICOM_BAD_HEADER, …) and message. */
  code: string
  message: string
}

/** The manifest file. */
export interface DatasetManifest {
  format: 'dsd-dataset'
  version: 1
  id: string
  name: string
  description: string
  layout: 'msd' | 'nnunet' | 'pairs'
  /** Absolute path of the dataset folder. */
  source: string
  /** For pairs: the naming rule used ("images/{id}.nii.gz=labels/{id}.nii.gz"). */
  rule: string | null
  importedAt: string
  channels: string[]
  /** Declared labels: value → name (from dataset.json, or found values for pairs). */
  labels: Record<string, string>
  /** Classes + optional remapping, applied when labels are loaded. */
  labelMap: { classes: Record<string, string>; remap?: Record<string, number> }
  patients: Record<string, string[]>
  cases: ManifestCase[]
  /** Cases that could not be imported, and other import problems. */
  problems: ImportProblem[]
  /** Cases whose files cannot be read (not in `cases`); runs are refused while any are listed. */
  unreadable?: UnreadableCase[]
  /** sha256 over case IDs, file hashes and the label map (see `manifestHash`). */
  hash: string
}

const num3 = z.tuple([z.number(), z.number(), z.number()])
const fileSchema = z.object({
  path: z.string(),
  rel: z.string(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
})
const geomSchema = z.object({
  shape: num3,
  channels: z.number().int().positive(),
  spacing: num3,
  affine: z.array(z.array(z.number()).length(4)).length(4),
  datatype: z.string(),
  axcodes: z.string(),
})
const problemSchema = z.object({
  caseId: z.string().nullable(),
  severity: z.enum(['error', 'warning', 'info']),
  code: z.string(),
  message: z.string(),
})
const manifestSchema = z.object({
  format: z.literal('dsd-dataset'),
  version: z.literal(1),
  id: SafeId,
  name: z.string(),
  description: z.string(),
  layout: z.enum(['msd', 'nnunet', 'pairs']),
  source: z.string(),
  rule: z.string().nullable(),
  importedAt: z.string(),
  channels: z.array(z.string()).min(1),
  labels: z.record(z.string(), z.string()),
  labelMap: z.object({
    classes: z.record(z.string(), z.string()),
    remap: z.record(z.string(), z.number().int()).optional(),
  }),
  patients: z.record(z.string(), z.array(z.string())),
  cases: z.array(
    z.object({
      id: z.string(),
      patient: z.string().optional(),
      images: z.array(fileSchema).min(1),
      label: fileSchema.nullable(),
      imageGeometry: z.array(geomSchema),
      labelGeometry: geomSchema.nullable(),
      labelValues: z.array(z.number()).nullable(),
    }),
  ),
  problems: z.array(problemSchema),
  unreadable: z
    .array(z.object({ caseId: z.string(), file: z.string(), code: z.string(), message: z.string() }))
    .optional(),
  hash: z.string(),
})

/**
 * Canonical content hash: case IDs with their file hashes, plus the label map (and the
 * unreadable cases, when there are any — so the list cannot be dropped by editing the file).
 */
export function manifestHash(m: Pick<DatasetManifest, 'cases' | 'labelMap' | 'unreadable'>): string {
  const h = createHash('sha256')
  for (const c of [...m.cases].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    h.update(`${c.id}\0${c.images.map((f) => f.sha256).join(',')}\0${c.label?.sha256 ?? ''}\n`)
  }
  const classes = Object.keys(m.labelMap.classes)
    .sort((a, b) => +a - +b)
    .map((k) => [k, m.labelMap.classes[k]])
  const remap = m.labelMap.remap
    ? Object.keys(m.labelMap.remap)
        .sort((a, b) => +a - +b)
        .map((k) => [k, m.labelMap.remap![k]])
    : null
  h.update(JSON.stringify({ classes, remap }))
  if (m.unreadable?.length) {
    h.update(JSON.stringify([...m.unreadable].map((u) => [u.caseId, u.file, u.code]).sort()))
  }
  return 'sha256:' + h.digest('hex')
}

/** Paths inside a workspace. */
export const datasetDir = (ws: string, id: string) => join(ws, 'datasets', id)
export const manifestPath = (ws: string, id: string) => join(datasetDir(ws, id), 'manifest.json')
export const auditPath = (ws: string, id: string) => join(datasetDir(ws, id), 'audit.json')
export const splitsDir = (ws: string, id: string) => join(datasetDir(ws, id), 'splits')
export const cacheDir = (ws: string, id: string) => join(datasetDir(ws, id), 'cache')

/** A dataset ID from a name: lowercase letters, digits, '.', '_', '-'; unique in the workspace. */
export function datasetIdFor(ws: string, name: string): string {
  let base = name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 100)
  if (!base) base = 'dataset'
  let id = base
  for (let n = 2; existsSync(datasetDir(ws, id)); n++) id = `${base}-${n}`
  return id
}

function checkId(id: string): void {
  if (!isSafeId(id)) {
    throw new DsdError(
      'DATASET_ID_INVALID',
      `"${id}" is not a dataset ID (${SAFE_ID_RULE}); list the datasets with \`dsd import --list\``,
      { id },
      `"${id}" is not a dataset ID (${SAFE_ID_RULE}); the Datasets page lists the datasets`,
    )
  }
}

/** Rewrite an existing dataset's manifest atomically (restamps the hash). */
export async function writeManifest(ws: string, m: DatasetManifest): Promise<DatasetManifest> {
  checkId(m.id)
  if (!existsSync(datasetDir(ws, m.id))) {
    throw new DsdError('DATASET_NOT_FOUND', `no dataset "${m.id}" in ${join(ws, 'datasets')}; import it first`, { id: m.id })
  }
  m.hash = manifestHash(m)
  await atomicWriteJson(manifestPath(ws, m.id), m)
  return m
}

/**
 * Create a new dataset entry as a whole (staging folder renamed into place): ENTRY_EXISTS when
 * the id is taken. The hash is stamped.
 */
export async function createDatasetEntry(ws: string, m: DatasetManifest): Promise<DatasetManifest> {
  checkId(m.id)
  m.hash = manifestHash(m)
  await createEntry(
    join(ws, 'datasets'),
    m.id,
    async (dir) => {
      await atomicWriteJson(join(dir, 'manifest.json'), m)
      await mkdir(join(dir, 'splits'))
    },
    'dataset',
  )
  return m
}

/** Read and validate a manifest. */
export async function readManifest(ws: string, id: string): Promise<DatasetManifest> {
  checkId(id)
  const file = manifestPath(ws, id)
  if (!existsSync(datasetDir(ws, id))) {
    throw new DsdError(
      'DATASET_NOT_FOUND',
      `no dataset "${id}" in ${join(ws, 'datasets')}; import it with \`dsd import <folder>\` or list datasets with \`dsd import --list\``,
      { id },
      `no dataset "${id}" in ${join(ws, 'datasets')}; import it on the Datasets page (Import), where the datasets of this workspace are listed`,
    )
  }
  const raw = await readJsonFile(
    file,
    'DATASET_NOT_FOUND',
    're-import the dataset (`dsd import <folder>`)',
  )
  const parsed = manifestSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new DsdError(
      'WORKSPACE_CORRUPT',
      `${file}: the manifest is damaged (${issue.path.join('.') || '(root)'}: ${issue.message}); it was not used — re-import the dataset`,
      { file, issues: parsed.error.issues.slice(0, 5) },
    )
  }
  const m = parsed.data as DatasetManifest
  if (m.id !== id) {
    throw new DsdError(
      'WORKSPACE_CORRUPT',
      `${file}: the manifest says id "${m.id}" but lives in folder "${id}"; re-import the dataset`,
      { file },
    )
  }
  if (m.hash !== manifestHash(m)) {
    throw new DsdError(
      'WORKSPACE_CORRUPT',
      `${file}: content hash mismatch (the file was edited or damaged); it was not used — re-import the dataset, or change the label map with \`dsd import --labels\``,
      { file },
    )
  }
  return m
}

/** IDs of every dataset folder in the workspace. */
export async function listDatasetIds(ws: string): Promise<string[]> {
  try {
    const entries = await readdir(join(ws, 'datasets'), { withFileTypes: true })
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort()
  } catch {
    return []
  }
}

/**
 * Move a dataset's workspace folder (manifest, splits, cache) to the workspace's trash folder
 * and return where it went. The source data is untouched.
 */
export async function trashDataset(ws: string, id: string): Promise<string> {
  checkId(id)
  if (!existsSync(datasetDir(ws, id))) {
    throw new DsdError('DATASET_NOT_FOUND', `no dataset "${id}" in ${join(ws, 'datasets')}; nothing was deleted`, { id })
  }
  return moveToTrash(ws, datasetDir(ws, id), 'datasets')
}
