/**
 * The one rule for identifiers that become file or folder names in the workspace: dataset ids,
 * split names, run ids and case ids. 1–128 characters from letters, digits, '.', '_' and '-',
 * not starting with '.' — so '.', '..' and hidden names (the workspace's own staging and trash
 * folders start with '.') can never be named by an id. Every check of an id uses this module.
 */
import { z } from 'zod'

/** The longest id (characters). */
export const ID_MAX_LENGTH = 128

const SAFE_ID = new RegExp(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,${ID_MAX_LENGTH - 1}}$`)

/** The rule in words, for error messages. */
export const SAFE_ID_RULE = `1–${ID_MAX_LENGTH} letters, digits, ".", "_" or "-", not starting with "."`

/** True when `value` is a safe id (see the module comment). */
export function isSafeId(value: unknown): value is string {
  return typeof value === 'string' && SAFE_ID.test(value)
}

/** The zod schema of a safe id. */
export const SafeId = z.string().refine(isSafeId, { message: `must be ${SAFE_ID_RULE}` })

/**
 * A safe id made from any text (file names, run-name prefixes): characters outside the rule
 * become `_`, leading dots are dropped, and the result is cut to the length limit. `fallback`
 * when nothing is left.
 */
export function toSafeId(text: string, fallback = 'id'): string {
  const s = text
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '')
    .slice(0, ID_MAX_LENGTH)
  return s || fallback
}
