/**
 * The WebAssembly runtime of the CPU kernels: one shared `WebAssembly.Memory`, one instance
 * of kernels.wasm per thread, and a pool of worker_threads that run the tasks of a job.
 *
 * - Tensors stay in JavaScript memory (the TF.js CPU backend's typed arrays). A kernel call
 *   copies its inputs into a scratch arena of the wasm heap, runs, and copies its outputs
 *   back; the arena is reset after every call. So only the largest single operation has to
 *   fit the 4 GB wasm32 heap, never the whole network.
 * - A job is an op code plus a descriptor in wasm memory, split into tasks that depend only
 *   on the problem's shape. The calling thread and the workers claim tasks from one atomic
 *   counter (compare-exchange on a word tagged with the job's generation), so a worker that
 *   is descheduled on a busy machine delays nothing: the others take its share. Because the
 *   partition is fixed, results do not depend on the thread count or on scheduling.
 * - Calls are synchronous (TF.js kernels are): the caller runs tasks itself, then blocks in
 *   `Atomics.wait` until the workers' claimed tasks are done. Workers sleep in `Atomics.wait`
 *   between jobs, are `unref()`ed (they never keep the process alive) and live until
 *   {@link shutdownCpuRuntime} or the end of the owning thread. The pool works from the main
 *   thread and from inside a worker thread (one runtime per thread that uses it).
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { DsdError } from '../../../errors'
import { KERNELS_WASM_BASE64 } from './kernels-wasm'

/** Control words (Int32 indices into the control block). */
const GEN = 0
const NEXT = 1
const NTASKS = 2
const DONE = 3
const JOB = 4
const STOP = 5
const ERR = 6
const CTRL_BYTES = 64
/** Atomic polls before a waiting thread sleeps (≈ 0.1–0.3 ms). */
const SPIN = 20000
const OP_MULTI = 40
const JOB_BYTES = 4096
const WORKER_STACK = 256 * 1024
const PAGE = 65536
const MAX_PAGES = 65536
/** A task index is 16 bits of the NEXT word; 0xffff marks a finished job. */
export const MAX_TASKS = 0xfff0

interface KernelExports {
  run_task(job: number, task: number): void
  pack_b(
    dst: number,
    src: number,
    taps: number,
    toff: number,
    k: number,
    n: number,
    sk: number,
    sn: number,
    nr: number,
  ): void
  set_stack_pointer(sp: number): void
  __heap_base: { value: number }
}

/** The parts of the WebAssembly JS API used here (the Node typings do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBufferLike
  grow(pages: number): number
}
interface WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory
  Module: new (bytes: Uint8Array) => object
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> }
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

/** Worker thread body (CommonJS, evaluated from a string so that bundling needs no file). */
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads')
const { module, memory, ctrl, stackTop } = workerData
const inst = new WebAssembly.Instance(module, { env: { memory } })
inst.exports.set_stack_pointer(stackTop)
const run = inst.exports.run_task
const I = new Int32Array(memory.buffer, ctrl, ${CTRL_BYTES / 4})
let seen = Atomics.load(I, ${GEN})
let idle = 0
for (;;) {
  const g = Atomics.load(I, ${GEN})
  if (g === seen) {
    // jobs come in bursts: spin briefly before sleeping, so that the next one finds us awake
    if (++idle > ${SPIN}) { Atomics.wait(I, ${GEN}, g); idle = 0 }
    continue
  }
  idle = 0
  seen = g
  if (Atomics.load(I, ${STOP}) !== 0) break
  const tag = g & 0xffff
  const job = Atomics.load(I, ${JOB})
  const n = Atomics.load(I, ${NTASKS})
  for (;;) {
    const v = Atomics.load(I, ${NEXT})
    if ((v >>> 16) !== tag || (v & 0xffff) >= n) break
    if (Atomics.compareExchange(I, ${NEXT}, v, v + 1) !== v) continue
    try { run(job, v & 0xffff) } catch (e) {
      Atomics.store(I, ${ERR}, 1)
      parentPort.postMessage(String((e && e.stack) || e))
    }
    if (Atomics.add(I, ${DONE}, 1) + 1 === n) Atomics.notify(I, ${DONE})
  }
}
`

function decodeBase64(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64, 'base64'))
}

function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name])
  return Number.isInteger(v) && v > 0 ? v : fallback
}

/**
 * Jobs below these sizes run on the calling thread only: waking the pool and waiting for the
 * last task cost more than they save (most of all on a busy machine). Multiply-adds for
 * convolutions, elements for memory-bound kernels; `DSD_CPU_PARALLEL_MACS` /
 * `DSD_CPU_PARALLEL_ELEMENTS` override them (tuning).
 */
export const PARALLEL_MACS = envInt('DSD_CPU_PARALLEL_MACS', 1 << 21)
export const PARALLEL_ELEMENTS = envInt('DSD_CPU_PARALLEL_ELEMENTS', 1 << 17)

/** Threads a runtime uses: `DSD_CPU_THREADS`, else every core. */
export function defaultThreads(): number {
  const env = Number(process.env.DSD_CPU_THREADS)
  if (Number.isInteger(env) && env >= 1) return env
  return Math.max(1, availableParallelism())
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GB`
}

