/**
 * WebGPU in tests: Mesa lavapipe in CI. Without an adapter a WebGPU test prints
 * "webgpu: not run: <reason>" and is skipped; DSD_REQUIRE_WEBGPU=1 makes that a failure.
 */
import { expect, type TestContext } from 'vitest'
import { probeBackends } from '../../main/engine/backends'

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
