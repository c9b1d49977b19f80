/**
 * A tiny training batch for engine tests: a sphere (radius 5) in a 16³ noisy image, with its
 * label map — learnable in a few steps, the same every time.
 */
import { tf } from '../../main/engine/tf'

/** Side of the sphere volume (voxels). */
export const SPHERE_N = 16
const N = SPHERE_N

/** Image and label of the sphere, as plain arrays. */
export function sphere(): { img: Float32Array; lab: Int32Array } {
  const img = new Float32Array(N ** 3)
  const lab = new Int32Array(N ** 3)
  for (let i = 0; i < N ** 3; i++) {
    const z = Math.floor(i / (N * N))
    const y = Math.floor(i / N) % N
    const x = i % N
    const inside = Math.hypot(z - 7.5, y - 8.5, x - 6.5) < 5 ? 1 : 0
    lab[i] = inside
    img[i] = inside + 0.3 * Math.sin(i * 12.9898)
  }
  return { img, lab }
}

/** The sphere as a batch of one: x [1, N, N, N, 1], y [1, N, N, N] (int32). */
export function sphereBatch(data = sphere()): { x: tf.Tensor5D; y: tf.Tensor4D } {
  return {
    x: tf.tensor5d(data.img, [1, N, N, N, 1]),
    y: tf.tensor4d(data.lab, [1, N, N, N], 'int32'),
  }
}
