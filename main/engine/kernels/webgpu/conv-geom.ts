/**
 * Geometry of a channels-last 3-D convolution `y[b, o, co] = Σ_{k, ci} x[b, o·s − p + k, ci] ·
 * w[k, ci, co]` (filter `[kd, kh, kw, ci, co]`, the TF.js `conv3d` layout), shared by the
 * forward, input-gradient and filter-gradient kernels. The 2×2×2 stride-2 transposed
 * convolution is the input gradient of the (k = 2, s = 2, p = 0) convolution, so it uses the
 * same geometry with the roles of x and y swapped.
 */

export type V3 = [number, number, number]

export interface ConvGeom {
  /** Batch. */
  B: number
  /** Input spatial size [D, H, W]. */
  inSize: V3
  /** Input channels. */
  CI: number
  /** Output spatial size. */
  outSize: V3
  /** Output channels. */
  CO: number
  /** Kernel size. */
  k: V3
  /** Stride. */
  s: V3
  /** Zero padding in front of each axis (the back padding follows from the sizes). */
  p: V3
}

/** Output length for input `n`, kernel `k`, stride `s`, pads `front` and `back`. */
export function outLen(n: number, k: number, s: number, front: number, back: number): number {
  return Math.floor((n + front + back - k) / s) + 1
}

/** Geometry from shapes: x `[B, D, H, W, CI]`, filter `[kd, kh, kw, CI, CO]`, stride, pads. */
export function convGeom(
  xShape: readonly number[],
  filterShape: readonly number[],
  s: V3,
  front: V3,
  back: V3,
): ConvGeom {
  const [B, D, H, W, CI] = xShape as number[]
  const [kd, kh, kw, fci, CO] = filterShape as number[]
  if (fci !== CI) {
    throw new Error(
      `conv3d: input has ${CI} channels but the filter [${filterShape}] expects ${fci}`,
    )
  }
  const k: V3 = [kd!, kh!, kw!]
  const inSize: V3 = [D!, H!, W!]
  const outSize = inSize.map((n, i) => outLen(n, k[i]!, s[i]!, front[i]!, back[i]!)) as V3
  if (outSize.some((n) => n < 1)) {
    throw new Error(`conv3d: input [${xShape}] is too small for the filter [${filterShape}]`)
  }
  return { B: B!, inSize, CI: CI!, outSize, CO: CO!, k, s, p: front }
}

/** Pads `[front, back]` per axis that reproduce TF 'same' for this input, kernel and stride. */
export function samePads(inSize: V3, k: V3, s: V3): [V3, V3] {
  const front: number[] = []
  const back: number[] = []
  for (let i = 0; i < 3; i++) {
    const o = Math.ceil(inSize[i]! / s[i]!)
    const total = Math.max((o - 1) * s[i]! + k[i]! - inSize[i]!, 0)
    front.push(Math.floor(total / 2))
    back.push(total - Math.floor(total / 2))
  }
  return [front as V3, back as V3]
}

/** Back padding implied by a geometry (may be negative when the input has unused tail voxels). */
export function backPads(g: ConvGeom): V3 {
  return [0, 1, 2].map(
    (i) => (g.outSize[i]! - 1) * g.s[i]! + g.k[i]! - g.inSize[i]! - g.p[i]!,
  ) as V3
}

/**
 * The sub-pixel phases of the input gradient: input voxel `i` receives contributions only
 * from kernel taps `k ≡ (i + p) mod s`, so the input grid splits into `s_d·s_h·s_w` phases
 * with a fixed tap set each. Per axis and phase `r`: the first input index `e` of the phase,
 * how many input indices `n` it has, the tap count `t`, and the output offset `c` such that
 * tap number `j` of input index `e + s·q` reads output `c + q − j` (tap `k = r + s·j`).
 */
export interface AxisPhase {
  r: number
  e: number
  n: number
  t: number
  c: number
}

export function axisPhases(n: number, k: number, s: number, p: number): AxisPhase[] {
  const out: AxisPhase[] = []
  for (let r = 0; r < s; r++) {
    const e = (((r - p) % s) + s) % s
    const count = e >= n ? 0 : Math.ceil((n - e) / s)
    const taps = r >= k ? 0 : Math.ceil((k - r) / s)
    out.push({ r, e, n: count, t: taps, c: (e + p - r) / s })
  }
  return out
}
