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

/**
 * A number option: `fallback` when absent; a finite number within [min, max] (maxExclusive:
 * below max) otherwise, or a CliError naming the option and the accepted range.
 */
export function numberOption(
  name: string,
  value: string | undefined,
  fallback: number,
  range: { min?: number; max?: number; maxExclusive?: boolean } = {},
): number {
  if (value === undefined) return fallback
  const n = Number(value)
  const { min = -Infinity, max = Infinity, maxExclusive = false } = range
  const ok = value.trim() !== '' && Number.isFinite(n) && n >= min && (maxExclusive ? n < max : n <= max)
  if (!ok) {
    const bounds =
      min > -Infinity && max < Infinity
        ? ` in [${min}, ${max}${maxExclusive ? ')' : ']'}`
        : min > -Infinity
          ? ` ≥ ${min}`
          : max < Infinity
            ? ` ${maxExclusive ? '<' : '≤'} ${max}`
            : ''
    throw new CliError(`--${name} must be a number${bounds}, got "${value}"`)
  }
  return n
}

/** Print JSON (pretty) to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/**
 * The options that choose predictions by source, shared by `dsd evaluate` and `dsd export`:
 * `--run` (repeatable: one run or an ensemble), `--dir` (a predictions folder), `--a`/`--b`
 * (two sets to compare), `--predictions` (last, best or a named set), `--grid`.
 */
export const SOURCE_OPTIONS = {
  run: { type: 'string', multiple: true },
  dir: { type: 'string' },
  a: { type: 'string' },
  b: { type: 'string' },
  predictions: { type: 'string' },
  grid: { type: 'string' },
  workspace: { type: 'string' },
  json: { type: 'boolean' },
} as const
