/**
 * Dataset layouts: detect and parse an MSD `dataset.json` folder (single- and multi-channel),
 * an nnU-Net raw folder (`imagesTr/<case>_0000.nii.gz`, `labelsTr/<case>.nii.gz`,
 * `dataset.json` with `channel_names` and name → int labels, or the v1 form with `modality`),
 * or a plain folder of image/label pairs matched by a naming rule the user confirms.
 * Parsing only lists files and checks they exist; it never reads voxels or writes anything.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
import { DsdError } from '../errors'

/** One case: its channel image files (absolute paths), label file, patient. */
export interface CaseEntry {
  id: string
  /** One file per channel; a single 4D file holds all channels (MSD BraTS). */
  images: string[]
  label?: string
  patient?: string
}

/** A problem with one case (or the whole dataset when caseId is null). */
export interface LayoutProblem {
  caseId: string | null
  severity: 'error' | 'warning' | 'info'
  code: string
  message: string
}

export type LayoutKind = 'msd' | 'nnunet' | 'pairs'

/** A parsed dataset folder. */
export interface ParsedLayout {
  layout: LayoutKind
  root: string
  name: string
  description: string
  /** Channel names in order ("MRI", "FLAIR", …). */
  channels: string[]
  /** Declared labels: value (as a string) → name. */
  labels: Record<string, string>
  /** Usable cases, sorted by id. Cases with errors are left out (see `problems`). */
  cases: CaseEntry[]
  /** Patient → case IDs (from dataset.json "patients" or the pair rule). */
  patients: Record<string, string[]>
  problems: LayoutProblem[]
  /** For pairs: the rule used. */
  rule?: PairRule
}

const NIFTI_EXT = /\.(nii\.gz|nii|nrrd|nhdr|mha|mhd|hdr)$/i

/** File name without its volume extension (`a.nii.gz` → `a`). */
export function stripVolumeExt(name: string): string {
  return basename(name).replace(NIFTI_EXT, '')
}

function isVisibleVolume(name: string): boolean {
  return !name.startsWith('.') && NIFTI_EXT.test(name)
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort()
  } catch {
    return []
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile()
  } catch {
    return false
  }
}

/** Read and parse dataset.json with errors that name the file. */
export function readDatasetJson(file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new DsdError(
      'DATASET_JSON_UNREADABLE',
      `${file}: cannot read it (${(e as Error).message}); check the path and permissions`,
      { file },
    )
  }
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (e) {
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: not valid JSON (${(e as Error).message}); fix the syntax (a trailing comma or a missing quote is typical)`,
      { file },
    )
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: expected a JSON object with "labels" and "training"; this is ${Array.isArray(v) ? 'a list' : typeof v}`,
      { file },
    )
  }
  return v as Record<string, unknown>
}

function numberedNames(v: unknown, file: string, field: string): string[] {
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: "${field}" must be an object like {"0": "CT"}`,
      { file, field },
    )
  }
  const o = v as Record<string, unknown>
  const keys = Object.keys(o)
  const out: string[] = []
  for (let i = 0; i < keys.length; i++) {
    if (!(String(i) in o)) {
      throw new DsdError(
        'DATASET_JSON_INVALID',
        `${file}: "${field}" must be numbered 0..${keys.length - 1}; "${i}" is missing`,
        { file, field },
      )
    }
    out.push(String(o[String(i)]))
  }
  return out
}

/** MSD labels {"0": "background", …} or nnU-Net v2 labels {"background": 0, …} → value → name. */
function parseLabels(v: unknown, file: string): Record<string, string> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: "labels" must be an object ({"0": "background", "1": "…"} or {"background": 0, …})`,
      { file },
    )
  }
  const o = v as Record<string, unknown>
  const out: Record<string, string> = {}
  const entries = Object.entries(o)
  const intKeys = entries.every(([k]) => /^-?\d+$/.test(k))
  for (const [k, val] of entries) {
    if (intKeys) {
      out[String(Number(k))] = String(val)
    } else if (typeof val === 'number' && Number.isInteger(val)) {
      out[String(val)] = k
    } else if (Array.isArray(val)) {
      throw new DsdError(
        'DATASET_REGION_LABELS',
        `${file}: label "${k}" is a region (${JSON.stringify(val)}); region-based nnU-Net labels are not supported — list the plain label values instead`,
        { file, label: k },
      )
    } else {
      throw new DsdError(
        'DATASET_JSON_INVALID',
        `${file}: label "${k}" → ${JSON.stringify(val)} is neither "value": "name" nor "name": value`,
        { file, label: k },
      )
    }
  }
  if (!('0' in out)) out['0'] = 'background'
  return out
}

