import { appInfo } from '../services/app'
import { workspaceRoot } from '../services/workspace-root'
import { parse, printJson } from './args'

export const summary = 'Versions, compute backends (available, chosen, and why), workspace path'
export const usage = `Usage: dsd info [--json]

Prints the app and library versions, the compute backend ladder with the reason each backend
is or is not available, the backend that would be chosen (DSD_BACKEND overrides), the
workspace folder, and what the WebGPU adapter offers for half precision: shader-f16 (what
\`--precision f16\` needs), subgroups, and Dawn's experimental subgroup matrices (tensor
cores; listed only with DSD_WEBGPU_EXPERIMENTAL=1, which enables Dawn's allow_unsafe_apis).`

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } }, false)
  const info = await appInfo('in-process', workspaceRoot())
  if (values.json) {
    printJson(info)
    return 0
  }
  const { backend, backends } = info
  const lines = [
    `DSD Studio ${info.version} — Node ${info.versions.node}, ${info.platform}/${info.arch}`,
    `TensorFlow.js ${info.versions.tfjs ?? 'not installed'}`,
    `workspace: ${info.workspace}`,
    `backend:   ${backend.name ?? 'none'}${backend.device ? ` (${backend.device})` : ''} — ${backend.reason}`,
    '',
    'backend ladder:',
    ...backends.map((b) => `  ${b.available ? '✓' : '✗'} ${b.name.padEnd(14)} ${b.reason}`),
  ]
  const g = backends.find((b) => b.name === 'webgpu')?.gpuFeatures
  if (g) {
    const yes = (v: boolean) => (v ? 'yes' : 'no')
    const configs = g.subgroupMatrixConfigs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`)
    lines.push(
      '',
      'WebGPU adapter features:',
      `  shader-f16         ${yes(g.shaderF16)}${g.shaderF16 ? ' (dsd train/bench --precision f16 runs at half precision)' : ' (--precision f16 falls back to f32)'}`,
      `  subgroups          ${yes(g.subgroups)}${g.subgroupSizes ? ` (sizes ${g.subgroupSizes[0]}–${g.subgroupSizes[1]})` : ''}`,
      `  subgroup matrices  ${g.subgroupMatrix ? `yes: ${configs.join(', ') || 'no configurations'}` : g.experimental ? 'no' : 'not listed (set DSD_WEBGPU_EXPERIMENTAL=1 to ask Dawn for experimental features)'}`,
    )
  }
  console.log(lines.join('\n'))
  return 0
}
