/**
 * Compute-backend ladder: `tfjs-node-gpu` (CUDA) → `webgpu` (Dawn) → `tfjs-node` → `wasm` →
 * `cpu`. {@link probeBackends} says what is usable here and why not; {@link chooseBackend} is
 * the pure choice; {@link initBackend} loads and activates one (explicit argument, then the
 * `DSD_BACKEND` environment variable, then the ladder).
 *
 * The native packages (`@tensorflow/tfjs-node[-gpu]`) are optional dependencies that are
 * usually missing; they are imported dynamically and their absence is reported, never thrown.
 * A software WebGPU adapter (Mesa llvmpipe/lavapipe, SwiftShader) is correct but slow: it is
 * only used when asked for by name.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DsdError } from '../errors'
import { tf } from './tf'
import { registerWasmBackend } from './kernels/cpu/backend'

/** The backends the app knows, fastest first. */
export type BackendName = 'tfjs-node-gpu' | 'webgpu' | 'tfjs-node' | 'wasm' | 'cpu'

/** The ladder order used by automatic selection. */
export const BACKEND_LADDER: readonly BackendName[] = [
  'tfjs-node-gpu',
  'webgpu',
  'tfjs-node',
  'wasm',
  'cpu',
]

/** What {@link probeBackends} found out about one backend. */
export interface BackendProbe {
  name: BackendName
  available: boolean
  /** A human sentence: why it is (not) usable. */
  reason: string
  /** Device description, e.g. the WebGPU adapter ("nvidia: NVIDIA H200"). */
  device?: string
  /** True for software WebGPU adapters (llvmpipe, SwiftShader). */
  software?: boolean
  /** WebGPU: what the adapter offers for the half-precision and matrix paths. */
  gpuFeatures?: GpuFeatures
}

/** What a WebGPU adapter offers for half precision, subgroups and subgroup matrices. */
export interface GpuFeatures {
  /** `shader-f16`: f16 arithmetic in WGSL (`dsd train --precision f16`). */
  shaderF16: boolean
  /** `subgroups`, with the adapter's subgroup sizes. */
  subgroups: boolean
  subgroupSizes?: [number, number]
  /** Dawn's experimental `chromium-experimental-subgroup-matrix` (tensor cores). */
  subgroupMatrix: boolean
  /** `adapter.info.subgroupMatrixConfigs` (filled only where that feature is exposed). */
  subgroupMatrixConfigs: { componentType: string; resultComponentType: string; M: number; N: number; K: number }[]
  /** Dawn's `allow_unsafe_apis` was enabled (DSD_WEBGPU_EXPERIMENTAL=1): experimental features are listed. */
  experimental: boolean
}

/** The result of {@link chooseBackend} / {@link initBackend}. */
export interface BackendChoice {
  name: BackendName
  reason: string
  device?: string
}

/** The TF.js registry name each of our backends registers under. */
const TF_NAME: Record<BackendName, string> = {
  'tfjs-node-gpu': 'tensorflow',
  'tfjs-node': 'tensorflow',
  webgpu: 'webgpu',
  wasm: 'wasm',
  cpu: 'cpu',
}

/** True if `name` is one of {@link BACKEND_LADDER}. */
export function isBackendName(name: string): name is BackendName {
  return (BACKEND_LADDER as readonly string[]).includes(name)
}

function parseRequested(value: string, source: string): BackendName | 'auto' {
  const v = value.trim().toLowerCase()
  if (v === '' || v === 'auto') return 'auto'
  if (isBackendName(v)) return v
  throw new DsdError(
    'BACKEND_UNKNOWN',
    `${source}: unknown backend "${value}"; use one of auto, ${BACKEND_LADDER.join(', ')}`,
    { requested: value, source },
  )
}

/**
 * Pick a backend from probe results (pure). `requested` other than 'auto' must be available,
 * otherwise this throws a DsdError that quotes the probe's reason. Automatic choice walks
 * {@link BACKEND_LADDER} and skips software WebGPU adapters.
 */