function parsePatients(v: unknown, file: string): Record<string, string[]> {
  if (v === undefined) return {}
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: "patients" must map patient → [case IDs]`,
      { file },
    )
  }
  const out: Record<string, string[]> = {}
  for (const [p, ids] of Object.entries(v as Record<string, unknown>)) {
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string')) {
      throw new DsdError(
        'DATASET_JSON_INVALID',
        `${file}: "patients"."${p}" must be a list of case IDs`,
        { file },
      )
    }
    out[p] = ids as string[]
  }
  return out
}

function resolveIn(root: string, p: string): string {
  return resolve(root, p)
}

/** Which layout a folder (or a dataset.json path) looks like; throws if none fits. */
export function detectLayout(path: string): LayoutKind {
  const root = rootOf(path)
  const dj = join(root, 'dataset.json')
  if (existsSync(dj)) {
    const j = readDatasetJson(dj)
    if ('channel_names' in j) return 'nnunet'
    if (Array.isArray(j.training) && j.training.length > 0) {
      const first = j.training[0] as { image?: unknown }
      if (typeof first?.image === 'string') {
        const p = resolveIn(root, first.image)
        if (!isFile(p)) {
          const ch0 = p.replace(NIFTI_EXT, (m) => `_0000${m}`)
          if (isFile(ch0)) return 'nnunet'
        }
      }
    }
    return 'msd'
  }
  if (proposePairRules(root).length > 0) return 'pairs'
  throw new DsdError(
    'LAYOUT_UNKNOWN',
    `${root}: no dataset.json and no image/label pairs found; point at an MSD or nnU-Net folder, or a folder with pairs such as images/<case>.nii.gz + labels/<case>.nii.gz`,
    { path: root },
  )
}

function rootOf(path: string): string {
  const abs = resolve(path)
  if (!existsSync(abs)) {
    throw new DsdError('DATASET_NOT_FOUND', `${abs}: no such file or folder; check the path`, {
      path: abs,
    })
  }
  return statSync(abs).isFile() ? dirname(abs) : abs
}

/** Parse a dataset folder with the given (or detected) layout. */
export function parseLayout(
  path: string,
  opts: { layout?: LayoutKind | 'auto'; rule?: PairRule } = {},
): ParsedLayout {
  const root = rootOf(path)
  const layout = !opts.layout || opts.layout === 'auto' ? detectLayout(root) : opts.layout
  if (layout === 'msd') return parseMsd(root)
  if (layout === 'nnunet') return parseNnunet(root)
  return parsePairs(root, opts.rule)
}

function finishLayout(p: ParsedLayout): ParsedLayout {
  p.cases.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const seen = new Map<string, CaseEntry>()
  const unique: CaseEntry[] = []
  for (const c of p.cases) {
    if (seen.has(c.id)) {
      p.problems.push({
        caseId: c.id,
        severity: 'error',
        code: 'DUPLICATE_CASE',
        message: `${c.images[0]}: case ID "${c.id}" appears twice; rename one of the files so every case has its own ID`,
      })
      continue
    }
    seen.set(c.id, c)
    unique.push(c)
  }
  p.cases = unique
  // Attach patients.
  const known = new Set(unique.map((c) => c.id))
  for (const [patient, ids] of Object.entries(p.patients)) {
    for (const id of ids) {
      const c = seen.get(id)
      if (c) c.patient = patient
      else if (!known.has(id))
        p.problems.push({
          caseId: id,
          severity: 'warning',
          code: 'PATIENT_UNKNOWN_CASE',
          message: `dataset.json: patient "${patient}" lists case "${id}", which is not in the dataset; remove it from "patients"`,
        })
    }
  }
  if (unique.length === 0) {
    throw new DsdError(
      'DATASET_EMPTY',
      `${p.root}: no usable cases found (${p.problems.length} problem(s)${p.problems[0] ? `, first: ${p.problems[0].message}` : ''})`,
      { root: p.root, problems: p.problems },
    )
  }
  return p
}

/** A layout described by a dataset.json (MSD, nnU-Net): name, description and patients come from it. */
function datasetJsonLayout(
  layout: 'msd' | 'nnunet',
  root: string,
  file: string,
  j: ReturnType<typeof readDatasetJson>,
  found: Pick<ParsedLayout, 'channels' | 'labels' | 'cases' | 'problems'>,
): ParsedLayout {
  return finishLayout({
    layout,
    root,
    name: typeof j.name === 'string' ? j.name : basename(root),
    description: typeof j.description === 'string' ? j.description : '',
    channels: found.channels,
    labels: found.labels,
    cases: found.cases,
    patients: parsePatients(j.patients, file),
    problems: found.problems,
  })
}

function parseMsd(root: string): ParsedLayout {
  const file = join(root, 'dataset.json')
  if (!existsSync(file)) {
    throw new DsdError(
      'DATASET_JSON_MISSING',
      `${root}: no dataset.json; an MSD dataset needs one (or import with --layout pairs)`,
      { root },
      `${root}: no dataset.json; an MSD dataset needs one (or import it with the layout "Image/label pairs in one folder")`,
    )
  }
  const j = readDatasetJson(file)
  if (!('modality' in j))
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: "modality" is missing; MSD lists the channels as {"0": "MRI"}`,
      { file },
    )
  if (!('labels' in j))
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: "labels" is missing; add {"0": "background", "1": "…"}`,
      { file },
    )
  if (!Array.isArray(j.training))
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: "training" must be a list of {"image": …, "label": …}`,
      { file },
    )
  const channels = numberedNames(j.modality, file, 'modality')
  const labels = parseLabels(j.labels, file)
  const problems: LayoutProblem[] = []
  const cases: CaseEntry[] = []
  j.training.forEach((t: unknown, i: number) => {
    const e = t as { image?: unknown; label?: unknown }
    if (!e || typeof e.image !== 'string' || typeof e.label !== 'string') {
      problems.push({
        caseId: null,
        severity: 'error',
        code: 'DATASET_JSON_ENTRY',
        message: `${file}: training[${i}] needs "image" and "label" paths; fix that entry`,
      })
      return
    }
    const image = resolveIn(root, e.image)
    const label = resolveIn(root, e.label)
    const id = stripVolumeExt(image)
    if (!isFile(image)) {
      problems.push({
        caseId: id,
        severity: 'error',
        code: 'IMAGE_MISSING',
        message: `${image}: listed in dataset.json (training[${i}]) but missing; restore the file or remove the entry`,
      })
      return
    }
    if (!isFile(label)) {
      problems.push({
        caseId: id,
        severity: 'error',
        code: 'LABEL_MISSING',
        message: `${label}: listed in dataset.json (training[${i}]) but missing; restore the file or remove the entry`,
      })
      return
    }
    cases.push({ id, images: [image], label })
  })
  if (typeof j.numTraining === 'number' && j.numTraining !== j.training.length) {
    problems.push({
      caseId: null,
      severity: 'warning',
      code: 'NUM_TRAINING_MISMATCH',
      message: `${file}: "numTraining" says ${j.numTraining} but "training" lists ${j.training.length} cases; update numTraining`,
    })
  }
  // Files on disk that dataset.json does not list.
  const listed = new Set(cases.flatMap((c) => [c.images[0], c.label!]))
  for (const sub of ['imagesTr', 'labelsTr']) {
    for (const f of listDir(join(root, sub))) {
      const p = join(root, sub, f)
      if (isVisibleVolume(f) && !listed.has(p) && !problems.some((x) => x.message.startsWith(p))) {
        problems.push({
          caseId: stripVolumeExt(f),
          severity: 'info',
          code: 'UNLISTED_FILE',
          message: `${p}: on disk but not in dataset.json "training"; add it to dataset.json to import it`,
        })
      }
    }
  }
  return datasetJsonLayout('msd', root, file, j, { channels, labels, cases, problems })
}

