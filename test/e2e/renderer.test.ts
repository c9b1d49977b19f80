/**
 * The renderer end to end in Debian Chromium (playwright-core, no Electron): the built app
 * (dist/renderer, `npx vite build` first) served by the browser-mode server in-process, with
 * a fresh temp workspace. Every page's screenshot is saved to test/.tmp/screenshots/ (test
 * artifacts); DSD_SCREENSHOTS=1 also writes docs/screenshots/<page>.png.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import { startServer, type RunningServer } from '../../main/server'
import { ROOT, SHARED, sharedPath, tmpDir, appContext, eventually } from '../helpers/shared'

const STATIC_DIR = join(ROOT, 'dist', 'renderer')
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium'
const SCREENSHOTS = process.env.DSD_SCREENSHOTS === '1'
const SHOTS_DIR = join(ROOT, 'docs', 'screenshots')
const ARTIFACTS = join(ROOT, 'test', '.tmp', 'screenshots')

/** Flags from docs/environment.md: headless as root, software WebGL2, no network chatter. */
const CHROMIUM_ARGS = [
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


const PAGES = [
  { name: 'datasets', heading: 'Datasets' },
  { name: 'splits', heading: 'Splits' },
  { name: 'training', heading: 'Training' },
  { name: 'review', heading: 'Review' },
  { name: 'export', heading: 'Export' },
  { name: 'about', heading: 'About / System' },
] as const

/** The bundled sample (40 cases) when the lead has added it, else the full shared dataset. */
function sampleDataset(): { path: string; cases: number } {
  const candidates = [
    join(ROOT, 'resources', 'sample', 'hippocampus'),
    join(SHARED, 'data', 'msd-task04-hippocampus'),
  ]
  for (const path of candidates) {
    const file = join(path, 'dataset.json')
    if (existsSync(file)) {
      const json = JSON.parse(readFileSync(file, 'utf8')) as { training?: unknown[] }
      return { path, cases: json.training?.length ?? 0 }
    }
  }
  throw new Error(`no sample dataset: looked for dataset.json in ${candidates.join(' and ')}`)
}

/** Polls until the assertion holds (vitest's default of 1 s is too short on a busy 2-core box). */

/** Adds what the page showed to a failed assertion's message. */
async function explain(assertion: Promise<unknown>, context: () => Promise<string>) {
  try {
    await assertion
  } catch (err) {
    ;(err as Error).message += `\n  page: ${await context().catch((e) => String(e))}`
    throw err
  }
}

describe('renderer in Chromium against the browser-mode server', () => {
  let server: RunningServer
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let workspace = ''
  const pageErrors: string[] = []
  const cspViolations: string[] = []

  beforeAll(async () => {
    if (!existsSync(join(STATIC_DIR, 'index.html'))) {
      throw new Error(
        `${STATIC_DIR}/index.html is missing: build the renderer first (npx vite build, or npm test)`,
      )
    }
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM_BIN)`)
    }
    workspace = tmpDir('e2e-renderer')
    mkdirSync(workspace, { recursive: true })
    server = await startServer({ port: 0, staticDir: STATIC_DIR, workspace })
    // launch() always starts from a fresh, temporary user-data dir.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    })
    context = await appContext(browser, { width: 1280, height: 800 })
    page = await context.newPage()
    page.on('pageerror', (err) => pageErrors.push(err.message))
    page.on('console', (msg) => {
      const text = msg.text()
      if (/Content Security Policy|Refused to (load|execute|apply|connect)/i.test(text)) {
        cspViolations.push(text)
      }
    })
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    if (workspace && !process.env.DSD_KEEP_TMP) rmSync(workspace, { recursive: true, force: true })
  })

  async function shot(name: string): Promise<void> {
    // Close the toasts so they do not cover the page, then let transitions settle.
    for (const close of await page.locator('.n-notification .n-base-close').all()) {
      await close.click().catch(() => {})
    }
    await page.waitForTimeout(600)
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) })
    if (!SCREENSHOTS) return
    mkdirSync(SHOTS_DIR, { recursive: true })
    await page.screenshot({ path: join(SHOTS_DIR, `${name}.png`) })
  }

  async function go(name: (typeof PAGES)[number]['name']): Promise<void> {
    await page.getByTestId(`nav-${name}`).click()
    await eventually(() => page.url()).toContain(`#/${name}`)
  }

  test('requests without the session token get 401', async () => {
    const root = await fetch(`${server.origin}/`)
    expect(root.status).toBe(401)
    const invoke = await fetch(`${server.origin}/api/invoke/app.info`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    })
    expect(invoke.status).toBe(401)
    const wrong = await fetch(`${server.origin}/api/invoke/app.info`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-DSD-Token': 'not-the-token' },
      body: '{}',
    })
    expect(wrong.status).toBe(401)
    // The same command with the token answers 200 with a Result, so the 401s above are real.
    const ok = await fetch(`${server.origin}/api/invoke/app.info`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-DSD-Token': server.token },
      body: '{}',
    })
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { ok: boolean }).ok).toBe(true)
  })

  test('the event WebSocket without the token is refused', async () => {
    const attempt = (url: string, protocols?: string[]) =>
      new Promise<{ opened: boolean; status?: number }>((resolve) => {
        const ws = new WebSocket(url, protocols)
        ws.on('open', () => {
          ws.close()
          resolve({ opened: true })
        })
        ws.on('unexpected-response', (_req, res) => {
          resolve({ opened: false, status: res.statusCode })
          ws.terminate()
        })
        ws.on('error', () => resolve({ opened: false }))
      })
    const base = `ws://127.0.0.1:${server.port}/api/events`
    expect(await attempt(base)).toEqual({ opened: false, status: 401 })
    expect(await attempt(`${base}?token=wrong`)).toEqual({ opened: false, status: 401 })
    // The token in the query string is accepted on page loads only, never on the socket.
    expect(await attempt(`${base}?token=${server.token}`)).toEqual({ opened: false, status: 401 })
    expect(await attempt(base, ['dsd.token.wrong'])).toEqual({ opened: false, status: 401 })
    expect((await attempt(base, [`dsd.token.${server.token}`])).opened).toBe(true)
  })

  test('the app loads, keeps the token out of the address bar and connects', async () => {
    await page.goto(server.url)
    await eventually(() => page.getByTestId('app-name').textContent()).toBe('DSD Studio')
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Datasets')
    expect(page.url()).not.toContain('token=')
    // Browser-side code is passed as strings: this file is type-checked without DOM types.
    expect(await page.evaluate("sessionStorage.getItem('dsd_token')")).toBe(server.token)
    await eventually(() => page.getByTestId('header-connection').textContent()).toContain(
      'connected',
    )
    await eventually(() => page.getByTestId('header-backend').textContent()).toMatch(
      /Compute: (tfjs-node-gpu|webgpu|tfjs-node|wasm|cpu)/,
    )
  })

  test('every page navigates and renders its heading', async () => {
    for (const p of PAGES) {
      await go(p.name)
      await eventually(() => page.getByTestId('page-heading').textContent()).toBe(p.heading)
      await eventually(() => page.title()).toBe(`${p.heading} · DSD Studio`)
    }
    // Export with nothing predicted says how to get predictions (test/e2e/export.test.ts has the rest).
    await go('export')
    await eventually(() => page.getByTestId('export-empty').isVisible()).toBe(true)
    // Review with nothing predicted says how to get predictions (test/e2e/review.test.ts has the rest).
    await go('review')
    await eventually(() => page.getByTestId('review-empty').isVisible()).toBe(true)
    await go('training')
    expect(await page.getByTestId('learning-curve-empty').textContent()).toContain('No runs yet')
    expect(await page.getByTestId('run-start').isDisabled()).toBe(true)
    // A reload keeps the page (hash route) and the session (token from sessionStorage).
    await page.reload()
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Training')
    await eventually(() => page.getByTestId('header-connection').textContent()).toContain(
      'connected',
    )
  })

  test('the navigation works from the keyboard', async () => {
    await go('about')
    await page.reload() // focus navigation starts at the top of the document again
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('About / System')
    await page.keyboard.press('Tab')
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content')
    let reached = false
    for (let i = 0; i < 10 && !reached; i++) {
      await page.keyboard.press('Tab')
      reached =
        (await page.evaluate("document.activeElement.getAttribute('data-testid')")) === 'nav-splits'
    }
    expect(reached, 'Tab reaches the Splits link').toBe(true)
    await page.keyboard.press('Enter')
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Splits')
  })

  test('About shows versions, the backend in use and every backend with its reason', async () => {
    await go('about')
    await eventually(() => page.getByTestId('version-node').textContent()).toBe(
      process.versions.node,
    )
    expect(await page.getByTestId('about-version').textContent()).toMatch(/^\d+\.\d+\.\d+/)
    expect(await page.getByTestId('about-workspace').textContent()).toContain('e2e-renderer')
    expect(await page.getByTestId('about-transport').textContent()).toBe('browser')
    expect(await page.getByTestId('version-tfjs').textContent()).toMatch(/^\d+\.\d+\.\d+/)
    const backend = (await page.getByTestId('about-backend').textContent())?.trim()
    expect(['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu']).toContain(backend)
    expect((await page.getByTestId('about-backend-reason').textContent())?.length).toBeGreaterThan(
      5,
    )
    for (const name of ['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu']) {
      const row = page.getByTestId(`backend-${name}`)
      expect(await row.count(), `backend row ${name}`).toBe(1)
    }
    // The JS CPU backend works everywhere; the one in use must be listed as available.
    expect(await page.getByTestId('backend-cpu').getAttribute('data-available')).toBe('true')
    expect(await page.getByTestId(`backend-${backend}`).getAttribute('data-available')).toBe('true')
  })

  test('WebGL2 is available in the page (the viewer needs it)', async () => {
    await go('about')
    const status = page.getByTestId('webgl2-status')
    await eventually(() => status.count()).toBe(1)
    const available = await status.getAttribute('data-available')
    if (available !== 'true') {
      const text = await page.locator('text=WebGL2 (3D viewer)').locator('..').textContent()
      throw new Error(`WebGL2 is NOT available in Chromium: ${text}`)
    }
    expect(await page.getByTestId('webgl2-renderer').textContent()).toMatch(/\S/)
    // An independent probe in the page, not through the app's own code.
    const direct = await page.evaluate("!!document.createElement('canvas').getContext('webgl2')")
    expect(direct).toBe(true)
    await shot('about')
    await page.getByTestId('renderer-card').scrollIntoViewIfNeeded()
    await shot('about-renderer')
  })

  test('ping: a command round trip and the pushed app.pong event', async () => {
    await go('about')
    const message = `e2e ping ${Date.now()}`
    await page.getByTestId('ping-text').fill(message)
    await page.getByTestId('ping-button').click()
    await eventually(() => page.getByTestId('ping-response').textContent()).toContain(message)
    await eventually(() => page.getByTestId('pong-event').textContent()).toContain(message)
  })

  test('importing a real dataset from the UI shows progress and lists it', async () => {
    const sample = sampleDataset()
    expect(sample.cases).toBeGreaterThan(0)
    await go('datasets')
    await eventually(() => page.getByTestId('datasets-empty').isVisible()).toBe(true)
    await page.getByTestId('import-path').fill(sample.path)
    await page.getByTestId('import-name').fill('Hippocampus e2e')
    await page.getByTestId('import-submit').click()
    const tray = page.locator('[data-testid^="task-"][data-kind="datasets.import"]')
    const notice = page.locator('.n-notification')
    await eventually(async () => (await tray.count()) + (await notice.count())).toBeGreaterThan(0)
    if ((await tray.count()) === 0) {
      throw new Error(`datasets.import was refused: ${await notice.first().textContent()}`)
    }
    await eventually(
      () => page.getByTestId('import-progress').getAttribute('data-status'),
      150_000,
    ).toMatch(/completed|failed|cancelled/)
    const status = await page.getByTestId('import-progress').getAttribute('data-status')
    if (status !== 'completed') {
      throw new Error(`import ${status}: ${await tray.getByTestId('task-message').textContent()}`)
    }
    // Progress events arrived: the finished task shows done / total with the real case count.
    const bar = tray.getByTestId('task-progress')
    const total = Number(await bar.getAttribute('aria-valuemax'))
    expect(total).toBeGreaterThan(0)
    expect(Number(await bar.getAttribute('aria-valuenow'))).toBe(total)
    const row = page.locator('[data-testid^="dataset-row-"]')
    await eventually(() => row.count()).toBe(1)
    const rowText = (await row.textContent()) ?? ''
    expect(rowText).toContain('Hippocampus e2e')
    expect(rowText).toContain(String(sample.cases))
    await shot('datasets')
  })

  test('a running import can be cancelled from the task area', async () => {
    // The full MSD Task04 copy (260 cases) takes long enough to cancel mid-way.
    const path = sharedPath('data', 'msd-task04-hippocampus')
    await go('datasets')
    await page.getByTestId('import-path').fill(path)
    await page.getByTestId('import-name').fill('To be cancelled')
    await page.getByTestId('import-submit').click()
    const tray = page.getByTestId('task-tray')
    const task = tray.locator('li[data-kind="datasets.import"]').filter({
      hasText: 'msd-task04-hippocampus',
    })
    await eventually(
      async () =>
        (await task.count()) +
        (await page.locator('.n-notification').filter({ hasText: 'Import failed' }).count()),
    ).toBeGreaterThan(0)
    expect(await task.count(), `no import task: ${await tray.textContent()}`).toBe(1)
    const id = (await task.getAttribute('data-testid')) ?? ''
    const cancel = task.getByTestId('task-cancel')
    expect(await cancel.count(), `not running: ${await task.textContent()}`).toBe(1)
    await cancel.click()
    const row = page.getByTestId(id)
    await explain(
      eventually(() => row.getAttribute('data-status')).toBe('cancelled'),
      async () => `task row: ${await row.getAttribute('data-status')} ${await row.textContent()}`,
    )
    expect(await row.getByTestId('task-status').textContent()).toContain('cancelled')
    const done = Number(await row.getByTestId('task-progress').getAttribute('aria-valuenow'))
    expect(done).toBeLessThan(260)
    // The cancelled import leaves no dataset behind; the earlier one is still listed.
    await page.getByTestId('datasets-refresh').click()
    await explain(
      eventually(() => page.locator('[data-testid^="dataset-row-"]').count()).toBe(1),
      async () =>
        `table: ${await page.getByTestId('datasets-table').textContent()}; notices: ` +
        (await page.locator('.n-notification').allTextContents()).join(' | '),
    )
    expect(await page.locator('[data-testid^="dataset-row-"]').textContent()).not.toContain(
      'To be cancelled',
    )
  })

  test('auditing the imported dataset shows the findings table', async () => {
    await go('datasets')
    const audit = page
      .locator('[data-testid^="dataset-row-"]')
      .first()
      .getByRole('button', { name: 'Audit' })
    const id = ((await audit.getAttribute('data-testid')) ?? '').replace(/^audit-/, '')
    expect(id).not.toBe('')
    await audit.click()
    const report = page.getByTestId(`audit-report-${id}`)
    await eventually(() => report.getAttribute('data-status'), 120_000).toMatch(/completed|failed/)
    if ((await report.getAttribute('data-status')) !== 'completed') {
      throw new Error(`audit failed: ${await report.textContent()}`)
    }
    expect(await report.getByTestId('findings-table').count()).toBe(1)
    expect(await report.textContent()).toMatch(/\d+ cases/)
    await report.scrollIntoViewIfNeeded()
    await shot('datasets-audit')
  })

  test('a split can be created for the imported dataset', async () => {
    await go('splits')
    await page.getByTestId('split-dataset').click()
    await page.locator('.n-base-select-option').first().click()
    await page.getByTestId('split-create').click()
    const rows = page.locator('[data-testid^="split-row-"]')
    await eventually(() => rows.count()).toBeGreaterThan(0)
    expect(await rows.first().textContent()).toMatch(/5/)
    await shot('splits')
    for (const name of ['review', 'export'] as const) {
      await go(name)
      await shot(name)
    }
  })

  test('a training run starts from the UI, streams live progress and can be cancelled', async () => {
    await go('training')
    await eventually(() => page.getByTestId('run-split').textContent()).toMatch(/fold/)
    await page.getByText('Advanced').click()
    const setNumber = async (testId: string, value: string) => {
      const input = page.getByTestId(testId)
      await input.fill(value)
      await input.blur()
    }
    await setNumber('run-epochs', '50')
    await setNumber('run-patch', '16')
    await setNumber('run-batch', '1')
    await setNumber('run-steps', '2')
    await setNumber('run-validate', '0') // no validation pass: cancel lands between steps
    // A custom variant instead of DSD: its weight fields appear and reach the run config.
    const variantBoxes = page.getByTestId('run-variants')
    await variantBoxes.getByText('DSD', { exact: true }).click()
    expect(await page.getByTestId('run-weights').count()).toBe(0)
    await variantBoxes.getByText('custom', { exact: true }).click()
    await eventually(() => page.getByTestId('run-weights').count()).toBe(1)
    await setNumber('run-eta', '0.5')
    await setNumber('run-alpha1', '0')
    await page.getByTestId('run-start').click()
    const row = page.locator('[data-testid^="run-row-"]')
    await explain(eventually(() => row.count()).toBe(1), async () =>
      (await page.locator('.n-notification').allTextContents()).join(' | '),
    )
    const runId = (await row.getAttribute('data-testid'))!.slice('run-row-'.length)
    expect(runId).toMatch(/-custom-fold0$/)
    const config = JSON.parse(readFileSync(join(workspace, 'runs', runId, 'config.json'), 'utf8'))
    expect(config).toMatchObject({ variant: 'custom', loss: { eta: 0.5, alpha1: 0, alpha2: 1 } })
    // Job progress and run.step events reach the page: the live line shows the step, loss and
    // an ETA, and the backend the worker chose is shown with its reason.
    const live = page.getByTestId('run-live')
    await explain(
      eventually(() => live.textContent(), 150_000).toMatch(/epoch \d+ \/ 50 · step \d+ \/ 2 · loss \d/),
      async () => `${await row.textContent()} | ${await live.textContent()}`,
    )
    expect(await page.getByTestId('run-backend').textContent()).toMatch(
      /on (tfjs-node-gpu|webgpu|tfjs-node|wasm|cpu)\b.* — \S+/,
    )
    // The training job is in the task area too, with its backend.
    const trayJob = page.locator(`li[data-kind="train"]`).filter({ hasText: runId })
    expect(await trayJob.getAttribute('data-status')).toMatch(/running|paused/)
    await page.getByTestId('page-heading').scrollIntoViewIfNeeded()
    await shot('training')
    await row.getByTestId('run-cancel').click()
    await explain(
      eventually(() => row.getAttribute('data-status')).toBe('cancelled'),
      async () => `${await row.textContent()} | ${await live.textContent()}`,
    )
    expect(await row.getByTestId('run-start').textContent()).toContain('Resume')
  })

  test('the event socket reconnects after the server restarts', async () => {
    await go('about')
    const { port, token } = server
    await server.close()
    await eventually(() => page.getByTestId('header-connection').textContent()).toContain(
      'reconnecting',
    )
    // Same port and token: the page keeps its session and its event subscriptions.
    server = await startServer({ port, token, staticDir: STATIC_DIR, workspace })
    await eventually(() => page.getByTestId('header-connection').textContent()).toContain(
      'connected',
    )
    const message = `after reconnect ${Date.now()}`
    await page.getByTestId('ping-text').fill(message)
    await page.getByTestId('ping-button').click()
    await eventually(() => page.getByTestId('ping-response').textContent()).toContain(message)
    await eventually(() => page.getByTestId('pong-event').textContent()).toContain(message)
  })

  test('Electron mode: the renderer talks through window.dsd when the preload provides it', async () => {
    // The preload's shape (electron/preload.ts) over the real bridge of the running app; only
    // Electron's IPC hop is replaced. The page must then never call the HTTP API.
    const electronContext = await appContext(browser, { width: 1280, height: 800 })
    const p = await electronContext.newPage()
    const apiRequests: string[] = []
    p.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/api/')) apiRequests.push(r.url())
    })
    p.on('pageerror', (err) => pageErrors.push(err.message))
    await p.exposeFunction('__dsdInvoke', (name: string, payload: unknown) =>
      server.app.bridge.invoke(name, payload),
    )
    await p.addInitScript({
      content: `(() => {
        const listeners = new Map()
        window.__dsdEmit = (event, payload) => {
          for (const l of listeners.get(event) ?? []) l(payload)
        }
        window.dsd = {
          invoke: (name, payload) => window.__dsdInvoke(name, payload),
          on: (event, listener) => {
            if (!listeners.has(event)) listeners.set(event, new Set())
            listeners.get(event).add(listener)
            return () => listeners.get(event).delete(listener)
          },
        }
      })()`,
    })
    const unsubscribe = server.app.bridge.subscribe((event, payload) => {
      p.evaluate(`window.__dsdEmit(${JSON.stringify(event)}, ${JSON.stringify(payload)})`).catch(
        () => {},
      )
    })
    try {
      await p.goto(server.url)
      await p.getByTestId('nav-about').click()
      await eventually(() => p.getByTestId('page-heading').textContent()).toBe('About / System')
      await eventually(() => p.locator('text=this window: Electron IPC').count()).toBe(1)
      expect(await p.getByTestId('header-connection').count()).toBe(0)
      await eventually(() => p.getByTestId('version-node').textContent()).toBe(
        process.versions.node,
      )
      const message = `over the preload ${Date.now()}`
      await p.getByTestId('ping-text').fill(message)
      await p.getByTestId('ping-button').click()
      await eventually(() => p.getByTestId('ping-response').textContent()).toContain(message)
      await eventually(() => p.getByTestId('pong-event').textContent()).toContain(message)
      // A failed command shows its error message as a notification.
      await p.evaluate(`location.hash = '#/splits?dataset=no-such-dataset'`)
      await eventually(() => p.locator('.n-notification').textContent()).toMatch(
        /no-such-dataset/,
      )
      expect(apiRequests).toEqual([])
    } finally {
      unsubscribe()
      await electronContext.close()
    }
  })

  test('no page errors and no CSP violations', () => {
    expect(pageErrors).toEqual([])
    expect(cspViolations).toEqual([])
  })
})
