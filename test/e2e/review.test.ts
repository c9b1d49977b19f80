/**
 * The Review page end to end in Debian Chromium (browser mode, real services and files): the
 * bundled hippocampus sample imported as on first start, a 10-fold split, two tiny runs (Basic
 * and DSD) trained by the real worker; then, in the app, "Predict validation cases" on the
 * Training page runs predict and evaluate jobs (the inference worker thread) and "Open in
 * Review" opens the set. The cohort table must show the Dice `dsd evaluate`'s function
 * computes (to 4 decimals), and pixel probes on the viewport canvases
 * (`.cornerstone-canvas` is a 2D canvas) must find the image, the ground-truth outline and the
 * prediction fill in their label colours where the label files put them. Needs a built
 * renderer (`node scripts/build.mjs`). Screenshots go to test/.tmp/screenshots/ (and with
 * DSD_SCREENSHOTS=1 to docs/screenshots/).
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { readNifti } from '../../main/data/nifti'
import type { Volume } from '../../main/data/volume'
import { startServer, type RunningServer } from '../../main/server'
import { DatasetService } from '../../main/services/datasets'
import { evaluateRun } from '../../main/services/evaluation'
import { ensureSampleDataset } from '../../main/services/sample'
import type { PredictionsManifest } from '../../main/services/inference'
import { labelColor } from '../../main/services/review'
import { runFiles } from '../../main/workspace/run-layout'
import { ROOT, sharedPath, tmpDir, appContext, eventually } from '../helpers/shared'
import { ARTIFACTS, STATIC_DIR, checkE2ePrerequisites, launchChromium, trainRuns, TINY_RUN } from '../helpers/e2e'

const DOCS_SHOTS = process.env.DSD_SCREENSHOTS === '1' ? join(ROOT, 'docs', 'screenshots') : null
type RGB = [number, number, number]
type V3 = [number, number, number]


/** One row of `dsd evaluate`'s per-case table. */
interface CsvRow {
  caseId: string
  label: number
  dice: number | null
  hd95: number | null
}

/** Voxel (i, j, k) → world LPS (what Cornerstone uses) from the NIfTI affine (RAS). */
function lps(v: Volume, [i, j, k]: V3): V3 {
  const a = v.affine
  const w = [0, 1, 2].map((r) => a[r][0] * i + a[r][1] * j + a[r][2] * k + a[r][3])
  return [-w[0], -w[1], w[2]]
}

const at = (v: Volume, i: number, j: number, k: number) => v.data[(k * v.shape[1] + j) * v.shape[0] + i]

/** Voxels of axial slice k whose in-plane 8-neighbourhood (radius r) is all `label` in `v`. */
function interior(v: Volume, k: number, label: number, r = 1): V3[] {
  const out: V3[] = []
  const [nx, ny] = v.shape
  for (let j = r; j < ny - r; j++)
    for (let i = r; i < nx - r; i++) {
      let all = true
      for (let dj = -r; dj <= r && all; dj++) for (let di = -r; di <= r && all; di++) all = at(v, i + di, j + dj, k) === label
      if (all) out.push([i, j, k])
    }
  return out
}

/** Boundary voxels of `label` on axial slice k: in the label, with a 4-neighbour outside (given with it). */
function boundary(v: Volume, k: number, label: number): { inside: V3; outside: V3 }[] {
  const out: { inside: V3; outside: V3 }[] = []
  const [nx, ny] = v.shape
  for (let j = 1; j < ny - 1; j++)
    for (let i = 1; i < nx - 1; i++) {
      if (at(v, i, j, k) !== label) continue
      for (const [di, dj] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
        if (at(v, i + di, j + dj, k) !== label) {
          out.push({ inside: [i, j, k], outside: [i + di, j + dj, k] })
          break
        }
      }
    }
  return out
}

/** Every `step`-th element (deterministic sample). */
function sample<T>(xs: T[], n: number): T[] {
  if (xs.length <= n) return xs
  const step = xs.length / n
  return Array.from({ length: n }, (_, i) => xs[Math.floor(i * step)])
}

const dist = (a: number[], b: number[]) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2])

/** Page-side helpers (strings: this file is type-checked without DOM types). */
const PROBE_SCRIPT = `
window.__probe = {
  canvas(testId) {
    const c = document.querySelector('[data-testid="' + testId + '"] canvas.cornerstone-canvas')
    if (!c) throw new Error('no .cornerstone-canvas in ' + testId)
    return c
  },
  pixels(testId, points) {
    const c = this.canvas(testId)
    const ctx = c.getContext('2d')
    const s = c.width / c.clientWidth
    return points.map(([x, y]) => Array.from(ctx.getImageData(Math.floor(x * s), Math.floor(y * s), 1, 1).data).slice(0, 3))
  },
  hash(testId) {
    const c = this.canvas(testId)
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
    let h = 0
    for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + d[i + 1] * 7 + d[i + 2] * 13) >>> 0
    return h
  },
  box(testId) {
    const r = this.canvas(testId).getBoundingClientRect()
    return [r.left, r.top, r.width, r.height]
  },
}
`

