/**
 * DSD engine: the library entry point (`dsd-studio/engine`). TensorFlow.js, backend
 * selection, the DSD networks (SelfDistilDynUNet, SelfDistilUNETR), the DSD loss, AdamW /
 * StepLR, checkpoints, the training step and sliding-window inference.
 *
 * ```ts
 * import { initBackend, createModel, AdamW, trainStep, tf } from 'dsd-studio/engine'
 * await initBackend('cpu')
 * const model = createModel({ backbone: 'dynunet', preset: 'small' })
 * ```
 * See docs/engine.md.
 */
export { tf, type Tensor } from './tf'
export {
  initBackend,
  probeBackends,
  chooseBackend,
  currentBackend,
  isBackendName,
  BACKEND_LADDER,
  type BackendName,
  type BackendProbe,
  type GpuFeatures,
  type BackendChoice,
} from './backends'
export {
  createModel,
  describeModel,
  resolveConfig,
  loadWeights,
  initialValues,
  PRESETS,
  OUTPUT_NAMES,
  type Backbone,
  type DsdModel,
  type ForwardOptions,
  type ModelConfig,
  type ModelDescription,
  type OutputName,
  type ParamCounts,
  type ResolvedModelConfig,
  type TrainOutputs,
} from './model'
export type { LayerRow, ParamSpec, ParamGroup, Init } from './layers'
export {
  dsdLoss,
  ablation,
  requiredOutputs,
  diceCE,
  klDistill,
  ABLATIONS,
  TERM_NAMES,
  type AblationName,
  type DsdLossOptions,
  type DsdLossResult,
  type DsdOutputs,
  type DsdOutputName,
  type TermName,
} from './loss'
export {
  AdamW,
  StepLR,
  WarmupPolyLR,
  type AdamWOptions,
  type AdamWState,
  type StepLRState,
  type WarmupPolyLRState,
  type SchedulerState,
} from './optimizer'
export {
  saveCheckpoint,
  loadCheckpoint,
  readCheckpointHeader,
  encodeCheckpoint,
  decodeCheckpoint,
  packTrainingState,
  unpackTrainingState,
  CHECKPOINT_MAGIC,
  type CheckpointHeader,
  type LoadedCheckpoint,
  type TrainingState,
} from './checkpoint'
export { Rng, type RngState } from './random'
export { Bottleneck, paramCount as bottleneckParamCount } from './bottleneck'
export { trainStep, lossOptionsOf, type TrainLossOptions, type TrainStepResult } from './train-step'
export { LossScaler, LOSS_SCALE_DEFAULTS, type LossScaleState, type LossScalerOptions } from './loss-scale'
export {
  slidingWindowInference,
  argmaxClasses,
  type SlidingWindowOptions,
  type SlidingWindowResult,
  type Predictor,
} from './sliding-window'