function parseNnunet(root: string): ParsedLayout {
  const file = join(root, 'dataset.json')
  if (!existsSync(file)) {
    throw new DsdError(
      'DATASET_JSON_MISSING',
      `${root}: no dataset.json; an nnU-Net raw dataset needs one with "channel_names", "labels" and "file_ending"`,
      { root },
    )
  }
  const j = readDatasetJson(file)
  const chField = 'channel_names' in j ? 'channel_names' : 'modality'
  if (!(chField in j))
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: "channel_names" is missing; add {"0": "CT"} (one entry per channel)`,
      { file },
    )
  if (!('labels' in j))
    throw new DsdError(
      'DATASET_JSON_INVALID',
      `${file}: "labels" is missing; add {"background": 0, "…": 1}`,
      { file },
    )
  const channels = numberedNames(j[chField], file, chField)
  const labels = parseLabels(j.labels, file)
  const ending = typeof j.file_ending === 'string' ? j.file_ending : '.nii.gz'
  const imagesDir = join(root, 'imagesTr')
  const labelsDir = join(root, 'labelsTr')
  if (!existsSync(imagesDir))
    throw new DsdError(
      'DATASET_FOLDER_MISSING',
      `${imagesDir}: missing; an nnU-Net raw dataset keeps its images in imagesTr/<case>_0000${ending}`,
      { root },
    )
  const problems: LayoutProblem[] = []
  const byCase = new Map<string, Map<number, string>>()
  const pat = new RegExp(`^(.+)_(\\d{4})${ending.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)
  for (const f of listDir(imagesDir)) {
    if (f.startsWith('.')) continue
    const m = pat.exec(f)
    if (!m) {
      if (isVisibleVolume(f))
        problems.push({
          caseId: stripVolumeExt(f),
          severity: 'warning',
          code: 'BAD_CHANNEL_NAME',
          message: `${join(imagesDir, f)}: not named <case>_XXXX${ending}; rename it (e.g. ${stripVolumeExt(f)}_0000${ending}) to import it`,
        })
      continue
    }
    const map = byCase.get(m[1]) ?? new Map<number, string>()
    map.set(Number(m[2]), join(imagesDir, f))
    byCase.set(m[1], map)
  }
  const cases: CaseEntry[] = []
  for (const [id, chans] of byCase) {
    const images: string[] = []
    const missing: number[] = []
    for (let c = 0; c < channels.length; c++) {
      const p = chans.get(c)
      if (p) images.push(p)
      else missing.push(c)
    }
    const extra = [...chans.keys()].filter((c) => c >= channels.length)
    if (extra.length) {
      problems.push({
        caseId: id,
        severity: 'warning',
        code: 'EXTRA_CHANNEL',
        message: `${chans.get(extra[0])}: channel ${extra.join(', ')} is not declared in dataset.json "${chField}" (${channels.length} channel(s)); declare it or remove the file — it is ignored`,
      })
    }
    if (missing.length) {
      const want = join(imagesDir, `${id}_${String(missing[0]).padStart(4, '0')}${ending}`)
      problems.push({
        caseId: id,
        severity: 'error',
        code: 'MISSING_CHANNEL',
        message: `${want}: missing channel ${missing.map((c) => `${c} (${channels[c]})`).join(', ')} of case ${id}; add the file(s) — the case is skipped`,
      })
      continue
    }
    const label = join(labelsDir, `${id}${ending}`)
    if (!isFile(label)) {
      problems.push({
        caseId: id,
        severity: 'error',
        code: 'LABEL_MISSING',
        message: `${label}: missing label for case ${id}; add it to labelsTr — the case is skipped`,
      })
      continue
    }
    cases.push({ id, images, label })
  }
  for (const f of listDir(labelsDir)) {
    if (!isVisibleVolume(f)) continue
    const id = f.endsWith(ending) ? f.slice(0, -ending.length) : stripVolumeExt(f)
    if (!byCase.has(id)) {
      problems.push({
        caseId: id,
        severity: 'warning',
        code: 'LABEL_WITHOUT_IMAGE',
        message: `${join(labelsDir, f)}: no image ${id}_0000${ending} in imagesTr; add the image or remove the label`,
      })
    }
  }
  const numTraining = j.numTraining
  if (typeof numTraining === 'number' && numTraining !== byCase.size) {
    problems.push({
      caseId: null,
      severity: 'warning',
      code: 'NUM_TRAINING_MISMATCH',
      message: `${file}: "numTraining" says ${numTraining} but imagesTr holds ${byCase.size} cases; update numTraining`,
    })
  }
  const ts = listDir(join(root, 'imagesTs')).filter(isVisibleVolume)
  if (ts.length) {
    problems.push({
      caseId: null,
      severity: 'info',
      code: 'TEST_IMAGES_SKIPPED',
      message: `${join(root, 'imagesTs')}: ${ts.length} test image file(s) without labels are not imported`,
    })
  }
  return datasetJsonLayout('nnunet', root, file, j, { channels, labels, cases, problems })
}

