/**
 * Metrics benchmark: our Dice/HD95/ASSD/NSD against the SciPy reference on the same data in
 * the same run (see shared/docs/benchmarks.md: "faster than SciPy on a large multi-label case,
 * identical values").
 *
 *   npx tsx bench/metrics-bench.ts [--shape 512,512,300] [--labels 8] [--repeat 3]
 *                                  [--no-scipy] [--scipy-full] [--real-only]
 *
 * Cases: a synthetic 512×512×300 map with 8 irregular organ-like labels and a perturbed
 * prediction (shifted, scaled, with stray false-positive blobs), and a real case
 * (shared/golden/metrics/pred_PGBM-003_19950329_slice_shift.nii.gz against its label map).
 *
 * The SciPy reference is what MONAI does per label: one-hot masks, crop to the bounding box
 * of prediction ∪ ground truth (MONAI's get_mask_edges crop=True), mask XOR binary_erosion,
 * distance_transform_edt(~edges, sampling=spacing) in both directions, np.percentile.
 * `--scipy-full` also times it without the crop (whole-volume transforms). Timings exclude
 * reading files and are medians: ours of `--repeat` runs after 3 untimed warm-up runs (no
 * warm-up above 20 M voxels), SciPy's of the same count (one run above 20 M voxels: it is
 * slow); the real case uses at least 5 runs of each.
 * Prints one JSON object.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { Vec3 } from '../main/data/volume'
import { readNifti } from '../main/data/nifti'
import { computeMetrics, median, type MetricsResult } from '../main/metrics'

const ROOT = resolve(fileURLToPath(import.meta.url), '../..')
const SHARED = process.env.DSD_SHARED ?? resolve(ROOT, '../shared')
const PYTHON = '/usr/bin/python3'

const SCIPY_REFERENCE = String.raw`
import json, sys, time
import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt
args = json.loads(sys.argv[1])
nx, ny, nz = args['shape']
def load(path, dtype):
    # i-fastest file -> numpy (nx, ny, nz) array, C-contiguous like a nibabel-loaded volume
    return np.ascontiguousarray(np.fromfile(path, dtype=dtype).reshape(nz, ny, nx).transpose(2, 1, 0))
pred = load(args['pred'], args['dtype']); gt = load(args['gt'], args['dtype'])
sp = args['spacing']; tol = args['tolerance']
def one(p, g, crop):
    if crop:
        u = p | g
        sl = []
        for ax in range(3):
            other = tuple(a for a in range(3) if a != ax)
            nzi = np.flatnonzero(np.any(u, axis=other))
            sl.append(slice(nzi[0], nzi[-1] + 1))
        p = p[tuple(sl)]; g = g[tuple(sl)]
    ep = p ^ binary_erosion(p); eg = g ^ binary_erosion(g)
    dpg = distance_transform_edt(~eg, sampling=sp)[ep]
    dgp = distance_transform_edt(~ep, sampling=sp)[eg]
    return dict(hd95=float(max(np.percentile(dpg, 95), np.percentile(dgp, 95))),
                assd=float((dpg.mean() + dgp.mean()) / 2),
                nsd=float(((dpg <= tol).sum() + (dgp <= tol).sum()) / (dpg.size + dgp.size)))
out = {}
for mode in args['modes']:
    times = []
    for rep in range(args['repeat']):
        t0 = time.perf_counter()
        labels = {}
        for l in args['labels']:
            p = pred == l; g = gt == l
            ps = int(p.sum()); gs = int(g.sum())
            r = dict(dice=2.0 * int((p & g).sum()) / (ps + gs))
            r.update(one(p, g, mode == 'crop'))
            labels[str(l)] = r
        times.append((time.perf_counter() - t0) * 1000)
    out[mode] = dict(ms=float(np.median(times)), runs_ms=times, labels=labels)
print(json.dumps(out))
`

interface Case {
  name: string
  shape: Vec3
  spacing: Vec3
  pred: Uint8Array
  gt: Uint8Array
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Organ {
  c: Vec3
  r: Vec3
  amp: number
  freq: Vec3
  phase: Vec3
}

/** Draws an irregular ellipsoid (radius modulated by sines along each axis) into `out`. */
function drawOrgan(out: Uint8Array, shape: Vec3, o: Organ, value: number): void {
  const [nx, ny, nz] = shape
  const reach = 1 + o.amp
  const lo = o.c.map((c, a) => Math.max(0, Math.floor(c - o.r[a] * reach)))
  const hi = o.c.map((c, a) => Math.min(shape[a] - 1, Math.ceil(c + o.r[a] * reach)))
  const tab = (a: number) =>
    Float64Array.from({ length: shape[a] }, (_, i) =>
      Math.sin(((i - o.c[a]) / o.r[a]) * o.freq[a] + o.phase[a]),
    )
  const sx = tab(0)
  const sy = tab(1)
  const sz = tab(2)
  for (let k = lo[2]; k <= hi[2]; k++) {
    const dz = (k - o.c[2]) / o.r[2]
    for (let j = lo[1]; j <= hi[1]; j++) {
      const dy = (j - o.c[1]) / o.r[1]
      const base = (k * ny + j) * nx
      for (let i = lo[0]; i <= hi[0]; i++) {
        const dx = (i - o.c[0]) / o.r[0]
        const m = 1 + (o.amp * (sx[i] + sy[j] + sz[k])) / 3
        if (dx * dx + dy * dy + dz * dz <= m * m) out[base + i] = value
      }
    }
  }
  void nz
}