/** One heap allocation: its byte offset in wasm memory. */
export type Ptr = number

/**
 * The shared memory, this thread's kernel instance, the scratch arena and the worker pool.
 * Use {@link cpuRuntime} for the per-thread singleton.
 */
export class CpuRuntime {
  readonly threads: number
  readonly memory: WasmMemory
  readonly module: object
  readonly exports: KernelExports
  private readonly ctrl: Int32Array
  private readonly ctrlPtr: number
  readonly jobPtr: number
  private readonly arenaBase: number
  private top: number
  private f32: Float32Array
  private i32: Int32Array
  private workers: Worker[] = []
  private gen = 0
  private workerErrors: string[] = []
  /** Largest arena size used so far (bytes). */
  peakArenaBytes = 0

  constructor(threads = defaultThreads()) {
    this.threads = threads
    this.module = new Wasm.Module(decodeBase64(KERNELS_WASM_BASE64))
    this.memory = new Wasm.Memory({ initial: 64, maximum: MAX_PAGES, shared: true })
    const inst = new Wasm.Instance(this.module, { env: { memory: this.memory } })
    this.exports = inst.exports as unknown as KernelExports
    const base = align(Number(this.exports.__heap_base.value), 64)
    this.ctrlPtr = base
    this.jobPtr = base + CTRL_BYTES
    const stacks = base + CTRL_BYTES + JOB_BYTES
    this.arenaBase = align(stacks + Math.max(0, threads - 1) * WORKER_STACK, 64)
    this.top = this.arenaBase
    this.ensureBytes(this.arenaBase + PAGE)
    this.f32 = new Float32Array(this.memory.buffer)
    this.i32 = new Int32Array(this.memory.buffer)
    this.ctrl = new Int32Array(this.memory.buffer, this.ctrlPtr, CTRL_BYTES / 4)
  }

  /** Float32 view of the whole heap (refreshed after growth). */
  get F32(): Float32Array {
    if (this.f32.buffer.byteLength !== this.memory.buffer.byteLength) this.refreshViews()
    return this.f32
  }

  /** Int32 view of the whole heap (refreshed after growth). */
  get I32(): Int32Array {
    if (this.i32.buffer.byteLength !== this.memory.buffer.byteLength) this.refreshViews()
    return this.i32
  }

  private refreshViews(): void {
    this.f32 = new Float32Array(this.memory.buffer)
    this.i32 = new Int32Array(this.memory.buffer)
  }

  private ensureBytes(end: number): void {
    const have = this.memory.buffer.byteLength
    if (end <= have) return
    const pages = Math.ceil((end - have) / PAGE)
    const total = have / PAGE + pages
    if (total > MAX_PAGES) {
      throw new DsdError(
        'CPU_KERNEL_MEMORY',
        `a CPU kernel needs ${gib(end)} of scratch memory for one operation, more than the 4 GB ` +
          `a WebAssembly heap can hold. Use a smaller patch or batch, a smaller preset, or a GPU backend`,
        { bytes: end },
      )
    }
    try {
      this.memory.grow(pages)
    } catch (err) {
      throw new DsdError(
        'CPU_KERNEL_MEMORY',
        `a CPU kernel could not grow its scratch memory to ${gib(end)} (${(err as Error).message}). ` +
          `Free memory, or use a smaller patch or batch, a smaller preset, or a GPU backend`,
        { bytes: end },
      )
    }
    this.refreshViews()
  }

