/**
 * Label maps: the classes a network trains on and how the voxel values stored in label files
 * map onto them (e.g. MMWHS stores 205, 420, … and trains on 1–7). The map lives in the
 * dataset manifest and is applied on load.
 */
import { DsdError } from '../errors'
import type { VoxelArray } from './volume'

/** Classes and an optional value → class remapping. */
export interface LabelMap {
  /** Class index (as a string key, "0" = background) → name. Indices are 0..K-1. */
  classes: Record<string, string>
  /**
   * Stored voxel value → class index. When absent, values are used as class indices directly.
   * When present, it must list every value that occurs (0 included); others are errors.
   */
  remap?: Record<string, number>
}

/** MMWHS (dsd-spec §5, `ConvertLabel`): 205…850 → 1…7, the stray 421 → 0. */
export function mmwhsLabelMap(): LabelMap {
  return {
    classes: {
      '0': 'background',
      '1': 'myocardium',
      '2': 'left atrium',
      '3': 'left ventricle',
      '4': 'right atrium',
      '5': 'right ventricle',
      '6': 'ascending aorta',
      '7': 'pulmonary artery',
    },
    remap: {
      '0': 0,
      '205': 1,
      '420': 2,
      '500': 3,
      '550': 4,
      '600': 5,
      '820': 6,
      '850': 7,
      '421': 0,
    },
  }
}

/** Named presets for `setLabelMap` / the CLI. */
export const LABEL_PRESETS: Record<string, () => LabelMap> = { mmwhs: mmwhsLabelMap }

/** The number of classes K (max class index + 1). */
export function classCount(map: LabelMap): number {
  return Math.max(...Object.keys(map.classes).map(Number)) + 1
}

/** Throws a DsdError (naming `where`) when the map is malformed. */
export function validateLabelMap(map: LabelMap, where = 'label map'): void {
  const bad = (msg: string) => new DsdError('LABEL_MAP_INVALID', `${where}: ${msg}`, { where })
  if (!map || typeof map !== 'object' || !map.classes || typeof map.classes !== 'object') {
    throw bad('expected { classes: { "0": "background", … }, remap? }')
  }
  const idx = Object.keys(map.classes).map(Number)
  if (idx.length === 0) throw bad('no classes; declare at least "0": "background"')
  for (const k of Object.keys(map.classes)) {
    const n = Number(k)
    if (!Number.isInteger(n) || n < 0 || n > 255 || String(n) !== k) {
      throw bad(`class key "${k}" is not an integer 0–255; classes are numbered 0, 1, 2, …`)
    }
  }
  const k = Math.max(...idx) + 1
  for (let c = 0; c < k; c++) {
    if (!(String(c) in map.classes))
      throw bad(`class ${c} is missing; classes must be numbered 0..${k - 1} without gaps`)
  }
  if (map.remap) {
    for (const [v, c] of Object.entries(map.remap)) {
      if (!Number.isFinite(Number(v))) throw bad(`remap key "${v}" is not a number`)
      if (!Number.isInteger(c) || !(String(c) in map.classes)) {
        throw bad(`remap ${v} → ${c}: ${c} is not a declared class (0..${k - 1})`)
      }
    }
  }
}

/** The label map a dataset declares (values used as they are). */
export function identityLabelMap(classes: Record<string, string>): LabelMap {
  return { classes: { ...classes } }
}

/** Distinct values in a label volume with their voxel counts, sorted by value. */
export function labelHistogram(data: VoxelArray): Map<number, number> {
  const counts = new Map<number, number>()
  // Fast path for small integer types.
  if (data instanceof Uint8Array || data instanceof Int8Array) {
    const h = new Float64Array(256)
    const off = data instanceof Int8Array ? 128 : 0
    for (let i = 0; i < data.length; i++) h[data[i] + off]++
    for (let v = 0; v < 256; v++) if (h[v]) counts.set(v - off, h[v])
  } else {
    let last = NaN
    let lastCount = 0
    for (let i = 0; i < data.length; i++) {
      const v = data[i]
      if (v === last) {
        lastCount++
        continue
      }
      if (lastCount) counts.set(last, (counts.get(last) ?? 0) + lastCount)
      last = v
      lastCount = 1
    }
    if (lastCount) counts.set(last, (counts.get(last) ?? 0) + lastCount)
  }
  return new Map([...counts.entries()].sort((a, b) => a[0] - b[0]))
}

/**
 * Map stored label values to class indices. Non-integer values (e.g. 0.5 in a float label
 * file), NaN and values the map does not cover are errors naming `file` and the fix.
 */
export function applyLabelMap(data: VoxelArray, map: LabelMap, file: string): Uint8Array {
  const k = classCount(map)
  const hist = labelHistogram(data)
  const lut = new Map<number, number>()
  const unmapped: string[] = []
  for (const [v, n] of hist) {
    if (!Number.isInteger(v)) {
      throw new DsdError(
        'LABEL_NOT_INTEGER',
        `${file}: label value ${v} (${n} voxels) is not an integer; a label map must hold class numbers — re-export it without interpolation`,
        { file, value: v, voxels: n },
      )
    }
    const c = map.remap ? map.remap[String(v)] : v >= 0 && v < k ? v : undefined
    if (c === undefined) unmapped.push(`${v} (${n} voxels)`)
    else lut.set(v, c)
  }
  if (unmapped.length) {
    const declared = map.remap ? Object.keys(map.remap).join(', ') : `0–${k - 1}`
    throw new DsdError(
      'LABEL_UNMAPPED',
      `${file}: label value(s) ${unmapped.join(', ')} are outside the label map (${declared}); add them to the dataset's label remapping (e.g. value → 0 to ignore) or fix the file`,
      { file, values: [...hist.keys()].filter((v) => !lut.has(v)) },
    )
  }
  const out = new Uint8Array(data.length)
  if (data instanceof Uint8Array && !map.remap) {
    out.set(data)
    return out
  }
  // Identity needs no lookup; otherwise a small table when values are small integers.
  let last = NaN
  let lastC = 0
  for (let i = 0; i < data.length; i++) {
    const v = data[i]
    if (v !== last) {
      last = v
      lastC = lut.get(v)!
    }
    out[i] = lastC
  }
  return out
}
