import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let cached: string | undefined

/** The app version from package.json. */
export function appVersion(): string {
  if (!cached) {
    const here = dirname(fileURLToPath(import.meta.url))
    cached = (JSON.parse(readFileSync(join(here, '..', 'package.json'), 'utf8')) as { version: string }).version
  }
  return cached
}
