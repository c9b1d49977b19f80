/**
 * UNETR's Vision Transformer (MONAI 0.9.1 `ViT` with `pos_embed="perceptron"`,
 * `classification=False`, `qkv_bias=False`, dropout 0), channels-last and WebGPU-safe
 * (no elementwise op above rank 2, no transpose above rank 4).
 *
 * - Perceptron patch embedding: the volume is cut into P³ patches, each flattened in the order
 *   (p1, p2, p3, c) as einops `b c (h p1) (w p2) (d p3) -> b (h w d) (p1 p2 p3 c)` does, and
 *   mapped by a Linear to `hidden`; plus a learned position embedding `[N, hidden]`.
 * - `layers` pre-norm transformer blocks: x + MHSA(LN(x)), then x + MLP(LN(x)), MLP =
 *   Linear → GELU(erf) → Linear.
 * - A final LayerNorm. The hidden states after chosen blocks (3, 6, 9 for 12 layers) are
 *   returned as well (before the final norm, like MONAI's `hidden_states_out`).
 */
import { tf } from './tf'
import * as ops from './ops'
import { type ModelBuilder, type ParamLookup } from './layers'

type T = tf.Tensor

/** Size of a ViT. */
export interface VitConfig {
  inChannels: number
  /** Input grid `[d, h, w]`; each must be a multiple of `patch`. */
  imgSize: [number, number, number]
  /** Patch edge (16 in UNETR). */
  patch: number
  /** Hidden size (768 in UNETR). */
  hidden: number
  /** Number of transformer blocks (12 in UNETR). */
  layers: number
  /** Attention heads (12 in UNETR); must divide `hidden`. */
  heads: number
  /** MLP width (3072 in UNETR). */
  mlp: number
}

/** The ViT's output: final normed tokens and the selected hidden states. */
export interface VitOutput {
  /** `[b, N, hidden]` after the final LayerNorm. */
  x: T
  /** Block index → `[b, N, hidden]` output of that block (before the final norm). */
  hidden: Map<number, T>
}

/** Parameter count of a ViT of this size, computed analytically (for tests and docs). */
export function vitParamCount(c: VitConfig): number {
  const n = (c.imgSize[0] / c.patch) * (c.imgSize[1] / c.patch) * (c.imgSize[2] / c.patch)
  const patchDim = c.inChannels * c.patch ** 3
  const embed = patchDim * c.hidden + c.hidden + n * c.hidden
  const block =
    2 * 2 * c.hidden + // two LayerNorms
    c.hidden * 3 * c.hidden + // qkv, no bias
    c.hidden * c.hidden +
    c.hidden + // out_proj
    c.hidden * c.mlp +
    c.mlp +
    c.mlp * c.hidden +
    c.hidden // MLP
  return embed + c.layers * block + 2 * c.hidden
}

/** One dense layer: weight `[in, out]`, bias `[out]` (optional). */
class Linear {
  readonly w: string
  readonly b: string | null

  constructor(
    mb: ModelBuilder,
    name: string,
    inF: number,
    outF: number,
    bias: boolean,
    init: 'torch' | 'trunc-normal',
  ) {
    const bound = 1 / Math.sqrt(inF)
    this.w = mb.param(
      `${name}.weight`,
      [inF, outF],
      init === 'torch' ? { kind: 'uniform', bound } : { kind: 'trunc-normal', std: 0.02 },
      'backbone',
    )
    this.b = bias
      ? mb.param(
          `${name}.bias`,
          [outF],
          init === 'torch' ? { kind: 'uniform', bound } : { kind: 'zeros' },
          'backbone',
        )
      : null
  }

  apply(p: ParamLookup, x: T): T {
    return ops.linear(x, p(this.w) as tf.Tensor2D, this.b ? (p(this.b) as tf.Tensor1D) : null)
  }
}

/** LayerNorm with gamma (ones) and beta (zeros). */
class LayerNorm {
  readonly g: string
  readonly b: string

  constructor(mb: ModelBuilder, name: string, size: number) {
    this.g = mb.param(`${name}.weight`, [size], { kind: 'ones' }, 'backbone')
    this.b = mb.param(`${name}.bias`, [size], { kind: 'zeros' }, 'backbone')
  }

  apply(p: ParamLookup, x: T): T {
    return ops.layerNorm(x, p(this.g) as tf.Tensor1D, p(this.b) as tf.Tensor1D)
  }
}

/** Pre-norm transformer block (MONAI `TransformerBlock`). */
class TransformerBlock {
  readonly norm1: LayerNorm
  readonly qkv: Linear
  readonly outProj: Linear
  readonly norm2: LayerNorm
  readonly linear1: Linear
  readonly linear2: Linear

  constructor(
    mb: ModelBuilder,
    name: string,
    readonly hidden: number,
    readonly heads: number,
    mlp: number,
  ) {
    this.norm1 = new LayerNorm(mb, `${name}.norm1`, hidden)
    this.outProj = new Linear(mb, `${name}.attn.out_proj`, hidden, hidden, true, 'torch')
    this.qkv = new Linear(mb, `${name}.attn.qkv`, hidden, 3 * hidden, false, 'torch')
    this.norm2 = new LayerNorm(mb, `${name}.norm2`, hidden)
    this.linear1 = new Linear(mb, `${name}.mlp.linear1`, hidden, mlp, true, 'torch')
    this.linear2 = new Linear(mb, `${name}.mlp.linear2`, mlp, hidden, true, 'torch')
  }

