/**
 * Cross-validation splits: seeded k-fold with patient grouping, the two presets that reproduce
 * the paper (MMWHS and BraTS, dsd-spec §5), a JSON split file stamped with a content hash, and
 * validation of hand-edited split files.
 */
import { createHash } from 'node:crypto'
import { DsdError } from '../errors'
import { PyRandom } from './pyrandom'

/** One fold: the cases it trains on and the cases it validates on. */
export interface SplitFold {
  train: string[]
  val: string[]
}

/** How a split was made. */
export type SplitMethod = 'kfold' | 'mmwhs' | 'brats' | 'custom'

/** The split file (`datasets/<id>/splits/<name>.json`). */
export interface SplitFile {
  format: 'dsd-split'
  version: 1
  name: string
  datasetId: string | null
  method: SplitMethod
  /** The seed used (k-fold, BraTS); null for MMWHS (no randomness) and custom splits. */
  seed: number | null
  folds: SplitFold[]
  /** Held-out test cases, never in any fold. */
  test: string[]
  /** Patient → cases, for the cases that share a patient (kept together). */
  groups: Record<string, string[]>
  createdAt: string
  /** `sha256:<hex>` of the canonical partition (see `splitHash`). */
  hash: string
}

/** One problem found in a split. */
export interface SplitProblem {
  severity: 'error' | 'warning'
  message: string
}

/** Sort strings by UTF-16 code units (what Python's `sorted` does for ASCII names). */
export function codePointSort(ids: readonly string[]): string[] {
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

/**
 * The content hash: sha256 of the canonical JSON of the partition only — for each fold its
 * sorted train and val IDs, then the sorted test IDs. Names, seeds, dates and the order of IDs
 * inside a list do not change it; moving one case does.
 */
export function splitHash(split: Pick<SplitFile, 'folds' | 'test'>): string {
  const canonical = JSON.stringify({
    folds: split.folds.map((f) => ({ train: codePointSort(f.train), val: codePointSort(f.val) })),
    test: codePointSort(split.test),
  })
  return 'sha256:' + createHash('sha256').update(canonical).digest('hex')
}

/** Options shared by every split builder. */
export interface SplitBase {
  name?: string
  datasetId?: string | null
  /** Patient → case IDs; cases of one patient always land on the same side. */
  groups?: Record<string, string[]>
}

function finish(
  method: SplitMethod,
  seed: number | null,
  folds: SplitFold[],
  test: string[],
  base: SplitBase,
  defaultName: string,
): SplitFile {
  const split: SplitFile = {
    format: 'dsd-split',
    version: 1,
    name: base.name ?? defaultName,
    datasetId: base.datasetId ?? null,
    method,
    seed,
    folds,
    test,
    groups: base.groups ?? {},
    createdAt: new Date().toISOString(),
    hash: '',
  }
  split.hash = splitHash(split)
  return split
}

function checkUnique(ids: readonly string[]): void {
  const seen = new Set<string>()
  for (const id of ids) {
    if (seen.has(id)) {
      throw new DsdError(
        'SPLIT_DUPLICATE_CASE',
        `case "${id}" is listed twice; case IDs must be unique`,
        { id },
      )
    }
    seen.add(id)
  }
}

/** Options for `kfoldSplit`. */
export interface KFoldOptions extends SplitBase {
  folds: number
  seed: number
  /** Cases held out as a test set (not in any fold). */
  test?: string[]
}

/**
 * Seeded k-fold. The units are patients (a group) or single cases; they are sorted, shuffled
 * with Python's `random.Random(seed).shuffle`, stably ordered largest group first, and each
 * goes to the fold with the fewest cases so far (ties → the lowest fold). With no groups this
 * is a round-robin over the shuffled cases, so fold sizes differ by at most one.
 */
export function kfoldSplit(caseIds: readonly string[], opts: KFoldOptions): SplitFile {
  checkUnique(caseIds)
  const k = opts.folds
  if (!Number.isInteger(k) || k < 2) {
    throw new DsdError('SPLIT_BAD_FOLDS', `--folds must be an integer ≥ 2, got ${k}`, { folds: k }, `Folds must be a whole number ≥ 2, got ${k}.`)
  }
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) {
    throw new DsdError(
      'SPLIT_BAD_SEED',
      `the seed must be a non-negative integer, got ${opts.seed}`,
      {
        seed: opts.seed,
      },
    )
  }
  const all = new Set(caseIds)
  const test = opts.test ?? []
  for (const t of test) {
    if (!all.has(t))
      throw new DsdError('SPLIT_UNKNOWN_CASE', `test case "${t}" is not in the dataset`, { id: t })
  }
  const testSet = new Set(test)
  const groups = opts.groups ?? {}
  const unitOf = new Map<string, string>()
  for (const [patient, members] of Object.entries(groups)) {
    for (const m of members) {
      if (!all.has(m)) continue
      if (unitOf.has(m)) {
        throw new DsdError(
          'SPLIT_GROUP_OVERLAP',
          `case "${m}" belongs to two patients ("${unitOf.get(m)}" and "${patient}"); fix the patient grouping`,
          { id: m },
        )
      }
      unitOf.set(m, patient)
    }
  }
  // Units: patient groups (restricted to non-test members) and lone cases.
  const units = new Map<string, string[]>()
  for (const id of codePointSort(caseIds)) {
    if (testSet.has(id)) {
      const p = unitOf.get(id)
      if (p && groups[p].some((m) => all.has(m) && !testSet.has(m))) {
        throw new DsdError(
          'SPLIT_GROUP_SPLIT',
          `test case "${id}" shares patient "${p}" with cases outside the test set; hold out the whole patient`,
          { id, patient: p },
        )
      }
      continue
    }
    const key = unitOf.has(id) ? `patient:${unitOf.get(id)}` : `case:${id}`
    const list = units.get(key)
    if (list) list.push(id)
    else units.set(key, [id])
  }
  const order = [...units.keys()]
  if (order.length < k) {
    throw new DsdError(
      'SPLIT_TOO_FEW_CASES',
      `cannot make ${k} folds from ${order.length} ${Object.keys(groups).length ? 'patients' : 'cases'}; use --folds ${Math.max(2, order.length)} or fewer`,
      { folds: k, units: order.length },
      `cannot make ${k} folds from ${order.length} ${Object.keys(groups).length ? 'patients' : 'cases'}; choose ${Math.max(2, order.length)} folds or fewer`,
    )
  }
  new PyRandom(opts.seed).shuffle(order)
  const sized = order.map((key, i) => ({ key, i, n: units.get(key)!.length }))
  sized.sort((a, b) => b.n - a.n || a.i - b.i)
  const val: string[][] = Array.from({ length: k }, () => [])
  for (const u of sized) {
    let best = 0
    for (let f = 1; f < k; f++) if (val[f].length < val[best].length) best = f
    val[best].push(...units.get(u.key)!)
  }
  const pool = codePointSort(caseIds).filter((id) => !testSet.has(id))
  const folds = val.map((v) => {
    const vs = new Set(v)
    return { train: pool.filter((id) => !vs.has(id)), val: codePointSort(v) }
  })
  return finish(
    'kfold',
    opts.seed,
    folds,
    codePointSort(test),
    opts,
    `kfold-${k}-seed-${opts.seed}`,
  )
}

