/**
 * Case-viewer benchmark (docs/ui.md, "Viewer performance"): a CT-sized case in the Review page
 * in Debian Chromium, browser mode, with the built renderer (`node scripts/build.mjs` first).
 *
 *   npx tsx bench/viewer-bench.ts [--shape 512,512,300] [--steps 60] [--repeat 3] [--keep] [--data DIR]
 *                                 [--static DIR] [--profile FILE.cpuprofile]
 *
 * Writes (not committed; in a temp folder) two synthetic CT cases of the given shape, int16
 * in HU (air, a body with soft tissue, bone and a noisy texture) with two label maps each — a
 * ground truth (label 1 an organ-like ellipsoid, label 2 a lesion) and a prediction (the same
 * shapes shifted and resized) — imports them as a dataset with a prediction set, then in the
 * page measures:
 *   - open: click on a case row → the three views drawn with both overlays (the first open of
 *     each case, then `--repeat` reopens alternating A and B after their first load: the main
 *     side's cache, code warm; the median and each run with the viewer's phase timings);
 *   - the data channel: fetch time and bytes of each volume (Resource Timing);
 *   - scrolling: `--steps` wheel events on the axial view, one per animation frame; the time
 *     from each event to the next drawn frame of that view (median, 95th percentile, max);
 *   - memory: Cornerstone's cache size and the JS heap (after a forced GC) with case A open,
 *     after switching to case B, and after switching back.
 * `--static DIR` serves another renderer build (e.g. a copy of `dist/renderer` from before a
 * change, to compare two builds on the same data and load); `--profile FILE` records a Chromium
 * CPU profile (CDP `Profiler`) of the last reopen, writes it (open it in DevTools) and prints
 * the functions with the most self time. Prints one JSON object (and a readable summary on
 * stderr), with the load average at the start and the end (the machine may be shared).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'
import { writeNifti } from '../main/data/nifti'
import type { Mat4, Vec3, Volume } from '../main/data/volume'
import { startServer } from '../main/server'
import { DatasetService } from '../main/services/datasets'
import type { PredictionsManifest } from '../main/services/inference'
import { atomicWriteJson } from '../main/workspace/atomic'

// The functions passed to page.evaluate run in Chromium; this file is type-checked without DOM types.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const window: any
declare const document: any
declare const requestAnimationFrame: (cb: () => void) => number
/* eslint-enable @typescript-eslint/no-explicit-any */

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: '512,512,300' },
    steps: { type: 'string', default: '60' },
    repeat: { type: 'string', default: '3' },
    static: { type: 'string' },
    profile: { type: 'string' },
    keep: { type: 'boolean', default: false },
    /** Reuse the data a `--keep` run left in DIR (generating it takes minutes). */
    data: { type: 'string' },
  },
})
const shape = values.shape!.split(',').map(Number) as Vec3
const steps = Number(values.steps)
const repeat = Math.max(1, Number(values.repeat))
const log = (s: string) => process.stderr.write(`${s}\n`)

