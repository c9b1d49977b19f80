/**
 * AdamW and StepLR with PyTorch semantics (torch.optim.AdamW, amsgrad=False;
 * torch.optim.lr_scheduler.StepLR), with state that exports to named tensors + JSON for
 * checkpoints. Updates run on flattened 1-D views, so they work on WebGPU for any rank.
 *
 * One AdamW step for parameter p with gradient g (t = step count after increment):
 *   p ← p − lr·wd·p                               (decoupled weight decay)
 *   m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 */
import { DsdError } from '../errors'
import { tf } from './tf'

/** AdamW hyper-parameters. The DSD recipe uses lr 1e-3 (1e-4 for BraTS UNETR), wd 1e-5. */
export interface AdamWOptions {
  lr: number
  weightDecay: number
  beta1?: number
  beta2?: number
  eps?: number
}

/** Exported optimizer state: JSON part + moment tensors by variable name. */
export interface AdamWState {
  json: {
    kind: 'adamw'
    step: number
    lr: number
    weightDecay: number
    beta1: number
    beta2: number
    eps: number
    names: string[]
  }
  /** `m/<name>` and `v/<name>` moment tensors (copies). */
  tensors: Record<string, tf.Tensor>
}

interface Slot {
  m: tf.Variable
  v: tf.Variable
}

/** AdamW over named variables (the names are the keys of the grads map). */
export class AdamW {
  lr: number
  readonly weightDecay: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  /** Number of update steps taken so far (PyTorch's `state['step']`). */
  step = 0
  private slots = new Map<string, Slot>()

  constructor(options: AdamWOptions) {
    this.lr = options.lr
    this.weightDecay = options.weightDecay
    this.beta1 = options.beta1 ?? 0.9
    this.beta2 = options.beta2 ?? 0.999
    this.eps = options.eps ?? 1e-8
    for (const [k, v] of Object.entries({
      lr: this.lr,
      weightDecay: this.weightDecay,
      eps: this.eps,
    })) {
      if (!(v >= 0) || !Number.isFinite(v)) {
        throw new DsdError(
          'OPTIMIZER_OPTION',
          `AdamW: ${k} must be a finite number ≥ 0, got ${v}`,
          { [k]: v },
        )
      }
    }
  }

  private slot(name: string, p: tf.Variable): Slot {
    let s = this.slots.get(name)
    if (!s) {
      s = {
        m: tf.tidy(() => tf.variable(tf.zeros([p.size]), false)),
        v: tf.tidy(() => tf.variable(tf.zeros([p.size]), false)),
      }
      this.slots.set(name, s)
    } else if (s.m.size !== p.size) {
      throw new DsdError(
        'OPTIMIZER_STATE',
        `AdamW: variable ${name} has ${p.size} elements but its optimizer state has ${s.m.size}`,
        { name },
      )
    }
    return s
  }

