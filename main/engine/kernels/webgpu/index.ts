/**
 * The engine's WebGPU kernels (WGSL, registered as TF.js kernels of the `webgpu` backend).
 * `ops.ts`, `loss.ts` and `optimizer.ts` route to these when {@link useWebgpuKernels} is true
 * (the `webgpu` backend, unless `DSD_KERNELS=stock`). See docs/engine-core.md, "WebGPU kernels".
 */
export {
  useWebgpuKernels,
  setWebgpuKernels,
  convVariant,
  setConvVariant,
  softwareAdapter,
  requestedPrecision,
  webgpuPrecision,
  setWebgpuPrecision,
  precisionStatus,
  deviceFeatures,
  type WebgpuPrecision,
  type PrecisionStatus,
} from './mode'
export { conv3dGpu, convTransposeGpu } from './conv'
export { samePads, type V3 } from './conv-geom'
export { normActGpu, normAddActGpu } from './norm'
export { columnSums } from './reduce'
export { checkKernelCompilation, pipelineCount } from './runner'
