/**
 * Workspace files: the atomic writer (main/atomic-file.ts), JSON written through it, and the
 * one JSON reader, which reports a missing or damaged file by name and never uses it.
 */
import { readFile } from 'node:fs/promises'
import { atomicWriteFile, type AtomicWriteOptions } from '../atomic-file'
import { DsdError } from '../errors'

export { atomicWriteFile, type AtomicWriteOptions }

/** Write JSON (2-space indent, trailing newline) atomically. */
export async function atomicWriteJson(path: string, value: unknown, opts: AtomicWriteOptions = {}): Promise<void> {
  await atomicWriteFile(path, JSON.stringify(value, null, 2) + '\n', opts)
}

/**
 * Read and parse a JSON file. Missing → a DsdError with `notFoundCode`; unreadable →
 * READ_FAILED; unparsable → `corruptCode` (WORKSPACE_CORRUPT). Each names the file and `fix`.
 */
export async function readJsonFile(
  path: string,
  notFoundCode = 'NOT_FOUND',
  fix = 'delete it and create it again',
  corruptCode = 'WORKSPACE_CORRUPT',
): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'ENOENT') throw new DsdError(notFoundCode, `${path}: not found — ${fix}`, { file: path })
    throw new DsdError('READ_FAILED', `${path}: could not read (${e.message})`, { file: path })
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new DsdError(
      corruptCode,
      `${path}: the file is damaged (${(err as Error).message}); it was not used — ${fix}`,
      { file: path },
    )
  }
}
