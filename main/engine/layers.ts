/**
 * Building blocks of the DSD backbones, as MONAI 0.9.1 defines them, channels-last.
 *
 * A network is described first and allocated second: each block registers the parameters it
 * needs (name, shape, initialiser) with a {@link ModelBuilder} and a summary row, without
 * creating any tensor. That lets `dsd model` and the parameter-count tests describe the
 * 100 M-parameter UNETR at 96³ instantly; `model.ts` then allocates the variables (named
 * `tf.variable`s) and each block's `apply` reads them through a {@link ParamLookup}.
 *
 * Every convolution of the Res/Basic/Up blocks has no bias; instance norm has no affine
 * parameters (MONAI `norm_name="instance"`); the activation is LeakyReLU(0.01).
 */
import { tf } from './tf'
import * as ops from './ops'
import { Bottleneck, upKernel, upRepeats } from './bottleneck'

type T5 = tf.Tensor5D

/** Which part of the network a parameter belongs to (for the backbone/DSD split of counts). */
export type ParamGroup = 'backbone' | 'dsd'

/**
 * How a parameter is initialised.
 * - `kaiming-normal`: PyTorch `kaiming_normal_(w, a)` with mode fan_in (std = √(2/(1+a²)/fanIn)).
 * - `uniform`: U(−bound, bound); PyTorch's default Conv/Linear init gives bound = 1/√fanIn
 *   for both weight and bias.
 * - `trunc-normal`: N(0, std²) truncated to [−2, 2] (MONAI ViT embeddings).
 */
export type Init =
  | { kind: 'kaiming-normal'; a: number; fanIn: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'trunc-normal'; std: number }
  | { kind: 'zeros' }
  | { kind: 'ones' }

/** One parameter of a described model. */
export interface ParamSpec {
  name: string
  shape: number[]
  init: Init
  group: ParamGroup
}

/** One row of a model summary (one block). */
export interface LayerRow {
  /** Block path, e.g. `downsamples.1` or `deep_3`. */
  name: string
  /** Block type, e.g. `UnetResBlock`. */
  type: string
  inChannels: number
  outChannels: number
  /** Output grid as a divisor of the patch size (16 = 1/16 resolution, 1 = full). */
  outScale: number
  /** Parameters this row owns (shared modules are counted once, on their first row). */
  params: number
  group: ParamGroup
  /** Free text, e.g. `stride 2` or `×8, shared with E4`. */
  note?: string
}

/** Weight-initialisation scheme of a backbone. */
export type InitScheme =
  /** DynUNet `initialize_weights`: Kaiming-normal a = 0.01 on every conv weight, zero biases. */
  | 'kaiming'
  /** PyTorch defaults: U(±1/√fanIn) for weights and biases (UNETR). */
  | 'torch'

/** Product of a shape. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

/**
 * Collects parameter specs and summary rows while a network is being described.
 * Parameter names are unique; registering a name twice is a programming error.
 */
export class ModelBuilder {
  readonly params: ParamSpec[] = []
  readonly rows: LayerRow[] = []
  private readonly names = new Set<string>()

  constructor(readonly scheme: InitScheme) {}

  /** Register one parameter; returns its name. */
  param(name: string, shape: number[], init: Init, group: ParamGroup): string {
    if (this.names.has(name)) throw new Error(`layers: parameter "${name}" registered twice`)
    this.names.add(name)
    this.params.push({ name, shape, init, group })
    return name
  }

  /** Register a summary row. */
  row(row: LayerRow): void {
    this.rows.push(row)
  }

  /** Parameters registered so far whose name starts with `prefix`. */
  countUnder(prefix: string): number {
    let n = 0
    for (const p of this.params) if (p.name.startsWith(prefix)) n += sizeOf(p.shape)
    return n
  }

  /** Weight init of a convolution with `fanIn` inputs per output under this scheme. */
  weightInit(fanIn: number): Init {
    return this.scheme === 'kaiming'
      ? { kind: 'kaiming-normal', a: 0.01, fanIn }
      : { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) }
  }

  /** Bias init of a convolution with `fanIn` inputs per output under this scheme. */
  biasInit(fanIn: number): Init {
    return this.scheme === 'kaiming'
      ? { kind: 'zeros' }
      : { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) }
  }
}

/** Reads a parameter tensor by its (model-local) name during a forward pass. */
export type ParamLookup = (name: string) => tf.Tensor

