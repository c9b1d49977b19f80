/**
 * The everyday basics end to end in Debian Chromium (browser mode, the real server, services
 * and files): an import with a truncated file reports that file, and a run on that dataset is
 * refused before it starts, naming it; a split with an existing name is refused on the name
 * field; the fold view lists each case's fold; an out-of-range number shows its error on the
 * field and is not clamped; a run left "queued" with no job is cancelled and deleted, and its
 * folder is in the workspace's trash. Expects a built renderer (npx vite build, or npm test).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startServer, type RunningServer } from '../../main/server'
import { DatasetService } from '../../main/services/datasets'
import { createRuns } from '../../main/services/training'
import { TRASH_DIR } from '../../main/workspace/entries'
import { ROOT, sharedPath, tmpDir, appContext, eventually } from '../helpers/shared'

const STATIC_DIR = join(ROOT, 'dist', 'renderer')
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const HIPPO = sharedPath('data', 'msd-task04-hippocampus')
const IDS = ['001', '003', '004', '006', '007', '008']
const CUT = '004'


/** An MSD folder of six real hippocampus cases; with `truncate`, one image loses its last 2000 bytes. */
function msdFolder(dir: string, truncate: boolean): string {
  mkdirSync(join(dir, 'imagesTr'), { recursive: true })
  mkdirSync(join(dir, 'labelsTr'), { recursive: true })
  const json = JSON.parse(readFileSync(join(HIPPO, 'dataset.json'), 'utf8'))
  json.training = IDS.map((id) => ({ image: `./imagesTr/hippocampus_${id}.nii.gz`, label: `./labelsTr/hippocampus_${id}.nii.gz` }))
  json.numTraining = IDS.length
  json.test = []
  writeFileSync(join(dir, 'dataset.json'), JSON.stringify(json))
  for (const id of IDS) {
    const img = join(dir, 'imagesTr', `hippocampus_${id}.nii.gz`)
    const bytes = readFileSync(join(HIPPO, 'imagesTr', `hippocampus_${id}.nii.gz`))
    writeFileSync(img, truncate && id === CUT ? bytes.subarray(0, bytes.length - 2000) : bytes)
    copyFileSync(join(HIPPO, 'labelsTr', `hippocampus_${id}.nii.gz`), join(dir, 'labelsTr', `hippocampus_${id}.nii.gz`))
  }
  return dir
}