/** A large synthetic multi-label case: ground truth and a perturbed prediction. */
function syntheticCase(shape: Vec3, nLabels: number): Case {
  const r = rng(20240601)
  const n = shape[0] * shape[1] * shape[2]
  const gt = new Uint8Array(n)
  const pred = new Uint8Array(n)
  for (let l = 1; l <= nLabels; l++) {
    const rad: Vec3 = [
      shape[0] * (0.05 + 0.12 * r()),
      shape[1] * (0.05 + 0.12 * r()),
      shape[2] * (0.05 + 0.12 * r()),
    ]
    const c = rad.map((ra, a) => ra * 1.3 + r() * (shape[a] - 2.6 * ra)) as Vec3
    const organ: Organ = {
      c,
      r: rad,
      amp: 0.1 + 0.15 * r(),
      freq: [2 + 4 * r(), 2 + 4 * r(), 2 + 4 * r()],
      phase: [6 * r(), 6 * r(), 6 * r()],
    }
    drawOrgan(gt, shape, organ, l)
    // prediction: shifted by up to 3 voxels, scaled by ±5 %, slightly different wobble
    const s = 0.95 + 0.1 * r()
    drawOrgan(
      pred,
      shape,
      {
        c: c.map((x) => x + Math.round(6 * r() - 3)) as Vec3,
        r: rad.map((x) => x * s) as Vec3,
        amp: organ.amp * (0.8 + 0.4 * r()),
        freq: organ.freq,
        phase: organ.phase.map((p) => p + 0.3 * r()) as Vec3,
      },
      l,
    )
    // a few stray false-positive blobs anywhere in the volume
    for (let b = 0; b < 3; b++) {
      const br = 2 + 6 * r()
      drawOrgan(
        pred,
        shape,
        {
          c: [r() * shape[0], r() * shape[1], r() * shape[2]],
          r: [br, br, br],
          amp: 0,
          freq: [1, 1, 1],
          phase: [0, 0, 0],
        },
        l,
      )
    }
  }
  return {
    name: `synthetic ${shape.join('×')}, ${nLabels} labels`,
    shape,
    spacing: [0.8, 0.8, 1.5],
    pred,
    gt,
  }
}

async function realCase(): Promise<Case> {
  const predPath = join(SHARED, 'golden/metrics/pred_PGBM-003_19950329_slice_shift.nii.gz')
  const gtPath = join(SHARED, 'data/tcia-brain-tumor-progression/labelsTr/PGBM-003_19950329.nii.gz')
  const [p, g] = await Promise.all([readNifti(predPath), readNifti(gtPath)])
  const pd = g.header.pixdim
  return {
    name: 'real PGBM-003_19950329 slice_shift (280×320×22, 0.6875×0.6875×6.5 mm)',
    shape: g.shape,
    spacing: [pd[1], pd[2], pd[3]],
    pred: Uint8Array.from(p.data),
    gt: Uint8Array.from(g.data),
  }
}

function scipyAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import scipy, numpy'], { stdio: 'ignore' }).status === 0
}

type ScipyOut = Record<
  string,
  { ms: number; runs_ms: number[]; labels: Record<string, Record<string, number>> }
>