/**
 * The parameters of a 3D (transposed) convolution: a weight of `shape` and an optional bias,
 * both initialised from PyTorch's `fanIn` of that weight.
 */
abstract class ConvParams {
  readonly w: string
  readonly b: string | null

  protected constructor(
    mb: ModelBuilder,
    name: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    bias: boolean,
    group: ParamGroup,
    shape: number[],
    fanIn: number,
  ) {
    this.w = mb.param(`${name}.weight`, shape, mb.weightInit(fanIn), group)
    this.b = bias ? mb.param(`${name}.bias`, [outChannels], mb.biasInit(fanIn), group) : null
  }

  /** Parameter count. */
  get count(): number {
    return this.inChannels * this.outChannels * this.kernel ** 3 + (this.b ? this.outChannels : 0)
  }

  /** The weight and the bias (or null) of this layer from a parameter lookup. */
  protected tensors(p: ParamLookup): { w: T5; bias: tf.Tensor1D | null } {
    return { w: p(this.w) as T5, bias: this.b ? (p(this.b) as tf.Tensor1D) : null }
  }
}

/**
 * A 3D convolution parameter set: weight `[k, k, k, in, out]` (conv3d layout), optional bias.
 * `fanIn = in·k³` as PyTorch computes it for `Conv3d`.
 */
export class Conv extends ConvParams {
  constructor(
    mb: ModelBuilder,
    name: string,
    inChannels: number,
    outChannels: number,
    kernel: number,
    readonly stride: number,
    bias: boolean,
    group: ParamGroup,
  ) {
    super(mb, name, inChannels, outChannels, kernel, bias, group, [kernel, kernel, kernel, inChannels, outChannels], inChannels * kernel ** 3)
  }

  /**
   * Apply with MONAI's padding `(k − s + 1) / 2` (1 for 3³ kernels at stride 1 or 2, 0 for
   * 1³), so a stride-2 conv samples the same voxels as PyTorch (TF 'same' would not).
   */
  apply(p: ParamLookup, x: T5): T5 {
    const { w, bias } = this.tensors(p)
    if (this.kernel === 1 && this.stride === 1) return ops.pointwise(x, w, bias)
    // At stride 1 an odd kernel's TF 'same' padding is PyTorch's symmetric (k − 1) / 2 and
    // avoids an explicit pad (whose gradient is a slow rank-5 slice on the CPU backend).
    if (this.stride === 1 && this.kernel % 2 === 1) return ops.conv3d(x, w, bias, 1, 'same')
    const pad = Math.floor((this.kernel - this.stride + 1) / 2)
    return ops.conv3d(x, w, bias, this.stride, pad)
  }
}

/**
 * A transposed convolution with kernel = stride ∈ {1, 2}: weight `[k, k, k, out, in]`
 * (tf.conv3dTranspose layout). PyTorch computes `fanIn` of a `ConvTranspose3d` weight
 * `[in, out, k, k, k]` from its dim 1, i.e. `out·k³`; the initialisers follow that.
 */
export class ConvTranspose extends ConvParams {
  declare readonly kernel: 1 | 2

  constructor(
    mb: ModelBuilder,
    name: string,
    inChannels: number,
    outChannels: number,
    kernel: 1 | 2,
    bias: boolean,
    group: ParamGroup,
  ) {
    super(mb, name, inChannels, outChannels, kernel, bias, group, [kernel, kernel, kernel, outChannels, inChannels], outChannels * kernel ** 3)
  }

  apply(p: ParamLookup, x: T5): T5 {
    const { w, bias } = this.tensors(p)
    return this.kernel === 2
      ? ops.convTranspose3dK2S2(x, w, bias)
      : ops.convTranspose3dK1(x, w, bias)
  }
}

/** Common options of the convolutional blocks. */
export interface BlockOptions {
  /** LeakyReLU negative slope (MONAI default 0.01). */
  slope?: number
}

/** conv3³(stride) and conv3³ with a LeakyReLU slope: what MONAI's two U-Net blocks share. */
abstract class TwoConvBlock {
  readonly conv1: Conv
  readonly conv2: Conv
  protected readonly slope: number

  constructor(
    mb: ModelBuilder,
    readonly name: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly stride: number,
    group: ParamGroup = 'backbone',
    opts: BlockOptions = {},
  ) {
    this.slope = opts.slope ?? 0.01
    this.conv1 = new Conv(mb, `${name}.conv1`, inChannels, outChannels, 3, stride, false, group)
    this.conv2 = new Conv(mb, `${name}.conv2`, outChannels, outChannels, 3, 1, false, group)
  }