// ---------------------------------------------------------------------------------------------
// pairs

/**
 * A naming rule: two path templates relative to the dataset folder, each with one `{id}` in
 * the file name, e.g. `{ image: 'images/{id}.nii.gz', label: 'labels/{id}.nii.gz' }` or
 * `{ image: '{id}_image.nii.gz', label: '{id}_label.nii.gz' }`.
 */
export interface PairRule {
  image: string
  label: string
}

/** `images/{id}.nii.gz=labels/{id}.nii.gz` ⇄ PairRule. */
export function formatPairRule(r: PairRule): string {
  return `${r.image}=${r.label}`
}

export function parsePairRule(text: string): PairRule {
  const parts = text.split('=')
  const bad = () =>
    new DsdError(
      'PAIR_RULE_INVALID',
      `pair rule "${text}" must look like "images/{id}.nii.gz=labels/{id}.nii.gz" (image template = label template, each with one {id} in the file name)`,
      { rule: text },
    )
  if (parts.length !== 2) throw bad()
  const [image, label] = parts.map((p) => p.trim())
  for (const t of [image, label]) {
    if (t.split('{id}').length !== 2 || basename(t).split('{id}').length !== 2) throw bad()
  }
  if (image === label) throw bad()
  return { image, label }
}

function templateRegex(t: string): { dir: string; re: RegExp } {
  const dir = dirname(t)
  const name = basename(t)
  const [pre, post] = name.split('{id}').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  return { dir: dir === '.' ? '' : dir, re: new RegExp(`^${pre}(.+?)${post}$`) }
}

