/**
 * WebGPU in tests: Mesa lavapipe in CI. Without an adapter a WebGPU test prints
 * "webgpu: not run: <reason>" and is skipped; DSD_REQUIRE_WEBGPU=1 makes that a failure.
 */
import { expect, type TestContext } from 'vitest'
import { initBackend, probeBackends } from '../../main/engine/backends'
import { checkKernelCompilation } from '../../main/engine/kernels/webgpu'
import { tf } from '../../main/engine/tf'

/** Why the webgpu backend cannot run here, or undefined when it can. */
export async function webgpuUnavailable(): Promise<string | undefined> {
  const p = (await probeBackends()).find((q) => q.name === 'webgpu')
  return p?.available ? undefined : (p?.reason ?? 'webgpu was not probed')
}

/** Skip `ctx` (fail under DSD_REQUIRE_WEBGPU=1) when `why` says WebGPU is unavailable. */
export function skipUnlessWebgpu(ctx: TestContext, why: string | undefined): boolean {
  if (!why) return false
  const line = `webgpu: not run: ${why}`
  console.warn(`\n!!!!!!!!!! ${line} !!!!!!!!!!\n`)
  if (process.env.DSD_REQUIRE_WEBGPU === '1') expect.fail(line)
  ctx.skip()
  return true
}

/**
 * Run `f` on `backend` and read every result back (async: WebGPU has no dataSync in Node); on
 * WebGPU a shader that failed to compile fails the call.
 */
export async function runOn(
  backend: 'cpu' | 'webgpu',
  f: () => Record<string, tf.Tensor>,
): Promise<Record<string, Float32Array>> {
  await initBackend(backend)
  const kept = tf.tidy(() => {
    const r = f()
    for (const t of Object.values(r)) tf.keep(t)
    return r
  })
  const out: Record<string, Float32Array> = {}
  for (const [k, t] of Object.entries(kept)) {
    out[k] = (await t.data()) as Float32Array
    t.dispose()
  }
  await checkKernelCompilation().catch((e) => {
    if (backend === 'webgpu') throw e
  })
  return out
}
