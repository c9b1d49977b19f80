import { createDiscreteApi } from 'naive-ui'
import { toApiError } from './api'

const { notification } = createDiscreteApi(['notification'], {
  notificationProviderProps: { placement: 'bottom-right', max: 4 },
})

const open = new Set<string>()

/** Shows an error as a notification: its message in full, its code as the meta line. */
export function notifyError(err: unknown, title = 'Something went wrong'): void {
  const e = toApiError(err)
  console.error(`dsd: ${e.code}: ${e.message}`, e.details)
  // The same failure from several places (e.g. every page listing datasets) shows once.
  const key = `${title}\n${e.code}\n${e.message}`
  if (open.has(key)) return
  open.add(key)
  notification.error({
    title,
    content: e.message,
    meta: e.code,
    keepAliveOnHover: true,
    duration: 12_000,
    onAfterLeave: () => open.delete(key),
  })
}

/** A short success notification. */
export function notifySuccess(title: string, content?: string): void {
  notification.success({ title, content, duration: 5_000 })
}
