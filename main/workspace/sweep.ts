/**
 * The startup sweep: removes what killed processes left in the workspace — staging folders of
 * entries being created (entries.ts), temp files of atomic writes (main/atomic-file.ts) and of
 * checkpoint writes — and entry folders that such a kill left empty. Files of a process that
 * is still running are kept (unless older than a day), so a CLI run and the app can share a
 * workspace.
 */
import { readdir, rm, rmdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { TEMP_FILE_RE } from '../atomic-file'
import { STAGING_PREFIX } from './entries'

const STAGING_RE = new RegExp(`^${STAGING_PREFIX.replace('.', '\\.')}(\\d+)-[0-9a-f]+$`)
/** engine/checkpoint.ts writes `.<name>.tmp-<pid>-<hex>`. */
const CHECKPOINT_TMP_RE = /^\..+\.tmp-(\d+)-[0-9a-f]+$/
const DAY_MS = 24 * 3600 * 1000

function alive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface SweepResult {
  /** Paths removed. */
  removed: string[]
}

/** Remove stale staging folders, temp files and emptied entries under datasets/, runs/ and exports/. */
export async function sweepWorkspace(ws: string, opts: { maxAgeMs?: number } = {}): Promise<SweepResult> {
  const maxAge = opts.maxAgeMs ?? DAY_MS
  const removed: string[] = []
  const stale = async (path: string, pid: number) => {
    if (!alive(pid)) return true
    try {
      return Date.now() - (await stat(path)).mtimeMs > maxAge
    } catch {
      return false
    }
  }
  const walk = async (dir: string, depth: number) => {
    let entries
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const p = join(dir, e.name)
      const m = (e.isDirectory() ? STAGING_RE : TEMP_FILE_RE).exec(e.name) ?? (e.isFile() ? CHECKPOINT_TMP_RE.exec(e.name) : null)
      if (m && (await stale(p, Number(m[1])))) {
        await rm(p, { recursive: true, force: true })
        removed.push(p)
      } else if (e.isDirectory() && !e.name.startsWith('.') && depth > 0) {
        await walk(p, depth - 1)
      }
    }
  }
  for (const top of ['datasets', 'runs', 'exports']) {
    const root = join(ws, top)
    await walk(root, 3)
    // entry folders a kill left empty (an old-style import killed before its manifest)
    let names: string[] = []
    try {
      names = await readdir(root)
    } catch {
      continue
    }
    for (const n of names) {
      if (n.startsWith('.')) continue
      const p = join(root, n)
      try {
        if ((await stat(p)).isDirectory() && (await readdir(p)).length === 0) {
          await rmdir(p)
          removed.push(p)
        }
      } catch {
        /* raced with another process: leave it */
      }
    }
  }
  return { removed }
}

const swept = new Map<string, Promise<SweepResult>>()

/** The sweep, once per workspace and process (the first use of the workspace). */
export function sweepOnce(ws: string): Promise<SweepResult> {
  let p = swept.get(ws)
  if (!p) {
    p = sweepWorkspace(ws).catch(() => ({ removed: [] }))
    swept.set(ws, p)
  }
  return p
}
