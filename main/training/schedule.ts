/**
 * A run's learning-rate schedule (RunConfig.schedule) on the engine's schedulers: StepLR (one
 * rate per epoch) or WarmupPolyLR (a rate per step, over the run's global step). The loop sets
 * the rate before every step with `setStepLr`, so a resumed run continues the same curve; the
 * scheduler's state goes into each checkpoint and is restored from it on resume.
 */
import type { RunConfig } from '../contract/runs'
import { StepLR, WarmupPolyLR, type SchedulerState } from '../engine/optimizer'
import { DsdError } from '../errors'

export type RunScheduler = StepLR | WarmupPolyLR

/** The scheduler a run starts with (`stepsPerEpoch` as the loop trains it). */
export function createScheduler(cfg: RunConfig, stepsPerEpoch: number): RunScheduler {
  const s = cfg.schedule
  if (s.kind === 'poly') {
    const total = cfg.epochs * stepsPerEpoch
    // A run shorter than its warm-up warms up over all but its last step.
    return new WarmupPolyLR(cfg.optimizer.lr, Math.min(s.warmupSteps, total - 1), total, s.power)
  }
  return new StepLR(cfg.optimizer.lr, s.stepSize > 0 ? s.stepSize : Infinity, s.gamma)
}

/**
 * The scheduler of a checkpoint's state; it must be the kind the config names (`file` names the
 * checkpoint in the message).
 */
export function restoreScheduler(state: SchedulerState, cfg: RunConfig, file: string): RunScheduler {
  const want = cfg.schedule.kind === 'poly' ? 'warmup-poly' : 'steplr'
  if (state.kind !== want) {
    throw new DsdError(
      'CHECKPOINT_MISMATCH',
      `${file}: the checkpoint's learning-rate schedule is "${state.kind}" but the run's config.json says "${cfg.schedule.kind}"; restore the config the run was started with`,
      { file },
    )
  }
  return state.kind === 'warmup-poly' ? WarmupPolyLR.fromState(state) : StepLR.fromState(state)
}

/**
 * Set `optimizer.lr` for step `step` (0-based) of epoch `epoch` (1-based) and return it.
 * StepLR keeps the rate it moved to at the end of the previous epoch.
 */
export function setStepLr(scheduler: RunScheduler, optimizer: { lr: number }, epoch: number, step: number, stepsPerEpoch: number): number {
  if (scheduler instanceof WarmupPolyLR) return scheduler.stepTo((epoch - 1) * stepsPerEpoch + step, optimizer)
  optimizer.lr = scheduler.lrAt()
  return optimizer.lr
}

/** End of epoch `epoch`: StepLR steps; WarmupPolyLR records the steps taken (for its state). */
export function endEpoch(scheduler: RunScheduler, optimizer: { lr: number }, epoch: number, stepsPerEpoch: number): void {
  if (scheduler instanceof WarmupPolyLR) scheduler.stepTo(epoch * stepsPerEpoch, optimizer)
  else scheduler.stepEpoch(optimizer)
}
