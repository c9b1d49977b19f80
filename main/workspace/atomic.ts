/**
 * Atomic file writes (temp file in the same folder, then rename) and JSON reads that detect
 * corruption: the workspace never holds a half-written file, and a damaged file is reported,
 * never silently used.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { DsdError, isNoSpace } from '../errors'

/** Write `data` to `path` atomically (creates the folder). */
export async function atomicWriteFile(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const fh = await open(tmp, 'w')
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    const e = err as NodeJS.ErrnoException
    if (isNoSpace(e.code)) {
      throw new DsdError(
        'DISK_FULL',
        `${path}: no space to write it (${e.code}: the disk is full or a quota / file-size limit was hit); nothing was written — free some space and retry`,
        { file: path, errno: e.code },
      )
    }
    throw new DsdError(
      'WRITE_FAILED',
      `${path}: could not write (${e.message}); check permissions and free space`,
      { file: path },
    )
  }
}

/** Write JSON (2-space indent, trailing newline) atomically. */
export async function atomicWriteJson(path: string, value: unknown): Promise<void> {
  await atomicWriteFile(path, JSON.stringify(value, null, 2) + '\n')
}

/**
 * Read and parse a JSON file. Missing → `${what}_NOT_FOUND`-style DsdError with `notFoundCode`;
 * unparsable → WORKSPACE_CORRUPT naming the file and the fix.
 */
export async function readJsonFile(
  path: string,
  notFoundCode = 'NOT_FOUND',
  fix = 'delete it and create it again',
): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'ENOENT') throw new DsdError(notFoundCode, `${path}: not found`, { file: path })
    throw new DsdError('READ_FAILED', `${path}: could not read (${e.message})`, { file: path })
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new DsdError(
      'WORKSPACE_CORRUPT',
      `${path}: the file is damaged (${(err as Error).message}); it was not used — ${fix}`,
      { file: path },
    )
  }
}
