/// <reference types="vite/client" />

declare module '*.vue' {
  import type { DefineComponent } from 'vue'
  const component: DefineComponent<object, object, unknown>
  export default component
}

/** What the Electron preload exposes (see electron/preload.ts); absent in browser mode. */
interface DsdPreloadBridge {
  invoke(name: string, payload: unknown): Promise<import('../main/contract').Result<unknown>>
  on(event: string, listener: (payload: unknown) => void): () => void
}

interface Window {
  dsd?: DsdPreloadBridge
}
