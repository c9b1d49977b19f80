/**
 * SelfDistilDynUNet (dsd-spec §1): MONAI DynUNet with 5 levels, 3³ kernels, strides
 * 1,2,2,2,2, residual encoder blocks, instance norm, LeakyReLU(0.01), and DSD taps through
 * **5 shared** bottleneck modules — E2/D1, E3/D2 and E4/D3 use the same weights.
 *
 * ```
 * E1 = input_block(x)        F0 @1     → deep_5 (×1)
 * E2 = downsamples.0(E1)     F1 @1/2   → deep_4 (×2)   shared with D1
 * E3 = downsamples.1(E2)     F2 @1/4   → deep_3 (×4)   shared with D2
 * E4 = downsamples.2(E3)     F3 @1/8   → deep_2 (×8)   shared with D3   (encoder teacher)
 * D4 = bottleneck(E4)        F4 @1/16  → deep_1 (×16)
 * D3 = upsamples.0(D4, E4)   F3 @1/8
 * D2 = upsamples.1(D3, E3)   F2 @1/4
 * D1 = upsamples.2(D2, E2)   F1 @1/2                                    (decoder teacher)
 * Y  = output_block(upsamples.3(D1, E1))
 * ```
 */
import { tf } from './tf'
import {
  DeepUpHead,
  ModelBuilder,
  UnetOutBlock,
  UnetResBlock,
  UnetUpBlock,
  type ParamLookup,
} from './layers'

type T5 = tf.Tensor5D

/** Size of a SelfDistilDynUNet. */
export interface DynUNetConfig {
  inChannels: number
  numClasses: number
  /** Channels per level, 5 entries (e.g. 32, 64, 128, 256, 320). */
  filters: number[]
}

/** The nine outputs of a training forward pass (spec §1 order). */
export const OUTPUT_NAMES = ['Y', 'D4', 'D3', 'D2', 'D1', 'E1', 'E2', 'E3', 'E4'] as const
/** Name of one of the nine outputs. */
export type OutputName = (typeof OUTPUT_NAMES)[number]
/** Training outputs: every branch as `[b, d, h, w, K]` logits at the patch resolution. */
export type TrainOutputs = Record<OutputName, T5>

/** Described SelfDistilDynUNet; `apply` runs it with parameters from a lookup. */
export class SelfDistilDynUNet {
  readonly inputBlock: UnetResBlock
  readonly downsamples: UnetResBlock[] = []
  readonly bottleneck: UnetResBlock
  readonly upsamples: UnetUpBlock[] = []
  readonly outputBlock: UnetOutBlock
  /** deep_1 … deep_5 (×16, ×8, ×4, ×2, ×1). */
  readonly heads: DeepUpHead[] = []

  constructor(
    mb: ModelBuilder,
    readonly config: DynUNetConfig,
  ) {
    const { inChannels: cin, numClasses: k, filters: f } = config
    if (f.length !== 5) throw new Error(`SelfDistilDynUNet: needs 5 filter sizes, got [${f}]`)
    const scales = [1, 2, 4, 8, 16]

    this.inputBlock = new UnetResBlock(mb, 'input_block', cin, f[0]!, 1)
    mb.row(row('input_block', 'UnetResBlock', cin, f[0]!, 1, this.inputBlock.count, 'E1'))
    for (let i = 0; i < 3; i++) {
      const blk = new UnetResBlock(mb, `downsamples.${i}`, f[i]!, f[i + 1]!, 2)
      this.downsamples.push(blk)
      mb.row(
        row(
          `downsamples.${i}`,
          'UnetResBlock',
          f[i]!,
          f[i + 1]!,
          scales[i + 1]!,
          blk.count,
          `E${i + 2}, stride 2`,
        ),
      )
    }
    this.bottleneck = new UnetResBlock(mb, 'bottleneck', f[3]!, f[4]!, 2)
    mb.row(
      row('bottleneck', 'UnetResBlock', f[3]!, f[4]!, 16, this.bottleneck.count, 'D4, stride 2'),
    )
    for (let i = 0; i < 4; i++) {
      const blk = new UnetUpBlock(mb, `upsamples.${i}`, f[4 - i]!, f[3 - i]!)
      this.upsamples.push(blk)
      const tap = i < 3 ? `D${3 - i}, ` : ''
      mb.row(
        row(
          `upsamples.${i}`,
          'UnetUpBlock',
          f[4 - i]!,
          f[3 - i]!,
          scales[3 - i]!,
          blk.count,
          `${tap}×2 up`,
        ),
      )
    }
    this.outputBlock = new UnetOutBlock(mb, 'output_block', f[0]!, k)
    mb.row(row('output_block', 'UnetOutBlock', f[0]!, k, 1, this.outputBlock.count, 'Y'))

    // deep_1 (×16 on the bottleneck) … deep_5 (×1 on the input block)
    const uses = ['D4', 'E4 + D3', 'E3 + D2', 'E2 + D1', 'E1']
    for (let j = 0; j < 5; j++) {
      const level = 4 - j
      const head = new DeepUpHead(mb, `deep_${j + 1}`, f[level]!, k, scales[level]!)
      this.heads.push(head)
      mb.row({
        name: `deep_${j + 1}`,
        type: 'DeepUp',
        inChannels: f[level]!,
        outChannels: k,
        outScale: 1,
        params: head.count,
        group: 'dsd',
        note: `×${scales[level]} for ${uses[j]}${j >= 1 && j <= 3 ? ' (shared)' : ''}`,
      })
    }
  }

  /** The DSD module for a tap at `level` (0 = full resolution … 4 = 1/16). */
  private head(level: number): DeepUpHead {
    return this.heads[4 - level]!
  }

  /**
   * Forward. `Y` always; each name in `heads` (any of the eight DSD branches) is computed
   * through its bottleneck module, the others are not. Output order follows spec §1.
   */
  apply(p: ParamLookup, x: T5, heads: ReadonlySet<OutputName>): Partial<TrainOutputs> & { Y: T5 } {
    return tf.tidy(() => {
      const e1 = this.inputBlock.apply(p, x)
      const e2 = this.downsamples[0]!.apply(p, e1)
      const e3 = this.downsamples[1]!.apply(p, e2)
      const e4 = this.downsamples[2]!.apply(p, e3)
      const d4 = this.bottleneck.apply(p, e4)
      const d3 = this.upsamples[0]!.apply(p, d4, e4)
      const d2 = this.upsamples[1]!.apply(p, d3, e3)
      const d1 = this.upsamples[2]!.apply(p, d2, e2)
      const out: Partial<TrainOutputs> & { Y: T5 } = {
        Y: this.outputBlock.apply(p, this.upsamples[3]!.apply(p, d1, e1)),
      }
      const taps: Record<Exclude<OutputName, 'Y'>, [T5, number]> = {
        D4: [d4, 4],
        D3: [d3, 3],
        D2: [d2, 2],
        D1: [d1, 1],
        E1: [e1, 0],
        E2: [e2, 1],
        E3: [e3, 2],
        E4: [e4, 3],
      }
      for (const name of OUTPUT_NAMES) {
        if (name === 'Y' || !heads.has(name)) continue
        const [feature, level] = taps[name]
        out[name] = this.head(level).apply(p, feature)
      }
      return out
    })
  }
}

function row(
  name: string,
  type: string,
  inChannels: number,
  outChannels: number,
  outScale: number,
  params: number,
  note: string,
) {
  return { name, type, inChannels, outChannels, outScale, params, group: 'backbone' as const, note }
}
