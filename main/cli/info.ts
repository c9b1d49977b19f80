import { appInfo } from '../services/app'
import { workspaceRoot } from '../services/workspace-root'
import { parse, printJson } from './args'

export const summary = 'Versions, compute backends (available, chosen, and why), workspace path'
export const usage = `Usage: dsd info [--json]

Prints the app and library versions, the compute backend ladder with the reason each backend
is or is not available, the backend that would be chosen (DSD_BACKEND overrides), and the
workspace folder.`

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
  console.log(lines.join('\n'))
  return 0
}
