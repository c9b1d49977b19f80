#!/usr/bin/env node
// `npm start`: build, then launch Electron when its binary is present (fetching it first if it
// is missing and the network allows); otherwise start browser mode and print the URL with its
// token, saying why Electron did not start. On first run the bundled sample dataset is
// imported into the workspace.
import { spawn, spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { electronBinary, electronDir } from './electron-binary.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const extra = process.argv.slice(2)

const built = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' })
if (built.status !== 0) process.exit(built.status ?? 1)

let electron = electronBinary()
if (!electron.path && process.env.DSD_NO_ELECTRON_DOWNLOAD !== '1') {
  console.log(`Electron: ${electron.reason}. Trying to fetch it (install-electron)…`)
  const r = spawnSync(process.execPath, [join(electronDir, 'install.js')], {
    cwd: electronDir,
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 300_000,
    encoding: 'utf8',
  })
  electron = electronBinary()
  if (!electron.path) {
    const why = (r.stderr || '').split('\n').find((l) => /error/i.test(l)) ?? `exit code ${r.status}`
    electron = { reason: `the Electron binary is missing and could not be downloaded (${why.trim()})` }
  }
}
if (electron.path && process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
  electron = { reason: 'there is no display (DISPLAY and WAYLAND_DISPLAY are unset)' }
}

function browserMode(reason) {
  console.log(`\nElectron did not start: ${reason}.`)
  console.log('Starting browser mode instead (same app, served on 127.0.0.1 with a session token).\n')
  const child = spawn(process.execPath, [join(root, 'bin/dsd.mjs'), 'serve', '--sample', ...extra], {
    cwd: root,
    stdio: 'inherit',
  })
  child.on('exit', (code) => process.exit(code ?? 0))
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig))
}

if (electron.path) {
  const child = spawn(electron.path, [root, ...extra], { cwd: root, stdio: 'inherit' })
  child.on('error', (err) => browserMode(`Electron failed to launch (${err.message})`))
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal === null) browserMode(`Electron exited with code ${code}`)
    else process.exit(code ?? 0)
  })
} else {
  browserMode(electron.reason)
}