/** Options for the MMWHS preset. */
export interface MmwhsOptions extends SplitBase {
  /** Validation cases per fold (`train_split`, 4 in the reference code). */
  perFold?: number
  /** Sort key per case (defaults to the ID); the reference sorts image file names. */
  sortKey?: (id: string) => string
}

/**
 * MMWHS preset (dsd-spec §5): cases sorted by file name; fold k validates sorted positions
 * 4(k−1)+1 … 4k and trains on the rest. 20 volumes give 5 folds; a remainder forms a last,
 * smaller fold. No test set, no randomness.
 */
export function mmwhsSplit(caseIds: readonly string[], opts: MmwhsOptions = {}): SplitFile {
  checkUnique(caseIds)
  const per = opts.perFold ?? 4
  const sorted = sortBy(caseIds, opts.sortKey)
  if (sorted.length < 2 * per) {
    throw new DsdError(
      'SPLIT_TOO_FEW_CASES',
      `the MMWHS preset needs at least ${2 * per} cases (${per} per validation fold), the dataset has ${sorted.length}`,
      { cases: sorted.length },
    )
  }
  const folds: SplitFold[] = []
  for (let s = 0; s < sorted.length; s += per) {
    const v = sorted.slice(s, s + per)
    folds.push({ train: sorted.filter((_, i) => i < s || i >= s + per), val: v })
  }
  return finish('mmwhs', null, folds, [], opts, 'mmwhs')
}

