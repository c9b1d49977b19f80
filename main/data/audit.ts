/**
 * The dataset doctor. Per case: label values found vs declared (and vs the label map),
 * image/label geometry agreement (shape, spacing, origin, direction, with tolerances),
 * missing or extra channels, empty labels, NaN/Inf, label files stored as floats; across
 * cases: intensity ranges that are outliers (robust, on a log scale), mixed datatypes,
 * classes never seen; geometry notes (non-RAS, oblique, anisotropic) as info. Each finding
 * names the file and the fix; the summary has one line per problem kind.
 */
import { DsdError } from '../errors'
import { readVolume, readVolumeHeader, type VolumeHeader } from './volume-io'
import { labelHistogram, type LabelMap } from './labels'
import type { CaseEntry } from './layouts'
import { orientationCodes } from './resample'

/** One finding. */
export interface AuditFinding {
  caseId: string | null
  severity: 'error' | 'warning' | 'info'
  code: string
  message: string
}

/** Per-case numbers the audit measured. */
export interface CaseStats {
  id: string
  datatype: string
  /** Per channel. */
  min: number[]
  max: number[]
  mean: number[]
  labelDatatype: string | null
  /** Raw label value → voxel count. */
  labelCounts: Record<string, number> | null
}

/** The audit report (`AuditReport` in the contract, plus stats). */
export interface AuditResult {
  datasetId: string
  cases: number
  findings: AuditFinding[]
  /** One line per problem kind with its count, examples and the fix. */
  summary: string[]
  counts: { error: number; warning: number; info: number }
  stats: CaseStats[]
  /** Wall time in milliseconds. */
  ms: number
}

/** What the audit needs to know about a dataset. */
export interface AuditInput {
  datasetId: string
  cases: CaseEntry[]
  /** Declared channel names. */
  channels: string[]
  /** Declared labels (value → name). */
  labels: Record<string, string>
  /** The label map applied on load (remapping), if any. */
  labelMap?: LabelMap | null
  /** Problems already known (import), included in the report. */
  known?: AuditFinding[]
}

/** Options: progress `(done, total, caseId)`, cancellation, parallel reads. */
export interface AuditOptions {
  onProgress?: (done: number, total: number, caseId: string) => void
  signal?: AbortSignal
  concurrency?: number
  /** Max/min spacing ratio above which a case is "anisotropic" (info). Default 3. */
  anisotropy?: number
  /** Decades (log10) from the dataset median beyond which an intensity range is an outlier. Default 1. */
  outlierDecades?: number
}

/** Tolerances for image/label geometry agreement. */
export const GEOMETRY_TOLERANCE = {
  /** Relative spacing difference. */
  spacing: 1e-4,
  /** Origin difference in mm. */
  originMm: 1e-3,
  /** Direction cosine difference. */
  direction: 1e-4,
}

/** The fix for each finding code, used in the summary. */
const FIXES: Record<string, string> = {
  LABEL_FLOAT:
    'values are whole numbers, so they load correctly; re-save the label files as uint8 to be safe',
  LABEL_NOT_INTEGER: 're-export the label map without interpolation (nearest neighbour)',
  LABEL_UNDECLARED:
    'declare the values in dataset.json "labels" or add a remapping (`dsd import --labels`), e.g. value → 0 to ignore',
  LABEL_CLASS_UNUSED: 'check the label declaration; a class never present cannot be learned',
  LABEL_EMPTY: 'check the label file; an empty label map gives no foreground crops',
  LABEL_GRID_MISMATCH:
    'resample the label map onto the image grid (nearest neighbour) or pair it with the right image',
  LABEL_MULTICHANNEL: 'save the label as a single 3D volume of class values',
  CHANNEL_GRID_MISMATCH: 'resample every channel onto the first channel’s grid',
  MISSING_CHANNEL: 'add the missing channel files (or fix the channel list in dataset.json)',
  EXTRA_CHANNEL: 'declare the extra channel in dataset.json or remove it',
  IMAGE_NOT_FINITE: 'replace NaN/Inf voxels (e.g. with 0) and re-export the image',
  IMAGE_NOT_3D: 'export the whole 3D volume, not a slice',
  INTENSITY_OUTLIER:
    'intensity scales differ between cases; per-case z-score normalisation (the default for MRI) handles it — for CT check RescaleSlope/Intercept',
  INTENSITY_CONSTANT: 'the image is constant; check the file',
  CT_NOT_HU:
    'CT should be in Hounsfield units (air ≈ −1000); apply RescaleSlope/Intercept when converting',
  MIXED_DATATYPES: 'harmless with per-case normalisation; note it when comparing raw intensities',
  ORIGINS_DIFFER: 'harmless: each case keeps its own affine',
  ORIENTATION_NON_RAS: 'nothing to do: cases are reoriented to RAS on load',
  OBLIQUE: 'nothing to do: resampling keeps the direction cosines; metrics use the voxel grid',
  ANISOTROPIC: 'consider a target spacing in preprocessing, and patch sizes that respect it',
  FILE_UNREADABLE: 'fix or re-export the file',
  FILE_CHANGED: 're-import the dataset: the files changed since import',
}

