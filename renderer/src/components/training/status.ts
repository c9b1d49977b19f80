import type { RunStatus } from '../../../../main/contract'

/** The tag colour of each run (and job) status. */
export const statusType = {
  queued: 'default',
  running: 'info',
  paused: 'warning',
  completed: 'success',
  failed: 'error',
  cancelled: 'warning',
} as const satisfies Record<RunStatus, string>