  /** Reserve `bytes` in the arena (64-byte aligned, with 64 bytes of slack for vector over-reads). */
  alloc(bytes: number): Ptr {
    const p = this.top
    const end = align(p + bytes + 64, 64)
    this.ensureBytes(end)
    this.top = end
    this.peakArenaBytes = Math.max(this.peakArenaBytes, end - this.arenaBase)
    return p
  }

  /** Allocate and fill with float32 values. */
  put(values: Float32Array): Ptr {
    const p = this.alloc(values.length * 4)
    this.F32.set(values, p >> 2)
    return p
  }

  /** Allocate and fill with int32 values. */
  putInt(values: ArrayLike<number>): Ptr {
    const p = this.alloc(values.length * 4)
    this.I32.set(values, p >> 2)
    return p
  }

  /** Allocate `n` zeroed floats. */
  zeros(n: number): Ptr {
    const p = this.alloc(n * 4)
    this.F32.fill(0, p >> 2, (p >> 2) + n)
    return p
  }

  /** Allocate and fill with float64 values. */
  putF64(values: ArrayLike<number>): Ptr {
    const p = this.alloc(values.length * 8)
    new Float64Array(this.memory.buffer, p, values.length).set(values)
    return p
  }

  /** Float64 view of `n` values at `p` (valid until the heap grows). */
  f64(p: Ptr, n: number): Float64Array {
    return new Float64Array(this.memory.buffer, p, n)
  }

  /** Copy `n` floats out of the heap. */
  read(p: Ptr, n: number): Float32Array {
    return this.F32.slice(p >> 2, (p >> 2) + n)
  }

  /** Release everything allocated since `mark` (default: the whole arena). */
  reset(mark = this.arenaBase): void {
    this.top = mark
  }

  /** The current arena top, for {@link reset}. */
  mark(): number {
    return this.top
  }

  /**
   * Write a job (op code + int32 fields) to the job area and run its `ntasks` tasks, on every
   * thread unless `parallel` is false (small jobs: waking the pool would cost more).
   */
  run(op: number, fields: number[], ntasks: number, parallel = true): void {
    if (fields.length + 1 > JOB_BYTES / 4) throw new Error('cpu kernels: job descriptor too long')
    this.writeJob(this.jobPtr, op, fields)
    this.timed(op, ntasks, () => this.runTasks(this.jobPtr, ntasks, parallel))
  }

  /** Write a job descriptor into the arena (for {@link runMany}); returns its address. */
  job(op: number, fields: number[]): Ptr {
    const p = this.alloc((fields.length + 1) * 4)
    this.writeJob(p, op, fields)
    return p
  }

  /** Run independent jobs (from {@link job}) as one: one wake-up of the pool for all of them. */
  runMany(jobs: { job: Ptr; ntasks: number }[], parallel = true): void {
    const list = jobs.filter((j) => j.ntasks > 0)
    if (list.length === 0) return
    if (list.length === 1) {
      this.timed(this.I32[list[0]!.job >> 2]!, list[0]!.ntasks, () =>
        this.runTasks(list[0]!.job, list[0]!.ntasks, parallel),
      )
      return
    }
    const total = list.reduce((n, j) => n + j.ntasks, 0)
    const multi = this.job(OP_MULTI, [list.length, ...list.flatMap((j) => [j.job, j.ntasks])])
    this.timed(OP_MULTI, total, () => this.runTasks(multi, total, parallel))
  }

  private writeJob(p: Ptr, op: number, fields: number[]): void {
    const I = this.I32
    const j = p >> 2
    I[j] = op
    for (let i = 0; i < fields.length; i++) I[j + 1 + i] = fields[i]!
  }

  private timed(op: number, ntasks: number, fn: () => void): void {
    if (!this.stats) {
      fn()
      return
    }
    const t0 = performance.now()
    fn()
    const st = (this.stats[op] ??= { jobs: 0, tasks: 0, ms: 0 })
    st.jobs++
    st.tasks += ntasks
    st.ms += performance.now() - t0
  }

  /** Parallel jobs, their tasks, the caller's share and its waiting time (with `DSD_CPU_STATS`). */
  pool: { jobs: number; tasks: number; callerTasks: number; waitMs: number } | null = process.env
    .DSD_CPU_STATS
    ? { jobs: 0, tasks: 0, callerTasks: 0, waitMs: 0 }
    : null

