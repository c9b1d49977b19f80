/**
 * Rate limits for progress events: at most one value per interval, and never a lost last value
 * (a value held back is sent when the interval has passed, or at once on `flush`).
 */
export interface Throttle<T> {
  /** Offer a value; `force` sends it (and anything held) at once. */
  push(value: T, force?: boolean): void
  /** Send the value held back, if any. */
  flush(): void
  /** Drop the value held back, if any, and stop the timer. */
  cancel(): void
}

export function throttle<T>(intervalMs: number, send: (value: T) => void): Throttle<T> {
  let last = -Infinity
  let held: { value: T } | null = null
  let timer: NodeJS.Timeout | null = null
  const fire = () => {
    if (timer) clearTimeout(timer)
    timer = null
    if (!held) return
    const { value } = held
    held = null
    last = Date.now()
    send(value)
  }
  return {
    push(value, force = false) {
      held = { value }
      const wait = last + intervalMs - Date.now()
      if (force || wait <= 0) fire()
      else if (!timer) {
        timer = setTimeout(fire, wait)
        timer.unref?.()
      }
    },
    flush: fire,
    cancel() {
      if (timer) clearTimeout(timer)
      timer = null
      held = null
    },
  }
}
