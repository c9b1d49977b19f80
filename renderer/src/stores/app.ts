import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { AppInfo } from '../../../main/contract'
import { ApiError, toApiError, useApi, type ConnectionState } from '../api'

/** App-wide facts: `app.info` (versions, backends, workspace) and the event connection. */
export const useAppStore = defineStore('app', () => {
  const api = useApi()
  const info = ref<AppInfo | null>(null)
  const error = ref<ApiError | null>(null)
  const loading = ref(false)
  const connection = ref<ConnectionState>(api.connection())
  api.onConnectionChange((state) => {
    connection.value = state
  })

  /** Loads (or reloads) `app.info`; keeps the error for the header and About page. */
  async function load(): Promise<void> {
    loading.value = true
    try {
      info.value = await api.invoke('app.info', {})
      error.value = null
    } catch (err) {
      error.value = toApiError(err)
      throw error.value
    } finally {
      loading.value = false
    }
  }

  return {
    info,
    error,
    loading,
    connection,
    transport: api.kind,
    transportDescription: api.description,
    load,
  }
})
