/**
 * SelfDistilUNETR (dsd-spec §1): MONAI 0.9.1 UNETR (`pos_embed="perceptron"`,
 * `conv_block=True`, `res_block=True`, instance norm, dropout 0) with **8 separate** DSD
 * bottleneck modules, PyTorch default initialisation.
 *
 * ```
 * E1 = encoder1(x)                      F  @1     → deep_5_enc (×1)
 * E2 = encoder2(proj(z3))               2F @1/2   → deep_4_enc (×2)
 * E3 = encoder3(proj(z6))               4F @1/4   → deep_3_enc (×4)
 * E4 = encoder4(proj(z9))               8F @1/8   → deep_2_enc (×8)    (encoder teacher)
 * D4 = proj(ViT output after its norm)  hidden @1/16 → deep_2_dec (×16)
 * D3 = decoder5(D4, E4)                 8F @1/8   → deep_3_dec (×8)
 * D2 = decoder4(D3, E3)                 4F @1/4   → deep_4_dec (×4)
 * D1 = decoder3(D2, E2)                 2F @1/2   → deep_5_dec (×2)    (decoder teacher)
 * Y  = out(decoder2(D1, E1))            F → K @1
 * ```
 */
import { tf } from './tf'
import {
  DeepUpHead,
  ModelBuilder,
  UnetOutBlock,
  UnetrBasicBlock,
  UnetrPrUpBlock,
  UnetrUpBlock,
  type ParamLookup,
} from './layers'
import { ViT } from './vit'
import { OUTPUT_NAMES, type OutputName, type TrainOutputs } from './dynunet'

type T5 = tf.Tensor5D

/** Size of a SelfDistilUNETR. */
export interface UnetrConfig {
  inChannels: number
  numClasses: number
  /** Patch `[d, h, w]`, each a multiple of 16. */
  patch: [number, number, number]
  /** Feature size F (MMWHS 32, BraTS 16). */
  featureSize: number
  /** ViT hidden size (768). */
  hidden: number
  /** ViT layers (12). */
  layers: number
  /** ViT heads (12). */
  heads: number
  /** ViT MLP width (3072). */
  mlp: number
  /**
   * ViT block indices feeding encoder2/3/4 (UNETR: 3, 6, 9). Default: ⌊L·k/4⌋ for
   * k = 1, 2, 3, which gives 3, 6, 9 for 12 layers.
   */
  taps?: [number, number, number]
}

/** UNETR's ViT patch edge (the decoder's four ×2 up-steps assume 16). */
export const UNETR_VIT_PATCH = 16

/** Default ViT taps for `layers` blocks. */
export function defaultTaps(layers: number): [number, number, number] {
  return [1, 2, 3].map((k) => Math.min(layers - 1, Math.floor((layers * k) / 4))) as [
    number,
    number,
    number,
  ]
}

/** Described SelfDistilUNETR; `apply` runs it with parameters from a lookup. */
export class SelfDistilUNETR {
  readonly vit: ViT
  readonly taps: [number, number, number]
  readonly encoder1: UnetrBasicBlock
  readonly encoder2: UnetrPrUpBlock
  readonly encoder3: UnetrPrUpBlock
  readonly encoder4: UnetrPrUpBlock
  readonly decoder5: UnetrUpBlock
  readonly decoder4: UnetrUpBlock
  readonly decoder3: UnetrUpBlock
  readonly decoder2: UnetrUpBlock
  readonly out: UnetOutBlock
  readonly heads: Record<'E1' | 'E2' | 'E3' | 'E4' | 'D4' | 'D3' | 'D2' | 'D1', DeepUpHead>

