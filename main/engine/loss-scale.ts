/**
 * Dynamic loss scaling for half-precision training (the scheme of PyTorch's `GradScaler` and
 * nnU-Net's mixed precision): the loss is multiplied by `scale` before the backward pass so
 * that small gradients survive half precision, and the gradients are divided by it before the
 * optimizer sees them.
 *
 * - A step whose gradients hold any Inf/NaN is skipped: parameters and optimizer state stay
 *   as they were, and the scale is halved.
 * - After `growthInterval` finite steps in a row the scale doubles.
 * - Scales are powers of two, so scaling and unscaling are exact in float32: at a scale that
 *   never overflows, the update equals the unscaled one.
 *
 * The state (scale and the finite-step count) is saved in checkpoints, so a resumed run
 * continues exactly where it stopped.
 */
import { DsdError } from '../errors'
import type { AdamW } from './optimizer'
import { tf } from './tf'

/** PyTorch GradScaler's defaults: init 2^16, ×2 after 2000 finite steps, ×0.5 on overflow. */
export const LOSS_SCALE_DEFAULTS = { initScale: 2 ** 16, growthInterval: 2000, minScale: 1 }

export interface LossScaleState {
  scale: number
  /** Finite steps since the scale last changed. */
  goodSteps: number
}

export interface LossScalerOptions {
  initScale?: number
  growthInterval?: number
  /** A step that overflows at this scale fails instead of halving further (the gradients are
   * non-finite even unscaled: divergence, not half-precision range). */
  minScale?: number
}

const isPow2 = (v: number) => Number.isFinite(v) && v > 0 && Math.log2(v) === Math.round(Math.log2(v))

export class LossScaler {
  scale: number
  goodSteps = 0
  readonly growthInterval: number
  readonly minScale: number

  constructor(options: LossScalerOptions = {}) {
    this.scale = options.initScale ?? LOSS_SCALE_DEFAULTS.initScale
    this.growthInterval = options.growthInterval ?? LOSS_SCALE_DEFAULTS.growthInterval
    this.minScale = options.minScale ?? LOSS_SCALE_DEFAULTS.minScale
    if (!isPow2(this.scale) || !isPow2(this.minScale)) {
      throw new DsdError('LOSS_SCALE_OPTION', `loss scale: the scales must be powers of two, got ${this.scale} and ${this.minScale}`, {})
    }
    if (!Number.isInteger(this.growthInterval) || this.growthInterval < 1) {
      throw new DsdError('LOSS_SCALE_OPTION', `loss scale: growthInterval must be a positive integer, got ${this.growthInterval}`, {})
    }
  }

  /** `loss · scale` (call inside the function that is differentiated). */
  scaleLoss(loss: tf.Scalar): tf.Scalar {
    return tf.mul(loss, tf.scalar(this.scale))
  }

  /**
   * Whether every gradient is finite (one read-back): `Σ 0·g` is 0 exactly unless some element
   * is Inf or NaN.
   */
  async allFinite(grads: readonly tf.Tensor[]): Promise<boolean> {
    if (grads.length === 0) return true
    // pairwise adds (addN of many inputs exceeds WebGPU's storage buffers per dispatch)
    const probe = tf.tidy(() => {
      const zero = tf.scalar(0)
      let acc: tf.Tensor = tf.sum(tf.mul(grads[0]!, zero))
      for (const g of grads.slice(1)) acc = tf.add(acc, tf.sum(tf.mul(g, zero)))
      return acc
    })
    try {
      const v = (await probe.data())[0]!
      return v === 0
    } finally {
      probe.dispose()
    }
  }

  /** New tensors `g / scale` (exact: the scale is a power of two). The caller disposes both. */
  unscale(grads: Record<string, tf.Tensor>): Record<string, tf.Tensor> {
    const inv = tf.scalar(1 / this.scale)
    try {
      return Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, inv)]))
    } finally {
      inv.dispose()
    }
  }

  /**
   * Record a step: finite → count it (doubling the scale after `growthInterval` of them);
   * not finite → halve the scale. Throws `TRAIN_NONFINITE` when the scale would drop below
   * `minScale`.
   */
  update(finite: boolean): void {
    if (finite) {
      this.goodSteps++
      if (this.goodSteps >= this.growthInterval) {
        this.scale *= 2
        this.goodSteps = 0
      }
      return
    }
    this.goodSteps = 0
    if (this.scale / 2 < this.minScale) {
      throw new DsdError(
        'TRAIN_NONFINITE',
        `training step: the gradients are Inf/NaN even at loss scale ${this.scale}; the weights were not updated. Lower the learning rate, check the input for NaN/Inf values, or train at precision f32`,
        { scale: this.scale },
      )
    }
    this.scale /= 2
  }

  /**
   * One optimizer step on scaled gradients: when all are finite, apply `grads / scale` with
   * `optimizer` and return true; otherwise leave the variables and the optimizer untouched and
   * return false. Either way the scale is updated. The caller keeps ownership of `grads`.
   */
  async applyGradients(
    optimizer: AdamW,
    grads: Record<string, tf.Tensor>,
    variables: Record<string, tf.Variable>,
  ): Promise<boolean> {
    const finite = await this.allFinite(Object.values(grads))
    const unscaled = finite ? this.unscale(grads) : null
    try {
      this.update(finite)
      if (unscaled) optimizer.applyGradients(unscaled, variables)
    } finally {
      if (unscaled) tf.dispose(Object.values(unscaled))
    }
    return finite
  }

  state(): LossScaleState {
    return { scale: this.scale, goodSteps: this.goodSteps }
  }

  /** Restore a saved state (from a checkpoint); `where` names the file in errors. */
  restore(s: unknown, where: string): void {
    const st = s as Partial<LossScaleState> | null
    if (!st || !isPow2(Number(st.scale)) || !Number.isInteger(st.goodSteps) || st.goodSteps! < 0) {
      throw new DsdError('CHECKPOINT_MISMATCH', `${where}: the loss-scale state ${JSON.stringify(s)} is not { scale: a power of two, goodSteps: an integer ≥ 0 }`, {})
    }
    this.scale = st.scale!
    this.goodSteps = st.goodSteps!
  }
}