  /**
   * One update. `grads` maps names to gradients (e.g. from `tf.variableGrads`); `variables`
   * maps the same names to the variables, defaulting to TF.js's registered variables of
   * that name. Gradients for unknown names throw. All variables share one step counter.
   */
  applyGradients(grads: Record<string, tf.Tensor>, variables?: Record<string, tf.Variable>): void {
    const registry = tf.engine().registeredVariables
    this.step += 1
    const t = this.step
    const b1 = this.beta1
    const b2 = this.beta2
    const bc1 = 1 - b1 ** t
    const bc2 = 1 - b2 ** t
    const stepSize = this.lr / bc1
    const sqrtBc2 = Math.sqrt(bc2)
    const decay = 1 - this.lr * this.weightDecay
    for (const [name, g] of Object.entries(grads)) {
      const p = variables ? variables[name] : registry[name]
      if (!p) {
        throw new DsdError(
          'OPTIMIZER_VARIABLE',
          `AdamW: no variable named ${name} for its gradient`,
          {
            name,
          },
        )
      }
      if (g.size !== p.size) {
        throw new DsdError(
          'OPTIMIZER_VARIABLE',
          `AdamW: gradient for ${name} has shape [${g.shape}] but the variable has [${p.shape}]`,
          { name },
        )
      }
      const s = this.slot(name, p)
      tf.tidy(() => {
        const g1 = tf.reshape(g, [-1])
        const p1 = tf.reshape(p, [-1])
        const m = tf.add(tf.mul(s.m, tf.scalar(b1)), tf.mul(g1, tf.scalar(1 - b1)))
        const v = tf.add(tf.mul(s.v, tf.scalar(b2)), tf.mul(tf.square(g1), tf.scalar(1 - b2)))
        const denom = tf.add(tf.div(tf.sqrt(v), tf.scalar(sqrtBc2)), tf.scalar(this.eps))
        const decayed = decay === 1 ? p1 : tf.mul(p1, tf.scalar(decay))
        const next = tf.sub(decayed, tf.mul(tf.div(m, denom), tf.scalar(stepSize)))
        s.m.assign(m)
        s.v.assign(v)
        p.assign(tf.reshape(next, p.shape))
      })
    }
  }

  /** Export the state (tensors are copies the caller owns). */
  exportState(): AdamWState {
    const tensors: Record<string, tf.Tensor> = {}
    const names = [...this.slots.keys()]
    for (const [name, s] of this.slots) {
      tensors[`m/${name}`] = tf.clone(s.m)
      tensors[`v/${name}`] = tf.clone(s.v)
    }
    return {
      json: {
        kind: 'adamw',
        step: this.step,
        lr: this.lr,
        weightDecay: this.weightDecay,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        names,
      },
      tensors,
    }
  }

  /** Replace the state with an exported one (moments are copied; hyper-parameters kept). */
  importState(state: AdamWState): void {
    if (state.json.kind !== 'adamw') {
      throw new DsdError(
        'OPTIMIZER_STATE',
        `AdamW: cannot import optimizer state of kind ${state.json.kind}`,
        {},
      )
    }
    this.disposeSlots()
    this.step = state.json.step
    this.lr = state.json.lr
    for (const name of state.json.names) {
      const m = state.tensors[`m/${name}`]
      const v = state.tensors[`v/${name}`]
      if (!m || !v) {
        throw new DsdError(
          'OPTIMIZER_STATE',
          `AdamW: optimizer state lists ${name} but lacks its m/v tensors; the checkpoint is incomplete`,
          { name },
        )
      }
      this.slots.set(name, {
        m: tf.variable(tf.reshape(m, [-1]), false),
        v: tf.variable(tf.reshape(v, [-1]), false),
      })
    }
  }

  private disposeSlots(): void {
    for (const s of this.slots.values()) {
      s.m.dispose()
      s.v.dispose()
    }
    this.slots.clear()
  }

  /** Free the moment tensors. */
  dispose(): void {
    this.disposeSlots()
  }
}

/** StepLR state for checkpoints. */
export interface StepLRState {
  kind: 'steplr'
  baseLr: number
  stepSize: number
  gamma: number
  /** PyTorch `last_epoch`: how many times {@link StepLR.step} was called. */
  epoch: number
}

/**
 * `lr = baseLr · γ^⌊epoch / stepSize⌋`, stepped once per epoch (PyTorch StepLR). Use
 * `stepSize = Infinity` (or γ = 1) for a constant rate.
 */
export class StepLR {
  epoch = 0

  constructor(
    readonly baseLr: number,
    readonly stepSize: number,
    readonly gamma: number,
  ) {
    if (!(stepSize >= 1)) {
      throw new DsdError('SCHEDULER_OPTION', `StepLR: step size must be ≥ 1, got ${stepSize}`, {})
    }
  }

  /** Learning rate for epoch `epoch` (0-based; defaults to the current one). */
  lrAt(epoch = this.epoch): number {
    if (!Number.isFinite(this.stepSize)) return this.baseLr
    return this.baseLr * this.gamma ** Math.floor(epoch / this.stepSize)
  }

