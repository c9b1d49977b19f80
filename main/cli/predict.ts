/**
 * `dsd predict`: sliding-window prediction with a run's checkpoint, an ensemble of runs
 * (folds), or checkpoint files on image files; writes NIfTI label maps on each case's
 * original grid (see docs/inference.md).
 */
import { basename, resolve } from 'node:path'
import { readFileSync } from 'node:fs'
import { toSafeId } from '../contract/ids'
import { PREPROCESS_PRESETS, type PreprocessSettings } from '../data/preprocess'
import { initBackend, type BackendName } from '../engine/backends'
import { DsdError } from '../errors'
import {
  predictCases,
  toPreprocessSettings,
  type FileCase,
  type PredictProgress,
} from '../services/inference'
import { readRunConfig } from '../workspace/runs'
import { workspaceRoot } from '../services/workspace-root'
import { CliError, intOption, numberOption, parse, printJson } from './args'

export const summary = 'Predict label maps with trained runs (sliding window, TTA, fold ensembles)'
export const usage = `Usage:
  dsd predict --run ID [--run ID …] [options]
  dsd predict --model CHECKPOINT [--model …] --preprocess PRESET|FILE.json --image FILE … --out DIR

Runs (workspace):
  --run ID               a trained run; several = an ensemble (mean of the softmax)
  --checkpoint last|best which checkpoint of each run (default last)
  --case ID              a case of the run's dataset (repeatable); default: the run's
                         validation fold (one run) or the split's test set (ensemble)
  --name NAME            output sub-folder under runs/<id>/predictions/ (default: last|best)

Files:
  --model FILE           a checkpoint file (repeatable; with --run too)
  --preprocess P         preprocessing of those checkpoints: mri, mmwhs, brats or a JSON file
                         with { "spacing": …, "reorient": …, "intensity": … }
  --image FILE[,FILE2]   one case: a NIfTI file (or a DICOM series folder); comma-separated
                         files are the channels of one case; repeat --image for more cases
  --label FILE           ground truth of the --image at the same position (optional)
  --id NAME              case ID of the --image at the same position (default: file name)

Options:
  --out DIR              output folder (needed for ensembles and --model)
  --tta                  mirror test-time augmentation (8 flips); --no-tta to switch it off
  --overlap X            window overlap (default: the run's, else 0.25)
  --blend constant|gaussian   window blending (default: the run's, else constant)
  --sw-batch N           windows per forward pass (default 1)
  --backend NAME         auto, cpu, wasm, webgpu, tfjs-node, tfjs-node-gpu (default: the run's)
  --workspace DIR        the workspace (default: DSD_WORKSPACE or the user-data folder)
  --json                 print the predictions manifest as JSON
  --quiet                no progress on stderr

Each prediction is written as <out>/<case>.nii.gz (uint8 class indices) with the source
image's affine, plus preprocessed/<case>.nii.gz on the preprocessed grid and predictions.json.`

function caseIdOf(file: string): string {
  const name = basename(file.replace(/[\\/]+$/, '')).replace(
    /\.(nii\.gz|nii|hdr|img|nrrd|nhdr)$/i,
    '',
  )
  const id = toSafeId(name.replace(/_0000$/, ''), 'case')
  return id || 'case'
}

