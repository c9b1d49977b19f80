import { appVersion } from '../version'
import { backendInfo } from '../services/app'
import { parse, printJson } from './args'
import { workspaceRoot } from '../services/workspace-root'

export const summary = 'Versions, compute backends (available, chosen, and why), workspace path'
export const usage = `Usage: dsd info [--json]

Prints the app and library versions, the compute backend ladder with the reason each backend
is or is not available, the backend that would be chosen (DSD_BACKEND overrides), and the
workspace folder.`

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } }, false)
  const { backend, backends } = await backendInfo()
  const info = {
    name: 'DSD Studio',
    version: appVersion(),
    versions: {
      node: process.versions.node,
      v8: process.versions.v8,
      electron: (process.versions as Record<string, string | undefined>).electron ?? null,
      tfjs: backends.length ? await tfjsCoreVersion() : null,
    },
    platform: process.platform,
    arch: process.arch,
    workspace: workspaceRoot(),
    backend,
    backends,
  }
  if (values.json) {
    printJson(info)
    return 0
  }
  const lines = [
    `DSD Studio ${info.version} — Node ${info.versions.node}, ${info.platform}/${info.arch}`,
    `TensorFlow.js ${info.versions.tfjs ?? 'not loaded'}`,
    `workspace: ${info.workspace}`,
    `backend:   ${backend.name ?? 'none'}${backend.device ? ` (${backend.device})` : ''} — ${backend.reason}`,
    '',
    'backend ladder:',
    ...backends.map(
      (b) => `  ${b.available ? '✓' : '✗'} ${b.name.padEnd(14)} ${b.reason}`,
    ),
  ]
  console.log(lines.join('\n'))
  return 0
}

async function tfjsCoreVersion(): Promise<string | null> {
  const { createRequire } = await import('node:module')
  const { readFileSync } = await import('node:fs')
  try {
    const path = createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/package.json')
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version
  } catch {
    return null
  }
}