const TCIA_CASE = 'PGBM-003_19950329'
const tciaFile = (kind: 'imagesTr' | 'labelsTr') => sharedPath('data', 'tcia-brain-tumor-progression', kind, `${TCIA_CASE}.nii.gz`)
const tciaPred = () => sharedPath('golden', 'metrics', `pred_${TCIA_CASE}_dilate_inplane.nii.gz`)

/** A prediction set of one TCIA case from files (no dataset), as `dsd predict --image` writes it. */
async function writeTciaSet(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true })
  copyFileSync(tciaPred(), join(dir, `${TCIA_CASE}.nii.gz`))
  const v = await readNifti(tciaFile('labelsTr'))
  const m: PredictionsManifest = {
    format: 'dsd-predictions',
    version: 1,
    createdAt: new Date().toISOString(),
    datasetId: null,
    runIds: [],
    fold: null,
    which: null,
    models: [],
    settings: { overlap: 0.25, blend: 'constant', tta: false, swBatch: 1 },
    preprocessing: { spacing: null, reorient: true, intensity: { kind: 'zscore' } },
    preprocessingHash: 'golden',
    labelMap: { classes: { '0': 'background', '1': 'tumor' } },
    classes: 2,
    cases: [
      {
        caseId: TCIA_CASE,
        file: `${TCIA_CASE}.nii.gz`,
        preprocessedFile: null,
        images: [tciaFile('imagesTr')],
        label: tciaFile('labelsTr'),
        sourceFormat: 'nifti',
        shape: v.shape,
        affine: v.affine,
        preprocessedShape: v.shape,
        seconds: 0,
      },
    ],
  }
  writeFileSync(join(dir, 'predictions.json'), JSON.stringify(m))
}

