import { createBrowserTransport } from './browser'
import { createElectronTransport } from './electron'
import { takeToken } from './token'
import type { Transport } from './transport'

export { ApiError, toApiError } from './errors'
export type { ConnectionState, Transport } from './transport'

let current: Transport | null = null

/**
 * Picks the transport once at start-up: the Electron preload bridge when `window.dsd` exists,
 * otherwise HTTP + WebSocket to the server that served this page.
 */
export function initApi(): Transport {
  if (current) return current
  current = window.dsd
    ? createElectronTransport(window.dsd)
    : createBrowserTransport({ token: takeToken() })
  return current
}

/** The transport chosen by `initApi()` (stores and pages call this). */
export function useApi(): Transport {
  if (!current) throw new Error('dsd: initApi() must run before the app mounts')
  return current
}