function preprocessOf(v: string): PreprocessSettings {
  if (PREPROCESS_PRESETS[v]) return PREPROCESS_PRESETS[v]
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(v, 'utf8'))
  } catch {
    throw new CliError(
      `--preprocess must be ${Object.keys(PREPROCESS_PRESETS).join(', ')} or a readable JSON file, got "${v}"`,
    )
  }
  return toPreprocessSettings(raw as Record<string, unknown>, v)
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    run: { type: 'string', multiple: true },
    checkpoint: { type: 'string' },
    case: { type: 'string', multiple: true },
    name: { type: 'string' },
    model: { type: 'string', multiple: true },
    preprocess: { type: 'string' },
    image: { type: 'string', multiple: true },
    label: { type: 'string', multiple: true },
    id: { type: 'string', multiple: true },
    out: { type: 'string' },
    tta: { type: 'boolean' },
    'no-tta': { type: 'boolean' },
    overlap: { type: 'string' },
    blend: { type: 'string' },
    'sw-batch': { type: 'string' },
    backend: { type: 'string' },
    workspace: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
  })
  const runs = values.run ?? []
  const models = values.model ?? []
  if (!runs.length && !models.length)
    throw new CliError('give --run ID or --model CHECKPOINT (see --help)')
  const which = values.checkpoint ?? 'last'
  if (which !== 'last' && which !== 'best')
    throw new CliError(`--checkpoint must be last or best, got "${which}"`)
  const blend = values.blend
  if (blend !== undefined && blend !== 'constant' && blend !== 'gaussian')
    throw new CliError(`--blend must be constant or gaussian, got "${blend}"`)
  const overlap =
    values.overlap === undefined ? undefined : numberOption('overlap', values.overlap, 0, { min: 0, max: 1, maxExclusive: true })
  const swBatch = intOption('sw-batch', values['sw-batch'], 1)
  if (swBatch < 1) throw new CliError('--sw-batch must be ≥ 1')
  if (values.tta && values['no-tta']) throw new CliError('--tta and --no-tta contradict each other')
  const tta = values.tta ? true : values['no-tta'] ? false : undefined
  const ws =
    runs.length || values.case?.length
      ? workspaceRoot(values.workspace)
      : values.workspace
        ? workspaceRoot(values.workspace)
        : undefined

  // Cases: dataset IDs and/or files.
  const images = values.image ?? []
  const labels = values.label ?? []
  const ids = values.id ?? []
  if (labels.length > images.length) throw new CliError('more --label than --image options')
  if (ids.length > images.length) throw new CliError('more --id than --image options')
  const fileCases: FileCase[] = images.map((img, i) => {
    const files = img.split(',').map((s) => resolve(s.trim()))
    return {
      id: ids[i] ?? caseIdOf(files[0]),
      images: files,
      label: labels[i] ? resolve(labels[i]) : null,
    }
  })
  const cases = [...(values.case ?? []), ...fileCases]
  if (models.length && !runs.length && !values.preprocess)
    throw new CliError(
      '--model needs --preprocess (mri, mmwhs, brats or a JSON file) unless a --run is given',
    )
  const preprocessing = values.preprocess ? preprocessOf(values.preprocess) : undefined

  // Backend: asked for, else the first run's, else auto.
  let backend: BackendName | 'auto' = (values.backend as BackendName | 'auto' | undefined) ?? 'auto'
  if (!values.backend && runs.length) backend = (await readRunConfig(ws!, runs[0])).backend
  const chosen = await initBackend(backend)
  const quiet = values.quiet || values.json
  if (!quiet)
    console.error(
      `backend ${chosen.name}${chosen.device ? ` (${chosen.device})` : ''} — ${chosen.reason}`,
    )

  const ac = new AbortController()
  const onSigint = () => {
    console.error('cancelling after the current window…')
    ac.abort()
  }
  process.once('SIGINT', onSigint)
  let last = 0
  const progress = (p: PredictProgress) => {
    if (quiet) return
    const now = Date.now()
    if (p.stage === 'infer' && p.window && now - last < 2000 && p.window.done !== p.window.total)
      return
    last = now
    const w = p.window ? ` windows ${p.window.done}/${p.window.total}` : ''
    const mdl = p.models && p.models > 1 ? ` model ${(p.model ?? 0) + 1}/${p.models}` : ''
    console.error(`[${p.caseIndex + 1}/${p.cases}] ${p.caseId}: ${p.stage}${mdl}${w}`)
  }
  try {
    const res = await predictCases({
      workspace: ws,
      runIds: runs,
      which,
      checkpoints: models.map((m) => ({ path: resolve(m), preprocessing })),
      cases: cases.length ? cases : undefined,
      outDir: values.out,
      name: values.name,
      tta,
      overlap,
      blend: blend as 'constant' | 'gaussian' | undefined,
      swBatch,
      onProgress: progress,
      signal: ac.signal,
    })
    if (values.json) printJson(res.manifest)
    else {
      console.log(`Predicted ${res.manifest.cases.length} case(s) into ${res.outDir}`)
      for (const c of res.manifest.cases)
        console.log(`  ${c.caseId}  ${c.file}  ${c.shape.join('×')}  ${c.seconds.toFixed(1)} s`)
    }
    return 0
  } catch (err) {
    if (err instanceof DsdError && err.code === 'CANCELLED') {
      console.error(err.message)
      return 130
    }
    throw err
  } finally {
    process.off('SIGINT', onSigint)
  }
}
