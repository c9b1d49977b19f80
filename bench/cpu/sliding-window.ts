/**
 * Sliding-window prediction of one hippocampus case with the small DynUNet, timed: the
 * engine's `slidingWindowInference` (MONAI semantics: 32³ windows, overlap 0.25, constant
 * blending, softmax output, one window per forward, no test-time flips) on the case as
 * `dsd predict` prepares it (the `mri` preprocessing: RAS, z-score). Random weights (seed 100):
 * speed does not depend on them. Writes the prepared volume as raw float32 `[d, h, w]` so
 * that `torch_dynunet.py --volume` predicts exactly the same input.
 *
 *   npx tsx bench/cpu/sliding-window.ts [--backend wasm] [--runs 3] [--warmup 1] [--case FILE] [--write-volume FILE]
 *
 * Prints one JSON object: backend, device, case, shape, windows, slidingWindowMs (median),
 * slidingWindowMsAll.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { readVolume } from '../../main/data/volume-io'
import { PREPROCESS_PRESETS, preprocessVolumes } from '../../main/data/preprocess'
import { initBackend, type BackendName } from '../../main/engine/backends'
import { createModel } from '../../main/engine/model'
import { slidingWindowInference, windowGrid } from '../../main/engine/sliding-window'
import { shutdownCpuRuntime } from '../../main/engine/kernels/cpu/runtime'

const ROOT = join(import.meta.dirname, '../..')
const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    case: {
      type: 'string',
      default: join(ROOT, 'resources/sample/hippocampus/imagesTr/hippocampus_001.nii.gz'),
    },
    'write-volume': { type: 'string' },
  },
})
const runs = Number(values.runs)
const warmup = Number(values.warmup)
const choice = await initBackend(values.backend as BackendName)
const image = await readVolume(values.case!)
const prepared = preprocessVolumes('case', [image], null, PREPROCESS_PRESETS.mri!)
const [nx, ny, nz] = prepared.shape
const vol = { data: prepared.image, shape: [nz, ny, nx] as [number, number, number], channels: 1 }
if (values['write-volume']) writeFileSync(values['write-volume'], prepared.image)
const model = createModel({ backbone: 'dynunet', preset: 'small' })
const roi = model.config.patch
const predictor = (x: Parameters<typeof model.forward>[0]) => model.forward(x).Y
const times: number[] = []
for (let i = 0; i < warmup + runs; i++) {
  const t0 = performance.now()
  await slidingWindowInference(vol, roi, predictor, { overlap: 0.25, blend: 'constant' })
  if (i >= warmup) times.push(performance.now() - t0)
}
model.dispose()
await shutdownCpuRuntime()
const sorted = [...times].sort((a, b) => a - b)
const m = Math.floor(sorted.length / 2)
const padded = vol.shape.map((s, i) => Math.max(s, roi[i]!)) as [number, number, number]
console.log(
  JSON.stringify({
    backend: choice.name,
    device: choice.device,
    case: values.case,
    shape: vol.shape,
    windows: windowGrid(padded, roi, 0.25).length,
    slidingWindowMs: sorted.length % 2 ? sorted[m] : (sorted[m - 1]! + sorted[m]!) / 2,
    slidingWindowMsAll: times.map((t) => Number(t.toFixed(1))),
  }),
)