function finding(
  caseId: string | null,
  severity: AuditFinding['severity'],
  code: string,
  message: string,
): AuditFinding {
  return { caseId, severity, code, message }
}

function compareGeometry(img: VolumeHeader, lab: VolumeHeader): string | null {
  if (img.shape.some((v, i) => v !== lab.shape[i]))
    return `shape ${lab.shape.join('×')} vs image ${img.shape.join('×')}`
  for (let a = 0; a < 3; a++) {
    if (
      Math.abs(img.spacing[a] - lab.spacing[a]) >
      GEOMETRY_TOLERANCE.spacing * Math.max(img.spacing[a], 1e-6)
    ) {
      return `spacing ${lab.spacing.map((s) => +s.toFixed(5)).join('×')} vs image ${img.spacing.map((s) => +s.toFixed(5)).join('×')} mm`
    }
  }
  for (let r = 0; r < 3; r++) {
    if (Math.abs(img.affine[r][3] - lab.affine[r][3]) > GEOMETRY_TOLERANCE.originMm) {
      const o = (h: VolumeHeader) => [0, 1, 2].map((i) => +h.affine[i][3].toFixed(4)).join(', ')
      return `origin (${o(lab)}) vs image (${o(img)}) mm`
    }
  }
  for (let c = 0; c < 3; c++) {
    for (let r = 0; r < 3; r++) {
      const d = img.affine[r][c] / img.spacing[c] - lab.affine[r][c] / lab.spacing[c]
      if (Math.abs(d) > GEOMETRY_TOLERANCE.direction)
        return `direction ${orientationCodes(lab.affine as never)} vs image ${orientationCodes(img.affine as never)} (cosines differ by ${Math.abs(d).toExponential(1)})`
    }
  }
  return null
}

function isOblique(h: VolumeHeader): boolean {
  for (let c = 0; c < 3; c++) {
    const col = [0, 1, 2].map((r) => Math.abs(h.affine[r][c]) / h.spacing[c])
    if (Math.max(...col) < 1 - 1e-3) return true
  }
  return false
}

interface CaseResult {
  findings: AuditFinding[]
  stats: CaseStats | null
  header: VolumeHeader | null
}

