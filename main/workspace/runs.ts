/**
 * Runs on disk: create (validated config), list, read state/log, write state. See
 * run-layout.ts for the folder layout.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DsdError } from '../errors'
import { atomicWriteJson } from './atomic'
import { EpochLog, RunConfig, RunState } from '../contract/runs'
import { runDir, runFiles } from './run-layout'

const idPattern = /^[A-Za-z0-9._-]{1,128}$/

async function readJson<T>(path: string, what: string): Promise<T> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    throw new DsdError('RUN_FILE_MISSING', `${path}: ${what} is missing; the run folder is incomplete.`, { file: path })
  }
  try {
    return JSON.parse(text) as T
  } catch {
    throw new DsdError('RUN_FILE_CORRUPT', `${path}: ${what} is not valid JSON; restore it or delete the run.`, { file: path })
  }
}

/** Check a run config against the contract's schema; RUN_CONFIG_INVALID names each problem. */
export function validateRunConfig(config: unknown, where = 'run config'): RunConfig {
  const parsed = RunConfig.safeParse(config)
  if (!parsed.success) {
    throw new DsdError(
      'RUN_CONFIG_INVALID',
      `${where}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      { issues: parsed.error.issues },
    )
  }
  return parsed.data
}

/** Create the run folder with its config and a queued state. Refuses to overwrite. */
export async function createRun(workspace: string, config: RunConfig): Promise<RunConfig> {
  const cfg = validateRunConfig(config)
  const files = runFiles(workspace, cfg.id)
  if (existsSync(files.config)) {
    throw new DsdError('RUN_EXISTS', `Run ${cfg.id} already exists (${files.dir}); pick another id or resume it.`, { runId: cfg.id })
  }
  await atomicWriteJson(files.config, cfg)
  await writeRunState(workspace, cfg.id, {
    status: 'queued',
    epoch: 0,
    epochs: cfg.epochs,
    bestEpoch: null,
    bestMeanDice: null,
    message: 'queued',
    updatedAt: new Date().toISOString(),
  })
  return cfg
}

export async function readRunConfig(workspace: string, runId: string): Promise<RunConfig> {
  if (!idPattern.test(runId)) throw new DsdError('RUN_ID_INVALID', `"${runId}" is not a valid run id.`, { runId })
  const file = runFiles(workspace, runId).config
  if (!existsSync(runDir(workspace, runId))) {
    throw new DsdError('RUN_NOT_FOUND', `No run "${runId}" in ${join(workspace, 'runs')}.`, { runId })
  }
  return validateRunConfig(await readJson(file, 'config.json'), file)
}

export async function readRunState(workspace: string, runId: string): Promise<RunState> {
  const file = runFiles(workspace, runId).state
  const parsed = RunState.safeParse(await readJson(file, 'state.json'))
  if (!parsed.success) {
    throw new DsdError('RUN_FILE_CORRUPT', `${file}: state.json is not a run state (${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}); restore it or delete the run.`, { file })
  }
  return parsed.data
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
      let line: unknown
      try {
        line = JSON.parse(l)
      } catch {
        throw new DsdError('RUN_FILE_CORRUPT', `${file}: line ${i + 1} is not valid JSON.`, { file })
      }
      const parsed = EpochLog.safeParse(line)
      if (!parsed.success) throw new DsdError('RUN_FILE_CORRUPT', `${file}: line ${i + 1} is not an epoch log entry.`, { file })
      return parsed.data
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
