/**
 * How much memory a training step needs on the CPU backends, and a clear error when it
 * cannot have it. Tensors live in JavaScript memory there (typed arrays), so the limit is the
 * machine's RAM, not a 4 GB heap; a step that does not fit either fails up front (it needs more
 * than the machine has) or, when an allocation fails mid-step, reports what it needed.
 *
 * The estimate counts, per block of the network summary, the activations a training step keeps
 * for its backward pass (≈ 8 tensors of the block's output size: convolution outputs, norm and
 * activation outputs, the residual path, concatenations), the DSD heads and loss terms at full
 * resolution, weights + gradients + AdamW moments, and slack for gradients in flight and
 * uncollected garbage. Measured peak resident memory of a step on the `wasm` backend: DynUNet
 * mmwhs at 2 × 64³ 3.7 GB (estimate 3.6 GB); small at 2 × 32³ 0.28 GB (estimate 0.5 GB).
 */
import { freemem, totalmem } from 'node:os'
import { DsdError } from '../../../errors'

/** The parts of a model description the estimate reads (as `describeModel`/`DsdModel` give). */
export interface MemoryModel {
  config: { inChannels: number; numClasses: number; patch: [number, number, number] }
  rows: { type: string; outChannels: number; outScale: number }[]
  params: number
}

const GB = 2 ** 30

function gb(bytes: number): string {
  return `${(bytes / GB).toFixed(1)} GB`
}

/** Estimated peak bytes of one training step of `m` with `batch` patches. */
export function estimateTrainingBytes(m: MemoryModel, batch: number): number {
  const [d, h, w] = m.config.patch
  const V = batch * d * h * w
  const K = m.config.numClasses
  let floats = V * (m.config.inChannels + 1) // input and labels
  for (const r of m.rows) {
    const at = V / r.outScale ** 3
    if (r.type === 'DeepUp')
      floats += 3 * K * V // full-resolution logits and the last upsampling
    else if (r.type === 'ViT')
      floats += 40 * r.outChannels * at // tokens through every layer
    else floats += 8 * r.outChannels * at
  }
  floats += 24 * K * V // 5 Dice-CE and 6 KL terms: their softmax / log-probabilities and gradients
  const activations = 4 * floats * 1.45 // + gradients in flight and garbage not yet collected
  return Math.round(activations + 16 * m.params + 0.4 * GB)
}

function options(m: MemoryModel, batch: number, app = false): string {
  const p = m.config.patch
  const smaller = p.map((v) => Math.max(16, v - 16)).join('×')
  if (app) {
    return `choose a smaller patch (e.g. ${smaller}) or batch (${Math.max(1, batch - 1)}) or a smaller preset (Small) in the run form, or a GPU backend`
  }
  return (
    `use a smaller patch (e.g. --patch ${smaller}) or batch (--batch ${Math.max(1, batch - 1)}), ` +
    `a smaller preset (--preset small, or --filters), or a GPU backend`
  )
}

/**
 * Throw `OUT_OF_MEMORY` before a step that cannot fit this machine at all (its estimate is more
 * than the total memory).
 */
export function checkTrainingMemory(m: MemoryModel, batch: number, total = totalmem()): void {
  const need = estimateTrainingBytes(m, batch)
  if (need <= total) return
  throw new DsdError(
    'OUT_OF_MEMORY',
    `training at patch ${m.config.patch.join('×')} × batch ${batch} needs about ${gb(need)} of memory ` +
      `on the CPU backend and this machine has ${gb(total)}: ${options(m, batch)}`,
    { neededBytes: need, totalBytes: total, patch: m.config.patch, batch },
    `training at patch ${m.config.patch.join('×')} × batch ${batch} needs about ${gb(need)} of memory ` +
      `on the CPU backend and this machine has ${gb(total)}: ${options(m, batch, true)}`,
  )
}

/** True for the errors a failed typed-array or WebAssembly memory allocation raises. */
export function isAllocationFailure(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string }
  if (e?.code === 'CPU_KERNEL_MEMORY') return true
  const msg = String(e?.message ?? '')
  return (
    (e?.name === 'RangeError' &&
      /Array buffer allocation failed|Invalid typed array length|could not allocate memory|WebAssembly\.Memory/i.test(
        msg,
      )) ||
    /out of memory/i.test(msg)
  )
}

/** An `OUT_OF_MEMORY` DsdError for `err` (an allocation failure), naming need and options. */
export function outOfMemoryError(err: unknown, m: MemoryModel, batch: number): DsdError {
  const need = estimateTrainingBytes(m, batch)
  const cause = (err as Error)?.message ?? String(err)
  return new DsdError(
    'OUT_OF_MEMORY',
    `out of memory: training at patch ${m.config.patch.join('×')} × batch ${batch} needs about ` +
      `${gb(need)} on the CPU backend; ${gb(freemem())} of ${gb(totalmem())} is free (${cause}). ` +
      `Close other programs, or ${options(m, batch)}`,
    { neededBytes: need, freeBytes: freemem(), totalBytes: totalmem(), cause },
    `out of memory: training at patch ${m.config.patch.join('×')} × batch ${batch} needs about ` +
      `${gb(need)} on the CPU backend; ${gb(freemem())} of ${gb(totalmem())} is free (${cause}). ` +
      `Close other programs, or ${options(m, batch, true)}`,
  )
}
