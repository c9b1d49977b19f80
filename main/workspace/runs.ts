/**
 * Runs on disk: create (validated config), list, read state/log, write state. See
 * run-layout.ts for the folder layout.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { isSafeId, SAFE_ID_RULE } from '../contract/ids'
import { EpochLog, RunConfig, RunState } from '../contract/runs'
import { DsdError } from '../errors'
import { atomicWriteJson, readJsonFile } from './atomic'
import { createEntry, moveToTrash } from './entries'
import { runDir, runFiles } from './run-layout'

async function readJson<T = unknown>(path: string, what: string): Promise<T> {
  return (await readJsonFile(path, 'RUN_FILE_MISSING', `${what} belongs in the run folder: restore it or delete the run`, 'RUN_FILE_CORRUPT')) as T
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

/**
 * When a run first started (manifest.json's `createdAt`, written at its first start) and the
 * seconds of its finished epochs (timing.jsonl). Pure read; a missing or damaged file gives
 * null / 0 (the runs table then shows "—").
 */
export async function readRunTimes(workspace: string, runId: string): Promise<{ startedAt: string | null; trainingSeconds: number }> {
  const files = runFiles(workspace, runId)
  let startedAt: string | null = null
  try {
    const m = JSON.parse(await readFile(files.manifest, 'utf8')) as { createdAt?: unknown }
    if (typeof m.createdAt === 'string') startedAt = m.createdAt
  } catch {
    // not started yet, or unreadable
  }
  let trainingSeconds = 0
  try {
    for (const line of (await readFile(files.timing, 'utf8')).split('\n')) {
      if (!line.trim()) continue
      const t = JSON.parse(line) as { seconds?: unknown }
      if (typeof t.seconds === 'number' && Number.isFinite(t.seconds)) trainingSeconds += t.seconds
    }
  } catch {
    // no epoch finished yet, or unreadable
  }
  return { startedAt, trainingSeconds }
}

/** Move a run folder to the workspace's trash folder (`trash/runs/<id>-<time>`); returns where it went. */
export async function trashRun(workspace: string, runId: string): Promise<string> {
  if (!isSafeId(runId)) throw new DsdError('RUN_ID_INVALID', `"${runId}" is not a valid run id (${SAFE_ID_RULE}).`, { runId })
  const dir = runDir(workspace, runId)
  if (!existsSync(dir)) throw new DsdError('RUN_NOT_FOUND', `No run "${runId}" in ${join(workspace, 'runs')}; nothing was deleted.`, { runId })
  return moveToTrash(workspace, dir, 'runs')
}