export function chooseBackend(
  probes: BackendProbe[],
  requested: BackendName | 'auto' = 'auto',
): BackendChoice {
  const byName = new Map(probes.map((p) => [p.name, p]))
  if (requested !== 'auto') {
    const p = byName.get(requested)
    if (!p || !p.available) {
      const why = p ? p.reason : 'it was not probed'
      throw new DsdError(
        'BACKEND_UNAVAILABLE',
        `backend "${requested}" was asked for but is not available: ${why}. ` +
          `Pick another with DSD_BACKEND or --backend (${availableList(probes)}), or use auto`,
        { requested, probes },
        `backend "${requested}" was asked for but is not available: ${why}. ` +
          `Choose another compute backend under Advanced in the run form (${availableList(probes)}), or Automatic`,
      )
    }
    const soft = p.software ? ' (software adapter: correct but slow)' : ''
    return { name: p.name, reason: `asked for by name${soft}`, device: p.device }
  }
  const skipped: string[] = []
  for (const name of BACKEND_LADDER) {
    const p = byName.get(name)
    if (!p) continue
    if (!p.available) {
      skipped.push(`${name}: ${p.reason}`)
      continue
    }
    if (p.software) {
      skipped.push(`${name}: ${p.reason}`)
      continue
    }
    const why = skipped.length ? `; skipped ${skipped.join('; ')}` : ''
    return { name, reason: `fastest available backend${why}`, device: p.device }
  }
  throw new DsdError(
    'BACKEND_NONE',
    `no compute backend is available: ${skipped.join('; ')}. Reinstall the app's dependencies (npm ci)`,
    { probes },
  )
}

function availableList(probes: BackendProbe[]): string {
  const names = probes.filter((p) => p.available).map((p) => p.name)
  return names.length ? `available here: ${names.join(', ')}` : 'none is available here'
}

// ---------------------------------------------------------------------------------------
// Loading the optional pieces. Each loader runs once per process and memoises its outcome.

type Loaded =
  | { ok: true; device?: string; software?: boolean; gpuFeatures?: GpuFeatures }
  | { ok: false; reason: string }

const loaders = new Map<BackendName, Promise<Loaded>>()

function once(name: BackendName, load: () => Promise<Loaded>): Promise<Loaded> {
  let p = loaders.get(name)
  if (!p) {
    p = load().catch((err: unknown) => ({
      ok: false as const,
      reason: String((err as Error)?.message ?? err),
    }))
    loaders.set(name, p)
  }
  return p
}

/** Dynamic import of an optional package whose name TypeScript must not resolve. */
async function importOptional(pkg: string): Promise<unknown> {
  return import(/* @vite-ignore */ pkg)
}

function isMissingModule(err: unknown, pkg: string): boolean {
  const e = err as { code?: string; message?: string }
  return (
    (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') &&
    String(e.message ?? '').includes(pkg)
  )
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err)
    .split('\n')[0]!
    .slice(0, 300)
}

let nativeFlavour: 'gpu' | 'cpu' | null = null

async function loadNative(flavour: 'gpu' | 'cpu'): Promise<Loaded> {
  const pkg = flavour === 'gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node'
  const needs = flavour === 'gpu' ? '; needs CUDA 11.2 + cuDNN 8.1' : ''
  if (nativeFlavour && nativeFlavour !== flavour) {
    return {
      ok: false,
      reason: `@tensorflow/tfjs-node${nativeFlavour === 'gpu' ? '-gpu' : ''} is already loaded in this process and provides the same 'tensorflow' backend`,
    }
  }
  try {
    await importOptional(pkg)
  } catch (err) {
    if (isMissingModule(err, pkg)) {
      return { ok: false, reason: `${pkg} is not installed (optional dependency${needs})` }
    }
    return { ok: false, reason: `${pkg} is installed but failed to load: ${firstLine(err)}` }
  }
  if (!tf.findBackendFactory('tensorflow')) {
    return { ok: false, reason: `${pkg} loaded but did not register the 'tensorflow' backend` }
  }
  nativeFlavour = flavour
  return {
    ok: true,
    device: flavour === 'gpu' ? 'libtensorflow (CUDA build)' : 'libtensorflow (CPU build)',
  }
}

