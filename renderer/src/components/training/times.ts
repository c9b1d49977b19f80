/** How long a run has run, for the runs table. */
import type { RunSummary } from '../../../../main/contract'

/** Wall-clock seconds since the first start: to the end once ended, to `now` while it runs. */
export function runDurationSeconds(r: RunSummary, now: number): number | null {
  if (!r.startedAt) return null
  const start = Date.parse(r.startedAt)
  const end = r.endedAt ? Date.parse(r.endedAt) : r.state.status === 'queued' ? Date.parse(r.state.updatedAt) : now
  return Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, (end - start) / 1000) : null
}
