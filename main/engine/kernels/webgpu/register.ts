/**
 * Registration helpers: the engine's WGSL kernels become TF.js kernels of the `webgpu`
 * backend (named `Dsd…`), so the tape, `tf.profile` and memory accounting see them like any
 * other kernel. Gradients are registered with `tf.registerGradient` and computed lazily per
 * input (an input that needs no gradient costs nothing).
 */
import { tf } from '../../tf'
import { webgpuBackend, type WebGPUBackendLike } from './runner'

type KernelImpl = (
  inputs: Record<string, tf.TensorInfo>,
  backend: WebGPUBackendLike,
  attrs: Record<string, unknown>,
) => tf.TensorInfo | tf.TensorInfo[]

/** Register `name` on the `webgpu` backend (once per process). */
export function defineKernel(name: string, impl: KernelImpl): void {
  if (tf.getKernel(name, 'webgpu')) return
  tf.registerKernel({
    kernelName: name,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, attrs }) =>
      impl(
        inputs as Record<string, tf.TensorInfo>,
        webgpuBackend(),
        (attrs ?? {}) as Record<string, unknown>,
      ),
  })
}

/** Register the gradient of `name` (once per process). */
export function defineGradient(
  name: string,
  inputsToSave: string[],
  gradFunc: (
    dy: tf.Tensor | tf.Tensor[],
    saved: tf.Tensor[],
    attrs: Record<string, unknown>,
  ) => Record<string, () => tf.Tensor>,
  outputsToSave?: boolean[],
): void {
  if (tf.getGradient(name)) return
  tf.registerGradient({
    kernelName: name,
    inputsToSave,
    outputsToSave,
    gradFunc: (dy, saved, attrs) =>
      gradFunc(dy as tf.Tensor | tf.Tensor[], saved, (attrs ?? {}) as Record<string, unknown>),
  })
}

/** Run a registered kernel with TF.js tensors; returns its output(s). */
export function runKernel<T extends tf.Tensor | tf.Tensor[] = tf.Tensor>(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown> = {},
): T {
  return tf
    .engine()
    .runKernel(
      name,
      inputs as unknown as tf.NamedTensorMap,
      attrs as tf.NamedAttrMap,
    ) as unknown as T
}