/** Make `navigator.gpu` (Dawn) exist in Node. Returns the GPU object. */
async function installNavigatorGpu(): Promise<{
  requestAdapter: (o?: object) => Promise<unknown>
}> {
  const g = globalThis as { navigator?: { gpu?: unknown } }
  if (g.navigator?.gpu) return g.navigator.gpu as never
  if (!process.env.XDG_RUNTIME_DIR) {
    // Mesa warns (and some drivers misbehave) without it.
    process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'dsd-xdg-'))
  }
  let mod: { create: (opts: string[]) => unknown; globals: Record<string, unknown> }
  try {
    mod = (await importOptional('webgpu')) as typeof mod
  } catch (err) {
    if (isMissingModule(err, 'webgpu')) {
      throw new Error('the "webgpu" package (Dawn for Node) is not installed')
    }
    throw new Error(`the "webgpu" package (Dawn for Node) failed to load: ${firstLine(err)}`)
  }
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v
  }
  // Dawn lists its experimental features (subgroup matrices) only with allow_unsafe_apis:
  // opt-in, since it also lifts some of Dawn's validation
  const gpu = mod.create(experimentalWebgpu() ? ['enable-dawn-features=allow_unsafe_apis'] : [])
  if (g.navigator) {
    Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true })
  } else {
    Object.defineProperty(globalThis, 'navigator', {
      value: { gpu },
      configurable: true,
      writable: true,
    })
  }
  return gpu as never
}

/** True when DSD_WEBGPU_EXPERIMENTAL=1 asks for Dawn's experimental features. */
function experimentalWebgpu(): boolean {
  return process.env.DSD_WEBGPU_EXPERIMENTAL === '1'
}

function gpuFeaturesOf(adapter: AdapterLike): GpuFeatures {
  const info = adapter.info ?? {}
  const min = Number(info.subgroupMinSize)
  const max = Number(info.subgroupMaxSize)
  const configs = Array.isArray(info.subgroupMatrixConfigs) ? (info.subgroupMatrixConfigs as Record<string, unknown>[]) : []
  return {
    shaderF16: adapter.features.has('shader-f16'),
    subgroups: adapter.features.has('subgroups'),
    ...(min > 0 && max > 0 ? { subgroupSizes: [min, max] as [number, number] } : {}),
    subgroupMatrix: adapter.features.has('chromium-experimental-subgroup-matrix'),
    subgroupMatrixConfigs: configs.map((c) => ({
      componentType: String(c.componentType),
      resultComponentType: String(c.resultComponentType),
      M: Number(c.M),
      N: Number(c.N),
      K: Number(c.K),
    })),
    experimental: experimentalWebgpu(),
  }
}

interface AdapterLike {
  info?: Record<string, unknown>
  limits: Record<string, number>
  features: Set<string>
  isFallbackAdapter?: boolean
  requestDevice(d: object): Promise<unknown>
}

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software|softpipe|warp/i

/** Limits raised to what the adapter allows (the defaults are too small for 3D work). */
const RAISED_LIMITS = [
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeInvocationsPerWorkgroup',
  'maxBindGroups',
]

function describeAdapter(info: Record<string, unknown> | undefined): string {
  if (!info) return 'unknown adapter'
  const parts = [info.vendor, info.description || info.device || info.architecture]
    .map((s) => String(s ?? '').trim())
    .filter(Boolean)
  return parts.length ? parts.join(': ') : 'unknown adapter'
}

