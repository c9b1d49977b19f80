import { readRunState } from '../workspace/runs'
import { workspaceRoot } from '../services/workspace-root'
import { sweepOnce } from '../workspace/sweep'
import { CliError, parse } from './args'
import { report, runQueued } from './train'

export const summary = 'Resume runs from their last checkpoint'
export const usage = `Usage: dsd resume <run> [<run> …] [--workspace DIR] [--json]

Continues each run after its last completed epoch (the checkpoint written at the end of every
epoch). A completed run is left as it is.`

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, json: { type: 'boolean' } })
  if (positionals.length === 0) throw new CliError('name at least one run (its folder name under runs/)')
  const workspace = workspaceRoot(values.workspace)
  await sweepOnce(workspace) // what killed processes left (staging folders, temp files)
  const todo: string[] = []
  for (const id of positionals) {
    const state = await readRunState(workspace, id)
    if (state.status === 'completed') console.error(`[${id}] already completed (${state.epoch} epochs)`)
    else todo.push(id)
  }
  const states = await runQueued(workspace, todo)
  return report(workspace, positionals, await Promise.all(positionals.map(async (id) => states[todo.indexOf(id)] ?? (await readRunState(workspace, id)))), values.json)
}
