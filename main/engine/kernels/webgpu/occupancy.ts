/**
 * How many workgroups a memory-bound or split-K kernel should spread its work over: a CPU
 * adapter runs one workgroup per thread (a few dozen suffice, more only add partial sums),
 * a discrete GPU needs thousands to fill its multiprocessors.
 */
import { softwareAdapter } from './mode'

/** Target number of workgroups for reductions and split-K kernels on the active device. */
export function targetGroups(): number {
  return softwareAdapter() ? 32 : 2048
}
