/**
 * What the browser end-to-end suites share: the built renderer, Debian Chromium and its flags,
 * the screenshot folder, and tiny runs trained through the app's own commands.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import type { CommandRequest } from '../../main/contract'
import type { RunningServer } from '../../main/server'
import { ROOT } from './shared'

/** The renderer build the test servers serve (`node scripts/build.mjs`). */
export const STATIC_DIR = join(ROOT, 'dist', 'renderer')
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium'
/** Screenshots of every suite (test artifacts). */
export const ARTIFACTS = join(ROOT, 'test', '.tmp', 'screenshots')
/** Flags from docs/environment.md: headless as root, software WebGL2 (SwiftShader), no network chatter. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]

/** Throws, saying what to do, when the renderer build or Chromium is missing. */
export function checkE2ePrerequisites(): void {
  if (!existsSync(join(STATIC_DIR, 'index.html'))) {
    throw new Error(`${STATIC_DIR}/index.html is missing: build first (node scripts/build.mjs, or npm test)`)
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM_BIN)`)
}

/** Debian Chromium, headless, with {@link CHROMIUM_ARGS} (or the given flags). */
export function launchChromium(args: string[] = CHROMIUM_ARGS): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args })
}

/**
 * The training part of a tiny run (two steps of 16³ on the wasm kernels, no validation): what
 * the suites that need a trained run give `runs.create` besides the dataset, split, folds and
 * variants. The wasm kernels train and predict about 4× faster than the JS reference backend.
 */
export const TINY_RUN = {
  epochs: 1,
  stepsPerEpoch: 2,
  patch: [16, 16, 16],
  batch: 1,
  validateEvery: 0,
  backend: 'wasm',
} as const satisfies Partial<CommandRequest<'runs.create'>>

/**
 * Create runs with the app's `runs.create` (trained by the real worker, queued one at a time)
 * and wait until every one has completed; throws with the runs' messages when one fails.
 * Returns their ids.
 */
export async function trainRuns(server: RunningServer, form: CommandRequest<'runs.create'>, timeoutMs = 300_000): Promise<string[]> {
  const created = await server.app.bridge.invoke('runs.create', form)
  if (!created.ok) throw new Error(`runs.create failed: ${created.error.message}`)
  const runIds = (created.value as { runIds: string[] }).runIds
  const t0 = Date.now()
  for (;;) {
    const list = await server.app.bridge.invoke('runs.list', {})
    const runs = (list as { value: { runs: { id: string; state: { status: string; message: string } }[] } }).value.runs.filter((r) => runIds.includes(r.id))
    if (runs.some((r) => r.state.status === 'failed' || r.state.status === 'cancelled')) {
      throw new Error(`training failed: ${runs.map((r) => `${r.id}: ${r.state.message}`).join('; ')}`)
    }
    if (runs.length === runIds.length && runs.every((r) => r.state.status === 'completed')) return runIds
    if (Date.now() - t0 > timeoutMs) throw new Error(`training did not finish in ${timeoutMs / 1000} s`)
    await new Promise((r) => setTimeout(r, 300))
  }
}