  /** Per-op job counts and times when `DSD_CPU_STATS` is set (for profiling), else null. */
  stats: Record<number, { jobs: number; tasks: number; ms: number }> | null = process.env
    .DSD_CPU_STATS
    ? {}
    : null

  private runTasks(job: number, ntasks: number, parallel: boolean): void {
    if (ntasks <= 0) return
    if (ntasks > MAX_TASKS) throw new Error(`cpu kernels: ${ntasks} tasks exceed ${MAX_TASKS}`)
    const run = this.exports.run_task
    if (this.threads <= 1 || ntasks === 1 || !parallel) {
      for (let t = 0; t < ntasks; t++) run(job, t)
      return
    }
    this.ensureWorkers()
    const I = this.ctrl
    Atomics.store(I, JOB, job)
    Atomics.store(I, NTASKS, ntasks)
    Atomics.store(I, DONE, 0)
    Atomics.store(I, ERR, 0)
    this.gen = (this.gen + 1) | 0
    const tag = this.gen & 0xffff
    Atomics.store(I, NEXT, tag << 16)
    Atomics.store(I, GEN, this.gen)
    Atomics.notify(I, GEN)
    let failure: unknown = null
    let mine = 0
    for (;;) {
      const v = Atomics.load(I, NEXT)
      if (v >>> 16 !== tag || (v & 0xffff) >= ntasks) break
      if (Atomics.compareExchange(I, NEXT, v, v + 1) !== v) continue
      try {
        run(job, v & 0xffff)
      } catch (err) {
        failure ??= err
      }
      mine++
      Atomics.add(I, DONE, 1)
    }
    const w0 = this.pool ? performance.now() : 0
    // the last tasks are usually almost done: spin a little before sleeping
    for (let spin = 0; ; spin++) {
      const d = Atomics.load(I, DONE)
      if (d >= ntasks) break
      if (spin >= SPIN) Atomics.wait(I, DONE, d)
    }
    Atomics.store(I, NEXT, (tag << 16) | 0xffff)
    if (this.pool) {
      this.pool.jobs++
      this.pool.tasks += ntasks
      this.pool.callerTasks += mine
      this.pool.waitMs += performance.now() - w0
    }
    if (failure) throw failure
    if (Atomics.load(I, ERR) !== 0) {
      throw new Error(
        `cpu kernels: a worker failed: ${this.workerErrors.at(-1) ?? 'unknown error'}`,
      )
    }
  }

  private ensureWorkers(): void {
    if (this.workers.length === this.threads - 1) return
    const stacks = this.jobPtr + JOB_BYTES
    for (let i = this.workers.length; i < this.threads - 1; i++) {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          module: this.module,
          memory: this.memory,
          ctrl: this.ctrlPtr,
          stackTop: stacks + (i + 1) * WORKER_STACK - 16,
        },
      })
      w.on('message', (m: unknown) => this.workerErrors.push(String(m)))
      w.on('error', (e: Error) => this.workerErrors.push(String(e?.stack ?? e)))
      w.unref()
      this.workers.push(w)
    }
  }

  /** Number of live pool workers (threads − 1 once a parallel job has run). */
  get workerCount(): number {
    return this.workers.length
  }

  /** Stop and terminate the workers. */
  async shutdown(): Promise<void> {
    const I = this.ctrl
    Atomics.store(I, STOP, 1)
    Atomics.add(I, GEN, 1)
    Atomics.notify(I, GEN)
    const ws = this.workers
    this.workers = []
    await Promise.all(ws.map((w) => w.terminate()))
  }
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a
}

let runtime: CpuRuntime | null = null

/** This thread's runtime (created on first use). */
export function cpuRuntime(): CpuRuntime {
  runtime ??= new CpuRuntime()
  return runtime
}

/** True once this thread has created its runtime. */
export function hasCpuRuntime(): boolean {
  return runtime !== null
}

/** Run `fn` with this thread's runtime; everything it allocates in the arena is released after. */
export function withArena<R>(fn: (rt: CpuRuntime) => R): R {
  const rt = cpuRuntime()
  const mark = rt.mark()
  try {
    return fn(rt)
  } finally {
    rt.reset(mark)
  }
}

/** Stop this thread's pool and drop the runtime (a later call creates a fresh one). */
export async function shutdownCpuRuntime(): Promise<void> {
  const r = runtime
  runtime = null
  if (r) await r.shutdown()
}
