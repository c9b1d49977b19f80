/**
 * The Quick start button in Debian Chromium against the browser-mode server (built renderer,
 * fresh workspace): one click imports the bundled sample, makes its split and the run, queues the
 * `quickstart` job and opens the run's live curves on the Training page; cancelling the job ends
 * it cancelled, and the card says so. (The whole quick start — 300 steps, prediction and scoring
 * — is `dsd demo`'s test and the README's measurement.)
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startServer, type RunningServer } from '../../main/server'
import { ROOT, tmpDir, appContext, eventually } from '../helpers/shared'

const STATIC_DIR = join(ROOT, 'dist', 'renderer')
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--no-first-run']

describe('Quick start button', () => {
  let server: RunningServer
  let browser: Browser
  let page: Page
  let workspace = ''

  beforeAll(async () => {
    if (!existsSync(join(STATIC_DIR, 'index.html'))) throw new Error(`${STATIC_DIR}/index.html is missing: build the renderer first (npx vite build)`)
    workspace = tmpDir('e2e-quickstart')
    mkdirSync(workspace, { recursive: true })
    server = await startServer({ port: 0, staticDir: STATIC_DIR, workspace })
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
    page = await (await appContext(browser, { width: 1280, height: 900 })).newPage()
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    if (workspace && !process.env.DSD_KEEP_TMP) rmSync(workspace, { recursive: true, force: true })
  })

  test('one click makes the split and the run, shows its job and curves; a cancel ends it', { timeout: 600_000 }, async () => {
    await page.goto(server.url)
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Datasets')
    await page.getByTestId('quickstart-button').click()
    // The run's live curves on the Training page.
    await eventually(() => page.url(), 120_000).toContain('#/training?run=quick-start-DSD-fold0')
    await eventually(() => page.getByTestId('quickstart-job').textContent()).toMatch(/Quick start quick-start-DSD-fold0 · (queued|running)/)
    await eventually(() => page.getByTestId('quickstart-button').isDisabled()).toBe(true)
    // What the main side made: the sample, its split and the quick preset's run.
    expect(existsSync(join(workspace, 'datasets', 'hippocampus-sample', 'splits', 'quick-k5.json'))).toBe(true)
    const cfg = JSON.parse(readFileSync(join(workspace, 'runs', 'quick-start-DSD-fold0', 'config.json'), 'utf8'))
    expect(cfg).toMatchObject({ split: 'quick-k5', fold: 0, variant: 'DSD', model: { preset: 'quick' }, schedule: { kind: 'poly' }, validateEvery: 0 })
    // Cancel the job (as the Tasks panel does): the card reports it and the button is free again.
    const listed = await server.app.bridge.invoke('jobs.list', {})
    if (!listed.ok) throw new Error(listed.error.message)
    const job = (listed.value as { jobs: { jobId: string; kind: string }[] }).jobs.find((j) => j.kind === 'quickstart')!
    await server.app.bridge.invoke('jobs.control', { jobId: job.jobId, action: 'cancel' })
    await eventually(() => page.getByTestId('quickstart-ended').textContent(), 400_000).toContain('was cancelled')
    expect(await page.getByTestId('quickstart-button').isDisabled()).toBe(false)
  })
})