  /** End of an epoch: advance and return the new rate (also written to `optimizer.lr`). */
  stepEpoch(optimizer?: { lr: number }): number {
    this.epoch += 1
    const lr = this.lrAt()
    if (optimizer) optimizer.lr = lr
    return lr
  }

  state(): StepLRState {
    return {
      kind: 'steplr',
      baseLr: this.baseLr,
      stepSize: Number.isFinite(this.stepSize) ? this.stepSize : -1,
      gamma: this.gamma,
      epoch: this.epoch,
    }
  }

  static fromState(s: StepLRState): StepLR {
    const r = new StepLR(s.baseLr, s.stepSize === -1 ? Infinity : s.stepSize, s.gamma)
    r.epoch = s.epoch
    return r
  }
}

/** WarmupPolyLR state for checkpoints. */
export interface WarmupPolyLRState {
  kind: 'warmup-poly'
  baseLr: number
  warmupSteps: number
  totalSteps: number
  power: number
  /** Optimizer steps taken so far. */
  step: number
}

/**
 * Per-step schedule: a linear warm-up over `warmupSteps` (`lr = baseLr · (s + 1) / warmupSteps`),
 * then the poly decay of nnU-Net, `lr = baseLr · (1 − t)^power` with
 * `t = (s − warmupSteps) / (totalSteps − warmupSteps)`, where `s` is the 0-based step. Set the
 * rate before every optimizer step with {@link WarmupPolyLR.stepTo} (the global step), so a resumed
 * run continues the same curve.
 */
export class WarmupPolyLR {
  step = 0

  constructor(
    readonly baseLr: number,
    readonly warmupSteps: number,
    readonly totalSteps: number,
    readonly power = 0.9,
  ) {
    if (!(baseLr > 0) || !Number.isFinite(baseLr)) throw new DsdError('SCHEDULER_OPTION', `WarmupPolyLR: base rate must be > 0, got ${baseLr}`, {})
    if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new DsdError('SCHEDULER_OPTION', `WarmupPolyLR: warm-up steps must be an integer ≥ 0, got ${warmupSteps}`, {})
    if (!Number.isInteger(totalSteps) || totalSteps <= warmupSteps) {
      throw new DsdError('SCHEDULER_OPTION', `WarmupPolyLR: total steps (${totalSteps}) must be an integer above the warm-up steps (${warmupSteps})`, {})
    }
    if (!(power > 0) || !Number.isFinite(power)) throw new DsdError('SCHEDULER_OPTION', `WarmupPolyLR: power must be > 0, got ${power}`, {})
  }

  /** Learning rate of 0-based step `s` (defaults to the current one). */
  lrAt(s = this.step): number {
    if (s < this.warmupSteps) return (this.baseLr * (s + 1)) / this.warmupSteps
    const t = Math.min(1, (s - this.warmupSteps) / (this.totalSteps - this.warmupSteps))
    return this.baseLr * (1 - t) ** this.power
  }

  /** Move to 0-based step `s` and return its rate (also written to `optimizer.lr`). */
  stepTo(s: number, optimizer?: { lr: number }): number {
    this.step = s
    const lr = this.lrAt()
    if (optimizer) optimizer.lr = lr
    return lr
  }

  state(): WarmupPolyLRState {
    return { kind: 'warmup-poly', baseLr: this.baseLr, warmupSteps: this.warmupSteps, totalSteps: this.totalSteps, power: this.power, step: this.step }
  }

  static fromState(s: WarmupPolyLRState): WarmupPolyLR {
    const r = new WarmupPolyLR(s.baseLr, s.warmupSteps, s.totalSteps, s.power)
    r.step = s.step
    return r
  }
}

/** Any scheduler's checkpoint state. */
export type SchedulerState = StepLRState | WarmupPolyLRState
