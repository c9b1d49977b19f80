#!/usr/bin/env node
// Builds what `npm start`, `dsd serve`, packaging and library users need: the renderer
// (Vite → dist/renderer), the Electron main + preload (esbuild → dist/electron) and the engine
// library (`dsd-studio/engine`: esbuild → dist/engine/index.mjs, declarations by tsc →
// dist/engine/types). It runs on `npm ci` (the `prepare` script), so a fresh clone is ready to
// serve and to import from plain Node. The CLI needs no build (tsx).
import { build as esbuild } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tsImport } from 'tsx/esm/api'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
// Packages stay external, except TF.js's per-gradient ESM files (main/engine/tf.ts): their
// extensionless relative imports do not load under plain Node, so they are bundled (they share
// the core's engine through TF.js's global namespace, as they do under tsx).
const externalPackages = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      args.path.startsWith('@tensorflow/tfjs-core/dist/') ? undefined : { path: args.path, external: true },
    )
  },
}

const only = process.argv[2] // 'renderer' | 'electron' | 'engine' | undefined (all)

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
    plugins: [externalPackages],
    sourcemap: true,
    logLevel: 'warning',
  })
  // Job workers run beside the bundled main process (main/workers/spawn.ts starts `<name>.mjs`).
  for (const worker of ['train-worker', 'inference-worker']) {
    await esbuild({
      entryPoints: [join(root, `main/workers/${worker}.ts`)],
      outfile: join(root, `dist/electron/${worker}.mjs`),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      plugins: [externalPackages],
      sourcemap: true,
      logLevel: 'warning',
    })
  }
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
if (!only || only === 'engine') {
  rmSync(join(root, 'dist/engine'), { recursive: true, force: true })
  await esbuild({
    entryPoints: [join(root, 'main/engine/index.ts')],
    outfile: join(root, 'dist/engine/index.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    plugins: [externalPackages],
    sourcemap: true,
    logLevel: 'warning',
  })
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.engine.json'], {
    cwd: root,
    stdio: 'inherit',
  })
  if (tsc.status !== 0) process.exit(tsc.status ?? 1)
}
console.log('build: ok')
