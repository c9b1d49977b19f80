/**
 * The datasets service (what IPC, the HTTP bridge and the CLI call): import a dataset folder
 * into the workspace (manifest with sizes, hashes, geometry, label values — the source is never
 * modified), list and read datasets, audit them, set label maps, create and read splits, and
 * load preprocessed cases through the cache. Pure Node; takes the workspace root.
 */
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import type { AuditReport, CommandParams, DatasetSummary, SplitDetail, SplitSummary } from '../contract'
import { auditDataset as runAudit, type AuditFinding, type AuditResult } from '../data/audit'
import { readVolume } from '../data/volume-io'
import {
  LABEL_PRESETS,
  identityLabelMap,
  labelHistogram,
  validateLabelMap,
  type LabelMap,
} from '../data/labels'
import {
  formatPairRule,
  parseLayout,
  relPath,
  type CaseEntry,
  type LayoutKind,
  type PairRule,
} from '../data/layouts'
import {
  preprocessVolumes,
  settingsHash,
  type PreparedCase,
  type PreprocessSettings,
} from '../data/preprocess'
import { orientationCodes } from '../data/resample'
import {
  bratsSplit,
  kfoldSplit,
  mmwhsSplit,
  splitHash,
  validateSplit,
  type SplitFile,
  type SplitProblem,
} from '../data/splits'
import { DsdError } from '../errors'
import { atomicWriteJson, readJsonFile } from '../workspace/atomic'
import { readCacheEntry, writeCacheEntry } from '../workspace/cache'
import {
  auditPath,
  createDatasetEntry,
  datasetIdFor,
  listDatasetIds,
  readManifest,
  trashDataset,
  writeManifest,
  type DatasetManifest,
  type FileGeometry,
  type ImportProblem,
  type ManifestCase,
  type ManifestFile,
  type UnreadableCase,
} from '../workspace/datasets'
import { listSplitNames, readSplit, trashSplit, writeSplit } from '../workspace/splits'
import { sweepOnce } from '../workspace/sweep'
import type { JobContext as TaskContext } from '../jobs/system'

/** Progress callback: cases done, total, the case just finished. */
export type Progress = (done: number, total: number, caseId: string) => void

export interface ImportOptions {
  layout?: LayoutKind | 'auto'
  name?: string
  /** For the pairs layout: the naming rule the user confirmed. */
  rule?: PairRule
  /** Label map to store (e.g. the MMWHS preset); default: the declared labels as they are. */
  labelMap?: LabelMap
  onProgress?: Progress
  signal?: AbortSignal
  concurrency?: number
}

export interface ImportResult {
  manifest: DatasetManifest
  imported: number
  skipped: number
  problems: ImportProblem[]
  /** Cases whose files cannot be read (also recorded in the manifest). */
  unreadable: UnreadableCase[]
}

export interface SplitOptions {
  folds?: number
  seed?: number
  preset?: 'mmwhs' | 'brats'
  name?: string
  /** Case IDs held out as a test set (k-fold only). */
  test?: string[]
}

/**
 * Result of reading a split: the split (its `hash` is the hash of its content), whether the
 * file was edited by hand since it was saved (stored hash ≠ content), and what validation found.
 * Reading never writes; `repairSplit` re-stamps an edited file.
 */
export interface SplitRead {
  split: SplitFile
  file: string
  edited: boolean
  /** The hash stored in the file (differs from `split.hash` when edited). */
  storedHash: string
  problems: SplitProblem[]
}

/** A case the training service must not use: its files cannot be read. */
export interface UnreadableCaseReport {
  caseId: string
  file: string | null
  code: string
  message: string
  /** Where it was found: at import (manifest) or by the last audit. */
  source: 'import' | 'audit'
}

async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const buf = await readFile(path)
  return { sha256: createHash('sha256').update(buf).digest('hex'), bytes: buf.length }
}

