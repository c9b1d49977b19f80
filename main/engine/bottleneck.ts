/**
 * The DSD bottleneck module (`DeepUp` in the reference code; dsd-spec.md §2):
 *
 *   h = conv1x1x1(x) + b            (C_in → K, with bias, no norm, no activation)
 *   s = 1:  h = convT1x1x1(h) + b'  (K → K)
 *   s > 1:  repeat log2(s) times: h = convT2x2x2,stride2(h) + b'   (the SAME weights each time)
 *
 * The output is raw logits at s× the input resolution. Kernel layouts are TF.js ones:
 * `convW [1,1,1,C_in,K]` (conv3d), `upW [k,k,k,K,K]` (conv3dTranspose: `[.., out, in]`).
 */
import { DsdError } from '../errors'
import { convTranspose3dK1, convTranspose3dK2S2, pointwise } from './ops'
import type { Rng } from './random'
import { tf } from './tf'

/** The four weight tensors of one bottleneck module. */
export interface BottleneckWeights {
  /** `[1, 1, 1, C_in, K]` */
  convW: tf.Tensor5D
  /** `[K]` */
  convB: tf.Tensor1D
  /** `[k, k, k, K, K]`, k = 2 (k = 1 when s = 1); layout `[kd, kh, kw, out, in]` */
  upW: tf.Tensor5D
  /** `[K]` */
  upB: tf.Tensor1D
}

/**
 * Initialisation: 'pytorch' = PyTorch's default for Conv3d/ConvTranspose3d (UNETR):
 * weights and biases U(−1/√fan_in, 1/√fan_in); 'kaiming' = Kaiming-normal with a = 0.01 and
 * zero biases (nnU-Net / DynUNet `initialize_weights`). fan_in follows PyTorch: C_in for the
 * conv, K·k³ for the transposed conv (PyTorch reads dim 1 of `[in, out, k, k, k]`).
 */
export type BottleneckInit = 'pytorch' | 'kaiming'

/** Upsampling kernel size for scale `s`: 1 when s = 1, else 2. */
export function upKernel(scale: number): 1 | 2 {
  return scale === 1 ? 1 : 2
}

/** Number of times the up-convolution is applied: log2(s) (once for s = 1). */
export function upRepeats(scale: number): number {
  checkScale(scale)
  return scale === 1 ? 1 : Math.round(Math.log2(scale))
}

function checkScale(scale: number): void {
  if (!Number.isInteger(scale) || scale < 1 || (scale & (scale - 1)) !== 0) {
    throw new DsdError(
      'BOTTLENECK_SCALE',
      `bottleneck: scale must be a power of two (1, 2, 4, 8, 16), got ${scale}`,
      { scale },
    )
  }
}

/** Parameter count of one module: `C_in·K + K + K²·k³ + K` (spec §2). */
export function paramCount(cin: number, classes: number, scale: number): number {
  checkScale(scale)
  const k = upKernel(scale)
  return cin * classes + classes + classes * classes * k ** 3 + classes
}

/** Weight shapes of a module, by name. */
export function weightShapes(
  cin: number,
  classes: number,
  scale: number,
): Record<keyof BottleneckWeights, number[]> {
  const k = upKernel(scale)
  return {
    convW: [1, 1, 1, cin, classes],
    convB: [classes],
    upW: [k, k, k, classes, classes],
    upB: [classes],
  }
}

