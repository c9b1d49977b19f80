import { parseArgs, type ParseArgsConfig } from 'node:util'

/** An error the CLI prints as one line (no stack) and exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message)
  }
}

/** Strict option parsing with a readable error naming the bad option. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  allowPositionals = true,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true })
  } catch (err) {
    throw new CliError(`${(err as Error).message}. Run with --help for the options.`)
  }
}

/** Parse an integer option, or throw a CliError that names it. */
export function intOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n)) throw new CliError(`--${name} must be an integer, got "${value}"`)
  return n
}

/** Print JSON (pretty) to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}