function geometryOf(h: {
  shape: [number, number, number]
  channels: number
  spacing: [number, number, number]
  affine: number[][]
  datatype: string
}): FileGeometry {
  return {
    shape: [...h.shape],
    channels: h.channels,
    spacing: [...h.spacing],
    affine: h.affine.map((r) => [...r]),
    datatype: h.datatype,
    axcodes: orientationCodes(h.affine as never),
  }
}

function cancelled(what: string, done: number, total: number): DsdError {
  return new DsdError(
    'CANCELLED',
    `${what} cancelled after ${done} of ${total} cases; nothing was written`,
    { done, total },
  )
}

/** The datasets service over one workspace folder. */
export class DatasetService {
  constructor(readonly workspace: string) {}

  /** Import a dataset folder (MSD, nnU-Net raw or pairs). Cases with problems are skipped and reported. */
  async importDataset(path: string, opts: ImportOptions = {}): Promise<ImportResult> {
    const layout = parseLayout(path, { layout: opts.layout ?? 'auto', rule: opts.rule })
    const problems: ImportProblem[] = [...layout.problems]
    const total = layout.cases.length
    const cases: (ManifestCase | null)[] = new Array(total)
    const unreadable: UnreadableCase[] = []
    let next = 0
    let done = 0
    const importCase = async (c: CaseEntry): Promise<ManifestCase | null> => {
      const files: ManifestFile[] = []
      const geoms: FileGeometry[] = []
      let reading = ''
      try {
        // Every file is read whole, through the same checks as the audit's full reads, so
        // a case that cannot be read is known now, not when a run reaches it.
        for (const p of c.images) {
          reading = p
          const vol = await readVolume(p)
          const { sha256, bytes } = await sha256File(p)
          files.push({ path: p, rel: relPath(layout.root, p), bytes, sha256 })
          geoms.push(geometryOf(vol))
        }
        let label: ManifestFile | null = null
        let labelGeometry: FileGeometry | null = null
        let labelValues: number[] | null = null
        if (c.label) {
          reading = c.label
          const { sha256, bytes } = await sha256File(c.label)
          label = { path: c.label, rel: relPath(layout.root, c.label), bytes, sha256 }
          const vol = await readVolume(c.label)
          labelGeometry = geometryOf(vol)
          labelValues = [...labelHistogram(vol.data).keys()]
          const g0 = geoms[0]
          if (g0.shape.some((v, i) => v !== labelGeometry!.shape[i])) {
            problems.push({
              caseId: c.id,
              severity: 'error',
              code: 'LABEL_GRID_MISMATCH',
              message: `${c.label}: label shape ${labelGeometry.shape.join('×')} does not match the image ${c.images[0]} (${g0.shape.join('×')}); resample the label onto the image grid or pair it with the right image — the case is skipped`,
            })
            return null
          }
        }
        return {
          id: c.id,
          ...(c.patient ? { patient: c.patient } : {}),
          images: files,
          label,
          imageGeometry: geoms,
          labelGeometry,
          labelValues,
        }
      } catch (e) {
        const err = e as DsdError
        const code = typeof err.code === 'string' ? err.code : 'FILE_UNREADABLE'
        unreadable.push({ caseId: c.id, file: reading, code, message: err.message })
        problems.push({
          caseId: c.id,
          severity: 'error',
          code,
          message: `${err.message} — the case cannot be read, so runs on this dataset are refused until it is fixed and the dataset re-imported`,
        })
        return null
      }
    }
    const worker = async () => {
      while (next < total) {
        if (opts.signal?.aborted) throw cancelled('import', done, total)
        const i = next++
        cases[i] = await importCase(layout.cases[i])
        done++
        opts.onProgress?.(done, total, layout.cases[i].id)
      }
    }
    await Promise.all(
      Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, total)) }, worker),
    )
    if (opts.signal?.aborted) throw cancelled('import', done, total)
    const kept = cases.filter((c): c is ManifestCase => !!c)
    if (kept.length === 0) {
      throw new DsdError(
        'IMPORT_NOTHING',
        `${layout.root}: none of the ${total} cases could be imported; first problem: ${problems[0]?.message ?? 'unknown'}`,
        { problems },
      )
    }
    // Labels: declared, or (pairs) the values found.
    let labels = layout.labels
    if (Object.keys(labels).length === 0) {
      const found = new Set<number>()
      for (const c of kept) for (const v of c.labelValues ?? []) found.add(v)
      labels = Object.fromEntries(
        [...found]
          .sort((a, b) => a - b)
          .map((v) => [String(v), v === 0 ? 'background' : `label ${v}`]),
      )
    }
    const labelMap = opts.labelMap ?? defaultLabelMap(labels)
    validateLabelMap(labelMap, 'label map')
    problems.push(...unmappedProblems(kept, labelMap))
    const name = opts.name ?? layout.name
    await sweepOnce(this.workspace)
    const manifest: DatasetManifest = {
      format: 'dsd-dataset',
      version: 1,
      id: datasetIdFor(this.workspace, opts.name ?? (layout.name || basename(layout.root))),
      name,
      description: layout.description,
      layout: layout.layout,
      source: layout.root,
      rule: layout.rule ? formatPairRule(layout.rule) : null,
      importedAt: new Date().toISOString(),
      channels: layout.channels,
      labels,
      labelMap,
      patients: layout.patients,
      cases: kept,
      problems,
      ...(unreadable.length ? { unreadable: unreadable.sort((a, b) => (a.caseId < b.caseId ? -1 : 1)) } : {}),
      hash: '',
    }
    // The whole dataset folder appears at once (staging folder renamed into place); another
    // import that took the id meanwhile moves this one to the next free id.
    for (let attempt = 0; ; attempt++) {
      try {
        await createDatasetEntry(this.workspace, manifest)
        break
      } catch (err) {
        if ((err as DsdError).code !== 'ENTRY_EXISTS' || attempt >= 20) throw err
        manifest.id = datasetIdFor(this.workspace, opts.name ?? (layout.name || basename(layout.root)))
      }
    }
    return { manifest, imported: kept.length, skipped: total - kept.length, problems, unreadable }
  }

  /** Summaries of every readable dataset, plus the ones whose manifest is damaged. */
  async listDatasets(): Promise<{
    datasets: DatasetSummary[]
    broken: { id: string; code: string; message: string }[]
  }> {
    const datasets: DatasetSummary[] = []
    const broken: { id: string; code: string; message: string }[] = []
    await sweepOnce(this.workspace)
    for (const id of await listDatasetIds(this.workspace)) {
      try {
        datasets.push(summaryOf(await readManifest(this.workspace, id)))
      } catch (e) {
        const err = e as DsdError
        broken.push({ id, code: err.code ?? 'INTERNAL', message: err.message })
      }
    }
    return { datasets, broken }
  }

  /** A dataset's manifest (DATASET_NOT_FOUND / WORKSPACE_CORRUPT otherwise). */
  getDataset(id: string): Promise<DatasetManifest> {
    return readManifest(this.workspace, id)
  }

  /** Audit a dataset; the report is also saved as datasets/<id>/audit.json. */
  async auditDataset(
    id: string,
    opts: { onProgress?: Progress; signal?: AbortSignal; concurrency?: number } = {},
  ): Promise<AuditResult> {
    const m = await this.getDataset(id)
    const known: AuditFinding[] = m.problems.filter((p) => p.code !== 'LABEL_UNMAPPED')
    // Files changed since import (size check; cheap).
    for (const c of m.cases) {
      for (const f of [...c.images, ...(c.label ? [c.label] : [])]) {
        try {
          const s = await stat(f.path)
          if (s.size !== f.bytes)
            known.push({
              caseId: c.id,
              severity: 'error',
              code: 'FILE_CHANGED',
              message: `${f.path}: ${s.size} bytes now, ${f.bytes} at import; re-import the dataset`,
            })
        } catch {
          known.push({
            caseId: c.id,
            severity: 'error',
            code: 'FILE_CHANGED',
            message: `${f.path}: missing since import; restore it or re-import the dataset`,
          })
        }
      }
    }
    const result = await runAudit(
      {
        datasetId: id,
        cases: m.cases.map((c) => ({
          id: c.id,
          images: c.images.map((f) => f.path),
          label: c.label?.path,
          patient: c.patient,
        })),
        channels: m.channels,
        labels: m.labels,
        labelMap: m.labelMap,
        known,
      },
      opts,
    )
    await atomicWriteJson(auditPath(this.workspace, id), result)
    return result
  }

  /** The last saved audit, or null. */
  async lastAudit(id: string): Promise<AuditResult | null> {
    try {
      return (await readJsonFile(auditPath(this.workspace, id))) as AuditResult
    } catch (e) {
      if ((e as DsdError).code === 'NOT_FOUND') return null
      throw e
    }
  }

  /** Set the label map (a LabelMap or a preset name such as "mmwhs"); checked against the values found at import. */
  async setLabelMap(
    id: string,
    map: LabelMap | string,
  ): Promise<{ manifest: DatasetManifest; problems: ImportProblem[] }> {
    const m = await this.getDataset(id)
    let lm: LabelMap
    if (typeof map === 'string') {
      const preset = LABEL_PRESETS[map]
      if (!preset)
        throw new DsdError(
          'LABEL_PRESET_UNKNOWN',
          `unknown label preset "${map}"; known: ${Object.keys(LABEL_PRESETS).join(', ')}`,
          { preset: map },
        )
      lm = preset()
    } else lm = map
    validateLabelMap(lm, `label map for ${id}`)
    m.labelMap = lm
    const problems = unmappedProblems(m.cases, lm)
    m.problems = [...m.problems.filter((p) => p.code !== 'LABEL_UNMAPPED'), ...problems]
    await writeManifest(this.workspace, m)
    return { manifest: m, problems }
  }

  /**
   * Create and save a split (k-fold, or a paper preset). A name that exists is refused
   * (SPLIT_EXISTS, with a free name to use instead): runs may have been validated on the
   * existing split, so it is never replaced.
   */
  async createSplit(id: string, opts: SplitOptions = {}): Promise<SplitFile> {
    const m = await this.getDataset(id)
    await sweepOnce(this.workspace)
    const ids = m.cases.map((c) => c.id)
    const fileOf = new Map(m.cases.map((c) => [c.id, basename(c.images[0].path)]))
    const groups = Object.fromEntries(Object.entries(m.patients).filter(([, v]) => v.length > 1))
    let split: SplitFile
    if (opts.preset === 'mmwhs')
      split = mmwhsSplit(ids, {
        name: opts.name,
        datasetId: id,
        groups,
        sortKey: (c) => fileOf.get(c) ?? c,
      })
    else if (opts.preset === 'brats')
      split = bratsSplit(ids, {
        name: opts.name,
        datasetId: id,
        groups,
        seed: opts.seed ?? 0,
        sortKey: (c) => fileOf.get(c) ?? c,
      })
    else
      split = kfoldSplit(ids, {
        folds: opts.folds ?? 5,
        seed: opts.seed ?? 0,
        name: opts.name,
        datasetId: id,
        groups,
        test: opts.test,
      })
    const problems = validateSplit(split, ids, groups).filter((p) => p.severity === 'error')
    if (problems.length)
      throw new DsdError('SPLIT_INVALID', `split "${split.name}": ${problems[0].message}`, {
        problems,
      })
    await writeSplit(this.workspace, id, split, 'create')
    return split
  }

  /**
   * Read a split and check it against the dataset; nothing is written. An edited file (stored
   * hash ≠ content) that is still valid is returned with `edited: true`, its content's hash and
   * method "custom" (in memory only; `repairSplit` writes that); an invalid one throws
   * SPLIT_INVALID listing the problems.
   */
  async getSplit(id: string, name: string): Promise<SplitRead> {
    const m = await this.getDataset(id)
    const { split, hashMatches, file } = await readSplit(this.workspace, id, name)
    const groups = Object.fromEntries(Object.entries(m.patients).filter(([, v]) => v.length > 1))
    const problems = validateSplit(
      split,
      m.cases.map((c) => c.id),
      groups,
    )
    const errors = problems.filter((p) => p.severity === 'error')
    if (errors.length) {
      throw new DsdError(
        'SPLIT_INVALID',
        `${file}: ${errors.length} problem(s): ${errors
          .slice(0, 3)
          .map((p) => p.message)
          .join('; ')}${errors.length > 3 ? '; …' : ''}`,
        { file, problems },
      )
    }
    const storedHash = split.hash
    if (!hashMatches) {
      split.hash = splitHash(split)
      split.method = 'custom'
    }
    return { split, file, edited: !hashMatches, storedHash, problems }
  }

  /**
   * The explicit repair of a split edited by hand: re-stamp its hash (method "custom") in the
   * file, and log it. Runs recorded the old hash, so predict/evaluate will tell them apart.
   */
  async repairSplit(
    id: string,
    name: string,
    log: (message: string) => void = (msg) => console.warn(msg),
  ): Promise<{ file: string; repaired: boolean; from: string; to: string }> {
    const r = await this.getSplit(id, name)
    if (!r.edited) return { file: r.file, repaired: false, from: r.storedHash, to: r.split.hash }
    await writeSplit(this.workspace, id, r.split, 'replace')
    log(`${r.file}: split "${name}" of dataset "${id}" was edited by hand; its hash was re-stamped from ${r.storedHash} to ${r.split.hash} (method "custom")`)
    return { file: r.file, repaired: true, from: r.storedHash, to: r.split.hash }
  }

  /**
   * Cases of a dataset whose files cannot be read: recorded at import, or found unreadable or
   * changed by the last audit. Pure read.
   */
  async unreadableCases(id: string): Promise<UnreadableCaseReport[]> {
    const m = await this.getDataset(id)
    const out: UnreadableCaseReport[] = (m.unreadable ?? []).map((u) => ({ ...u, source: 'import' as const }))
    const audit = await this.lastAudit(id).catch(() => null)
    for (const f of audit?.findings ?? []) {
      if ((f.code === 'FILE_UNREADABLE' || f.code === 'FILE_CHANGED') && f.caseId && !out.some((u) => u.caseId === f.caseId)) {
        out.push({ caseId: f.caseId, file: null, code: f.code, message: f.message, source: 'audit' })
      }
    }
    return out
  }

  /** Refuse (DATASET_UNREADABLE_CASES, naming them) a dataset with unreadable cases. */
  async assertReadable(id: string): Promise<void> {
    const bad = await this.unreadableCases(id)
    if (!bad.length) return
    const names = bad.slice(0, 5).map((u) => `${u.caseId} (${u.file ?? u.code})`).join(', ')
    throw new DsdError(
      'DATASET_UNREADABLE_CASES',
      `dataset "${id}" has ${bad.length} case(s) whose files cannot be read: ${names}${bad.length > 5 ? ', …' : ''}; fix or remove those files and import the dataset again before training on it`,
      { datasetId: id, cases: bad.map((u) => u.caseId), problems: bad },
    )
  }

  /** Runs (ids) in the workspace that use a dataset, or one of its splits. */
  private async runsUsing(id: string, split?: string): Promise<string[]> {
    const { listRuns } = await import('../workspace/runs')
    return (await listRuns(this.workspace))
      .filter((r) => r.config.datasetId === id && (split === undefined || r.config.split === split))
      .map((r) => r.config.id)
  }

  /**
   * Delete a dataset: its workspace folder (manifest, splits, cache) moves to the workspace's
   * trash folder; the source data is untouched. Refused while runs use it.
   */
  async deleteDataset(id: string): Promise<{ trashedTo: string }> {
    await this.getDataset(id).catch((err: DsdError) => {
      if (err.code !== 'WORKSPACE_CORRUPT') throw err // a damaged one can still be deleted
    })
    const runs = await this.runsUsing(id)
    if (runs.length) {
      throw new DsdError(
        'DATASET_IN_USE',
        `dataset "${id}" is used by ${runs.length} run(s) (${runs.slice(0, 3).join(', ')}${runs.length > 3 ? ', …' : ''}); delete those runs first`,
        { datasetId: id, runs },
      )
    }
    return { trashedTo: await trashDataset(this.workspace, id) }
  }

  /** Delete a split (moved to the workspace's trash folder). Refused while runs use it. */
  async deleteSplit(id: string, name: string): Promise<{ trashedTo: string }> {
    await this.getDataset(id)
    const runs = await this.runsUsing(id, name)
    if (runs.length) {
      throw new DsdError(
        'SPLIT_IN_USE',
        `split "${name}" of dataset "${id}" is used by ${runs.length} run(s) (${runs.slice(0, 3).join(', ')}${runs.length > 3 ? ', …' : ''}); their validation cases come from it — delete those runs first`,
        { datasetId: id, split: name, runs },
      )
    }
    return { trashedTo: await trashSplit(this.workspace, id, name) }
  }

  /** A split's folds, test cases and the runs that use it (the Splits page's fold view). Pure read. */
  async splitDetail(id: string, name: string): Promise<SplitDetail> {
    const { split } = await this.getSplit(id, name)
    return {
      summary: splitSummary(split),
      folds: split.folds.map((f) => ({ train: [...f.train], val: [...f.val] })),
      test: [...split.test],
      usedBy: await this.runsUsing(id, name),
    }
  }

  /** Summaries of a dataset's splits (damaged files are listed with hash "invalid"). */
  async listSplits(id: string): Promise<SplitSummary[]> {
    await this.getDataset(id)
    const out: SplitSummary[] = []
    for (const name of await listSplitNames(this.workspace, id)) {
      try {
        const { split } = await readSplit(this.workspace, id, name)
        out.push(splitSummary(split))
      } catch {
        out.push({ name, folds: 0, seed: 0, preset: null, hash: 'invalid' })
      }
    }
    return out
  }

  /** Load one case preprocessed with `settings`, through the workspace cache. */
  async loadCase(
    id: string,
    caseId: string,
    settings: PreprocessSettings,
    m?: DatasetManifest,
  ): Promise<PreparedCase> {
    m ??= await this.getDataset(id)
    const c = m.cases.find((x) => x.id === caseId)
    if (!c)
      throw new DsdError('CASE_NOT_FOUND', `dataset "${id}" has no case "${caseId}"`, {
        id,
        caseId,
      })
    const key = settingsHash(settings, m.labelMap)
    const sources = [...c.images.map((f) => f.sha256), c.label?.sha256 ?? '']
    const hit = await readCacheEntry(this.workspace, id, key, caseId, sources)
    if (hit) return hit
    const images = await Promise.all(c.images.map((f) => readVolume(f.path)))
    const label = c.label ? await readVolume(c.label.path) : null
    // The files must still be the imported ones.
    for (const [f, v] of [
      ...c.images.map((f, i) => [f, images[i]] as const),
      ...(c.label && label ? [[c.label, label] as const] : []),
    ]) {
      const { sha256 } = await sha256File(f.path)
      if (sha256 !== f.sha256)
        throw new DsdError(
          'FILE_CHANGED',
          `${f.path}: content changed since import (sha256 differs); re-import the dataset`,
          { file: f.path, source: v.source },
        )
    }
    const prepared = preprocessVolumes(caseId, images, label, settings, m.labelMap)
    await writeCacheEntry(this.workspace, id, key, settings, sources, prepared)
    return prepared
  }

  // -------------------------------------------------------------------------------------------
  // Adapters for the contract handlers (main/services/app.ts).

  async listSummaries(): Promise<DatasetSummary[]> {
    return (await this.listDatasets()).datasets
  }

  async requireDataset(id: string): Promise<DatasetManifest> {
    return this.getDataset(id)
  }

  async importForTask(
    p: CommandParams<'datasets.import'>,
    ctx: TaskContext,
  ): Promise<{
    datasetId: string
    imported: number
    skipped: number
    problems: ImportProblem[]
    unreadable: UnreadableCase[]
  }> {
    const r = await this.importDataset(p.path, {
      layout: p.layout,
      name: p.name,
      signal: ctx.signal,
      onProgress: (done, total, caseId) => ctx.progress(done, total, caseId),
    })
    return {
      datasetId: r.manifest.id,
      imported: r.imported,
      skipped: r.skipped,
      problems: r.problems,
      unreadable: r.unreadable,
    }
  }

  async auditForTask(id: string, ctx: TaskContext): Promise<AuditReport> {
    const r = await this.auditDataset(id, {
      signal: ctx.signal,
      onProgress: (d, t, c) => ctx.progress(d, t, c),
    })
    return { datasetId: r.datasetId, cases: r.cases, findings: r.findings, summary: r.summary }
  }

  async listSplitSummaries(id: string): Promise<SplitSummary[]> {
    return this.listSplits(id)
  }

  async createSplitSummary(p: CommandParams<'splits.create'>): Promise<SplitSummary> {
    return splitSummary(
      await this.createSplit(p.datasetId, {
        folds: p.folds,
        seed: p.seed,
        preset: p.preset,
        name: p.name,
      }),
    )
  }
}