  constructor(
    mb: ModelBuilder,
    readonly config: UnetrConfig,
  ) {
    const { inChannels: cin, numClasses: k, featureSize: F, hidden, patch } = config
    for (const s of patch) {
      if (s % UNETR_VIT_PATCH !== 0) {
        throw new Error(
          `SelfDistilUNETR: patch [${patch}] must be a multiple of ${UNETR_VIT_PATCH} on every axis`,
        )
      }
    }
    this.taps = config.taps ?? defaultTaps(config.layers)
    for (const t of this.taps) {
      if (t < 0 || t >= config.layers)
        throw new Error(`SelfDistilUNETR: ViT tap ${t} outside 0..${config.layers - 1}`)
    }
    this.vit = new ViT(mb, 'vit', {
      inChannels: cin,
      imgSize: patch,
      patch: UNETR_VIT_PATCH,
      hidden,
      layers: config.layers,
      heads: config.heads,
      mlp: config.mlp,
    })
    mb.row({
      name: 'vit',
      type: 'ViT',
      inChannels: cin,
      outChannels: hidden,
      outScale: 16,
      params: mb.countUnder('vit.'),
      group: 'backbone',
      note: `${config.layers} layers, ${config.heads} heads, mlp ${config.mlp}, taps ${this.taps.join('/')}`,
    })
    const add = <B extends { count: number }>(
      blk: B,
      name: string,
      type: string,
      i: number,
      o: number,
      s: number,
      note: string,
    ): B => {
      mb.row({
        name,
        type,
        inChannels: i,
        outChannels: o,
        outScale: s,
        params: blk.count,
        group: 'backbone',
        note,
      })
      return blk
    }
    this.encoder1 = add(
      new UnetrBasicBlock(mb, 'encoder1', cin, F),
      'encoder1',
      'UnetrBasicBlock',
      cin,
      F,
      1,
      'E1',
    )
    this.encoder2 = add(
      new UnetrPrUpBlock(mb, 'encoder2', hidden, 2 * F, 2),
      'encoder2',
      'UnetrPrUpBlock',
      hidden,
      2 * F,
      2,
      `E2 from z${this.taps[0]}`,
    )
    this.encoder3 = add(
      new UnetrPrUpBlock(mb, 'encoder3', hidden, 4 * F, 1),
      'encoder3',
      'UnetrPrUpBlock',
      hidden,
      4 * F,
      4,
      `E3 from z${this.taps[1]}`,
    )
    this.encoder4 = add(
      new UnetrPrUpBlock(mb, 'encoder4', hidden, 8 * F, 0),
      'encoder4',
      'UnetrPrUpBlock',
      hidden,
      8 * F,
      8,
      `E4 from z${this.taps[2]}`,
    )
    this.decoder5 = add(
      new UnetrUpBlock(mb, 'decoder5', hidden, 8 * F),
      'decoder5',
      'UnetrUpBlock',
      hidden,
      8 * F,
      8,
      'D3',
    )
    this.decoder4 = add(
      new UnetrUpBlock(mb, 'decoder4', 8 * F, 4 * F),
      'decoder4',
      'UnetrUpBlock',
      8 * F,
      4 * F,
      4,
      'D2',
    )
    this.decoder3 = add(
      new UnetrUpBlock(mb, 'decoder3', 4 * F, 2 * F),
      'decoder3',
      'UnetrUpBlock',
      4 * F,
      2 * F,
      2,
      'D1',
    )
    this.decoder2 = add(
      new UnetrUpBlock(mb, 'decoder2', 2 * F, F),
      'decoder2',
      'UnetrUpBlock',
      2 * F,
      F,
      1,
      '',
    )
    this.out = add(new UnetOutBlock(mb, 'out', F, k), 'out', 'UnetOutBlock', F, k, 1, 'Y')

    const head = (name: string, c: number, s: number, tap: string) => {
      const h = new DeepUpHead(mb, name, c, k, s)
      mb.row({
        name,
        type: 'DeepUp',
        inChannels: c,
        outChannels: k,
        outScale: 1,
        params: h.count,
        group: 'dsd',
        note: `×${s} for ${tap}`,
      })
      return h
    }
    this.heads = {
      E1: head('deep_5_enc', F, 1, 'E1'),
      E2: head('deep_4_enc', 2 * F, 2, 'E2'),
      E3: head('deep_3_enc', 4 * F, 4, 'E3'),
      E4: head('deep_2_enc', 8 * F, 8, 'E4'),
      D4: head('deep_2_dec', hidden, 16, 'D4'),
      D3: head('deep_3_dec', 8 * F, 8, 'D3'),
      D2: head('deep_4_dec', 4 * F, 4, 'D2'),
      D1: head('deep_5_dec', 2 * F, 2, 'D1'),
    }
  }

  /**
   * Forward. `Y` always; each name in `heads` (any of the eight DSD branches) is computed
   * through its own bottleneck module, the others are not. Output order follows spec §1.
   */
  apply(p: ParamLookup, x: T5, heads: ReadonlySet<OutputName>): Partial<TrainOutputs> & { Y: T5 } {
    return tf.tidy(() => {
      const { x: last, hidden } = this.vit.apply(p, x, this.taps)
      const z = (i: number) => this.vit.projFeat(hidden.get(this.taps[i]!)!)
      const e1 = this.encoder1.apply(p, x)
      const e2 = this.encoder2.apply(p, z(0))
      const e3 = this.encoder3.apply(p, z(1))
      const e4 = this.encoder4.apply(p, z(2))
      const d4 = this.vit.projFeat(last)
      const d3 = this.decoder5.apply(p, d4, e4)
      const d2 = this.decoder4.apply(p, d3, e3)
      const d1 = this.decoder3.apply(p, d2, e2)
      const out: Partial<TrainOutputs> & { Y: T5 } = {
        Y: this.out.apply(p, this.decoder2.apply(p, d1, e1)),
      }
      const taps: Record<Exclude<OutputName, 'Y'>, T5> = {
        D4: d4,
        D3: d3,
        D2: d2,
        D1: d1,
        E1: e1,
        E2: e2,
        E3: e3,
        E4: e4,
      }
      for (const name of OUTPUT_NAMES) {
        if (name === 'Y' || !heads.has(name)) continue
        out[name] = this.heads[name].apply(p, taps[name])
      }
      return out
    })
  }
}
