/**
 * The guided tour in Debian Chromium against the browser-mode server (built renderer, fresh
 * workspace and browser profile): it opens on the first start, walks import → audit → split →
 * train → review → export with its highlight around each real control, goes back, is dismissed,
 * stays dismissed after a reload, and reopens from the About page.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startServer, type RunningServer } from '../../main/server'
import { ROOT, tmpDir, eventually, UI_TIMEOUT_MS } from '../helpers/shared'

const STATIC_DIR = join(ROOT, 'dist', 'renderer')
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--no-first-run']

/** Step id → the page it opens and the control it must highlight. */
const STEPS = [
  { id: 'import', page: '#/datasets', target: '[data-tour="import"]' },
  // An audit button when a dataset is listed, else the table.
  { id: 'audit', page: '#/datasets', target: ['[data-testid="datasets-table"] [data-testid^="audit-"]', '[data-testid="datasets-table"]'] },
  { id: 'split', page: '#/splits', target: '[data-testid="split-create"]' },
  { id: 'train', page: '#/training', target: '[data-testid="quickstart-button"]' },
  { id: 'review', page: '#/review', target: '[data-testid="review-set"]' },
  { id: 'export', page: '#/export', target: '[data-testid="export-start"]' },
]


describe('guided tour', () => {
  let server: RunningServer
  let browser: Browser
  let page: Page
  let workspace = ''

  beforeAll(async () => {
    if (!existsSync(join(STATIC_DIR, 'index.html'))) throw new Error(`${STATIC_DIR}/index.html is missing: build the renderer first (npx vite build)`)
    workspace = tmpDir('e2e-tour')
    mkdirSync(workspace, { recursive: true })
    server = await startServer({ port: 0, staticDir: STATIC_DIR, workspace })
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    context.setDefaultTimeout(UI_TIMEOUT_MS)
    page = await context.newPage()
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    if (workspace && !process.env.DSD_KEEP_TMP) rmSync(workspace, { recursive: true, force: true })
  })

  /** The highlight ring surrounds the control (6 px padding; the first selector on the page) once it has settled. */
  async function expectHighlighted(selectors: string | string[]): Promise<void> {
    await eventually(async () => {
      const ring = await page.getByTestId('tour-highlight').boundingBox()
      let selector = ''
      for (const s of [selectors].flat()) if (!selector && (await page.locator(s).count()) > 0) selector = s
      if (!selector) return `no control ${JSON.stringify(selectors)}`
      const box = await page.locator(selector).first().boundingBox()
      if (!ring || !box) return `ring ${JSON.stringify(ring)}, control ${JSON.stringify(box)}`
      const fits =
        Math.abs(ring.x - (box.x - 6)) < 2 &&
        Math.abs(ring.y - (box.y - 6)) < 2 &&
        Math.abs(ring.width - (box.width + 12)) < 2 &&
        Math.abs(ring.height - (box.height + 12)) < 2
      return fits ? 'around' : `ring ${JSON.stringify(ring)}, control ${JSON.stringify(box)}`
    }).toBe('around')
  }

  test('opens on the first start, steps through the six controls, goes back and is dismissed for good', async () => {
    await page.goto(server.url)
    // First start: the tour opens at its first step, on that step's page.
    await eventually(() => page.getByTestId('tour-card').getAttribute('data-step')).toBe('import')
    await eventually(() => page.url()).toContain('#/datasets')
    expect(await page.getByTestId('tour-back').isDisabled()).toBe(true)
    for (const [i, step] of STEPS.entries()) {
      await eventually(() => page.getByTestId('tour-card').getAttribute('data-step')).toBe(step.id)
      await eventually(() => page.url()).toContain(step.page)
      expect(await page.getByTestId('tour-card').textContent()).toContain(`step ${i + 1} of ${STEPS.length}`)
      await expectHighlighted(step.target)
      expect((await page.getByTestId('tour-next').textContent())?.trim()).toBe(i === STEPS.length - 1 ? 'Finish' : 'Next')
      if (i < STEPS.length - 1) await page.getByTestId('tour-next').click()
    }
    // Back returns to the previous step and its page.
    await page.getByTestId('tour-back').click()
    await eventually(() => page.getByTestId('tour-card').getAttribute('data-step')).toBe('review')
    await eventually(() => page.url()).toContain('#/review')
    // Skip dismisses it; a reload does not bring it back.
    await page.getByTestId('tour-skip').click()
    await eventually(() => page.getByTestId('tour').count()).toBe(0)
    await page.reload()
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Review')
    await page.waitForTimeout(1000)
    expect(await page.getByTestId('tour').count()).toBe(0)
    // About reopens it from the first step; Finish on the last step closes it too.
    await page.getByTestId('nav-about').click()
    await page.getByTestId('tour-reopen').click()
    await eventually(() => page.getByTestId('tour-card').getAttribute('data-step')).toBe('import')
    await eventually(() => page.url()).toContain('#/datasets')
    await expectHighlighted(STEPS[0].target)
    await page.keyboard.press('Escape')
    await eventually(() => page.getByTestId('tour').count()).toBe(0)
    await page.reload()
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Datasets')
    await page.waitForTimeout(1000)
    expect(await page.getByTestId('tour').count()).toBe(0)
  })
})
