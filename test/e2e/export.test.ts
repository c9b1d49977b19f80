/**
 * The Export page end to end in Debian Chromium (browser mode, real services and files): the
 * bundled hippocampus sample imported, a 5-fold split, one tiny run trained by the real worker,
 * three validation cases predicted with `predictCases` (what `dsd predict` calls). From the
 * Export page: masks + metrics CSV + report exported by the `export` job; one mask read back
 * with the app's reader has the source image's geometry; the exported metrics CSV is what
 * `dsd evaluate` writes for the run; the report embeds the worst and the median case slices.
 * Needs a built renderer (`node scripts/build.mjs`). Screenshots go to test/.tmp/screenshots/
 * (and with DSD_SCREENSHOTS=1 to docs/screenshots/).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { readVolume } from '../../main/data/volume-io'
import { initBackend } from '../../main/engine/backends'
import { startServer, type RunningServer } from '../../main/server'
import { DatasetService } from '../../main/services/datasets'
import { exportsDir } from '../../main/services/export-job'
import { predictCases } from '../../main/services/inference'
import { runFiles } from '../../main/workspace/run-layout'
import { dsdCli, ROOT, tmpDir, appContext, eventually } from '../helpers/shared'
import { ARTIFACTS, STATIC_DIR, checkE2ePrerequisites, launchChromium, trainRuns, TINY_RUN } from '../helpers/e2e'

const DOCS_SHOTS = process.env.DSD_SCREENSHOTS === '1' ? join(ROOT, 'docs', 'screenshots') : null
const PREDICTED = 3


describe('Export page in Chromium', () => {
  let server: RunningServer
  let browser: Browser
  let page: Page
  let workspace = ''
  let runId = ''
  let cases: string[] = []
  let datasetDir = ''
  const pageErrors: string[] = []

  async function shot(name: string): Promise<void> {
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.waitForTimeout(300)
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
    if (DOCS_SHOTS) {
      mkdirSync(DOCS_SHOTS, { recursive: true })
      await page.screenshot({ path: join(DOCS_SHOTS, `${name}.png`), fullPage: true })
    }
  }

  beforeAll(async () => {
    checkE2ePrerequisites()
    workspace = tmpDir('e2e-export')
    mkdirSync(workspace, { recursive: true })
    // The sample dataset and a split (renderer.test.ts has the UI flows for these).
    const svc = new DatasetService(workspace)
    datasetDir = join(ROOT, 'resources', 'sample', 'hippocampus')
    const ds = (await svc.importDataset(datasetDir, { name: 'Hippocampus' })).manifest.id
    const split = await svc.createSplit(ds, { folds: 5, seed: 0, name: 'k5' })
    server = await startServer({ port: 0, staticDir: STATIC_DIR, workspace })
    // One tiny run, trained by the real worker through the app (two steps).
    const trained = await trainRuns(server, {
      datasetId: ds,
      split: 'k5',
      folds: [0],
      variants: ['Basic'],
      ...TINY_RUN,
    }, 120_000)
    runId = trained[0]
    // Predict a few validation cases with the function `dsd predict --run` calls.
    cases = split.folds[0].val.slice(0, PREDICTED)
    await initBackend('wasm')
    await predictCases({ workspace, runIds: [runId], cases, swBatch: 4 })
    browser = await launchChromium()
    page = await (await appContext(browser, { width: 1400, height: 1000 })).newPage()
    page.on('pageerror', (err) => pageErrors.push(err.message))
  }, 300_000)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    if (workspace && !process.env.DSD_KEEP_TMP) rmSync(workspace, { recursive: true, force: true })
  })

  test('exports masks, metrics CSV and the report of a predicted run from the Export page', async () => {
    await page.goto(server.url)
    await page.getByTestId('nav-export').click()
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Export')
    // The run's prediction set is listed and chosen; the destination is under the workspace's exports/.
    await eventually(() => page.getByTestId('export-sets').textContent()).toContain(
      `${runId} · last`,
    )
    expect(await page.getByTestId('export-destination').textContent()).toBe(`${workspace}/exports/`)
    // Masks, metrics and report are the default formats; DICOM SEG is off.
    for (const f of ['nifti', 'metrics', 'report']) {
      expect(await page.getByTestId(`export-format-${f}`).getAttribute('class')).toMatch(
        /n-checkbox--checked/,
      )
    }
    expect(await page.getByTestId('export-format-dicom-seg').getAttribute('class')).not.toMatch(
      /n-checkbox--checked/,
    )
    // A name that would leave exports/ is refused on the field; nothing is written.
    await page.getByTestId('export-name').locator('input').fill('../outside')
    await page.getByTestId('export-start').click()
    await eventually(() =>
      page.locator('.n-form-item-feedback__line').first().textContent(),
    ).toMatch(/name/)
    expect(existsSync(exportsDir(workspace)) ? readdirSync(exportsDir(workspace)) : []).toEqual([])
    await page.getByTestId('export-name').locator('input').fill('e2e-export')
    await shot('export')
    await page.getByTestId('export-start').click()
    await eventually(
      () => page.getByTestId('export-progress').getAttribute('data-status'),
      60_000,
    ).toBe('completed')
    const folder = join(exportsDir(workspace), 'e2e-export')
    await eventually(() => page.getByTestId('export-folder').textContent()).toBe(folder)
    // Browser mode shows the path (no Open folder button).
    expect(await page.getByTestId('export-open').count()).toBe(0)
    expect(await page.getByTestId('export-path-help').isVisible()).toBe(true)
    expect(await page.getByTestId('export-progress-text').textContent()).toMatch(
      new RegExp(`file ${PREDICTED + 2} of ${PREDICTED + 2} · completed`),
    )
    await shot('export-done')

    // One mask read back with the app's reader: the source image's grid, the predicted voxels.
    const mask = await readVolume(join(folder, 'masks', `${cases[0]}.nii.gz`))
    const source = await readVolume(join(datasetDir, 'imagesTr', `${cases[0]}.nii.gz`))
    expect(mask.shape).toEqual(source.shape)
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 4; c++) expect(mask.affine[r][c]).toBeCloseTo(source.affine[r][c], 5)
    const predicted = await readVolume(
      join(runFiles(workspace, runId).predictions, 'last', `${cases[0]}.nii.gz`),
    )
    expect(Array.from(mask.data)).toEqual(Array.from(predicted.data))

    // The metrics CSV is what `dsd evaluate` writes for the run.
    const e = dsdCli(workspace, ['evaluate', '--run', runId])
    expect(e.status, e.stderr).toBe(0)
    const cli = readFileSync(join(runFiles(workspace, runId).metrics, 'last-original.csv'), 'utf8')
    const exported = readFileSync(join(folder, 'metrics', 'last-original.csv'), 'utf8')
    expect(exported.trim().split('\n')).toHaveLength(1 + PREDICTED * 2)
    expect(exported).toBe(cli)

    // The report: the worst and the median case as embedded PNG slices.
    const html = readFileSync(join(folder, 'report.html'), 'utf8')
    const figures = [
      ...html.matchAll(
        /<figure class="slice" data-case="([^"]+)" data-roles="([^"]+)"><img src="data:image\/png;base64,/g,
      ),
    ]
    expect(figures.map((m) => m[2])).toEqual(['worst', 'median'])
    expect(figures.every((m) => cases.includes(m[1]))).toBe(true)
    expect(pageErrors).toEqual([])
  })
})