/** Options for the BraTS preset. */
export interface BratsOptions extends SplitBase {
  /** Last N sorted cases held out as test (`train_split`, 24). */
  testCount?: number
  /** Last N shuffled cases used for validation (72). */
  valCount?: number
  /** `random.Random(seed)` seed (0). */
  seed?: number
  sortKey?: (id: string) => string
}

/**
 * BraTS preset (dsd-spec §5): cases sorted; the last 24 are the test set; the other cases are
 * shuffled exactly as `random.Random(0).shuffle` does; the last 72 of them validate and the
 * rest train. One fold.
 */
export function bratsSplit(caseIds: readonly string[], opts: BratsOptions = {}): SplitFile {
  checkUnique(caseIds)
  const testCount = opts.testCount ?? 24
  const valCount = opts.valCount ?? 72
  const seed = opts.seed ?? 0
  const sorted = sortBy(caseIds, opts.sortKey)
  if (sorted.length <= testCount + valCount) {
    throw new DsdError(
      'SPLIT_TOO_FEW_CASES',
      `the BraTS preset holds out ${testCount} test and ${valCount} validation cases and needs more than ${testCount + valCount} cases; the dataset has ${sorted.length}`,
      { cases: sorted.length },
    )
  }
  const test = sorted.slice(sorted.length - testCount)
  const rest = sorted.slice(0, sorted.length - testCount)
  new PyRandom(seed).shuffle(rest)
  const val = rest.slice(rest.length - valCount)
  const train = rest.slice(0, rest.length - valCount)
  return finish('brats', seed, [{ train, val }], test, opts, 'brats')
}

function sortBy(ids: readonly string[], key?: (id: string) => string): string[] {
  if (!key) return codePointSort(ids)
  const keyed = ids.map((id) => ({ id, k: key(id) }))
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return keyed.map((x) => x.id)
}

/**
 * Check a split (typically a hand-edited file) against the dataset's cases:
 * in every fold, train / val / test are disjoint, cover every case exactly once and name only
 * known cases; no case validates in two folds; with several folds every non-test case validates
 * once (warning otherwise); no patient is split across sides (an error for k-fold and custom
 * splits, a warning for the paper presets, which ignore patients by design).
 */
export function validateSplit(
  split: Pick<SplitFile, 'folds' | 'test' | 'method'> & { groups?: Record<string, string[]> },
  caseIds: readonly string[],
  groups: Record<string, string[]> = split.groups ?? {},
): SplitProblem[] {
  const problems: SplitProblem[] = []
  const err = (message: string) => problems.push({ severity: 'error', message })
  const warn = (message: string) => problems.push({ severity: 'warning', message })
  const all = new Set(caseIds)
  if (split.folds.length === 0) err('the split has no folds; add at least one { train, val } fold')
  const dupIn = (list: string[], where: string) => {
    const seen = new Set<string>()
    for (const id of list) {
      if (seen.has(id)) err(`case "${id}" is listed twice in ${where}; list each case once`)
      seen.add(id)
      if (!all.has(id))
        err(
          `${where} names "${id}", which is not a case of this dataset; remove it or fix the name`,
        )
    }
  }
  dupIn(split.test, 'the test set')
  const testSet = new Set(split.test)
  const valFold = new Map<string, number>()
  split.folds.forEach((f, i) => {
    const name = `fold ${i}`
    dupIn(f.train, `${name} train`)
    dupIn(f.val, `${name} val`)
    const tr = new Set(f.train)
    const va = new Set(f.val)
    for (const id of f.val) {
      if (tr.has(id))
        err(
          `case "${id}" is in both train and val of ${name}; this leaks validation data — keep it in one of them`,
        )
      if (testSet.has(id))
        err(`case "${id}" is in val of ${name} and in the test set; remove it from one`)
      const prev = valFold.get(id)
      if (prev !== undefined)
        err(`case "${id}" validates in fold ${prev} and ${name}; a case validates in one fold only`)
      else valFold.set(id, i)
    }
    for (const id of f.train) {
      if (testSet.has(id))
        err(
          `case "${id}" is in train of ${name} and in the test set; this leaks test data — remove it from train`,
        )
    }
    const missing = [...all].filter((id) => !tr.has(id) && !va.has(id) && !testSet.has(id))
    if (missing.length) {
      err(
        `${name} leaves out ${missing.length} case(s) (${preview(missing)}); put each in train, val or the test set`,
      )
    }
    // Patient grouping.
    for (const [patient, members] of Object.entries(groups)) {
      const sides = new Set(
        members
          .filter((m) => all.has(m))
          .map((m) => (testSet.has(m) ? 'test' : va.has(m) ? 'val' : tr.has(m) ? 'train' : 'none')),
      )
      if (sides.size > 1) {
        const msg = `patient "${patient}" is split across ${[...sides].join(' and ')} in ${name} (${preview(members)}); keep a patient's cases on one side to avoid leakage`
        if (split.method === 'mmwhs' || split.method === 'brats') warn(msg)
        else err(msg)
      }
    }
  })
  if (split.folds.length > 1) {
    const never = [...all].filter((id) => !testSet.has(id) && !valFold.has(id))
    if (never.length) {
      warn(
        `${never.length} case(s) never validate in any fold (${preview(never)}); in k-fold every case validates once`,
      )
    }
  }
  return problems
}

