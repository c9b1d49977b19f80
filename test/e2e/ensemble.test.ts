/**
 * Ensemble prediction from the Training page, end to end in Debian Chromium (browser mode, real
 * services, worker threads and files): the bundled hippocampus sample with a 3-fold split that
 * holds out 4 test cases, two tiny runs (folds 0 and 1) trained by the real worker. In the
 * "Ensemble of folds" card the two runs are chosen, the held-out test cases predicted and
 * evaluated by the app's jobs; the set opens in Review. Checked against the CLI run on its own:
 * `dsd predict --run A --run B --out DIR` writes the same masks voxel for voxel, and the cohort
 * table's Dice is what `dsd evaluate --dir DIR` computes for them.
 * Needs a built renderer (`node scripts/build.mjs`).
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { readVolume } from '../../main/data/volume-io'
import { startServer, type RunningServer } from '../../main/server'
import { DatasetService } from '../../main/services/datasets'
import { appContext, dsdCli, eventually, ROOT, tmpDir } from '../helpers/shared'
import { ARTIFACTS, STATIC_DIR, checkE2ePrerequisites, launchChromium, trainRuns, TINY_RUN } from '../helpers/e2e'


describe('Ensemble of folds (Training page → Review)', () => {
  let server: RunningServer
  let browser: Browser
  let page: Page
  let workspace = ''
  let runIds: string[] = []
  let testCases: string[] = []
  const pageErrors: string[] = []

  beforeAll(async () => {
    checkE2ePrerequisites()
    workspace = tmpDir('e2e-ensemble')
    mkdirSync(workspace, { recursive: true })
    const svc = new DatasetService(workspace)
    const m = (await svc.importDataset(join(ROOT, 'resources', 'sample', 'hippocampus'), { name: 'Hippocampus' })).manifest
    testCases = m.cases.map((c) => c.id).sort().slice(0, 4)
    await svc.createSplit(m.id, { folds: 3, seed: 0, name: 'k3t', test: testCases })
    server = await startServer({ port: 0, staticDir: STATIC_DIR, workspace })
    runIds = await trainRuns(server, {
      datasetId: m.id,
      split: 'k3t',
      folds: [0, 1],
      variants: ['Basic'],
      ...TINY_RUN,
    })
    browser = await launchChromium()
    page = await (await appContext(browser, { width: 1400, height: 1000 })).newPage()
    page.on('pageerror', (err) => pageErrors.push(err.message))
  }, 400_000)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    if (workspace && !process.env.DSD_KEEP_TMP) rmSync(workspace, { recursive: true, force: true })
  })

  test('two folds predict the held-out test cases together; Review shows the set with the CLI’s Dice', async () => {
    await page.goto(server.url)
    await page.getByTestId('nav-training').click()
    const card = page.getByTestId('ensemble-card')
    await eventually(() => card.count()).toBe(1)
    // Both folds are chosen; the split's 4 test cases are the default.
    for (const id of runIds) {
      expect(await page.getByTestId(`ensemble-run-${id}`).getAttribute('class')).toMatch(/n-checkbox--checked/)
    }
    await eventually(() => page.getByTestId('ensemble-cases-test').textContent()).toContain('(4)')
    expect(await page.getByTestId('ensemble-cases-test').getAttribute('class')).toMatch(/n-radio--checked/)
    // One fold alone is no ensemble.
    await page.getByTestId(`ensemble-run-${runIds[1]}`).click()
    expect(await page.getByTestId('ensemble-predict').isDisabled()).toBe(true)
    await page.getByTestId(`ensemble-run-${runIds[1]}`).click()
    await page.getByTestId('ensemble-predict').click()
    await eventually(() => page.getByTestId('ensemble-open-review').count(), 150_000).toBe(1)
    await eventually(() => page.getByTestId('ensemble-progress').count()).toBe(0)
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'training-ensemble.png'), fullPage: true })

    // The set on disk: both runs, the 4 test cases.
    const sets = (await server.app.bridge.invoke('predictions.list', {})) as {
      value: { sets: { key: string; ref: { kind: string; name?: string }; runIds: string[]; cases: { caseId: string }[] }[] }
    }
    const set = sets.value.sets.find((s) => s.ref.kind === 'ensemble')!
    expect(set.runIds.sort()).toEqual([...runIds].sort())
    expect(set.cases.map((c) => c.caseId).sort()).toEqual(testCases)

    // Review: the ensemble's cohort table, once evaluated (4 cases × 2 labels).
    await page.getByTestId('ensemble-open-review').click()
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Review')
    await eventually(() => page.locator('[data-testid="cohort-row"]').count(), 120_000).toBe(8)

    // The CLI on its own: the same masks, and its Dice in the table.
    const out = join(workspace, 'cli-ensemble')
    const p = dsdCli(workspace, ['predict', ...runIds.flatMap((id) => ['--run', id]), '--out', out, '--quiet'])
    expect(p.status, p.stderr).toBe(0)
    const appDir = join(workspace, 'predictions', set.ref.name!)
    for (const c of testCases) {
      const a = await readVolume(join(appDir, `${c}.nii.gz`))
      const b = await readVolume(join(out, `${c}.nii.gz`))
      expect(Array.from(a.data)).toEqual(Array.from(b.data))
    }
    const e = dsdCli(workspace, ['evaluate', '--dir', out, '--json'])
    expect(e.status, e.stderr).toBe(0)
    const rows = (JSON.parse(e.stdout) as { rows: { caseId: string; label: number; dice: number | null }[] }).rows
    expect(rows).toHaveLength(8)
    for (const r of rows) {
      const cell = page
        .locator(`[data-testid="cohort-row"][data-case="${r.caseId}"][data-label="${r.label}"]`)
        .getByTestId('cohort-dice')
      expect(await cell.getAttribute('title'), `${r.caseId} label ${r.label}`).toBe(r.dice === null ? '–' : r.dice.toFixed(4))
    }
    expect(readFileSync(join(appDir, 'predictions.json'), 'utf8')).toContain(runIds[0])
    expect(pageErrors).toEqual([])
  })
})
