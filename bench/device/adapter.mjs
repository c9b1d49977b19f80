/* global process, console */
// Prints the WebGPU adapter's info, features and limits as JSON, with Dawn's unsafe APIs
// allowed so that experimental features (chromium-experimental-subgroup-matrix) and
// `info.subgroupMatrixConfigs` show when the driver offers them. Used by run.sh:
//   node bench/device/adapter.mjs   (needs the `webgpu` package in node_modules)
import { createRequire } from 'module'
const require = createRequire(import.meta.url)
const { create, globals } = require(process.env.WEBGPU_MODULE || 'webgpu')
Object.assign(globalThis, globals)
const plain = (o) => {
  const out = {}
  for (const k in o) {
    const v = o[k]
    if (typeof v === 'function') continue
    out[k] = Array.isArray(v) ? v.map((e) => (typeof e === 'object' ? plain(e) : e)) : v
  }
  return out
}
const result = {}
for (const [label, flags] of [
  ['default', []],
  ['unsafe', ['enable-dawn-features=allow_unsafe_apis']],
]) {
  try {
    const gpu = create(flags)
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' })
    if (!adapter) {
      result[label] = { error: 'no adapter' }
      continue
    }
    const info = plain(adapter.info ?? {})
    result[label] = {
      info,
      subgroupMatrixConfigs: info.subgroupMatrixConfigs ?? null,
      features: [...adapter.features].sort(),
      limits: {
        maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
      },
    }
  } catch (e) {
    result[label] = { error: String(e?.message ?? e) }
  }
}
console.log(JSON.stringify(result, null, 2))
process.exit(0)
