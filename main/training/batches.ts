/**
 * The data of one training epoch: everything random in epoch e (case order, crop centres,
 * augmentation) is drawn from one generator seeded by (seed, e), so an epoch replayed after a
 * crash draws the same numbers and a checkpoint needs no generator state.
 */
import type { RunConfig } from '../contract/runs'
import { AUGMENT_PRESETS, augmentPatch } from '../data/augment'
import type { PreparedCase } from '../data/preprocess'
import { CropSampler } from '../data/sampling'
import type { Vec3 } from '../data/volume'
import { mixSeed, Rng } from '../engine/random'
import { tf } from '../engine/tf'
import { DsdError } from '../errors'

/** The generator of epoch `epoch` (1-based) of a run seeded `seed`. */
export function epochRng(seed: number, epoch: number): Rng {
  return Rng.seeded(mixSeed(seed, 'epoch', epoch))
}

/** The order in which an epoch visits the training cases (a shuffle drawn from its generator). */
export function caseOrder(cases: number, rng: Rng): number[] {
  return rng.shuffle(Array.from({ length: cases }, (_, i) => i))
}

/** One crop sampler per training case (RandCropByPosNegLabel: pos 1, neg 0, `batch` crops). */
export function cropSamplers(cases: PreparedCase[], cfg: RunConfig): CropSampler[] {
  const patchXYZ: Vec3 = [cfg.model.patch[2], cfg.model.patch[1], cfg.model.patch[0]]
  return cases.map(
    (c) => new CropSampler({ shape: c.shape, channels: c.channels, image: c.image, label: c.label }, { patch: patchXYZ, numSamples: cfg.batch, pos: 1, neg: 0, imageThreshold: 0 }),
  )
}

/** One training batch: `batch` crops of one case, augmented, as tensors [b, d, h, w, c] / [b, d, h, w]. */
export function makeBatch(sampler: CropSampler, cfg: RunConfig, rng: Rng, channels: number): { x: tf.Tensor5D; y: tf.Tensor4D } {
  const [d, h, w] = cfg.model.patch
  const n = d * h * w
  const xs = new Float32Array(cfg.batch * n * channels)
  const ys = new Int32Array(cfg.batch * n)
  const aug = AUGMENT_PRESETS[cfg.augment]
  const patches = sampler.draw(rng)
  for (let b = 0; b < cfg.batch; b++) {
    const { sample } = augmentPatch(patches[b], aug, rng)
    if (sample.shape[0] !== w || sample.shape[1] !== h || sample.shape[2] !== d) {
      throw new DsdError('PATCH_SHAPE', `augmented patch is ${sample.shape.join('×')} (x×y×z), expected ${w}×${h}×${d}`, {})
    }
    xs.set(sample.image, b * n * channels)
    ys.set(sample.label!, b * n)
  }
  return { x: tf.tensor5d(xs, [cfg.batch, d, h, w, channels]), y: tf.tensor4d(ys, [cfg.batch, d, h, w], 'int32') }
}