/** Factory used by main/services/app.ts. */
export function createDatasetService(workspace: string): DatasetService {
  return new DatasetService(workspace)
}

function defaultLabelMap(labels: Record<string, string>): LabelMap {
  const values = Object.keys(labels).map(Number)
  const k = Math.max(...values) + 1
  // Consecutive 0..K-1 → identity; otherwise remap the declared values onto 0..n-1 in order.
  if (values.length === k) return identityLabelMap(labels)
  const sorted = [...values].sort((a, b) => a - b)
  const classes: Record<string, string> = {}
  const remap: Record<string, number> = {}
  sorted.forEach((v, i) => {
    classes[String(i)] = labels[String(v)]
    remap[String(v)] = i
  })
  return { classes, remap }
}

function unmappedProblems(cases: ManifestCase[], map: LabelMap): ImportProblem[] {
  const k = Math.max(...Object.keys(map.classes).map(Number)) + 1
  const ok = (v: number) =>
    map.remap ? String(v) in map.remap : Number.isInteger(v) && v >= 0 && v < k
  const out: ImportProblem[] = []
  for (const c of cases) {
    const bad = (c.labelValues ?? []).filter((v) => !ok(v))
    if (bad.length) {
      out.push({
        caseId: c.id,
        severity: 'error',
        code: 'LABEL_UNMAPPED',
        message: `${c.label?.path}: label value(s) ${bad.join(', ')} are outside the label map (${map.remap ? Object.keys(map.remap).join(', ') : `0–${k - 1}`}); set a remapping (\`dsd import --labels mmwhs\` or a JSON map) — the case cannot be loaded until then`,
      })
    }
  }
  return out
}

function summaryOf(m: DatasetManifest): DatasetSummary {
  return {
    id: m.id,
    name: m.name,
    layout: m.layout,
    source: m.source,
    cases: m.cases.length,
    channels: m.channels,
    labels: m.labelMap.classes,
    importedAt: m.importedAt,
  }
}

/** The contract's SplitSummary of a split file. */
export function splitSummary(s: SplitFile): SplitSummary {
  return {
    name: s.name,
    folds: s.folds.length,
    seed: s.seed ?? 0,
    preset: s.method === 'mmwhs' || s.method === 'brats' ? s.method : null,
    hash: s.hash,
  }
}