async function loadWebgpu(): Promise<Loaded> {
  let gpu
  try {
    gpu = await installNavigatorGpu()
  } catch (err) {
    return { ok: false, reason: firstLine(err) }
  }
  const adapter = (await gpu.requestAdapter({
    powerPreference: 'high-performance',
  })) as AdapterLike | null
  if (!adapter) {
    return {
      ok: false,
      reason:
        'no WebGPU adapter: Dawn found no Vulkan/Metal/D3D12 driver (on Linux install libvulkan1 and a Vulkan driver, e.g. mesa-vulkan-drivers)',
    }
  }
  const info = adapter.info
  const device = describeAdapter(info)
  const software =
    adapter.isFallbackAdapter === true ||
    info?.isFallbackAdapter === true ||
    info?.architecture === 'software' ||
    SOFTWARE_ADAPTER.test(device)
  let webgpuMod: { WebGPUBackend: new (device: unknown, info: unknown) => tf.KernelBackend }
  try {
    webgpuMod = (await import('@tensorflow/tfjs-backend-webgpu')) as never
  } catch (err) {
    return {
      ok: false,
      reason: `@tensorflow/tfjs-backend-webgpu failed to load: ${firstLine(err)}`,
    }
  }
  // Replace the package's own factory with one that asks for the adapter's higher limits
  // (more storage buffers per shader, bigger dispatches) and reuses this adapter.
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu')
  tf.registerBackend(
    'webgpu',
    async () => {
      const requiredLimits: Record<string, number> = {}
      for (const k of RAISED_LIMITS) {
        const v = adapter.limits[k]
        if (typeof v === 'number') requiredLimits[k] = v
      }
      const wanted = ['timestamp-query', 'shader-f16', 'subgroups']
      // offered only with DSD_WEBGPU_EXPERIMENTAL=1 (allow_unsafe_apis): tensor-core matrices
      if (experimentalWebgpu()) wanted.push('chromium-experimental-subgroup-matrix')
      const requiredFeatures = wanted.filter((f) => adapter.features.has(f))
      const dev = await adapter.requestDevice({ requiredLimits, requiredFeatures })
      return new webgpuMod.WebGPUBackend(dev, info)
    },
    // Never auto-selected by tf.ready(): the ladder decides.
    0,
  )
  return { ok: true, device, software, gpuFeatures: gpuFeaturesOf(adapter) }
}

// ---- CPU kernels: the `wasm` backend is the engine's own (kernels/cpu/backend.ts)
async function loadWasm(): Promise<Loaded> {
  if (typeof (globalThis as { WebAssembly?: unknown }).WebAssembly !== 'object')
    return { ok: false, reason: 'WebAssembly is not available' }
  try {
    return { ok: true, device: registerWasmBackend() }
  } catch (err) {
    return { ok: false, reason: `the WebAssembly SIMD kernels failed to start: ${firstLine(err)}` }
  }
}
// ---- end CPU kernels

function loadFor(name: BackendName): Promise<Loaded> {
  switch (name) {
    case 'tfjs-node-gpu':
      return once(name, () => loadNative('gpu'))
    case 'tfjs-node':
      return once(name, () => loadNative('cpu'))
    case 'webgpu':
      return once(name, loadWebgpu)
    case 'wasm':
      return once(name, loadWasm)
    case 'cpu':
      return once(name, async () => ({ ok: true, device: 'JavaScript (reference)' }))
  }
}