describe('Review: cohort table, case viewer and run comparison in Chromium', () => {
  let server: RunningServer
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let workspace = ''
  let runIds: string[] = []
  let cases: string[] = []
  const pageErrors: string[] = []
  const csv: Record<string, CsvRow[]> = {}

  async function shot(name: string): Promise<void> {
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.waitForTimeout(300)
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) })
    if (DOCS_SHOTS) {
      mkdirSync(DOCS_SHOTS, { recursive: true })
      await page.screenshot({ path: join(DOCS_SHOTS, `${name}.png`) })
    }
  }

  const hook = <T>(expr: string): Promise<T> => page.evaluate(`window.__dsdViewer.${expr}`) as Promise<T>
  const status = () => page.getByTestId('case-viewer').getAttribute('data-status')
  async function ready(): Promise<void> {
    await eventually(async () => {
      const s = await status()
      if (s === 'error' || s === 'unavailable') {
        throw new Error(`viewer ${s}: ${await page.getByTestId('case-viewer').textContent()}`)
      }
      return s
    }, 60_000).toBe('ready')
    await hook('rendered(5000)')
  }
  async function panes(): Promise<{ id: string; orientation: string; column: number }[]> {
    return hook('panes()')
  }
  async function paneId(column: number, orientation: string): Promise<string> {
    return (await panes()).find((p) => p.column === column && p.orientation === orientation)!.id
  }
  /** Canvas pixels at world points of one pane. */
  async function pixelsAt(column: number, orientation: string, worlds: V3[]): Promise<RGB[]> {
    const id = await paneId(column, orientation)
    const pts = await page.evaluate(
      `(${JSON.stringify(worlds)}).map((w) => window.__dsdViewer.worldToCanvas(${JSON.stringify(id)}, w))`,
    )
    return (await page.evaluate(
      `window.__probe.pixels(${JSON.stringify(`pane-${column}-${orientation}`)}, ${JSON.stringify(pts)})`,
    )) as RGB[]
  }
  async function setChecked(testId: string, on: boolean): Promise<void> {
    const box = page.getByTestId(testId)
    const checked = (await box.getAttribute('aria-checked')) === 'true'
    if (checked !== on) await box.click()
    await page.mouse.move(1, 1) // no tooltip left open over the toolbar
    await eventually(() => box.getAttribute('aria-checked')).toBe(String(on))
    await hook('rendered(5000)')
  }
  /** Choose an option of a Naive UI select (only the open menu's options are visible). */
  async function choose(testId: string, text: string | RegExp): Promise<void> {
    await page.getByTestId(testId).click()
    await page.locator('.n-base-select-option').filter({ hasText: text, visible: true }).first().click()
  }
  async function openCase(caseId: string): Promise<void> {
    await page.locator(`[data-testid="cohort-row"][data-case="${caseId}"]`).first().click()
    await eventually(() => page.getByTestId('case-name').textContent()).toBe(caseId)
    await ready()
  }

  beforeAll(async () => {
    checkE2ePrerequisites()
    workspace = tmpDir('e2e-review')
    mkdirSync(workspace, { recursive: true })
    // The bundled sample, imported as the app does on first start (`dsd serve --sample`, Electron).
    const sample = await ensureSampleDataset(workspace)
    expect(sample).toEqual({ datasetId: 'hippocampus-sample', imported: true })
    const ds = sample!.datasetId
    server = await startServer({ port: 0, staticDir: STATIC_DIR, workspace })
    // A 10-fold split (4 validation cases a fold) and two tiny runs (Basic and DSD) trained by
    // the real worker, through the app's commands (their UI flows are in renderer.test.ts).
    const split = await server.app.bridge.invoke('splits.create', { datasetId: ds, folds: 10, seed: 0, name: 'k10' })
    if (!split.ok) throw new Error(`splits.create failed: ${split.error.message}`)
    runIds = await trainRuns(server, {
      datasetId: ds,
      split: 'k10',
      folds: [0],
      variants: ['Basic', 'DSD'],
      ...TINY_RUN,
    })
    // The validation cases of fold 0: what "Predict validation cases" predicts (in the first test).
    const { split: k10 } = await new DatasetService(workspace).getSplit(ds, 'k10')
    cases = k10.folds[0].val
    // An oblique, left-handed scan (TCIA: L-A-S, tilted, 0.69 × 0.69 × 6.5 mm) as an ensemble-style
    // set of files: its ground truth and the golden "dilated in-plane" prediction.
    await writeTciaSet(join(workspace, 'predictions', 'tcia'))
    browser = await launchChromium()
    context = await appContext(browser, { width: 1600, height: 1000 })
    await context.addInitScript({ content: PROBE_SCRIPT })
    page = await context.newPage()
    page.on('pageerror', (err) => pageErrors.push(err.message))
  }, 900_000)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    if (workspace && !process.env.DSD_KEEP_TMP) rmSync(workspace, { recursive: true, force: true })
  })

  test('Training: "Predict validation cases" runs predict then evaluate jobs; "Open in Review" shows the Dice of dsd evaluate', async () => {
    await page.goto(server.url)
    await page.getByTestId('nav-training').click()
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Training')
    for (const id of runIds) {
      const row = page.getByTestId(`run-row-${id}`)
      await eventually(() => row.getAttribute('data-status')).toBe('completed')
      expect(await row.getByTestId('run-review').count(), 'nothing to review before predicting').toBe(0)
      await row.getByTestId('run-predict').click()
      // The Tasks panel lists the prediction job.
      await eventually(() => page.locator('[data-kind="predict"]').count()).toBeGreaterThan(0)
    }
    const progress = new Set<string>()
    for (const id of runIds) {
      const row = page.getByTestId(`run-row-${id}`)
      // Progress in the row while the jobs run (case k / n), then "Open in Review" once evaluated.
      await eventually(async () => {
        const p = row.getByTestId('run-predict-progress')
        if (await p.count()) progress.add(((await p.textContent()) ?? '').replace(/\d+ \/ /, 'k / '))
        const failed = await page.locator('[data-kind="predict"][data-status="failed"], [data-kind="evaluate"][data-status="failed"]').count()
        if (failed) throw new Error(`a job failed: ${await page.locator('[data-status="failed"]').first().textContent()}`)
        return row.getByTestId('run-review').count()
      }, 240_000).toBe(1)
    }
    expect([...progress].some((t) => /^(Predicting|Evaluating)/.test(t)), [...progress].join(', ')).toBe(true)
    await eventually(() => page.locator('[data-kind="evaluate"][data-status="completed"]').count()).toBe(2)
    // What `dsd evaluate --run` computes (its function, main/services/evaluation.ts), per run.
    for (const id of runIds) {
      const t = await evaluateRun(workspace, id)
      csv[id] = t.rows.map((r) => ({ caseId: r.caseId, label: r.label, dice: r.dice, hd95: r.hd95 }))
      expect(new Set(t.rows.map((r) => r.caseId))).toEqual(new Set(cases))
    }
    await shot('training-predicted')

    const [basic] = runIds
    await page.getByTestId(`run-row-${basic}`).getByTestId('run-review').click()
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Review')
    expect(decodeURIComponent(page.url())).toContain(`#/review?set=run:${basic}/last`)
    await eventually(() => page.getByTestId('review-set').textContent()).toContain(basic)
    const rows = page.locator('[data-testid="cohort-row"]')
    await eventually(() => rows.count()).toBe(csv[basic].length)
    for (const r of csv[basic]) {
      const cell = page.locator(`[data-testid="cohort-row"][data-case="${r.caseId}"][data-label="${r.label}"]`).getByTestId('cohort-dice')
      expect(await cell.getAttribute('title'), `${r.caseId} label ${r.label}`).toBe(r.dice === null ? '–' : r.dice.toFixed(4))
    }
  }, 600_000)

  test('the cohort table shows the Dice of dsd evaluate, sorts, filters and flags outliers', async () => {
    await page.goto(server.url)
    await page.getByTestId('nav-review').click()
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Review')
    const [basic, dsd] = runIds
    // The first set is chosen once the list is read; pick Basic's explicitly.
    await eventually(() => page.getByTestId('review-set').textContent()).toContain(' · last')
    await choose('review-set', basic)
    const rows = page.locator('[data-testid="cohort-row"]')
    await eventually(() => rows.count()).toBe(csv[basic].length)
    const shown = await rows.evaluateAll((els) =>
      els.map((e) => ({
        caseId: e.getAttribute('data-case'),
        label: Number(e.getAttribute('data-label')),
        cells: Array.from(e.querySelectorAll('td')).map((td) => ((td as { textContent: string | null }).textContent ?? '').trim()),
      })),
    )
    for (const r of csv[basic]) {
      const row = shown.find((s) => s.caseId === r.caseId && s.label === r.label)
      expect(row, `${r.caseId} label ${r.label}`).toBeDefined()
      // Columns: case, fold, label, Dice, HD95, ASSD, NSD
      expect(row!.cells[3]).toBe(r.dice === null ? '–' : r.dice.toFixed(3))
      expect(row!.cells[4]).toBe(r.hd95 === null ? '–' : r.hd95.toFixed(2))
      expect(row!.cells[1]).toBe('0')
    }
    // The mean ± SD rows: per label, over what is shown (sample SD), as the CLI's summary.
    const summary = JSON.parse(readFileSync(join(runFiles(workspace, basic).metrics, 'last-original.json'), 'utf8'))
    const anterior = page.locator('[data-testid="summary-row"][data-label="Anterior"]')
    await eventually(() => anterior.count()).toBe(1)
    const d1 = summary.summary.labels['1'].dice
    const cell = page.locator('tr', { has: anterior }).getByTestId('summary-dice')
    expect(await cell.textContent()).toBe(`${d1.mean.toFixed(2)} ± ${d1.std.toFixed(2)}`)
    // Outlier flags follow the rule on the CLI's own quartiles.
    for (const r of csv[basic]) {
      const d = summary.summary.labels[String(r.label)].dice
      const low = d.median - 2 * (d.box.q3 - d.box.q1)
      const flagged = r.dice === 0 || (r.dice !== null && r.dice < low)
      const row = page.locator(`[data-testid="cohort-row"][data-case="${r.caseId}"][data-label="${r.label}"]`)
      expect(await row.getByTestId('outlier-flag').count(), `${r.caseId}/${r.label}`).toBe(flagged ? 1 : 0)
    }
    // Sorting by Dice: one click sorts one way, the next the other way.
    const diceOrder = async () => {
      const dice = await rows.evaluateAll((els) => els.map((e) => Number(e.querySelectorAll('td')[3]?.textContent)))
      const up = dice.every((v, i) => i === 0 || dice[i - 1] <= v)
      const down = dice.every((v, i) => i === 0 || dice[i - 1] >= v)
      return up && down ? 'flat' : up ? 'up' : down ? 'down' : 'unsorted'
    }
    const dice = page.locator('th', { hasText: /^Dice$/ })
    await dice.click()
    await eventually(diceOrder).toMatch(/up|down/)
    const first = await diceOrder()
    await dice.click()
    await eventually(diceOrder).toBe(first === 'up' ? 'down' : 'up')
    await choose('cohort-label', 'Posterior')
    await eventually(() => rows.count()).toBe(csv[basic].filter((r) => r.label === 2).length)
    await page.getByTestId('cohort-search').fill(cases[1])
    await eventually(() => rows.count()).toBe(1)
    await page.getByTestId('cohort-search').fill('')
    await choose('cohort-label', 'All labels')
    await eventually(() => rows.count()).toBe(csv[basic].length)
    expect(dsd).toBeDefined()
    await shot('review-cohort')
  })

  test('a case shows the image, the ground-truth outline and the prediction fill in the label colours', async () => {
    const [basic] = runIds
    const caseId = cases[0]
    await openCase(caseId)
    expect(await page.locator('canvas.cornerstone-canvas').count()).toBe(3)
    const gt = await readNifti(join(ROOT, 'resources', 'sample', 'hippocampus', 'labelsTr', `${caseId}.nii.gz`))
    const pred = await readNifti(join(runFiles(workspace, basic).predictions, 'last', `${caseId}.nii.gz`))
    const img = await readNifti(join(ROOT, 'resources', 'sample', 'hippocampus', 'imagesTr', `${caseId}.nii.gz`))
    // The axial slice where both labels are in the ground truth and inside the prediction,
    // and the crosshairs there.
    const [nx, ny, nz] = gt.shape
    let k = -1
    let best = 0
    for (let z = 0; z < nz; z++) {
      const score = Math.min(
        boundary(gt, z, 1).length,
        boundary(gt, z, 2).length,
        interior(pred, z, 1, 0).length,
        interior(pred, z, 2, 0).length,
      )
      if (score > best) [best, k] = [score, z]
    }
    expect(k, 'a slice with both labels in the ground truth and the prediction').toBeGreaterThanOrEqual(0)
    await page.evaluate(`window.__dsdViewer.jumpTo(${JSON.stringify(lps(gt, [Math.floor(nx / 2), Math.floor(ny / 2), k]))})`)
    await hook('rendered(5000)')
    const axial = await paneId(0, 'axial')
    const focal = (await hook<{ focalPoint: V3 }>(`probe(${JSON.stringify(axial)})`)).focalPoint
    expect(Math.abs(focal[2] - lps(gt, [0, 0, k])[2])).toBeLessThan(0.5)

    // 1. The image: with both overlays off, grey pixels whose brightness follows the voxels.
    await setChecked('show-gt', false)
    await setChecked('show-pred', false)
    const pts = sample(
      Array.from({ length: nx * ny }, (_, n) => [n % nx, Math.floor(n / nx), k] as V3).filter(
        ([i, j]) => i > 0 && j > 0 && i < nx - 1 && j < ny - 1,
      ),
      60,
    )
    const grey = await pixelsAt(0, 'axial', pts.map((p) => lps(img, p)))
    for (const g of grey) expect(Math.max(...g) - Math.min(...g), `grey pixel ${g}`).toBeLessThanOrEqual(2)
    const vals = pts.map(([i, j]) => at(img, i, j, k))
    const lum = grey.map((g) => g[0])
    expect(Math.max(...lum) - Math.min(...lum), 'the image has contrast').toBeGreaterThan(60)
    // Brighter voxels are drawn brighter (rank correlation over the sample).
    const rank = (xs: number[]) => {
      const order = xs.map((x, i) => [x, i]).sort((a, b) => a[0] - b[0])
      const r = new Array<number>(xs.length)
      order.forEach(([, i], n) => (r[i] = n))
      return r
    }
    const ra = rank(vals)
    const rb = rank(lum)
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length
    const [ma, mb] = [mean(ra), mean(rb)]
    const cov = ra.reduce((s, x, i) => s + (x - ma) * (rb[i] - mb), 0)
    const spearman = cov / Math.sqrt(ra.reduce((s, x) => s + (x - ma) ** 2, 0) * rb.reduce((s, x) => s + (x - mb) ** 2, 0))
    expect(spearman, 'canvas brightness follows the voxel values').toBeGreaterThan(0.85)

    // 2. The ground-truth outline: opaque label colour at the label's boundary, none inside.
    await setChecked('show-gt', true)
    for (const label of [1, 2]) {
      const color = labelColor(label)
      const edges = sample(boundary(gt, k, label), 16)
      if (!edges.length) continue
      let hits = 0
      for (const e of edges) {
        // Along the segment from the boundary voxel's centre to its outside neighbour's.
        const a = lps(gt, e.inside)
        const b = lps(gt, e.outside)
        const line = Array.from({ length: 7 }, (_, t) => a.map((v, r) => v + ((b[r] - v) * t) / 6) as V3)
        const px = await pixelsAt(0, 'axial', line)
        if (px.some((p) => dist(p, color) < 60)) hits++
      }
      expect(hits / edges.length, `outline of label ${label} at its boundary`).toBeGreaterThanOrEqual(0.8)
      const inner = sample(interior(gt, k, label, 2), 10)
      for (const p of await pixelsAt(0, 'axial', inner.map((v) => lps(gt, v)))) {
        expect(dist(p, color), `no fill inside the ground truth of label ${label}: ${p}`).toBeGreaterThan(60)
      }
    }

    // 3. The prediction fill: image blended with the label colour (opacity 0.5) inside the
    //    predicted label, where the ground-truth outline is not drawn.
    await setChecked('show-gt', false)
    const probes: { label: number; world: V3 }[] = []
    for (const label of [1, 2]) {
      // Voxels of the label (their centre pixel is inside the voxel: labelmaps are drawn nearest).
      const inner = sample(interior(pred, k, label, 0), 12)
      expect(inner.length, `prediction of label ${label} on slice ${k}`).toBeGreaterThan(0)
      for (const v of inner) probes.push({ label, world: lps(pred, v) })
    }
    const off = await pixelsAt(0, 'axial', probes.map((p) => p.world))
    await setChecked('show-pred', true)
    const on = await pixelsAt(0, 'axial', probes.map((p) => p.world))
    probes.forEach((p, n) => {
      const c = labelColor(p.label)
      const expected = off[n].map((g, r) => 0.5 * g + 0.5 * c[r])
      expect(dist(on[n], expected), `fill of label ${p.label}: ${on[n]} vs ${expected}`).toBeLessThan(30)
    })
    await setChecked('show-gt', true)
    await shot('review-case')

    // 4. Turning a label off removes its colour (fill and outline); the other label stays.
    await setChecked('label-visible-1', false)
    const after = await pixelsAt(0, 'axial', probes.map((p) => p.world))
    probes.forEach((p, n) => {
      if (p.label === 1) expect(dist(after[n], off[n]), `label 1 hidden: ${after[n]} vs ${off[n]}`).toBeLessThan(12)
      else expect(dist(after[n], on[n]), `label 2 still shown`).toBeLessThan(12)
    })
    const edges1 = sample(boundary(gt, k, 1), 10)
    for (const e of edges1) {
      for (const p of await pixelsAt(0, 'axial', [lps(gt, e.inside)])) {
        expect(dist(p, labelColor(1)), 'no label-1 outline once hidden').toBeGreaterThan(60)
      }
    }
    await setChecked('label-visible-1', true)
  })

  test('clicking moves the crosshairs: the coronal and sagittal views follow; the wheel scrolls', async () => {
    const caseId = cases[0]
    const gt = await readNifti(join(ROOT, 'resources', 'sample', 'hippocampus', 'labelsTr', `${caseId}.nii.gz`))
    const [nx, ny] = gt.shape
    const axial = await paneId(0, 'axial')
    const sag = await paneId(0, 'sagittal')
    const cor = await paneId(0, 'coronal')
    const focal = (await hook<{ focalPoint: V3 }>(`probe(${JSON.stringify(axial)})`)).focalPoint
    const k = Math.round(focal[2] - lps(gt, [0, 0, 0])[2])
    const before = { sag: await page.evaluate(`window.__probe.hash('pane-0-sagittal')`), cor: await page.evaluate(`window.__probe.hash('pane-0-coronal')`) }
    // Click the axial view at voxel (i, j): the sagittal view shows plane i, the coronal plane j.
    const target: V3 = [Math.floor(nx / 4), Math.floor((3 * ny) / 4), k]
    const world = lps(gt, target)
    const [cx, cy] = (await hook<[number, number]>(`worldToCanvas(${JSON.stringify(axial)}, ${JSON.stringify(world)})`))
    const [left, top] = (await page.evaluate(`window.__probe.box('pane-0-axial')`)) as number[]
    await page.mouse.click(left + cx, top + cy)
    await eventually(async () => {
      const s = await hook<{ focalPoint: V3 }>(`probe(${JSON.stringify(sag)})`)
      return Math.abs(s.focalPoint[0] - world[0])
    }).toBeLessThan(0.6)
    await eventually(async () => {
      const c = await hook<{ focalPoint: V3 }>(`probe(${JSON.stringify(cor)})`)
      return Math.abs(c.focalPoint[1] - world[1])
    }).toBeLessThan(0.6)
    await hook('rendered(5000)')
    expect(await page.evaluate(`window.__probe.hash('pane-0-sagittal')`)).not.toBe(before.sag)
    expect(await page.evaluate(`window.__probe.hash('pane-0-coronal')`)).not.toBe(before.cor)
    // The wheel scrolls the axial view slice by slice.
    const s0 = (await hook<{ sliceIndex: number }>(`probe(${JSON.stringify(axial)})`)).sliceIndex
    await page.mouse.move(left + cx, top + cy)
    await page.mouse.wheel(0, 120)
    await eventually(async () => (await hook<{ sliceIndex: number }>(`probe(${JSON.stringify(axial)})`)).sliceIndex).not.toBe(s0)
    // Window presets change the grey range.
    const auto = await hook<{ lower: number; upper: number }>('windowRange()')
    await choose('window-preset', 'Full range')
    await eventually(async () => (await hook<{ voiRange: { lower: number } }>(`probe(${JSON.stringify(axial)})`)).voiRange.lower).toBeLessThan(auto.lower)
  })

  test('next and previous case by keyboard, in the order of the table', async () => {
    const order = await page
      .locator('[data-testid="cohort-row"]')
      .evaluateAll((els) => [...new Set(els.map((e) => e.getAttribute('data-case')))])
    const current = (await page.getByTestId('case-name').textContent())!
    const i = order.indexOf(current)
    await page.locator('body').press('n')
    await eventually(() => page.getByTestId('case-name').textContent()).toBe(order[Math.min(i + 1, order.length - 1)])
    await ready()
    await page.locator('body').press('p')
    await eventually(() => page.getByTestId('case-name').textContent()).toBe(current)
    await ready()
  })

  test('two runs side by side: synchronised slices, each prediction in its column, the per-case Δ, the cohort comparison', async () => {
    const [basic, dsd] = runIds
    const caseId = cases[0]
    await choose('review-compare', dsd)
    await eventually(() => page.locator('canvas.cornerstone-canvas').count()).toBe(6)
    await ready()
    // Scrolling A's axial view moves B's to the same slice.
    const a = await paneId(0, 'axial')
    const b = await paneId(1, 'axial')
    const before = (await hook<{ sliceIndex: number }>(`probe(${JSON.stringify(a)})`)).sliceIndex
    await page.evaluate(`window.__dsdViewer.scroll(${JSON.stringify(a)}, -2)`)
    await eventually(async () => (await hook<{ sliceIndex: number }>(`probe(${JSON.stringify(b)})`)).sliceIndex).toBe(before - 2)
    await hook('rendered(5000)')
    // Column B shows B's prediction: its fill where B predicts a label, in that label's colour.
    const k = Math.round((await hook<{ focalPoint: V3 }>(`probe(${JSON.stringify(b)})`)).focalPoint[2] - 1)
    const predB = await readNifti(join(runFiles(workspace, dsd).predictions, 'last', `${caseId}.nii.gz`))
    await setChecked('show-gt', false)
    const inner = sample(interior(predB, k, 1, 0), 8)
    expect(inner.length).toBeGreaterThan(0)
    const px = await pixelsAt(1, 'axial', inner.map((v) => lps(predB, v)))
    await setChecked('show-pred', false)
    const plain = await pixelsAt(1, 'axial', inner.map((v) => lps(predB, v)))
    px.forEach((p, n) => {
      const expected = plain[n].map((g, r) => 0.5 * g + 0.5 * labelColor(1)[r])
      expect(dist(p, expected), `B's fill ${p} vs ${expected}`).toBeLessThan(30)
    })
    await setChecked('show-pred', true)
    await setChecked('show-gt', true)
    // The per-case Δ = B − A of each metric, from the two runs' CLI tables.
    for (const label of [1, 2]) {
      const ra = csv[basic].find((r) => r.caseId === caseId && r.label === label)!
      const rb = csv[dsd].find((r) => r.caseId === caseId && r.label === label)!
      const cell = page.getByTestId(`delta-${label}-dice`)
      const d = rb.dice! - ra.dice!
      expect((await cell.textContent())!.trim()).toBe(`${d >= 0 ? '+' : ''}${d.toFixed(3)}`)
    }
    // The cohort comparison (metrics.compare): per label, the cases paired and the mean Δ of the
    // two CLI tables.
    for (const label of [1, 2]) {
      const pairs = csv[basic]
        .filter((r) => r.label === label && r.dice !== null)
        .map((ra) => [ra.dice!, csv[dsd].find((rb) => rb.caseId === ra.caseId && rb.label === label)?.dice ?? null] as const)
        .filter(([, b]) => b !== null)
      const row = page.locator(`[data-testid="comparison-row"][data-label="${label}"]`)
      await eventually(() => row.getByTestId('comparison-n').textContent()).toBe(String(pairs.length))
      const mean = pairs.reduce((acc, [a, b]) => acc + (b! - a), 0) / pairs.length
      expect(Number(await row.getByTestId('comparison-delta').getAttribute('title'))).toBeCloseTo(mean, 5)
    }
    await shot('review-compare')
  })

  test('the FP / FN map colours false positives and false negatives', async () => {
    const [basic] = runIds
    const caseId = cases[0]
    await choose('review-compare', 'No comparison')
    await eventually(() => page.locator('canvas.cornerstone-canvas').count()).toBe(3)
    await ready()
    await setChecked('show-errors', true)
    const gt = await readNifti(join(ROOT, 'resources', 'sample', 'hippocampus', 'labelsTr', `${caseId}.nii.gz`))
    const pred = await readNifti(join(runFiles(workspace, basic).predictions, 'last', `${caseId}.nii.gz`))
    const axial = await paneId(0, 'axial')
    const k = Math.round((await hook<{ focalPoint: V3 }>(`probe(${JSON.stringify(axial)})`)).focalPoint[2] - 1)
    await setChecked('show-gt', false)
    // False positives: predicted foreground on background, away from any edge of the map.
    const [nx, ny] = gt.shape
    const fp: V3[] = []
    for (let j = 1; j < ny - 1; j++)
      for (let i = 1; i < nx - 1; i++) {
        let all = true
        for (let dj = -1; dj <= 1 && all; dj++)
          for (let di = -1; di <= 1 && all; di++) all = at(gt, i + di, j + dj, k) === 0 && at(pred, i + di, j + dj, k) > 0
        if (all) fp.push([i, j, k])
      }
    expect(fp.length).toBeGreaterThan(0)
    const probes = sample(fp, 8)
    const on = await pixelsAt(0, 'axial', probes.map((v) => lps(gt, v)))
    await setChecked('show-errors', false)
    await setChecked('show-pred', false)
    const plain = await pixelsAt(0, 'axial', probes.map((v) => lps(gt, v)))
    on.forEach((p, n) => {
      const expected = plain[n].map((g, r) => 0.5 * g + 0.5 * [255, 140, 0][r])
      expect(dist(p, expected), `FP colour ${p} vs ${expected}`).toBeLessThan(30)
    })
    await setChecked('show-pred', true)
    await setChecked('show-gt', true)
  })

  test('the page, the open run and case and the viewer settings survive a restart', async () => {
    const caseId = (await page.getByTestId('case-name').textContent())!
    await choose('window-preset', 'CT soft tissue')
    await setChecked('label-visible-2', false)
    const setText = await page.getByTestId('review-set').textContent()
    // A new window of the same profile, opened at the bare address.
    const again = await context.newPage()
    again.on('pageerror', (err) => pageErrors.push(err.message))
    await page.close()
    page = again
    await page.goto(server.url)
    await eventually(() => page.getByTestId('page-heading').textContent()).toBe('Review')
    await eventually(() => page.getByTestId('case-name').textContent()).toBe(caseId)
    await ready()
    expect(await page.getByTestId('review-set').textContent()).toBe(setText)
    expect(await page.getByTestId('label-visible-2').getAttribute('aria-checked')).toBe('false')
    expect(await page.getByTestId('window-preset').textContent()).toContain('CT soft tissue')
    const axial = await paneId(0, 'axial')
    expect((await hook<{ voiRange: { lower: number; upper: number } }>(`probe(${JSON.stringify(axial)})`)).voiRange).toEqual({ lower: -160, upper: 240 })
    await setChecked('label-visible-2', true)
    await choose('window-preset', 'Auto')
  })

  test('an oblique, left-handed scan shows its overlays where its files put them', async () => {
    await choose('review-set', 'tcia')
    await eventually(() => page.locator('[data-testid="cohort-row"]').count()).toBe(1)
    await openCase(TCIA_CASE)
    const gt = await readNifti(tciaFile('labelsTr'))
    const pred = await readNifti(tciaPred())
    const [, , nz] = gt.shape
    let k = 0
    let best = 0
    for (let z = 0; z < nz; z++) {
      const n = interior(pred, z, 1, 1).length + boundary(gt, z, 1).length
      if (n > best) [best, k] = [n, z]
    }
    const inside = interior(gt, k, 1, 1)
    expect(inside.length).toBeGreaterThan(0)
    // The crosshairs on the tumour, and the axial view zoomed ×4 around it (voxels of 0.69 mm).
    const centre = JSON.stringify(lps(gt, inside[Math.floor(inside.length / 2)]))
    await page.evaluate(`window.__dsdViewer.jumpTo(${centre})`)
    const axial = await paneId(0, 'axial')
    await page.evaluate(`window.__dsdViewer.zoomAt(${JSON.stringify(axial)}, ${centre}, 4)`)
    await hook('rendered(5000)')
    // The view is the file's slice k: its voxel centres lie on the view plane.
    const probe = await hook<{ focalPoint: V3; viewPlaneNormal: V3 }>(`probe(${JSON.stringify(axial)})`)
    const c = lps(gt, inside[0])
    const off = c.reduce((s, v, r) => s + (v - probe.focalPoint[r]) * probe.viewPlaneNormal[r], 0)
    expect(Math.abs(off), 'slice k is the view plane').toBeLessThan(0.5)
    await setChecked('show-pred', false)
    const edges = sample(boundary(gt, k, 1), 16)
    let hits = 0
    for (const e of edges) {
      const a = lps(gt, e.inside)
      const b = lps(gt, e.outside)
      const line = Array.from({ length: 7 }, (_, t) => a.map((v, r) => v + ((b[r] - v) * t) / 6) as V3)
      if ((await pixelsAt(0, 'axial', line)).some((p) => dist(p, labelColor(1)) < 60)) hits++
    }
    expect(hits / edges.length, 'tumour outline at its boundary').toBeGreaterThanOrEqual(0.8)
    await setChecked('show-gt', false)
    const fill = sample(interior(pred, k, 1, 1), 10)
    const plain = await pixelsAt(0, 'axial', fill.map((v) => lps(pred, v)))
    await setChecked('show-pred', true)
    const on = await pixelsAt(0, 'axial', fill.map((v) => lps(pred, v)))
    on.forEach((p, n) => {
      const expected = plain[n].map((g, r) => 0.5 * g + 0.5 * labelColor(1)[r])
      expect(dist(p, expected), `tumour fill ${p} vs ${expected}`).toBeLessThan(30)
    })
    await setChecked('show-gt', true)
    await shot('review-oblique')
  })

  test('without WebGL2 the viewer says so instead of drawing nothing', async () => {
    const p = await context.newPage()
    await p.addInitScript({
      content: `(() => {
        const get = HTMLCanvasElement.prototype.getContext
        HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
          return kind === 'webgl2' || kind === 'webgl' ? null : get.call(this, kind, ...rest)
        }
      })()`,
    })
    try {
      await p.goto(server.url)
      await eventually(() => p.getByTestId('page-heading').textContent()).toBe('Review')
      await eventually(() => p.getByTestId('case-viewer').getAttribute('data-status')).toBe('unavailable')
      expect(await p.getByTestId('viewer-unavailable').textContent()).toMatch(/needs WebGL2.*swiftshader/s)
      expect(await p.locator('canvas.cornerstone-canvas').count()).toBe(0)
    } finally {
      await p.close()
    }
  })

  test('no page errors', () => {
    expect(pageErrors).toEqual([])
  })
})
