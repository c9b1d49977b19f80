/**
 * The Electron suite: launches the real app with Playwright's _electron where the Electron
 * binary exists. Where it does not (offline build machines), it says so plainly and skips.
 */
import { _electron as electron } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { ROOT, tmpDir } from '../helpers/shared'
// @ts-expect-error -- plain .mjs helper shared with scripts/start.mjs
import { electronBinary } from '../../scripts/electron-binary.mjs'

const binary = electronBinary() as { path?: string; reason?: string }
if (!binary.path) console.log(`electron: not run: ${binary.reason}`)

describe.skipIf(!binary.path)('Electron app', () => {
  it('opens a sandboxed window and answers a contract round trip over IPC', async () => {
    const app = await electron.launch({
      executablePath: binary.path,
      args: [ROOT, '--no-sandbox'],
      env: { ...process.env, DSD_WORKSPACE: tmpDir('electron-ws') } as Record<string, string>,
    })
    try {
      const win = await app.firstWindow()
      await win.waitForLoadState('domcontentloaded')
      expect(win.url()).toMatch(/^dsd-app:\/\/app\//)
      // Node is not reachable from the page; only the allow-listed bridge is.
      expect(await win.evaluate(() => typeof (globalThis as { require?: unknown }).require)).toBe('undefined')
      const info = await win.evaluate(async () => {
        const dsd = (globalThis as unknown as { dsd: { invoke(n: string, p: unknown): Promise<{ ok: boolean; value?: { transport: string } }> } }).dsd
        return dsd.invoke('app.info', {})
      })
      expect(info.ok).toBe(true)
      expect(info.value?.transport).toBe('electron')
      const refused = await win.evaluate(async () => {
        const dsd = (globalThis as unknown as { dsd: { invoke(n: string, p: unknown): Promise<{ ok: boolean; error?: { code: string } }> } }).dsd
        return dsd.invoke('fs.readFile', { path: '/etc/passwd' })
      })
      expect(refused).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } })
      // The permission check handler denies everything the page could ask for.
      // (browser-side code as a string: this file is type-checked without DOM types)
      const states = await win.evaluate(`Promise.all(['notifications', 'geolocation', 'camera', 'microphone', 'clipboard-read'].map((name) =>
        navigator.permissions.query({ name }).then((s) => s.state).catch(() => 'denied')))`)
      expect(states).toEqual(['denied', 'denied', 'denied', 'denied', 'denied'])
    } finally {
      await app.close()
    }
  })
})