describe('everyday basics in Chromium', () => {
  const tmp = tmpDir('e2e-everyday')
  const workspace = join(tmp, 'ws')
  let server: RunningServer
  let browser: Browser
  let page: Page
  let stuckRun = ''
  const pageErrors: string[] = []

  beforeAll(async () => {
    if (!existsSync(join(STATIC_DIR, 'index.html'))) throw new Error(`${STATIC_DIR}/index.html is missing: build the renderer first (npx vite build)`)
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM_BIN)`)
    mkdirSync(workspace, { recursive: true })
    // A good dataset with a split and a run left "queued" with no job (its process stopped).
    const svc = new DatasetService(workspace)
    await svc.importDataset(msdFolder(join(tmp, 'good'), false), { name: 'good' })
    await svc.createSplit('good', { folds: 3, seed: 0, name: 'k3' })
    ;[{ id: stuckRun }] = await createRuns(workspace, { datasetId: 'good', split: 'k3', folds: [0], variants: ['Basic'], name: 'stuck', preset: 'quick', epochs: 1 })
    msdFolder(join(tmp, 'cut'), true)
    server = await startServer({ port: 0, staticDir: STATIC_DIR, workspace })
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
    page = await (await appContext(browser, { width: 1400, height: 900 })).newPage()
    page.on('pageerror', (err) => pageErrors.push(err.message))
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    if (!process.env.DSD_KEEP_TMP) rmSync(tmp, { recursive: true, force: true })
  })

  const go = async (name: string) => {
    await page.getByTestId(`nav-${name}`).click()
    await eventually(() => page.url()).toContain(`#/${name}`)
  }
  const notices = async () => (await page.locator('.n-notification').allTextContents()).join(' | ')
  const choose = async (testId: string, text: string) => {
    await page.getByTestId(testId).click()
    await page.locator('.n-base-select-option').filter({ hasText: text }).first().click()
  }

  test('an import with a truncated file reports that file, and a run on it is refused before it starts', async () => {
    await page.goto(server.url)
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Datasets')
    await page.getByTestId('import-path').fill(join(tmp, 'cut'))
    await page.getByTestId('import-name').fill('cut')
    await page.getByTestId('import-submit').click()
    const unreadable = page.getByTestId('import-unreadable')
    await eventually(() => unreadable.count(), 90_000).toBe(1)
    const text = (await unreadable.textContent()) ?? ''
    expect(text).toContain(`hippocampus_${CUT}.nii.gz`)
    expect(text).toMatch(/1 case cannot be read/)
    expect(await page.getByTestId('import-outcome').textContent()).not.toContain('No problems found')
    expect(JSON.parse(readFileSync(join(workspace, 'datasets', 'cut', 'manifest.json'), 'utf8')).unreadable).toHaveLength(1)

    // a split, then a run on it: refused before anything is written, naming the file
    await go('splits')
    await choose('split-dataset', 'cut')
    await page.getByTestId('split-folds').fill('2')
    await page.getByTestId('split-name').fill('k2')
    await page.getByTestId('split-create').click()
    await eventually(() => page.getByTestId('split-row-k2').count()).toBe(1)
    await go('training')
    await choose('run-dataset', 'cut')
    await eventually(() => page.getByTestId('run-split').textContent()).toMatch(/k2/)
    const runsBefore = readdirSync(join(workspace, 'runs'))
    await page.getByTestId('run-start').click()
    await eventually(notices).toMatch(/Could not start training/)
    expect(await notices()).toContain(`hippocampus_${CUT}.nii.gz`)
    expect(await notices()).toMatch(/cannot be read/)
    expect(readdirSync(join(workspace, 'runs'))).toEqual(runsBefore)
  })

  test('a split with an existing name is refused, on the name field; the fold view lists each case’s fold', async () => {
    await go('splits')
    await choose('split-dataset', 'good')
    await eventually(() => page.getByTestId('split-row-k3').count()).toBe(1)
    const before = readFileSync(join(workspace, 'datasets', 'good', 'splits', 'k3.json'))
    await page.getByTestId('split-folds').fill('2')
    await page.getByTestId('split-seed').fill('7')
    await page.getByTestId('split-name').fill('k3')
    await page.getByTestId('split-create').click()
    const err = page.getByTestId('split-name-error')
    await eventually(() => err.count()).toBe(1)
    expect(await err.textContent()).toMatch(/already has a split "k3".*"k3-2"/)
    expect(await page.getByTestId('split-name').getAttribute('aria-invalid')).toBe('true')
    expect(readFileSync(join(workspace, 'datasets', 'good', 'splits', 'k3.json')).equals(before)).toBe(true)

    await page.getByTestId('split-folds-k3').click()
    const view = page.getByTestId('split-fold-view')
    await eventually(() => view.count()).toBe(1)
    const file = JSON.parse(before.toString('utf8'))
    for (const [k, f] of (file.folds as { val: string[] }[]).entries()) {
      for (const c of f.val) expect(await view.getByTestId(`fold-case-${c}`).getAttribute('data-fold')).toBe(String(k))
    }
    expect(await view.textContent()).toContain(stuckRun) // used by the run
  })

  test('an out-of-range number shows its error on the field and is not clamped', async () => {
    await go('splits')
    const folds = page.getByTestId('split-folds')
    await folds.fill('99')
    await folds.blur()
    await eventually(() => page.getByTestId('split-folds-error').textContent()).toBe('Must be at most 50.')
    expect(await folds.inputValue()).toBe('99')
    expect(await page.getByTestId('split-create').isDisabled()).toBe(true)
    await folds.fill('3')
    await eventually(() => page.getByTestId('split-folds-error').count()).toBe(0)

    await go('training')
    const batch = page.getByTestId('run-batch')
    await batch.fill('100')
    await batch.blur()
    await eventually(() => page.getByTestId('run-batch-error').textContent()).toBe('Must be at most 64.')
    expect(await batch.inputValue()).toBe('100')
    expect(await page.getByTestId('run-batch').getAttribute('aria-invalid')).toBe('true')
    expect(await page.getByTestId('run-start').isDisabled()).toBe(true)
    const patch = page.getByTestId('run-patch')
    await patch.fill('20')
    await patch.blur()
    await eventually(() => page.getByTestId('run-patch-error').textContent()).toBe('Must be a multiple of 16.')
    await batch.fill('2')
    await patch.fill('32')
    await patch.blur()
    await eventually(() => page.locator('[data-testid$="-error"]').count()).toBe(0)
  })

  test('a run left "queued" with no job is cancelled, then deleted; it is gone and in the trash', async () => {
    await go('training')
    const row = page.getByTestId(`run-row-${stuckRun}`)
    await eventually(() => row.getAttribute('data-status')).toBe('queued')
    expect(await row.getByTestId('run-started').textContent()).toBe('—')
    await row.getByTestId('run-cancel').click()
    await eventually(() => row.getAttribute('data-status')).toBe('cancelled')
    await row.getByTestId('run-delete').click()
    const dialog = page.locator('.n-dialog')
    await eventually(() => dialog.count()).toBe(1)
    expect(await dialog.textContent()).toMatch(/trash/)
    await dialog.getByRole('button', { name: 'Move to trash' }).click()
    await eventually(() => row.count()).toBe(0)
    expect(existsSync(join(workspace, 'runs', stuckRun))).toBe(false)
    const trashed = readdirSync(join(workspace, TRASH_DIR, 'runs')).filter((n) => n.startsWith(`${stuckRun}-`))
    expect(trashed).toHaveLength(1)
    expect(JSON.parse(readFileSync(join(workspace, TRASH_DIR, 'runs', trashed[0], 'config.json'), 'utf8')).id).toBe(stuckRun)
    expect(pageErrors).toEqual([])
  })
})