function toProbe(name: BackendName, l: Loaded): BackendProbe {
  if (!l.ok) return { name, available: false, reason: l.reason }
  if (name === 'webgpu' && l.software) {
    return {
      name,
      available: true,
      software: true,
      device: l.device,
      reason: `WebGPU adapter is ${l.device} (software rendering on the CPU): not chosen unless asked for`,
      ...(l.gpuFeatures ? { gpuFeatures: l.gpuFeatures } : {}),
    }
  }
  const reasons: Record<BackendName, string> = {
    'tfjs-node-gpu': 'native TensorFlow with CUDA',
    webgpu: `WebGPU adapter ${l.device}`,
    'tfjs-node': 'native TensorFlow on the CPU',
    wasm: 'WebAssembly SIMD kernels on every core; tensors in JavaScript memory (no 4 GB heap limit)',
    cpu: 'plain JavaScript: always available, slowest, the numerical reference',
  }
  return {
    name,
    available: true,
    reason: reasons[name],
    device: l.device,
    software: l.software,
    ...(l.gpuFeatures ? { gpuFeatures: l.gpuFeatures } : {}),
  }
}

/**
 * Find out which backends are usable here, in ladder order. Loads the optional packages (once
 * per process) and asks Dawn for a WebGPU adapter; never throws for a missing backend.
 */
export async function probeBackends(): Promise<BackendProbe[]> {
  const out: BackendProbe[] = []
  for (const name of BACKEND_LADDER) out.push(toProbe(name, await loadFor(name)))
  return out
}

let current: BackendChoice | null = null

/** The backend chosen by the last successful {@link initBackend}, or null. */
export function currentBackend(): BackendChoice | null {
  return current
}

/**
 * Load and activate a backend. Order: the explicit argument, then `DSD_BACKEND`, then the
 * ladder. Asking for an unavailable backend (argument or env) throws a DsdError saying why.
 * On the automatic path a backend that fails to initialise is skipped with its reason.
 */
export async function initBackend(name: BackendName | 'auto' = 'auto'): Promise<BackendChoice> {
  let requested: BackendName | 'auto' = name
  let source = 'argument'
  if (requested === 'auto' && process.env.DSD_BACKEND) {
    requested = parseRequested(process.env.DSD_BACKEND, 'DSD_BACKEND')
    source = 'DSD_BACKEND'
  } else if (requested !== 'auto') {
    requested = parseRequested(requested, 'backend')
  }
  // Probe only what is needed: the named backend, or the ladder down to the first usable one.
  const probes: BackendProbe[] = []
  if (requested !== 'auto') {
    probes.push(toProbe(requested, await loadFor(requested)))
  } else {
    for (const n of BACKEND_LADDER) {
      const p = toProbe(n, await loadFor(n))
      probes.push(p)
      if (p.available && !p.software) break
    }
  }
  for (;;) {
    const choice = chooseBackend(probes, requested)
    const ok = await activate(choice.name)
    if (ok === true) {
      const reason = requested === 'auto' ? choice.reason : `${choice.reason} (${source})`
      current = { ...choice, reason }
      return current
    }
    if (requested !== 'auto') {
      throw new DsdError(
        'BACKEND_INIT_FAILED',
        `backend "${choice.name}" (${source}) failed to start: ${ok}. Pick another backend or use auto`,
        { requested: choice.name },
      )
    }
    const p = probes.find((q) => q.name === choice.name)!
    p.available = false
    p.reason = `failed to start: ${ok}`
    // continue down the ladder past the failed one
    for (const n of BACKEND_LADDER.slice(BACKEND_LADDER.indexOf(p.name) + 1)) {
      if (probes.some((q) => q.name === n)) continue
      const q = toProbe(n, await loadFor(n))
      probes.push(q)
      if (q.available && !q.software) break
    }
  }
}

/** `tf.setBackend` with errors turned into a reason string. */
async function activate(name: BackendName): Promise<true | string> {
  const tfName = TF_NAME[name]
  try {
    const ok = await tf.setBackend(tfName)
    if (!ok) return `TensorFlow.js could not initialise '${tfName}'`
    await tf.ready()
    if (tfName === 'cpu') {
      // Silence the one-time "install tfjs-node" banner: the ladder already reports it.
      ;(tf.backend() as unknown as { firstUse?: boolean }).firstUse = false
    }
    return true
  } catch (err) {
    return firstLine(err)
  }
}
