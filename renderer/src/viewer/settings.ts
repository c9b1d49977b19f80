/**
 * The viewer's plain settings and shapes (no Cornerstone import, so stores and pages can use
 * them without loading the viewer).
 */
export type Orientation = 'axial' | 'sagittal' | 'coronal'
export const ORIENTATIONS: Orientation[] = ['axial', 'sagittal', 'coronal']

export interface LabelSpec {
  value: number
  name: string
  color: [number, number, number]
}

export interface CaseSpec {
  /** Unique per patient case (one frame of reference for its image and label maps). */
  key: string
  image: string
  groundTruth: string | null
  /** One prediction volume path per column. */
  predictions: string[]
  labels: LabelSpec[]
}

export type WindowPreset = 'auto' | 'ct-soft' | 'ct-bone' | 'full'

export interface DisplaySettings {
  groundTruth: boolean
  prediction: boolean
  errors: boolean
  hiddenLabels: number[]
  /** Per label value, 0–1 (default 0.5). */
  opacity: Record<number, number>
  window: WindowPreset
}

/** W/L presets in HU: CT soft tissue W400 L40, bone W1800 L400; MRI auto = the 1st–99th percentile. */
export const WINDOWS: Record<'ct-soft' | 'ct-bone', { width: number; level: number }> = {
  'ct-soft': { width: 400, level: 40 },
  'ct-bone': { width: 1800, level: 400 },
}

/** Colours of the false-positive / false-negative map. */
export const ERROR_COLORS = {
  /** predicted, not in the ground truth */
  fp: [255, 140, 0] as [number, number, number],
  /** in the ground truth, not predicted */
  fn: [0, 170, 255] as [number, number, number],
  /** both labelled, with different labels */
  swap: [255, 255, 0] as [number, number, number],
}

export const DEFAULT_OPACITY = 0.5
