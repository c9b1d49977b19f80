import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Browser, BrowserContext } from 'playwright-core'
import { expect } from 'vitest'

/** Project root (the folder holding package.json). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** The shared/ folder beside the project (real data and golden values); DSD_SHARED overrides. */
export const SHARED = process.env.DSD_SHARED ?? resolve(ROOT, '../shared')

export function sharedPath(...parts: string[]): string {
  const p = join(SHARED, ...parts)
  if (!existsSync(p)) throw new Error(`missing shared file ${p}: tests need ../shared beside the project`)
  return p
}

/** A scratch folder under test/.tmp, unique per call. */
export function tmpDir(name: string): string {
  return join(ROOT, 'test', '.tmp', `${name}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`)
}

/** Run the real `dsd` CLI (bin/dsd.mjs) in a child process on `workspace`, JS CPU backend. */
export function dsdCli(workspace: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [join(ROOT, 'bin/dsd.mjs'), ...args, '--workspace', workspace], {
    encoding: 'utf8',
    env: { ...process.env, DSD_BACKEND: 'cpu' },
    timeout: 600_000,
  })
}

/** As if the guided tour had been dismissed before (renderer/src/stores/tour.ts). */
const TOUR_DISMISSED = `localStorage.setItem('dsd.tour', JSON.stringify({ dismissed: true }))`

/**
 * A Chromium context for the app's e2e tests: the given viewport, and the guided tour dismissed
 * so it does not open over the pages a test drives (test/e2e/tour.test.ts tests the tour itself).
 */
export async function appContext(
  browser: Browser,
  viewport: { width: number; height: number },
): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport })
  context.setDefaultTimeout(UI_TIMEOUT_MS)
  await context.addInitScript({ content: TOUR_DISMISSED })
  return context
}

/**
 * How long an e2e test waits for the UI to reach a state (and Playwright for an element) before
 * it fails. Generous: CI machines are slower and busier than a developer's, and a correct app
 * gets there sooner; a broken one still fails, only later.
 */
export const UI_TIMEOUT_MS = 90_000

/** Poll `fn` until the matcher that follows holds, for at most `timeout` ms. */
export function eventually<T>(fn: () => T | Promise<T>, timeout = UI_TIMEOUT_MS) {
  return expect.poll(fn, { timeout, interval: 150 })
}
