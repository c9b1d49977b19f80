import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let cachedRoot: string | undefined

/**
 * The project root: the nearest folder above this module holding DSD Studio's package.json.
 * Works from the sources (tsx, tests) and from the bundled Electron build (dist/electron).
 */
export function projectRoot(): string {
  if (cachedRoot) return cachedRoot
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'dsd-studio') {
      cachedRoot = dir
      return dir
    }
    const up = dirname(dir)
    if (up === dir) throw new Error('DSD Studio package.json not found above ' + fileURLToPath(import.meta.url))
    dir = up
  }
}

/** The app version from package.json. */
export function appVersion(): string {
  return (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version
}
