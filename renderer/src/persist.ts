/**
 * App state that survives a restart (last page, the open run and case, viewer settings), in
 * localStorage under `dsd.<section>`. Values are JSON; a damaged or missing value gives the
 * fallback. Storage may be unavailable (private windows): then nothing is kept.
 */
const PREFIX = 'dsd.'

export function loadState<T>(section: string, fallback: T): T {
  try {
    const raw = window.localStorage.getItem(PREFIX + section)
    if (raw === null) return fallback
    const value = JSON.parse(raw) as unknown
    if (fallback !== null && typeof fallback === 'object' && !Array.isArray(fallback)) {
      // Merge over the fallback, so settings added later get their defaults.
      return value && typeof value === 'object' ? ({ ...fallback, ...(value as object) } as T) : fallback
    }
    return (value as T) ?? fallback
  } catch {
    return fallback
  }
}

export function saveState(section: string, value: unknown): void {
  try {
    window.localStorage.setItem(PREFIX + section, JSON.stringify(value))
  } catch {
    // Storage full or disabled: the state is simply not kept.
  }
}
