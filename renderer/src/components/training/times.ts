/** How the runs table shows when a run started and how long it ran. */
import type { RunSummary } from '../../../../main/contract'

/** Local date and time, "2026-11-29 21:05" (— before the first start). */
export function formatStart(iso: string | null): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return '—'
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

/** Wall-clock seconds since the first start: to the end once ended, to `now` while it runs. */
export function runDurationSeconds(r: RunSummary, now: number): number | null {
  if (!r.startedAt) return null
  const start = Date.parse(r.startedAt)
  const end = r.endedAt ? Date.parse(r.endedAt) : r.state.status === 'queued' ? Date.parse(r.state.updatedAt) : now
  return Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, (end - start) / 1000) : null
}

/** "45 s", "12 min", "3 h 05 min" (— when unknown). */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—'
  if (seconds < 90) return `${Math.round(seconds)} s`
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`
  const h = Math.floor(seconds / 3600)
  return `${h} h ${String(Math.round((seconds - h * 3600) / 60)).padStart(2, '0')} min`
}