  get count(): number {
    return this.conv1.count + this.conv2.count
  }

  abstract apply(p: ParamLookup, x: T5): T5
}

/**
 * MONAI `UnetResBlock`: conv3³(stride) → IN → LReLU → conv3³ → IN, plus a 1×1×1 conv(stride)
 * → IN on the residual path when the channels or the stride change; add; LReLU.
 */
export class UnetResBlock extends TwoConvBlock {
  readonly conv3: Conv | null

  constructor(
    mb: ModelBuilder,
    name: string,
    inChannels: number,
    outChannels: number,
    stride: number,
    group: ParamGroup = 'backbone',
    opts: BlockOptions = {},
  ) {
    super(mb, name, inChannels, outChannels, stride, group, opts)
    const downsample = inChannels !== outChannels || stride !== 1
    this.conv3 = downsample
      ? new Conv(mb, `${name}.conv3`, inChannels, outChannels, 1, stride, false, group)
      : null
  }

  override get count(): number {
    return super.count + (this.conv3?.count ?? 0)
  }

  apply(p: ParamLookup, x: T5): T5 {
    return tf.tidy(() => {
      const h = ops.instanceNormLeakyRelu(this.conv1.apply(p, x), this.slope)
      // norm(conv2) + (norm(conv3(x)) | x), then LeakyReLU: one fused kernel on WebGPU
      const res = this.conv3 ? this.conv3.apply(p, x) : x
      return ops.instanceNormAddLeakyRelu(this.conv2.apply(p, h), res, this.conv3 !== null, this.slope)
    })
  }
}

/** MONAI `UnetBasicBlock`: conv3³(stride) → IN → LReLU → conv3³ → IN → LReLU. */
export class UnetBasicBlock extends TwoConvBlock {
  apply(p: ParamLookup, x: T5): T5 {
    return tf.tidy(() => {
      const h = ops.instanceNormLeakyRelu(this.conv1.apply(p, x), this.slope)
      return ops.instanceNormLeakyRelu(this.conv2.apply(p, h), this.slope)
    })
  }
}

/** A decoder step: transposed conv `x → up`, then a conv block on `[up, skip]` (channels). */
abstract class UpBlock {
  abstract readonly transpConv: ConvTranspose
  abstract readonly convBlock: { readonly count: number; apply(p: ParamLookup, x: T5): T5 }

  get count(): number {
    return this.transpConv.count + this.convBlock.count
  }

  apply(p: ParamLookup, x: T5, skip: T5): T5 {
    return tf.tidy(() => {
      const up = this.transpConv.apply(p, x)
      return this.convBlock.apply(p, ops.concatLast([up, skip]) as T5)
    })
  }
}

/**
 * MONAI `UnetUpBlock` (DynUNet decoder): 2×2×2 stride-2 transposed conv without bias,
 * concatenation `[up, skip]` on channels, then a `UnetBasicBlock(2·out → out)`.
 */
export class UnetUpBlock extends UpBlock {
  readonly transpConv: ConvTranspose
  readonly convBlock: UnetBasicBlock

  constructor(
    mb: ModelBuilder,
    readonly name: string,
    readonly inChannels: number,
    readonly outChannels: number,
    group: ParamGroup = 'backbone',
    opts: BlockOptions = {},
  ) {
    super()
    this.transpConv = new ConvTranspose(
      mb,
      `${name}.transp_conv`,
      inChannels,
      outChannels,
      2,
      false,
      group,
    )
    this.convBlock = new UnetBasicBlock(
      mb,
      `${name}.conv_block`,
      2 * outChannels,
      outChannels,
      1,
      group,
      opts,
    )
  }

}

/** MONAI `UnetOutBlock`: a 1×1×1 convolution with bias (no norm, no activation). */
export class UnetOutBlock {
  readonly conv: Conv

  constructor(
    mb: ModelBuilder,
    readonly name: string,
    readonly inChannels: number,
    readonly outChannels: number,
    group: ParamGroup = 'backbone',
  ) {
    this.conv = new Conv(mb, `${name}.conv`, inChannels, outChannels, 1, 1, true, group)
  }

  get count(): number {
    return this.conv.count
  }

  apply(p: ParamLookup, x: T5): T5 {
    return this.conv.apply(p, x)
  }
}