function matchTemplate(root: string, t: string): Map<string, string> {
  const { dir, re } = templateRegex(t)
  const out = new Map<string, string>()
  for (const f of listDir(join(root, dir))) {
    if (f.startsWith('.')) continue
    const m = re.exec(f)
    if (m && isFile(join(root, dir, f))) out.set(m[1], join(root, dir, f))
  }
  return out
}

/** Candidate rule with how many pairs it matches. */
export interface PairRuleCandidate {
  rule: PairRule
  pairs: number
  unmatchedImages: number
  unmatchedLabels: number
}

/** Propose naming rules for a folder of pairs, best first (most pairs matched). */
export function proposePairRules(path: string): PairRuleCandidate[] {
  const root = rootOf(path)
  const entries = listDir(root)
  const dirs = entries.filter((e) => !e.startsWith('.') && statSync(join(root, e)).isDirectory())
  const files = entries.filter((e) => isVisibleVolume(e) && isFile(join(root, e)))
  const candidates: PairRule[] = []
  const imageDirs = dirs.filter((d) =>
    /^(images?|imagesTr|imgs?|scans?|volumes?|ct|mri?)$/i.test(d),
  )
  const labelDirs = dirs.filter((d) =>
    /^(labels?|labelsTr|masks?|segs?|segmentations?|gt|ground[_-]?truth)$/i.test(d),
  )
  for (const idir of imageDirs) {
    for (const ldir of labelDirs) {
      const exts = new Set(
        listDir(join(root, idir))
          .filter(isVisibleVolume)
          .map((f) => f.slice(stripVolumeExt(f).length)),
      )
      for (const ext of exts) {
        candidates.push({ image: `${idir}/{id}${ext}`, label: `${ldir}/{id}${ext}` })
        for (const [is, ls] of [
          ['_0000', ''],
          ['_image', '_label'],
          ['_img', '_seg'],
          ['', '_seg'],
          ['', '_label'],
          ['', '_mask'],
        ]) {
          if (is || ls)
            candidates.push({ image: `${idir}/{id}${is}${ext}`, label: `${ldir}/{id}${ls}${ext}` })
        }
      }
    }
  }
  const exts = new Set(files.map((f) => f.slice(stripVolumeExt(f).length)))
  for (const ext of exts) {
    for (const [is, ls] of [
      ['_image', '_label'],
      ['_img', '_seg'],
      ['_image', '_seg'],
      ['', '_seg'],
      ['', '_label'],
      ['', '_mask'],
      ['', '_gt'],
      ['_ct', '_seg'],
      ['_t1', '_seg'],
    ]) {
      candidates.push({ image: `{id}${is}${ext}`, label: `{id}${ls}${ext}` })
    }
  }
  const out: PairRuleCandidate[] = []
  for (const rule of candidates) {
    const imgs = matchTemplate(root, rule.image)
    const labs = matchTemplate(root, rule.label)
    // With an empty image suffix the image pattern also matches label files: drop those.
    for (const [id, p] of imgs) if ([...labs.values()].includes(p)) imgs.delete(id)
    let pairs = 0
    for (const id of imgs.keys()) if (labs.has(id)) pairs++
    if (pairs > 0)
      out.push({
        rule,
        pairs,
        unmatchedImages: imgs.size - pairs,
        unmatchedLabels: labs.size - pairs,
      })
  }
  out.sort(
    (a, b) =>
      b.pairs - a.pairs ||
      a.unmatchedImages + a.unmatchedLabels - (b.unmatchedImages + b.unmatchedLabels),
  )
  return out
}

