/**
 * Whole workspace entries — a dataset folder, a run folder — are created atomically: the
 * files are written in a hidden staging folder beside the entry (`.staging-<pid>-<hex>`) and
 * the folder is renamed into place, so a kill at any moment leaves either the complete entry
 * or a staging folder that nothing lists and the sweep (sweep.ts) removes. Deleting moves an
 * entry into the workspace's `trash/` folder (one rename), never `rm -rf`.
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { DsdError } from '../errors'

/** Prefix of staging folders; the pid follows it. */
export const STAGING_PREFIX = '.staging-'
/** The workspace's trash folder (beside datasets/ and runs/). */
export const TRASH_DIR = 'trash'

/** Make a folder's new entries durable (best effort: not every platform can fsync a folder). */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch {
    /* Windows and some file systems cannot open a folder for sync */
  }
}

function exists(kind: string, target: string): DsdError {
  return new DsdError('ENTRY_EXISTS', `${target}: a ${kind} of that name already exists; nothing was written — choose another name`, {
    path: target,
  })
}

/**
 * Create `parent/name` as a whole: `build` writes the entry's files into a fresh staging
 * folder, which is then renamed to `parent/name`. Refuses (ENTRY_EXISTS) when the entry
 * exists; on any failure the staging folder is removed and nothing is left.
 */
export async function createEntry<T>(
  parent: string,
  name: string,
  build: (dir: string) => Promise<T>,
  kind = 'workspace entry',
): Promise<T> {
  const target = join(parent, name)
  if (existsSync(target)) throw exists(kind, target)
  await mkdir(parent, { recursive: true })
  const staging = join(parent, `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`)
  await mkdir(staging)
  try {
    const out = await build(staging)
    await syncDir(staging)
    if (existsSync(target)) throw exists(kind, target)
    try {
      await rename(staging, target)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EPERM') throw exists(kind, target)
      throw err
    }
    await syncDir(parent)
    return out
  } catch (err) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined)
    throw err
  }
}

/**
 * Move `path` (a file or folder inside workspace `ws`) to `ws/trash/<kind>/<name>-<time>`,
 * and return where it went.
 */
export async function moveToTrash(ws: string, path: string, kind: string): Promise<string> {
  const dir = join(ws, TRASH_DIR, kind)
  await mkdir(dir, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  let dest = join(dir, `${basename(path)}-${stamp}`)
  for (let n = 2; existsSync(dest); n++) dest = join(dir, `${basename(path)}-${stamp}-${n}`)
  try {
    await rename(path, dest)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new DsdError(
      e.code === 'ENOENT' ? 'NOT_FOUND' : 'WRITE_FAILED',
      e.code === 'ENOENT' ? `${path}: does not exist (already deleted?)` : `${path}: could not move it to ${dir} (${e.message}); check permissions`,
      { path },
    )
  }
  return dest
}
