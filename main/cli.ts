/**
 * The `dsd` command line. Each command lives in main/cli/<name>.ts and exports
 * `run(args: string[]): Promise<number>` plus a one-line `summary`.
 */
import { CliError } from './cli/args'

type CommandModule = { run(args: string[]): Promise<number>; summary: string; usage?: string }

/** Command name → lazy loader, so `dsd info` does not load TensorFlow.js or Vue. */
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  info: () => import('./cli/info'),
  serve: () => import('./cli/serve'),
  model: () => import('./cli/model'),
  bench: () => import('./cli/bench'),
  inspect: () => import('./cli/inspect'),
  convert: () => import('./cli/convert'),
  import: () => import('./cli/import'),
  audit: () => import('./cli/audit'),
  split: () => import('./cli/split'),
  metrics: () => import('./cli/metrics'),
  train: () => import('./cli/train'),
  resume: () => import('./cli/resume'),
  predict: () => import('./cli/predict'),
  evaluate: () => import('./cli/evaluate'),
  export: () => import('./cli/export'),
  demo: () => import('./cli/demo'),
}

async function help(): Promise<void> {
  const lines = ['Usage: dsd <command> [options]', '', 'Commands:']
  for (const [name, load] of Object.entries(COMMANDS)) {
    try {
      lines.push(`  ${name.padEnd(10)} ${(await load()).summary}`)
    } catch {
      lines.push(`  ${name.padEnd(10)} (unavailable in this build)`)
    }
  }
  lines.push('', 'Run `dsd <command> --help` for the options of one command.')
  console.log(lines.join('\n'))
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    await help()
    return name ? 0 : 1
  }
  if (name === '--version' || name === '-v') {
    const { appVersion } = await import('./version')
    console.log(appVersion())
    return 0
  }
  const load = COMMANDS[name]
  if (!load) {
    console.error(`dsd: unknown command "${name}". Run \`dsd --help\` for the list.`)
    return 2
  }
  const mod = await load()
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(mod.usage ?? mod.summary)
    return 0
  }
  try {
    return await mod.run(rest)
  } catch (err) {
    if (err instanceof CliError) {
      console.error(`dsd ${name}: ${err.message}`)
      return err.exitCode
    }
    const e = err as { code?: string; message?: string }
    console.error(`dsd ${name}: ${e.code ? `[${e.code}] ` : ''}${e.message ?? String(err)}`)
    if (process.env.DSD_DEBUG) console.error(err)
    return 1
  }
}