function parsePairs(root: string, rule?: PairRule): ParsedLayout {
  if (!rule) {
    const best = proposePairRules(root)[0]
    if (!best) {
      throw new DsdError(
        'PAIRS_NOT_FOUND',
        `${root}: found no image/label pairs; name them like images/<case>.nii.gz + labels/<case>.nii.gz or <case>_image.nii.gz + <case>_label.nii.gz, or give a rule`,
        { root },
      )
    }
    rule = best.rule
  }
  const imgs = matchTemplate(root, rule.image)
  const labs = matchTemplate(root, rule.label)
  for (const [id, p] of imgs) if ([...labs.values()].includes(p)) imgs.delete(id)
  const problems: LayoutProblem[] = []
  const cases: CaseEntry[] = []
  for (const [id, image] of imgs) {
    const label = labs.get(id)
    if (!label) {
      problems.push({
        caseId: id,
        severity: 'error',
        code: 'LABEL_MISSING',
        message: `${image}: no label ${join(root, rule.label.replace('{id}', id))}; add it or fix the naming rule — the case is skipped`,
      })
      continue
    }
    cases.push({ id, images: [image], label })
  }
  for (const [id, label] of labs) {
    if (!imgs.has(id))
      problems.push({
        caseId: id,
        severity: 'warning',
        code: 'LABEL_WITHOUT_IMAGE',
        message: `${label}: no image ${join(root, rule.image.replace('{id}', id))}; add it or remove the label`,
      })
  }
  return finishLayout({
    layout: 'pairs',
    root,
    name: basename(root),
    description: '',
    channels: ['image'],
    labels: {},
    cases,
    patients: {},
    problems,
    rule,
  })
}

/** A path relative to the dataset root, with forward slashes (for manifests). */
export function relPath(root: string, p: string): string {
  return relative(root, p).split(sep).join('/')
}
