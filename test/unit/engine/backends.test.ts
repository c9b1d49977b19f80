import { afterEach, describe, expect, test } from 'vitest'
import {
  BACKEND_LADDER,
  chooseBackend,
  currentBackend,
  initBackend,
  probeBackends,
  type BackendProbe,
} from '../../../main/engine/backends'
import { DsdError } from '../../../main/errors'
import { tf } from '../../../main/engine/tf'

const P = (
  name: BackendProbe['name'],
  available: boolean,
  extra: Partial<BackendProbe> = {},
): BackendProbe => ({
  name,
  available,
  reason: available ? `${name} works` : `${name} is missing`,
  ...extra,
})

describe('chooseBackend (pure)', () => {
  test('walks the ladder: CUDA first, then hardware WebGPU, tfjs-node, wasm, cpu', () => {
    const all = BACKEND_LADDER.map((n) => P(n, true))
    expect(chooseBackend(all).name).toBe('tfjs-node-gpu')
    expect(chooseBackend([P('tfjs-node-gpu', false), ...all.slice(1)]).name).toBe('webgpu')
    const noGpu = [
      P('tfjs-node-gpu', false),
      P('webgpu', false),
      P('tfjs-node', true),
      P('wasm', true),
      P('cpu', true),
    ]
    const c = chooseBackend(noGpu)
    expect(c.name).toBe('tfjs-node')
    expect(c.reason).toContain('tfjs-node-gpu is missing')
    expect(chooseBackend([P('wasm', false), P('cpu', true)]).name).toBe('cpu')
  })

  test('a software WebGPU adapter is skipped unless asked for by name', () => {
    const probes = [
      P('tfjs-node-gpu', false),
      P('webgpu', true, {
        software: true,
        device: 'mesa: llvmpipe',
        reason: 'WebGPU adapter is llvmpipe (software)',
      }),
      P('tfjs-node', false),
      P('wasm', true),
      P('cpu', true),
    ]
    const auto = chooseBackend(probes)
    expect(auto.name).toBe('wasm')
    expect(auto.reason).toMatch(/webgpu: WebGPU adapter is llvmpipe/)
    const asked = chooseBackend(probes, 'webgpu')
    expect(asked).toMatchObject({ name: 'webgpu', device: 'mesa: llvmpipe' })
    expect(asked.reason).toMatch(/software/)
  })

  test('asking for an unavailable backend throws a DsdError that says why and what is available', () => {
    const probes = [
      P('tfjs-node-gpu', false, { reason: 'tfjs-node-gpu is not installed (needs CUDA)' }),
      P('cpu', true),
    ]
    let err: unknown
    try {
      chooseBackend(probes, 'tfjs-node-gpu')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(DsdError)
    expect((err as DsdError).code).toBe('BACKEND_UNAVAILABLE')
    expect((err as DsdError).message).toMatch(
      /tfjs-node-gpu is not installed \(needs CUDA\).*available here: cpu/,
    )
    expect(() => chooseBackend([P('cpu', false)])).toThrow(/no compute backend is available/)
  })
})

describe('probeBackends / initBackend on this machine', () => {
  const saved = process.env.DSD_BACKEND
  afterEach(async () => {
    if (saved === undefined) delete process.env.DSD_BACKEND
    else process.env.DSD_BACKEND = saved
    await initBackend('cpu')
  })

  test('probes every ladder rung with a human reason; cpu and wasm always work', async () => {
    const probes = await probeBackends()
    expect(probes.map((p) => p.name)).toEqual([...BACKEND_LADDER])
    for (const p of probes) expect(p.reason.length, p.name).toBeGreaterThan(10)
    expect(probes.find((p) => p.name === 'cpu')!.available).toBe(true)
    expect(probes.find((p) => p.name === 'wasm')!.available).toBe(true)
    const node = probes.find((p) => p.name === 'tfjs-node')!
    if (!node.available) expect(node.reason).toMatch(/@tensorflow\/tfjs-node/)
    const gpu = probes.find((p) => p.name === 'webgpu')!
    console.info(`webgpu probe: ${gpu.available ? 'available' : 'unavailable'}: ${gpu.reason}`)
  })

  test('auto picks what chooseBackend picks; the explicit argument wins over DSD_BACKEND', async () => {
    delete process.env.DSD_BACKEND
    const auto = await initBackend()
    expect(auto.name).toBe(chooseBackend(await probeBackends()).name)
    expect(currentBackend()).toEqual(auto)
    process.env.DSD_BACKEND = 'cpu'
    expect((await initBackend()).name).toBe('cpu')
    expect(tf.getBackend()).toBe('cpu')
    expect((await initBackend()).reason).toMatch(/DSD_BACKEND/)
    expect((await initBackend('wasm')).name).toBe('wasm')
    expect(tf.getBackend()).toBe('wasm')
  })

  test('bad or unavailable requests are clear errors', async () => {
    process.env.DSD_BACKEND = 'cuda'
    await expect(initBackend()).rejects.toThrow(
      /DSD_BACKEND: unknown backend "cuda"; use one of auto, tfjs-node-gpu/,
    )
    delete process.env.DSD_BACKEND
    const probes = await probeBackends()
    const missing = probes.find((p) => !p.available)
    if (missing) {
      await expect(initBackend(missing.name)).rejects.toThrow(
        new RegExp(`backend "${missing.name}" was asked for but is not available`),
      )
    }
  })
})