function runScipy(
  c: Case,
  labels: number[],
  modes: string[],
  tolerance: number,
  repeat: number,
): ScipyOut {
  const dir = mkdtempSync(join(tmpdir(), 'dsd-metrics-bench-'))
  try {
    writeFileSync(join(dir, 'pred.u8'), c.pred)
    writeFileSync(join(dir, 'gt.u8'), c.gt)
    const args = {
      shape: c.shape,
      spacing: c.spacing,
      tolerance,
      labels,
      modes,
      repeat,
      dtype: 'uint8',
      pred: join(dir, 'pred.u8'),
      gt: join(dir, 'gt.u8'),
    }
    const r = spawnSync(PYTHON, ['-c', SCIPY_REFERENCE, JSON.stringify(args)], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    })
    if (r.status !== 0) throw new Error(`SciPy reference failed: ${r.stderr}`)
    return JSON.parse(r.stdout) as ScipyOut
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function maxDiff(ours: MetricsResult, ref: Record<string, Record<string, number>>): number {
  let worst = 0
  for (const [label, m] of Object.entries(ref))
    for (const k of ['dice', 'hd95', 'assd', 'nsd'] as const) {
      const v = ours.labels[label]?.[k]
      worst = Math.max(worst, typeof v === 'number' ? Math.abs(v - m[k]) : Infinity)
    }
  return worst
}

async function benchCase(
  c: Case,
  opts: {
    repeat: number
    warmup: boolean
    scipyRepeat: number
    withScipy: boolean
    scipyFull: boolean
  },
) {
  const tolerance = 1
  const options = { shape: c.shape, spacing: c.spacing, nsdTolerance: tolerance }
  // let the JIT settle (V8 needs a few runs to reach its optimising tier); not timed
  if (opts.warmup) for (let i = 0; i < 3; i++) computeMetrics(c.pred, c.gt, options)
  const times: number[] = []
  let result: MetricsResult | undefined
  for (let i = 0; i < opts.repeat; i++) {
    const t0 = performance.now()
    result = computeMetrics(c.pred, c.gt, options)
    times.push(performance.now() - t0)
  }
  const labels = Object.keys(result!.labels).map(Number)
  const out: Record<string, unknown> = {
    case: c.name,
    shape: c.shape,
    spacing: c.spacing,
    voxels: c.shape[0] * c.shape[1] * c.shape[2],
    labels: labels.length,
    ours_ms: Math.round(median(times)),
    ours_runs_ms: times.map(Math.round),
  }
  if (opts.withScipy) {
    const modes = opts.scipyFull ? ['crop', 'full'] : ['crop']
    const ref = runScipy(c, labels, modes, tolerance, opts.scipyRepeat)
    out.scipy_crop_ms = Math.round(ref.crop.ms)
    out.scipy_crop_runs_ms = ref.crop.runs_ms.map(Math.round)
    out.speedup_vs_scipy_crop = +(ref.crop.ms / median(times)).toFixed(2)
    out.max_abs_diff_vs_scipy = maxDiff(result!, ref.crop.labels)
    if (ref.full) {
      out.scipy_full_volume_ms = Math.round(ref.full.ms)
      out.speedup_vs_scipy_full_volume = +(ref.full.ms / median(times)).toFixed(2)
      out.max_abs_diff_vs_scipy_full_volume = maxDiff(result!, ref.full.labels)
    }
  }
  out.values = result!.labels
  return out
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: '512,512,300' },
      labels: { type: 'string', default: '8' },
      repeat: { type: 'string', default: '3' },
      'no-scipy': { type: 'boolean' },
      'scipy-full': { type: 'boolean' },
      'real-only': { type: 'boolean' },
    },
  })
  const shape = values.shape.split(',').map(Number) as Vec3
  const repeat = Math.max(1, Number(values.repeat))
  const withScipy = !values['no-scipy'] && scipyAvailable()
  const report: Record<string, unknown> = {
    bench: 'metrics',
    node: process.versions.node,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    scipy: withScipy
      ? spawnSync(PYTHON, ['-c', 'import scipy; print(scipy.__version__)'], {
          encoding: 'utf8',
        }).stdout.trim()
      : null,
    cases: [] as unknown[],
  }
  const cases = report.cases as unknown[]
  const common = { withScipy, scipyFull: values['scipy-full'] ?? false }
  if (!values['real-only']) {
    const t0 = performance.now()
    const c = syntheticCase(shape, Number(values.labels))
    const gen = performance.now() - t0
    const big = c.pred.length > 20e6
    const r = await benchCase(c, { ...common, repeat, warmup: !big, scipyRepeat: big ? 1 : repeat })
    cases.push({ ...r, generate_ms: Math.round(gen) })
  }
  const real = await realCase()
  cases.push(
    await benchCase(real, { ...common, repeat: Math.max(repeat, 5), warmup: true, scipyRepeat: 5 }),
  )
  console.log(JSON.stringify(report, null, 2))
}

await main()