/**
 * MONAI `UnetrBasicBlock` with `res_block=True` (UNETR `encoder1`): a `UnetResBlock` with a
 * 3³ kernel and stride 1.
 */
export class UnetrBasicBlock extends UnetResBlock {
  constructor(mb: ModelBuilder, name: string, inChannels: number, outChannels: number) {
    super(mb, name, inChannels, outChannels, 1)
  }
}

/**
 * MONAI `UnetrPrUpBlock` with `conv_block=True, res_block=True` (UNETR `encoder2..4`):
 * `transp_conv_init` (2×2×2 stride 2, no bias), then `numLayer` × [transposed conv 2×2×2
 * stride 2 without bias → `UnetResBlock(out → out)`]. Upsamples by 2^(numLayer+1).
 */
export class UnetrPrUpBlock {
  readonly init: ConvTranspose
  readonly blocks: { up: ConvTranspose; res: UnetResBlock }[] = []

  constructor(
    mb: ModelBuilder,
    readonly name: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly numLayer: number,
  ) {
    this.init = new ConvTranspose(
      mb,
      `${name}.transp_conv_init`,
      inChannels,
      outChannels,
      2,
      false,
      'backbone',
    )
    for (let i = 0; i < numLayer; i++) {
      this.blocks.push({
        up: new ConvTranspose(
          mb,
          `${name}.blocks.${i}.0`,
          outChannels,
          outChannels,
          2,
          false,
          'backbone',
        ),
        res: new UnetResBlock(mb, `${name}.blocks.${i}.1`, outChannels, outChannels, 1),
      })
    }
  }

  get count(): number {
    return this.init.count + this.blocks.reduce((n, b) => n + b.up.count + b.res.count, 0)
  }

  apply(p: ParamLookup, x: T5): T5 {
    return tf.tidy(() => {
      let h = this.init.apply(p, x)
      for (const b of this.blocks) h = b.res.apply(p, b.up.apply(p, h))
      return h
    })
  }
}

/**
 * MONAI `UnetrUpBlock` with `res_block=True` (UNETR `decoder2..5`): 2×2×2 stride-2 transposed
 * conv without bias, concatenation `[up, skip]`, then `UnetResBlock(2·out → out)`.
 */
export class UnetrUpBlock extends UpBlock {
  readonly transpConv: ConvTranspose
  readonly convBlock: UnetResBlock

  constructor(
    mb: ModelBuilder,
    readonly name: string,
    readonly inChannels: number,
    readonly outChannels: number,
  ) {
    super()
    this.transpConv = new ConvTranspose(
      mb,
      `${name}.transp_conv`,
      inChannels,
      outChannels,
      2,
      false,
      'backbone',
    )
    this.convBlock = new UnetResBlock(mb, `${name}.conv_block`, 2 * outChannels, outChannels, 1)
  }

}

/**
 * Registers the parameters of one DSD bottleneck module (`DeepUp`, spec §2) under `name`:
 * `conv` 1×1×1 C→K with bias, and `up` — a 2×2×2 stride-2 transposed conv K→K with bias
 * applied log2(s) times (a 1×1×1 one when s = 1). Initialised by the builder's scheme
 * (Kaiming a = 0.01 and zero biases for DynUNet, PyTorch defaults for UNETR).
 */
export class DeepUpHead {
  readonly conv: Conv
  readonly up: ConvTranspose

  constructor(
    mb: ModelBuilder,
    readonly name: string,
    readonly inChannels: number,
    readonly numClasses: number,
    readonly scale: number,
  ) {
    upRepeats(scale) // throws a DsdError unless scale is a power of two
    this.conv = new Conv(mb, `${name}.conv`, inChannels, numClasses, 1, 1, true, 'dsd')
    this.up = new ConvTranspose(
      mb,
      `${name}.up`,
      numClasses,
      numClasses,
      upKernel(scale),
      true,
      'dsd',
    )
  }

  get count(): number {
    return this.conv.count + this.up.count
  }

  /** Forward through engine-core's {@link Bottleneck} with this head's weights. */
  apply(p: ParamLookup, x: T5): T5 {
    const module = new Bottleneck(
      {
        convW: p(this.conv.w) as T5,
        convB: p(this.conv.b!) as tf.Tensor1D,
        upW: p(this.up.w) as T5,
        upB: p(this.up.b!) as tf.Tensor1D,
      },
      this.scale,
    )
    return tf.tidy(() => module.forward(x))
  }
}
