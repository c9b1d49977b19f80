import { createDiscreteApi } from 'naive-ui'
import { toApiError } from './api'

const { notification, dialog } = createDiscreteApi(['notification', 'dialog'], {
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

/**
 * Asks before something is deleted: the title names it, `content` says what happens (where the
 * files go) and what it affects. Resolves true on the confirm button, false otherwise.
 */
export function confirmDelete(title: string, content: string, confirm = 'Move to trash'): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false
    const settle = (v: boolean) => {
      if (!settled) resolve(v)
      settled = true
    }
    dialog.warning({
      title,
      content,
      positiveText: confirm,
      negativeText: 'Cancel',
      positiveButtonProps: { type: 'error', ...({ 'data-testid': 'confirm-delete' } as object) },
      negativeButtonProps: { ...({ 'data-testid': 'confirm-cancel' } as object) },
      onPositiveClick: () => settle(true),
      onNegativeClick: () => settle(false),
      onClose: () => settle(false),
      onMaskClick: () => settle(false),
      onAfterLeave: () => settle(false),
    })
  })
}