async function auditCase(c: CaseEntry, input: AuditInput, opts: AuditOptions): Promise<CaseResult> {
  const findings: AuditFinding[] = []
  const add = (sev: AuditFinding['severity'], code: string, msg: string) =>
    findings.push(finding(c.id, sev, code, msg))
  // Headers
  const headers: VolumeHeader[] = []
  for (const p of c.images) {
    try {
      headers.push(await readVolumeHeader(p))
    } catch (e) {
      add('error', 'FILE_UNREADABLE', (e as Error).message)
      return { findings, stats: null, header: null }
    }
  }
  let labelHeader: VolumeHeader | null = null
  if (c.label) {
    try {
      labelHeader = await readVolumeHeader(c.label)
    } catch (e) {
      add('error', 'FILE_UNREADABLE', (e as Error).message)
    }
  }
  const h0 = headers[0]
  for (const [i, h] of headers.entries()) {
    if (h.ndim < 3 || h.shape[2] < 2)
      add(
        'error',
        'IMAGE_NOT_3D',
        `${c.images[i]}: the image is ${h.ndim}D (${h.shape.join('×')}); ${FIXES.IMAGE_NOT_3D}`,
      )
    if (i > 0) {
      const diff = compareGeometry(h0, h)
      if (diff)
        add(
          'error',
          'CHANNEL_GRID_MISMATCH',
          `${c.images[i]}: channel ${i} grid differs from channel 0 (${diff}); ${FIXES.CHANNEL_GRID_MISMATCH}`,
        )
    }
  }
  const nChannels = headers.reduce((s, h) => s + h.channels, 0)
  const declared = input.channels.length
  if (nChannels < declared)
    add(
      'error',
      'MISSING_CHANNEL',
      `${c.images[0]}: ${nChannels} channel(s) but dataset.json declares ${declared} (${input.channels.join(', ')}); ${FIXES.MISSING_CHANNEL}`,
    )
  else if (nChannels > declared)
    add(
      'error',
      'EXTRA_CHANNEL',
      `${c.images[0]}: ${nChannels} channels but dataset.json declares ${declared} (${input.channels.join(', ')}); ${FIXES.EXTRA_CHANNEL}`,
    )
  if (labelHeader) {
    if (labelHeader.channels > 1)
      add(
        'error',
        'LABEL_MULTICHANNEL',
        `${c.label}: the label has ${labelHeader.channels} channels; ${FIXES.LABEL_MULTICHANNEL}`,
      )
    const diff = compareGeometry(h0, labelHeader)
    if (diff)
      add(
        'error',
        'LABEL_GRID_MISMATCH',
        `${c.label}: label grid differs from the image ${c.images[0]} (${diff}); ${FIXES.LABEL_GRID_MISMATCH}`,
      )
    if (labelHeader.datatype === 'float32' || labelHeader.datatype === 'float64') {
      add(
        'warning',
        'LABEL_FLOAT',
        `${c.label}: label stored as ${labelHeader.datatype}; ${FIXES.LABEL_FLOAT}`,
      )
    }
  }
  // Geometry notes
  const codes = orientationCodes(h0.affine as never)
  if (codes !== 'RAS')
    add(
      'info',
      'ORIENTATION_NON_RAS',
      `${c.images[0]}: axes are ${codes}, not RAS; ${FIXES.ORIENTATION_NON_RAS}`,
    )
  if (isOblique(h0))
    add(
      'info',
      'OBLIQUE',
      `${c.images[0]}: oblique direction cosines (not aligned with the scanner axes); ${FIXES.OBLIQUE}`,
    )
  const ratio = Math.max(...h0.spacing) / Math.min(...h0.spacing)
  if (ratio > (opts.anisotropy ?? 3)) {
    add(
      'info',
      'ANISOTROPIC',
      `${c.images[0]}: spacing ${h0.spacing.map((s) => +s.toFixed(4)).join('×')} mm is anisotropic (${ratio.toFixed(1)}:1); ${FIXES.ANISOTROPIC}`,
    )
  }
  if (opts.signal?.aborted) return { findings, stats: null, header: h0 }
  // Full reads: intensities
  const stats: CaseStats = {
    id: c.id,
    datatype: h0.datatype,
    min: [],
    max: [],
    mean: [],
    labelDatatype: labelHeader?.datatype ?? null,
    labelCounts: null,
  }
  for (const p of c.images) {
    let vol
    try {
      vol = await readVolume(p)
    } catch (e) {
      add('error', 'FILE_UNREADABLE', (e as Error).message)
      return { findings, stats: null, header: h0 }
    }
    const n = vol.shape[0] * vol.shape[1] * vol.shape[2]
    for (let ch = 0; ch < vol.channels; ch++) {
      let min = Infinity
      let max = -Infinity
      let sum = 0
      let bad = 0
      let firstBad = -1
      const d = vol.data
      for (let i = ch * n, e = (ch + 1) * n; i < e; i++) {
        const v = d[i]
        if (v - v !== 0) {
          if (firstBad < 0) firstBad = i - ch * n
          bad++
          continue
        }
        if (v < min) min = v
        if (v > max) max = v
        sum += v
      }
      if (bad)
        add(
          'error',
          'IMAGE_NOT_FINITE',
          `${p}: ${bad} voxel(s) of channel ${ch} are NaN or Inf (first at voxel ${firstBad}); ${FIXES.IMAGE_NOT_FINITE}`,
        )
      stats.min.push(min)
      stats.max.push(max)
      stats.mean.push(n - bad > 0 ? sum / (n - bad) : NaN)
      if (max === min)
        add(
          'warning',
          'INTENSITY_CONSTANT',
          `${p}: channel ${ch} is constant (${min}); ${FIXES.INTENSITY_CONSTANT}`,
        )
    }
  }
  // Full read: label values
  if (c.label && labelHeader) {
    try {
      const lab = await readVolume(c.label)
      const hist = labelHistogram(lab.data)
      stats.labelCounts = Object.fromEntries([...hist].map(([v, n]) => [String(v), n]))
      const nonInt = [...hist.keys()].filter((v) => !Number.isInteger(v))
      if (nonInt.length)
        add(
          'error',
          'LABEL_NOT_INTEGER',
          `${c.label}: non-integer label value(s) ${nonInt.slice(0, 5).join(', ')}; ${FIXES.LABEL_NOT_INTEGER}`,
        )
      const allowed = input.labelMap?.remap
        ? new Set(Object.keys(input.labelMap.remap).map(Number))
        : new Set(Object.keys(input.labelMap?.classes ?? input.labels).map(Number))
      const outside = [...hist.entries()].filter(([v]) => Number.isInteger(v) && !allowed.has(v))
      if (outside.length) {
        add(
          'error',
          'LABEL_UNDECLARED',
          `${c.label}: label value(s) ${outside.map(([v, n]) => `${v} (${n} voxels)`).join(', ')} are not declared (${[...allowed].join(', ')}); ${FIXES.LABEL_UNDECLARED}`,
        )
      }
      const fg = [...hist.entries()].filter(([v]) => v !== 0).reduce((s, [, n]) => s + n, 0)
      const fgAfterMap = input.labelMap?.remap
        ? [...hist.entries()]
            .filter(([v]) => (input.labelMap!.remap![String(v)] ?? 0) !== 0)
            .reduce((s, [, n]) => s + n, 0)
        : fg
      if (fgAfterMap === 0)
        add('warning', 'LABEL_EMPTY', `${c.label}: no foreground voxels; ${FIXES.LABEL_EMPTY}`)
    } catch (e) {
      add('error', 'FILE_UNREADABLE', (e as Error).message)
    }
  }
  return { findings, stats, header: h0 }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Run the audit over every case (in parallel, `concurrency` at a time). */
export async function auditDataset(
  input: AuditInput,
  opts: AuditOptions = {},
): Promise<AuditResult> {
  const t0 = Date.now()
  const total = input.cases.length
  const results: CaseResult[] = new Array(total)
  let next = 0
  let done = 0
  const cancelled = () =>
    new DsdError(
      'CANCELLED',
      `audit of ${input.datasetId} cancelled after ${done} of ${total} cases; nothing was written`,
      { done, total },
    )
  const worker = async () => {
    while (next < total) {
      if (opts.signal?.aborted) throw cancelled()
      const i = next++
      results[i] = await auditCase(input.cases[i], input, opts)
      done++
      opts.onProgress?.(done, total, input.cases[i].id)
    }
  }
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, total)) }, worker),
  )
  if (opts.signal?.aborted) throw cancelled()

  const findings: AuditFinding[] = [...(input.known ?? [])]
  for (const r of results) findings.push(...r.findings)
  const stats = results.map((r) => r.stats).filter((s): s is CaseStats => !!s)

  // Dataset-level: intensity outliers per channel, on log10 of the range.
  const decades = opts.outlierDecades ?? 1
  const nch = Math.max(0, ...stats.map((s) => s.max.length))
  for (let ch = 0; ch < nch; ch++) {
    const withRange = stats.filter(
      (s) => Number.isFinite(s.max[ch]) && Number.isFinite(s.min[ch]) && s.max[ch] > s.min[ch],
    )
    if (withRange.length < 5) continue
    const logs = withRange.map((s) => Math.log10(s.max[ch] - s.min[ch]))
    const med = median(logs)
    const lowCut = 10 ** (med - decades)
    const highCut = 10 ** (med + decades)
    const outliers = withRange.filter((_, i) => Math.abs(logs[i] - med) > decades)
    for (const s of outliers) {
      const range = s.max[ch] - s.min[ch]
      const c = input.cases.find((x) => x.id === s.id)!
      findings.push(
        finding(
          s.id,
          'warning',
          'INTENSITY_OUTLIER',
          `${c.images[0]}: channel ${ch} (${input.channels[ch] ?? ch}) ranges ${fmt(s.min[ch])}…${fmt(s.max[ch])}, ${range > highCut ? 'far above' : 'far below'} the dataset's typical range (median ${fmt(10 ** med)}; expected ${fmt(lowCut)}–${fmt(highCut)}); ${FIXES.INTENSITY_OUTLIER}`,
        ),
      )
    }
    if (input.channels[ch] && /\bCT\b/i.test(input.channels[ch])) {
      for (const s of withRange) {
        if (s.min[ch] >= 0) {
          const c = input.cases.find((x) => x.id === s.id)!
          findings.push(
            finding(
              s.id,
              'warning',
              'CT_NOT_HU',
              `${c.images[0]}: CT minimum is ${fmt(s.min[ch])}, not Hounsfield units; ${FIXES.CT_NOT_HU}`,
            ),
          )
        }
      }
    }
  }
  // Mixed datatypes
  const byType = new Map<string, string[]>()
  for (const s of stats) byType.set(s.datatype, [...(byType.get(s.datatype) ?? []), s.id])
  if (byType.size > 1) {
    findings.push(
      finding(
        null,
        'info',
        'MIXED_DATATYPES',
        `images use ${byType.size} datatypes (${[...byType].map(([t, ids]) => `${ids.length} ${t}`).join(', ')}); ${FIXES.MIXED_DATATYPES}`,
      ),
    )
  }
  // Origins
  const origins = new Map<string, number>()
  for (const r of results) {
    if (!r.header) continue
    const key = [0, 1, 2].map((i) => +r.header!.affine[i][3].toFixed(3)).join(', ')
    origins.set(key, (origins.get(key) ?? 0) + 1)
  }
  if (origins.size > 1 && origins.size <= 5) {
    findings.push(
      finding(
        null,
        'info',
        'ORIGINS_DIFFER',
        `cases have ${origins.size} different origins (${[...origins].map(([o, n]) => `(${o}) in ${n}`).join(', ')}); ${FIXES.ORIGINS_DIFFER}`,
      ),
    )
  }
  // Declared classes never present
  const seen = new Set<number>()
  for (const s of stats) for (const v of Object.keys(s.labelCounts ?? {})) seen.add(Number(v))
  if (stats.some((s) => s.labelCounts)) {
    const declaredValues = input.labelMap?.remap
      ? Object.entries(input.labelMap.remap)
          .filter(([, c]) => c !== 0)
          .map(([v]) => Number(v))
      : Object.keys(input.labels)
          .map(Number)
          .filter((v) => v !== 0)
    for (const v of declaredValues) {
      if (!seen.has(v))
        findings.push(
          finding(
            null,
            'warning',
            'LABEL_CLASS_UNUSED',
            `label value ${v} (${input.labels[String(v)] ?? 'declared'}) occurs in no label file; ${FIXES.LABEL_CLASS_UNUSED}`,
          ),
        )
    }
  }
  const order = { error: 0, warning: 1, info: 2 }
  findings.sort((a, b) => order[a.severity] - order[b.severity])
  const counts = { error: 0, warning: 0, info: 0 }
  for (const f of findings) counts[f.severity]++
  return {
    datasetId: input.datasetId,
    cases: total,
    findings,
    summary: summarise(findings, total),
    counts,
    stats,
    ms: Date.now() - t0,
  }
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v)
  if (Math.abs(v) >= 1e5) return v.toExponential(2)
  return String(+v.toFixed(2))
}

/** One line per finding code: severity, how many cases, examples, the fix. */
export function summarise(findings: AuditFinding[], totalCases: number): string[] {
  const groups = new Map<string, AuditFinding[]>()
  for (const f of findings) groups.set(f.code, [...(groups.get(f.code) ?? []), f])
  const lines: string[] = []
  for (const [code, fs] of groups) {
    const ids = [...new Set(fs.map((f) => f.caseId).filter((x): x is string => !!x))]
    const sev = fs[0].severity
    const who = ids.length
      ? `${ids.length} of ${totalCases} case(s): ${ids.slice(0, 4).join(', ')}${ids.length > 4 ? ', …' : ''}`
      : 'dataset'
    const fix = FIXES[code] ?? fs[0].message
    lines.push(`${sev.toUpperCase()} ${code} — ${who} — fix: ${fix}`)
  }
  if (!lines.length) lines.push(`OK — ${totalCases} case(s), no problems found`)
  return lines
}
