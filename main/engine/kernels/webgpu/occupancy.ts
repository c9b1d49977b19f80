/**
 * How many workgroups a memory-bound or split-K kernel should spread its work over: a CPU
 * adapter runs one workgroup per thread (a few dozen suffice, more only add partial sums),
 * a discrete GPU needs thousands to fill its multiprocessors.
 */
import { softwareAdapter } from './mode'

let forced: number | null = null

/** Target number of workgroups for reductions and split-K kernels on the active device. */
export function targetGroups(): number {
  if (forced !== null) return forced
  return softwareAdapter() ? 32 : 2048
}

/**
 * Force the target (tests: a GPU's geometry on a CPU adapter); `null` restores the device's.
 * Returns the previous setting.
 */
export function setTargetGroups(n: number | null): number | null {
  const prev = forced
  forced = n
  return prev
}