/** A deterministic 32-bit PRNG (mulberry32). */
function prng(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A CT-like int16 volume and its ground truth / prediction (0.8 × 0.8 × 1.5 mm). */
function makeCase(seed: number) {
  const [nx, ny, nz] = shape
  const n = nx * ny * nz
  const img = new Int16Array(n)
  const gt = new Uint8Array(n)
  const pred = new Uint8Array(n)
  const rnd = prng(seed)
  const cx = nx / 2
  const cy = ny / 2
  const organ = { x: nx * (0.38 + 0.04 * rnd()), y: ny * 0.45, z: nz * 0.5, rx: nx * 0.14, ry: ny * 0.1, rz: nz * 0.22 }
  const lesion = { x: organ.x + nx * 0.03, y: organ.y + ny * 0.02, z: nz * 0.5, r: nx * 0.035 }
  const inEllipsoid = (x: number, y: number, z: number, e: typeof organ, s = 1, d = 0) =>
    ((x - e.x - d) / (e.rx * s)) ** 2 + ((y - e.y) / (e.ry * s)) ** 2 + ((z - e.z) / (e.rz * s)) ** 2 <= 1
  const inSphere = (x: number, y: number, z: number, r: number, d = 0) =>
    (x - lesion.x - d) ** 2 + (y - lesion.y) ** 2 + ((z - lesion.z) * 0.8 / 1.5 * 1.5) ** 2 <= r * r
  for (let k = 0, p = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        const body = ((i - cx) / (nx * 0.42)) ** 2 + ((j - cy) / (ny * 0.32)) ** 2 <= 1
        const bone = ((i - cx) / (nx * 0.06)) ** 2 + ((j - cy * 1.45) / (ny * 0.05)) ** 2 <= 1
        let v = body ? 40 + 25 * Math.sin(i * 0.05 + k * 0.03) * Math.cos(j * 0.04) : -1000
        if (bone) v = 700 + 150 * Math.sin(k * 0.1)
        const o = inEllipsoid(i, j, k, organ)
        const l = inSphere(i, j, k, lesion.r)
        if (o) v = 60
        if (l) v = 20
        img[p] = Math.round(v + (rnd() - 0.5) * 40)
        gt[p] = l ? 2 : o ? 1 : 0
        pred[p] = inSphere(i, j, k, lesion.r * 1.15, 2) ? 2 : inEllipsoid(i, j, k, organ, 0.95, 4) ? 1 : 0
      }
  return { img, gt, pred }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[]
  samples: number[]
  timeDeltas: number[]
}

/** The functions with the most self time in a CDP CPU profile (ms, summed over call sites). */
function topSelfTime(p: CpuProfile, n: number): { ms: number; fn: string }[] {
  const byNode = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) byNode.set(p.samples[i], (byNode.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0))
  const byFn = new Map<string, number>()
  for (const node of p.nodes) {
    const us = byNode.get(node.id)
    if (!us) continue
    const f = node.callFrame
    const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`
    byFn.set(key, (byFn.get(key) ?? 0) + us)
  }
  return [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, us]) => ({ ms: Math.round(us / 1000), fn }))
}

const affine: Mat4 = [
  [-0.8, 0, 0, 200],
  [0, -0.8, 0, 200],
  [0, 0, 1.5, -200],
  [0, 0, 0, 1],
]
const vol = (data: Int16Array | Uint8Array, datatype: 'int16' | 'uint8'): Volume => ({
  shape,
  channels: 1,
  spacing: [0.8, 0.8, 1.5],
  affine,
  datatype,
  data,
})

const tmp = values.data ? resolve(values.data) : mkdtempSync(join(tmpdir(), 'dsd-viewer-bench-'))
const src = join(tmp, 'src')
const ws = join(tmp, 'ws')
const ids = ['ct_001', 'ct_002']
if (!existsSync(join(ws, 'predictions', 'bench', 'predictions.json'))) await generate()

async function generate(): Promise<void> {
  mkdirSync(join(src, 'imagesTr'), { recursive: true })
  mkdirSync(join(src, 'labelsTr'), { recursive: true })
  mkdirSync(ws, { recursive: true })
  const t = Date.now()
  const preds: Record<string, Uint8Array> = {}
  for (const [n, id] of ids.entries()) {
    const c = makeCase(n + 1)
    await writeNifti(join(src, 'imagesTr', `${id}.nii.gz`), vol(c.img, 'int16'), { gzipLevel: 1 })
    await writeNifti(join(src, 'labelsTr', `${id}.nii.gz`), vol(c.gt, 'uint8'), { gzipLevel: 1 })
    preds[id] = c.pred
  }
  writeFileSync(
    join(src, 'dataset.json'),
    JSON.stringify({
      name: 'ct-bench',
      modality: { '0': 'CT' },
      labels: { '0': 'background', '1': 'organ', '2': 'lesion' },
      numTraining: ids.length,
      training: ids.map((id) => ({ image: `./imagesTr/${id}.nii.gz`, label: `./labelsTr/${id}.nii.gz` })),
      test: [],
    }),
  )
  const svc = new DatasetService(ws)
  const datasetId = (await svc.importDataset(src, { name: 'ct-bench' })).manifest.id
  const setDir = join(ws, 'predictions', 'bench')
  mkdirSync(setDir, { recursive: true })
  for (const id of ids) await writeNifti(join(setDir, `${id}.nii.gz`), vol(preds[id], 'uint8'), { gzipLevel: 1 })
  const manifest: PredictionsManifest = {
    format: 'dsd-predictions',
    version: 1,
    createdAt: new Date().toISOString(),
    datasetId,
    runIds: [],
    fold: null,
    which: null,
    models: [],
    settings: { overlap: 0.25, blend: 'constant', tta: false, swBatch: 1 },
    preprocessing: { spacing: null, reorient: true, intensity: { kind: 'zscore' } },
    preprocessingHash: 'bench',
    labelMap: { classes: { '0': 'background', '1': 'organ', '2': 'lesion' } },
    classes: 3,
    cases: ids.map((id) => ({
      caseId: id,
      file: `${id}.nii.gz`,
      preprocessedFile: null,
      images: [join(src, 'imagesTr', `${id}.nii.gz`)],
      label: join(src, 'labelsTr', `${id}.nii.gz`),
      sourceFormat: 'nifti' as const,
      shape,
      affine,
      preprocessedShape: shape,
      seconds: 0,
    })),
  }
  await atomicWriteJson(join(setDir, 'predictions.json'), manifest)
  log(`data: 2 cases ${shape.join('×')} int16 + 2 label maps each, written in ${((Date.now() - t) / 1000).toFixed(1)} s (${tmp})`)
}

const staticDir = values.static ? resolve(values.static) : join(ROOT, 'dist', 'renderer')
const load = () => loadavg().map((x) => +x.toFixed(2))
const server = await startServer({ port: 0, staticDir, workspace: ws })
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--use-angle=swiftshader',
    '--enable-unsafe-swiftshader',
    '--enable-precise-memory-info',
    '--js-flags=--expose-gc',
  ],
})
const out: Record<string, unknown> = {
  shape,
  voxels: shape[0] * shape[1] * shape[2],
  chromium: browser.version(),
  renderer: staticDir,
  loadAtStart: load(),
}
try {
  const page = await (await browser.newContext({ viewport: { width: 1600, height: 1000 } })).newPage()
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  await page.goto(server.url)
  await page.getByTestId('nav-review').click()
  await page.waitForSelector('[data-testid="cohort-row"]', { timeout: 60_000 })
  const status = () => page.getByTestId('case-viewer').getAttribute('data-status')
  const open = async (id: string) => {
    const t0 = Date.now()
    await page.locator(`[data-testid="cohort-row"][data-case="${id}"]`).click()
    await page
      .waitForFunction(
        (cid) => {
          const v = document.querySelector('[data-testid="case-viewer"]')
          return document.querySelector('[data-testid="case-name"]')?.textContent === cid && v?.getAttribute('data-status') === 'ready'
        },
        id,
        { timeout: 180_000 },
      )
      .catch(async (err: Error) => {
        const shown = await page.evaluate(() => document.querySelector('[data-testid="case-name"]')?.textContent ?? null)
        throw new Error(`opening ${id}: ${err.message}; case shown ${shown}, viewer ${await status()}; page errors: ${errors.join(' | ')}`)
      })
    const ms = Date.now() - t0
    if ((await status()) !== 'ready') throw new Error(`viewer ${await status()}`)
    const timings = (await page.evaluate('window.__dsdViewer.timings()')) as Record<string, number>
    log(`open ${id}: ${ms} ms ${JSON.stringify(timings)} (load ${load()[0]})`)
    return { ms, timings }
  }
  const memory = async () =>
    page.evaluate(async () => {
      const w = window as unknown as { gc?: () => void; __dsdViewer: { cacheBytes(): Promise<number> } }
      for (let i = 0; i < 3; i++) {
        w.gc?.()
        await new Promise((r) => setTimeout(r, 200))
      }
      const mem = (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory
      return { cacheMB: (await w.__dsdViewer.cacheBytes()) / 2 ** 20, heapMB: (mem?.usedJSHeapSize ?? NaN) / 2 ** 20 }
    })
  const volumes = async () =>
    page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((e) => e.name.includes('/volume/'))
        .map((e) => {
          const r = e as unknown as { name: string; duration: number; responseStart: number; requestStart: number; encodedBodySize: number }
          return { path: decodeURIComponent(new URL(r.name).pathname), ms: Math.round(r.duration), waitMs: Math.round(r.responseStart - r.requestStart), MB: +(r.encodedBodySize / 2 ** 20).toFixed(1) }
        }),
    )
  const openA1 = await open(ids[0])
  const memA = await memory()
  const openB = await open(ids[1])
  const memB = await memory()
  // Reopens after the first load, alternating A and B (each one a case switch).
  const again: { ms: number; timings: Record<string, number> }[] = []
  let memA2 = memB
  for (let r = 0; r < repeat; r++) {
    const last = r === repeat - 1
    const cdp = last && values.profile ? await page.context().newCDPSession(page) : null
    if (cdp) {
      await cdp.send('Profiler.enable')
      await cdp.send('Profiler.setSamplingInterval', { interval: 500 })
      await cdp.send('Profiler.start')
    }
    again.push(await open(ids[(r + 2) % 2]))
    if (cdp) {
      const { profile } = await cdp.send('Profiler.stop')
      writeFileSync(resolve(values.profile!), JSON.stringify(profile))
      out.profileTop = topSelfTime(profile as unknown as CpuProfile, 30)
      for (const f of out.profileTop as { ms: number; fn: string }[]) log(`  ${String(f.ms).padStart(6)} ms  ${f.fn}`)
      await cdp.detach()
    }
    memA2 = await memory()
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
  const phases = Object.keys(again[0].timings)
  out.open = {
    firstA_ms: openA1.ms,
    firstB_ms: openB.ms,
    again_ms: again.map((a) => a.ms),
    againMedian_ms: median(again.map((a) => a.ms)),
    againMedianPhases_ms: Object.fromEntries(phases.map((k) => [k, median(again.map((a) => a.timings[k] ?? 0))])),
    again: again.map((a) => a.timings),
  }
  out.memory = { withA: memA, afterSwitchToB: memB, afterLastSwitch: memA2 }
  out.volumes = await volumes()
  // Scrolling: one wheel event per frame on the axial view; time to the view's next frame.
  const box = await page.locator('[data-testid="pane-0-axial"]').boundingBox()
  await page.mouse.move(box!.x + box!.width / 2, box!.y + box!.height / 2)
  await page.evaluate(() => {
    const w = window as unknown as { __scroll: number[]; __pending: number | null; __paneFrames: Record<string, number> }
    w.__scroll = []
    w.__pending = null
    w.__paneFrames = {}
    for (const pane of document.querySelectorAll('[data-pane]')) {
      const id = pane.getAttribute('data-pane-id')
      pane.addEventListener('CORNERSTONE_IMAGE_RENDERED', () => (w.__paneFrames[id] = (w.__paneFrames[id] ?? 0) + 1))
    }
    const el = document.querySelector('[data-testid="pane-0-axial"] [data-pane]')!
    el.addEventListener('wheel', () => (w.__pending = performance.now()), { capture: true })
    el.addEventListener('CORNERSTONE_IMAGE_RENDERED', () => {
      if (w.__pending !== null) {
        w.__scroll.push(performance.now() - w.__pending)
        w.__pending = null
      }
    })
  })
  const axial = await page.evaluate(() => (window as unknown as { __dsdViewer: { panes(): { id: string }[] } }).__dsdViewer.panes()[0].id)
  const slice = () =>
    page.evaluate((id) => (window as unknown as { __dsdViewer: { probe(id: string): { sliceIndex: number } } }).__dsdViewer.probe(id).sliceIndex, axial)
  const s0 = await slice()
  const renders = () => page.evaluate(() => (window as unknown as { __dsdViewer: { renders(): number } }).__dsdViewer.renders())
  const r0 = await renders()
  const t0 = Date.now()
  for (let i = 0; i < steps; i++) {
    await page.mouse.wheel(0, i < steps / 2 ? 100 : -100)
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))))
  }
  await page.waitForTimeout(300)
  const wall = Date.now() - t0
  const frames = (await page.evaluate(() => (window as unknown as { __scroll: number[] }).__scroll)).sort((a, b) => a - b)
  const q = (p: number) => +frames[Math.min(frames.length - 1, Math.floor(p * frames.length))].toFixed(1)
  out.scroll = {
    events: steps,
    framesDrawn: frames.length,
    medianMs: q(0.5),
    p95Ms: q(0.95),
    maxMs: +frames[frames.length - 1].toFixed(1),
    wallMsPerStep: +(wall / steps).toFixed(1),
    // Frames drawn by all panes per wheel event (1 = only the scrolled view is drawn again).
    paneFramesPerStep: +(((await renders()) - r0) / steps).toFixed(2),
    framesPerPane: await page.evaluate(() => (window as unknown as { __paneFrames: Record<string, number> }).__paneFrames),
    sliceBefore: s0,
    sliceAfter: await slice(),
  }
  out.pageErrors = errors
  out.loadAtEnd = load()
} finally {
  await browser.close()
  await server.close()
  if (!values.keep && !values.data) rmSync(tmp, { recursive: true, force: true })
}
const o = out as {
  open: { firstA_ms: number; firstB_ms: number; again_ms: number[]; againMedian_ms: number; againMedianPhases_ms: Record<string, number> }
  memory: Record<string, { cacheMB: number; heapMB: number }>
  scroll: Record<string, number>
}
log(`open: first A ${o.open.firstA_ms} ms, first B ${o.open.firstB_ms} ms`)
log(`reopen: median ${o.open.againMedian_ms} ms of ${o.open.again_ms.join(', ')}; median phases ${JSON.stringify(o.open.againMedianPhases_ms)}`)
log(`load average: ${JSON.stringify(out.loadAtStart)} at the start, ${JSON.stringify(out.loadAtEnd)} at the end`)
for (const [k, m] of Object.entries(o.memory)) log(`memory ${k}: cache ${m.cacheMB.toFixed(0)} MB, JS heap ${m.heapMB.toFixed(0)} MB`)
log(`scroll: ${o.scroll.framesDrawn}/${o.scroll.events} frames, event→frame median ${o.scroll.medianMs} ms, p95 ${o.scroll.p95Ms} ms, max ${o.scroll.maxMs} ms; ${o.scroll.paneFramesPerStep} pane frames per event`)
console.log(JSON.stringify(out, null, 2))
