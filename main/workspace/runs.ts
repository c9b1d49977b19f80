/**
 * Runs on disk: create (validated config), list, read state/log, write state. See
 * run-layout.ts for the folder layout.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { z } from 'zod'
import { isSafeId, SafeId, SAFE_ID_RULE } from '../contract/ids'
import { DsdError } from '../errors'
import { atomicWriteJson, readJsonFile } from './atomic'
import { createEntry } from './entries'
import { runDir, runFiles, type EpochLog, type RunConfig, type RunState } from './run-layout'

export const RunConfigSchema = z
  .object({
    id: SafeId,
    datasetId: SafeId,
    split: SafeId,
    fold: z.number().int().min(0),
    model: z.object({
      backbone: z.enum(['dynunet', 'unetr']),
      preset: z.string().min(1),
      patch: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]),
      filters: z.array(z.number().int().positive()).length(5).optional(),
    }),
    variant: z.enum(['Basic', 'DS', 'SDD', 'SDE', 'DSD', 'custom']),
    loss: z.object({
      eta: z.number().min(0),
      alpha1: z.number().min(0),
      alpha2: z.number().min(0),
      temperature: z.number().positive(),
    }),
    batch: z.number().int().min(1).max(64),
    epochs: z.number().int().min(1),
    stepsPerEpoch: z.number().int().min(1).optional(),
    optimizer: z.object({ lr: z.number().positive(), weightDecay: z.number().min(0) }),
    schedule: z.object({ stepSize: z.number().int().min(0), gamma: z.number().positive() }),
    seed: z.number().int().min(0),
    backend: z.enum(['auto', 'tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu']),
    validateEvery: z.number().int().min(0),
    inference: z.object({
      overlap: z.number().min(0).max(0.95),
      blend: z.enum(['constant', 'gaussian']),
      mirror: z.boolean(),
    }),
    preprocessing: z.record(z.string(), z.unknown()),
    augment: z.enum(['mmwhs', 'brats', 'none']),
  })
  .strict()

async function readJson<T>(path: string, what: string): Promise<T> {
  return (await readJsonFile(path, 'RUN_FILE_MISSING', `${what} belongs in the run folder: restore it or delete the run`, 'RUN_FILE_CORRUPT')) as T
}

export function validateRunConfig(config: unknown, where = 'run config'): RunConfig {
  const parsed = RunConfigSchema.safeParse(config)
  if (!parsed.success) {
    throw new DsdError(
      'RUN_CONFIG_INVALID',
      `${where}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      { issues: parsed.error.issues },
    )
  }
  const cfg = parsed.data as RunConfig
  for (const axis of cfg.model.patch) {
    if (axis % 16 !== 0) {
      throw new DsdError('RUN_CONFIG_INVALID', `${where}: patch ${cfg.model.patch.join('×')} must be a multiple of 16 on each axis (the networks downsample 4 times).`, {})
    }
  }
  if (cfg.augment !== 'none' && cfg.model.patch[1] !== cfg.model.patch[2]) {
    throw new DsdError('RUN_CONFIG_INVALID', `${where}: in-plane 90° rotations need a square in-plane patch (h = w), got ${cfg.model.patch.join('×')}; use e.g. ${cfg.model.patch[0]}×${cfg.model.patch[2]}×${cfg.model.patch[2]} or augment "none".`, {})
  }
  return cfg
}

/** Create the run folder with its config and a queued state. Refuses to overwrite. */
export async function createRun(workspace: string, config: RunConfig): Promise<RunConfig> {
  const cfg = validateRunConfig(config)
  const files = runFiles(workspace, cfg.id)
  const exists = () =>
    new DsdError('RUN_EXISTS', `Run ${cfg.id} already exists (${files.dir}); pick another id or resume it.`, { runId: cfg.id })
  if (existsSync(files.config)) throw exists()
  const state: RunState = {
    status: 'queued',
    epoch: 0,
    epochs: cfg.epochs,
    bestEpoch: null,
    bestMeanDice: null,
    message: 'queued',
    updatedAt: new Date().toISOString(),
  }
  // config and state appear together: the run folder is built in staging and renamed into place
  await createEntry(dirname(files.dir), cfg.id, async (dir) => {
    await atomicWriteJson(join(dir, basename(files.config)), cfg)
    await atomicWriteJson(join(dir, basename(files.state)), state)
  }, 'run').catch((err: DsdError) => {
    throw err.code === 'ENTRY_EXISTS' ? exists() : err
  })
  return cfg
}

export async function readRunConfig(workspace: string, runId: string): Promise<RunConfig> {
  if (!isSafeId(runId)) throw new DsdError('RUN_ID_INVALID', `"${runId}" is not a valid run id (${SAFE_ID_RULE}).`, { runId })
  const file = runFiles(workspace, runId).config
  if (!existsSync(runDir(workspace, runId))) {
    throw new DsdError('RUN_NOT_FOUND', `No run "${runId}" in ${join(workspace, 'runs')}.`, { runId })
  }
  return validateRunConfig(await readJson(file, 'config.json'), file)
}

export async function readRunState(workspace: string, runId: string): Promise<RunState> {
  return readJson<RunState>(runFiles(workspace, runId).state, 'state.json')
}

export async function writeRunState(workspace: string, runId: string, state: RunState): Promise<void> {
  await atomicWriteJson(runFiles(workspace, runId).state, state)
}

export async function readRunLog(workspace: string, runId: string): Promise<EpochLog[]> {
  const file = runFiles(workspace, runId).log
  if (!existsSync(file)) return []
  const text = await readFile(file, 'utf8')
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        return JSON.parse(l) as EpochLog
      } catch {
        throw new DsdError('RUN_FILE_CORRUPT', `${file}: line ${i + 1} is not valid JSON.`, { file })
      }
    })
}

export async function listRuns(workspace: string): Promise<{ config: RunConfig; state: RunState }[]> {
  const root = join(workspace, 'runs')
  if (!existsSync(root)) return []
  const out: { config: RunConfig; state: RunState }[] = []
  for (const name of (await readdir(root)).sort()) {
    try {
      out.push({ config: await readRunConfig(workspace, name), state: await readRunState(workspace, name) })
    } catch {
      // A broken run folder is reported by `get`, not by the list.
    }
  }
  return out
}
