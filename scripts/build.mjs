#!/usr/bin/env node
// Builds what `npm start` and packaging need: the renderer (Vite → dist/renderer) and the
// Electron main + preload (esbuild → dist/electron). The CLI needs no build (tsx).
import { build as esbuild } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tsImport } from 'tsx/esm/api'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const only = process.argv[2] // 'renderer' | 'electron' | undefined (both)

if (!only || only === 'renderer') {
  const r = spawnSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], {
    cwd: root,
    stdio: 'inherit',
  })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

if (!only || only === 'electron') {
  const contract = await tsImport('../main/contract/index.ts', import.meta.url)
  rmSync(join(root, 'dist/electron'), { recursive: true, force: true })
  await esbuild({
    entryPoints: [join(root, 'electron/main.ts')],
    outfile: join(root, 'dist/electron/main.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  })
  await esbuild({
    entryPoints: [join(root, 'electron/preload.ts')],
    outfile: join(root, 'dist/electron/preload.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'chrome120',
    external: ['electron'],
    define: {
      __DSD_COMMANDS__: JSON.stringify(contract.commandNames),
      __DSD_EVENTS__: JSON.stringify(contract.eventNames),
      __DSD_INVOKE_CHANNEL__: JSON.stringify(contract.IPC_INVOKE_CHANNEL),
      __DSD_EVENT_CHANNEL__: JSON.stringify(contract.IPC_EVENT_CHANNEL),
    },
    logLevel: 'warning',
  })
}
console.log('build: ok')
