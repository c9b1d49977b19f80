// Where the Electron binary is, without triggering the electron package's own download
// (requiring 'electron' downloads it when missing).
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const electronDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'electron')

/** The binary path, or undefined with `reason` when it is not installed. */
export function electronBinary() {
  if (process.env.ELECTRON_OVERRIDE_DIST_PATH) {
    const p = process.env.ELECTRON_OVERRIDE_DIST_PATH
    return existsSync(p) ? { path: p } : { reason: `ELECTRON_OVERRIDE_DIST_PATH=${p} does not exist` }
  }
  if (!existsSync(electronDir)) return { reason: 'the electron package is not installed (run npm ci)' }
  const pathTxt = join(electronDir, 'path.txt')
  if (!existsSync(pathTxt)) {
    return { reason: 'no Electron binary (node_modules/electron/dist is missing; `npx install-electron` fetches it)' }
  }
  const p = join(electronDir, 'dist', readFileSync(pathTxt, 'utf8').trim())
  return existsSync(p) ? { path: p } : { reason: `no Electron binary at ${p}` }
}
