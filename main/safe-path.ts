import { realpathSync } from 'node:fs'
import { isAbsolute, relative, resolve, sep } from 'node:path'
import { DsdError } from './errors'

/**
 * Resolve a URL path (still percent-encoded, without query) to a file inside `root`, or throw.
 * Rejects `..` segments, encoded separators, NUL bytes, absolute paths and symlinks that
 * escape the root. Used by the HTTP server and the Electron protocol handler alike.
 */
export function resolveInside(root: string, urlPath: string): string {
  let decoded: string
  try {
    decoded = decodeURIComponent(urlPath)
  } catch {
    throw new DsdError('BAD_PATH', `Malformed path ${JSON.stringify(urlPath)}.`, { path: urlPath })
  }
  const segments = decoded.split('/').filter((s) => s.length > 0)
  if (
    decoded.includes('\0') ||
    decoded.includes('\\') ||
    segments.some((s) => s === '..' || s === '.') ||
    /%2f|%5c/i.test(urlPath)
  ) {
    throw new DsdError('BAD_PATH', `Path ${JSON.stringify(decoded)} is not allowed.`, {
      path: decoded,
    })
  }
  const base = resolve(root)
  const target = resolve(base, ...segments)
  const rel = relative(base, target)
  if (rel.startsWith('..') || isAbsolute(rel)) {
    throw new DsdError('BAD_PATH', `Path ${JSON.stringify(decoded)} leaves its folder.`, {
      path: decoded,
    })
  }
  // Follow symlinks: the real target must still be inside the real root.
  let real: string
  try {
    real = realpathSync(target)
  } catch {
    return target // does not exist (yet): the caller answers 404
  }
  const realBase = realpathSync(base)
  if (real !== realBase && !real.startsWith(realBase + sep)) {
    throw new DsdError('BAD_PATH', `Path ${JSON.stringify(decoded)} leaves its folder.`, {
      path: decoded,
    })
  }
  return real
}