/** Draw initial weights (plain Float32Arrays, deterministic for a given `rng` state). */
export function initWeightArrays(
  cin: number,
  classes: number,
  scale: number,
  rng: Rng,
  init: BottleneckInit,
): Record<keyof BottleneckWeights, Float32Array> {
  checkScale(scale)
  const k = upKernel(scale)
  const fanConv = cin
  const fanUp = classes * k ** 3
  const nConv = cin * classes
  const nUp = classes * classes * k ** 3
  if (init === 'pytorch') {
    const bc = 1 / Math.sqrt(fanConv)
    const bu = 1 / Math.sqrt(fanUp)
    return {
      convW: rng.uniformArray(nConv, -bc, bc),
      convB: rng.uniformArray(classes, -bc, bc),
      upW: rng.uniformArray(nUp, -bu, bu),
      upB: rng.uniformArray(classes, -bu, bu),
    }
  }
  const gain = Math.sqrt(2 / (1 + 0.01 * 0.01))
  return {
    convW: rng.normalArray(nConv, 0, gain / Math.sqrt(fanConv)),
    convB: new Float32Array(classes),
    upW: rng.normalArray(nUp, 0, gain / Math.sqrt(fanUp)),
    upB: new Float32Array(classes),
  }
}

/** One DSD bottleneck module: `forward(x [b,d,h,w,C_in]) → logits [b, s·d, s·h, s·w, K]`. */
export class Bottleneck {
  readonly cin: number
  readonly classes: number
  readonly scale: number

  constructor(
    readonly weights: BottleneckWeights,
    scale: number,
  ) {
    checkScale(scale)
    const { convW, convB, upW, upB } = weights
    const k = upKernel(scale)
    this.cin = convW.shape[3]
    this.classes = convW.shape[4]
    this.scale = scale
    const want = weightShapes(this.cin, this.classes, scale)
    const got = { convW: convW.shape, convB: convB.shape, upW: upW.shape, upB: upB.shape }
    for (const key of Object.keys(want) as (keyof BottleneckWeights)[]) {
      if (want[key].join() !== got[key].join()) {
        throw new DsdError(
          'BOTTLENECK_SHAPE',
          `bottleneck (scale ${scale}, k = ${k}): ${key} must be [${want[key]}], got [${got[key]}]`,
          { key, want: want[key], got: got[key] },
        )
      }
    }
  }

  /**
   * Create a module with freshly initialised trainable variables. `name` prefixes the
   * variable names (`${name}/convW`, ...), which must be unique in the TF.js engine.
   */
  static create(
    cin: number,
    classes: number,
    scale: number,
    rng: Rng,
    init: BottleneckInit,
    name?: string,
  ): Bottleneck {
    const arrays = initWeightArrays(cin, classes, scale, rng, init)
    const shapes = weightShapes(cin, classes, scale)
    const v = (key: keyof BottleneckWeights) =>
      tf.variable(tf.tensor(arrays[key], shapes[key]), true, name ? `${name}/${key}` : undefined)
    return new Bottleneck(
      {
        convW: v('convW') as tf.Variable<tf.Rank.R5>,
        convB: v('convB') as tf.Variable<tf.Rank.R1>,
        upW: v('upW') as tf.Variable<tf.Rank.R5>,
        upB: v('upB') as tf.Variable<tf.Rank.R1>,
      },
      scale,
    )
  }

  /** Logits at s× resolution. The same up weights are applied log2(s) times. */
  forward(x: tf.Tensor5D): tf.Tensor5D {
    if (x.shape[4] !== this.cin) {
      throw new DsdError(
        'BOTTLENECK_INPUT',
        `bottleneck: input has ${x.shape[4]} channels, module expects ${this.cin}`,
        { got: x.shape, cin: this.cin },
      )
    }
    const { convW, convB, upW, upB } = this.weights
    let h = pointwise(x, convW, convB)
    if (this.scale === 1) return convTranspose3dK1(h, upW, upB)
    for (let i = 0; i < upRepeats(this.scale); i++) h = convTranspose3dK2S2(h, upW, upB)
    return h
  }

  /** The weights by name (`convW`, `convB`, `upW`, `upB`), e.g. for checkpoints. */
  namedWeights(prefix = ''): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {}
    for (const [k, t] of Object.entries(this.weights)) out[prefix + k] = t
    return out
  }

  /** Number of parameters. */
  paramCount(): number {
    return paramCount(this.cin, this.classes, this.scale)
  }

  /** Dispose the weight tensors/variables. */
  dispose(): void {
    for (const t of Object.values(this.weights)) t.dispose()
  }
}