function preview(ids: string[]): string {
  return ids.length <= 5
    ? ids.join(', ')
    : `${ids.slice(0, 5).join(', ')}, … ${ids.length - 5} more`
}

/**
 * Parse and check the structure of a split file's JSON text. Throws a DsdError naming `file`
 * for bad JSON or a wrong shape. Returns the split and whether its hash still matches (a
 * mismatch means the file was edited; callers re-stamp it after `validateSplit`).
 */
export function parseSplitFile(
  text: string,
  file: string,
): { split: SplitFile; hashMatches: boolean } {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    throw new DsdError(
      'SPLIT_BAD_JSON',
      `${file}: not valid JSON (${(e as Error).message}); fix the syntax or delete the file and create the split again`,
      { file },
    )
  }
  const bad = (what: string) =>
    new DsdError(
      'SPLIT_BAD_FORMAT',
      `${file}: ${what}; fix the file or create the split again with \`dsd split\``,
      {
        file,
      },
      `${file}: ${what}; fix the file, or delete the split and create it again on the Splits page`,
    )
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw bad('expected a JSON object')
  const o = raw as Record<string, unknown>
  if (o.format !== 'dsd-split') throw bad('"format" must be "dsd-split"')
  if (o.version !== 1)
    throw bad(`unsupported "version" ${JSON.stringify(o.version)} (this app reads version 1)`)
  const strList = (v: unknown, where: string): string[] => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      throw bad(`${where} must be a list of case IDs`)
    return v as string[]
  }
  if (!Array.isArray(o.folds)) throw bad('"folds" must be a list of { train, val }')
  const folds = o.folds.map((f, i) => {
    if (!f || typeof f !== 'object') throw bad(`folds[${i}] must be an object { train, val }`)
    const ff = f as Record<string, unknown>
    return {
      train: strList(ff.train, `folds[${i}].train`),
      val: strList(ff.val, `folds[${i}].val`),
    }
  })
  const test = o.test === undefined ? [] : strList(o.test, '"test"')
  const groups: Record<string, string[]> = {}
  if (o.groups !== undefined) {
    if (!o.groups || typeof o.groups !== 'object' || Array.isArray(o.groups))
      throw bad('"groups" must map patient → case IDs')
    for (const [k, v] of Object.entries(o.groups as Record<string, unknown>))
      groups[k] = strList(v, `groups["${k}"]`)
  }
  const methods: SplitMethod[] = ['kfold', 'mmwhs', 'brats', 'custom']
  const method = methods.includes(o.method as SplitMethod) ? (o.method as SplitMethod) : 'custom'
  const seed = typeof o.seed === 'number' && Number.isInteger(o.seed) ? o.seed : null
  const split: SplitFile = {
    format: 'dsd-split',
    version: 1,
    name: typeof o.name === 'string' ? o.name : '',
    datasetId: typeof o.datasetId === 'string' ? o.datasetId : null,
    method,
    seed,
    folds,
    test,
    groups,
    createdAt: typeof o.createdAt === 'string' ? o.createdAt : '',
    hash: typeof o.hash === 'string' ? o.hash : '',
  }
  const actual = splitHash(split)
  const hashMatches = split.hash === actual
  return { split, hashMatches }
}

/** The split file's JSON text (stable key order, 2-space indent, trailing newline). */
export function serializeSplit(split: SplitFile): string {
  const ordered: SplitFile = {
    format: 'dsd-split',
    version: 1,
    name: split.name,
    datasetId: split.datasetId,
    method: split.method,
    seed: split.seed,
    createdAt: split.createdAt,
    hash: splitHash(split),
    test: split.test,
    groups: split.groups,
    folds: split.folds,
  }
  return JSON.stringify(ordered, null, 2) + '\n'
}