  /** Multi-head self-attention; `x` is `[b, n, hidden]`. */
  private attention(p: ParamLookup, x: T): T {
    const [b, n] = x.shape as [number, number, number]
    const h = this.heads
    const dh = this.hidden / h
    const qkv = this.qkv.apply(p, x) // [b, n, 3·hidden], columns ordered (qkv, head, d)
    const [q, k, v] = tf
      .split(tf.reshape(qkv, [b * n, 3 * this.hidden]), 3, 1)
      .map((t) =>
        tf.reshape(tf.transpose(tf.reshape(t, [b, n, h, dh]), [0, 2, 1, 3]), [b * h, n, dh]),
      ) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D]
    const att = ops.softmaxLast(ops.scale(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)))
    const ctx = tf.matMul(att, v) // [b·h, n, dh]
    const merged = tf.reshape(tf.transpose(tf.reshape(ctx, [b, h, n, dh]), [0, 2, 1, 3]), [
      b,
      n,
      this.hidden,
    ])
    return this.outProj.apply(p, merged)
  }

  apply(p: ParamLookup, x: T): T {
    return tf.tidy(() => {
      const a = ops.add(x, this.attention(p, this.norm1.apply(p, x)))
      const m = this.linear2.apply(p, ops.gelu(this.linear1.apply(p, this.norm2.apply(p, a))))
      return ops.add(a, m)
    })
  }
}

/** MONAI ViT (see the file comment). Parameter names follow MONAI under `name`. */
export class ViT {
  readonly grid: [number, number, number]
  readonly numPatches: number
  readonly patchEmbed: Linear
  readonly posEmbed: string
  readonly blocks: TransformerBlock[] = []
  readonly norm: LayerNorm

  constructor(
    mb: ModelBuilder,
    readonly name: string,
    readonly config: VitConfig,
  ) {
    const { imgSize, patch, hidden, heads } = config
    for (const s of imgSize) {
      if (s % patch !== 0)
        throw new Error(`ViT: image size [${imgSize}] is not a multiple of the patch ${patch}`)
    }
    if (hidden % heads !== 0)
      throw new Error(`ViT: hidden size ${hidden} is not divisible by ${heads} heads`)
    this.grid = imgSize.map((s) => s / patch) as [number, number, number]
    this.numPatches = this.grid[0] * this.grid[1] * this.grid[2]
    const patchDim = config.inChannels * patch ** 3
    this.patchEmbed = new Linear(
      mb,
      `${name}.patch_embedding.patch_embeddings.1`,
      patchDim,
      hidden,
      true,
      'trunc-normal',
    )
    this.posEmbed = mb.param(
      `${name}.patch_embedding.position_embeddings`,
      [this.numPatches, hidden],
      { kind: 'trunc-normal', std: 0.02 },
      'backbone',
    )
    for (let i = 0; i < config.layers; i++) {
      this.blocks.push(new TransformerBlock(mb, `${name}.blocks.${i}`, hidden, heads, config.mlp))
    }
    this.norm = new LayerNorm(mb, `${name}.norm`, hidden)
  }

  /**
   * Cut `[b, D, H, W, c]` into patches: `[b, N, P³·c]`, patch index row-major over
   * (D, H, W) and features ordered (p1, p2, p3, c). Only rank-4 transposes.
   */
  patchify(x: tf.Tensor5D): T {
    const [b, , , , c] = x.shape
    const P = this.config.patch
    const [nD, nH, nW] = this.grid
    // [b·nD, p1, nH, p2·nW·p3·c] → [b·nD, nH, p1, p2·nW·p3·c]
    let y: T = tf.transpose(tf.reshape(x, [b * nD, P, nH, P * nW * P * c]), [0, 2, 1, 3])
    // [b·nD·nH, p1·p2, nW, p3·c] → [b·nD·nH, nW, p1·p2, p3·c]
    y = tf.transpose(tf.reshape(y, [b * nD * nH, P * P, nW, P * c]), [0, 2, 1, 3])
    return tf.reshape(y, [b, this.numPatches, P * P * P * c])
  }

  /** Tokens `[b, N, hidden]` back to a channels-last grid `[b, nD, nH, nW, hidden]` (UNETR `proj_feat`). */
  projFeat(tokens: T): tf.Tensor5D {
    const b = tokens.shape[0]
    return tf.reshape(tokens, [b, ...this.grid, this.config.hidden])
  }

  /** Forward; `taps` are the block indices whose outputs to return. */
  apply(p: ParamLookup, x: tf.Tensor5D, taps: number[]): VitOutput {
    const res = tf.tidy(() => {
      const b = x.shape[0]
      const n = this.numPatches
      const hs = this.config.hidden
      let h = this.patchEmbed.apply(p, this.patchify(x)) // [b, N, hidden]
      const pos = tf.reshape(p(this.posEmbed), [1, n * hs])
      h = tf.reshape(tf.add(tf.reshape(h, [b, n * hs]), pos), [b, n, hs])
      const kept: T[] = []
      this.blocks.forEach((blk, i) => {
        h = blk.apply(p, h)
        if (taps.includes(i)) kept.push(h)
      })
      return { x: this.norm.apply(p, h), kept }
    })
    const hidden = new Map<number, T>()
    taps
      .filter((t, i) => taps.indexOf(t) === i)
      .sort((a, b) => a - b)
      .forEach((t, i) => hidden.set(t, res.kept[i]!))
    return { x: res.x, hidden }
  }
}
