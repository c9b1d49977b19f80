/** Dice of class maps. */

/**
 * Per-class Dice of a predicted class map against the ground truth, for classes 0…K−1 (same
 * voxel order in both). `null`: the class is absent from both.
 */
export function diceByClass(pred: Uint8Array, gt: Uint8Array, numClasses: number): (number | null)[] {
  const inter = new Float64Array(numClasses)
  const p = new Float64Array(numClasses)
  const g = new Float64Array(numClasses)
  for (let i = 0; i < gt.length; i++) {
    p[pred[i]]++
    g[gt[i]]++
    if (pred[i] === gt[i]) inter[gt[i]]++
  }
  const out: (number | null)[] = []
  for (let k = 0; k < numClasses; k++) out.push(g[k] === 0 ? null : (2 * inter[k]) / (p[k] + g[k]))
  return out
}
