/**
 * The one atomic file writer: the bytes go to a hidden temp file in the same folder, are
 * fsynced, then renamed over the target — so a reader (or a kill at any moment) sees the old
 * file or the new one, never half of one. With `exclusive`, the commit is a hard link that
 * fails when the target exists (create-only, no race). Temp files are named
 * `.<name>.<pid>.<hex>.tmp`; main/workspace/sweep.ts removes those a killed process left.
 * Lives at the root of main/ (like errors.ts) so the data layer's writers use it too.
 */
import { randomBytes } from 'node:crypto'
import { link, mkdir, open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { DsdError, isNoSpace } from './errors'

export interface AtomicWriteOptions {
  /** Create the folder first (default true). */
  mkdir?: boolean
  /** Refuse to replace an existing file (FILE_EXISTS). */
  exclusive?: boolean
}

/** The temp-file name pattern (pid in group 1), for the sweep. */
export const TEMP_FILE_RE = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/

/** Write `data` to `path` atomically. */
export async function atomicWriteFile(
  path: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const dir = dirname(path)
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    if (opts.mkdir ?? true) await mkdir(dir, { recursive: true })
    const fh = await open(tmp, 'w')
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (opts.exclusive) {
      try {
        await link(tmp, path) // fails with EEXIST when the target exists
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err
        // no hard links on this file system: check, then rename (a small race remains)
        const exists = await open(path, 'r').then(
          async (h) => (await h.close(), true),
          () => false,
        )
        if (exists) throw Object.assign(new Error('file exists'), { code: 'EEXIST' })
        await rename(tmp, path)
      }
      await rm(tmp, { force: true })
    } else {
      await rename(tmp, path)
    }
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined)
    const e = err as NodeJS.ErrnoException
    if (e.code === 'EEXIST' && opts.exclusive) {
      throw new DsdError('FILE_EXISTS', `${path}: already exists; nothing was written — choose another name`, {
        file: path,
      })
    }
    if (isNoSpace(e.code)) {
      throw new DsdError(
        'DISK_FULL',
        `${path}: no space to write it (${e.code}: the disk is full or a quota / file-size limit was hit); nothing was written — free some space and retry`,
        { file: path, errno: e.code },
      )
    }
    throw new DsdError(
      'WRITE_FAILED',
      `${path}: could not write (${e.message})${e.code === 'ENOENT' ? '; the folder does not exist — create it first' : '; check permissions and free space'}`,
      { file: path, errno: e.code },
    )
  }
}
